"""Tokenizing examples into the stored columns (unpadded token ids), shared by the splits and the transfer set."""

from __future__ import annotations

import datasets

from hrkd_cli.data.corpus import Example

FEATURES = datasets.Features(
    {
        "input_ids": datasets.List(datasets.Value("int32")),
        "token_type_ids": datasets.List(datasets.Value("int8")),
        "attention_mask": datasets.List(datasets.Value("int8")),
        "label": datasets.Value("int64"),
        "text": datasets.Value("string"),
        "text_b": datasets.Value("string"),
        "idx": datasets.Value("int32"),
    }
)
BATCH = 1024  # examples per tokenizer call


def tokenize(tokenizer, examples: list[Example], max_seq_length: int, text_pair: bool) -> dict[str, list]:
    """Columns for one split: token ids truncated to ``max_seq_length``, unpadded."""
    cols: dict[str, list] = {k: [] for k in FEATURES}
    for start in range(0, len(examples), BATCH):
        chunk = examples[start : start + BATCH]
        texts = [e.text for e in chunk]
        pairs = [e.text_b or "" for e in chunk] if text_pair else None
        enc = tokenizer(
            texts,
            pairs,
            truncation="longest_first" if text_pair else True,
            max_length=max_seq_length,
            padding=False,
            return_token_type_ids=True,
            return_attention_mask=True,
        )
        cols["input_ids"] += enc["input_ids"]
        cols["token_type_ids"] += enc["token_type_ids"]
        cols["attention_mask"] += enc["attention_mask"]
    cols["label"] = [e.label for e in examples]
    cols["text"] = [e.text for e in examples]
    cols["text_b"] = [e.text_b or "" for e in examples]
    cols["idx"] = list(range(len(examples)))
    return cols
