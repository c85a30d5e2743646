"""The distillation loop (hrkd_cli/train/distill.py) with the relational weighting: the paper graph's collapse shown
end to end, the new read-outs, the meta objective (train/students.meta_objective). Not test_distill.py: pytest
needs test files' names unique, and tests/recipes/test_distill.py has it."""

from __future__ import annotations

import pytest
import torch
from rich.console import Console

from hrkd_cli.batches import load_splits
from hrkd_cli.config import load_preset
from hrkd_cli.data.store import load_prepared
from hrkd_cli.errors import HrkdError
from hrkd_cli.fsio import read_json_if_present
from hrkd_cli.model.checkpoint import load_extras
from hrkd_cli import pipeline
from hrkd_cli.model import kd_model
from hrkd_cli.train import students
from hrkd_cli.runs import data_dir
from hrkd_cli.recipes.inspect_ratios import inspect_ratios
from hrkd_cli.vocabulary import run_names

quiet = {"say": lambda m: None}
EXACT = {"dropout": False, "gat_dropout": 0.0, "epochs": 2}


def log_of(run):
    return read_json_if_present(run / "last" / "ratio_log.json")


def inspect(run):
    return inspect_ratios(run, examples=None, sample=False, labels=None, seed=0, plot=None,
                          console=Console(file=open("/dev/null", "w")), **quiet)


def test_paper_graph_without_dropout_is_eq17_with_uniform_ratios(tiny_preset, cpu_runtime):
    """With GAT dropout off the published graph's ratios are exactly 1/D, so its run is the
    '- Domain Rel.' run at the uniform scale (Eq. 17 with r = 1/D), loss for loss."""
    paper = pipeline.distill(tiny_preset(distill=EXACT), cpu_runtime, **quiet)
    uniform = pipeline.distill(tiny_preset(distill={**EXACT, "drop": ["domain-rel"], "domain_rel_scale": "uniform"}),
                        cpu_runtime, **quiet)
    a, b = log_of(paper), log_of(uniform)
    assert len(a) == len(b) > 3
    for x, y in zip(a, b):
        assert x["step"] == y["step"]
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-5, abs=1e-7)
        assert torch.allclose(torch.tensor(x["ratios"]), torch.full((3, 3), 1 / 3), atol=1e-7)
        assert max(x["grad_graph"]) < 1e-5 and max(x["grad_prototypes"]) < 1e-5  # zero up to float32 rounding
    diag = inspect(paper)["diagnostics"]
    assert diag["verdict"].startswith("verdict: INERT")
    assert all(t["tied_share"] == 1.0 and t["spread_max"] < 1e-6 for t in diag["train"])
    assert all(e["grad_graph"] < 1e-5 for e in diag["eval"])


@pytest.mark.parametrize("graph", ["residual", "excess"])
def test_new_graphs_respond_to_the_domains(tiny_preset, cpu_runtime, graph):
    run = pipeline.distill(tiny_preset(distill={**EXACT, "graph": graph, "ratio_floor": 0.2}), cpu_runtime, **quiet)
    log = log_of(run)
    for e in log:
        r = torch.tensor(e["ratios"])
        assert torch.allclose(r.sum(-1), torch.ones(3), atol=1e-5)
        assert (r >= 0.2 / 3 - 1e-6).all()  # the floor of Eq. R3
    assert max(max(e["grad_graph"]) for e in log) > 0 and max(max(e["grad_prototypes"]) for e in log) > 0
    spreads = [float(torch.tensor(e["ratios"]).max(-1).values.sub(torch.tensor(e["ratios"]).min(-1).values).min())
               for e in log]
    assert min(spreads) > 1e-5  # no step with tied ratios, without any dropout
    diag = inspect(run)["diagnostics"]
    assert diag["verdict"].startswith("verdict: ACTIVE") or diag["verdict"].startswith("verdict: NEAR-UNIFORM")
    assert all(e["grad_graph"] > 0 for e in diag["eval"])
    meta = read_json_if_present(run / "best" / "hrkd.json") if (run / "best" / "hrkd.json").exists() else None
    assert graph in run.parent.name and (meta is None or meta["relational"]["graph"] == graph)


def test_excess_running_loss_survives_a_resume(tiny_preset, cpu_runtime):
    run = pipeline.distill(tiny_preset(distill={**EXACT, "graph": "excess"}), cpu_runtime, **quiet)
    extras = load_extras(run / "last")
    assert int(extras["relational.loss_ema_steps"]) == read_json_if_present(run / "run.json")["runs"]["all"]["steps"]
    assert (extras["relational.loss_ema"] > 0).all()


def test_meta_outer_objective_is_unweighted_eq5_on_a_dev_batch(tiny_preset, cpu_runtime):
    preset = tiny_preset(distill={"graph_mode": "meta", "graph": "residual", "dropout": False, "gat_dropout": 0.0})
    pipeline.ensure_prepared(preset, quiet["say"])
    data = load_prepared(data_dir(preset))
    teacher = pipeline.ensure_teacher(preset, cpu_runtime, data, quiet["say"])
    domains = list(data.domains)
    s = students.setup(preset, cpu_runtime, teacher, domains, data)
    dev = load_splits(data, "dev", domains)
    heldout_at, val_loss = students.meta_objective(s, dev, cpu_runtime)
    batch = heldout_at(0)
    dev_ids = {tuple(x.input_ids[i]) for x in dev for i in range(len(x))}
    for row, mask in zip(batch.input_ids.tolist(), batch.attention_mask.tolist()):
        assert tuple(row[: sum(mask)]) in dev_ids  # every held-out row is a dev example
    t = s.teachers(batch, domains, cpu_runtime, attentions=True)
    out, projected, rel = s.model(batch)
    terms = kd_model.domain_losses(preset.distill, out, projected, t, batch, s.layer_map)
    expected = terms.total(None, gamma=preset.distill.gamma)  # Eq. 5: no ratios
    assert val_loss(batch, s.model).item() == pytest.approx(expected.item(), rel=1e-6)
    assert expected.item() != pytest.approx(terms.total(rel.ratios, gamma=preset.distill.gamma).item(), rel=1e-3)
    # the task objective: cross-entropy against the dev batch's gold labels
    task = tiny_preset(distill={"graph_mode": "meta", "graph": "residual", "meta_objective": "dev-task"})
    s.preset = task
    _, val_task = students.meta_objective(s, dev, cpu_runtime)
    ce = torch.nn.functional.cross_entropy(out.logits.float(), batch.labels)
    assert val_task(batch, s.model).item() == pytest.approx(ce.item(), rel=1e-5)
    # empty dev data is refused with the domain's name
    with pytest.raises(HrkdError, match="needs dev data.*books"):
        students.meta_objective(s, [[]] + dev[1:], cpu_runtime)


def test_meta_run_with_dev_objective_trains_the_graph(tiny_preset, cpu_runtime):
    run = pipeline.distill(tiny_preset(distill={"graph_mode": "meta", "graph": "residual"}), cpu_runtime, **quiet)
    log = log_of(run)
    assert all("meta_val_loss" in e for e in log)
    first = students.setup(tiny_preset(distill={"graph_mode": "meta", "graph": "residual"}), cpu_runtime,
                    read_json_if_present(run / "run.json")["teacher"], ["books", "films", "gadgets"],
                    load_prepared(data_dir(tiny_preset()))).model.relational.state_dict()
    trained = load_extras(run / "last")
    moved = [k for k, v in first.items() if not torch.equal(v, trained[f"relational.{k}"])]
    assert any(k.startswith("graphs.") and k.endswith("readout") for k in moved)


@pytest.mark.parametrize("override, message", [
    (["distill.ratio_floor=0.3"], "ratio_floor applies to distill.graph = residual or excess, not 'paper'"),
    (["distill.graph=\"residual\"", "distill.excess_beta=2"], "excess_beta applies to distill.graph = excess"),
    (["distill.meta_objective=\"dev-task\""], "meta_objective applies to distill.graph_mode = 'meta'"),
    (["distill.ratio_kl=0.1", "distill.graph_mode=\"meta\""], "ratio_kl applies to distill.graph_mode = 'joint'"),
])
def test_settings_that_the_graph_would_ignore_are_refused(override, message):
    with pytest.raises(HrkdError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_preset("demo", override)


def test_run_names_carry_the_relational_choices(tiny_preset):
    p = tiny_preset(distill={"graph": "excess", "graph_mode": "meta", "excess_beta": 10.0})
    assert run_names(p).tag == "hrkd-excess-meta-beta10.0"
    assert run_names(p).row == "HRKD-teacher -(HRKD[excess, meta, beta=10.0])-> BERT_S"
    assert run_names(tiny_preset()).tag == "hrkd"
