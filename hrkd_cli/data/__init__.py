"""Data: read a source, split it per domain, tokenize and store it.

    corpus = read_source(cfg)                  # RawCorpus (cfg: DataConfig)
    splits = make_splits(corpus, cfg)          # {domain: {split: [Example]}}

The store (hrkd_cli.data.store, which needs ``datasets``) is imported where it is used:

    prepare_dataset(cfg, tok, out_dir, name)   # both of the above, tokenized, on disk
    data = load_prepared(out_dir)              # PreparedData
"""

from __future__ import annotations

from hrkd_cli.data.amazon import read_amazon
from hrkd_cli.data.corpus import SPLITS, Example, RawCorpus
from hrkd_cli.data.custom import read_custom
from hrkd_cli.data.mnli import read_mnli
from hrkd_cli.data.reading import read_source
from hrkd_cli.data.splits import AMAZON_SPLITS, make_splits
from hrkd_cli.data.synthetic import generate_synthetic

__all__ = [
    "AMAZON_SPLITS",
    "SPLITS",
    "Example",
    "RawCorpus",
    "generate_synthetic",
    "make_splits",
    "read_amazon",
    "read_custom",
    "read_mnli",
    "read_source",
]
