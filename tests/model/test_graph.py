import pytest
import torch
import torch.nn.functional as F

from hrkd_cli.model.graph import (DomainRelationalGraph, GraphAttentionLayer, HierarchicalRelationalModule,
                                  compare_aggregate, prototype_sum_and_count, reference_prototypes)

M, D, FD = 3, 4, 6  # student layers, domains, prototype width


def _protos(seed=0):
    return torch.randn(M + 1, D, FD, generator=torch.Generator().manual_seed(seed))


def _module(drop=(), seed=0):
    torch.manual_seed(seed)
    return HierarchicalRelationalModule(M, D, FD, gat_heads=2, drop=drop).eval()


# --------------------------------------------------------------------------- prototypes

def _prototype(feats, mask, include_padding=False):
    """Eq. 6 as the KD model takes it: the token sum divided by the token count (after all-reducing both)."""
    sums, count = prototype_sum_and_count(feats, mask, include_padding)
    return sums / count


def test_prototypes_ignore_padding():
    # one layer, B=2, L=3; example 0 has 2 real tokens, example 1 has 1
    x = torch.tensor([[[1.0, 0.0], [3.0, 2.0], [100.0, 100.0]],
                      [[5.0, 4.0], [-50.0, 7.0], [9.0, 9.0]]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    feats = [x, 2 * x]
    p = _prototype(feats, mask)
    assert torch.allclose(p, torch.tensor([[3.0, 2.0], [6.0, 4.0]]))  # (1+3+5)/3, (0+2+4)/3
    p_pad = _prototype(feats, mask, include_padding=True)
    assert torch.allclose(p_pad, torch.stack([x.mean((0, 1)), 2 * x.mean((0, 1))]))
    assert not torch.allclose(p, p_pad)


def test_sum_and_count_give_the_token_mean_in_float32():
    g = torch.Generator().manual_seed(1)
    feats = [torch.randn(3, 5, 4, generator=g).bfloat16() for _ in range(M + 1)]
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    for pad in (False, True):
        sums, count = prototype_sum_and_count(feats, mask, include_padding=pad)
        assert sums.shape == (M + 1, 4) and sums.dtype == torch.float32
        assert count.dtype == torch.float32 and count.item() == (15 if pad else 9)
        weights = torch.ones(3, 5) if pad else mask.float()
        mean = torch.stack([(f.float() * weights[..., None]).sum((0, 1)) / weights.sum() for f in feats])
        assert torch.allclose(sums / count, mean)
    # two sub-batches (e.g. two ranks) pooled = the prototype of the joint batch
    s1, c1 = prototype_sum_and_count([f[:2] for f in feats], mask[:2])
    s2, c2 = prototype_sum_and_count([f[2:] for f in feats], mask[2:])
    assert torch.allclose((s1 + s2) / (c1 + c2), _prototype(feats, mask))


# --------------------------------------------------------------------------- GAT

def _gat_loop(layer, x):
    """Eq. 7-9 written node by node, as a cross-check of the vectorised layer."""
    outs = []
    for k in range(layer.heads):
        W, a = layer.W[k], layer.a[k]
        Wh = x @ W
        n = x.shape[0]
        s = torch.stack([torch.stack([a @ torch.cat([Wh[i], Wh[j]]) for j in range(n)]) for i in range(n)])
        alpha = torch.softmax(F.leaky_relu(s, 0.2), dim=1)
        outs.append(F.elu(alpha @ Wh))
    return torch.cat(outs, dim=1)


def test_gat_layer_matches_node_by_node():
    torch.manual_seed(0)
    layer = GraphAttentionLayer(5, 3, heads=2).eval()
    x = torch.randn(4, 5)
    out = layer(x)
    assert out.shape == (4, 6)
    assert torch.allclose(out, _gat_loop(layer, x), atol=1e-6)


def test_gat_dropout_only_in_training():
    torch.manual_seed(0)
    layer = GraphAttentionLayer(5, 3, heads=2, dropout=0.5)
    x = torch.randn(4, 5)
    layer.eval()
    assert torch.equal(layer(x), layer(x))
    layer.train()
    assert not torch.allclose(layer(x), layer.eval()(x))


def test_domain_relational_graph_ratios():
    torch.manual_seed(0)
    g = DomainRelationalGraph(FD, heads=3).eval()
    assert g.layer1.W.shape == (3, FD, FD) and g.layer2.W.shape == (1, 3 * FD, 1)
    assert g.layer2.a.shape == (1, 2)
    r = g(torch.randn(D, FD))
    assert r.shape == (D,)
    assert torch.allclose(r.sum(), torch.tensor(1.0))
    assert (r > 0).all()


def test_init_is_deterministic_given_seed():
    a, b = _module(seed=5), _module(seed=5)
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert na == nb and torch.equal(pa, pb)
    assert not torch.equal(a.W_H, _module(seed=6).W_H)


# --------------------------------------------------------------------------- compare-aggregate

def test_reference_prototypes_by_hand():
    h = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    W = torch.eye(2)
    rp, alpha = reference_prototypes(h, W)
    expect_alpha = torch.softmax(h @ h.T, dim=-1)
    assert alpha.shape == (3, 3)
    assert torch.allclose(alpha, expect_alpha)
    assert torch.allclose(alpha.sum(-1), torch.ones(3))
    assert torch.allclose(rp, expect_alpha @ h)


def test_compare_aggregate_by_hand_and_batched():
    h_upto = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # m = 2
    W = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    rp = torch.tensor([1.0, 0.5])
    ap, alpha = compare_aggregate(h_upto, W, rp)
    expect = torch.softmax(torch.tensor([2.0, 0.5, 2.5]), 0)
    assert alpha.shape == (3,)
    assert torch.allclose(alpha, expect)
    assert torch.allclose(ap, expect @ h_upto)
    # batched over domains gives the same per-domain result
    g = torch.Generator().manual_seed(0)
    hb, Wb, rb = torch.randn(D, 3, FD, generator=g), torch.randn(D, FD, FD, generator=g), torch.randn(D, FD, generator=g)
    apb, alb = compare_aggregate(hb, Wb, rb)
    for d in range(D):
        ap_d, al_d = compare_aggregate(hb[d], Wb[d], rb[d])
        assert torch.allclose(apb[d], ap_d, atol=1e-5) and torch.allclose(alb[d], al_d, atol=1e-5)


# --------------------------------------------------------------------------- full module

def _manual_forward(mod, h, rp_fn):
    """Layer 0 graph on raw prototypes, layer m graph on AP_m, with rp_fn(m) the reference prototypes."""
    ratios = [mod.graphs[0](h[0])]
    for m in range(1, M + 1):
        ap, _ = compare_aggregate(h[: m + 1].transpose(0, 1), mod.W_H[m - 1], rp_fn(m))
        ratios.append(mod.graphs[m](ap))
    return torch.stack(ratios)


class ProbeGraph(torch.nn.Module):
    """Stand-in graph whose ratios visibly depend on every input coordinate.

    The real two-layer GAT often returns exactly uniform ratios at random init
    (see DomainRelationalGraph), which would make perturbation tests vacuous.
    """

    def __init__(self, seed):
        super().__init__()
        self.v = torch.randn(FD, generator=torch.Generator().manual_seed(seed))

    def forward(self, x):
        return torch.softmax(x @ self.v, dim=0)


def _probed(drop=(), seed=0):
    mod = _module(drop, seed)
    if mod.uses_graph:
        mod.graphs = torch.nn.ModuleList([ProbeGraph(100 + m) for m in range(M + 1)])
    return mod


def test_full_module_shapes_and_normalisation():
    mod, h = _module(), _protos()
    out = mod(h)
    assert out.ratios.shape == (M + 1, D)
    assert torch.allclose(out.ratios.sum(-1), torch.ones(M + 1))
    assert len(out.similarity) == M and len(out.reference_attention) == M
    assert len(out.graph_inputs) == M + 1 and torch.equal(out.graph_inputs[0], h[0])
    for m in range(1, M + 1):
        assert out.similarity[m - 1].shape == (D, m + 1)
        assert torch.allclose(out.similarity[m - 1].sum(-1), torch.ones(D))
        assert out.reference_attention[m - 1].shape == (D, D)
        assert torch.allclose(out.reference_attention[m - 1].sum(-1), torch.ones(D))
    manual = _manual_forward(mod, h, lambda m: reference_prototypes(h[m], mod.W_D[m - 1])[0])
    assert torch.allclose(out.ratios, manual, atol=1e-6)


def test_full_module_hierarchy_reaches_later_layers():
    mod, h = _probed(), _protos()
    out = mod(h)
    for m in range(1, M + 1):  # graph input is AP_m = alpha^H h_{<=m}
        ap = torch.einsum("dl,ldf->df", out.similarity[m - 1], h[: m + 1])
        assert torch.allclose(out.graph_inputs[m], ap, atol=1e-6)
    h2 = h.clone()
    h2[0] += 1.0  # layer 0 reaches layer 2's ratios through AP_2
    assert not torch.allclose(mod(h2).ratios[2], out.ratios[2])
    h3 = h.clone()
    h3[3] += 1.0  # a later layer never reaches an earlier one
    assert torch.allclose(mod(h3).ratios[:3], out.ratios[:3])


def test_scalar_gat_layer_uniform_when_scores_share_sign():
    # documents the Eq. 10-12 property noted in DomainRelationalGraph
    layer = GraphAttentionLayer(3, 1, heads=1).eval()
    with torch.no_grad():
        layer.W.fill_(1.0)
        layer.a.copy_(torch.tensor([[0.5, 2.0]]))
    x = torch.rand(4, 3) + 0.1  # z_j > 0, so every s'_ij > 0
    out = layer(x)
    assert torch.allclose(out, out[0].expand_as(out))
    with torch.no_grad():
        layer.a.copy_(torch.tensor([[2.0, -2.0]]))  # mixed signs: nodes differ
    out = layer(x)
    assert not torch.allclose(out, out[0].expand_as(out))


def test_bf16_input_computed_in_float32():
    mod, h = _module(), _protos()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = mod(h)
    assert out.ratios.dtype == torch.float32
    assert torch.allclose(out.ratios, mod(h).ratios)


def test_same_seed_shares_kept_parts_across_ablations():
    full = _module()
    sa = _module(drop={"self-attention"})
    assert torch.equal(full.W_H, sa.W_H)
    assert torch.equal(full.graphs[2].layer1.W, _module(drop={"hierarchical"}).graphs[2].layer1.W)


def test_ablation_self_attention():
    full, h = _probed(), _protos()
    ab = _probed(drop={"self-attention"})
    assert ab.W_D is None and ab.W_H is not None
    out = ab(h)
    manual = _manual_forward(ab, h, lambda m: h[m])  # RP_m = h_m
    assert torch.allclose(out.ratios, manual, atol=1e-6)
    assert all(torch.equal(a, torch.eye(D)) for a in out.reference_attention)
    # only the reference prototypes differ from the full model
    full_out = full(h)
    assert torch.equal(full_out.ratios[0], out.ratios[0])
    assert not torch.allclose(full_out.ratios[1:], out.ratios[1:])
    assert not torch.allclose(full_out.similarity[0], out.similarity[0])


def test_ablation_comp_agg():
    full, h = _probed(), _protos()
    ab = _probed(drop={"comp-agg"})
    assert ab.W_D is None and ab.W_H is None
    out = ab(h)
    assert all(a is None for a in out.reference_attention)
    for m in range(1, M + 1):
        assert torch.allclose(out.similarity[m - 1], torch.full((D, m + 1), 1.0 / (m + 1)))
        assert torch.allclose(out.graph_inputs[m], h[: m + 1].mean(0))
        assert torch.allclose(out.ratios[m], ab.graphs[m](h[: m + 1].mean(0)), atol=1e-6)
    assert torch.equal(full(h).ratios[0], out.ratios[0])
    assert not torch.allclose(full(h).ratios[1:], out.ratios[1:])


def test_ablation_hierarchical():
    ab, h = _probed(drop={"hierarchical"}), _protos()
    out = ab(h)
    g = torch.Generator().manual_seed(7)
    for m in range(M + 1):
        assert torch.equal(out.graph_inputs[m], h[m])
        others = [i for i in range(M + 1) if i != m]
        h2 = h.clone()
        h2[others] += torch.randn(M, D, FD, generator=g)
        assert torch.allclose(ab(h2).ratios[m], out.ratios[m])
        h3 = h.clone()
        h3[m] += torch.randn(D, FD, generator=g)
        assert not torch.allclose(ab(h3).ratios[m], out.ratios[m])
    assert torch.equal(out.similarity[1], torch.tensor([[0.0, 0.0, 1.0]] * D))
    # the real GAT is wired the same way
    real = _module(drop={"hierarchical"})
    for m in range(M + 1):
        assert torch.allclose(real(h).ratios[m], real.graphs[m](h[m]), atol=1e-6)


def test_ablation_domain_rel():
    ab = _module(drop={"domain-rel"})
    assert not ab.uses_graph and len(list(ab.parameters())) == 0
    for seed in (0, 1):
        out = ab(_protos(seed))
        assert torch.equal(out.ratios, torch.full((M + 1, D), 1.0 / D))
    assert _module().uses_graph


def test_progressive_ablations_combine():
    h = _protos()
    prog = _probed(drop={"self-attention", "comp-agg", "hierarchical"})
    assert prog.W_D is None and prog.W_H is None and len(prog.graphs) == M + 1
    out = prog(h)
    for m in range(M + 1):  # hierarchical wins over comp-agg: each graph sees its own layer
        assert torch.equal(out.graph_inputs[m], h[m])
    assert not torch.allclose(out.ratios, _probed(drop={"self-attention", "comp-agg"})(h).ratios)
    everything = _module(drop={"self-attention", "comp-agg", "hierarchical", "domain-rel"})
    assert torch.equal(everything(h).ratios, torch.full((M + 1, D), 1.0 / D))
    with pytest.raises(ValueError):
        _module(drop={"graph"})


def test_frozen_params_still_pass_gradient_to_prototypes():
    mod = _module().train()  # training mode: dropout on, as in the training loop
    for p in mod.parameters():
        p.requires_grad_(False)
    h = _protos().requires_grad_(True)
    weights = torch.arange(1.0, (M + 1) * D + 1).reshape(M + 1, D)
    torch.manual_seed(0)
    (mod(h).ratios * weights).sum().backward()
    assert (h.grad.abs().sum(dim=(1, 2)) > 1e-4).all()  # every layer's prototypes
    assert all(p.grad is None for p in mod.parameters())


def test_gradient_reaches_all_params_when_trainable():
    mod, h = _module().train(), _protos()
    weights = torch.arange(1.0, (M + 1) * D + 1).reshape(M + 1, D)
    torch.manual_seed(0)
    (mod(h).ratios * weights).sum().backward()
    for name, p in mod.named_parameters():
        assert p.grad is not None, name
    assert mod.W_D.grad.abs().sum() > 1e-4 and mod.W_H.grad.abs().sum() > 1e-4
    assert all(g.layer1.W.grad.abs().sum() > 1e-4 for g in mod.graphs)


def test_prototype_shape_checked():
    with pytest.raises(ValueError):
        _module()(torch.randn(M, D, FD))


# --------------------------------------------------------------------------- the paper graph's collapse, the new read-outs

def _same_sign_case():
    """A paper graph whose layer-2 scores all share one sign (checked), on distinct prototypes."""
    torch.manual_seed(3)
    g = DomainRelationalGraph(6, hidden_dim=4, heads=2, dropout=0.0).eval()
    with torch.no_grad():
        g.layer2.a.copy_(torch.tensor([[0.5, 0.5]]))  # a'_1 = a'_2 > 0: s'_ij = (z_i + z_j) / 2
    x = torch.rand(4, 6) + 1.0
    z = g.layer2.W[0].T @ g.layer1(x).T  # [1, N] scalars of Eq. 10
    assert (z > 0).all() or (z < 0).all()  # so every s'_ij shares their sign
    return g, x


def test_paper_graph_same_sign_scores_give_uniform_ratios_and_zero_gradient():
    g, x = _same_sign_case()
    x = x.clone().requires_grad_(True)
    r = g(x)
    assert torch.equal(r, torch.full((4,), 0.25)) or torch.allclose(r, torch.full((4,), 0.25), atol=1e-7)
    # any loss of the ratios: the gradient to the prototypes and to every parameter is exactly zero
    loss = (r * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum()
    grads = torch.autograd.grad(loss, [x] + list(g.parameters()), allow_unused=True)
    assert all(gr is None or gr.abs().max() < 1e-7 for gr in grads)


def test_residual_graph_ratios_depend_on_prototypes_with_gradient():
    from hrkd_cli.model.graph import ResidualRelationalGraph

    torch.manual_seed(3)
    g = ResidualRelationalGraph(6, hidden_dim=4, heads=2, dropout=0.0).eval()
    x = (torch.rand(4, 6) + 1.0).requires_grad_(True)  # the inputs that collapse the paper graph above
    r = g(x, temperature=1.0, floor=0.0)
    assert (r.max() - r.min()) > 1e-3  # the domains get different ratios
    assert torch.allclose(r.sum(), torch.tensor(1.0))
    loss = (r * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum()
    gx, gw = torch.autograd.grad(loss, [x, g.readout])
    assert gx.abs().sum() > 0 and gw.abs().sum() > 0
    # other prototypes, other ratios
    r2 = g(x.detach() + torch.randn(4, 6), temperature=1.0, floor=0.0)
    assert not torch.allclose(r, r2)


def test_readout_by_hand():
    from hrkd_cli.model.graph import excess_loss_feature, mix_with_uniform, readout_ratios, relational_scores

    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    x = torch.tensor([[2.0], [0.0]])  # mean 1: deviations +1, -1
    w = torch.tensor([1.0, 2.0, 0.5])
    s = relational_scores(z, x, w)
    assert torch.allclose(s, torch.tensor([1.0 + 0.5, 2.0 - 0.5]))
    r = readout_ratios(s, temperature=2.0, floor=0.5)
    p = torch.softmax(s / 2.0, dim=0)
    assert torch.allclose(r, 0.5 * p + 0.25)
    # the floor keeps a one-hot softmax away from one-hot
    assert torch.allclose(mix_with_uniform(torch.tensor([1.0, 0.0, 0.0, 0.0]), 0.4), torch.tensor([0.7, 0.1, 0.1, 0.1]))
    assert torch.allclose(excess_loss_feature(torch.tensor([1.0, 3.0])), torch.tensor([-0.5, 0.5]))


def test_excess_graph_moves_weight_to_the_domain_that_lags():
    torch.manual_seed(0)
    mod = HierarchicalRelationalModule(2, 3, 8, gat_heads=2, dropout=0.0, graph="excess", floor=0.0, excess_beta=5.0,
                                       excess_decay=0.5).eval()
    protos = torch.randn(3, 3, 8)
    before = mod(protos).ratios
    mod.observe(torch.tensor([[1.0, 1.0, 1.0]] * 3))  # equal losses: g = 0, ratios unchanged
    assert torch.allclose(mod(protos).ratios, before, atol=1e-6)
    mod.observe(torch.tensor([[1.0, 1.0, 4.0]] * 3))  # domain 2 lags: running mean 1, 1, 2.5
    assert torch.allclose(mod.loss_ema[0], torch.tensor([1.0, 1.0, 2.5]))
    after = mod(protos).ratios
    assert (after[:, 2] > before[:, 2]).all() and (after[:, :2] < before[:, :2]).all()
    assert "loss_ema" in mod.state_dict()  # saved with the checkpoint, so a resume continues the same ratios
    paper = HierarchicalRelationalModule(2, 3, 8, gat_heads=2, dropout=0.0)
    assert "loss_ema" not in paper.state_dict()  # the paper module's checkpoints keep their keys


def test_new_graphs_keep_the_ablation_switches():
    torch.manual_seed(0)
    protos = torch.randn(3, 3, 8)
    for graph in ("residual", "excess"):
        full = HierarchicalRelationalModule(2, 3, 8, gat_heads=2, dropout=0.0, graph=graph).eval()
        assert full.W_H is not None and full.W_D is not None
        no_rel = HierarchicalRelationalModule(2, 3, 8, gat_heads=2, dropout=0.0, graph=graph, drop=["domain-rel"]).eval()
        assert torch.allclose(no_rel(protos).ratios, torch.full((3, 3), 1 / 3))
        no_ca = HierarchicalRelationalModule(2, 3, 8, gat_heads=2, dropout=0.0, graph=graph, drop=["comp-agg"]).eval()
        out = no_ca(protos)
        assert no_ca.W_H is None and torch.allclose(out.similarity[1], torch.full((3, 3), 1 / 3))
        assert torch.allclose(out.graph_inputs[2], protos.mean(dim=0))


def test_kl_to_uniform_by_hand():
    import math

    from hrkd_cli.model.losses import kl_uniform_to_ratios

    r = torch.tensor([[0.5, 0.5], [0.25, 0.75]])
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert abs(float(kl_uniform_to_ratios(r)) - expected) < 1e-6
