"""Meta-distillation and MTN-KD (hrkd_cli/train/baselines.py, their losses in hrkd_cli/model/baselines.py) on the
tiny random BERT and 3 synthetic domains; end to end through `hrkd distill` (hrkd_cli/pipeline.py)."""

import json

import pytest
import torch
import torch.nn.functional as F

from tiny import tiny_preset_dict
from hrkd_cli.batches import load_splits, make_batch
from hrkd_cli.model.checkpoint import load_classifier, load_extras, members, read_meta
from hrkd_cli.config import validate_preset
from hrkd_cli.data.store import load_prepared
from hrkd_cli.errors import HrkdError
from hrkd_cli.train.evaluation import evaluate_checkpoint
from hrkd_cli.model.metakd import mean_pooled_embedding
from hrkd_cli.model import baselines as B
from hrkd_cli.runs import data_dir, teacher_dir
from hrkd_cli.pipeline import distill
from hrkd_cli.model.kd_model import Teachers, domain_losses
from hrkd_cli.train.baselines import train_domain_student
from hrkd_cli.train.methods import METHODS
from hrkd_cli.train.students import setup, student_dir
from hrkd_cli.model.metakd import load_prototype_scores, load_transferable
from hrkd_cli.experiments.sweep import finished_run
from hrkd_cli.runtime import setup as runtime_setup

quiet = {"say": lambda m: None}
DOMAINS = ["books", "films", "gadgets"]
RUN_KEYS = {"role", "method", "row", "preset", "preset_hash", "seed", "data_hash", "dev", "test", "wall_time_s"}


@pytest.fixture(scope="module")
def runtime():
    return runtime_setup("cpu", "fp32", 1)


@pytest.fixture(scope="module")
def make(tmp_path_factory, tiny_teacher_dir):
    """Presets sharing one run directory for the module (teachers are reused across methods)."""
    root = tmp_path_factory.mktemp("baselines")

    def build(**sections):
        return validate_preset(tiny_preset_dict(root / "run", tiny_teacher_dir, **sections), "tiny")

    return build


@pytest.fixture(scope="module")
def meta_kd(make, runtime):
    p = make(distill={"method": "meta-kd"})
    return p, distill(p, runtime, **quiet)


@pytest.fixture(scope="module")
def mtn_kd(make, runtime):
    p = make(distill={"method": "mtn-kd"})
    return p, distill(p, runtime, **quiet)


def one_batch(preset, domain, rows=(0, 1, 2, 3)):
    data = load_prepared(data_dir(preset))
    split = load_splits(data, "train", [domain])[0]
    return data, make_batch([(0, split, list(rows))])


def check_student_group(preset, out, row, runtime):
    record = json.loads((out / "run.json").read_text())
    assert RUN_KEYS <= set(record) and record["row"] == row and record["method"] == preset.distill.method
    assert set(record["test"]) == {*DOMAINS, "average"}
    assert finished_run(out, preset) is not None  # sweeps reuse it like any distill run
    group = members(out)
    assert set(group) == set(DOMAINS) and len(set(group.values())) == 3  # one student per domain
    for d, member in group.items():
        model, meta = load_classifier(member)
        assert meta["domains"] == [d] and meta["num_heads"] == 1 and meta["row"] == row
    data = load_prepared(data_dir(preset))
    assert evaluate_checkpoint(out, load_splits(data, "test"), runtime, data.hash) == record["test"]
    return record


def test_meta_kd_end_to_end(meta_kd, runtime):
    p, out = meta_kd
    assert out == student_dir(p) and out.name == "seed-1"
    check_student_group(p, out, "Meta-teacher -(Meta-distillation)-> BERT_S", runtime)
    assert read_meta(out)["row"] == "Meta-teacher -(Meta-distillation)-> BERT_S"
    extras = load_extras(members(out)["films"])
    assert extras["tk_projection.weight"].shape == (32, 32)  # student width -> teacher width (W_d^M)
    assert read_meta(members(out)["films"])["teacher"] == str(teacher_dir(p, "meta"))


def test_mtn_kd_end_to_end(mtn_kd, runtime):
    p, out = mtn_kd
    check_student_group(p, out, "Multi-teachers -(MTN-KD)-> BERT_S", runtime)
    assert len(set(members(teacher_dir(p, "single")).values())) == 3  # one teacher per domain
    assert not any(k.startswith("tk_projection.") for k in load_extras(members(out)["books"]))


def test_lambda_weights_each_example(meta_kd, runtime):
    p, out = meta_kd
    teacher = teacher_dir(p, "meta")
    data, batch = one_batch(p, "films")
    s = setup(p, runtime, teacher, ["films"], data)
    tk, tk_domains = load_transferable(teacher)
    model = B.BaselineModel(s.model, torch.nn.Linear(32, 32))
    model.eval()
    out_, projected, student_tk = model(batch)
    t_out = s.teachers(batch, ["films"], runtime, attentions=True)
    teacher_tk = B.teacher_transferable(tk, mean_pooled_embedding(t_out.hidden_states[-1], batch.attention_mask), 1)
    t = load_prototype_scores(teacher)[0]["films"][:4]
    loss, _ = B.meta_kd_loss(p.distill, out_, projected, student_tk, t_out, teacher_tk, t, batch, s.layer_map)

    # by hand: lambda_i from t_i and the teacher's probability of the gold label; the terms per example
    p_gold = t_out.logits.softmax(-1)[torch.arange(4), batch.labels]
    lam = (1 + t) / (torch.exp((1 - p_gold) ** 2) + 1)
    terms = domain_losses(p.distill, out_, projected, t_out, batch, s.layer_map, reduction="none")
    tkd = ((student_tk - teacher_tk) ** 2).mean(-1)
    total = terms.embd[0] + terms.attn[0].sum(-1) + terms.hidn[0].sum(-1) + terms.pred[0] + p.distill.metakd.gamma2 * tkd
    assert torch.allclose(loss, (lam * total).sum() / 4, atol=1e-6)
    assert lam.std() > 0 and not torch.allclose(loss, lam.mean() * total.mean(), rtol=0, atol=1e-6)  # not a batch-mean weight
    # two stages: the intermediate terms (with tkd), then the prediction term, each weighted per example
    pred = terms.pred[0]
    inter, _ = B.meta_kd_loss(p.distill, out_, projected, student_tk, t_out, teacher_tk, t, batch, s.layer_map, "intermediate")
    last, _ = B.meta_kd_loss(p.distill, out_, projected, student_tk, t_out, teacher_tk, t, batch, s.layer_map, "prediction")
    assert torch.allclose(inter, (lam * (total - pred)).sum() / 4, atol=1e-6)
    assert torch.allclose(last, (lam * pred).sum() / 4, atol=1e-6)

    # a one-hot lambda keeps exactly one example's terms
    one_hot = torch.tensor([0.0, 0.0, 1.0, 0.0])
    B_weight = B.domain_expertise_weight
    try:
        B.domain_expertise_weight = lambda t_, p_: one_hot
        only, _ = B.meta_kd_loss(p.distill, out_, projected, student_tk, t_out, teacher_tk, t, batch, s.layer_map)
    finally:
        B.domain_expertise_weight = B_weight
    assert torch.allclose(only, total[2] / 4, atol=1e-6)
    # the teacher's transferable-knowledge vector is its own module's output for its domain index
    h = mean_pooled_embedding(t_out.hidden_states[-1], batch.attention_mask)
    assert torch.allclose(teacher_tk, tk(h, torch.full((4,), tk_domains.index("films"))), atol=1e-6)


def test_the_recipe_uses_the_lambdas(meta_kd, runtime, monkeypatch, tmp_path):
    p, _ = meta_kd
    data = load_prepared(data_dir(p))
    monkeypatch.setattr(B, "domain_expertise_weight", lambda t, prob: torch.zeros_like(t))
    train_domain_student(METHODS["meta-kd"], p, runtime, tmp_path / "books", teacher_dir(p, "meta"), "books", data, False, quiet["say"])
    log = json.loads((tmp_path / "books" / "last" / "train_log.json").read_text())
    assert len(log) == 8 and all(e["loss"] == 0.0 for e in log) and all(e["pred"] > 0 for e in log)


def test_mtn_target_is_the_average_of_softened_teacher_outputs(mtn_kd, runtime, make):
    p = make(distill={"method": "mtn-kd", "temperature": 2.0})
    teachers_path = teacher_dir(p, "single")
    data, batch = one_batch(p, "gadgets")
    ensemble = Teachers(teachers_path, DOMAINS, runtime)
    s = setup(p, runtime, teachers_path, ["gadgets"], data)
    out_, projected, _ = s.model(batch)
    t_out = B.mtn_teacher_outputs(ensemble, DOMAINS, "gadgets", batch, runtime, 2.0, attentions=True)
    pred = domain_losses(p.distill, out_, projected, t_out, batch, s.layer_map).pred[0]

    # by hand, from freshly loaded teachers: average softmax(z_k / 2), soft CE against it
    own = None
    probs = []
    for d in DOMAINS:
        model, _ = load_classifier(members(teachers_path)[d])
        model.eval()
        with torch.no_grad():
            o = model(batch.input_ids, batch.attention_mask, batch.token_type_ids, [(0, 4)], hidden_states=True)
        probs.append(F.softmax(o.logits / 2.0, dim=-1))
        own = o if d == "gadgets" else own
    pbar = sum(probs) / 3
    hand = -(pbar * F.log_softmax(out_.logits / 2.0, dim=-1)).sum(-1).mean()
    assert torch.allclose(pred, hand, atol=1e-6)
    assert not torch.allclose(pbar, probs[2], atol=1e-4)  # the average, not the own teacher's output
    # intermediate layers come from the domain's own teacher
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(t_out.hidden_states, own.hidden_states))
    # a domain without its own teacher: hidden states averaged over the teachers
    avg = B.mtn_teacher_outputs(ensemble, ["books", "films"], None, batch, runtime, 2.0, attentions=True)
    h = [load_classifier(members(teachers_path)[d])[0].eval()(batch.input_ids, batch.attention_mask, batch.token_type_ids,
                                                               [(0, 4)], hidden_states=True).hidden_states[-1] for d in ("books", "films")]
    assert torch.allclose(avg.hidden_states[-1], (h[0] + h[1]) / 2, atol=1e-5)


def test_excluded_domain_still_gets_a_meta_kd_student(make, runtime):
    p = make(teacher={"exclude_domain": "films"}, distill={"method": "meta-kd"})
    out = distill(p, runtime, **quiet)
    teacher = teacher_dir(p, "meta")
    assert teacher.name == "meta-without-films" and "teacher-without-films" in str(out)
    assert read_meta(teacher)["domains"] == ["books", "gadgets"]
    assert json.loads((teacher / "run.json").read_text())["domains"] == ["books", "gadgets"]
    record = check_student_group(p, out, "Meta-teacher -(Meta-distillation)-> BERT_S", runtime)
    assert record["excluded_domain"] == "films" and record["teacher_domains"] == ["books", "gadgets"]
    films = read_meta(members(out)["films"])
    assert films["domains"] == ["films"] and films["transferable_domain"] is None  # no e_D row: the mean one
    assert read_meta(members(out)["books"])["transferable_domain"] == "books"


def test_excluded_domain_with_mtn_kd_learns_from_the_other_teachers(make, runtime):
    p = make(teacher={"exclude_domain": "films", "epochs": 0.5}, distill={"method": "mtn-kd", "epochs": 0.5})
    out = distill(p, runtime, **quiet)
    assert set(members(teacher_dir(p, "single"))) == {"books", "gadgets"}
    check_student_group(p, out, "Multi-teachers -(MTN-KD)-> BERT_S", runtime)
    assert read_meta(members(out)["films"])["teachers"] == ["books", "gadgets"]


def test_excluded_domain_is_refused_by_per_domain_teachers(make, runtime):
    # TinyBERT-KD distils each domain from its own single teacher: with films left out there is none,
    # and borrowing another domain's teacher would be a silent mistake.
    p = make(teacher={"exclude_domain": "films", "epochs": 0.5}, distill={"method": "tinybert", "epochs": 0.5})
    with pytest.raises(HrkdError, match="no teacher for domain 'films'"):
        distill(p, runtime, **quiet)


def test_two_stage_meta_kd(make, runtime):
    p = make(seed=2, distill={"method": "meta-kd", "epochs": 2, "metakd": {"stages": "two"}})  # own directory
    out = distill(p, runtime, **quiet)
    best = members(out)["books"]
    meta = read_meta(best)
    assert meta["stages"] == "two" and meta["switch_step"] == 8 and meta["step"] > 8  # best chosen in stage 2
    log = json.loads((best / "train_log.json").read_text())
    assert [e["stage"] for e in log] == ["intermediate"] * 8 + ["prediction"] * 8


def test_resume_and_refusals(meta_kd, make, runtime):
    p, out = meta_kd
    before = json.loads((out / "run.json").read_text())["test"]
    assert json.loads((distill(p, runtime, resume=True, **quiet) / "run.json").read_text())["test"] == before
    with pytest.raises(HrkdError, match="--resume: no checkpoint"):
        distill(make(seed=7, distill={"method": "meta-kd"}), runtime, resume=True, **quiet)
    with pytest.raises(HrkdError, match="distils from the 'meta' teacher"):
        distill(make(distill={"method": "meta-kd", "teacher_kind": "multi-domain"}), runtime, **quiet)
