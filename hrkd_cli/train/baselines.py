"""The loop of the Meta-KD and multi-teacher baselines (registry entries with loop "baseline"; Pan et al.,
ACL 2021, sec. 3.3 and 4.2; docs/method.md, Meta-KD). Their modules and losses: hrkd_cli/model/baselines.py.

Both train one student per domain on that domain's data only (like method "tinybert") and save a group
checkpoint and a run record with the same layout and keys as the joint loop (hrkd_cli/train/distill.py), so
eval, sweeps and tables treat them alike. The student, its projections, the batches, the TinyBERT terms
(Eq. 1-4) and the layout are students.py's; only the loss differs.

meta-kd, teacher: the meta-teacher. Every term is weighted per example by lambda_i = (1 + t_i) /
  (exp((1 - p_T(y_i))^2) + 1); t_i is the prototype score the meta-teacher run stored for this example. With
  distill.metakd.gamma2 > 0 the student's mean-pooled last layer also learns the teacher's transferable-knowledge
  vector through a learned projection W_d^M (saved in extras as ``tk_projection.*``); a domain the teacher never
  saw (``--exclude-domain``) gets the mean of the learned domain embeddings.
mtn-kd (after You et al. 2017), teachers: the single-domain teachers. Each student learns embd/attn/hidn from
  its own domain's teacher (or the average of all teachers' features when it has none) and its prediction
  layer from the average of all teachers' softened outputs.

distill.metakd.stages, for both methods:
  "one" (default): every term at every step (the formula of Meta-KD sec. 3.3).
  "two": intermediate layers (embd, attn, hidn and, for meta-kd, tkd) during the
    first half of the distill.epochs budget, then the prediction layer during the
    second half (TinyBERT; the released Meta-KD code; Meta-KD's MTN-KD). The
    total budget equals a one-stage run; each stage has its own linear warm-up
    and decay; the best-on-dev student is chosen among prediction-stage evaluations only.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

from hrkd_cli.batches import Batch, load_splits, make_batch
from hrkd_cli.config import Preset
from hrkd_cli.errors import HrkdError
from hrkd_cli.events import event_log
from hrkd_cli.model.baselines import TK_PREFIX, BaselineModel, mtn_teacher_outputs, teacher_transferable
from hrkd_cli.model.checkpoint import load_extras, read_meta
from hrkd_cli.model.kd_model import Teachers
from hrkd_cli.model.metakd import load_prototype_scores, load_transferable, mean_pooled_embedding
from hrkd_cli.runs import Say, fit_record
from hrkd_cli.runtime import Runtime, all_reduce_mean_detached
from hrkd_cli.sampling import shard
from hrkd_cli.train import setup as training
from hrkd_cli.train import transfer_steps
from hrkd_cli.train.evaluation import evaluate_model
from hrkd_cli.train.methods import Method
from hrkd_cli.train.students import finish_student, load_distillation_weights, setup
from hrkd_cli.train.trainer import resume_parts
from hrkd_cli.vocabulary import run_names, teacher_kind, transfer_used

LOG_FILE = "train_log.json"


def check_teacher_kind(method: Method, preset: Preset) -> None:
    """A baseline distils from its own kind of teacher only (the meta-teacher, or the single-domain teachers)."""
    cfg = preset.distill
    if teacher_kind(preset) != method.teacher:
        raise HrkdError(f"distill.method={cfg.method!r} distils from the {method.teacher!r} teacher(s); "
                        f"got distill.teacher_kind={cfg.teacher_kind!r} (use 'auto' or {method.teacher!r})")


def train_domain_student(method: Method, preset: Preset, runtime: Runtime, out: Path, teacher_path: Path, domain: str,
                         data, resume: bool, say: Say, ensemble: Teachers | None = None,
                         teacher_domains: list[str] | None = None) -> dict:
    """Distil ``domain``'s student (in-domain data only) with a baseline ``method``; returns its run record.
    From the meta-teacher (meta-kd) the loss reads its prototype scores and transferable knowledge; from
    several teachers (mtn-kd), their averaged outputs."""
    cfg = preset.distill
    from_meta = method.teacher == "meta"
    s = setup(preset, runtime, teacher_path, [domain], data, out)  # seeds, student, projections (no relational module)
    train = load_splits(data, "train", [domain])[0]
    dev = load_splits(data, "dev", [domain])
    attentions = cfg.attention_loss != "off"

    scores = tk = tk_index = tk_projection = None
    if from_meta:
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

    schedule = training.step_schedule([len(train)], cfg.batch_per_domain, preset.seed, cfg.epochs, runtime,
                                      "distill.batch_per_domain")
    (train,), schedule = transfer_steps.mix(preset, data, [domain], [train], schedule)  # as they are without transfer data
    if scores is not None and train.first_transfer is not None:
        # t_i of a transfer row (the meta-teacher scored training rows only): the domain's mean prototype score
        scores = torch.cat([scores, scores.mean().expand(len(train) - train.first_transfer)])
    two = cfg.metakd.stages == "two"
    switch = schedule.total_steps // 2 if two else None  # first prediction-stage step
    lr = cfg.fewshot_lr if preset.data.sampled else cfg.lr  # few-shot samples, by share or by count

    def load_weights(last: Path) -> None:
        load_distillation_weights(model, last)
        if tk_projection is not None:
            tk_projection.load_state_dict({k[len(TK_PREFIX):]: v for k, v in load_extras(last).items() if k.startswith(TK_PREFIX)})

    t = training.start(model, [(list(model.named_parameters()), lr)], cfg, schedule, runtime, out, resume=resume,
                       say=say, load_weights=load_weights, log_file=LOG_FILE, switch=switch, find_unused=two)
    total = t.total

    def batch_at(step: int) -> tuple[Batch, list[int]]:
        rows = schedule.global_indices(step)[0]
        mine = shard(rows, runtime.rank, runtime.world_size)
        b = make_batch([(0, train, mine)], pad_to=max(train.lengths(rows)), pad_id=s.tokenizer.pad_token_id or 0)
        return b.to(runtime.device), mine

    def stage_at(step: int) -> str:
        return "one" if not two else ("intermediate" if step < switch else "prediction")

    def step_fn(step: int):
        t.net.train()
        batch, rows = batch_at(step)
        stage = stage_at(step)
        out_, projected, student_tk = t.net(batch)
        if from_meta:
            t_out = s.teachers(batch, [domain], runtime, attentions=attentions)
            teacher_tk = None
            if tk is not None:
                h = mean_pooled_embedding(t_out.hidden_states[-1].float(), batch.attention_mask)
                teacher_tk = teacher_transferable(tk, h, tk_index)
            loss, logs = method.loss(cfg, out_, projected, student_tk, t_out, teacher_tk, scores[rows], batch, s.layer_map, stage)
        else:
            own = domain if domain in teacher_domains else None
            t_out = mtn_teacher_outputs(ensemble, teacher_domains, own, batch, runtime, cfg.temperature, attentions)
            loss, logs = method.loss(cfg, out_, projected, t_out, batch, s.layer_map, stage)
        return loss, {"loss": float(all_reduce_mean_detached(loss, runtime)), "stage": stage, **logs}

    def eval_fn():
        return evaluate_model(model.student, [domain], dev, runtime)

    meta = {
        "role": "student", "method": cfg.method, "domains": [domain], "label_names": data.label_names,
        "data_hash": data.hash, "data_dir": str(Path(data.path).resolve()), "preset": preset.name,
        "student_hash": preset.section_hash("data", "teacher", "student", "distill"), "seed": preset.seed,
        "teacher": str(teacher_path), "layer_map": s.layer_map, "drop": [], "graph_mode": cfg.graph_mode,
        "row": run_names(preset).row, "prototype_tokens": cfg.prototype_tokens, "projections": preset.student.projections,
        "teacher_width": s.teachers.config.hidden_size, "relational": None, "stages": cfg.metakd.stages,
        "switch_step": switch if two else None,
        **({"gamma2": cfg.metakd.gamma2, "transferable_domain": domain if tk_index is not None else None}
           if from_meta else {"teachers": teacher_domains}),
        **({"transfer": transfer_steps.record(preset, data)} if transfer_used(preset) else {}),
        **({"general": s.general} if s.general is not None else {}),
    }

    def extras() -> dict:
        found = {f"projections.{k}": v for k, v in model.projections.state_dict().items()}
        if tk_projection is not None:
            found.update({TK_PREFIX + k: v for k, v in tk_projection.state_dict().items()})
        return found

    state = t.run(step_fn, eval_fn, module=model.student, meta=meta, tokenizer=s.tokenizer, extras=extras,
                  label=f"distill {cfg.method} [{domain}]", examples_per_step=cfg.batch_per_domain,
                  checkpoint_every=preset.runtime.checkpoint_every, events=event_log(preset, out, runtime, [domain]))
    return fit_record(state, total, meta)


def distill_baseline(method: Method, preset: Preset, runtime: Runtime, out: Path, data, teacher_path: Path,
                     resume: bool, say: Say) -> Path:
    """One student per domain into ``out/<domain>``, then the group checkpoint and its test scores."""
    cfg = preset.distill
    teacher_domains = list(read_meta(teacher_path)["domains"])
    domains = list(data.domains)
    ensemble = Teachers(teacher_path, teacher_domains, runtime) if method.teacher == "single" else None

    started = resume_parts(out, domains, resume)
    say(f"distilling ({cfg.method}, {cfg.metakd.stages} stage{'s' if cfg.metakd.stages == 'two' else ''}) into {out}")
    t0 = time.perf_counter()
    records, group_members = {}, {}
    for d in domains:
        records[d] = train_domain_student(method, preset, runtime, out / d, teacher_path, d, data, started[d], say,
                                          ensemble=ensemble, teacher_domains=teacher_domains)
        group_members[d] = f"{d}/best"
    return finish_student(preset, runtime, out, data, group_members, teacher_path, records, t0, say,
                          teacher_domains=teacher_domains, excluded_domain=preset.teacher.exclude_domain or None,
                          stages=cfg.metakd.stages, transfer=transfer_steps.record(preset, data))
