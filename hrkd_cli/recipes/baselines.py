"""`hrkd distill --method meta-kd | mtn-kd`: the Meta-KD and multi-teacher baselines (docs/method.md, Meta-KD).

Both train one student per domain on that domain's data only (like method
"tinybert") and save a group checkpoint and a run record with the same layout
and keys as hrkd_cli.recipes.distill, so eval, sweeps and tables treat them alike.
The student, its projections, the batches, the TinyBERT terms (Eq. 1-4) and
the layout are distill.py's; only the loss differs.

meta-kd (Meta-KD sec. 3.3, meta-distillation), teacher: the meta-teacher.
  loss = sum_i lambda_i (embd_i + attn_i + hidn_i + gamma pred_i + gamma2 tkd_i) / B
  - lambda_i = (1 + t_i) / (exp((1 - p_T(y_i))^2) + 1), per example (not on a batch
    mean); t_i is the prototype score the meta-teacher run stored for this example,
    p_T(y_i) the meta-teacher's probability of the gold label.
  - tkd_i = MSE(h_d^M(x), W_d^M h^S(x)): the teacher's transferable-knowledge vector
    tanh((h(x) + e_D) W + b) (its own TransferableKnowledge module, frozen) against
    the student's mean-pooled last layer h^S(x) through a learned projection W_d^M
    (student width -> teacher width, saved in extras as ``tk_projection.*``). A
    single-domain student needs no domain embedding of its own: it would be a
    constant that the projection's bias absorbs. A domain the teacher never saw
    (``--exclude-domain``) has no row in e_D; it gets the mean of the learned rows.
  - gamma is distill.gamma (1 by default), gamma2 distill.metakd.gamma2.
mtn-kd (Meta-KD sec. 4.2, "Multi-teachers", after You et al. 2017), teachers: the
  single-domain teachers. Each student learns embd/attn/hidn from its own domain's
  teacher and its prediction layer from the average of *all* teachers' softened
  outputs: pbar = mean_k softmax(z_k / t), loss -sum_c pbar_c log softmax(z_S / t)_c.
  (pbar is handed to distill.domain_losses as the logits t * log(pbar), whose
  softmax at temperature t is pbar itself.) A domain without its own teacher
  (``--exclude-domain``) learns embd/attn/hidn from the average of all teachers'
  hidden states and attention scores (the same gradient as averaging the
  per-teacher MSEs); its student is initialised from the first teacher's layers.

distill.metakd.stages, for both methods:
  "one" (default): every term at every step (the formula of Meta-KD sec. 3.3).
  "two": intermediate layers (embd, attn, hidn and, for meta-kd, tkd) during the
    first half of the distill.epochs budget, then the prediction layer during the
    second half (TinyBERT; the released Meta-KD code; Meta-KD's MTN-KD). The
    total budget equals a one-stage run; each stage has its own linear warm-up
    and decay; the best-on-dev student is chosen among prediction-stage evaluations only.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from hrkd_cli.batches import Batch, load_splits, make_batch
from hrkd_cli.model.checkpoint import INCOMPLETE, load_extras, read_meta, read_tensors, save_checkpoint
from hrkd_cli.config import Preset
from hrkd_cli.data.store import load_prepared
from hrkd_cli.errors import HrkdError
from hrkd_cli.train.evaluation import evaluate_model
from hrkd_cli.events import event_log
from hrkd_cli.fsio import read_json, read_json_if_present
from hrkd_cli.model.metakd import (
    TransferableKnowledge,
    domain_expertise_weight,
    gold_probability,
    load_prototype_scores,
    load_transferable,
    mean_pooled_embedding,
    meta_distillation_loss,
    transferable_knowledge_loss,
)
from hrkd_cli.model.classifier import EncoderOutput
from hrkd_cli.train import transfer_steps
from hrkd_cli.runs import Say, data_dir, fit_record
from hrkd_cli.model.kd_model import DistillationModel, Teachers, domain_losses
from hrkd_cli.recipes.students import (
    claim_student_dir,
    ensure_teacher,
    finish_student,
    load_distillation_weights,
    setup,
    student_dir,
)
from hrkd_cli.recipes.prepare import ensure_prepared
from hrkd_cli.runtime import Runtime, all_reduce_mean_detached, barrier
from hrkd_cli.sampling import StepSchedule, check_shardable, shard
from hrkd_cli.train.trainer import FitState, adamw, fit, linear_warmup_decay, restore_training_state, resume_parts, training_state
from hrkd_cli.vocabulary import run_names, teacher_kind, transfer_used

REQUIRED_TEACHER = {"meta-kd": "meta", "mtn-kd": "single"}
TK_PREFIX = "tk_projection."


# ---------------------------------------------------------------- the student side


class BaselineModel(DistillationModel):
    """distill.DistillationModel without a relational module, plus meta-kd's projection W_d^M.

    forward() -> (student outputs, projected features, W_d^M h^S(x) or None).
    """

    def __init__(self, base: DistillationModel, tk_projection: nn.Module | None):
        super().__init__(base.student, base.projections, None, "real", base.attentions, base.runtime)
        self.include_padding = base.include_padding
        self.tk_projection = tk_projection

    def forward(self, batch: Batch):
        out, projected, _ = super().forward(batch)
        tk = None
        if self.tk_projection is not None:
            tk = self.tk_projection(mean_pooled_embedding(out.last_hidden.float(), batch.attention_mask))
        return out, projected, tk


# ---------------------------------------------------------------- meta-kd loss


def per_example_terms(terms, gamma: float) -> dict[str, torch.Tensor]:
    """distill.domain_losses(..., reduction="none") -> [B] tensors, layers summed (Meta-KD: sum over layers)."""
    return {
        "embd": torch.cat(terms.embd),
        "attn": torch.cat([a.sum(-1) for a in terms.attn]),
        "hidn": torch.cat([h.sum(-1) for h in terms.hidn]),
        "pred": gamma * torch.cat(terms.pred),
    }


@torch.no_grad()
def teacher_transferable(tk: TransferableKnowledge, h: torch.Tensor, domain_index: int | None) -> torch.Tensor:
    """h_d^M(x) = tanh((h(x) + e_D) W + b); an unseen domain (None) uses the mean of the learned e_D rows."""
    e = tk.domain_embedding.weight.mean(0) if domain_index is None else tk.domain_embedding.weight[domain_index]
    return torch.tanh(tk.dense(h.float() + e))


def teacher_probability(teacher_logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """p_T(y_i) of lambda_i: of the gold label for a labelled row; for a transfer row, which has no label, of the
    teacher's own prediction (its confidence), so that no gold label of a transfer row is read."""
    if batch.transfer is None:
        return gold_probability(teacher_logits, batch.labels)
    gold = gold_probability(teacher_logits, batch.labels.clamp_min(0))
    return torch.where(batch.transfer, teacher_logits.softmax(-1).amax(-1), gold)


def meta_kd_loss(preset: Preset, out: EncoderOutput, projected, student_tk, t_out: EncoderOutput, teacher_tk,
                 t_scores: torch.Tensor, batch: Batch, layer_map: list[int], stage: str = "one"):
    """L'_KD of one step (Meta-KD sec. 3.3) -> (loss, logs). Every term is weighted per example by lambda_i."""
    cfg = preset.distill
    terms = per_example_terms(domain_losses(preset, out, projected, t_out, batch, layer_map, reduction="none"), cfg.gamma)
    lam = domain_expertise_weight(t_scores.to(terms["embd"].device), teacher_probability(t_out.logits.float(), batch))
    tkd = None if student_tk is None else transferable_knowledge_loss(teacher_tk, student_tk, reduction="none")
    loss = meta_distillation_loss(terms, lam, tkd, cfg.metakd.gamma2 if tkd is not None else 0.0, stage)
    logs = {k: float(v.detach().mean()) for k, v in terms.items()}
    logs.update(lambda_mean=float(lam.mean()), lambda_min=float(lam.min()), lambda_max=float(lam.max()))
    if tkd is not None:
        logs["tkd"] = float(tkd.detach().mean())
    return loss, logs


# ---------------------------------------------------------------- mtn-kd loss


def averaged_soft_targets(logits: list[torch.Tensor], temperature: float) -> torch.Tensor:
    """pbar = mean_k softmax(z_k / t): the multi-teacher target of MTN-KD, [B, C]."""
    return torch.stack([F.softmax(z.float() / temperature, dim=-1) for z in logits]).mean(0)


@torch.no_grad()
def mtn_teacher_outputs(ensemble: Teachers, teacher_domains: list[str], own: str | None, batch: Batch, runtime: Runtime,
                        temperature: float, attentions: bool) -> EncoderOutput:
    """The targets of one mtn-kd step: logits t*log(pbar) (all teachers), hidden states and attention
    scores from ``own``'s teacher, or averaged over all teachers when ``own`` is None (no own teacher)."""
    logits, full = [], []
    for k in teacher_domains:
        model, head = ensemble.by_domain[k]
        rich = own is None or k == own
        with runtime.autocast():
            o = model(batch.input_ids, batch.attention_mask, batch.token_type_ids, [(head, n) for _, n in batch.domain_sizes],
                      hidden_states=rich, attentions=rich and attentions)
        logits.append(o.logits)
        if rich:
            full.append(o)
    target = temperature * averaged_soft_targets(logits, temperature).log()
    if own is not None:
        return EncoderOutput(logits=target, hidden_states=full[0].hidden_states, attentions=full[0].attentions)

    def mean(get):
        return tuple(torch.stack([get(o)[i].float() for o in full]).mean(0) for i in range(len(get(full[0]))))

    return EncoderOutput(logits=target, hidden_states=mean(lambda o: o.hidden_states),
                         attentions=mean(lambda o: o.attentions) if attentions else None)


def mtn_kd_loss(preset: Preset, out: EncoderOutput, projected, t_out: EncoderOutput, batch: Batch, layer_map: list[int],
                stage: str = "one"):
    """Eq. 5 for one domain with the averaged target in the prediction term -> (loss, logs)."""
    cfg = preset.distill
    terms = domain_losses(preset, out, projected, t_out, batch, layer_map)
    inter = terms.embd.sum() + terms.attn.sum() + terms.hidn.sum()
    pred = cfg.gamma * terms.pred.sum()
    loss = {"one": inter + pred, "intermediate": inter, "prediction": pred}[stage]
    logs = {"embd": float(terms.embd.detach().sum()), "attn": float(terms.attn.detach().sum()),
            "hidn": float(terms.hidn.detach().sum()), "pred": float(terms.pred.detach().sum())}
    return loss, logs


# ---------------------------------------------------------------- schedule


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


# ---------------------------------------------------------------- one domain's student


def train_domain_student(preset: Preset, runtime: Runtime, out: Path, teacher_path: Path, domain: str, data, resume: bool,
                         say: Say, ensemble: Teachers | None = None, teacher_domains: list[str] | None = None) -> dict:
    """Distil ``domain``'s student (in-domain data only) with meta-kd or mtn-kd; returns its run record."""
    cfg = preset.distill
    method = cfg.method
    s = setup(preset, runtime, teacher_path, [domain], data)  # seeds, student, projections (no relational module)
    train = load_splits(data, "train", [domain])[0]
    dev = load_splits(data, "dev", [domain])
    attentions = cfg.attention_loss != "off"

    scores = tk = tk_index = tk_projection = None
    if method == "meta-kd":
        all_scores, info = load_prototype_scores(teacher_path)
        if domain not in all_scores or len(all_scores[domain]) != len(train) or info.get("data_hash") != data.hash:
            raise HrkdError(f"{teacher_path}: its prototype scores do not cover the {len(train)} training examples of "
                            f"{domain!r} in this data; train the meta-teacher again (hrkd teach --kind meta)")
        scores = all_scores[domain]
        if cfg.metakd.gamma2 > 0:
            tk, tk_domains = load_transferable(teacher_path, runtime.device)
            tk_index = tk_domains.index(domain) if domain in tk_domains else None
            tk_projection = nn.Linear(s.model.student.config.hidden_size, tk.dense.in_features)  # W_d^M
    model = BaselineModel(s.model, tk_projection).to(runtime.device)

    check_shardable(cfg.batch_per_domain, runtime.world_size, [len(train)], "distill.batch_per_domain")
    schedule = StepSchedule([len(train)], cfg.batch_per_domain, preset.seed, cfg.epochs)
    (train,), schedule = transfer_steps.mix(preset, data, [domain], [train], schedule)  # as they are without transfer data
    if scores is not None and train.first_transfer is not None:
        # t_i of a transfer row (the meta-teacher scored training rows only): the domain's mean prototype score
        scores = torch.cat([scores, scores.mean().expand(len(train) - train.first_transfer)])
    total = schedule.total_steps
    two = cfg.metakd.stages == "two"
    switch = total // 2 if two else 0  # first prediction-stage step
    lr = cfg.fewshot_lr if preset.data.sampled else cfg.lr  # few-shot samples, by share or by count
    optimizer = adamw([{"named_params": list(model.named_parameters()), "lr": lr}], cfg.weight_decay)
    scheduler = (staged_warmup_decay(optimizer, cfg.warmup, switch, total) if two
                 else linear_warmup_decay(optimizer, int(cfg.warmup * total), total))
    net = DDP(model, find_unused_parameters=two) if runtime.distributed else model

    state = FitState()
    if resume:
        last = out / "last"
        load_distillation_weights(model, last)
        if tk_projection is not None:
            tk_projection.load_state_dict({k[len(TK_PREFIX):]: v for k, v in load_extras(last).items() if k.startswith(TK_PREFIX)})
        state = restore_training_state(read_tensors(last / "train_state.safetensors"), read_json(last / "train_state.json", INCOMPLETE),
                                       {"main": optimizer}, {"main": scheduler}, read_json_if_present(last / "train_log.json") or [])
        say(f"resuming {out} at step {state.step}/{total}")

    def batch_at(step: int) -> tuple[Batch, list[int]]:
        rows = schedule.global_indices(step)[0]
        mine = shard(rows, runtime.rank, runtime.world_size)
        b = make_batch([(0, train, mine)], pad_to=max(train.lengths(rows)), pad_id=s.tokenizer.pad_token_id or 0)
        return b.to(runtime.device), mine

    def stage_at(step: int) -> str:
        return "one" if not two else ("intermediate" if step < switch else "prediction")

    def step_fn(step: int):
        net.train()
        batch, rows = batch_at(step)
        stage = stage_at(step)
        out_, projected, student_tk = net(batch)
        if method == "meta-kd":
            t_out = s.teachers(batch, [domain], runtime, attentions=attentions)
            teacher_tk = None
            if tk is not None:
                h = mean_pooled_embedding(t_out.hidden_states[-1].float(), batch.attention_mask)
                teacher_tk = teacher_transferable(tk, h, tk_index)
            loss, logs = meta_kd_loss(preset, out_, projected, student_tk, t_out, teacher_tk, scores[rows], batch, s.layer_map, stage)
        else:
            own = domain if domain in teacher_domains else None
            t_out = mtn_teacher_outputs(ensemble, teacher_domains, own, batch, runtime, cfg.temperature, attentions)
            loss, logs = mtn_kd_loss(preset, out_, projected, t_out, batch, s.layer_map, stage)
        return loss, {"loss": float(all_reduce_mean_detached(loss, runtime)), "stage": stage, **logs}

    def on_step_end(step: int) -> None:
        if two and step == switch:  # stage-1 evaluations never compete for "best"
            state.best_score, state.best_step = -math.inf, -1

    def eval_fn():
        return evaluate_model(model.student, [domain], dev, runtime)

    meta = {
        "role": "student", "method": method, "domains": [domain], "label_names": data.label_names,
        "data_hash": data.hash, "data_dir": str(Path(data.path).resolve()), "preset": preset.name,
        "student_hash": preset.section_hash("data", "teacher", "student", "distill"), "seed": preset.seed,
        "teacher": str(teacher_path), "layer_map": s.layer_map, "drop": [], "graph_mode": cfg.graph_mode,
        "row": run_names(preset).row, "prototype_tokens": cfg.prototype_tokens, "projections": preset.student.projections,
        "teacher_width": s.teachers.config.hidden_size, "relational": None, "stages": cfg.metakd.stages,
        "switch_step": switch if two else None,
        **({"gamma2": cfg.metakd.gamma2, "transferable_domain": domain if tk_index is not None else None}
           if method == "meta-kd" else {"teachers": teacher_domains}),
        **({"transfer": transfer_steps.record(preset, data)} if transfer_used(preset) else {}),
    }

    def save_fn(tag: str, st: FitState):
        if tag == "best" and two and st.step <= switch:
            return
        if runtime.is_main:
            ts = training_state({"main": optimizer}, {"main": scheduler}, st) if tag == "last" else None
            extras = {f"projections.{k}": v for k, v in model.projections.state_dict().items()}
            if tk_projection is not None:
                extras.update({TK_PREFIX + k: v for k, v in tk_projection.state_dict().items()})
            save_checkpoint(out / tag, model.student, {**meta, "tag": tag, "step": st.step, "dev": st.last_dev},
                            s.tokenizer, extras=extras, train_state=ts, files={"train_log.json": st.log})
        barrier(runtime)

    state = fit(
        params=[p for p in model.parameters() if p.requires_grad], optimizers={"main": optimizer},
        schedulers={"main": scheduler}, step_fn=step_fn, eval_fn=eval_fn, save_fn=save_fn, total_steps=total,
        eval_every=cfg.eval_every or schedule.steps_per_epoch, log_every=cfg.log_every,
        max_grad_norm=cfg.max_grad_norm, runtime=runtime, label=f"distill {method} [{domain}]", state=state,
        examples_per_step=cfg.batch_per_domain, on_step_end=on_step_end,
        checkpoint_every=preset.runtime.checkpoint_every, events=event_log(preset, out, runtime, [domain]),
    )
    return fit_record(state, total, meta)


# ---------------------------------------------------------------- the recipe


def distill_baseline(preset: Preset, runtime: Runtime, resume: bool = False, say: Say = print) -> Path:
    """meta-kd / mtn-kd: teacher(s) if missing, one student per domain, group checkpoint, test scores."""
    cfg = preset.distill
    if cfg.method not in REQUIRED_TEACHER:
        raise HrkdError(f"distill_baseline handles meta-kd and mtn-kd, not {cfg.method!r}")
    need = REQUIRED_TEACHER[cfg.method]
    if teacher_kind(preset) != need:
        raise HrkdError(f"distill.method={cfg.method!r} distils from the {need!r} teacher(s); "
                        f"got distill.teacher_kind={cfg.teacher_kind!r} (use 'auto' or {need!r})")
    if runtime.is_main:
        ensure_prepared(preset, say)
    barrier(runtime)
    data = load_prepared(data_dir(preset))
    transfer_steps.check(preset, data, list(data.domains), runtime.world_size)  # before a teacher trains
    teacher_path = ensure_teacher(preset, runtime, data, say)
    teacher_domains = list(read_meta(teacher_path)["domains"])
    domains = list(data.domains)
    out = student_dir(preset)
    claim_student_dir(preset, out, resume)
    ensemble = Teachers(teacher_path, teacher_domains, runtime) if cfg.method == "mtn-kd" else None

    started = resume_parts(out, domains, resume)
    say(f"distilling ({cfg.method}, {cfg.metakd.stages} stage{'s' if cfg.metakd.stages == 'two' else ''}) into {out}")
    t0 = time.perf_counter()
    records, group_members = {}, {}
    for d in domains:
        records[d] = train_domain_student(preset, runtime, out / d, teacher_path, d, data, started[d], say,
                                          ensemble=ensemble, teacher_domains=teacher_domains)
        group_members[d] = f"{d}/best"
    return finish_student(preset, runtime, out, data, group_members, teacher_path, records, t0, say,
                          teacher_domains=teacher_domains, excluded_domain=preset.teacher.exclude_domain or None,
                          stages=cfg.metakd.stages, transfer=transfer_steps.record(preset, data))
