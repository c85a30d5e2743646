"""The joint distillation loop (HRKD Eq. 1-17; docs/method.md): methods whose registry entry has loop "joint".

Every step holds a sub-batch of every domain (multi-domain, hrkd), or one student is trained per domain on
that domain alone (``per_domain``: single-domain TinyBERT-KD). The step's loss is the method's (Eq. 5,
Eq. 17); HRKD's relational module is frozen, trained jointly or by the meta update (distill.graph_mode).
The best-on-dev student is kept with its ratio log and its run record.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from hrkd_cli.batches import Batch, load_splits
from hrkd_cli.config import Preset
from hrkd_cli.errors import HrkdError
from hrkd_cli.events import event_log
from hrkd_cli.model.checkpoint import members
from hrkd_cli.model.graph import layer_losses
from hrkd_cli.model.kd_model import relational_settings
from hrkd_cli.model.losses import DomainLosses
from hrkd_cli.model.meta_graph import MetaGraphUpdate
from hrkd_cli.runs import Say, fit_record
from hrkd_cli.runtime import Runtime, all_reduce_mean_detached
from hrkd_cli.train import setup as training
from hrkd_cli.train import transfer_steps
from hrkd_cli.train.evaluation import evaluate_model
from hrkd_cli.train.methods import Method
from hrkd_cli.train.students import (
    distillation_loss,
    finish_student,
    load_distillation_weights,
    meta_objective,
    setup,
    step_batch,
)
from hrkd_cli.train.trainer import resume_parts
from hrkd_cli.vocabulary import run_names, transfer_used

LOG_FILE = "ratio_log.json"  # the logged steps, ratios included (hrkd inspect-ratios reads it)


def train_student(preset: Preset, runtime: Runtime, out: Path, teacher_path: Path, domains: list[str], data, resume: bool, say: Say) -> dict:
    """Distil one student on ``domains`` into ``out``; returns its run record."""
    cfg = preset.distill
    s = setup(preset, runtime, teacher_path, domains, data, out)
    model = s.model
    train = load_splits(data, "train", domains)
    dev = load_splits(data, "dev", domains)
    schedule = training.step_schedule([len(x) for x in train], cfg.batch_per_domain, preset.seed, cfg.epochs, runtime,
                                      "distill.batch_per_domain")
    train, schedule = transfer_steps.mix(preset, data, domains, train, schedule)  # as they are without transfer data
    lr = cfg.fewshot_lr if preset.data.sampled else cfg.lr  # few-shot samples, by share or by count
    groups = [([(n, p) for n, p in model.named_parameters() if not n.startswith("relational.")], lr)]
    if model.relational is not None and cfg.graph_mode == "joint":
        groups.append((list(model.relational.named_parameters()), cfg.graph_lr))
    meta_graph = heldout_at = val_loss = None
    if model.relational is not None and cfg.graph_mode == "meta":
        meta_graph = MetaGraphUpdate(model, cfg.graph_lr)
        heldout_at, val_loss = meta_objective(s, dev, runtime)
    t = training.start(model, groups, cfg, schedule, runtime, out, resume=resume, say=say,
                       load_weights=lambda last: load_distillation_weights(model, last), log_file=LOG_FILE,
                       find_unused=cfg.graph_mode == "joint",
                       more_optimizers={"graph": meta_graph.optimizer} if meta_graph is not None else None)
    total = t.total

    def batch_at(step: int) -> Batch:
        return step_batch(train, schedule, step, runtime, s.tokenizer.pad_token_id or 0)

    def loss_at(batch: Batch, module=None):
        return distillation_loss(s, batch, runtime, module or t.net)

    def step_fn(step: int):
        t.net.train()
        batch = batch_at(step)
        meta_logs = {}
        if meta_graph is not None:
            heldout = batch_at(step + 1) if heldout_at is None else heldout_at(step)
            meta_logs = meta_graph.step(lambda b, module=None: loss_at(b, module)[0], batch, heldout,
                                        lr=t.scheduler.get_last_lr()[0], val_loss_fn=val_loss)
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
        **({"general": s.general} if s.general is not None else {}),
    }

    def extras() -> dict:
        found = {f"projections.{k}": v for k, v in model.projections.state_dict().items()}
        if model.relational is not None:
            found.update({f"relational.{k}": v for k, v in model.relational.state_dict().items()})
        return found

    state = t.run(step_fn, eval_fn, module=model.student, meta=meta, tokenizer=s.tokenizer, extras=extras,
                  label=f"distill {cfg.method}" + (f" [{domains[0]}]" if len(domains) == 1 else ""),
                  examples_per_step=cfg.batch_per_domain * len(domains), per_domain_best=cfg.per_domain_best,
                  checkpoint_every=preset.runtime.checkpoint_every, events=event_log(preset, out, runtime, domains),
                  exclude=meta_graph.params if meta_graph is not None else ())
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


def distill_students(method: Method, preset: Preset, runtime: Runtime, out: Path, data, teacher_path: Path,
                     resume: bool, say: Say) -> Path:
    """The student(s) of a joint method into ``out``: one on all domains, or one per domain (``per_domain``)."""
    cfg = preset.distill
    domains = list(data.domains)
    group = members(teacher_path)
    unseen = [d for d in domains if d not in group]
    if unseen and len(set(group.values())) > 1:
        # Per-domain teachers have no expert for a left-out domain; borrowing another domain's would be silent.
        raise HrkdError(f"{teacher_path}: no teacher for domain {unseen[0]!r} (left out with --exclude-domain); "
                        f"{cfg.method} needs a one-model teacher for it: --teacher mix or meta")
    say(f"distilling ({cfg.method}) into {out}")
    t0 = time.perf_counter()
    if method.per_domain:
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
