"""General distillation of a narrow student before task distillation (TinyBERT's general stage).

A student of its own width or depth (``student.init = "random"``) cannot be cut from the teacher's
layers, so it starts from random weights. TinyBERT first distils such a student's intermediate layers
on general text, then distils the task. Here the general stage runs on the preset's own training text,
labels unused, for ``student.general_epochs`` epochs before the task distillation starts:

    L_general = sum_d ( L_embd^d + sum_m ( L_attn^{m,d} + L_hidn^{m,d} ) )      (Eq. 1, 3, 4)

which is Eq. 5 with gamma = 0: no prediction loss (Eq. 2) and no relational weighting. The student
encoder and the width projections W_embd, W_m^hidn (Eq. 1, 4) are trained and carry on into task
distillation; the teacher stays frozen. Each step holds a sub-batch of ``distill.batch_per_domain``
from every domain (a seeded order of its own); the optimiser is the task stage's (AdamW at
``distill.lr`` with its warm-up, decay, weight decay and clipping).

Under --nproc every process runs the whole global batch; task distillation's DDP wrapper then starts
every process from rank 0's weights. A --resume repeats the stage (the checkpoint's weights replace its
result). The stage's record (steps, logged losses, held-out L_general before and after) goes into the
student's run.json; with runtime.tensorboard its scalars go to ``<run>/tensorboard/general``.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from hrkd_cli.batches import Batch, Split, make_batch
from hrkd_cli.config import Preset
from hrkd_cli.errors import RunError
from hrkd_cli.events import EventLog, opened
from hrkd_cli.model.losses import DomainLosses
from hrkd_cli.model.classifier import DomainClassifier, Projections
from hrkd_cli.model.kd_model import Teachers, domain_losses
from hrkd_cli.runtime import Runtime
from hrkd_cli.sampling import StepSchedule
from hrkd_cli.train.trainer import adamw, console, linear_warmup_decay

# The general stage draws its batches in an order of its own, not the task stage's.
GENERAL_SEED_OFFSET = 104_729


def intermediate_loss(terms: DomainLosses) -> torch.Tensor:
    """L_general: Eq. 1 + Eq. 3 + Eq. 4 summed over domains and student layers, i.e. Eq. 5 with gamma = 0."""
    return terms.total(None, gamma=0.0)


def step_terms(preset: Preset, student: DomainClassifier, projections: Projections, teachers: Teachers,
               batch: Batch, domains: list[str], layer_map: list[int], runtime: Runtime) -> DomainLosses:
    """The per-domain terms of Eq. 1-4 for one batch (domain_losses); the caller uses Eq. 1, 3, 4 only."""
    attentions = preset.distill.attention_loss != "off"
    t = teachers(batch, domains, runtime, attentions=attentions)
    with runtime.autocast():
        out = student(batch.input_ids, batch.attention_mask, batch.token_type_ids, batch.domain_sizes,
                      hidden_states=True, attentions=attentions)
        projected = projections(out.hidden_states)
    return domain_losses(preset.distill, out, projected, t, batch, layer_map)


@torch.no_grad()
def heldout_loss(preset: Preset, student: DomainClassifier, projections: Projections, teachers: Teachers,
                 splits: list[Split], domains: list[str], layer_map: list[int], runtime: Runtime, pad_id: int = 0) -> dict:
    """L_general on held-out text, in eval mode: each domain's Eq. 1 + 3 + 4 averaged over its examples
    (in chunks of distill.batch_per_domain), and their sum over domains ("total", the scale of training)."""
    was = student.training, projections.training
    student.eval()
    projections.eval()
    b = preset.distill.batch_per_domain
    sums = [0.0] * len(splits)
    for chunk in range(math.ceil(max(len(x) for x in splits) / b)):
        parts = [(d, x, list(range(chunk * b, min(len(x), (chunk + 1) * b)))) for d, x in enumerate(splits)]
        parts = [p for p in parts if p[2]]
        batch = make_batch(parts, pad_id=pad_id).to(runtime.device)
        terms = step_terms(preset, student, projections, teachers, batch, domains, layer_map, runtime)
        per_domain = terms.embd + terms.attn.sum(-1) + terms.hidn.sum(-1)
        for (d, _, rows), value in zip(parts, per_domain.tolist()):
            sums[d] += value * len(rows)
    student.train(was[0])
    projections.train(was[1])
    means = {d: s / max(1, len(x)) for d, s, x in zip(domains, sums, splits)}
    return {**means, "total": sum(means.values())}


def general_distillation(preset: Preset, runtime: Runtime, student: DomainClassifier, projections: Projections,
                         teachers: Teachers, train: list[Split], domains: list[str], layer_map: list[int],
                         dev: list[Split] | None = None, pad_id: int = 0, events: EventLog | None = None) -> dict:
    """Train ``student`` and ``projections`` on L_general (intermediate_loss) for student.general_epochs
    epochs over ``train`` (labels unused). Returns the stage's record: steps, logged losses, and the
    held-out L_general before and after on ``dev`` where given; ``events`` receives the same, and the loss
    every distill.log_every steps."""
    cfg = preset.distill
    schedule = StepSchedule([len(x) for x in train], cfg.batch_per_domain, preset.seed + GENERAL_SEED_OFFSET,
                            preset.student.general_epochs)
    total = schedule.total_steps
    named = list(student.named_parameters()) + [(f"projections.{n}", p) for n, p in projections.named_parameters()]
    params = [p for _, p in named if p.requires_grad]
    optimizer = adamw([{"named_params": named, "lr": cfg.lr}], cfg.weight_decay)
    scheduler = linear_warmup_decay(optimizer, int(cfg.warmup * total), total)
    say = console.print if runtime.is_main else (lambda *a, **k: None)

    def measure() -> dict | None:
        return heldout_loss(preset, student, projections, teachers, dev, domains, layer_map, runtime, pad_id) if dev else None

    record: dict = {"epochs": preset.student.general_epochs, "steps": total, "dev_before": measure(), "log": []}
    say(f"general distillation: {total} steps of Eq. 1 + 3 + 4 on the training text (labels unused)", highlight=False)
    student.train()
    projections.train()
    examples = cfg.batch_per_domain * len(domains)
    with opened(events, 0):
        _heldout_event(events, 0, record["dev_before"])
        tick, ticked = time.perf_counter(), 0  # examples/s since the last logged step
        for step in range(total):
            rows = schedule.global_indices(step)
            batch = make_batch([(d, x, r) for d, (x, r) in enumerate(zip(train, rows))], pad_id=pad_id).to(runtime.device)
            terms = step_terms(preset, student, projections, teachers, batch, domains, layer_map, runtime)
            loss = intermediate_loss(terms)
            if not torch.isfinite(loss.detach()):
                raise RunError(f"general distillation: loss is {loss.item()} at step {step}; lower distill.lr")
            loss.backward()
            nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            lr = scheduler.get_last_lr()[0]  # the rate this step used
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if events is not None and (step % cfg.log_every == 0 or step == total - 1):
                now = time.perf_counter()
                events.scalars(step + 1, {
                    "loss/total": float(loss.detach()), "loss/embd": float(terms.embd.detach().sum()),
                    "loss/attn": float(terms.attn.detach().sum()), "loss/hidn": float(terms.hidn.detach().sum()),
                    "lr": lr, "throughput/examples_per_s": examples * (step + 1 - ticked) / max(now - tick, 1e-9)})
                tick, ticked = now, step + 1
            if step % max(cfg.log_every, total // 10) == 0 or step == total - 1:
                record["log"].append({"step": step, "loss": float(loss.detach())})
                say(f"general distillation step {step + 1}/{total} loss {float(loss.detach()):.4f}", highlight=False)
        record["dev_after"] = measure()
        _heldout_event(events, total, record["dev_after"])
    if record["dev_after"] is not None:
        say(f"general distillation: held-out L_general {record['dev_before']['total']:.4f} -> "
            f"{record['dev_after']['total']:.4f}", highlight=False)
    return record


def _heldout_event(events: EventLog | None, step: int, heldout: dict | None) -> None:
    if events is not None and heldout is not None:
        events.scalars(step, {f"heldout/{d}": float(v) for d, v in heldout.items()}, flush=True)
