"""The command line: help, completion, and one-line errors (no traceback, non-zero exit) for bad input."""

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tiny import tiny_preset_dict
from hrkd_cli.completions import COMPLETIONS_DIR, SHELLS, script
from hrkd_cli.config import preset_to_toml, validate_preset
from cli_run import run_main

COMMANDS = ("prepare", "teach", "distill", "eval", "inspect-ratios", "presets")



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


def test_presets_show_writes_a_preset_file_that_reads_back(capsys, monkeypatch, tmp_path):
    # amazon-cpu's description is longer than a console line: a wrapped line would be invalid TOML
    code, out, _ = run_main(["presets", "show", "amazon-cpu"], capsys, monkeypatch)
    assert code == 0 and max(len(line) for line in out.splitlines()) > 80
    shown = tomllib.loads(out)
    assert shown["description"].startswith("Amazon Reviews") and "\n" not in shown["description"]
    (tmp_path / "mine.toml").write_text(out)
    code, again, _ = run_main(["presets", "show", str(tmp_path / "mine.toml")], capsys, monkeypatch)
    assert code == 0 and again == out


def test_set_takes_a_bare_string_and_names_a_bad_one(capsys, monkeypatch):
    code, out, _ = run_main(["presets", "show", "demo", "--set", "distill.graph=residual", "--set", "distill.tag=7"],
                            capsys, monkeypatch)
    assert code == 0 and 'graph = "residual"' in out and 'tag = "7"' in out
    code, _, err = run_main(["presets", "show", "demo", "--set", "distill.graph=resdual"], capsys, monkeypatch)
    assert code == 2
    assert_one_line_error(code, err, "--set distill.graph=resdual", "'paper', 'residual' or 'excess'")


@pytest.mark.parametrize("shell", SHELLS)
def test_shipped_completion_scripts_are_current(shell):
    assert (COMPLETIONS_DIR / f"hrkd.{shell}").read_text() == script(shell)  # as installed


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


# ---------------------------------------------------------------- sources, failures and exit codes


def toml_text(raw: dict, prefix: str = "") -> str:
    """A preset dict as TOML, only the fields it names (JSON scalars and lists are TOML values)."""
    lines = [f"{k} = {json.dumps(v)}" for k, v in raw.items() if not isinstance(v, dict)]
    for k, v in raw.items():
        if isinstance(v, dict):
            lines += ["", f"[{prefix}{k}]", toml_text(v, f"{prefix}{k}.")]
    return "\n".join(lines) + "\n"


def tiny_toml(tmp_path, teacher, name="tiny.toml", **sections):
    path = tmp_path / name
    raw = tiny_preset_dict(tmp_path / "run", teacher, **sections)
    validate_preset(raw, "tiny")
    path.write_text(toml_text(raw))
    return path


def tiny_mnli(root, n=20, genres=("fiction", "travel"), test_genres=None):
    """A GLUE-layout MNLI directory: ``n`` training pairs and 6 dev_matched pairs per genre."""
    root.mkdir(parents=True)
    head = "index\tgenre\tsentence1\tsentence2\tgold_label\n"
    labels = ("entailment", "neutral", "contradiction")

    def rows(gs, k):
        return "".join(f"{i}\t{g}\t{g} premise {i} of {root.name}\thypothesis {i}\t{labels[i % 3]}\n" for g in gs for i in range(k))

    (root / "train.tsv").write_text(head + rows(genres, n))
    (root / "dev_matched.tsv").write_text(head + rows(test_genres or genres, 6))
    return root


def test_commands_after_prepare_reuse_the_source_it_was_given(tmp_path, tiny_teacher_dir, capsys, monkeypatch):
    src, other = tiny_mnli(tmp_path / "MNLI"), tiny_mnli(tmp_path / "other", n=30)
    preset = tiny_toml(tmp_path, tiny_teacher_dir, data={"source": "mnli", "path": str(tmp_path / "nowhere")})
    code, _, err = run_main(["prepare", "--preset", str(preset), "--source", str(src)], capsys, monkeypatch)
    assert code == 0, err
    manifest = json.loads((tmp_path / "run" / "data" / "manifest.json").read_text())
    assert manifest["source_path"] == str(src.resolve()) and manifest["source_arg"] == str(src)

    from hrkd_cli.pipeline import ensure_prepared

    seen = []

    def recipe(p, *args, say=print, **kwargs):  # what distill and teach do first: prepare or reuse the data
        seen.append((p.data.path, ensure_prepared(p, say).manifest["source_path"]))
        return []

    monkeypatch.setattr("hrkd_cli.experiments.sweep.distill_seeds", recipe)
    monkeypatch.setattr("hrkd_cli.pipeline.teach", recipe)
    code, _, err = run_main(["distill", "--preset", str(preset)], capsys, monkeypatch)
    assert code == 0, err
    assert seen[-1] == (str(src), str(src.resolve()))
    assert "reusing prepared data" in err and "preparing data" not in err
    # --source on teach (and distill) means what it means on prepare: this source, prepared again.
    code, _, err = run_main(["teach", "--preset", str(preset), "--source", str(other)], capsys, monkeypatch)
    assert code == 0, err
    assert seen[-1] == (str(other), str(other.resolve())) and "preparing data" in err
    code, _, err = run_main(["distill", "--preset", str(preset)], capsys, monkeypatch)
    assert code == 0 and seen[-1][0] == str(other) and "reusing prepared data" in err


@pytest.mark.parametrize("command", ["prepare", "distill"])
def test_a_source_given_to_a_synthetic_preset_is_refused(command, tmp_path, capsys, monkeypatch):
    mine = tmp_path / "mine.csv"
    mine.write_text("text,label,domain\nhello,1,a\n")
    run = ["--set", f'run_dir="{tmp_path / "run"}"']
    code, _, err = run_main([command, "--preset", "demo", "--source", str(mine), *run], capsys, monkeypatch)
    assert_one_line_error(code, err, f"--source {mine}", 'data.source = "synthetic"', "--set data.source='\"custom\"'")
    assert code == 2 and not (tmp_path / "run").exists()
    amazon = tmp_path / "sorted_data_acl" / "books"
    amazon.mkdir(parents=True)
    (amazon / "positive.review").write_text("")
    code, _, err = run_main([command, "--preset", "demo", "--set", f'data.path="{amazon.parent}"', *run], capsys, monkeypatch)
    assert_one_line_error(code, err, "--set data.path", "data.source='\"amazon\"'")


def test_an_unwritable_run_directory_is_one_line_naming_it(tmp_path, tiny_teacher_dir, capsys, monkeypatch):
    (tmp_path / "file").write_text("a file, not a directory")
    preset = tiny_toml(tmp_path, tiny_teacher_dir)
    run_dir = tmp_path / "file" / "run"
    for command in ("prepare", "teach"):
        code, _, err = run_main([command, "--preset", str(preset), "--set", f'run_dir="{run_dir}"'], capsys, monkeypatch)
        assert_one_line_error(code, err, "cannot write", str(run_dir))
        assert code == 1


def test_a_full_disk_is_one_line_naming_the_path(tmp_path, tiny_teacher_dir, capsys, monkeypatch):
    import errno

    import datasets

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", full)
    code, _, err = run_main(["prepare", "--preset", str(tiny_toml(tmp_path, tiny_teacher_dir))], capsys, monkeypatch)
    assert_one_line_error(code, err, f"cannot write {tmp_path / 'run' / 'data'}", "No space left on device")
    assert code == 1


def test_any_other_os_error_is_one_line_naming_its_path(tmp_path, tiny_teacher_dir, capsys, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/somewhere/teacher/best")

    monkeypatch.setattr("hrkd_cli.pipeline.teach", denied)
    code, _, err = run_main(["teach", "--preset", str(tiny_toml(tmp_path, tiny_teacher_dir))], capsys, monkeypatch)
    assert_one_line_error(code, err, "/somewhere/teacher/best: Permission denied")
    assert code == 1


@pytest.mark.parametrize("value", ["0", "-2"])
def test_nproc_below_one_is_refused(value, tmp_path, tiny_teacher_dir, capsys, monkeypatch):
    preset = tiny_toml(tmp_path, tiny_teacher_dir)
    code, _, err = run_main(["teach", "--preset", str(preset), "--nproc", value], capsys, monkeypatch)
    assert_one_line_error(code, err, f"--nproc {value}", "at least 1")
    assert code == 2 and not (tmp_path / "run").exists()


def test_version_comes_from_the_package_metadata(capsys, monkeypatch):
    from importlib.metadata import version

    code, out, _ = run_main(["--version"], capsys, monkeypatch)
    assert code == 0 and out.strip() == f"hrkd {version('hrkd')}"


@pytest.mark.parametrize("argv", [
    ["prepare", "--preset", "nope"],                          # bad preset name
    ["distill", "--set", "distill.lr=-1"],                    # bad preset value
    ["eval", "/no/such/checkpoint"],                          # missing file given by the user
    ["eval", "/no/such/checkpoint", "--split", "train"],      # bad option value
])
def test_usage_errors_exit_2(argv, capsys, monkeypatch):
    code, _, err = run_main(argv, capsys, monkeypatch)
    assert_one_line_error(code, err)
    assert code == 2


def test_click_usage_errors_exit_2_too(capsys, monkeypatch):
    assert run_main(["distill", "--no-such-option"], capsys, monkeypatch)[0] == 2


def test_a_non_finite_loss_is_a_failed_run_exit_1(tmp_path, tiny_teacher_dir, capsys, monkeypatch):
    import torch

    from hrkd_cli.errors import RunError
    from hrkd_cli.runtime import setup
    from hrkd_cli.train.trainer import fit

    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=0.1)
    with pytest.raises(RunError) as caught:
        fit(params=[w], optimizers={"main": opt}, schedulers={}, step_fn=lambda step: (w.sum() * float("nan"), {}),
            eval_fn=lambda: {"average": 0.0}, save_fn=lambda tag, state: None, total_steps=2, eval_every=0,
            log_every=1, max_grad_norm=1.0, runtime=setup("cpu", "fp32", 1), label="t")
    assert caught.value.exit_code == 1 and "loss is nan at step 0" in str(caught.value)
    capsys.readouterr()  # the progress bar of that fit

    def fails(*args, **kwargs):
        raise caught.value

    monkeypatch.setattr("hrkd_cli.pipeline.teach", fails)
    code, _, err = run_main(["teach", "--preset", str(tiny_toml(tmp_path, tiny_teacher_dir))], capsys, monkeypatch)
    assert_one_line_error(code, err, "loss is nan")
    assert code == 1


def test_cli_modules_import_one_way():
    """cli_experiments (and cli_common) never import cli: no cycle; cli imports both."""
    code = ("import sys, hrkd_cli.cli_experiments; assert 'hrkd_cli.cli' not in sys.modules, 'cli_experiments imports cli'; "
            "import hrkd_cli.cli as cli, hrkd_cli.cli_common as common; assert cli.app is common.app")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_datasets_requirement_admits_only_releases_with_datasets_List():
    """store.py uses datasets.List, added in datasets 4.0.0 (3.6.0 has only Sequence/LargeList)."""
    import re

    from packaging.version import Version

    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    lower = re.search(r'"datasets>=([0-9.]+)', text)
    assert lower and Version(lower.group(1)) >= Version("4.0.0"), lower and lower.group(0)


@pytest.mark.parametrize("args, needles", [
    (["--counts", "33"], ["a sample of 33 training examples of domain", "has only 32"]),
    (["--counts", "lots"], ["--counts", "'lots'", "not a whole number"]),
    (["--rates", "0"], ["--rates", "0%", "outside (0, 100]"]),
    (["--rates", "150", "--counts", "8"], ["150%", "outside (0, 100]"]),
])
def test_fewshot_bad_samples_are_one_line_errors_before_any_training(args, needles, tmp_path, tiny_teacher_dir, capsys,
                                                                     monkeypatch):
    preset = tiny_toml(tmp_path, tiny_teacher_dir)  # 32 training examples per domain
    code, _, err = run_main(["fewshot", "--preset", str(preset), *args, "--seeds", "1"], capsys, monkeypatch)
    progress = [line for line in err.splitlines() if line.startswith("hrkd ")]  # "hrkd preparing data into ..."
    assert_one_line_error(code, "\n".join(line for line in err.splitlines() if line not in progress), *needles)
    assert code == 2 and not list((tmp_path / "run").glob("fewshot/*/teacher"))
