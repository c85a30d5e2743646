"""`hrkd teach`: fine-tune the teachers of HRKD Tables 2 and 3 (docs/method.md, Teachers).

- single: one model per domain, trained on that domain alone (BERT-single)
- mix: one model with one head on all domains pooled (BERT-mix)
- mtl: shared encoder, one head per domain, mean of the per-domain losses (BERT-mtl)
- multi-domain: shared encoder, one head per domain, sum of the per-domain
  losses (HRKD-teacher); optionally keeps each domain's best-dev snapshot
- meta: Meta-KD's meta-teacher (trained by hrkd_cli/train/meta_teacher.py)

Every step of mtl and multi-domain holds one sub-batch from every domain.
Model selection uses dev only; test is scored once, on the selected model.
The recipe takes the prepared data directory; hrkd_cli/pipeline.py prepares it first for `hrkd teach`.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

from hrkd_cli.batches import Split, load_splits, make_batch
from hrkd_cli.config import Preset
from hrkd_cli.data.store import load_prepared
from hrkd_cli.errors import HrkdError
from hrkd_cli.events import event_log
from hrkd_cli.fsio import read_json_if_present
from hrkd_cli.model.checkpoint import load_classifier, read_meta, save_group, weights_fingerprint
from hrkd_cli.model.classifier import DomainClassifier, set_dropout
from hrkd_cli.model.metakd import PROTOTYPE_FILE
from hrkd_cli.model.pretrained import load_pretrained_encoder, load_tokenizer
from hrkd_cli.runs import (Say, check_seq_length, fit_record, meta_data_dir, resumed_time, teacher_dir,
                           teacher_hash, write_run_record)
from hrkd_cli.runtime import Runtime, all_reduce_mean_detached, barrier, seed_everything
from hrkd_cli.sampling import shard
from hrkd_cli.train import setup as training
from hrkd_cli.train.evaluation import evaluate_checkpoint, evaluate_model, score_test
from hrkd_cli.train.meta_teacher import train_meta_teacher
from hrkd_cli.train.prechecks import check_teacher_settings
from hrkd_cli.train.trainer import resume_parts
from hrkd_cli.vocabulary import TEACHER_ROW_NAMES


def pooled(splits: list[Split]) -> Split:
    """All domains as one stream (BERT-mix): the single head serves every domain."""
    return Split(
        "pooled",
        [x for s in splits for x in s.input_ids],
        [x for s in splits for x in s.token_type_ids],
        [x for s in splits for x in s.label],
        [x for s in splits for x in s.text],
        [x for s in splits for x in s.text_b],
    )


def train_classifier(
    preset: Preset,
    runtime: Runtime,
    out: Path,
    *,
    data,
    domains: list[str],
    kind: str,
    resume: bool,
    say: Say,
) -> dict:
    """Fine-tune one DomainClassifier on ``domains``; returns its run record."""
    cfg = preset.teacher
    seed_everything(cfg.seed)
    encoder = load_pretrained_encoder(cfg.model, pooler=cfg.head == "pooler")
    check_seq_length(preset, encoder.config)
    tokenizer = load_tokenizer(cfg.model)
    num_heads = 1 if kind in ("mix", "single") else len(domains)
    model = DomainClassifier(encoder, num_heads, len(data.label_names)).to(runtime.device)
    set_dropout(model, cfg.dropout)

    train = load_splits(data, "train", domains)
    dev = load_splits(data, "dev", domains)
    streams = [pooled(train)] if kind in ("mix",) else train
    stream_domain = [0] if kind == "mix" else list(range(len(train)))
    batch = cfg.batch_per_domain * (len(domains) if kind in ("mix", "single") else 1)
    schedule = training.step_schedule([len(s) for s in streams], batch, cfg.seed, cfg.epochs, runtime,
                                      "teacher.batch_per_domain")
    t = training.start(model, [(list(model.named_parameters()), cfg.lr)], cfg, schedule, runtime, out, resume=resume,
                       say=say, load_weights=lambda last: model.load_state_dict(load_classifier(last)[0].state_dict()))
    total = t.total

    def step_fn(step: int):
        t.net.train()
        rows = schedule.global_indices(step)
        pad_to = max(max(s.lengths(r)) for s, r in zip(streams, rows))
        parts = [(stream_domain[i], s, shard(r, runtime.rank, runtime.world_size)) for i, (s, r) in enumerate(zip(streams, rows))]
        b = make_batch(parts, pad_to=pad_to, pad_id=tokenizer.pad_token_id or 0).to(runtime.device)
        with runtime.autocast():
            logits = t.net(b.input_ids, b.attention_mask, b.token_type_ids, b.domain_sizes).logits
        per_domain = torch.stack([F.cross_entropy(logits[sl], b.labels[sl]) for _, sl in b.slices()])
        # HRKD-teacher sums the per-domain losses (docs/method.md, Teachers); mtl averages them.
        loss = per_domain.sum() if kind == "multi-domain" else per_domain.mean()
        logs = {"loss": float(all_reduce_mean_detached(loss, runtime))}
        logged = step % cfg.log_every == 0 or step == total - 1
        if logged and len(per_domain) == len(domains):  # per domain (mix pools them: no split)
            logs["terms"] = {"ce": all_reduce_mean_detached(per_domain, runtime).tolist()}
        return loss, logs

    def eval_fn():
        return evaluate_model(model, domains, dev, runtime)

    meta = {
        "role": "teacher",
        "kind": kind,
        "domains": domains,
        "label_names": data.label_names,
        "data_hash": data.hash,
        "data_dir": meta_data_dir(data),
        "preset": preset.name,
        "teacher_hash": teacher_hash(preset),
        "seed": cfg.seed,
        "source_model": cfg.model,
    }

    state = t.run(step_fn, eval_fn, module=model, meta=meta, tokenizer=tokenizer,
                  label=f"teach {kind}" + (f" [{domains[0]}]" if len(domains) == 1 else ""),
                  examples_per_step=batch * len(streams), per_domain_best=cfg.per_domain_best and kind == "multi-domain",
                  checkpoint_every=preset.runtime.checkpoint_every, events=event_log(preset, out, runtime, domains))
    return fit_record(state, total, meta)


def teach(preset: Preset, runtime: Runtime, data_dir: Path, kind: str | None = None, resume: bool = False,
          say: Say = print) -> Path:
    """Train the preset's teacher (or ``kind``) on the prepared data in ``data_dir`` into
    <run_dir>/teacher/<kind>/ and score it on test."""
    kind = kind or preset.teacher.kind
    check_teacher_settings(preset)
    data = load_prepared(data_dir)
    if kind == "meta":
        return teach_meta(preset, runtime, data, resume=resume, say=say)
    domains = teacher_domains(preset, list(data.domains))
    out = teacher_dir(preset, kind)
    t0 = time.perf_counter()
    if kind == "single":
        members, records = {}, {}
        started = resume_parts(out, domains, resume)
        for d in domains:
            records[d] = train_classifier(preset, runtime, out / d, data=data, domains=[d], kind=kind, resume=started[d], say=say)
            members[d] = f"{d}/best"
        group_members = members
    else:
        record = train_classifier(preset, runtime, out, data=data, domains=domains, kind=kind, resume=resume, say=say)
        records = {"all": record}
        per_domain = preset.teacher.per_domain_best and kind == "multi-domain"
        group_members = {d: (f"best-{d}" if per_domain and (out / f"best-{d}").is_dir() else "best") for d in domains}
    return finish_teacher(preset, runtime, out, data, kind, domains, group_members, records, t0, say)


def finish_teacher(preset: Preset, runtime: Runtime, out: Path, data, kind: str, domains: list[str],
                   group_members: dict[str, str], records: dict, t0: float, say: Say, group_extra: dict | None = None,
                   record_extra: dict | None = None) -> Path:
    """Save the teacher group, score it on test and dev, and write its run record (``group_extra`` and
    ``record_extra``: the meta-teacher's own fields in the group's hrkd.json and in run.json)."""
    row = TEACHER_ROW_NAMES[kind]
    if runtime.is_main:
        save_group(out, group_members, {"role": "teacher", "kind": kind, "domains": domains, "label_names": data.label_names,
                                         "data_hash": data.hash, "row": row, "data_dir": meta_data_dir(data),
                                         "teacher_hash": teacher_hash(preset), "seed": preset.teacher.seed,
                                         "preset": preset.name, **(group_extra or {})})
    barrier(runtime)
    test = score_test(out, data, domains, runtime)  # also writes predictions.json
    dev = evaluate_checkpoint(out, load_splits(data, "dev", domains), runtime, data.hash)
    if runtime.is_main:
        write_run_record(out / "run.json", {
            "role": "teacher", "kind": kind, "row": row, "preset": preset.model_dump(mode="json"),
            "seed": preset.teacher.seed, "data_hash": data.hash, "weights_sha256": weights_fingerprint(out),
            "dev": dev, "test": test, "wall_time_s": time.perf_counter() - t0 + resumed_time(records), "runs": records,
            **(record_extra or {}),
        }, runtime)
        say(f"teacher {kind} saved to {out}: test average {100 * test['average']:.2f}")
    return out


def reusable_teacher(preset: Preset, kind: str, data_hash: str) -> Path | None:
    """The teacher under <run_dir>/teacher/<kind>/ if it was trained from this preset's teacher and data sections."""
    out = teacher_dir(preset, kind)
    try:
        meta = read_meta(out)
    except HrkdError:
        return None
    record = read_json_if_present(out / "run.json")
    if record is None or meta.get("data_hash") != data_hash:
        return None
    if meta.get("teacher_hash") != teacher_hash(preset):
        return None
    return out


def teach_meta(preset: Preset, runtime: Runtime, data, resume: bool = False, say: Say = print) -> Path:
    """Train the meta-teacher on ``data`` into <run_dir>/teacher/meta[-without-X]/ and score it on dev and test."""
    domains = teacher_domains(preset, list(data.domains))
    excluded = preset.teacher.exclude_domain
    if len(domains) < 2:
        raise HrkdError(
            f"the meta-teacher needs at least 2 domains to learn from (got K={len(domains)}: {', '.join(domains)}): "
            "its prototype score and domain-adversarial loss are undefined for a single domain"
        )
    out = teacher_dir(preset, "meta")
    t0 = time.perf_counter()
    record = train_meta_teacher(preset, runtime, out, data=data, domains=domains, resume=resume, say=say)
    return finish_teacher(preset, runtime, out, data, "meta", domains, {d: "best" for d in domains}, {"all": record},
                          t0, say, group_extra={"excluded_domain": excluded or None, "prototype_scores": PROTOTYPE_FILE},
                          record_extra={"domains": domains, "excluded_domain": excluded or None})


def teacher_domains(preset: Preset, domains: list[str]) -> list[str]:
    """The domains a teacher learns from: all of the data's but ``teacher.exclude_domain`` (Meta-KD Table 4)."""
    excluded = preset.teacher.exclude_domain
    if excluded and excluded not in domains:
        raise HrkdError(f"teacher.exclude_domain={excluded!r} is not a domain of the data ({', '.join(domains)})")
    return [d for d in domains if d != excluded]
