"""Training Meta-KD's meta-teacher (`hrkd teach --kind meta`; Pan et al., ACL 2021, sec. 3.2; docs/method.md, Meta-KD).

One BERT encoder with one classification head, fine-tuned on the training data
of every domain pooled (like BERT-mix), with two additions:

- instance level: each example's cross-entropy is weighted by its prototype
  score t_i. The scores are computed once, before any fine-tuning, from the
  *pre-trained* encoder (mean-pooled last layer, class prototypes per domain)
  and stored next to the checkpoint in ``prototype_scores.safetensors``, keyed
  by domain and by the example's position in that domain's training split;
  meta-distillation reads them back for its domain-expertise weights.
- feature level: a TransferableKnowledge module, h_d(x) = tanh((h(x) + e_D(x)) W + b),
  and a K-way domain classifier trained towards corrupted (in-batch shuffled)
  domain labels, weight gamma1. Its weights go into the checkpoint's
  ``extras.safetensors`` (prefix ``transferable.``) so that meta-distillation
  can compute the teacher's transferable-knowledge vector.

Loss per step: (sum_i t_i CE_i) / N + gamma1 * L_DA (hrkd_cli.model.metakd.meta_teacher_loss).

With ``teacher.exclude_domain`` the teacher is trained on the other domains only:
their scores use only their own prototypes (K - 1 domains), so nothing of the
excluded domain reaches the teacher. The excluded domain's own scores, which its
student needs later, are computed in the same pass from the same pre-trained
encoder against its own class prototypes plus the seen domains' prototypes
(zeta = (1 - alpha) / (K - 1) over the K - 1 seen domains); the teacher never reads them.
"""

from __future__ import annotations

from pathlib import Path

import torch

from hrkd_cli.batches import Split, load_splits, make_batch
from hrkd_cli.config import Preset
from hrkd_cli.errors import HrkdError
from hrkd_cli.events import event_log
from hrkd_cli.fsio import recover_dir
from hrkd_cli.model.checkpoint import load_classifier, load_extras
from hrkd_cli.model.classifier import DomainClassifier, set_dropout
from hrkd_cli.model.metakd import (
    EXTRAS_PREFIX,
    PROTOTYPE_FILE,
    MetaTeacherModel,
    class_prototypes,
    corrupt_domain_labels,
    load_prototype_scores,
    mean_pooled_embedding,
    meta_teacher_loss,
    prototype_scores,
    save_prototype_scores,
    transferable_extras,
)
from hrkd_cli.model.pretrained import load_pretrained_encoder, load_tokenizer
from hrkd_cli.runs import Say, check_seq_length, fit_record, meta_data_dir, teacher_hash
from hrkd_cli.runtime import Runtime, all_reduce_mean_detached, barrier, seed_everything
from hrkd_cli.sampling import shard
from hrkd_cli.train import setup as training
from hrkd_cli.train.evaluation import evaluate_model


# ---------------------------------------------------------------- prototype scores (sec. 3.2, instance level)


@torch.no_grad()
def pooled_embeddings(encoder, split: Split, runtime: Runtime, pad_id: int = 0, batch_size: int = 64) -> torch.Tensor:
    """h(x) of every example of a split, [N, H] float32 on the CPU, in the split's order."""
    was_training = encoder.training
    encoder.eval()
    out = torch.zeros(len(split), encoder.config.hidden_size)
    order = sorted(range(len(split)), key=lambda i: len(split.input_ids[i]))  # less padding
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        b = make_batch([(0, split, rows)], pad_id=pad_id).to(runtime.device)
        with runtime.autocast():
            last = encoder(input_ids=b.input_ids, attention_mask=b.attention_mask, token_type_ids=b.token_type_ids).last_hidden_state
        out[rows] = mean_pooled_embedding(last.float(), b.attention_mask).cpu()
    encoder.train(was_training)
    return out


def compute_prototype_scores(embeddings: dict[str, torch.Tensor], labels: dict[str, list[int]], seen: list[str],
                             num_labels: int, alpha: float) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """t_i of every example of every domain in ``embeddings``; returns ({domain: [N_d]}, prototypes [K, C, H]).

    Prototypes p_k^(m) come from the ``seen`` domains. A domain outside ``seen`` (the
    excluded one) is scored against its own class prototypes plus the seen ones.
    """
    K = len(seen)
    emb = torch.cat([embeddings[d] for d in seen])
    lab = torch.cat([torch.tensor(labels[d], dtype=torch.long) for d in seen])
    dom = torch.cat([torch.full((len(labels[d]),), k, dtype=torch.long) for k, d in enumerate(seen)])
    protos = class_prototypes(emb, lab, dom, K, num_labels)
    t = prototype_scores(emb, lab, dom, protos, alpha)
    scores, start = {}, 0
    for d in seen:
        scores[d] = t[start : start + len(labels[d])].contiguous()
        start += len(labels[d])
    for d in embeddings:
        if d in seen:
            continue
        lab_x = torch.tensor(labels[d], dtype=torch.long)
        own = class_prototypes(embeddings[d], lab_x, torch.zeros_like(lab_x), 1, num_labels)
        scores[d] = prototype_scores(embeddings[d], lab_x, torch.full_like(lab_x, K), torch.cat([protos, own]), alpha)
    return scores, protos


def prototype_scores_for(preset: Preset, runtime: Runtime, data, seen: list[str], out: Path, say: Say) -> dict[str, torch.Tensor]:
    """Compute (rank 0) and store the scores of every domain of the data; every rank then reads the file."""
    path = out / PROTOTYPE_FILE
    if runtime.is_main:
        cfg = preset.teacher
        encoder = load_pretrained_encoder(cfg.model).to(runtime.device)
        pad_id = load_tokenizer(cfg.model).pad_token_id or 0
        train = {s.domain: s for s in load_splits(data, "train", list(data.domains))}
        say(f"meta-teacher: prototype scores of {sum(len(s) for s in train.values())} training examples "
            f"from the pre-trained encoder (alpha {cfg.meta.alpha})")
        emb = {d: pooled_embeddings(encoder, s, runtime, pad_id) for d, s in train.items()}
        scores, protos = compute_prototype_scores(emb, {d: s.label for d, s in train.items()}, seen, data.num_labels, cfg.meta.alpha)
        info = {"alpha": cfg.meta.alpha, "seen_domains": seen, "excluded_domain": cfg.exclude_domain or None,
                "data_hash": data.hash, "source_model": cfg.model, "pooling": "mean over real tokens of the last layer",
                "counts": {d: len(s) for d, s in train.items()}}
        save_prototype_scores(path, scores, protos, info)
        del encoder
    barrier(runtime)
    return load_prototype_scores(out)[0]


def check_stored_scores(out: Path, data, seen: list[str], alpha: float) -> dict[str, torch.Tensor]:
    """The scores of an interrupted run, if they were computed for this data, domains and alpha (--resume)."""
    scores, info = load_prototype_scores(out)
    if info.get("data_hash") != data.hash or info.get("seen_domains") != seen or info.get("alpha") != alpha:
        raise HrkdError(f"--resume: {out / PROTOTYPE_FILE} was computed for other data, domains or alpha; start afresh")
    return scores


# ---------------------------------------------------------------- the training


def pooled_stream(train: list[Split]) -> list[tuple[int, int]]:
    """All domains as one stream of (domain index, row in that domain's split)."""
    return [(k, r) for k, s in enumerate(train) for r in range(len(s))]


def train_meta_teacher(preset: Preset, runtime: Runtime, out: Path, *, data, domains: list[str], resume: bool, say: Say) -> dict:
    """Fine-tune the meta-teacher on ``domains`` pooled; returns its run record."""
    cfg = preset.teacher
    K = len(domains)
    if resume:
        recover_dir(out / "last")
        if not (out / "last" / "train_state.json").is_file():
            raise HrkdError(f"--resume: no checkpoint to resume from at {out / 'last'}")
        scores = check_stored_scores(out, data, domains, cfg.meta.alpha)
    else:
        scores = prototype_scores_for(preset, runtime, data, domains, out, say)

    seed_everything(cfg.seed)
    encoder = load_pretrained_encoder(cfg.model, pooler=cfg.head == "pooler")
    check_seq_length(preset, encoder.config)
    tokenizer = load_tokenizer(cfg.model)
    model = MetaTeacherModel(DomainClassifier(encoder, 1, data.num_labels), K).to(runtime.device)
    set_dropout(model, cfg.dropout)

    train = load_splits(data, "train", domains)
    dev = load_splits(data, "dev", domains)
    stream = pooled_stream(train)
    batch_size = cfg.batch_per_domain * K  # as BERT-mix: the same examples per step as the per-domain teachers
    schedule = training.step_schedule([len(stream)], batch_size, cfg.seed, cfg.epochs, runtime, "teacher.batch_per_domain")

    def load_weights(last: Path) -> None:
        model.classifier.load_state_dict(load_classifier(last)[0].state_dict())
        model.transferable.load_state_dict({k[len(EXTRAS_PREFIX):]: v for k, v in load_extras(last).items()})

    t = training.start(model, [(list(model.named_parameters()), cfg.lr)], cfg, schedule, runtime, out, resume=resume,
                       say=say, load_weights=load_weights)

    def batch_at(step: int):
        rows = schedule.global_indices(step)[0]
        pad_to = max(len(train[k].input_ids[r]) for k, r in (stream[i] for i in rows))
        mine = [stream[i] for i in shard(rows, runtime.rank, runtime.world_size)]
        by_domain = {k: [r for kk, r in mine if kk == k] for k in range(K)}
        parts = [(k, train[k], rs) for k, rs in by_domain.items() if rs]
        b = make_batch(parts, pad_to=pad_to, pad_id=tokenizer.pad_token_id or 0).to(runtime.device)
        domain_ids = torch.cat([torch.full((len(rs),), k, dtype=torch.long) for k, _, rs in parts])
        return b, domain_ids, torch.cat([scores[domains[k]][rs] for k, _, rs in parts])

    def step_fn(step: int):
        t.net.train()
        b, domain_ids, scores_t = batch_at(step)
        # z_i: the batch's domain labels shuffled, seeded by the step so that a resumed run draws the same ones.
        corrupted = corrupt_domain_labels(domain_ids, torch.Generator().manual_seed(cfg.seed * 1_000_003 + step))
        logits, domain_logits = t.net(b, domain_ids.to(runtime.device), runtime)
        loss = meta_teacher_loss(logits, b.labels, scores_t.to(runtime.device), domain_logits, corrupted.to(runtime.device),
                                 cfg.meta.gamma1)
        return loss, {"loss": float(all_reduce_mean_detached(loss, runtime)), "t_mean": float(scores_t.mean())}

    def eval_fn():
        return evaluate_model(model.classifier, domains, dev, runtime)

    meta = {
        "role": "teacher", "kind": "meta", "domains": domains, "label_names": data.label_names,
        "data_hash": data.hash, "data_dir": meta_data_dir(data), "preset": preset.name,
        "teacher_hash": teacher_hash(preset), "seed": cfg.seed, "source_model": cfg.model,
        "excluded_domain": cfg.exclude_domain or None, "alpha": cfg.meta.alpha, "gamma1": cfg.meta.gamma1,
        "prototype_scores": f"../{PROTOTYPE_FILE}",
        "transferable": {"hidden": model.classifier.config.hidden_size, "num_domains": K, "extras_prefix": EXTRAS_PREFIX},
    }

    state = t.run(step_fn, eval_fn, module=model.classifier, meta=meta, tokenizer=tokenizer,
                  extras=lambda: transferable_extras(model.transferable), label="teach meta",
                  examples_per_step=batch_size, checkpoint_every=preset.runtime.checkpoint_every,
                  events=event_log(preset, out, runtime, domains))
    return fit_record(state, t.total, meta)
