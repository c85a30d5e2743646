"""The `meta` graph training mode (docs/method.md, Objectives for learning the ratios; our own extension): a DARTS-style
bi-level update of the domain-relational graph's parameters.

Notation. phi = every parameter of ``model.relational`` (GAT weights, W^D, W^H);
theta = every other trainable parameter of the model (student and projections).
L_train(theta, phi) is the HRKD loss (Eq. 17) on the current step's batch;
L_val(theta, phi) is the same distillation loss on a held-out batch. In `hrkd
distill` that batch is the *next step's training batch* of the schedule: a
held-out **training** batch (held out from this step's look-ahead only; it is
trained on at the next step), never dev data, so dev stays clean for model
selection. L_val depends on phi directly, through the ratios that weight its
terms, as well as through theta' below.

The bi-level problem min_phi L_val(theta*(phi), phi), theta*(phi) = argmin_theta
L_train(theta, phi), is approximated as in DARTS (Liu et al. 2019, sec. 2.3):

1. One-step unrolling (plain SGD look-ahead, xi = the student's current
   learning rate; the real optimiser is AdamW, whose momentum and weight decay
   the look-ahead ignores, as DARTS' paper does):
       theta' = theta - xi * grad_theta L_train(theta, phi).
   Its exact gradient is
       g(phi) = grad_phi L_val(theta', phi) - xi * H v,
       v = grad_theta L_val(theta', phi),  H = d^2 L_train / (d phi d theta) at (theta, phi).
2. The mixed second-derivative-vector product H v is replaced by DARTS' central
   finite difference with theta+- = theta +- eps v, eps = 0.01 / ||v||:
       H v ~= [grad_phi L_train(theta+, phi) - grad_phi L_train(theta-, phi)] / (2 eps).

So the update is DARTS' *second-order* approximation (xi > 0) computed with
first-order (gradient-only) quantities: no Hessian is ever formed, only four
forward/backward passes. Precisely: the finite-difference step is exact when
grad_phi L_train is affine in theta on the segment [theta-, theta+] (e.g. L_train
quadratic in theta, or bilinear in (theta, phi)); otherwise its error is
O(eps^2 ||v||^2) = O(1e-4) times the third derivatives of L_train, i.e. g is the
exact gradient of the one-step-unrolled objective up to that error (the tests
check this against double-backward autograd). With xi = 0 (or v = 0) it reduces
to the direct term grad_phi L_val(theta, phi), which is DARTS' *first-order*
approximation. What is *not* claimed: that one SGD step stands for
theta*(phi) (the usual truncation of bi-level optimisation).

Details that keep the approximation honest in practice:
- The three passes on the train batch (look-ahead, theta+, theta-) start from
  one saved RNG state, so dropout (student and GAT) draws the same masks in
  each; otherwise the difference of two noisy gradients divided by 2 eps would
  be noise. The RNG state is restored afterwards, so the meta step leaves the
  training stream's randomness untouched (the regular step that follows draws
  the same masks as the look-ahead).
- With eps ||v|| = 0.01 spread over ~10^7 student weights, the per-weight
  perturbation (~3e-6) is far below bf16's resolution (~1e-3 relative), so
  under bf16 autocast the two theta+- passes would mostly see the same rounded
  weights (on a 0.3M-weight toy, bf16 passes put a 10% error on the
  second-order term, fp32 ones 1%). They therefore run in float32 ("highest"
  matmul precision, no TF32)
  when the model carries a bf16 ``runtime`` (DistillationModel does); set
  ``finite_difference_precision="inherit"`` to keep the model's precision.
- theta is saved before the look-ahead and copied back exactly afterwards (no
  drift), even if a pass raises; theta's .grad is left None so the regular
  step starts clean. Gradients are taken with torch.autograd.grad only
  (never .backward()), so no .grad is touched and, under DDP, no reducer hook
  fires: the extra passes run on the unwrapped model.
- Distributed: when torch.distributed is initialised, the look-ahead gradient,
  v and the phi gradients are averaged across ranks (as DDP averages the
  regular step's gradients), so theta', theta+- and the update are those of
  the global batch (the mean of the ranks' losses) and every rank's graph stays
  identical. Every rank must call step() at the same points (it is collective).
- phi's requires_grad is switched on only inside these passes (and restored),
  so the caller may keep phi at requires_grad=False outside them: then the
  regular step neither computes nor (under DDP) all-reduces graph gradients.
- A non-finite meta-gradient skips the update (logged as meta_skipped = 1),
  identically on every rank since the gradients are all-reduced first.

Cost per training step: three extra passes on the train batch and one on the
held-out batch (the teacher runs inside loss_fn each time); the theta+- passes
need gradients for phi only, so theta is frozen during them (the student's
activations are not kept for a backward).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Callable, Iterable, Sequence

import torch
import torch.distributed as dist
from torch import nn

from hrkd_cli.runtime import RngState, requires_grad

DARTS_EPS = 0.01  # eps = DARTS_EPS / ||v||  (Liu et al. 2019, sec. 2.3)


class ParamList(list):
    """A list of parameters whose ``in`` tests identity (``p in params``).

    A plain list compares tensors with ``==``, which is elementwise and fails
    (or, for one-element tensors, lies) for parameters not in the list.
    """

    def __contains__(self, item) -> bool:
        return any(item is p for p in self)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_mean_(tensors: Sequence[torch.Tensor]) -> None:
    """In-place mean across ranks (one collective per dtype/device bucket); no-op without a process group."""
    if not _distributed() or not tensors:
        return
    world = dist.get_world_size()
    buckets: dict[tuple, list[torch.Tensor]] = {}
    for t in tensors:
        buckets.setdefault((t.dtype, t.device), []).append(t)
    for group in buckets.values():
        flat = torch.cat([t.reshape(-1) for t in group])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(world)
        offset = 0
        for t in group:
            n = t.numel()
            t.copy_(flat[offset: offset + n].view_as(t))
            offset += n


def _grads(loss: torch.Tensor, params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """d loss / d params as detached tensors; parameters the loss does not reach get zeros."""
    if not params:
        return []
    gs = torch.autograd.grad(loss, list(params), allow_unused=True)
    return [torch.zeros_like(p) if g is None else g.detach() for p, g in zip(params, gs)]


def _norm(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    sq = [t.float().pow(2).sum() for t in tensors]
    return torch.stack(sq).sum().sqrt() if sq else torch.zeros(())


@contextlib.contextmanager
def _full_precision(model: nn.Module, enabled: bool):
    """float32 for the finite-difference passes: swap a bf16 ``model.runtime`` for an fp32 one, no TF32."""
    if not enabled:
        yield
        return
    runtime = getattr(model, "runtime", None)
    swap = (runtime is not None and dataclasses.is_dataclass(runtime)
            and getattr(runtime, "precision", None) not in (None, "fp32"))
    matmul = torch.get_float32_matmul_precision()
    try:
        if swap:
            setattr(model, "runtime", dataclasses.replace(runtime, precision="fp32"))
        torch.set_float32_matmul_precision("highest")
        yield
    finally:
        torch.set_float32_matmul_precision(matmul)
        if swap:
            setattr(model, "runtime", runtime)


class MetaGraphUpdate:
    """DARTS-style update of the relational module's parameters phi (module docstring).

    ``model`` is the unwrapped model (not a DDP wrapper) with ``.relational`` and
    the other trainable parameters (``.student``, ``.projections``). ``params``
    (phi) and ``optimizer`` (Adam over phi, lr = graph_lr) are public: the
    training loop keeps phi out of the main optimiser and its clipping, and
    saves ``optimizer`` with the training state. A model whose relational module
    has no parameters (the "- Domain Rel." ablation) gets an optimiser with one
    empty group and step() does nothing.
    """

    def __init__(self, model: nn.Module, graph_lr: float, finite_difference_precision: str = "fp32",
                 eps: float = DARTS_EPS):
        if finite_difference_precision not in ("fp32", "inherit"):
            raise ValueError(f"finite_difference_precision must be 'fp32' or 'inherit', not {finite_difference_precision!r}")
        if getattr(model, "relational", None) is None:
            raise ValueError("the meta graph update needs a model with a relational module")
        self.model = model
        self.graph_lr = graph_lr
        self.eps = eps
        self.fd_fp32 = finite_difference_precision == "fp32"
        self.params = ParamList(model.relational.parameters())
        self.optimizer = torch.optim.Adam([{"params": list(self.params)}], lr=graph_lr)

    def theta(self) -> list[torch.Tensor]:
        """The trainable non-graph parameters (looked up at each call; phi's own flag does not matter)."""
        return [p for p in self.model.parameters() if p.requires_grad and p not in self.params]

    def meta_gradient(self, loss_fn: Callable, train_batch, heldout_batch, lr: float,
                      val_loss_fn: Callable | None = None) -> tuple[list[torch.Tensor] | None, dict]:
        """The approximate d L_val(theta'(phi), phi) / d phi, averaged over ranks, and logs.

        Returns (None, logs) when there is nothing to update (no phi) or the
        gradient is not finite. Afterwards theta is unchanged (bit for bit), its
        .grad is None, phi's .grad and requires_grad are as before, and so is
        the RNG state.
        """
        model, phi = self.model, list(self.params)
        val_loss_fn = val_loss_fn or loss_fn
        if not phi:
            return None, {}
        theta = self.theta()
        xi = float(lr)
        device = phi[0].device
        rng = RngState(device)
        saved = [p.detach().clone() for p in theta]
        try:
            # 1. look-ahead theta' = theta - xi grad_theta L_train(theta, phi)
            if xi != 0.0:
                with requires_grad(phi, False):
                    train_loss = loss_fn(train_batch, model)
                    g = _grads(train_loss, theta)
                all_reduce_mean_(g)
                with torch.no_grad():
                    for p, gp in zip(theta, g):
                        p.sub_(gp, alpha=xi)
                del g
            else:
                train_loss = None
            # 2. held-out loss at theta': v = grad_theta', direct term = grad_phi
            with requires_grad(phi, True):
                val_loss = val_loss_fn(heldout_batch, model)
                both = _grads(val_loss, theta + phi)
            v, direct = both[: len(theta)], both[len(theta):]
            all_reduce_mean_(both)
            grad = direct
            second = torch.zeros((), device=device)
            # 3. - xi * H v by a central difference around theta (same dropout masks as the look-ahead)
            v_norm = _norm(v) if v else torch.zeros((), device=device)
            if xi != 0.0 and math.isfinite(float(v_norm)) and float(v_norm) > 0.0:
                eps = self.eps / float(v_norm)
                fd = []
                for sign in (1.0, -1.0):
                    with torch.no_grad():
                        for p, s, vp in zip(theta, saved, v):
                            p.copy_(s).add_(vp, alpha=sign * eps)
                    rng.restore()
                    with _full_precision(model, self.fd_fp32), requires_grad(theta, False), \
                            requires_grad(phi, True):
                        fd.append(_grads(loss_fn(train_batch, model), phi))
                hv = [(a - b) / (2.0 * eps) for a, b in zip(*fd)]
                all_reduce_mean_(hv)
                second = _norm(hv) * xi
                grad = [d - xi * h for d, h in zip(direct, hv)]
        finally:
            with torch.no_grad():
                for p, s in zip(theta, saved):
                    p.copy_(s)
            for p in theta:
                p.grad = None
            rng.restore()
        losses = [val_loss] + ([train_loss] if train_loss is not None else [])
        logs_t = torch.stack([t.detach().float().reshape(()) for t in losses])
        all_reduce_mean_([logs_t])
        grad_norm = float(_norm(grad))
        logs = {
            "meta_val_loss": float(logs_t[0]),
            **({"meta_train_loss": float(logs_t[1])} if train_loss is not None else {}),
            "meta_grad_norm": grad_norm,
            "meta_direct_norm": float(_norm(direct)),
            "meta_second_order_norm": float(second),
            "meta_v_norm": float(v_norm),
        }
        if not (math.isfinite(grad_norm) and math.isfinite(float(v_norm))):
            logs["meta_skipped"] = 1.0
            return None, logs
        return grad, logs

    def step(self, loss_fn: Callable, train_batch, heldout_batch, lr: float,
             val_loss_fn: Callable | None = None) -> dict:
        """One Adam step on phi along the meta-gradient; returns small float logs.

        loss_fn(batch, module) -> scalar loss; it is always called with the
        unwrapped model. lr is the student's current learning rate (xi).
        val_loss_fn, if given, is used for L_val instead of loss_fn.
        """
        grad, logs = self.meta_gradient(loss_fn, train_batch, heldout_batch, lr, val_loss_fn)
        if grad is None:
            return logs
        self.optimizer.zero_grad(set_to_none=True)
        for p, g in zip(self.params, grad):
            p.grad = g.to(p.dtype)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return logs
