import math

import pytest
import torch

from hrkd_cli.model.losses import (DomainLosses, attention_loss, embedding_loss, hidden_loss,
                             hrkd_loss, multi_domain_kd_loss, soft_cross_entropy)


def test_embedding_and_hidden_loss_by_hand():
    s = torch.tensor([[[1.0, 2.0]], [[0.0, 0.0]]])  # [B=2, L=1, F=2]
    t = torch.tensor([[[1.0, 0.0]], [[3.0, 1.0]]])
    # squared errors: ex0 (0, 4) ex1 (9, 1) -> per-example means 2 and 5
    for fn in (embedding_loss, hidden_loss):
        assert fn(s, t).item() == pytest.approx(3.5)
        assert torch.allclose(fn(s, t, reduction="none"), torch.tensor([2.0, 5.0]))


def test_none_reduction_shape_and_mean():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(3, 4, 5, generator=g), torch.randn(3, 4, 5, generator=g)
    per = hidden_loss(s, t, reduction="none")
    assert per.shape == (3,)
    assert torch.allclose(per.mean(), hidden_loss(s, t))
    a_s, a_t = torch.randn(3, 2, 4, 4, generator=g), torch.randn(3, 2, 4, 4, generator=g)
    per = attention_loss(a_s, a_t, reduction="none")
    assert per.shape == (3,)
    assert torch.allclose(per.mean(), attention_loss(a_s, a_t))
    z_s, z_t = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    per = soft_cross_entropy(z_s, z_t, reduction="none")
    assert per.shape == (3,)
    assert torch.allclose(per.mean(), soft_cross_entropy(z_s, z_t))
    with pytest.raises(ValueError):
        hidden_loss(s, t, reduction="sum")


def test_attention_scores_mask_rule():
    # [B=1, h=2, L=1, L=2]; the second key position is masked in both models
    s = torch.tensor([[[[1.0, -1e4]], [[2.0, -1e4]]]])
    t = torch.tensor([[[[0.0, -10000.5]], [[0.0, -1e2]]]])  # -1e2 itself counts as masked
    # masked entries -> 0 in both; per-head MSE = (1/2, 4/2) -> head mean 1.25
    assert attention_loss(s, t, mode="scores").item() == pytest.approx(1.25)
    # "probs" compares raw values: the mask entries no longer cancel
    assert attention_loss(s, t, mode="probs").item() > 1.0
    # a value just above the threshold is a real score and is kept
    t2 = t.clone()
    t2[0, 1, 0, 1] = -99.0
    assert attention_loss(s, t2, mode="scores").item() == pytest.approx((1 + 4 + 99.0 ** 2) / 4)


def test_attention_probs_plain_mse_and_per_head_mean():
    g = torch.Generator().manual_seed(1)
    s = torch.softmax(torch.randn(2, 3, 4, 4, generator=g), -1)
    t = torch.softmax(torch.randn(2, 3, 4, 4, generator=g), -1)
    per_head = torch.stack([((s[:, i] - t[:, i]) ** 2).mean() for i in range(3)])
    assert torch.allclose(attention_loss(s, t, mode="probs"), per_head.mean())
    with pytest.raises(ValueError):
        attention_loss(s, t, mode="logits")


def test_attention_loss_float32_from_bf16():
    s = torch.full((1, 1, 2, 2), 1.0, dtype=torch.bfloat16)
    t = torch.full((1, 1, 2, 2), 1.0 + 2 ** -6, dtype=torch.bfloat16)
    out = attention_loss(s, t)
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(2.0 ** -12)


def test_soft_cross_entropy_by_hand():
    zs = torch.tensor([[0.0, math.log(3.0)]])  # student probs (1/4, 3/4)
    zt = torch.tensor([[math.log(2.0), 0.0]])  # teacher probs (2/3, 1/3)
    expect = -(2 / 3 * math.log(1 / 4) + 1 / 3 * math.log(3 / 4))
    assert soft_cross_entropy(zs, zt).item() == pytest.approx(expect, rel=1e-6)
    assert soft_cross_entropy(zs, zt, class_reduction="mean").item() == pytest.approx(expect / 2, rel=1e-6)
    # temperature softens both sides: t=2 on doubled logits gives the same value
    assert soft_cross_entropy(2 * zs, 2 * zt, temperature=2.0).item() == pytest.approx(expect, rel=1e-6)


def test_soft_cross_entropy_class_mean_is_sum_over_C():
    g = torch.Generator().manual_seed(2)
    zs, zt = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    assert torch.allclose(soft_cross_entropy(zs, zt, class_reduction="mean", reduction="none"),
                          soft_cross_entropy(zs, zt, reduction="none") / 3)


def _domain_losses(D=3, M=2):
    g = torch.Generator().manual_seed(3)
    return (torch.rand(D, generator=g), torch.rand(D, M, generator=g),
            torch.rand(D, M, generator=g), torch.rand(D, generator=g))


def test_multi_domain_kd_loss_by_hand():
    embd = torch.tensor([1.0, 2.0])
    attn = torch.tensor([[0.1, 0.2], [0.3, 0.4]])
    hidn = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    pred = torch.tensor([5.0, 7.0])
    assert multi_domain_kd_loss(embd, attn, hidn, pred).item() == pytest.approx(3 + 1 + 2 + 12)
    assert multi_domain_kd_loss(embd, attn, hidn, pred, gamma=0.5).item() == pytest.approx(3 + 1 + 2 + 6)


def test_hrkd_loss_by_hand():
    embd = torch.tensor([1.0, 2.0])
    attn = torch.tensor([[0.1, 0.2], [0.3, 0.4]])
    hidn = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    pred = torch.tensor([5.0, 7.0])
    ratios = torch.tensor([[0.25, 0.75],   # embedding
                           [0.5, 0.5],     # layer 1
                           [0.9, 0.1]])    # layer 2
    expect = (0.25 * 1 + 0.75 * 2
              + 0.5 * (0.1 + 1.0) + 0.5 * (0.3 + 0.0)
              + 0.9 * (0.2 + 0.0) + 0.1 * (0.4 + 1.0)
              + 1.0 / 2 * (5 + 7))
    assert hrkd_loss(embd, attn, hidn, pred, ratios).item() == pytest.approx(expect)


def test_hrkd_uniform_ratios_is_eq5_over_D():
    D, M = 3, 2
    embd, attn, hidn, pred = _domain_losses(D, M)
    uniform = torch.full((M + 1, D), 1.0 / D)
    for gamma in (1.0, 0.3):
        eq17 = hrkd_loss(embd, attn, hidn, pred, uniform, gamma=gamma)
        eq5 = multi_domain_kd_loss(embd, attn, hidn, pred, gamma=gamma)
        assert torch.allclose(eq17, eq5 / D)
    # non-uniform ratios break the identity
    skew = torch.softmax(torch.arange(D, dtype=torch.float32) * 3, 0).expand(M + 1, D)
    assert not torch.allclose(hrkd_loss(embd, attn, hidn, pred, skew), multi_domain_kd_loss(embd, attn, hidn, pred) / D)


def test_domain_losses_total_and_gradient_to_ratios():
    embd, attn, hidn, pred = _domain_losses()
    dl = DomainLosses(embd, attn, hidn, pred)
    ratios = torch.full((3, 3), 1 / 3, requires_grad=True)
    assert torch.allclose(dl.total(), multi_domain_kd_loss(embd, attn, hidn, pred))
    total = dl.total(ratios, gamma=2.0)
    assert torch.allclose(total, hrkd_loss(embd, attn, hidn, pred, ratios, gamma=2.0))
    total.backward()
    # d total / d r_{m,d} is exactly the loss term it weights
    assert torch.allclose(ratios.grad[0], embd)
    assert torch.allclose(ratios.grad[1:], (attn + hidn).T)
