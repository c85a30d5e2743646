"""Run records -> tables in the layout of HRKD Tables 2, 3 and 4, with their statistics.

One way down: render -> tables / ablation -> statistics -> records.

- records: reading run.json (and predictions.json) from run, seed-group and results directories,
  grouping runs into rows, matching two rows' runs by seed;
- statistics: mean ± sample std, Welch's t-test, the paired t-test over matched seeds, the exact
  sign-flip test whose unit is the test example (each a function whose docstring gives its formula);
- tables (Tables 2/3) and ablation (Table 4): rows, references, p-values, marks, notes;
- render: rich, Markdown, CSV and JSON writers.

The names below are those other modules import from ``hrkd_cli.compare``.
"""

from hrkd_cli.compare.ablation import (
    GRAPH_ONLY_FIELDS,
    ablation_drop,
    ablation_label,
    ablation_tables,
    stands_for_domain_rel,
    variant_key,
)
from hrkd_cli.compare.records import (
    ABLATION_LABELS,
    METHOD_ORDER,
    NATURAL_TINYBERT,
    TEACHER_ORDER,
    TINYBERT_METHODS,
    RunRecord,
    check_same_data,
    collect,
    domains_of,
    results_records,
)
from hrkd_cli.compare.render import (
    FORMATS,
    per_seed_rich_table,
    render,
    rich_table,
    to_csv,
    to_json_text,
    to_markdown,
)
from hrkd_cli.compare.statistics import (
    EXAMPLE_TEST,
    MEAN_DIGITS,
    PAIRED_TTEST,
    STD_DIGITS,
    STD_NOTE,
    TTEST,
    Stat,
    format_p,
    paired_t_p,
    sign_flip_p,
    welch_p,
)
from hrkd_cli.compare.tables import (
    Paired,
    ResultTable,
    TableRow,
    compare_table,
    group_rows,
    mark_best,
    require_partners,
    tinybert_reference,
)

__all__ = [
    "ABLATION_LABELS", "FORMATS", "GRAPH_ONLY_FIELDS", "EXAMPLE_TEST", "MEAN_DIGITS", "METHOD_ORDER",
    "NATURAL_TINYBERT", "PAIRED_TTEST", "STD_DIGITS", "STD_NOTE", "TEACHER_ORDER", "TINYBERT_METHODS", "TTEST",
    "Paired", "ResultTable", "RunRecord", "Stat", "TableRow", "ablation_drop", "ablation_label", "ablation_tables",
    "check_same_data", "collect", "compare_table", "domains_of", "format_p", "group_rows", "mark_best",
    "paired_t_p", "per_seed_rich_table", "render", "require_partners",
    "results_records", "rich_table", "sign_flip_p", "stands_for_domain_rel", "tinybert_reference", "to_csv", "to_json_text",
    "to_markdown", "variant_key", "welch_p",
]
