"""The command line: help, completion, and one-line errors (no traceback, non-zero exit) for bad input."""

import json
import os
import subprocess
import sys

import pytest

from tiny import tiny_preset_dict
from hrkd_cli import cli
from hrkd_cli.completions import COMPLETIONS_DIR, SHELLS, script
from hrkd_cli.config import preset_to_toml, validate_preset

COMMANDS = ("prepare", "teach", "distill", "eval", "inspect-ratios", "presets")


def run_main(argv, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["hrkd", *argv])
    code = 0
    try:
        cli.main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, *needles):
    assert code != 0
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:") and "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_help_lists_every_command(capsys, monkeypatch):
    code, out, _ = run_main(["--help"], capsys, monkeypatch)
    assert code == 0
    for c in COMMANDS:
        assert c in out


def test_presets_list_and_show(capsys, monkeypatch):
    code, out, _ = run_main(["presets"], capsys, monkeypatch)
    assert code == 0 and "amazon-cpu" in out and "demo" in out
    code, out, _ = run_main(["presets", "show", "demo", "--set", "distill.lr=0.002"], capsys, monkeypatch)
    assert code == 0 and "lr = 0.002" in out and "[distill]" in out


@pytest.mark.parametrize("shell", SHELLS)
def test_shipped_completion_scripts_are_current(shell):
    assert (COMPLETIONS_DIR / f"hrkd.{shell}").read_text() == script(shell)


def test_completion_offers_the_subcommands():
    env = {**os.environ, "_HRKD_COMPLETE": "complete_bash", "COMP_WORDS": "hrkd ", "COMP_CWORD": "1"}
    out = subprocess.run([sys.executable, "-m", "hrkd_cli"], env=env, capture_output=True, text=True).stdout
    for c in COMMANDS:
        assert c in out.split()


def test_unknown_preset(capsys, monkeypatch):
    assert_one_line_error(*run_main(["prepare", "--preset", "nope"], capsys, monkeypatch)[::2], "unknown preset 'nope'")


def test_unknown_and_mistyped_keys(capsys, monkeypatch):
    code, _, err = run_main(["prepare", "--set", "data.max_len=3", "--set", "distill.lr=abc"], capsys, monkeypatch)
    assert_one_line_error(code, err, "data.max_len: unknown key", "distill.lr")


def test_negative_learning_rate_and_too_long_sequences(capsys, monkeypatch):
    code, _, err = run_main(["teach", "--set", "teacher.lr=-1e-5", "--set", "data.max_seq_length=1024"], capsys, monkeypatch)
    assert_one_line_error(code, err, "teacher.lr", "data.max_seq_length")


def test_missing_and_empty_amazon_sources(tmp_path, capsys, monkeypatch):
    run = ["--set", f'run_dir="{tmp_path / "run"}"']
    code, _, err = run_main(["prepare", "--preset", "amazon-cpu", "--source", str(tmp_path / "none"), *run], capsys, monkeypatch)
    assert_one_line_error(code, err, str(tmp_path / "none"))
    (tmp_path / "empty").mkdir()
    code, _, err = run_main(["prepare", "--preset", "amazon-cpu", "--source", str(tmp_path / "empty"), *run], capsys, monkeypatch)
    assert_one_line_error(code, err, "empty")


def test_review_file_without_review_text(tmp_path, capsys, monkeypatch):
    for d in ("books", "dvd"):
        (tmp_path / "src" / d).mkdir(parents=True)
        for f in ("positive.review", "negative.review"):
            (tmp_path / "src" / d / f).write_text("<review>\n<review_text>\nfine &amp; good\n</review_text>\n</review>\n")
    (tmp_path / "src" / "dvd" / "negative.review").write_text("<review><title>no text</title></review>")
    code, _, err = run_main(["prepare", "--preset", "amazon-cpu", "--source", str(tmp_path / "src"),
                             "--set", f'run_dir="{tmp_path / "run"}"'], capsys, monkeypatch)
    assert_one_line_error(code, err, "negative.review", "review_text")


def test_domain_too_small_for_its_split(tmp_path, capsys, monkeypatch):
    (tmp_path / "src" / "books").mkdir(parents=True)
    review = "<review>\n<review_text>\nok\n</review_text>\n</review>\n"
    for f in ("positive.review", "negative.review"):
        (tmp_path / "src" / "books" / f).write_text(review * 10)
    code, _, err = run_main(["prepare", "--preset", "amazon-cpu", "--source", str(tmp_path / "src"),
                             "--set", f'run_dir="{tmp_path / "run"}"'], capsys, monkeypatch)
    assert_one_line_error(code, err, "books", "20")


def test_mnli_without_genre_and_with_unknown_label(tmp_path, capsys, monkeypatch):
    src = tmp_path / "MNLI"
    src.mkdir()
    (src / "train.tsv").write_text("index\tsentence1\tsentence2\tgold_label\n0\ta\tb\tentailment\n")
    (src / "dev_matched.tsv").write_text("index\tsentence1\tsentence2\tgold_label\n0\ta\tb\tentailment\n")
    run = ["--set", f'run_dir="{tmp_path / "run"}"']
    code, _, err = run_main(["prepare", "--preset", "mnli-cpu", "--source", str(src), *run], capsys, monkeypatch)
    assert_one_line_error(code, err, "train.tsv", "genre")
    (src / "train.tsv").write_text("index\tgenre\tsentence1\tsentence2\tgold_label\n0\tfiction\ta\tb\tmaybe\n")
    code, _, err = run_main(["prepare", "--preset", "mnli-cpu", "--source", str(src), *run], capsys, monkeypatch)
    assert_one_line_error(code, err, "maybe")


def test_custom_file_missing_columns(tmp_path, capsys, monkeypatch):
    f = tmp_path / "mine.csv"
    f.write_text("text,domain\nhello,a\n")
    code, _, err = run_main(["prepare", "--set", 'data.source="custom"', "--source", str(f),
                             "--set", f'run_dir="{tmp_path / "run"}"'], capsys, monkeypatch)
    assert_one_line_error(code, err, "mine.csv", "label")


def test_checkpoint_that_is_not_ours(tmp_path, capsys, monkeypatch):
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "pytorch_model.bin").write_bytes(b"not ours")
    code, _, err = run_main(["eval", str(tmp_path / "ck")], capsys, monkeypatch)
    assert_one_line_error(code, err, "not an hrkd checkpoint")


def test_unknown_ablation(capsys, monkeypatch):
    code, _, err = run_main(["distill", "--drop", "graph"], capsys, monkeypatch)
    assert_one_line_error(code, err, "unknown ablation 'graph'")


def test_a_failed_prepare_leaves_the_earlier_data_intact(tmp_path, tiny_teacher_dir, capsys, monkeypatch):
    preset = tmp_path / "tiny.toml"
    preset.write_text(preset_to_toml(validate_preset(tiny_preset_dict(tmp_path / "run", tiny_teacher_dir), "tiny")))
    code, _, err = run_main(["prepare", "--preset", str(preset)], capsys, monkeypatch)
    assert code == 0, err
    manifest = (tmp_path / "run" / "data" / "manifest.json").read_text()
    code, _, err = run_main(["prepare", "--preset", str(preset), "--set", 'data.source="custom"',
                             "--source", str(tmp_path / "missing.csv")], capsys, monkeypatch)
    assert code != 0
    assert (tmp_path / "run" / "data" / "manifest.json").read_text() == manifest
    assert json.loads(manifest)["counts"]["books"]["train"]["total"] == 32


def test_nproc_larger_than_the_data_allows(tmp_path, tiny_teacher_dir):
    preset = tmp_path / "tiny.toml"
    preset.write_text(preset_to_toml(validate_preset(tiny_preset_dict(tmp_path / "run", tiny_teacher_dir), "tiny")))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "hrkd_cli", "teach", "--preset", str(preset), "--nproc", "3"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "not divisible by --nproc 3" in proc.stderr and "Traceback" not in proc.stderr


def test_paper_presets_fail_at_model_loading_without_the_hub(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = run_main(["prepare", "--preset", "amazon", "--set", 'data.source="synthetic"',
                             "--set", f'run_dir="{tmp_path / "run"}"'], capsys, monkeypatch)
    assert_one_line_error(code, err, "bert-base-uncased", "could not be reached")
