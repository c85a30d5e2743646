"""Tables 2/3 and 4 with the paired columns, on fabricated run directories."""

from __future__ import annotations

import itertools
import json

import pytest
from compare_fakes import pair, pattern, student
from scipy import stats

from hrkd_cli.compare.ablation import ablation_tables
from hrkd_cli.compare.records import collect
from hrkd_cli.compare.tables import compare_table, require_partners
from hrkd_cli.errors import HrkdError

HRKD_ROW = "HRKD-teacher -(HRKD)-> BERT_S"
TINY_ROW = "HRKD-teacher -(TinyBERT-KD)-> BERT_S"


def row(table, label):
    return next(r for r in table.rows if r.label == label)


@pytest.fixture
def paired_runs(tmp_path):
    """Two seeds on the same 10 books and 6 dvd test examples (gold all 1); the 2x2 counts are HRKD's and
    TinyBERT-KD's (both right, only HRKD, only TinyBERT-KD, neither) in the order of the examples."""
    pair(tmp_path, 1, (3, 3, 1, 3), (2, 2, 0, 2))
    pair(tmp_path, 2, (4, 2, 1, 3), (3, 1, 0, 2))
    return tmp_path


def brute_force(d):
    nz = [x for x in d if x]
    flips = [abs(sum(s * x for s, x in zip(signs, nz))) >= abs(sum(d)) for signs in itertools.product((1, -1), repeat=len(nz))]
    return sum(flips) / len(flips)


def test_paired_t_and_the_example_test(paired_runs):
    table = compare_table(collect([paired_runs]))
    hrkd, tiny = row(table, HRKD_ROW), row(table, TINY_ROW)
    pr = hrkd.paired
    assert pr.seeds == [1, 2] and pr.example_seeds == [1, 2] and pr.skipped == []
    # books, example by example over the two seeds: seed 1 = 3 both, 3 only HRKD, 1 only TinyBERT-KD, 3 neither;
    # seed 2 = 4, 2, 1, 3. d (HRKD - TinyBERT-KD right counts) per example:
    books = [0, 0, 0, 1 + 0, 1 + 1, 1 + 1, -1 - 1, 0, 0, 0]
    dvd = [0, 0, 1 + 0, 1 + 1, 0, 0]
    d = books + dvd
    assert pr.examples == 16 and pr.differing == sum(1 for x in d if x) == 6
    assert pr.example_p == pytest.approx(brute_force(d))
    assert pr.interval[0] == pytest.approx(100 * sum(d) / 2 / 16)
    a = [r.score("test", "average") for r in hrkd.runs]
    b = [r.score("test", "average") for r in tiny.runs]
    assert pr.t_p == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert pr.mean_diff == pytest.approx(sum(a) / 2 - sum(b) / 2)
    cells = table.cells(hrkd)
    assert cells[-2] == f"{pr.t_p:.3f} (n=2)" and cells[-1].startswith(f"{pr.example_p:.3f} (k=6; +") and cells[-4] == "2"
    assert table.cells(tiny)[-3:] == ["ref", "ref", "ref"]
    assert "Seeds (n)" in table.header() and "example test p (k; diff [95% CI])" in table.header()
    legend = "\n".join(table.notes)
    assert "Welch" in legend and "ttest_rel" in legend and "sign-flip" in legend and "two-sided" in legend


def test_runs_from_other_teacher_weights_are_not_paired(paired_runs):
    for seed, sha in ((1, "a" * 64), (2, "b" * 64)):
        for method in ("hrkd", "multi-domain"):
            f = paired_runs / "student" / method / f"seed-{seed}" / "run.json"
            rec = json.loads(f.read_text())
            rec["teacher_sha256"] = sha if (method, seed) != ("hrkd", 2) else "c" * 64
            f.write_text(json.dumps(rec))
    table = compare_table(collect([paired_runs]))
    pr = row(table, HRKD_ROW).paired
    assert pr.seeds == [1] and pr.example_seeds == [1]
    assert f"not paired for {HRKD_ROW}: seed 2: teacher weights differ (sha256 cccccccccccc vs bbbbbbbbbbbb)" in table.notes


def test_a_row_without_partner_seeds_has_no_paired_p(tmp_path):
    pair(tmp_path / "x", 1, (3, 1, 1, 1), (2, 1, 0, 1))
    pair(tmp_path / "x", 2, (4, 0, 1, 1), (2, 1, 0, 1))  # another accuracy: Welch is defined (not two constant rows)
    # move HRKD's seeds to 4 and 5: no seed in common with TinyBERT-KD's 1 and 2
    for old, new in ((2, 5), (1, 4)):
        src = tmp_path / "x" / "student" / "hrkd" / f"seed-{old}"
        rec = json.loads((src / "run.json").read_text())
        rec["seed"] = new
        (src / "run.json").write_text(json.dumps(rec))
        src.rename(src.with_name(f"seed-{new}"))
    table = compare_table(collect([tmp_path / "x"]))
    hrkd = row(table, HRKD_ROW)
    assert hrkd.paired.seeds == [] and hrkd.paired.t_p is None and hrkd.paired.example_p is None
    assert table.cells(hrkd)[-2:] == ["", ""]
    assert hrkd.p_value is not None  # Welch needs no pairs
    assert f"no paired p for {HRKD_ROW}: no seeds in common with {TINY_ROW} (seeds 4, 5 vs 1, 2)" in table.notes
    with pytest.raises(HrkdError) as err:
        require_partners([table])
    assert HRKD_ROW in str(err.value) and "\n" not in str(err.value)


def test_old_runs_without_predictions_leave_the_example_test_blank(tmp_path):
    pair(tmp_path, 1, (3, 1, 1, 1), (2, 1, 0, 1), with_predictions=False)
    pair(tmp_path, 2, (3, 2, 0, 1), (2, 1, 1, 1))
    table = compare_table(collect([tmp_path]))
    hrkd = row(table, HRKD_ROW)
    assert hrkd.paired.seeds == [1, 2] and hrkd.paired.example_seeds == [2]
    assert hrkd.paired.differing == 4  # one seed: the discordant examples, 3 for HRKD and 1 against
    assert hrkd.paired.example_p == pytest.approx(stats.binomtest(3, 4, 0.5).pvalue)  # McNemar with one seed
    assert any(n.startswith(f"example test for {HRKD_ROW}: seeds 2; seed 1: no predictions.json") for n in table.notes)
    # none at all: blank cell, paired t still there
    for f in tmp_path.glob("student/*/seed-2/predictions.json"):
        f.unlink()
    table = compare_table(collect([tmp_path]))
    hrkd = row(table, HRKD_ROW)
    assert hrkd.paired.example_p is None and table.cells(hrkd)[-1] == "" and "(n=2)" in table.cells(hrkd)[-2]


def test_different_test_hash_is_named_in_the_notes(tmp_path):
    pair(tmp_path, 1, (3, 1, 1, 1), (2, 1, 0, 1))
    a, b, gold = pattern(3, 1, 1, 1)
    a2, b2, gold2 = pattern(2, 1, 0, 1)
    student(tmp_path, "multi-domain", 1, {"books": b, "dvd": b2}, {"books": gold, "dvd": gold2},
            test_hashes={"books": "1" * 64, "dvd": "f" * 64})
    table = compare_table(collect([tmp_path]))
    hrkd = row(table, HRKD_ROW)
    assert table.cells(hrkd)[-1] == ""
    assert f"example test for {HRKD_ROW}: blank: seed 1: test data hash differs from the reference's, not paired" in table.notes


def test_dev_split_pairs_seeds_but_not_predictions(paired_runs):
    table = compare_table(collect([paired_runs]), split="dev")
    hrkd = row(table, HRKD_ROW)
    assert hrkd.paired.t_p is not None and hrkd.paired.example_p is None
    assert any("test split only" in n for n in table.notes)


def test_ablation_rows_are_paired_with_full_hrkd(tmp_path):
    # multi-domain TinyBERT-KD stands for "- Domain Rel." of an HRKD family with the same settings
    pair(tmp_path, 1, (3, 3, 1, 3), (2, 2, 0, 2))
    pair(tmp_path, 2, (4, 2, 1, 3), (3, 1, 0, 2))
    [table] = ablation_tables(collect([tmp_path]))
    full, domain_rel = table.rows
    assert full.label == "HRKD" and table.cells(full)[-3:] == ["ref", "ref", "ref"]
    # the reverse comparison of test_paired_t_and_the_example_test: same k, same two-sided p, opposite sign
    reverse = compare_table(collect([tmp_path]))
    forward = row(reverse, HRKD_ROW).paired
    assert domain_rel.paired.differing == forward.differing == 6
    assert domain_rel.paired.example_p == pytest.approx(forward.example_p)
    assert domain_rel.paired.interval[0] == pytest.approx(-forward.interval[0])


def as_transfer_run(run_dir, tag: str, row_suffix: str, data: dict, ratio: float | None = None):
    """Copy a fabricated student run to student/<tag>/ as if it had distilled on transfer data."""
    for f in sorted(run_dir.glob("seed-*/run.json")):
        rec = json.loads(f.read_text())
        rec["row"] += row_suffix
        rec["preset_hash"] += "+transfer"
        rec["preset"]["data"].update(data)
        if ratio is not None:
            rec["preset"]["distill"]["transfer_ratio"] = ratio
        out = run_dir.parent / tag / f.parent.name
        out.mkdir(parents=True)
        (out / "run.json").write_text(json.dumps(rec))
        (out / "predictions.json").write_text((f.parent / "predictions.json").read_text())


def test_a_transfer_row_is_paired_with_its_configuration_without_transfer(paired_runs):
    # HRKD-on-transfer-data rows: the same configuration as HRKD plus transfer settings. Its reference is the HRKD
    # row (identical predictions here: a difference of exactly 0), not TinyBERT-KD.
    students = paired_runs / "student"
    as_transfer_run(students / "hrkd", "hrkd+transfer-unlabeled", " +transfer[unlabeled]", {"unlabeled": "u.jsonl"})
    as_transfer_run(students / "multi-domain", "multi-domain+transfer-windows4-ratio2", " +transfer[windows4, ratio2]",
                    {"windows": 4}, ratio=2.0)
    table = compare_table(collect([paired_runs]))
    hrkd_t = row(table, HRKD_ROW + " +transfer[unlabeled]")
    assert hrkd_t.reference == HRKD_ROW
    assert hrkd_t.paired.mean_diff == pytest.approx(0.0) and hrkd_t.paired.differing == 0
    tiny_t = row(table, TINY_ROW + " +transfer[windows4, ratio2]")
    assert tiny_t.reference == TINY_ROW and tiny_t.paired.differing == 0
    # rows without transfer data keep TinyBERT-KD as their reference
    assert row(table, HRKD_ROW).reference == TINY_ROW
    assert any("the same configuration without it" in n for n in table.notes)


def test_a_transfer_row_distilled_in_another_run_directory_pairs_by_teacher_weights(paired_runs):
    # A transfer configuration run in a run directory of its own, from a copy of the same teacher: the teacher's
    # path differs, its weights do not, so it is still the same teacher.
    students = paired_runs / "student"
    as_transfer_run(students / "hrkd", "hrkd+transfer-unlabeled", " +transfer[unlabeled]", {"unlabeled": "u.jsonl"})
    for tag, teacher in (("hrkd", "runs/a/teacher/multi-domain"), ("hrkd+transfer-unlabeled", "runs/b/teacher/multi-domain")):
        for f in (students / tag).glob("seed-*/run.json"):
            rec = json.loads(f.read_text())
            rec["teacher"], rec["teacher_sha256"] = teacher, "a" * 64
            f.write_text(json.dumps(rec))
    hrkd_t = row(compare_table(collect([paired_runs])), HRKD_ROW + " +transfer[unlabeled]")
    assert hrkd_t.reference == HRKD_ROW and hrkd_t.paired.seeds == [1, 2]
    # another teacher's weights under the same path are another teacher
    for f in (students / "hrkd+transfer-unlabeled").glob("seed-*/run.json"):
        rec = json.loads(f.read_text())
        rec["teacher"], rec["teacher_sha256"] = "runs/a/teacher/multi-domain", "b" * 64
        f.write_text(json.dumps(rec))
    assert row(compare_table(collect([paired_runs])), HRKD_ROW + " +transfer[unlabeled]").reference != HRKD_ROW


def test_a_transfer_row_pairs_with_a_record_written_before_a_setting_existed(paired_runs):
    # the plain row's records predate data.sample_counts; the transfer row's name it at its default
    students = paired_runs / "student"
    as_transfer_run(students / "hrkd", "hrkd+transfer-unlabeled", " +transfer[unlabeled]",
                    {"unlabeled": "u.jsonl", "sample_counts": {}})
    for f in (students / "hrkd").glob("seed-*/run.json"):
        rec = json.loads(f.read_text())
        rec["preset"]["data"].pop("sample_counts", None)
        f.write_text(json.dumps(rec))
    assert row(compare_table(collect([paired_runs])), HRKD_ROW + " +transfer[unlabeled]").reference == HRKD_ROW


def test_a_transfer_row_without_its_plain_configuration_falls_back_to_tinybert(paired_runs):
    students = paired_runs / "student"
    as_transfer_run(students / "hrkd", "hrkd+transfer-unlabeled", " +transfer[unlabeled]", {"unlabeled": "u.jsonl"})
    for f in (students / "hrkd").glob("seed-*/run.json"):  # the plain HRKD row now has another setting
        rec = json.loads(f.read_text())
        rec["preset"]["distill"]["epochs"] = 9.0
        rec["preset_hash"] += "-9"
        f.write_text(json.dumps(rec))
    table = compare_table(collect([paired_runs]))
    assert row(table, HRKD_ROW + " +transfer[unlabeled]").reference == TINY_ROW


def test_against_tests_every_row_against_the_chosen_row_whatever_its_teacher(paired_runs):
    # Give the two rows different teacher weights: the default pairing refuses them, --against pairs them.
    for method, sha in (("hrkd", "a" * 64), ("multi-domain", "b" * 64)):
        for f in (paired_runs / "student" / method).glob("seed-*/run.json"):
            rec = json.loads(f.read_text())
            rec["teacher_sha256"] = sha
            f.write_text(json.dumps(rec))
    # by default a student is tested only against rows of the same teacher weights: none here
    default = row(compare_table(collect([paired_runs])), HRKD_ROW)
    assert default.paired is None and default.p_note == "n/a"
    table = compare_table(collect([paired_runs]), against="multi-domain")
    hrkd = row(table, HRKD_ROW)
    assert hrkd.reference == TINY_ROW and hrkd.paired.seeds == [1, 2] and hrkd.paired.differing == 6
    assert row(table, TINY_ROW).p_note == "ref"
    assert any("whatever their teachers" in n for n in table.notes)
    assert "p vs multi-domain (Welch)" in table.header()
    # the directory works as well as the tag; the other way round, TinyBERT-KD is tested against HRKD
    flipped = compare_table(collect([paired_runs]), against=str(paired_runs / "student" / "hrkd"))
    assert row(flipped, TINY_ROW).paired.mean_diff == pytest.approx(-hrkd.paired.mean_diff)


def test_against_an_unknown_row_names_the_tags(paired_runs):
    with pytest.raises(HrkdError, match=r"--against meta-kd: no student row .*tags: hrkd, multi-domain"):
        compare_table(collect([paired_runs]), against="meta-kd")
