"""The dispatcher from a DataConfig to the reader of its source."""

from __future__ import annotations

from hrkd_cli.data.amazon import read_amazon
from hrkd_cli.data.corpus import RawCorpus
from hrkd_cli.data.custom import read_custom
from hrkd_cli.data.mnli import read_mnli
from hrkd_cli.data.synthetic import generate_synthetic
from hrkd_cli.errors import HrkdError


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
