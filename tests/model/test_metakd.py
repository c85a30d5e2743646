"""Meta-KD losses on tiny hand-computable tensors."""

import math

import pytest
import torch

from hrkd_cli.errors import HrkdError
from hrkd_cli.model.metakd import (
    TransferableKnowledge,
    class_prototypes,
    corrupt_domain_labels,
    domain_adversarial_loss,
    domain_expertise_weight,
    gold_probability,
    mean_pooled_embedding,
    meta_distillation_loss,
    meta_teacher_loss,
    prototype_scores,
    transferable_knowledge_loss,
    weighted_example_mean,
    zeta,
)

R2 = math.sqrt(2.0)


def close(a, b, tol=1e-6):
    return torch.allclose(torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32), atol=tol)


def test_mean_pooled_embedding_ignores_padding():
    last = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert close(mean_pooled_embedding(last, mask), [[2.0, 3.0]])


def test_class_prototypes_means_and_empty_cell():
    # domain 0: class 0 at (1,0),(3,0); class 1 at (0,2). domain 1: class 0 at (1,1); class 1 empty.
    emb = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    labels = torch.tensor([0, 0, 1, 0])
    domains = torch.tensor([0, 0, 0, 1])
    p, counts = class_prototypes(emb, labels, domains, num_domains=2, num_classes=2, return_counts=True)
    assert p.shape == (2, 2, 2)
    assert close(p[0, 0], [2.0, 0.0]) and close(p[0, 1], [0.0, 2.0]) and close(p[1, 0], [1.0, 1.0])
    assert close(p[1, 1], [0.0, 0.0]) and counts.tolist() == [[2, 1], [1, 0]]
    # the empty cell contributes 0: example (0,2), domain 0, class 1, alpha 0.5 -> 0.5*1 + 0.5*0
    t = prototype_scores(emb[2:3], labels[2:3], domains[2:3], p, alpha=0.5)
    assert close(t, [0.5])


def test_class_prototypes_refuses_out_of_range_label():
    with pytest.raises(HrkdError, match="class label"):
        class_prototypes(torch.zeros(2, 2), torch.tensor([0, 2]), torch.tensor([0, 0]), 1, 2)


def test_zeta_formula():
    assert zeta(0.5, 3) == pytest.approx(0.25)
    assert zeta(0.2, 5) == pytest.approx(0.2)
    assert zeta(1.0, 2) == pytest.approx(0.0)


def test_prototype_scores_hand_computation():
    # K=3 domains, C=2 classes; prototypes[k, c]
    protos = torch.tensor([
        [[1.0, 0.0], [0.0, 1.0]],    # domain 0
        [[0.0, 1.0], [1.0, 1.0]],    # domain 1
        [[-1.0, 0.0], [1.0, 0.0]],   # domain 2
    ])
    emb = torch.tensor([[2.0, 0.0], [3.0, 4.0]])
    labels = torch.tensor([0, 1])
    domains = torch.tensor([0, 1])
    t = prototype_scores(emb, labels, domains, protos, alpha=0.5)  # zeta = 0.25
    # x0: own cos((1,0),(2,0)) = 1; others cos((0,1),.) = 0, cos((-1,0),.) = -1
    t0 = 0.5 * 1.0 + 0.25 * (0.0 - 1.0)
    # x1: own cos((1,1),(3,4)) = 7/(5*sqrt2); others cos((0,1),.) = 4/5, cos((1,0),.) = 3/5
    t1 = 0.5 * 7.0 / (5.0 * R2) + 0.25 * (0.8 + 0.6)
    assert close(t, [t0, t1])
    # alpha = 1 keeps only the in-domain cosine
    assert close(prototype_scores(emb, labels, domains, protos, alpha=1.0), [1.0, 7.0 / (5.0 * R2)])


def test_prototype_scores_refuses_one_domain():
    p = torch.ones(1, 2, 2)
    with pytest.raises(HrkdError, match="K=1"):
        prototype_scores(torch.ones(1, 2), torch.tensor([0]), torch.tensor([0]), p, alpha=0.5)


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_prototype_scores_refuses_alpha_out_of_range(alpha):
    p = torch.ones(2, 2, 2)
    with pytest.raises(HrkdError, match="alpha"):
        prototype_scores(torch.ones(1, 2), torch.tensor([0]), torch.tensor([0]), p, alpha=alpha)


def test_corrupt_domain_labels_is_seeded_permutation():
    domains = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    a = corrupt_domain_labels(domains, torch.Generator().manual_seed(7))
    b = corrupt_domain_labels(domains, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert sorted(a.tolist()) == sorted(domains.tolist())
    shuffled = [corrupt_domain_labels(domains, torch.Generator().manual_seed(s)) for s in range(5)]
    assert any(not torch.equal(z, domains) for z in shuffled)


def test_transferable_knowledge_shape_and_range():
    torch.manual_seed(0)
    tk = TransferableKnowledge(hidden=4, num_domains=3)
    h = torch.randn(5, 4)  # moderate inputs: float32 tanh rounds to +-1 beyond ~9
    domains = torch.tensor([0, 1, 2, 0, 1])
    h_d = tk(h, domains)
    assert h_d.shape == (5, 4)
    assert bool((h_d > -1).all() and (h_d < 1).all())
    assert tk.domain_logits(h_d).shape == (5, 3)
    # e_D matters: same h, different domain -> different h_d
    same = h[:1].expand(2, 4)
    out = tk(same, torch.tensor([0, 1]))
    assert not torch.allclose(out[0], out[1])


def test_domain_expertise_weight_orders_examples():
    t = torch.tensor([0.9, 0.1, 0.9])
    p = torch.tensor([0.99, 0.99, 0.1])  # prototypical+correct, less prototypical, wrongly predicted
    lam = domain_expertise_weight(t, p)
    assert lam[0] > lam[1] and lam[0] > lam[2]
    # hand values: t=0, p=1 -> 1/2; t=1, p=0 -> 2/(e+1)
    assert close(domain_expertise_weight(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.0])),
                 [0.5, 2.0 / (math.e + 1.0)])


def test_gold_probability():
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])
    assert close(gold_probability(logits, torch.tensor([1, 0])), [0.75, 0.5])


def test_weighted_example_mean_is_per_example():
    loss = torch.tensor([1.0, 3.0])
    w = torch.tensor([1.0, 0.0])
    got = weighted_example_mean(loss, w)
    assert close(got, 0.5)                        # (1*1 + 0*3) / 2
    assert not close(got, w.mean() * loss.mean())  # batch-mean weighting would give 1.0


def test_meta_teacher_loss_hand_computation():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0])
    t = torch.tensor([0.5, 1.0])
    dlogits = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    z = torch.tensor([1, 0])
    ce = [math.log(1 + math.exp(-2.0)), math.log(1 + math.exp(1.0))]
    da = [math.log(1 + math.e), math.log(2.0)]
    want = (0.5 * ce[0] + 1.0 * ce[1]) / 2 + 0.2 * (da[0] + da[1]) / 2
    assert close(meta_teacher_loss(logits, labels, t, dlogits, z, gamma1=0.2), want)
    assert close(domain_adversarial_loss(dlogits, z), sum(da) / 2)
    with pytest.raises(HrkdError, match="gamma1"):
        meta_teacher_loss(logits, labels, t, dlogits, z, gamma1=-0.1)


def test_transferable_knowledge_loss():
    teacher = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    student = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    assert close(transferable_knowledge_loss(teacher, student, reduction="none"), [2.5, 1.0])
    assert close(transferable_knowledge_loss(teacher, student), 1.75)


def test_meta_distillation_stages_select_terms():
    ones = torch.ones(2)
    terms = {"embd": 1 * ones, "attn": 10 * ones, "hidn": 100 * ones, "pred": 1000 * ones}
    tkd = 10000 * ones
    lam = torch.tensor([1.0, 0.5])  # mean weight 0.75
    assert close(meta_distillation_loss(terms, lam, tkd, gamma2=0.5, stage="one"), 0.75 * 6111)
    assert close(meta_distillation_loss(terms, lam, tkd, gamma2=0.5, stage="intermediate"), 0.75 * 5111)
    assert close(meta_distillation_loss(terms, lam, tkd, gamma2=0.5, stage="prediction"), 0.75 * 1000)
    # scalar tkd is used for every example
    assert close(meta_distillation_loss(terms, lam, torch.tensor(10000.0), gamma2=0.5, stage="one"), 0.75 * 6111)
    # prediction stage needs only pred
    assert close(meta_distillation_loss({"pred": 1000 * ones}, lam, stage="prediction"), 750)


def test_meta_distillation_refuses_bad_input():
    terms = {"embd": torch.ones(2), "attn": torch.ones(2), "hidn": torch.ones(2), "pred": torch.ones(2)}
    lam = torch.ones(2)
    with pytest.raises(HrkdError, match="gamma2"):
        meta_distillation_loss(terms, lam, torch.ones(2), gamma2=-1.0)
    with pytest.raises(HrkdError, match="stage"):
        meta_distillation_loss(terms, lam, torch.ones(2), gamma2=0.5, stage="both")
    with pytest.raises(HrkdError, match="pred"):
        meta_distillation_loss({"embd": torch.ones(2)}, lam, stage="prediction")
    with pytest.raises(HrkdError, match="tkd"):
        meta_distillation_loss(terms, lam, None, gamma2=0.5, stage="one")
