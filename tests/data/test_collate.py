"""Per-batch padding."""

from __future__ import annotations

import torch

from hrkd_cli.data import collate

ROWS = [
    {"input_ids": [101, 7, 102], "token_type_ids": [0, 0, 0], "attention_mask": [1, 1, 1], "label": 1, "text": "a"},
    {"input_ids": [101, 102], "token_type_ids": [0, 1], "attention_mask": [1, 1], "label": 0, "text": "b"},
]


def test_pads_to_longest_row():
    b = collate(ROWS, pad_token_id=5)
    assert set(b) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    assert b["input_ids"].tolist() == [[101, 7, 102], [101, 102, 5]]
    assert b["token_type_ids"].tolist() == [[0, 0, 0], [0, 1, 0]]
    assert b["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert b["labels"].tolist() == [1, 0]
    assert all(v.dtype == torch.long for v in b.values())


def test_dict_of_lists_gives_the_same_batch():
    cols = {k: [r[k] for r in ROWS] for k in ROWS[0]}
    a, b = collate(ROWS), collate(cols)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["input_ids"][1, 2].item() == 0
