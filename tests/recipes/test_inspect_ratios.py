"""`hrkd inspect-ratios`: the ratio log over the whole run, and the case study on chosen examples."""

from __future__ import annotations

import io
import json

import pytest
import torch
from rich.console import Console

from hrkd_cli.errors import HrkdError
from hrkd_cli.fsio import read_json_if_present
from hrkd_cli import pipeline
from hrkd_cli.recipes.inspect_ratios import inspect_ratios

quiet = {"say": lambda m: None}


def run(checkpoint, console=None, **kw):
    args = {"examples": None, "sample": False, "labels": None, "seed": 0, "plot": None}
    console = console or Console(file=io.StringIO())
    return inspect_ratios(checkpoint, **{**args, **kw}, console=console, **quiet)


@pytest.fixture
def hrkd_run(tiny_preset, cpu_runtime):
    return pipeline.distill(tiny_preset(distill={"epochs": 2}), cpu_runtime, **quiet)


def test_log_reaches_the_last_step_and_plots(hrkd_run, tmp_path):
    total = read_json_if_present(hrkd_run / "run.json")["runs"]["all"]["steps"]
    printed = io.StringIO()  # a log file: 80 columns, no terminal
    result = run(hrkd_run, console=Console(file=printed, width=80), plot=tmp_path / "ratios.png")
    text = printed.getvalue()
    assert "…" not in text and "prototypes" in text  # no cell cut to fit
    assert result["diagnostics"]["verdict"] in text.splitlines()  # the verdict on one line, for grep
    steps = [e["step"] for e in result["log"]]
    assert steps[0] == 0 and steps[-1] == total - 1  # "end" is the end of training, not the best checkpoint
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert (tmp_path / "ratios.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sampled_and_given_examples(hrkd_run, tmp_path):
    result = run(hrkd_run, sample=True, labels="positive,negative,positive")
    rows, ratios = result["examples"], result["ratios"]
    assert [r["domain"] for r in rows] == ["books", "films", "gadgets"]
    assert [r["label"] for r in rows] == ["positive", "negative", "positive"]
    assert len(ratios) == 3 and all(abs(sum(layer) - 1) < 1e-5 for layer in ratios)  # layers 0..2, sum over domains
    assert [len(a[0]) for a in result["similarity"]] == [2, 3]
    given = tmp_path / "examples.jsonl"
    given.write_text("\n".join(json.dumps({"domain": r["domain"], "text": r["text"]}) for r in rows))
    again = run(hrkd_run, examples=given, plot=tmp_path / "case.png")
    assert torch.allclose(torch.tensor(again["ratios"]), torch.tensor(ratios))  # eval mode: same examples, same ratios
    assert (tmp_path / "case.png").is_file()
    given.write_text(json.dumps({"domain": "books", "text": "x"}))
    with pytest.raises(HrkdError, match="missing films, gadgets"):
        run(hrkd_run, examples=given)


def test_refuses_a_student_without_graph(tiny_preset, cpu_runtime):
    md = pipeline.distill(tiny_preset(distill={"method": "multi-domain"}), cpu_runtime, **quiet)
    with pytest.raises(HrkdError, match="not an HRKD student checkpoint"):
        run(md)
