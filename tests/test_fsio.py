"""Output paths: every file or folder a command is told to write is checked before the work starts."""

import os

import pytest

from hrkd_cli.errors import HrkdError
from hrkd_cli.fsio import check_outputs
from cli_run import run_main


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "a-file"
    path.write_text("already here\n")
    return path


def test_writable_paths_pass_and_nothing_is_created(tmp_path):
    check_outputs(("--json", tmp_path / "x.json"), ("--output", tmp_path / "new" / "deeper" / "t.md"),
                  ("--output", None), ("--output", "-"))
    check_outputs(("--output", tmp_path / "export"), ("--output", tmp_path), directory=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("make, directory, needles", [
    (lambda tmp, f: f / "x.json", False, ["a-file is not a directory"]),            # the parent is a file
    (lambda tmp, f: f / "sub" / "x.json", False, ["a-file is not a directory"]),    # an ancestor is a file
    (lambda tmp, f: tmp, False, ["is a directory; give a file path"]),
    (lambda tmp, f: f, True, ["is a file, not a directory"]),
])
def test_unwritable_paths_are_one_line_errors_naming_option_and_path(tmp_path, a_file, make, directory, needles):
    path = make(tmp_path, a_file)
    with pytest.raises(HrkdError) as e:
        check_outputs(("--json", path), directory=directory)
    msg = str(e.value)
    assert e.value.exit_code == 2 and msg.startswith(f"--json {path}:") and "\n" not in msg
    for n in needles:
        assert n in msg
    assert a_file.read_text() == "already here\n"  # nothing already written is touched


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only directory")
def test_a_read_only_directory_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(HrkdError, match="is not writable"):
            check_outputs(("-o", locked / "x.md"))
    finally:
        locked.chmod(0o700)


# Every command with an output option, with an input that would be the first error if the output were not checked
# first (a missing checkpoint, run or preset): the error must name the output path, so nothing ran before it.
NO = "/no/such/run"


def commands(bad, a_file, tmp_path):
    (tmp_path / "in.txt").write_text("some text\n")
    return [
        ["eval", NO, "--json", bad],
        ["eval", NO, "--soft-labels", "--json", bad],
        ["eval", "--compare", NO, "--format", "json", "-o", bad],
        ["eval", "--compare", NO, "--json", bad],
        ["bench", "distill", "--preset", NO + ".toml", "--json", bad],
        ["bench", "students", "--preset", NO + ".toml", "--json", bad],
        ["inspect-ratios", NO, "--sample", "--plot", bad.with_suffix(".png")],
        ["export", NO, "-o", a_file],  # a folder is written there, and a file is in the way
        ["predict", NO, "--domain", "books", "--input", str(tmp_path / "in.txt"), "-o", bad],
        ["ablate", "--preset", NO + ".toml", "--drop", "comp-agg", "--format", "markdown", "-o", bad.with_suffix(".md")],
        ["fewshot", "--preset", NO + ".toml", "--rates", "50", "--plot", bad.with_suffix(".png")],
        ["fewshot", "--preset", NO + ".toml", "--rates", "50", "--format", "json", "-o", bad],
        ["report", str(tmp_path), "-o", bad.with_suffix(".md")],
    ]


@pytest.mark.parametrize("index", range(13))
def test_every_output_option_is_checked_before_the_work(index, tmp_path, a_file, capsys, monkeypatch):
    argv = [str(a) for a in commands(a_file / "x.json", a_file, tmp_path)[index]]
    code, _, err = run_main(argv, capsys, monkeypatch)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err
    assert str(a_file) in lines[0] and NO not in lines[0], lines[0]
    assert a_file.read_text() == "already here\n"


def test_eval_with_an_unwritable_json_path_evaluates_nothing(tmp_path, a_file, capsys, monkeypatch):
    import hrkd_cli.recipes.evaluate as evaluate

    monkeypatch.setattr(evaluate, "evaluate", lambda *a, **k: pytest.fail("evaluated before checking --json"))
    code, _, err = run_main(["eval", str(tmp_path), "--json", str(a_file / "x.json")], capsys, monkeypatch)
    assert code == 2 and f"--json {a_file / 'x.json'}: " in err and "not a directory" in err
