"""Per-batch padding of stored rows (the store keeps rows unpadded; hrkd_cli.batches pads each step's batch)."""

from __future__ import annotations

import torch

from hrkd_cli.batches import Split, make_batch

BOOKS = Split("books", [[101, 7, 102], [101, 102]], [[0, 0, 0], [0, 1]], [1, 0], ["a", "b"], ["", ""])
FILMS = Split("films", [[101, 8, 9, 102]], [[0, 0, 1, 1]], [1], ["c"], [""])


def test_pads_to_the_longest_row_of_the_step():
    b = make_batch([(0, BOOKS, [0, 1])], pad_id=5)
    assert b.input_ids.tolist() == [[101, 7, 102], [101, 102, 5]]
    assert b.token_type_ids.tolist() == [[0, 0, 0], [0, 1, 0]]
    assert b.attention_mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert b.labels.tolist() == [1, 0]
    assert all(t.dtype == torch.long for t in (b.input_ids, b.token_type_ids, b.attention_mask, b.labels))
    assert b.transfer is None


def test_domains_are_concatenated_in_order_and_pad_to_is_honoured():
    b = make_batch([(0, BOOKS, [1]), (1, FILMS, [0])], pad_to=6)
    assert b.input_ids.tolist() == [[101, 102, 0, 0, 0, 0], [101, 8, 9, 102, 0, 0]]
    assert b.domain_sizes == [(0, 1), (1, 1)]
    assert [(d, (s.start, s.stop)) for d, s in b.slices()] == [(0, (0, 1)), (1, (1, 2))]
