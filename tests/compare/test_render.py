"""Writers with the paired columns and per-seed averages, and `hrkd eval --compare` end to end."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest
from compare_fakes import pair
from rich.console import Console

from hrkd_cli.compare.records import collect
from hrkd_cli.compare.render import per_seed_rich_table, render, rich_table, to_markdown
from hrkd_cli.compare.tables import compare_table
from hrkd_cli.tables import print_table

HRKD_ROW = "HRKD-teacher -(HRKD)-> BERT_S"


@pytest.fixture
def runs(tmp_path):
    pair(tmp_path, 1, (3, 3, 1, 3), (2, 2, 0, 2))
    pair(tmp_path, 2, (4, 2, 1, 3), (3, 1, 0, 2))
    return tmp_path


# The example test on these runs (test_tables.test_paired_t_and_the_example_test derives d):
# d = [0, 0, 0, 1, 2, 2, -2, 0, 0, 0 | 0, 0, 1, 2, 0, 0], k = 6, p = 0.25, diff +18.75 [-6.35, +43.85] points.
CELL = "0.250 (k=6; +18.75 [-6.35, +43.85])"


def hrkd_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "hrkd_cli", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "COLUMNS": "250", "NO_COLOR": "1"}, timeout=120)


def test_markdown_csv_json_carry_paired_tests_and_per_seed(runs):
    table = compare_table(collect([runs]))
    hrkd = next(r for r in table.rows if r.label == HRKD_ROW)
    per_seed = hrkd.per_seed("test")
    md = to_markdown(table)
    assert f"| {CELL} |" in md and "sign-flip" in md and "two-sided" in md and "Per seed" not in md
    table.per_seed = True
    md = to_markdown(table)
    assert "| Method | Seed 1 | Seed 2 | mean paired Δ (n) |" in md
    assert f"| {HRKD_ROW} | {per_seed[1]:.2f} | {per_seed[2]:.2f} | {hrkd.paired.mean_diff:+.2f} (2) |" in md
    rows = list(csv.DictReader(io.StringIO(render([table], "csv"))))
    h = next(r for r in rows if r["method"] == HRKD_ROW)
    assert (h["paired_n"], h["examples_differing"], h["examples"]) == ("2", "6", "16")
    assert float(h["example_p"]) == pytest.approx(0.25) and float(h["example_diff"]) == pytest.approx(18.75)
    assert float(h["seed_2_average"]) == pytest.approx(per_seed[2])
    obj = json.loads(render([table], "json"))
    j = next(r for r in obj["rows"] if r["label"] == HRKD_ROW)
    assert j["n"] == 2 and j["per_seed_average"]["1"] == pytest.approx(per_seed[1])
    ex = j["paired"]["example_test"]
    assert (ex["differing_examples"], ex["examples"], ex["seeds"]) == (6, 16, [1, 2]) and ex["p"] == pytest.approx(0.25)
    assert ex["ci95"] == pytest.approx([-6.354568, 43.854568], abs=1e-5) and obj["sided"] == "two-sided"
    assert j["paired"]["t_p"] == pytest.approx(hrkd.paired.t_p) and "ttest_rel" in obj["paired_ttest"]


def test_rich_tables_name_the_tests(runs):
    table = compare_table(collect([runs]))
    buf = io.StringIO()
    console = Console(file=buf, width=80)
    print_table(console, rich_table(table))
    print_table(console, per_seed_rich_table(table))
    text = buf.getvalue()
    assert "0.250 (k=6;" in text and "sign-flip" in text and "Welch" in text and "paired" in text
    assert "Seed 2" in text and "…" not in text


def test_eval_compare_end_to_end(runs, tmp_path):
    done = hrkd_cli("eval", "--compare", runs, "--per-seed", "--paired", "--format", "json", "-o", tmp_path / "t.json",
                    cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert CELL in done.stdout and "Seed 1" in done.stdout and "mean paired Δ" in done.stdout
    obj = json.loads((tmp_path / "t.json").read_text())
    assert next(r for r in obj["rows"] if r["label"] == HRKD_ROW)["paired"]["n"] == 2
    # a row whose seeds the reference lacks: with --paired, a one-line error naming it; without, a blank cell
    pair(tmp_path / "lonely", 1, (3, 1, 1, 1), (2, 1, 0, 1))
    (tmp_path / "lonely" / "student" / "multi-domain" / "seed-1").rename(tmp_path / "lonely" / "seed-1-aside")
    pair(tmp_path / "lonely", 3, (3, 1, 1, 1), (2, 1, 0, 1))
    (tmp_path / "lonely" / "student" / "hrkd" / "seed-3").rename(tmp_path / "lonely" / "seed-3-aside")
    done = hrkd_cli("eval", "--compare", tmp_path / "lonely", "--paired", cwd=tmp_path)
    assert done.returncode != 0 and done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: paired tests need runs with the same seed numbers") and HRKD_ROW in line
    done = hrkd_cli("eval", "--compare", tmp_path / "lonely", cwd=tmp_path)
    assert done.returncode == 0 and f"no paired p for {HRKD_ROW}" in done.stdout
    done = hrkd_cli("eval", runs, "--per-seed", cwd=tmp_path)
    assert done.returncode != 0 and "go with --compare" in done.stderr
