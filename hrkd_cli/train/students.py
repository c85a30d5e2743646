"""What every student trainer shares (the joint loop of distill.py and the Meta-KD / MTN-KD loop of baselines.py).

Directories of student runs, the setup that builds the distillation model (hrkd_cli/model/kd_model.py:
teachers, student, projections, the method's own part such as HRKD's relational module; Eq. 1-5 / 17)
and runs the general stage where asked (general_kd.py), the meta-mode outer objective, and the finishing
step that saves, scores and records a student. Both loops import from here, and nothing here imports them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from hrkd_cli.batches import Batch, load_splits, make_batch
from hrkd_cli.config import Preset
from hrkd_cli.errors import HrkdError
from hrkd_cli.events import event_log
from hrkd_cli.fsio import read_json_if_present
from hrkd_cli.model.checkpoint import load_classifier, load_extras, save_group, weights_fingerprint
from hrkd_cli.model.classifier import Projections, set_dropout, uniform_layer_map
from hrkd_cli.model.kd_model import DistillationModel, Teachers, build_student, domain_losses
from hrkd_cli.model.pretrained import load_tokenizer
from hrkd_cli.runs import Say, check_seq_length, resumed_time, run_dir, write_run_record
from hrkd_cli.runtime import Runtime, barrier, seed_everything
from hrkd_cli.sampling import StepSchedule, shard
from hrkd_cli.train import transfer_steps
from hrkd_cli.train.evaluation import evaluate_checkpoint, score_test
from hrkd_cli.train.general_kd import general_distillation
from hrkd_cli.train.methods import METHODS
from hrkd_cli.vocabulary import run_names


def student_dir(preset: Preset) -> Path:
    return run_dir(preset) / "student" / run_names(preset).tag / f"seed-{preset.seed}"


def claim_student_dir(preset: Preset, out: Path, resume: bool) -> None:
    """Refuse to overwrite a student run of another configuration in the same directory.

    A directory is named by method, teacher, graph and seed, not by every setting, so two runs that
    differ only in, say, distill.temperature would share it and the later one would silently replace
    the earlier (and two started together would mix their checkpoints). distill.tag keeps them apart.
    """
    sections = ("data", "teacher", "student", "distill")
    found = None
    for meta_file in (out / "run.json", out / "last" / "hrkd.json"):
        record = read_json_if_present(meta_file)
        if record:
            found = record
            break
    if found is None:
        return
    mine = preset.section_hash(*sections)
    theirs = found.get("preset_hash") or found.get("student_hash")
    if theirs is None or theirs == mine:
        return
    old, new = found.get("preset") or {}, preset.model_dump(mode="json")
    diffs = [f"{sec}.{k} {old[sec].get(k)!r} -> {v!r}" for sec in sections if isinstance(old.get(sec), dict)
             for k, v in new[sec].items() if old[sec].get(k) != v]
    what = "; ".join(diffs[:3]) + (f" (+{len(diffs) - 3} more)" if len(diffs) > 3 else "") if diffs else "other settings"
    raise HrkdError(f"{out} holds a run of another configuration ({what}); keep both with --set "
                    f"distill.tag='\"NAME\"' or remove {out}")


@dataclass
class Setup:
    preset: Preset
    data: object
    domains: list[str]
    teachers: Teachers
    model: DistillationModel
    layer_map: list[int]
    tokenizer: object
    general: dict | None = None  # the general stage's record (general_kd.general_distillation), where it ran


def step_batch(splits, schedule: StepSchedule, step: int, runtime: Runtime, pad_id: int) -> Batch:
    """Step ``step``'s global batch of ``schedule`` over ``splits``, this rank's share, padded to the global length."""
    rows = schedule.global_indices(step)
    pad_to = max(max(x.lengths(r)) for x, r in zip(splits, rows))
    parts = [(d, x, shard(r, runtime.rank, runtime.world_size)) for d, (x, r) in enumerate(zip(splits, rows))]
    return make_batch(parts, pad_to=pad_to, pad_id=pad_id).to(runtime.device)


def meta_objective(s: Setup, dev, runtime: Runtime):
    """The outer loss of graph_mode = meta (distill.meta_objective) and the held-out batch it is taken on.

    dev-kd: unweighted Eq. 5 on a dev batch. The ratios weight only the inner (training) loss, so phi is
    judged by how well the student it produces matches the teacher on held-out text, and cannot lower the
    outer loss by moving weight onto an easy domain (what the ratio-weighted Eq. 17 on a training batch
    rewards). dev-task: cross-entropy against the dev batch's gold labels instead. train-eq17: ratio-weighted
    Eq. 17 on the next training batch; returns (None, None) and the caller takes that batch.
    Dev batches cycle through the dev split in a seeded order of their own.
    """
    cfg = s.preset.distill
    if cfg.meta_objective == "train-eq17":
        return None, None
    empty = [d for d, x in zip(s.domains, dev) if len(x) == 0]
    if empty:
        raise HrkdError(f"distill.meta_objective = {cfg.meta_objective!r} needs dev data, but the dev split of "
                        f"domain {empty[0]!r} is empty; use meta_objective = 'train-eq17' or a data split with dev")
    batch = min(cfg.batch_per_domain, min(len(x) for x in dev))
    schedule = StepSchedule([len(x) for x in dev], batch, s.preset.seed + 7919, 1)
    pad_id = s.tokenizer.pad_token_id or 0

    def heldout_at(step: int) -> Batch:
        return step_batch(dev, schedule, step, runtime, pad_id)

    def val_loss(batch: Batch, module: nn.Module) -> torch.Tensor:
        if cfg.meta_objective == "dev-task":
            out, _, _ = module(batch)
            return torch.nn.functional.cross_entropy(out.logits.float(), batch.labels)
        t = s.teachers(batch, s.domains, runtime, attentions=cfg.attention_loss != "off")
        out, projected, _ = module(batch)
        return domain_losses(cfg, out, projected, t, batch, s.layer_map).total(None, gamma=cfg.gamma)

    return heldout_at, val_loss


def distillation_loss(s: Setup, batch: Batch, runtime: Runtime, module: nn.Module | None = None):
    """One step's loss: frozen teacher outputs, student forward (through DDP when given), Eq. 1-4 combined by
    the method's loss (Eq. 5 / 17)."""
    cfg = s.preset.distill
    t = s.teachers(batch, s.domains, runtime, attentions=cfg.attention_loss != "off")
    out, projected, rel = (module or s.model)(batch)
    terms = domain_losses(cfg, out, projected, t, batch, s.layer_map)
    return METHODS[cfg.method].loss(cfg, terms, rel), terms, rel


def setup(preset: Preset, runtime: Runtime, teacher_path: Path, domains: list[str], data, out: Path | None = None) -> Setup:
    """Seed, load the frozen teacher(s), build the student (student.init), its projections and the method's own
    part (its registry entry's student builder), and run the general stage where asked (its TensorBoard events,
    with runtime.tensorboard, under the run directory ``out`` where given)."""
    cfg = preset.distill
    seed_everything(preset.seed)
    teachers = Teachers(teacher_path, domains, runtime)
    tcfg = teachers.config
    check_seq_length(preset, tcfg)
    student = build_student(preset.student, preset.teacher.model, teachers.models[0], len(domains),
                            len(data.label_names)).to(runtime.device)
    scfg = student.config
    layer_map = uniform_layer_map(tcfg.num_hidden_layers, scfg.num_hidden_layers)
    if cfg.attention_loss != "off" and scfg.num_attention_heads != tcfg.num_attention_heads:
        raise HrkdError(
            f"the attention loss (Eq. 3) needs equal head counts: student {scfg.num_attention_heads}, teacher "
            f"{tcfg.num_attention_heads}; set distill.attention_loss='off' or student.num_heads"
        )
    projections = Projections(scfg.hidden_size, tcfg.hidden_size, scfg.num_hidden_layers, preset.student.projections == "always")
    relational = METHODS[cfg.method].student(cfg, scfg.num_hidden_layers, len(domains), tcfg.hidden_size)
    model = DistillationModel(student, projections, relational, cfg.prototype_tokens, cfg.attention_loss != "off", runtime).to(runtime.device)
    set_dropout(model, cfg.dropout)
    tokenizer = load_tokenizer(preset.teacher.model)
    general = None
    if preset.student.init == "random" and preset.student.general_epochs > 0:
        # TinyBERT's general stage on the task text (labels unused): hrkd_cli/train/general_kd.py
        general = general_distillation(preset, runtime, student, projections, teachers,
                                       transfer_steps.general_text(preset, data, domains), domains, layer_map,
                                       dev=load_splits(data, "dev", domains), pad_id=tokenizer.pad_token_id or 0,
                                       events=event_log(preset, out, runtime, domains, stage="general") if out else None)
    return Setup(preset, data, domains, teachers, model, layer_map, tokenizer, general)


def load_distillation_weights(model: DistillationModel, ckpt: Path) -> None:
    student, _ = load_classifier(ckpt)
    model.student.load_state_dict(student.state_dict())
    extras = load_extras(ckpt)
    model.projections.load_state_dict({k[len("projections."):]: v for k, v in extras.items() if k.startswith("projections.")})
    if model.relational is not None:
        model.relational.load_state_dict({k[len("relational."):]: v for k, v in extras.items() if k.startswith("relational.")})


def finish_student(preset: Preset, runtime: Runtime, out: Path, data, group_members: dict[str, str], teacher_path: Path,
                   records: dict, t0: float, say: Say, **extra) -> Path:
    """Save the student group, score it on test and dev, and write its run record (with ``extra`` fields)."""
    cfg = preset.distill
    domains = list(group_members)
    if runtime.is_main:
        save_group(out, group_members, {"role": "student", "method": cfg.method, "domains": domains,
                                         "label_names": data.label_names, "data_hash": data.hash,
                                         "data_dir": str(Path(data.path).resolve()), "row": run_names(preset).row,
                                         "seed": preset.seed, "preset": preset.name})
    barrier(runtime)
    test = score_test(out, data, domains, runtime)  # also writes predictions.json
    dev = evaluate_checkpoint(out, load_splits(data, "dev", domains), runtime, data.hash)
    if runtime.is_main:
        write_run_record(out / "run.json", {
            "role": "student", "method": cfg.method, "row": run_names(preset).row, "preset": preset.model_dump(mode="json"),
            "preset_hash": preset.section_hash("data", "teacher", "student", "distill"), "seed": preset.seed,
            "data_hash": data.hash, "teacher": str(teacher_path), "teacher_sha256": weights_fingerprint(teacher_path),
            **extra, "dev": dev, "test": test,
            "wall_time_s": time.perf_counter() - t0 + resumed_time(records), "runs": records,
        }, runtime)
        say(f"student saved to {out}: test average {100 * test['average']:.2f}")
    return out
