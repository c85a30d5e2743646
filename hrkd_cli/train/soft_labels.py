"""What a teacher's soft labels carry: why one teacher distils worse than another.

For one checkpoint, per domain, on a split (train included, since that is what the
student is distilled on): accuracy, the mean probability of the predicted class
(confidence) and the mean entropy of softmax(z / T), at the distillation
temperature T of Eq. 2. A teacher whose training-set soft labels are near one-hot
passes little beyond the gold label to its student.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from hrkd_cli.batches import Split, make_batch
from hrkd_cli.train.evaluation import domain_heads
from hrkd_cli.runtime import Runtime


def soft_label_entropy(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """H(softmax(z / T)) per row, in nats: [N, C] -> [N]."""
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    return -(logp.exp() * logp).sum(-1)


@torch.no_grad()
def domain_soft_labels(model, domain_index: int, split: Split, runtime: Runtime, temperature: float,
                       batch_size: int = 64) -> dict[str, float]:
    """Accuracy, mean confidence max_c p_c and mean entropy / log C of one head's soft labels on ``split``."""
    model.eval()
    correct, conf, ent, n = 0, 0.0, 0.0, 0
    for start in range(0, len(split), batch_size):
        rows = list(range(start, min(len(split), start + batch_size)))
        b = make_batch([(domain_index, split, rows)]).to(runtime.device)
        with runtime.autocast():
            logits = model(b.input_ids, b.attention_mask, b.token_type_ids, b.domain_sizes).logits.float()
        p = torch.softmax(logits / temperature, dim=-1)
        correct += int((logits.argmax(-1).cpu() == b.labels.cpu()).sum())
        conf += float(p.max(-1).values.sum())
        ent += float(soft_label_entropy(logits, temperature).sum())
        n += len(rows)
    norm = math.log(model.heads[0].out_features)
    return {"accuracy": correct / max(1, n), "confidence": conf / max(1, n), "entropy": ent / max(1, n) / norm}


def checkpoint_soft_labels(path: Path, splits: list[Split], runtime: Runtime, temperature: float) -> dict[str, dict]:
    """domain_soft_labels for every split's domain of a checkpoint or group, plus their plain average."""
    out = {split.domain: domain_soft_labels(model, head, split, runtime, temperature)
           for split, model, head in domain_heads(path, splits, runtime)}
    keys = ("accuracy", "confidence", "entropy")
    out["average"] = {k: sum(v[k] for v in out.values()) / len(out) for k in keys}
    return out
