"""The meta-teacher (Meta-KD sec. 3.2; trained by hrkd_cli/train/meta_teacher.py, its model in hrkd_cli/model/metakd.py)
on the tiny random BERT and 3 synthetic domains, through `hrkd teach --kind meta` (hrkd_cli/pipeline.py)."""

import json

import pytest
import torch
import torch.nn.functional as F

from tiny import tiny_preset_dict
from hrkd_cli.model import metakd
from hrkd_cli.batches import load_splits, make_batch
from hrkd_cli.model.checkpoint import load_classifier, load_extras, members, read_meta
from hrkd_cli.config import validate_preset
from hrkd_cli.data.store import load_prepared
from hrkd_cli.errors import HrkdError
from hrkd_cli.model.pretrained import load_pretrained_encoder
from hrkd_cli.runs import data_dir, teacher_dir
from hrkd_cli.model.kd_model import Teachers
from hrkd_cli.pipeline import teach
from hrkd_cli.recipes.teach import reusable_teacher
from hrkd_cli.runtime import setup

quiet = {"say": lambda m: None}
DOMAINS = ["books", "films", "gadgets"]


@pytest.fixture(scope="module")
def runtime():
    return setup("cpu", "fp32", 1)


@pytest.fixture(scope="module")
def meta_run(tmp_path_factory, tiny_teacher_dir, runtime):
    """One meta-teacher for the module (through `hrkd teach --kind meta`'s entry point)."""
    root = tmp_path_factory.mktemp("meta-teacher")
    preset = validate_preset(tiny_preset_dict(root / "run", tiny_teacher_dir, teacher={"kind": "meta", "epochs": 1}), "tiny")
    out = teach(preset, runtime, **quiet)
    return preset, out


def direct_scores(preset, domains, alpha):
    """t_i recomputed by hand: one padded batch per domain, explicit means and cosines."""
    data = load_prepared(data_dir(preset))
    enc = load_pretrained_encoder(preset.teacher.model).eval()
    emb, labels = {}, {}
    with torch.no_grad():
        for split in load_splits(data, "train", domains):
            b = make_batch([(0, split, list(range(len(split))))])
            last = enc(input_ids=b.input_ids, attention_mask=b.attention_mask, token_type_ids=b.token_type_ids).last_hidden_state
            m = b.attention_mask.unsqueeze(-1).float()
            emb[split.domain] = (last * m).sum(1) / m.sum(1)
            labels[split.domain] = b.labels
    C = data.num_labels
    proto = {(d, c): emb[d][labels[d] == c].mean(0) for d in domains for c in range(C)}
    zeta = (1 - alpha) / (len(domains) - 1)
    out = {}
    for d in domains:
        t = []
        for h, y in zip(emb[d], labels[d].tolist()):
            s = alpha * F.cosine_similarity(proto[(d, y)], h, dim=0)
            s += zeta * sum(F.cosine_similarity(proto[(k, y)], h, dim=0) for k in domains if k != d)
            t.append(s)
        out[d] = torch.stack(t)
    return out


def test_stored_prototype_scores_equal_a_direct_recomputation(meta_run):
    preset, out = meta_run
    scores, info = metakd.load_prototype_scores(out)
    assert info["seen_domains"] == DOMAINS and info["alpha"] == preset.teacher.meta.alpha
    expected = direct_scores(preset, DOMAINS, preset.teacher.meta.alpha)
    for d in DOMAINS:
        assert scores[d].shape == (32,)  # keyed by the example's index in the domain's train split
        assert torch.allclose(scores[d], expected[d], atol=1e-5), d


def test_meta_teacher_checkpoint_is_a_one_head_teacher_with_transferable_weights(meta_run, runtime):
    preset, out = meta_run
    assert out == teacher_dir(preset, "meta")
    record = json.loads((out / "run.json").read_text())
    assert record["row"] == "Meta-teacher" and record["kind"] == "meta"
    assert set(record["test"]) == {*DOMAINS, "average"}
    group = members(out)
    assert set(group) == set(DOMAINS) and len(set(group.values())) == 1
    model, meta = load_classifier(group["books"])
    assert meta["num_heads"] == 1 and meta["domains"] == DOMAINS
    extras = load_extras(group["books"])
    assert extras["transferable.domain_embedding.weight"].shape == (3, 32)
    assert extras["transferable.domain_classifier.weight"].shape == (3, 32)
    tk, tk_domains = metakd.load_transferable(out)
    assert tk_domains == DOMAINS and not any(p.requires_grad for p in tk.parameters())
    # the distillation side loads it like any one-head teacher
    teachers = Teachers(out, DOMAINS, runtime)
    assert len(teachers.models) == 1 and {h for _, h in teachers.by_domain.values()} == {0}
    assert reusable_teacher(preset, "meta", record["data_hash"]) == out


def test_pooled_steps_and_adversarial_gradient(meta_run, runtime):
    preset, out = meta_run
    state = json.loads((out / "last" / "train_state.json").read_text())
    assert state["fit"]["step"] == 8  # 96 pooled examples, 12 per step (4 per domain x 3)
    # L_DA reaches the transferable-knowledge module and the shared encoder; the CE reaches the head
    data = load_prepared(data_dir(preset))
    model = metakd.MetaTeacherModel(load_classifier(members(out)["books"])[0], 3)
    train = load_splits(data, "train", DOMAINS)
    batch = make_batch([(k, s, [0, 1]) for k, s in enumerate(train)])
    domains = torch.tensor([0, 0, 1, 1, 2, 2])
    logits, domain_logits = model(batch, domains, runtime)
    assert logits.shape == (6, 2) and domain_logits.shape == (6, 3)
    corrupted = torch.tensor([2, 1, 0, 0, 1, 2])
    metakd.meta_teacher_loss(logits, batch.labels, torch.ones(6), domain_logits, corrupted, gamma1=0.0).backward()
    assert model.transferable.dense.weight.grad.abs().sum() == 0 and model.classifier.heads[0].weight.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)
    logits, domain_logits = model(batch, domains, runtime)
    metakd.meta_teacher_loss(logits, batch.labels, torch.zeros(6), domain_logits, corrupted, gamma1=0.5).backward()
    assert model.transferable.dense.weight.grad.abs().sum() > 0
    assert model.transferable.domain_embedding.weight.grad.abs().sum() > 0
    assert model.classifier.encoder.encoder.layer[-1].output.dense.weight.grad.abs().sum() > 0


def test_resume_of_a_finished_run_keeps_its_scores(meta_run, runtime):
    preset, out = meta_run
    before = json.loads((out / "run.json").read_text())["test"]
    stored = metakd.load_prototype_scores(out)[0]
    teach(preset, runtime, resume=True, **quiet)
    assert json.loads((out / "run.json").read_text())["test"] == before
    after = metakd.load_prototype_scores(out)[0]
    assert all(torch.equal(stored[d], after[d]) for d in DOMAINS)  # computed once, not again on resume


def test_resume_without_a_checkpoint_is_refused(tiny_preset, runtime):
    with pytest.raises(HrkdError, match="--resume: no checkpoint"):
        teach(tiny_preset(teacher={"kind": "meta"}), runtime, resume=True, **quiet)


def test_a_single_domain_is_refused_before_training(tiny_preset, runtime):
    p = tiny_preset(data={"synthetic": {"num_domains": 2, "train_per_domain": 16, "dev_per_domain": 8, "test_per_domain": 8}},
                    teacher={"kind": "meta", "exclude_domain": "films"})
    with pytest.raises(HrkdError, match=r"at least 2 domains.*K=1"):
        teach(p, runtime, **quiet)
    assert not teacher_dir(p, "meta").exists()


def test_exclusion_keeps_the_domain_out_of_the_teacher(tiny_preset, runtime):
    p = tiny_preset(teacher={"kind": "meta", "exclude_domain": "films", "epochs": 0.25})
    out = teach(p, runtime, **quiet)
    assert out.name == "meta-without-films"
    seen = ["books", "gadgets"]
    assert read_meta(out)["domains"] == seen and read_meta(members(out)["books"])["domains"] == seen
    record = json.loads((out / "run.json").read_text())
    assert record["domains"] == seen and set(record["test"]) == {*seen, "average"}
    assert metakd.load_transferable(out)[0].domain_embedding.weight.shape[0] == 2
    scores, info = metakd.load_prototype_scores(out)
    assert info["seen_domains"] == seen and info["excluded_domain"] == "films"
    # seen domains: scored against the seen prototypes only (zeta = 1 - alpha over one other domain)
    expected = direct_scores(p, seen, p.teacher.meta.alpha)
    assert all(torch.allclose(scores[d], expected[d], atol=1e-5) for d in seen)
    # the unseen domain (read only by its student): its own prototypes plus the 2 seen ones
    assert scores["films"].shape == (32,)
    assert torch.allclose(scores["films"], direct_scores(p, ["films", *seen], p.teacher.meta.alpha)["films"], atol=1e-5)
