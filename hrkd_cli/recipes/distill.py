"""`hrkd distill`: compress a teacher into a student (HRKD Eq. 1-17; docs/method.md).

Methods:
- tinybert: one student per domain from that domain's teacher (single-domain TinyBERT-KD)
- multi-domain: every step holds a sub-batch of every domain, loss Eq. 5
- hrkd: Eq. 17, the per-layer, per-domain terms weighted by the domain-relational
  ratios of the graphs fed with (hierarchically aggregated) prototypes
- meta-kd, mtn-kd: the Meta-KD and multi-teacher baselines (hrkd_cli/recipes/baselines.py)

Setup (hrkd_cli/recipes/students.py, shared with the baselines) builds the
teacher(s) (reusing a matching one), the student, the projections and the
relational module; train runs hrkd_cli.train.trainer.fit with the step below; save keeps
the best-on-dev student, its ratio log and its run record.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from hrkd_cli.batches import Batch, load_splits
from hrkd_cli.model.checkpoint import members, save_checkpoint
from hrkd_cli.config import Preset
from hrkd_cli.data.store import load_prepared
from hrkd_cli.errors import HrkdError
from hrkd_cli.train.evaluation import evaluate_model
from hrkd_cli.events import event_log
from hrkd_cli.model.graph import layer_losses
from hrkd_cli.model.losses import DomainLosses
from hrkd_cli.train import transfer_steps
from hrkd_cli.recipes.baselines import distill_baseline
from hrkd_cli.runs import Say, data_dir, fit_record
from hrkd_cli.prechecks import check_student_settings
from hrkd_cli.recipes.prepare import ensure_prepared
from hrkd_cli.recipes.students import (
    claim_student_dir,
    distillation_loss,
    ensure_teacher,
    finish_student,
    load_distillation_weights,
    meta_objective,
    relational_settings,
    setup,
    step_batch,
    student_dir,
)
from hrkd_cli.runtime import Runtime, all_reduce_mean_detached, barrier
from hrkd_cli.sampling import StepSchedule, check_shardable
from hrkd_cli.train.trainer import FitState, adamw, fit, linear_warmup_decay, resume_from, resume_parts, training_state
from hrkd_cli.vocabulary import run_names, transfer_used



def train_student(preset: Preset, runtime: Runtime, out: Path, teacher_path: Path, domains: list[str], data, resume: bool, say: Say) -> dict:
    cfg = preset.distill
    s = setup(preset, runtime, teacher_path, domains, data)
    model = s.model
    train = load_splits(data, "train", domains)
    dev = load_splits(data, "dev", domains)
    check_shardable(cfg.batch_per_domain, runtime.world_size, [len(x) for x in train], "distill.batch_per_domain")
    schedule = StepSchedule([len(x) for x in train], cfg.batch_per_domain, preset.seed, cfg.epochs)
    train, schedule = transfer_steps.mix(preset, data, domains, train, schedule)  # as they are without transfer data
    total = schedule.total_steps
    lr = cfg.fewshot_lr if preset.data.sampled else cfg.lr  # few-shot samples, by share or by count
    groups = [{"named_params": [(n, p) for n, p in model.named_parameters() if not n.startswith("relational.")], "lr": lr}]
    if model.relational is not None and cfg.graph_mode == "joint":
        groups.append({"named_params": list(model.relational.named_parameters()), "lr": cfg.graph_lr})
    optimizer = adamw(groups, cfg.weight_decay)
    scheduler = linear_warmup_decay(optimizer, int(cfg.warmup * total), total)
    optimizers, schedulers = {"main": optimizer}, {"main": scheduler}
    meta_graph = heldout_at = val_loss = None
    if model.relational is not None and cfg.graph_mode == "meta":
        from hrkd_cli.model.meta_graph import MetaGraphUpdate

        meta_graph = MetaGraphUpdate(model, cfg.graph_lr)
        optimizers["graph"] = meta_graph.optimizer
        heldout_at, val_loss = meta_objective(s, dev, runtime)
    net = DDP(model, find_unused_parameters=cfg.graph_mode == "joint") if runtime.distributed else model

    state = None
    if resume:
        state = resume_from(out, optimizers, schedulers, lambda last: load_distillation_weights(model, last))
        say(f"resuming {out} at step {state.step}/{total}")

    def batch_at(step: int) -> Batch:
        return step_batch(train, schedule, step, runtime, s.tokenizer.pad_token_id or 0)

    def loss_at(batch: Batch, module=None):
        return distillation_loss(s, batch, runtime, module or net)

    def step_fn(step: int):
        net.train()
        batch = batch_at(step)
        meta_logs = {}
        if meta_graph is not None:
            heldout = batch_at(step + 1) if heldout_at is None else heldout_at(step)
            meta_logs = meta_graph.step(lambda b, module=None: loss_at(b, module)[0], batch, heldout,
                                        lr=scheduler.get_last_lr()[0], val_loss_fn=val_loss)
        logged = step % cfg.log_every == 0 or step == total - 1
        model.keep_relational_input = logged and model.relational is not None and model.relational.uses_graph
        loss, terms, rel = loss_at(batch)
        model.keep_relational_input = False
        logs = {**step_logs(loss, terms, rel, runtime, logged), **meta_logs}
        if rel is not None:
            if logged and model.relational.uses_graph:
                logs.update(model.ratio_gradients(loss, rel))
            if model.relational.needs_losses:
                model.relational.observe(all_reduce_mean_detached(layer_losses(terms), runtime))
        return loss, logs

    def eval_fn():
        return evaluate_model(model.student, domains, dev, runtime)

    meta = {
        "role": "student", "method": cfg.method, "domains": domains, "label_names": data.label_names,
        "data_hash": data.hash, "data_dir": str(Path(data.path).resolve()), "preset": preset.name,
        "student_hash": preset.section_hash("data", "teacher", "student", "distill"), "seed": preset.seed,
        "teacher": str(teacher_path), "layer_map": s.layer_map, "drop": cfg.drop, "graph_mode": cfg.graph_mode,
        "row": run_names(preset).row, "prototype_tokens": cfg.prototype_tokens,
        "projections": preset.student.projections, "teacher_width": s.teachers.config.hidden_size,
        "relational": None if model.relational is None else relational_settings(
            cfg, model.relational.num_student_layers, len(domains), model.relational.feature_dim),
        "graph": cfg.graph, "meta_objective": cfg.meta_objective if cfg.graph_mode == "meta" else None,
        **({"transfer": transfer_steps.record(preset, data)} if transfer_used(preset) else {}),
    }

    def save_fn(tag: str, st: FitState):
        if runtime.is_main:
            ts = training_state(optimizers, schedulers, st) if tag == "last" else None
            extras = {f"projections.{k}": v for k, v in model.projections.state_dict().items()}
            if model.relational is not None:
                extras.update({f"relational.{k}": v for k, v in model.relational.state_dict().items()})
            save_checkpoint(out / tag, model.student, {**meta, "tag": tag, "step": st.step, "dev": st.last_dev},
                            s.tokenizer, extras=extras, train_state=ts, files={"ratio_log.json": st.log})
        barrier(runtime)

    state = fit(
        params=[p for p in model.parameters() if p.requires_grad and not (meta_graph and p in meta_graph.params)],
        optimizers=optimizers, schedulers=schedulers, step_fn=step_fn, eval_fn=eval_fn, save_fn=save_fn,
        total_steps=total, eval_every=cfg.eval_every or schedule.steps_per_epoch, log_every=cfg.log_every,
        max_grad_norm=cfg.max_grad_norm, runtime=runtime,
        label=f"distill {cfg.method}" + (f" [{domains[0]}]" if len(domains) == 1 else ""),
        state=state, examples_per_step=cfg.batch_per_domain * len(domains), per_domain_best=cfg.per_domain_best,
        checkpoint_every=preset.runtime.checkpoint_every, events=event_log(preset, out, runtime, domains),
    )
    return fit_record(state, total, meta)


def domain_terms(terms: DomainLosses, runtime: Runtime) -> dict[str, list]:
    """Each term of Eq. 1-4 per domain, averaged over ranks: embd and pred [D], attn and hidn [D][M] (per layer)."""
    M = terms.attn.shape[1]
    flat = torch.cat([terms.embd[:, None], terms.attn, terms.hidn, terms.pred[:, None]], dim=1).detach().float()
    flat = all_reduce_mean_detached(flat, runtime).cpu()  # one collective on a logged step
    return {"embd": flat[:, 0].tolist(), "attn": flat[:, 1:1 + M].tolist(), "hidn": flat[:, 1 + M:1 + 2 * M].tolist(),
            "pred": flat[:, -1].tolist()}


def step_logs(loss: torch.Tensor, terms: DomainLosses, rel, runtime: Runtime, logged: bool) -> dict:
    """What a distillation step logs: the loss, each term summed over domains, HRKD's ratios r (Eq. 7-12) and
    similarity alpha^H (Eq. 13-16); on logged steps also each term per domain (``terms``, for TensorBoard)."""
    logs = {
        "loss": float(all_reduce_mean_detached(loss, runtime)),
        "embd": float(terms.embd.detach().sum()), "attn": float(terms.attn.detach().sum()),
        "hidn": float(terms.hidn.detach().sum()), "pred": float(terms.pred.detach().sum()),
    }
    if logged:
        logs["terms"] = domain_terms(terms, runtime)
    if rel is not None:
        logs["ratios"] = rel.ratios.detach().cpu().tolist()
        logs["similarity"] = [a.detach().cpu().tolist() for a in rel.similarity]
    return logs


def distill(preset: Preset, runtime: Runtime, resume: bool = False, say: Say = print) -> Path:
    """The one command for the main job: prepare and teach if missing, then distil and score on test."""
    cfg = preset.distill
    check_student_settings(preset)  # before preparing or teaching: a student this teacher cannot give fails now
    if cfg.method in ("meta-kd", "mtn-kd"):
        return distill_baseline(preset, runtime, resume=resume, say=say)
    if runtime.is_main:
        ensure_prepared(preset, say)
    barrier(runtime)
    data = load_prepared(data_dir(preset))
    transfer_steps.check(preset, data, list(data.domains), runtime.world_size)  # before a teacher trains
    teacher_path = ensure_teacher(preset, runtime, data, say)
    out = student_dir(preset)
    claim_student_dir(preset, out, resume)
    domains = list(data.domains)
    group = members(teacher_path)
    unseen = [d for d in domains if d not in group]
    if unseen and len(set(group.values())) > 1:
        # Per-domain teachers have no expert for a left-out domain; borrowing another domain's would be silent.
        raise HrkdError(f"{teacher_path}: no teacher for domain {unseen[0]!r} (left out with --exclude-domain); "
                        f"{cfg.method} needs a one-model teacher for it: --teacher mix or meta")
    say(f"distilling ({cfg.method}) into {out}")
    t0 = time.perf_counter()
    if cfg.method == "tinybert":
        group_members, records = {}, {}
        started = resume_parts(out, domains, resume)
        for d in domains:
            records[d] = train_student(preset, runtime, out / d, teacher_path, [d], data, started[d], say)
            group_members[d] = f"{d}/best"
    else:
        records = {"all": train_student(preset, runtime, out, teacher_path, domains, data, resume, say)}
        group_members = {d: (f"best-{d}" if cfg.per_domain_best and (out / f"best-{d}").is_dir() else "best") for d in domains}
    return finish_student(preset, runtime, out, data, group_members, teacher_path, records, t0, say,
                          transfer=transfer_steps.record(preset, data))
