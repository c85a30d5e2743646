import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from hrkd_cli.model.checkpoint import load_extras, members, read_meta
from hrkd_cli.data.store import load_prepared
from hrkd_cli.errors import HrkdError
from hrkd_cli.train.evaluation import evaluate_checkpoint
from hrkd_cli.batches import load_splits, make_batch
from hrkd_cli import pipeline
from hrkd_cli.model.losses import hrkd_loss
from hrkd_cli.model import kd_model
from hrkd_cli.train import students
from hrkd_cli.runs import data_dir
from hrkd_cli.train.methods import METHODS
from hrkd_cli.vocabulary import run_names

quiet = {"say": lambda m: None}


def test_hrkd_end_to_end_records_ratios_and_test_scores(tiny_preset, cpu_runtime):
    p = tiny_preset()
    out = pipeline.distill(p, cpu_runtime, **quiet)
    record = json.loads((out / "run.json").read_text())
    assert record["row"] == "HRKD-teacher -(HRKD)-> BERT_S"
    assert set(record["test"]) == {"books", "films", "gadgets", "average"}
    # the precision the run resolved to ("auto" in the preset says nothing), for student and teacher
    assert record["environment"]["precision"] == cpu_runtime.precision and record["environment"]["device"] == "cpu"
    teacher = json.loads((Path(record["teacher"]) / "run.json").read_text())
    assert teacher["environment"]["precision"] == cpu_runtime.precision
    best = members(out)["books"]
    log = json.loads((best / "ratio_log.json").read_text())
    assert log and all(len(e["ratios"]) == 3 for e in log)  # layers 0..M with M = 2
    for e in log:
        for layer in e["ratios"]:
            assert abs(sum(layer) - 1) < 1e-5  # domain-relational ratios sum to 1 over domains
        assert [len(s[0]) for s in e["similarity"]] == [2, 3]  # alpha^H has m+1 entries


@pytest.mark.parametrize("method,row", [("multi-domain", "HRKD-teacher -(TinyBERT-KD)-> BERT_S"),
                                        ("tinybert", "BERT-single -(TinyBERT-KD)-> BERT_S")])
def test_baseline_kd_methods(tiny_preset, cpu_runtime, method, row):
    out = pipeline.distill(tiny_preset(distill={"method": method}), cpu_runtime, **quiet)
    assert json.loads((out / "run.json").read_text())["row"] == row
    if method == "tinybert":
        assert len(set(members(out).values())) == 3  # one student per domain


def test_frozen_graph_never_changes_but_passes_gradient(tiny_preset, cpu_runtime):
    # GAT dropout on (the released code's 0.1): without it the second GAT layer of a random
    # graph usually yields exactly uniform ratios with zero gradient (see hrkd_cli/model/graph.py).
    p = tiny_preset()
    out = pipeline.distill(p, cpu_runtime, **quiet)
    data = load_prepared(data_dir(p))
    s = students.setup(p, cpu_runtime, out.parent.parent.parent / "teacher" / "multi-domain", list(data.domains), data)
    initial = {k: v.clone() for k, v in s.model.relational.state_dict().items()}
    trained = {k[len("relational."):]: v for k, v in load_extras(members(out)["books"]).items() if k.startswith("relational.")}
    assert initial.keys() == trained.keys() and all(torch.equal(initial[k], trained[k]) for k in initial)
    # the student still gets gradient through the ratios
    train = load_splits(data, "train")
    batch = make_batch([(d, x, list(range(4))) for d, x in enumerate(train)])
    t = s.teachers(batch, s.domains, cpu_runtime, attentions=True)
    assert all(not q.requires_grad for q in s.model.relational.parameters())
    word = s.model.student.encoder.embeddings.word_embeddings.weight
    norms = []
    for seed in range(8):  # GAT dropout draws differ per seed; some draws give exactly uniform ratios
        torch.manual_seed(seed)
        out_, projected, rel = s.model(batch)
        terms = kd_model.domain_losses(p.distill, out_, projected, t, batch, s.layer_map)
        # the loss with the per-domain terms held fixed: its gradient can only come through the ratios
        loss = hrkd_loss(terms.embd.detach(), terms.attn.detach(), terms.hidn.detach(), terms.pred.detach(), rel.ratios)
        grad = torch.autograd.grad(loss, word, allow_unused=True)[0]
        norms.append(0.0 if grad is None else float(grad.abs().sum()))
    assert max(norms) > 0


def test_joint_graph_is_optimised(tiny_preset, cpu_runtime):
    p = tiny_preset(distill={"graph_mode": "joint", "graph_lr": 1e-2})
    out = pipeline.distill(p, cpu_runtime, **quiet)
    data = load_prepared(data_dir(p))
    s = students.setup(p, cpu_runtime, out.parent.parent.parent / "teacher" / "multi-domain", list(data.domains), data)
    trained = {k[len("relational."):]: v for k, v in load_extras(members(out)["books"]).items() if k.startswith("relational.")}
    initial = s.model.relational.state_dict()
    assert any(not torch.equal(initial[k], trained[k]) for k in initial)


@pytest.mark.parametrize("drop", [["self-attention"], ["comp-agg"], ["hierarchical"], ["domain-rel"],
                                  ["self-attention", "comp-agg", "hierarchical", "domain-rel"]])
def test_ablations_run_and_are_recorded(tiny_preset, cpu_runtime, drop):
    out = pipeline.distill(tiny_preset(distill={"drop": drop}), cpu_runtime, **quiet)
    assert read_meta(members(out)["books"])["drop"] == drop
    assert "drop-" + "+".join(drop) in str(out)


def test_student_depth_must_divide_teacher_depth(tiny_preset, cpu_runtime):
    with pytest.raises(HrkdError, match="does not divide teacher depth 4"):
        pipeline.distill(tiny_preset(student={"teacher_layers": [1, 2, 3]}), cpu_runtime, **quiet)


def test_attention_loss_needs_equal_heads(tiny_preset, cpu_runtime):
    p = tiny_preset(student={"init": "random", "num_layers": 2, "hidden_size": 16, "num_heads": 2, "intermediate_size": 32})
    with pytest.raises(HrkdError, match="equal head counts: student 2, teacher 4"):
        pipeline.distill(p, cpu_runtime, **quiet)
    p = tiny_preset(student={"init": "random", "num_layers": 2, "hidden_size": 16, "num_heads": 2, "intermediate_size": 32},
                    distill={"attention_loss": "off"})
    assert (pipeline.distill(p, cpu_runtime, **quiet) / "run.json").is_file()


def test_checkpoint_from_other_data_is_refused(tiny_preset, cpu_runtime, tmp_path):
    out = pipeline.distill(tiny_preset(), cpu_runtime, **quiet)
    other = tiny_preset(run_dir=str(tmp_path / "other"), data={"split_seed": 8})
    data = pipeline.ensure_prepared(other, lambda m: None)
    with pytest.raises(HrkdError, match="was trained on data"):
        evaluate_checkpoint(out, load_splits(data, "test"), cpu_runtime, data.hash)


def test_resume_without_checkpoint(tiny_preset, cpu_runtime):
    with pytest.raises(HrkdError, match="--resume: no checkpoint"):
        pipeline.distill(tiny_preset(), cpu_runtime, resume=True, **quiet)


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tiny_preset, cpu_runtime, monkeypatch):
    p = tiny_preset(distill={"eval_every": 2, "epochs": 2})
    real = METHODS["hrkd"].loss
    calls = {"n": 0}

    def poisoned(cfg, terms, rel):
        calls["n"] += 1
        loss = real(cfg, terms, rel)
        return loss * float("nan") if calls["n"] == 5 else loss

    # the registry entry is where distillation_loss looks the loss up
    monkeypatch.setitem(METHODS, "hrkd", dataclasses.replace(METHODS["hrkd"], loss=poisoned))
    with pytest.raises(HrkdError, match="at step 4"):
        pipeline.distill(p, cpu_runtime, **quiet)
    last = students.student_dir(p) / "last"
    assert read_meta(last)["step"] == 4  # evaluated and saved after steps 2 and 4, before the bad step


def test_a_run_of_another_configuration_is_not_overwritten(tiny_preset, cpu_runtime):
    """Two runs that differ only in a setting the directory name does not carry (here the temperature)
    would share a directory; the second is refused, naming the setting, and distill.tag keeps both."""
    first = pipeline.distill(tiny_preset(distill={"method": "multi-domain"}), cpu_runtime, **quiet)
    before = (first / "run.json").read_bytes()
    with pytest.raises(HrkdError, match=r"another configuration \(distill.temperature 1.0 -> 4.0\).*distill.tag"):
        pipeline.distill(tiny_preset(distill={"method": "multi-domain", "temperature": 4.0}), cpu_runtime, **quiet)
    assert (first / "run.json").read_bytes() == before
    tagged = tiny_preset(distill={"method": "multi-domain", "temperature": 4.0, "tag": "T4"})
    out = pipeline.distill(tagged, cpu_runtime, **quiet)
    assert out.parent.name == "multi-domain-T4" and run_names(tagged).row.endswith("(T4)")
    again = pipeline.distill(tiny_preset(distill={"method": "multi-domain"}), cpu_runtime, **quiet)  # same configuration: fine
    assert again == first


def test_per_domain_students_resume_where_they_stopped(tiny_preset, cpu_runtime):
    # A tinybert run stopped during its second domain: --resume keeps the first domain's student and
    # trains the others afresh (before, it asked every domain for a checkpoint and refused).
    p = tiny_preset(distill={"method": "tinybert"})
    out = pipeline.distill(p, cpu_runtime, **quiet)
    before = json.loads((out / "run.json").read_text())["test"]
    kept = out / "books" / "best" / "model.safetensors"
    stamp = kept.stat().st_mtime_ns
    (out / "run.json").unlink()
    for d in ("films", "gadgets"):  # stopped before films' first evaluation wrote anything
        shutil.rmtree(out / d)
    pipeline.distill(p, cpu_runtime, resume=True, **quiet)
    assert kept.stat().st_mtime_ns == stamp  # books was not trained again
    assert json.loads((out / "run.json").read_text())["test"] == before  # the same seeds give the same students
