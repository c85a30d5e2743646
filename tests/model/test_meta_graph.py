"""The `meta` graph mode (hrkd_cli/model/meta_graph.py) on a tiny stand-in for DistillationModel.

The stand-in has what MetaGraphUpdate relies on: `student` and `projections`
(theta), `relational` (phi, producing softmax ratios over domains from
prototypes of the projected features, as HierarchicalRelationalModule does) and
an optional `runtime` whose autocast() the forward uses. The loss is Eq. 17's
shape: sum_d r_d(phi, prototypes(theta)) * L_d(theta).
"""

import contextlib
import os
import tempfile

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from hrkd_cli.model.meta_graph import MetaGraphUpdate, ParamList, all_reduce_mean_
from hrkd_cli.runtime import Runtime

D, B, IN, HID, FEAT = 3, 4, 3, 5, 4


class Tiny(nn.Module):
    def __init__(self, dropout=0.0, runtime=None, graph=True):
        super().__init__()
        self.student = nn.Sequential(nn.Linear(IN, HID), nn.Tanh(), nn.Dropout(dropout))
        self.projections = nn.Linear(HID, FEAT)
        self.relational = (nn.Sequential(nn.Linear(FEAT, 3), nn.Tanh(), nn.Dropout(dropout), nn.Linear(3, 1))
                           if graph else nn.Identity())
        self.graph = graph
        self.runtime = runtime
        self.precisions_seen = []

    def forward(self, batch):
        x, y = batch  # [D, B, IN], [D, B, FEAT]
        rt = self.runtime
        self.precisions_seen.append(rt.precision if rt is not None else None)
        with rt.autocast() if rt is not None else contextlib.nullcontext():
            h = self.projections(self.student(x))
        h = h.to(y.dtype)
        per_domain = (h - y).pow(2).mean(dim=(1, 2))  # [D]
        if not self.graph:
            return per_domain.mean()
        protos = h.mean(dim=1)  # [D, FEAT]
        ratios = F.softmax(self.relational(protos).squeeze(-1), dim=0)
        return (ratios * per_domain).sum()


def loss_fn_for(model):
    def loss_fn(batch, module=None):
        return (module or model)(batch)
    return loss_fn


def make(seed=0, dtype=torch.float64, **kw):
    torch.manual_seed(seed)
    model = Tiny(**kw).to(dtype)
    g = torch.Generator().manual_seed(seed + 100)
    batches = [(torch.randn(D, B, IN, generator=g, dtype=dtype), torch.randn(D, B, FEAT, generator=g, dtype=dtype))
               for _ in range(2)]
    return model, batches[0], batches[1]


def split(model):
    theta = {n: p for n, p in model.named_parameters() if not n.startswith("relational.")}
    phi = {n: p for n, p in model.named_parameters() if n.startswith("relational.")}
    return theta, phi


def exact_meta_grad(model, train, held, xi, seed=None):
    """d L_val(theta - xi grad_theta L_train(theta, phi), phi) / d phi by double backward."""
    theta0, phi0 = split(model)
    theta = {n: p.detach().clone().requires_grad_() for n, p in theta0.items()}
    phi = {n: p.detach().clone().requires_grad_() for n, p in phi0.items()}
    if seed is not None:
        torch.manual_seed(seed)
    lt = functional_call(model, {**theta, **phi}, (train,))
    g = torch.autograd.grad(lt, list(theta.values()), create_graph=True)
    theta2 = {n: t - xi * gi for (n, t), gi in zip(theta.items(), g)}
    lv = functional_call(model, {**theta2, **phi}, (held,))
    return [x.detach() for x in torch.autograd.grad(lv, list(phi.values()))]


def flat(ts):
    return torch.cat([t.reshape(-1) for t in ts])


def rel_err(a, b):
    return float((flat(a) - flat(b)).norm() / flat(b).norm())


# ------------------------------------------------------------------ correctness of the meta-gradient

@pytest.mark.parametrize("xi", [0.1, 0.5])
def test_finite_difference_matches_exact_second_order(xi):
    model, train, held = make()
    mg = MetaGraphUpdate(model, graph_lr=1e-2)
    got, logs = mg.meta_gradient(loss_fn_for(model), train, held, lr=xi)
    exact = exact_meta_grad(model, train, held, xi)
    direct = exact_meta_grad(model, train, held, 0.0)
    # the second-order term matters here (otherwise the test would say little)
    assert rel_err(direct, exact) > 0.05
    assert rel_err(got, exact) < 1e-4
    # and the second-order part itself is right, not just swamped by the direct term
    second_got = [g - d for g, d in zip(got, direct)]
    second_exact = [e - d for e, d in zip(exact, direct)]
    assert rel_err(second_got, second_exact) < 1e-4
    assert logs["meta_second_order_norm"] > 0 and logs["meta_v_norm"] > 0


def test_finite_difference_error_is_second_order_in_eps():
    # what is left of the mismatch is the central difference's O(eps^2) truncation, not a bug
    model, train, held = make()
    exact = exact_meta_grad(model, train, held, 0.5)
    direct = exact_meta_grad(model, train, held, 0.0)
    errs = []
    for eps in (0.04, 0.01):
        got, _ = MetaGraphUpdate(model, 1e-2, eps=eps).meta_gradient(loss_fn_for(model), train, held, lr=0.5)
        errs.append(rel_err([g - d for g, d in zip(got, direct)], [e - d for e, d in zip(exact, direct)]))
    assert 10 < errs[0] / errs[1] < 22  # ~16 = (0.04 / 0.01)^2


def test_finite_difference_float32():
    model, train, held = make(seed=1, dtype=torch.float32)
    mg = MetaGraphUpdate(model, graph_lr=1e-2)
    got, _ = mg.meta_gradient(loss_fn_for(model), train, held, lr=0.5)
    model64 = Tiny().double()
    model64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    exact = exact_meta_grad(model64, tuple(t.double() for t in train), tuple(t.double() for t in held), 0.5)
    assert rel_err([g.double() for g in got], exact) < 1e-3


def test_xi_zero_is_the_direct_term():
    model, train, held = make(seed=2)
    mg = MetaGraphUpdate(model, graph_lr=1e-2)
    calls = []

    def loss_fn(batch, module=None):
        calls.append(batch is train)
        return model(batch)

    got, logs = mg.meta_gradient(loss_fn, train, held, lr=0.0)
    _, phi = split(model)
    direct = torch.autograd.grad(model(held), list(phi.values()))
    for a, b in zip(got, direct):
        assert torch.allclose(a, b, rtol=0, atol=1e-14)
    assert calls == [False]  # no look-ahead, no finite difference: one held-out pass
    assert logs["meta_second_order_norm"] == 0.0 and "meta_train_loss" not in logs


def test_separate_val_loss_fn():
    # a held-out objective that ignores the ratios: phi is learned through the look-ahead alone
    model, train, held = make(seed=11)
    mg = MetaGraphUpdate(model, graph_lr=1e-2)

    def unweighted(batch, module=None):
        x, y = batch
        return (model.projections(model.student(x)) - y).pow(2).mean()

    got0, _ = mg.meta_gradient(loss_fn_for(model), train, held, lr=0.0, val_loss_fn=unweighted)
    assert all(torch.count_nonzero(g) == 0 for g in got0)
    got, _ = mg.meta_gradient(loss_fn_for(model), train, held, lr=0.5, val_loss_fn=unweighted)
    assert float(flat(got).norm()) > 0


def test_dropout_masks_are_replayed_and_rng_restored():
    model, train, held = make(seed=3, dropout=0.3)
    model.train()
    mg = MetaGraphUpdate(model, graph_lr=1e-2)
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    got, _ = mg.meta_gradient(loss_fn_for(model), train, held, lr=0.5)
    assert torch.equal(torch.get_rng_state(), before)  # the training stream is untouched
    # reference: train pass and held-out pass drawn from the same stream, as in meta_gradient
    exact = exact_meta_grad(model, train, held, 0.5, seed=1234)
    assert rel_err(got, exact) < 1e-4


# ------------------------------------------------------------------ the update itself

def test_step_moves_phi_restores_theta_and_clears_grads():
    model, train, held = make(seed=4)
    theta, phi = split(model)
    theta0 = {n: p.detach().clone() for n, p in theta.items()}
    phi0 = {n: p.detach().clone() for n, p in phi.items()}
    for p in theta.values():  # stale gradients must not survive into the regular step
        p.grad = torch.ones_like(p)
    mg = MetaGraphUpdate(model, graph_lr=1e-2)
    grad, _ = mg.meta_gradient(loss_fn_for(model), train, held, lr=0.3)
    logs = mg.step(loss_fn_for(model), train, held, lr=0.3)
    for n, p in theta.items():
        assert torch.equal(p, theta0[n]), n  # bit for bit: saved and copied back
        assert p.grad is None
    for (n, p), g in zip(phi.items(), grad):
        assert not torch.equal(p, phi0[n]), n
        assert p.grad is None
        # Adam's first step: lr * g / (|g| + eps) (bias corrections cancel)
        expected = phi0[n] - 1e-2 * g / (g.abs() + 1e-8)
        assert torch.allclose(p.detach(), expected, atol=1e-10)
    assert set(logs) >= {"meta_val_loss", "meta_train_loss", "meta_grad_norm", "meta_direct_norm"}
    assert all(isinstance(v, float) for v in logs.values())


def test_phi_may_stay_frozen_outside_the_meta_step():
    # the caller may keep phi at requires_grad=False (no graph gradients in the regular step)
    model, train, held = make(seed=12)
    theta, phi = split(model)
    for p in phi.values():
        p.requires_grad_(False)
    phi0 = [p.detach().clone() for p in phi.values()]
    mg = MetaGraphUpdate(model, graph_lr=1e-2)
    assert [id(p) for p in mg.theta()] == [id(p) for p in theta.values()]
    expected, _ = mg.meta_gradient(loss_fn_for(model), train, held, lr=0.3)
    for p in phi.values():
        p.requires_grad_(True)
    reference, _ = mg.meta_gradient(loss_fn_for(model), train, held, lr=0.3)
    for p in phi.values():
        p.requires_grad_(False)
    assert all(torch.equal(a, b) for a, b in zip(expected, reference))
    mg.step(loss_fn_for(model), train, held, lr=0.3)
    assert all(not p.requires_grad and p.grad is None for p in phi.values())
    assert all(p.requires_grad for p in theta.values())
    assert all(not torch.equal(p, q) for p, q in zip(phi.values(), phi0))


def test_theta_restored_when_a_pass_raises():
    model, train, held = make(seed=5)
    theta, _ = split(model)
    theta0 = {n: p.detach().clone() for n, p in theta.items()}
    mg = MetaGraphUpdate(model, graph_lr=1e-2)
    n_calls = []

    def loss_fn(batch, module=None):
        n_calls.append(1)
        if len(n_calls) == 3:  # the theta+ pass, after the look-ahead moved theta
            raise RuntimeError("boom")
        return model(batch)

    with pytest.raises(RuntimeError, match="boom"):
        mg.step(loss_fn, train, held, lr=0.3)
    for n, p in theta.items():
        assert torch.equal(p, theta0[n]) and p.requires_grad


def test_non_finite_meta_gradient_skips_update():
    model, train, held = make(seed=6)
    _, phi = split(model)
    phi0 = [p.detach().clone() for p in phi.values()]
    mg = MetaGraphUpdate(model, graph_lr=1e-2)
    bad = (held[0], held[1] * float("nan"))
    logs = mg.step(loss_fn_for(model), train, bad, lr=0.3)
    assert logs["meta_skipped"] == 1.0
    assert all(torch.equal(p, q) for p, q in zip(phi.values(), phi0))


def test_bf16_runtime_finite_difference_in_fp32():
    rt = Runtime(device=torch.device("cpu"), precision="bf16")
    model, train, held = make(seed=7, dtype=torch.float32, runtime=rt)
    mg = MetaGraphUpdate(model, graph_lr=1e-2)
    mg.step(loss_fn_for(model), train, held, lr=0.3)
    # look-ahead and held-out passes in the model's precision, theta+- in fp32
    assert model.precisions_seen == ["bf16", "bf16", "fp32", "fp32"]
    assert model.runtime is rt
    model.precisions_seen.clear()
    MetaGraphUpdate(model, 1e-2, finite_difference_precision="inherit").step(loss_fn_for(model), train, held, lr=0.3)
    assert model.precisions_seen == ["bf16"] * 4


def test_model_without_graph_parameters_is_a_no_op():
    model, train, held = make(seed=8, graph=False)  # the "- Domain Rel." ablation has no phi
    mg = MetaGraphUpdate(model, graph_lr=1e-2)
    assert list(mg.params) == [] and mg.optimizer.state_dict()["state"] == {}
    assert mg.step(loss_fn_for(model), train, held, lr=0.3) == {}


def test_params_membership_is_by_identity():
    model, _, _ = make(seed=9)
    mg = MetaGraphUpdate(model, graph_lr=1e-2)
    assert isinstance(mg.params, ParamList) and isinstance(mg.params, list)
    # the filter train_student passes to fit(params=...): a plain list would compare tensors with ==
    kept = [p for p in model.parameters() if p.requires_grad and not (mg and p in mg.params)]
    assert [id(p) for p in kept] == [id(p) for p in model.student.parameters()] + \
        [id(p) for p in model.projections.parameters()]
    assert all(p in mg.params for p in model.relational.parameters())
    assert mg.optimizer.param_groups[0]["params"] == list(mg.params)


# ------------------------------------------------------------------ two ranks (gloo)

def _rank_main(rank, world, init_file, out_dir):
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model, _, _ = make(seed=10)
        train, held = rank_batches(rank)
        torch.manual_seed(rank)  # ranks differ in their RNG too; irrelevant here (no dropout)
        mg = MetaGraphUpdate(model, graph_lr=1e-2)
        grad, _ = mg.meta_gradient(loss_fn_for(model), train, held, lr=0.4)
        mg.step(loss_fn_for(model), train, held, lr=0.4)
        t = torch.ones(2) * (rank + 1)
        all_reduce_mean_([t])
        torch.save({"grad": grad, "phi": [p.detach() for p in model.relational.parameters()], "mean": t},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        torch.distributed.destroy_process_group()


def rank_batches(rank):
    g = torch.Generator().manual_seed(50 + rank)
    return [(torch.randn(D, B, IN, generator=g, dtype=torch.float64),
             torch.randn(D, B, FEAT, generator=g, dtype=torch.float64)) for _ in range(2)]


def test_two_ranks_average_and_agree():
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        # fork: no re-import of torch in the children (spawn costs ~10 s on two cores)
        ctx = mp.start_processes(_rank_main, args=(2, os.path.join(tmp, "init"), tmp), nprocs=2, join=False,
                                 start_method="fork")
        for _ in range(12):  # at most a minute, never a hung test run
            if ctx.join(timeout=5):
                break
        else:
            for proc in ctx.processes:
                proc.kill()
            pytest.fail("the two ranks did not finish within 60 s")
        r0, r1 = (torch.load(os.path.join(tmp, f"rank{r}.pt"), weights_only=True) for r in range(2))
    assert torch.equal(r0["mean"], torch.full((2,), 1.5))
    for a, b in zip(r0["phi"], r1["phi"]):
        assert torch.equal(a, b)  # every rank's graph stays identical
    # == one process on the global batch, whose loss is the mean of the ranks' losses
    model, _, _ = make(seed=10)
    (t0, h0), (t1, h1) = rank_batches(0), rank_batches(1)

    def mean_loss(batch, module=None):
        return 0.5 * (model(batch[0]) + model(batch[1]))

    single, _ = MetaGraphUpdate(model, graph_lr=1e-2).meta_gradient(mean_loss, (t0, t1), (h0, h1), lr=0.4)
    assert rel_err(r0["grad"], single) < 1e-10 and rel_err(r1["grad"], single) < 1e-10
