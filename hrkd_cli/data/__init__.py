"""Data: read a source, split it per domain, tokenize and store it, batch it.

    corpus = read_source(cfg)                  # RawCorpus (cfg: DataConfig)
    splits = make_splits(corpus, cfg)          # {domain: {split: [Example]}}
    prepare_dataset(cfg, tok, out_dir, name)   # both of the above, tokenized, on disk
    data = load_prepared(out_dir)              # PreparedData
    batch = collate(data.dataset("books", "train")[0:8], tok.pad_token_id)
"""

from __future__ import annotations

import importlib

from hrkd_cli.data.amazon import read_amazon
from hrkd_cli.data.corpus import SPLITS, Example, RawCorpus
from hrkd_cli.data.custom import read_custom
from hrkd_cli.data.mnli import read_mnli
from hrkd_cli.data.splits import AMAZON_SPLITS, make_splits
from hrkd_cli.data.synthetic import generate_synthetic
from hrkd_cli.errors import HrkdError

# Imported on first use: they pull in torch and datasets (seconds), which
# reading and splitting a source does not need.
_LAZY = {
    "collate": "hrkd_cli.data.batching",
    "FORMAT": "hrkd_cli.data.store",
    "PreparedData": "hrkd_cli.data.store",
    "load_prepared": "hrkd_cli.data.store",
    "prepare_dataset": "hrkd_cli.data.store",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def read_source(cfg) -> RawCorpus:
    """The RawCorpus named by a DataConfig (``source``, ``path``; synthetic: ``synthetic`` and ``split_seed``)."""
    if cfg.source == "amazon":
        return read_amazon(cfg.path)
    if cfg.source == "mnli":
        return read_mnli(cfg.path)
    if cfg.source == "custom":
        return read_custom(cfg.path)
    if cfg.source == "synthetic":
        return generate_synthetic(cfg.synthetic, cfg.split_seed)
    raise HrkdError(f"data.source {cfg.source!r}: expected amazon, mnli, custom or synthetic")


__all__ = [
    "AMAZON_SPLITS",
    "FORMAT",
    "SPLITS",
    "Example",
    "PreparedData",
    "RawCorpus",
    "collate",
    "generate_synthetic",
    "load_prepared",
    "make_splits",
    "prepare_dataset",
    "read_amazon",
    "read_custom",
    "read_mnli",
    "read_source",
]
