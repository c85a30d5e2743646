"""Raw corpus types shared by every reader, the splitter and the store.

A reader turns a source (Amazon, MNLI, a user's file, the generator) into a
``RawCorpus``: per domain, a *pool* of examples still to be split, plus any
split the source fixes itself (MNLI's dev_matched is its test set; a custom
file may carry a ``split`` column; the generator emits dev and test directly).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from hrkd_cli.errors import HrkdError

SPLITS = ("train", "dev", "test")
# The label of a transfer example, which has none (PyTorch's ignore_index: a cross-entropy would skip it).
NO_LABEL = -100


@dataclass(frozen=True)
class Example:
    """One labelled example; ``label`` indexes ``RawCorpus.label_names``."""

    text: str
    label: int
    text_b: str | None = None


@dataclass
class RawCorpus:
    """Everything a source provides, before splitting.

    ``pools[d]`` is split by :func:`hrkd_cli.data.splits.make_splits`; ``devs[d]``
    and ``tests[d]``, where present, are used as they are.
    """

    task: str  # the source: "amazon", "mnli", "custom", "synthetic"
    label_names: list[str]
    domains: list[str]  # canonical order
    pools: dict[str, list[Example]]
    tests: dict[str, list[Example]] = field(default_factory=dict)
    devs: dict[str, list[Example]] = field(default_factory=dict)
    text_pair: bool = False

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


def stable_seed(*parts) -> int:
    """A 63-bit integer seed derived from ``parts``; unlike ``hash()``, the same in every process."""
    blob = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big") >> 1


def source_path(path: str | Path, what: str) -> Path:
    """``data.path`` as an existing absolute path, or a one-line error naming it."""
    if not str(path).strip():
        raise HrkdError(f"data.path is empty: set it to the {what}")
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise HrkdError(f"data.path {str(path)!r}: no such file or directory")
    return p


def read_text(path: Path) -> str:
    """A text file as str: UTF-8, falling back to Latin-1 (old corpora mix both)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")
