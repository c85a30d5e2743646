"""Pad a batch of stored rows to its longest row (the store keeps rows unpadded)."""

from __future__ import annotations

import torch

PADDED = ("input_ids", "token_type_ids", "attention_mask")


def collate(rows, pad_token_id: int = 0) -> dict[str, torch.Tensor]:
    """Rows (a list of dicts, or a dict of lists as ``Dataset[i:j]`` returns) -> padded LongTensors.

    Returns ``input_ids`` (padded with ``pad_token_id``), ``token_type_ids`` and
    ``attention_mask`` (padded with 0), each (batch, longest), and ``labels`` (batch,).
    """
    if isinstance(rows, dict):
        cols = rows
    else:
        rows = list(rows)
        if not rows:
            raise ValueError("collate: empty batch")
        cols = {k: [r[k] for r in rows] for k in rows[0]}
    ids = [torch.as_tensor(x, dtype=torch.long) for x in cols["input_ids"]]
    if not ids:
        raise ValueError("collate: empty batch")
    n, width = len(ids), max(len(x) for x in ids)
    out = {
        "input_ids": torch.full((n, width), pad_token_id, dtype=torch.long),
        "token_type_ids": torch.zeros((n, width), dtype=torch.long),
        "attention_mask": torch.zeros((n, width), dtype=torch.long),
    }
    for i, x in enumerate(ids):
        out["input_ids"][i, : len(x)] = x
        out["attention_mask"][i, : len(x)] = 1
        if "token_type_ids" in cols:
            out["token_type_ids"][i, : len(x)] = torch.as_tensor(cols["token_type_ids"][i], dtype=torch.long)
        if "attention_mask" in cols:
            out["attention_mask"][i, : len(x)] = torch.as_tensor(cols["attention_mask"][i], dtype=torch.long)
    labels = cols["label"] if "label" in cols else cols["labels"]
    out["labels"] = torch.as_tensor(labels, dtype=torch.long).reshape(n)
    return out
