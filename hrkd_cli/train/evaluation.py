"""Accuracy per domain on dev or test, for any teacher or student checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from hrkd_cli.batches import Split, load_splits, make_batch
from hrkd_cli.errors import HrkdError
from hrkd_cli.fsio import write_json_atomic
from hrkd_cli.model.checkpoint import load_classifier, members, read_meta
from hrkd_cli.model.classifier import DomainClassifier
from hrkd_cli.predictions import PREDICTIONS, predictions_record
from hrkd_cli.runtime import Runtime, all_reduce_mean_detached


@torch.no_grad()
def domain_predictions(model: DomainClassifier, domain_index: int, split: Split, runtime: Runtime, batch_size: int = 64) -> list[int]:
    """The argmax label of ``model``'s head for one domain, for every row of ``split`` in its stored order.
    Rows are sorted by length to cut padding; under DDP each process scores every W-th batch and the
    predictions are summed across processes (each row is scored by exactly one, the others hold 0)."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(split)), key=lambda i: len(split.input_ids[i]))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    preds = torch.zeros(len(split), dtype=torch.float64)  # label + 1, so that rows scored elsewhere stay 0
    for rows in batches[runtime.rank :: runtime.world_size]:
        b = make_batch([(domain_index, split, rows)]).to(runtime.device)
        with runtime.autocast():
            out = model(b.input_ids, b.attention_mask, b.token_type_ids, b.domain_sizes)
        preds[rows] = out.logits.argmax(-1).double().cpu() + 1
    if runtime.distributed:  # reduced on the run's device (NCCL reduces CUDA tensors only)
        preds = all_reduce_mean_detached(preds.to(runtime.device), runtime).cpu() * runtime.world_size
    model.train(was_training)
    return [int(round(p)) - 1 for p in preds.tolist()]


def accuracy(pred: list[int], gold: list[int]) -> float:
    """Share of rows whose predicted label is the gold one (0 for an empty split)."""
    return sum(p == y for p, y in zip(pred, gold)) / max(1, len(gold))


def domain_accuracy(model: DomainClassifier, domain_index: int, split: Split, runtime: Runtime, batch_size: int = 64) -> float:
    """Accuracy of ``model``'s head for one domain."""
    return accuracy(domain_predictions(model, domain_index, split, runtime, batch_size), split.label)


def scores_with_average(per_domain: dict[str, float]) -> dict[str, float]:
    return {**per_domain, "average": sum(per_domain.values()) / len(per_domain)}


def evaluate_model(model: DomainClassifier, model_domains: list[str], splits: list[Split], runtime: Runtime) -> dict[str, float]:
    """Per-domain accuracy and the plain average over domains (as in HRKD Tables 2 and 3)."""
    out = {}
    for split in splits:
        if split.domain not in model_domains:
            raise HrkdError(f"the model has no head for domain {split.domain!r} (it knows {', '.join(model_domains)})")
        out[split.domain] = domain_accuracy(model, model_domains.index(split.domain), split, runtime)
    return scores_with_average(out)


def checkpoint_predictions(path: Path, splits: list[Split], runtime: Runtime, data_hash: str | None = None) -> dict[str, list[int]]:
    """Per-example predicted labels (argmax) of a checkpoint, or a group of per-domain checkpoints, per split's domain."""
    meta = read_meta(path)
    if data_hash and meta.get("data_hash") and meta["data_hash"] != data_hash:
        raise HrkdError(
            f"{path}: was trained on data {meta['data_hash'][:12]} but the prepared data is {data_hash[:12]} "
            "(another preset or dataset)"
        )
    return {split.domain: domain_predictions(model, head, split, runtime)
            for split, model, head in domain_heads(path, splits, runtime)}


def domain_heads(path: Path, splits: list[Split], runtime: Runtime):
    """(split, model, head index) for each split's domain of a checkpoint or a group of per-domain
    checkpoints; each member is loaded once."""
    by_domain = members(path)
    cache: dict[Path, tuple[DomainClassifier, dict]] = {}
    for split in splits:
        if split.domain not in by_domain:
            raise HrkdError(f"{path}: has no model for domain {split.domain!r}")
        member = by_domain[split.domain]
        if member not in cache:
            cache[member] = load_classifier(member, runtime.device)
        model, meta = cache[member]
        yield split, model, meta["domains"].index(split.domain)


def scores_of(predictions: dict[str, list[int]], splits: list[Split]) -> dict[str, float]:
    """Per-domain accuracy of ``predictions`` on ``splits`` and their plain average."""
    return scores_with_average({s.domain: accuracy(predictions[s.domain], s.label) for s in splits})


def evaluate_checkpoint(path: Path, splits: list[Split], runtime: Runtime, data_hash: str | None = None) -> dict[str, float]:
    """Score a checkpoint, or a group of per-domain checkpoints, on the given splits."""
    return scores_of(checkpoint_predictions(path, splits, runtime, data_hash), splits)


def score_test(out: Path, data, domains: list[str], runtime) -> dict[str, float]:
    """Test accuracy per domain and on average of the checkpoint (group) at ``out``, as run.json records it.
    Every finished teacher and student run scores test through here, so each also leaves its per-example
    predictions (argmax) beside run.json as predictions.json (hrkd_cli.predictions), written before run.json."""
    splits = load_splits(data, "test", domains)
    predicted = checkpoint_predictions(out, splits, runtime, data.hash)
    if runtime.is_main:
        write_json_atomic(Path(out) / PREDICTIONS,
                          predictions_record(data.manifest, "test", predicted, {s.domain: list(s.label) for s in splits}))
    return scores_of(predicted, splits)
