"""The loop shared by teach and distill: optimise, log, evaluate on dev, checkpoint, resume.

A recipe supplies ``step_fn(step) -> (loss, logs)`` (the forward pass and the
loss), ``eval_fn() -> dev scores`` and ``save_fn(tag, state)``; this module
does the rest the same way for every method: AdamW with linear warm-up and
decay, gradient clipping, best-on-dev selection, a stop on a non-finite loss,
and a resumable training state.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from hrkd_cli.errors import HrkdError, RunError
from hrkd_cli.events import EventLog, opened
from hrkd_cli.fsio import read_json, recover_dir
from hrkd_cli.model.checkpoint import INCOMPLETE, optimizer_from_tensors, optimizer_to_tensors, read_tensors
from hrkd_cli.runtime import Runtime

console = Console(stderr=True)


def adamw(param_groups: list[dict], weight_decay: float) -> torch.optim.AdamW:
    """AdamW without weight decay on biases and LayerNorm weights (BERT fine-tuning practice)."""
    groups = []
    for g in param_groups:
        named = [(n, p) for n, p in g["named_params"] if p.requires_grad]
        decay = [p for n, p in named if p.ndim >= 2]
        no_decay = [p for n, p in named if p.ndim < 2]
        for params, wd in ((decay, weight_decay), (no_decay, 0.0)):
            if params:
                groups.append({"params": params, "lr": g["lr"], "weight_decay": wd})
    return torch.optim.AdamW(groups, betas=(0.9, 0.999), eps=1e-8)


def linear_warmup_decay(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def staged_warmup_decay(optimizer: torch.optim.Optimizer, warmup: float, switch: int, total: int):
    """Linear warm-up and decay restarted at ``switch`` (two-stage distillation: one cycle per stage)."""
    segments = [(a, b) for a, b in ((0, switch), (switch, total)) if b > a]

    def factor(step: int) -> float:
        start, end = next(((a, b) for a, b in segments if step < b), segments[-1])
        n, s = end - start, step - start
        w = int(warmup * n)
        if s < w:
            return (s + 1) / max(1, w)
        return max(0.0, (n - s) / max(1, n - w))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class FitState:
    step: int = 0
    best_score: float = -math.inf
    best_step: int = -1
    best_per_domain: dict[str, float] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)  # dev evaluations
    log: list[dict] = field(default_factory=list)  # logged training steps (losses, ratios)
    elapsed: float = 0.0
    resumed_after: float = 0.0  # elapsed when fit() began: the training done before a --resume

    def to_json(self) -> dict:
        return {
            "step": self.step,
            "best_score": self.best_score if math.isfinite(self.best_score) else None,
            "best_step": self.best_step,
            "best_per_domain": self.best_per_domain,
            "history": self.history,
            "elapsed": self.elapsed,
        }

    @classmethod
    def from_json(cls, d: dict, log: list[dict]) -> "FitState":
        return cls(
            step=d["step"],
            best_score=d["best_score"] if d["best_score"] is not None else -math.inf,
            best_step=d["best_step"],
            best_per_domain=d["best_per_domain"],
            history=d["history"],
            log=log,
            elapsed=d.get("elapsed", 0.0),
        )

    @property
    def last_dev(self) -> dict:
        """The latest dev evaluation ({} before the first: a step checkpoint can precede it)."""
        return self.history[-1] if self.history else {}


def training_state(optimizers: dict[str, torch.optim.Optimizer], schedulers: dict, fit: FitState) -> tuple[dict, dict]:
    """Everything beyond the weights that a resumed run needs, as (tensors, json)."""
    tensors: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    info: dict = {"fit": fit.to_json(), "optimizers": {}, "schedulers": {}}
    for name, opt in optimizers.items():
        t, i = optimizer_to_tensors(opt, f"optim-{name}")
        tensors.update(t)
        info["optimizers"][name] = i
    for name, sch in schedulers.items():
        info["schedulers"][name] = {"last_epoch": sch.last_epoch}
    return tensors, info


def restore_training_state(tensors: dict, info: dict, optimizers: dict, schedulers: dict, log: list[dict]) -> FitState:
    for name, opt in optimizers.items():
        optimizer_from_tensors(opt, f"optim-{name}", tensors, info["optimizers"][name])
    for name, sch in schedulers.items():
        # LambdaLR's rate is a function of the step count: recompute it (and what get_last_lr reports).
        sch.last_epoch = step = info["schedulers"][name]["last_epoch"]
        lrs = [base * factor(step) for factor, base in zip(sch.lr_lambdas, sch.base_lrs)]
        for group, lr in zip(sch.optimizer.param_groups, lrs):
            group["lr"] = lr
        sch._last_lr = lrs
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    return FitState.from_json(info["fit"], log)


def resume_parts(out, parts: list[str], resume: bool) -> dict[str, bool]:
    """For a run trained one part after another (one model per domain): which of ``out/<part>`` to resume.
    --resume continues the parts that had saved a checkpoint and starts the rest afresh, so a run stopped
    in its third domain continues there; with no checkpoint under ``out`` at all it is an error."""
    if not resume:
        return dict.fromkeys(parts, False)
    started = {}
    for part in parts:
        last = Path(out) / part / "last"
        recover_dir(last)
        started[part] = (last / "train_state.json").is_file()
    if not any(started.values()):
        raise HrkdError(f"--resume: no checkpoint to resume from under {out}")
    return started


def resume_from(out, optimizers: dict, schedulers: dict, load_weights: Callable, log_file: str | None = None) -> FitState:
    """Restore ``out/last`` for --resume: weights (through ``load_weights(dir)``), optimisers,
    schedulers, RNG and the logged steps (from ``log_file``, when the run keeps them). A swap killed
    half-way is repaired first."""
    last = Path(out) / "last"
    recover_dir(last)
    if not (last / "train_state.json").is_file():
        raise HrkdError(f"--resume: no checkpoint to resume from at {last}")
    load_weights(last)
    # through checkpoint's readers: a damaged file is one line naming it, not a traceback
    info = read_json(last / "train_state.json", INCOMPLETE)
    log_path = last / log_file if log_file else None
    log = read_json(log_path) if log_path is not None and log_path.is_file() else []
    return restore_training_state(read_tensors(last / "train_state.safetensors"), info, optimizers, schedulers, log)


def fit(
    *,
    params: list[torch.nn.Parameter],
    optimizers: dict[str, torch.optim.Optimizer],
    schedulers: dict,
    step_fn: Callable[[int], tuple[torch.Tensor, dict]],
    eval_fn: Callable[[], dict[str, float]],
    save_fn: Callable[[str, FitState], None],
    total_steps: int,
    eval_every: int,
    log_every: int,
    max_grad_norm: float,
    runtime: Runtime,
    label: str,
    state: FitState | None = None,
    examples_per_step: int = 0,
    per_domain_best: bool = False,
    on_step_end: Callable[[int], None] | None = None,
    checkpoint_every: int = 0,
    events: EventLog | None = None,
) -> FitState:
    """Run steps ``state.step .. total_steps-1``; evaluate every ``eval_every`` steps and at the end.

    ``save_fn`` is called with "last" at every evaluation (with the training
    state, for --resume), "best" when the dev average improves, and
    "best-<domain>" when one domain's dev score improves (per_domain_best).
    ``events`` (hrkd_cli.events.event_log) also receives every logged step and dev evaluation.
    """
    state = state or FitState()
    main_opt = optimizers["main"]
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not runtime.is_main,
        transient=False,
    )
    state.resumed_after = state.elapsed
    t_start = time.perf_counter() - state.elapsed
    t_window, n_window = time.perf_counter(), 0
    with progress, opened(events, state.step):
        task = progress.add_task(label, total=total_steps, completed=state.step, info="")
        for step in range(state.step, total_steps):
            loss, logs = step_fn(step)
            if not torch.isfinite(loss.detach()).all():
                raise RunError(  # the input was valid; the run failed (exit 1)
                    f"loss is {loss.item()} at step {step}: training stopped; the last good checkpoint is kept"
                )
            loss.backward()
            if params:
                torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
            main_opt.step()
            for sch in schedulers.values():
                sch.step()
            for opt in optimizers.values():
                opt.zero_grad(set_to_none=True)
            if on_step_end is not None:
                on_step_end(step)
            n_window += 1
            state.step = step + 1
            if step % log_every == 0 or state.step == total_steps:
                now = time.perf_counter()
                rate = examples_per_step * n_window / max(1e-9, now - t_window)
                t_window, n_window = now, 0
                logs = {"step": step, "lr": main_opt.param_groups[0]["lr"], **logs}
                state.log.append(logs)
                if events is not None:
                    events.train(state.step, logs, rate)
                info = f"loss {logs.get('loss', float('nan')):.4f}  {rate:.1f} ex/s"
                progress.update(task, info=info)
                if runtime.is_main and not console.is_terminal:
                    # Logs and CI have no live bar: leave a plain line instead.
                    console.print(f"{label} step {state.step}/{total_steps} {info}", highlight=False)
            progress.update(task, completed=state.step)
            last = state.step == total_steps
            if (eval_every and state.step % eval_every == 0) or last:
                scores = eval_fn()
                state.elapsed = time.perf_counter() - t_start
                state.history.append({"step": state.step, **scores})
                if events is not None:
                    events.dev(state.step, scores)
                if scores["average"] > state.best_score:
                    state.best_score, state.best_step = scores["average"], state.step
                    save_fn("best", state)
                if per_domain_best:
                    for d, s in scores.items():
                        if d != "average" and s > state.best_per_domain.get(d, -math.inf):
                            state.best_per_domain[d] = s
                            save_fn(f"best-{d}", state)
                save_fn("last", state)
                progress.console.print(
                    f"[dim]{label} step {state.step}/{total_steps}: dev "
                    + " ".join(f"{d} {100 * s:.1f}" for d, s in scores.items())
                    + "[/dim]"
                )
            elif checkpoint_every and state.step % checkpoint_every == 0:
                state.elapsed = time.perf_counter() - t_start
                save_fn("last", state)
    state.elapsed = time.perf_counter() - t_start
    return state
