"""Run records -> tables in the layout of HRKD Tables 2, 3 and 4, with their statistics.

One way down: render -> tables / ablation -> statistics -> records.

- records: reading run.json (and predictions.json) from run, seed-group and results directories,
  grouping runs into rows, matching two rows' runs by seed;
- statistics: mean ± sample std, Welch's t-test, the paired t-test over matched seeds, the exact
  sign-flip test whose unit is the test example (each a function whose docstring gives its formula);
- tables (Tables 2/3) and ablation (Table 4): rows, references, p-values, marks, notes;
- render: rich, Markdown, CSV and JSON writers.

Import a name from the submodule that defines it (``from hrkd_cli.compare.tables import compare_table``).
"""
