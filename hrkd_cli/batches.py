"""Turning prepared splits into padded tensor batches.

Splits are held in memory as plain lists (a few thousand tokenised examples
per domain); a step's rows from several domains are concatenated into one
batch so that the encoder runs once per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hrkd_cli.data.corpus import NO_LABEL


@dataclass
class Split:
    """One domain's split, as lists."""

    domain: str
    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    label: list[int]
    text: list[str]
    text_b: list[str]
    first_transfer: int | None = None  # rows from here on are transfer examples (labels NO_LABEL)

    def __len__(self) -> int:
        return len(self.label)

    @classmethod
    def from_dataset(cls, domain: str, ds) -> "Split":
        cols = ds.with_format(None)[:]
        return cls(domain, cols["input_ids"], cols["token_type_ids"], cols["label"], cols["text"], cols["text_b"])

    def lengths(self, rows: list[int]) -> list[int]:
        return [len(self.input_ids[i]) for i in rows]


def load_splits(data, split: str, domains: list[str] | None = None) -> list[Split]:
    return [Split.from_dataset(d, data.dataset(d, split)) for d in (domains or data.domains)]


def with_transfer(train: Split, transfer: Split) -> Split:
    """``train``'s rows followed by ``transfer``'s as one Split; the transfer rows' stored labels are replaced
    by NO_LABEL here, so that no loss can read them."""
    return Split(train.domain, train.input_ids + transfer.input_ids, train.token_type_ids + transfer.token_type_ids,
                 train.label + [NO_LABEL] * len(transfer), train.text + transfer.text, train.text_b + transfer.text_b,
                 first_transfer=len(train))


@dataclass
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor
    labels: torch.Tensor
    domain_sizes: list[tuple[int, int]]  # (domain index, rows) in batch order
    transfer: torch.Tensor | None = None  # bool per row: a transfer example (no label); None = none in the batch

    def to(self, device) -> "Batch":
        return Batch(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.token_type_ids.to(device),
            self.labels.to(device),
            self.domain_sizes,
            None if self.transfer is None else self.transfer.to(device),
        )

    def slices(self):
        """(domain index, slice) of each domain's rows."""
        start = 0
        for d, n in self.domain_sizes:
            yield d, slice(start, start + n)
            start += n


def make_batch(parts: list[tuple[int, Split, list[int]]], pad_to: int | None = None, pad_id: int = 0) -> Batch:
    """Concatenate rows of several domains, padded to ``pad_to`` (default: the longest row).

    Distributed runs pass the longest length of the *global* batch so that every
    process pads alike and the per-token losses match a one-process run.
    """
    seqs = [(split.input_ids[i], split.token_type_ids[i], split.label[i]) for _, split, rows in parts for i in rows]
    length = pad_to or max(len(s[0]) for s in seqs)
    n = len(seqs)
    ids = torch.full((n, length), pad_id, dtype=torch.long)
    types = torch.zeros((n, length), dtype=torch.long)
    mask = torch.zeros((n, length), dtype=torch.long)
    for r, (a, t, _) in enumerate(seqs):
        ids[r, : len(a)] = torch.tensor(a)
        types[r, : len(t)] = torch.tensor(t)
        mask[r, : len(a)] = 1
    labels = torch.tensor([s[2] for s in seqs], dtype=torch.long)
    transfer = None
    if any(split.first_transfer is not None for _, split, _ in parts):
        transfer = torch.tensor([split.first_transfer is not None and i >= split.first_transfer
                                 for _, split, rows in parts for i in rows], dtype=torch.bool)
    return Batch(ids, mask, types, labels, [(d, len(rows)) for d, _, rows in parts], transfer)
