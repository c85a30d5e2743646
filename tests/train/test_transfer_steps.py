"""Students on a transfer set (hrkd_cli/train/transfer_steps.py): the step mix, labels never read, runs named apart,
teachers untouched, every method and the general stage."""

from __future__ import annotations

import json
import random
import shutil

import datasets
import pytest

from tiny import tiny_preset_dict
from cli_run import run_main
from hrkd_cli.batches import Split, make_batch, with_transfer
from hrkd_cli.data.corpus import NO_LABEL
from hrkd_cli.config import preset_to_toml, validate_preset
from hrkd_cli.data.store import load_prepared
from hrkd_cli.errors import HrkdError
from hrkd_cli.train import transfer_steps as T
from hrkd_cli.runs import data_dir
from hrkd_cli.pipeline import distill
from hrkd_cli.pipeline import ensure_prepared
from hrkd_cli.sampling import StepSchedule

quiet = {"say": lambda m: None}
DOMAINS = ("books", "films", "gadgets")


def unlabeled_file(path, per_domain=5):
    rows = [{"text": f"{d} text number {i} about the novel and the kettle and the phone", "domain": d}
            for i in range(per_domain) for d in DOMAINS]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def make(tmp_path_factory, tiny_teacher_dir):
    """Presets sharing one run directory (teachers are reused), with or without a transfer set."""
    root = tmp_path_factory.mktemp("transfer")
    source = unlabeled_file(root / "unlabeled.jsonl")

    def build(with_transfer=True, run="run", **sections):
        data = {"unlabeled": str(source), "windows": 2} if with_transfer else {}
        sections["data"] = {**data, **sections.get("data", {})}
        return validate_preset(tiny_preset_dict(root / run, tiny_teacher_dir, **sections), "tiny")

    return build


def logged(out, name):
    """Every logged training step of a student run: the loss terms of each (domain) member's last/ log."""
    keys = ("step", "loss", "embd", "attn", "hidn", "pred")
    return {str(f.relative_to(out)): [{k: e[k] for k in keys if k in e} for e in json.loads(f.read_text())]
            for f in sorted(out.rglob(f"last/{name}"))}


def shuffle_transfer_labels(data_path, seed):
    """Give every stored transfer row a random (meaningless) label, in place."""
    rng = random.Random(seed)
    data = load_prepared(data_path)
    for d in data.domains:
        where = data_path / d / "transfer"
        ds = datasets.load_from_disk(str(where))
        cols = ds.with_format(None)[:]
        cols["label"] = [rng.randrange(2) for _ in cols["label"]]
        fresh = data_path / d / "transfer.new"
        datasets.Dataset.from_dict(cols, features=ds.features).save_to_disk(str(fresh))
        del ds
        shutil.rmtree(where)
        fresh.rename(where)
    return sum(1 for d in data.domains for _ in range(len(datasets.load_from_disk(str(data_path / d / "transfer")))))


def test_mixed_schedule_keeps_the_labelled_rows_and_adds_equal_transfer_rows():
    plain = StepSchedule([10, 7, 12], 4, seed=3, epochs=2)
    mixed = T.MixedSchedule(StepSchedule([10, 7, 12], 4, seed=3, epochs=2), [5, 9, 3], 2, [10, 7, 12])
    assert (mixed.total_steps, mixed.steps_per_epoch) == (plain.total_steps, plain.steps_per_epoch)
    seen = [set(), set(), set()]
    for step in range(plain.total_steps):
        rows, labelled = mixed.global_indices(step), plain.global_indices(step)
        for d, (r, lab, n) in enumerate(zip(rows, labelled, (10, 7, 12))):
            assert r[:4] == lab and len(r) == 6  # the labelled rows of a run without transfer, then 2 transfer rows
            assert all(n <= x < n + (5, 9, 3)[d] for x in r[4:])
            seen[d] |= set(r[4:])
    assert [len(s) for s in seen] == [5, 9, 3]  # the transfer rows cycle through each domain's transfer set
    assert mixed.global_indices(3) == T.MixedSchedule(plain, [5, 9, 3], 2, [10, 7, 12]).global_indices(3)


def test_transfer_rows_carry_no_label_into_a_batch():
    train = Split("books", [[101, 5, 102], [101, 6, 102]], [[0] * 3] * 2, [0, 1], ["a", "b"], ["", ""])
    extra = Split("books", [[101, 7, 8, 102]], [[0] * 4], [1], ["c"], [""])
    both = with_transfer(train, extra)
    assert both.label == [0, 1, NO_LABEL] and both.first_transfer == 2 and len(both) == 3
    batch = make_batch([(0, both, [1, 2, 0])])
    assert batch.labels.tolist() == [1, NO_LABEL, 0] and batch.transfer.tolist() == [False, True, False]
    assert make_batch([(0, train, [0, 1])]).transfer is None


@pytest.mark.parametrize("method,log", [("hrkd", "ratio_log.json"), ("meta-kd", "train_log.json")])
def test_shuffling_the_labels_of_transfer_rows_changes_no_logged_loss(make, cpu_runtime, method, log):
    p = make(run=f"shuffle-{method}", distill={"method": method})
    out = distill(p, cpu_runtime, **quiet)
    before = logged(out, log)
    assert before and all(before.values())
    assert shuffle_transfer_labels(data_dir(p), seed=1) > 0
    assert set(load_prepared(data_dir(p)).dataset("books", "transfer")["label"]) == {0, 1}
    again = distill(p, cpu_runtime, **quiet)  # same data (reused), same teacher, same seed
    assert again == out and logged(out, log) == before


def test_a_student_with_transfer_data_differs_and_is_named_and_recorded_apart(make, cpu_runtime, capsys):
    plain = make(with_transfer=False)
    without = distill(plain, cpu_runtime, **quiet)
    said = []
    p = make()
    out = distill(p, cpu_runtime, say=said.append)
    assert any(line.startswith("reusing teacher") for line in said)  # teachers never see transfer examples
    assert out != without and out.parent.name == "hrkd+transfer-unlabeled-windows2"
    record, base = (json.loads((d / "run.json").read_text()) for d in (out, without))
    assert record["row"] == base["row"] + " +transfer[unlabeled, windows2]"
    data = load_prepared(data_dir(p))
    assert record["transfer"]["hash"] == data.transfer["hash"] and record["transfer"]["rows_per_step"] == 4
    assert record["transfer"]["counts"]["books"]["unlabeled"] == 5 and base["transfer"] is None
    assert record["data_hash"] == base["data_hash"] == data.hash  # the same labelled data and test split
    a, b = logged(out, "ratio_log.json"), logged(without, "ratio_log.json")
    assert [e["step"] for e in a["last/ratio_log.json"]] == [e["step"] for e in b["last/ratio_log.json"]]
    assert a != b  # same seed, same labelled rows: the transfer rows make the difference
    other = unlabeled_file(out.parents[3] / "other.jsonl", per_domain=3)
    with pytest.raises(HrkdError, match="holds a run of another configuration"):  # another file: tell the runs apart
        distill(make(data={"unlabeled": str(other)}), cpu_runtime, **quiet)


@pytest.mark.parametrize("method", ["tinybert", "multi-domain", "mtn-kd"])
def test_every_method_distils_on_the_transfer_set(make, cpu_runtime, method):
    out = distill(make(distill={"method": method}), cpu_runtime, **quiet)
    record = json.loads((out / "run.json").read_text())
    assert record["row"].endswith(" +transfer[unlabeled, windows2]") and record["transfer"]["rows_per_step"] == 4
    assert 0 <= record["test"]["average"] <= 1


def test_the_general_stage_reads_the_training_text_and_the_transfer_set(make, cpu_runtime, monkeypatch):
    narrow = {"init": "random", "num_layers": 2, "hidden_size": 16, "num_heads": 4, "intermediate_size": 64, "general_epochs": 1}
    seen = []

    def stage(preset, runtime, student, projections, teachers, train, *args, **kwargs):
        seen.append([(len(x), x.first_transfer) for x in train])
        return {}

    monkeypatch.setattr("hrkd_cli.train.students.general_distillation", stage)
    p = make(student=narrow, distill={"transfer_ratio": 0}, run="general")
    out = distill(p, cpu_runtime, **quiet)
    data = load_prepared(data_dir(p))
    counts = data.transfer["counts"]
    assert seen == [[(32 + counts[d]["total"], 32) for d in data.domains]]
    assert out.parent.name == "hrkd+transfer-unlabeled-windows2-ratio0"
    assert json.loads((out / "run.json").read_text())["transfer"]["general_stage"] is True


def test_transfer_data_the_student_would_not_see_or_cannot_share_is_refused(make, cpu_runtime, tmp_path, tiny_teacher_dir):
    refused = make(distill={"transfer_ratio": 0}, run="refused")
    with pytest.raises(HrkdError, match="distill.transfer_ratio = 0 and no general stage"):
        distill(refused, cpu_runtime, **quiet)
    only_books = tmp_path / "books.txt"
    only_books.write_text("a novel\nanother novel\n")
    p = validate_preset(tiny_preset_dict(tmp_path / "run", tiny_teacher_dir,
                                         data={"unlabeled": str(only_books), "unlabeled_domain": "books"}), "tiny")
    with pytest.raises(HrkdError, match="domain 'films' has no transfer examples, but every step takes 4 from every domain"):
        distill(p, cpu_runtime, **quiet)
    assert not (tmp_path / "run" / "teacher").exists()  # refused before a teacher trained


# ---------------------------------------------------------------- the command line


def preset_file(tmp_path, teacher, **sections):
    path = tmp_path / "tiny.toml"
    path.write_text(preset_to_toml(validate_preset(tiny_preset_dict(tmp_path / "run", teacher, **sections), "tiny")))
    return path


def test_prepare_prints_counts_and_remembers_the_unlabelled_file(tmp_path, tiny_teacher_dir, capsys, monkeypatch):
    source = unlabeled_file(tmp_path / "u.jsonl")
    preset = preset_file(tmp_path, tiny_teacher_dir)
    code, out, err = run_main(["prepare", "--preset", str(preset), "--set", f'data.unlabeled="{source}"',
                               "--set", "data.augment_copies=2", "--show-augmented", "3"], capsys, monkeypatch)
    assert code == 0, err
    assert "#Unlabelled" in out and "#Augmented" in out and "dropped 0 equal to a dev (0) or test (0) text" in err
    assert len([line for line in out.splitlines() if ", train row " in line and "->" in line]) == 3
    # a later command without data.unlabeled reads the same file again (but not the augmentation settings)
    from hrkd_cli.cli_common import _load

    p = _load(str(preset), [])
    assert p.data.unlabeled == str(source) and "unlabelled text from" in capsys.readouterr().err
    assert ensure_prepared(p, lambda m: None).transfer["counts"]["books"] == {"unlabeled": 5, "window": 0, "augmented": 0,
                                                                             "total": 5}
    assert _load(str(preset), ['data.unlabeled=""']).data.unlabeled == ""  # left out on request
    # a changed file is noticed: the data is prepared again
    unlabeled_file(source, per_domain=6)
    said = []
    assert ensure_prepared(_load(str(preset), []), said.append).transfer["counts"]["books"]["unlabeled"] == 6
    assert any("changed" in line for line in said)


@pytest.mark.parametrize("content,needle", [
    (None, "no such file"),
    (b"\x00\x01\x02", "binary file"),
    (b'{"text": "x", "domain": "camping"}\n', "u.jsonl:1: domain 'camping' is not a domain of the labelled data"),
    (b'{"review": "x", "domain": "books"}\n', "no 'text' column"),
])
def test_bad_unlabelled_files_exit_2_with_one_line_and_keep_the_prepared_data(tmp_path, tiny_teacher_dir, capsys,
                                                                               monkeypatch, content, needle):
    preset = preset_file(tmp_path, tiny_teacher_dir)
    assert run_main(["prepare", "--preset", str(preset)], capsys, monkeypatch)[0] == 0
    manifest = (tmp_path / "run" / "data" / "manifest.json").read_text()
    bad = tmp_path / "u.jsonl"
    if content is not None:
        bad.write_bytes(content)
    code, _, err = run_main(["prepare", "--preset", str(preset), "--set", f'data.unlabeled="{bad}"'], capsys, monkeypatch)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], err
    assert (tmp_path / "run" / "data" / "manifest.json").read_text() == manifest


def test_show_augmented_needs_augmentation(tmp_path, tiny_teacher_dir, capsys, monkeypatch):
    code, _, err = run_main(["prepare", "--preset", str(preset_file(tmp_path, tiny_teacher_dir)), "--show-augmented", "2"],
                            capsys, monkeypatch)
    assert code == 2 and "--show-augmented needs augmented texts: set data.augment_copies" in err
    assert not (tmp_path / "run").exists()
