"""The experiment commands through the typer app: ablate, fewshot, report, and `eval --compare` (compare_command)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import hrkd_cli.cli_experiments as cx  # registers ablate, fewshot, report on the app
from hrkd_cli.cli import app
from hrkd_cli.errors import HrkdError

runner = CliRunner()
DATA = "c" * 64


def student(root: Path, tag: str, method: str, seed: int, avg: float, data_hash: str = DATA) -> Path:
    out = root / "student" / tag / f"seed-{seed}"
    out.mkdir(parents=True)
    names = {"hrkd": "HRKD", "multi-domain": "TinyBERT-KD"}
    test = {"books": avg, "dvd": avg - 0.02, "average": avg - 0.01}
    rec = {"role": "student", "method": method, "seed": seed, "data_hash": data_hash, "preset_hash": tag,
           "row": f"HRKD-teacher -({names[method]})-> BERT_S", "teacher": str(root / "teacher" / "multi-domain"),
           "preset": {"distill": {"method": method, "teacher_kind": "auto", "drop": []}, "teacher": {}},
           "test": test, "dev": test, "wall_time_s": 1}
    (out / "run.json").write_text(json.dumps(rec))
    return out


@pytest.fixture
def fake_results(tmp_path) -> Path:
    root = tmp_path / "results"
    for seed, (a, b) in enumerate([(0.80, 0.75), (0.82, 0.76), (0.81, 0.78)], 1):
        student(root, "hrkd", "hrkd", seed, a)
        student(root, "multi-domain", "multi-domain", seed, b)
    return root


def tiny_toml(tiny_preset, path: Path, **sections) -> Path:
    from hrkd_cli.config import preset_to_toml

    path.write_text(preset_to_toml(tiny_preset(**sections)))
    return path


def test_commands_are_registered():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("ablate", "fewshot", "report"):
        assert name in result.output


@pytest.mark.parametrize("args, message", [
    (["ablate", "--drop", "attention"], "unknown ablation 'attention'"),
    (["ablate", "--progressive", "--split", "train"], "--split"),
    (["ablate", "--progressive", "--format", "xlsx"], "--format"),
    (["fewshot", "--rates", "0,5"], r"outside (0, 100]"),
    (["fewshot", "--rates", "150"], r"outside (0, 100]"),
    (["fewshot", "--rates", "five"], "not a number"),
    (["fewshot", "--rates", "5", "--format", "csv"], "markdown or json"),
    (["fewshot", "--rates", "5", "--plot", "figure.pdf"], "PNG"),
    (["fewshot", "--rates", "5", "--seeds", "0"], "at least 1"),
    (["fewshot", "--rates", "5", "--methods", "hrkd,mtn-kd"], "'mtn-kd' is not one of tinybert, hrkd, meta-kd"),
    (["fewshot", "--rates", "5", "--methods", ""], "'' is not one of"),
])
def test_bad_input_is_refused_before_any_work(args, message, tiny_preset, tmp_path):
    preset = tiny_toml(tiny_preset, tmp_path / "tiny.toml")
    result = runner.invoke(app, [*args, "--preset", str(preset)])
    assert isinstance(result.exception, HrkdError), result.output
    assert message in str(result.exception)
    assert not (tmp_path / "run").exists()  # nothing was prepared or trained


def test_compare_command_prints_and_writes_each_format(fake_results, tmp_path, capsys):
    from rich.console import Console

    console = Console(record=True, width=200)
    table = cx.compare_command([fake_results], "markdown", tmp_path / "t.md", json_path=tmp_path / "t.json", console=console)
    text = console.export_text()
    assert "HRKD-teacher -(HRKD)-> BERT_S" in text and "p vs TinyBERT-KD" in text
    md = (tmp_path / "t.md").read_text()
    hrkd = next(r for r in table.rows if "-(HRKD)->" in r.label)
    assert f"**{hrkd.stats['average'].text()}**" in md
    assert json.loads((tmp_path / "t.json").read_text())["rows"][1]["p_value"] == pytest.approx(hrkd.p_value)
    cx.compare_command([fake_results / "student" / "hrkd", fake_results / "student" / "multi-domain"], "csv",
                       tmp_path / "t.csv", console=console)
    rows = list(csv.DictReader((tmp_path / "t.csv").open()))
    assert [r["n_seeds"] for r in rows] == ["3", "3"] and rows[1]["p_value"] != "n/a"
    with pytest.raises(HrkdError, match="--split"):
        cx.compare_command([fake_results], split="train", console=console)


def test_compare_refuses_different_datasets(fake_results, tmp_path):
    other = student(tmp_path / "other", "hrkd", "hrkd", 1, 0.5, data_hash="d" * 64)
    with pytest.raises(HrkdError) as err:
        cx.compare_command([fake_results, other], console=None)
    assert DATA in str(err.value) and "d" * 64 in str(err.value)


def test_report_command(fake_results, tmp_path):
    out = tmp_path / "r.md"
    result = runner.invoke(app, ["report", str(fake_results), "--output", str(out), "--no-case-study"])
    assert result.exit_code == 0, result.output
    assert "HRKD-teacher -(HRKD)-> BERT_S" in out.read_text()


def test_ablate_command_two_seeds_then_reuse(tiny_preset, tmp_path, monkeypatch):
    two_domains = {"num_domains": 2, "train_per_domain": 32, "dev_per_domain": 16, "test_per_domain": 16}
    preset = tiny_toml(tiny_preset, tmp_path / "tiny.toml", data={"synthetic": two_domains})
    out = tmp_path / "table4.json"
    args = ["ablate", "--preset", str(preset), "--drop", "domain-rel", "--seeds", "2", "--format", "json", "-o", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    table = json.loads(out.read_text())
    assert [r["label"] for r in table["rows"]] == ["HRKD", "- Domain Rel. (alone)"]
    assert [r["seeds"] for r in table["rows"]] == [[1, 2], [1, 2]]
    assert "Table 4" in result.output

    monkeypatch.setattr("hrkd_cli.experiments.sweep.distill", lambda *a, **k: pytest.fail("a finished seed was distilled again"))
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert json.loads(out.read_text())["rows"] == table["rows"]
