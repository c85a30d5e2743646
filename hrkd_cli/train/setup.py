"""The one training setup that every trainer calls (teach, the meta-teacher, distill, the Meta-KD baselines).

A trainer builds its model, its step order and its step function; :func:`start` adds what they all share,
the same way for each: AdamW over the given parameter groups, linear warm-up and decay (one cycle per stage
for two-stage distillation, docs/method.md, Meta-KD), the DDP wrapper, and --resume from ``out/last``.
:meth:`Training.run` then runs :func:`hrkd_cli.train.trainer.fit` with the settings of the trainer's section
(``OptimConfig``: eval_every, log_every, max_grad_norm) and a ``save_fn`` that writes the checkpoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from hrkd_cli.config import OptimConfig
from hrkd_cli.events import EventLog
from hrkd_cli.model.checkpoint import save_checkpoint
from hrkd_cli.runs import Say
from hrkd_cli.runtime import Runtime, barrier
from hrkd_cli.sampling import StepSchedule, check_shardable
from hrkd_cli.train.trainer import (FitState, adamw, fit, linear_warmup_decay, resume_from, staged_warmup_decay,
                                    training_state)


def step_schedule(sizes: list[int], batch: int, seed: int, epochs: float, runtime: Runtime, setting: str) -> StepSchedule:
    """The seeded order of steps over streams of ``sizes``, once every rank is sure of an equal share of each
    batch (``setting`` names the batch size in the error)."""
    check_shardable(batch, runtime.world_size, sizes, setting)
    return StepSchedule(sizes, batch, seed, epochs)


@dataclass
class Training:
    """What :func:`start` built: the optimisers and schedules ("main" first), the module to run the steps
    through (DDP-wrapped when distributed) and the state to start from."""

    model: nn.Module
    net: nn.Module
    optimizers: dict
    schedulers: dict
    state: FitState | None
    settings: OptimConfig
    schedule: StepSchedule
    total: int
    runtime: Runtime
    out: Path
    log_file: str | None
    switch: int | None

    @property
    def scheduler(self):
        return self.schedulers["main"]

    def run(self, step_fn: Callable, eval_fn: Callable, *, module: nn.Module, meta: dict, tokenizer, label: str,
            examples_per_step: int, checkpoint_every: int, events: EventLog | None, per_domain_best: bool = False,
            extras: Callable[[], dict] | None = None, exclude: list | tuple = ()) -> FitState:
        """fit() with this run's settings; checkpoints hold ``module`` with ``meta`` (plus tag, step and dev),
        ``extras()`` beside it and the logged steps in ``log_file``. ``exclude``: parameters with an optimiser of
        their own (the meta graph's), left out of gradient clipping."""
        runtime, out, switch = self.runtime, self.out, self.switch

        def save_fn(tag: str, st: FitState):
            if tag == "best" and switch is not None and st.step <= switch:
                return  # two stages: the intermediate stage's evaluations never compete for "best"
            if runtime.is_main:
                ts = training_state(self.optimizers, self.schedulers, st) if tag == "last" else None
                save_checkpoint(out / tag, module, {**meta, "tag": tag, "step": st.step, "dev": st.last_dev}, tokenizer,
                                extras=extras() if extras is not None else None, train_state=ts,
                                files={self.log_file: st.log} if self.log_file else None)
            barrier(runtime)

        on_step_end = None
        if switch is not None:
            state = self.state

            def on_step_end(step: int) -> None:
                if step == switch:  # the prediction stage starts its own best-on-dev
                    state.best_score, state.best_step = -math.inf, -1

        cfg = self.settings
        return fit(
            params=[p for p in self.model.parameters() if p.requires_grad and not (exclude and p in exclude)],
            optimizers=self.optimizers, schedulers=self.schedulers, step_fn=step_fn, eval_fn=eval_fn, save_fn=save_fn,
            total_steps=self.total, eval_every=cfg.eval_every or self.schedule.steps_per_epoch, log_every=cfg.log_every,
            max_grad_norm=cfg.max_grad_norm, runtime=runtime, label=label, state=self.state,
            examples_per_step=examples_per_step, per_domain_best=per_domain_best, on_step_end=on_step_end,
            checkpoint_every=checkpoint_every, events=events,
        )


def start(model: nn.Module, groups: list[tuple[list, float]], settings: OptimConfig, schedule: StepSchedule,
          runtime: Runtime, out: Path, *, resume: bool, say: Say, load_weights: Callable[[Path], None],
          log_file: str | None = None, switch: int | None = None, find_unused: bool = False,
          more_optimizers: dict | None = None) -> Training:
    """Optimiser, schedule, DDP and --resume for ``model``.

    ``groups``: (named parameters, learning rate) per parameter group, in order (AdamW, no decay on biases and
    LayerNorm weights). ``switch``: the first step of the second stage of a two-stage run (each stage its own
    warm-up and decay). ``more_optimizers``: optimisers stepped inside the step function (the meta graph's),
    saved and restored with the main one. ``load_weights(dir)`` puts a checkpoint's weights back for --resume;
    ``log_file`` is where the checkpoints keep the logged steps.
    """
    total = schedule.total_steps
    optimizer = adamw([{"named_params": named, "lr": lr} for named, lr in groups], settings.weight_decay)
    scheduler = (staged_warmup_decay(optimizer, settings.warmup, switch, total) if switch is not None
                 else linear_warmup_decay(optimizer, int(settings.warmup * total), total))
    optimizers, schedulers = {"main": optimizer, **(more_optimizers or {})}, {"main": scheduler}
    net = DDP(model, find_unused_parameters=find_unused) if runtime.distributed else model
    state = None if switch is None else FitState()  # two stages: on_step_end resets this very state's best
    if resume:
        state = resume_from(out, optimizers, schedulers, load_weights, log_file)
        say(f"resuming {out} at step {state.step}/{total}")
    return Training(model, net, optimizers, schedulers, state, settings, schedule, total, runtime, Path(out), log_file,
                    switch)
