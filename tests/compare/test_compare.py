"""Tables from run records: mean, std and p-value against direct computations; marks; writers; bad input."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from hrkd_cli.compare.ablation import ablation_tables
from hrkd_cli.compare.records import collect
from hrkd_cli.compare.render import render, rich_table, to_csv, to_markdown
from hrkd_cli.compare.statistics import format_p, welch_p
from hrkd_cli.compare.tables import compare_table
from hrkd_cli.errors import HrkdError

DOMAINS = ["books", "dvd", "kitchen"]
DATA = "a" * 64


def write_record(root: Path, tag: str, seed: int, scores: list[float], *, method: str = "hrkd", row: str | None = None,
                 drop: list[str] | None = None, data_hash: str = DATA, teacher: str = "multi-domain",
                 preset_hash: str | None = None, graph_mode: str = "frozen") -> Path:
    """A student run record with per-domain test accuracies ``scores`` (fractions); the average is their mean."""
    out = root / "student" / tag / f"seed-{seed}"
    out.mkdir(parents=True, exist_ok=True)
    test = dict(zip(DOMAINS, scores))
    test["average"] = sum(scores) / len(scores)
    names = {"hrkd": "HRKD", "multi-domain": "TinyBERT-KD", "tinybert": "TinyBERT-KD", "meta-kd": "Meta-distillation"}
    teachers = {"multi-domain": "HRKD-teacher", "single": "BERT-single", "meta": "Meta-teacher"}
    record = {
        "role": "student", "method": method, "row": row or f"{teachers[teacher]} -({names[method]})-> BERT_S",
        "preset": {"name": "fake", "data": {"domains": []}, "teacher": {"exclude_domain": ""},
                   "student": {}, "distill": {"method": method, "teacher_kind": "auto", "drop": drop or [],
                                              "graph_mode": graph_mode}, "runtime": {"precision": "fp32"}},
        "preset_hash": preset_hash or f"{tag}-hash", "seed": seed, "data_hash": data_hash,
        "teacher": str(root / "teacher" / teacher), "dev": test, "test": test, "wall_time_s": 1.5,
    }
    (out / "run.json").write_text(json.dumps(record))
    return out


def write_teacher(root: Path, kind: str, scores: list[float], data_hash: str = DATA) -> Path:
    out = root / "teacher" / kind
    out.mkdir(parents=True, exist_ok=True)
    test = dict(zip(DOMAINS, scores))
    test["average"] = sum(scores) / len(scores)
    rows = {"multi-domain": "HRKD-teacher", "single": "BERT-single"}
    (out / "run.json").write_text(json.dumps({"role": "teacher", "kind": kind, "row": rows[kind], "preset": {"name": "fake"},
                                              "seed": 1, "data_hash": data_hash, "test": test, "dev": test, "wall_time_s": 3}))
    return out


HRKD = {1: [0.80, 0.90, 0.85], 2: [0.82, 0.91, 0.86], 3: [0.79, 0.93, 0.88]}
TINY = {1: [0.78, 0.88, 0.84], 2: [0.77, 0.90, 0.83], 3: [0.80, 0.86, 0.81]}


@pytest.fixture
def results(tmp_path) -> Path:
    write_teacher(tmp_path, "multi-domain", [0.9, 0.92, 0.91])
    write_teacher(tmp_path, "single", [0.88, 0.9, 0.9])
    for s in (1, 2, 3):
        write_record(tmp_path, "hrkd", s, HRKD[s])
        write_record(tmp_path, "multi-domain", s, TINY[s], method="multi-domain")
    return tmp_path


def row(table, label):
    return next(r for r in table.rows if r.label == label)


def test_mean_std_and_p_equal_direct_computation(results):
    table = compare_table(collect([results]))
    hrkd = row(table, "HRKD-teacher -(HRKD)-> BERT_S")
    tiny = row(table, "HRKD-teacher -(TinyBERT-KD)-> BERT_S")
    for i, d in enumerate(DOMAINS):
        vals = [100 * HRKD[s][i] for s in (1, 2, 3)]
        assert hrkd.stats[d].mean == pytest.approx(np.mean(vals))
        assert hrkd.stats[d].std == pytest.approx(np.std(vals, ddof=1))
    # per-seed averages, as recorded in run.json
    a = [100 * np.mean(HRKD[s]) for s in (1, 2, 3)]
    b = [100 * np.mean(TINY[s]) for s in (1, 2, 3)]
    assert hrkd.stats["average"].values == pytest.approx(a)
    assert hrkd.stats["average"].std == pytest.approx(np.std(a, ddof=1))
    assert hrkd.p_value == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert hrkd.reference == tiny.label
    assert tiny.p_note == "ref"
    # paper layout: teachers first, then TinyBERT-KD, then HRKD
    assert [r.role for r in table.rows] == ["teacher", "teacher", "student", "student"]
    assert [r.label for r in table.rows][:2] == ["BERT-single", "HRKD-teacher"]
    assert table.rows[-1] is hrkd


def test_best_bold_second_underlined(results):
    table = compare_table(collect([results]))
    hrkd = row(table, "HRKD-teacher -(HRKD)-> BERT_S")
    tiny = row(table, "HRKD-teacher -(TinyBERT-KD)-> BERT_S")
    assert hrkd.marks["average"] == "best" and tiny.marks["average"] == "second"
    assert all(not r.marks for r in table.rows if r.role == "teacher")  # teachers are not ranked
    md = to_markdown(table)
    mean_h = hrkd.stats["average"].text()
    assert f"**{mean_h}**" in md and f"<u>{tiny.stats['average'].text()}</u>" in md
    assert "Welch" in md and DATA in md
    from rich.console import Console

    console = Console(record=True, width=250)
    console.print(rich_table(table))
    assert "HRKD-teacher -(HRKD)-> BERT_S" in console.export_text()


def test_fewer_than_two_seeds_is_na(tmp_path):
    write_record(tmp_path, "hrkd", 1, HRKD[1])
    write_record(tmp_path, "multi-domain", 1, TINY[1], method="multi-domain")
    write_record(tmp_path, "multi-domain", 2, TINY[2], method="multi-domain")
    table = compare_table(collect([tmp_path]))
    hrkd = row(table, "HRKD-teacher -(HRKD)-> BERT_S")
    assert hrkd.p_value is None and format_p(hrkd.p_value, hrkd.p_note) == "n/a"
    assert "±" not in hrkd.stats["average"].text()  # one seed: the bare value
    assert welch_p([1.0], [1.0, 2.0]) is None
    assert welch_p([1.0, 1.0], [1.0, 1.0]) is None  # constant samples: undefined, not a crash
    assert "| n/a |" in to_markdown(table)


def test_reference_is_from_the_same_teacher(tmp_path):
    for s in (1, 2):
        write_record(tmp_path, "hrkd", s, HRKD[s])
        write_record(tmp_path, "tinybert", s, TINY[s], method="tinybert", teacher="single")
    table = compare_table(collect([tmp_path]))
    hrkd = row(table, "HRKD-teacher -(HRKD)-> BERT_S")
    assert hrkd.p_value is None and hrkd.p_note == "n/a"  # no TinyBERT-KD from HRKD-teacher
    assert row(table, "BERT-single -(TinyBERT-KD)-> BERT_S").p_note == "ref"


def test_different_datasets_refused_naming_both_hashes(tmp_path):
    other = "b" * 64
    a = write_record(tmp_path / "x", "hrkd", 1, HRKD[1])
    b = write_record(tmp_path / "y", "hrkd", 1, HRKD[2], data_hash=other)
    with pytest.raises(HrkdError) as err:
        compare_table(collect([a, b]))
    assert DATA in str(err.value) and other in str(err.value)


def test_collect_accepts_runs_seed_groups_and_results_dirs(results, tmp_path):
    assert len(collect([results])) == 8
    assert len(collect([results / "student" / "hrkd"])) == 3
    assert len(collect([results / "student" / "hrkd" / "seed-2", results / "student" / "hrkd"])) == 3  # deduplicated
    assert len(collect([results / "teacher" / "single" / "run.json"])) == 1
    best = results / "student" / "hrkd" / "seed-1" / "best"  # a checkpoint inside a run: its run's record
    best.mkdir()
    (best / "hrkd.json").write_text("{}")
    assert [r.seed for r in collect([best])] == [1]
    with pytest.raises(HrkdError, match="no such"):
        collect([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(HrkdError, match="no finished runs"):
        collect([tmp_path / "empty"])


def test_same_row_name_different_configuration_is_disambiguated(tmp_path):
    for s in (1, 2):
        write_record(tmp_path, "hrkd", s, HRKD[s])
        write_record(tmp_path, "hrkd-joint", s, TINY[s], graph_mode="joint")
    labels = [r.label for r in compare_table(collect([tmp_path])).rows]
    assert "HRKD-teacher -(HRKD)-> BERT_S [hrkd]" in labels and "HRKD-teacher -(HRKD)-> BERT_S [hrkd-joint]" in labels


def test_writers_round_trip(results):
    table = compare_table(collect([results]))
    hrkd = row(table, "HRKD-teacher -(HRKD)-> BERT_S")
    rows = list(csv.DictReader(io.StringIO(to_csv(table))))
    h = next(r for r in rows if r["method"] == hrkd.label)
    assert float(h["average_mean"]) == pytest.approx(hrkd.stats["average"].mean, abs=1e-4)
    assert float(h["average_std"]) == pytest.approx(hrkd.stats["average"].std, abs=1e-4)
    assert float(h["p_value"]) == pytest.approx(hrkd.p_value, rel=1e-5)
    assert h["n_seeds"] == "3" and h["seeds"] == "1 2 3"
    obj = json.loads(render([table], "json"))
    j = next(r for r in obj["rows"] if r["label"] == hrkd.label)
    assert j["p_value"] == pytest.approx(hrkd.p_value) and j["stats"]["books"]["values"] == pytest.approx([80.0, 82.0, 79.0])
    assert "Welch" in obj["ttest"]
    with pytest.raises(HrkdError):
        render([table], "xlsx")


def test_ablation_table_delta_and_labels(tmp_path):
    drops = [[], ["self-attention"], ["self-attention", "comp-agg"], ["comp-agg"]]
    for k, drop in enumerate(drops):
        tag = "hrkd" + ("-drop-" + "+".join(drop) if drop else "")
        for s in (1, 2):
            write_record(tmp_path, tag, s, [x - 0.01 * k for x in HRKD[s]], drop=drop)
    [table] = ablation_tables(collect([tmp_path]))
    labels = [r.label for r in table.rows]
    assert labels == ["HRKD", "- Self-attention", "- Comp-Agg", "- Comp-Agg (alone)"]
    full, first = table.rows[0], table.rows[1]
    assert first.extra["Δ Average"] == f"{first.stats['average'].mean - full.stats['average'].mean:+.1f}" == "-1.0"
    assert first.p_value == pytest.approx(stats.ttest_ind(first.stats["average"].values, full.stats["average"].values,
                                                          equal_var=False).pvalue)
    assert full.marks["average"] == "best" and first.marks["average"] == "second"


def test_tables_and_recipes_read_one_default_teacher_map_without_torch():
    import subprocess
    import sys

    from hrkd_cli.compare import records
    from hrkd_cli.vocabulary import DEFAULT_TEACHER, METHODS

    assert records.DEFAULT_TEACHER is DEFAULT_TEACHER and set(DEFAULT_TEACHER) == set(METHODS)
    code = "import sys, hrkd_cli.vocabulary, hrkd_cli.compare; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_printing_never_truncates_cells(results):
    from rich.console import Console

    from hrkd_cli.tables import print_table

    table = compare_table(collect([results]))
    buf = io.StringIO()
    print_table(Console(file=buf, width=60), rich_table(table))
    text = buf.getvalue()
    for r in table.rows:
        assert r.stats["average"].text() in text
    assert "HRKD-teacher -(HRKD)-> BERT_S" in text and "…" not in text


def test_multi_domain_run_is_the_domain_rel_row_of_table4(tmp_path):
    for s in (1, 2):
        write_record(tmp_path, "hrkd", s, HRKD[s])
        write_record(tmp_path, "hrkd-drop-self-attention", s, [x - 0.01 for x in HRKD[s]], drop=["self-attention"])
        write_record(tmp_path, "multi-domain", s, [x - 0.02 for x in HRKD[s]], method="multi-domain")
    [table] = ablation_tables(collect([tmp_path]))
    assert [r.label for r in table.rows] == ["HRKD", "- Self-attention", "- Domain Rel."]
    assert table.rows[-1].first.method == "multi-domain" and table.rows[-1].extra["Δ Average"] == "-2.0"
    # another student configuration (here: another learning rate) is not the HRKD family's ablation
    other = tmp_path / "other"
    for s in (1, 2):
        write_record(other, "hrkd", s, HRKD[s])
        write_record(other, "hrkd-drop-comp-agg", s, HRKD[s], drop=["comp-agg"])
        md = write_record(other, "multi-domain", s, HRKD[s], method="multi-domain")
        rec = json.loads((md / "run.json").read_text())
        rec["preset"]["distill"]["lr"] = 1.0
        (md / "run.json").write_text(json.dumps(rec))
    [table] = ablation_tables(collect([other]))
    assert [r.label for r in table.rows] == ["HRKD", "- Comp-Agg (alone)"]
