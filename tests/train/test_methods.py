"""The method registry (hrkd_cli/train/methods.py), and adding a method the way docs/adding-a-method.md says:
one registry entry plus one loss function, distilled on the tiny synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hrkd_cli.errors import HrkdError
from hrkd_cli.model.kd_model import eq5_loss, eq17_loss, relational_student
from hrkd_cli.pipeline import distill
from hrkd_cli.train.methods import METHODS, Method, register
from hrkd_cli.vocabulary import DEFAULT_TEACHER, METHOD_NAMES
from hrkd_cli.vocabulary import METHODS as METHOD_ORDER

calls: list[float] = []


def toy_loss(cfg, terms, rel):
    """The toy method: Eq. 5 without its prediction term (embd + attn + hidn only)."""
    loss = terms.total(None, gamma=0.0)
    calls.append(float(loss.detach()))
    return loss


@pytest.fixture
def toy():
    """The toy method registered for one test; the registry and the vocabulary's tables are put back after it."""
    saved = [(table, dict(table)) for table in (METHODS, METHOD_NAMES, DEFAULT_TEACHER)]
    yield register(Method("toy-kd", toy_loss, row="Toy-KD", teacher="multi-domain"))
    for table, before in saved:
        table.clear()
        table.update(before)


def test_every_built_in_method_is_an_entry_with_vocabulary_names():
    assert list(METHODS) == list(METHOD_ORDER)
    for name, m in METHODS.items():
        assert (m.name, m.row, m.teacher) == (name, METHOD_NAMES[name], DEFAULT_TEACHER[name])
    assert METHODS["hrkd"].loss is eq17_loss and METHODS["hrkd"].student is relational_student
    assert METHODS["multi-domain"].loss is eq5_loss and not METHODS["multi-domain"].per_domain
    assert METHODS["tinybert"].per_domain and {METHODS[m].loop for m in ("meta-kd", "mtn-kd")} == {"baseline"}


def test_a_name_is_registered_once_and_a_loop_must_exist():
    with pytest.raises(ValueError, match="registered already"):
        register(METHODS["hrkd"])
    with pytest.raises(ValueError, match="loop 'per-example'"):
        register(Method("odd", toy_loss, row="Odd", teacher="mix", loop="per-example"))
    assert "odd" not in METHODS and "odd" not in METHOD_NAMES


def test_a_registered_method_distils_with_its_loss_under_its_names(toy, tiny_preset, cpu_runtime):
    calls.clear()
    p = tiny_preset(distill={"method": "toy-kd"})
    out = distill(p, cpu_runtime, say=lambda m: None)
    assert out == Path(p.run_dir) / "student" / "toy-kd" / "seed-1"
    record = json.loads((out / "run.json").read_text())
    assert record["method"] == "toy-kd" and record["row"] == "HRKD-teacher -(Toy-KD)-> BERT_S"
    assert record["teacher"].endswith("teacher/multi-domain") and set(record["test"]) == {"books", "films", "gadgets", "average"}
    # 3 domains x 32 examples, 4 per domain a step, one epoch: 8 steps, each through the toy loss
    assert len(calls) == 8
    log = json.loads((out / "last" / "ratio_log.json").read_text())
    assert len(log) == 8 and [round(e["loss"], 5) for e in log] == [round(c, 5) for c in calls]
    for e in log:  # the prediction term was computed but left out of the loss
        assert e["pred"] > 0 and e["loss"] == pytest.approx(e["embd"] + e["attn"] + e["hidn"], rel=1e-5)


def test_an_unregistered_method_is_refused_by_the_preset(tiny_preset):
    with pytest.raises(HrkdError, match="distill.method: Input should be 'tinybert', .* or 'mtn-kd'"):
        tiny_preset(distill={"method": "toy-kd"})
