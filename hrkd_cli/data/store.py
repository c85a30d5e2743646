"""Tokenize the splits once and store them, with a manifest, as ``datasets`` on disk.

Layout of a prepared directory::

    manifest.json           format "hrkd-data/1", provenance, counts, hashes
    <domain>/<split>/       datasets.save_to_disk: input_ids, token_type_ids,
                            attention_mask, label, text, text_b, idx
    <domain>/transfer/      only with transfer settings (hrkd_cli/data/transfer.py): the same
                            columns (label NO_LABEL) plus origin and source_row; described by
                            the manifest's "transfer" entry, outside "hash" (teachers never see it)

No padding is stored (the trainer pads per batch, see ``hrkd_cli.batches.make_batch``). The
directory is written atomically: everything is built in a temporary sibling
and swapped in at the end, so a failure never damages an existing dataset.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import datasets

from hrkd_cli.data.corpus import SPLITS, RawCorpus
from hrkd_cli.data.reading import read_source
from hrkd_cli.data.splits import Splits, make_splits
from hrkd_cli.data.tokens import FEATURES, tokenize
from hrkd_cli.data.transfer import TRANSFER, build_transfer, transfer_hash
from hrkd_cli.errors import HrkdError
from hrkd_cli.fsio import read_json, replace_dir, staging_dir, writing

FORMAT = "hrkd-data/1"
MANIFEST = "manifest.json"
TRANSFER_FEATURES = datasets.Features(
    {**FEATURES, "origin": datasets.Value("string"), "source_row": datasets.Value("int32")})


def split_hash(cols: dict[str, list]) -> str:
    """sha256 over (text, text_b, label, input_ids, token_type_ids) of every row, in order."""
    h = hashlib.sha256()
    for row in zip(cols["text"], cols["text_b"], cols["label"], cols["input_ids"], cols["token_type_ids"]):
        h.update(json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode())
        h.update(b"\n")
    return h.hexdigest()


def dataset_hash(split_hashes: dict[str, str], max_seq_length: int, tokenizer_name: str, label_names: list[str], domains: list[str]) -> str:
    """The hash that identifies a prepared dataset: contents, length, tokenizer, labels, domain order."""
    blob = json.dumps(
        {
            "split_hashes": sorted(split_hashes.items()),
            "max_seq_length": max_seq_length,
            "tokenizer": tokenizer_name,
            "label_names": label_names,
            "domains": domains,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _check_domain_name(domain: str) -> None:
    if not domain or domain in (".", "..") or any(c in domain for c in "/\\\0") or domain == MANIFEST:
        raise HrkdError(f"domain name {domain!r} cannot be used as a directory name")


def _source_path(cfg) -> str:
    path = str(getattr(cfg, "path", "") or "")
    if cfg.source == "synthetic" or not path:
        return ""
    if cfg.source == "mnli" and path.strip() == "hub":
        return "hub"
    return str(Path(path).expanduser().resolve())


def build(
    cfg, corpus: RawCorpus, splits: Splits, tokenizer, out_dir: Path, tokenizer_name: str, embeddings=None
) -> dict:
    """Write every (domain, split) dataset, any transfer set, and the manifest into ``out_dir`` (not atomic)."""
    label_names, domains = list(corpus.label_names), list(splits)
    counts: dict = {}
    split_hashes: dict[str, str] = {}
    for d in domains:
        _check_domain_name(d)
        counts[d] = {}
        for split in SPLITS:
            examples = splits[d][split]
            cols = tokenize(tokenizer, examples, cfg.max_seq_length, corpus.text_pair)
            split_hashes[f"{d}/{split}"] = split_hash(cols)
            datasets.Dataset.from_dict(cols, features=FEATURES).save_to_disk(str(out_dir / d / split))
            per_label = {name: 0 for name in label_names}
            for y in cols["label"]:
                per_label[label_names[y]] += 1
            counts[d][split] = {**per_label, "total": len(examples)}
    manifest = {
        "format": FORMAT,
        "source": cfg.source,
        "source_path": _source_path(cfg),
        # data.path as given (relative to the working directory): later commands reuse this source
        # with this spelling (hrkd_cli.data.sources).
        "source_arg": str(cfg.path).strip() if _source_path(cfg) else "",
        "split_seed": cfg.split_seed,
        "sample_rate": cfg.sample_rate,
        "sample_per_domain": getattr(cfg, "sample_per_domain", 0),
        **({"sample_counts": dict(cfg.sample_counts)} if getattr(cfg, "sample_counts", None) else {}),
        "dev_fraction": getattr(cfg, "dev_fraction", None),
        "test_fraction": getattr(cfg, "test_fraction", None),
        "max_seq_length": cfg.max_seq_length,
        "tokenizer": tokenizer_name,
        "task": corpus.task,
        "text_pair": corpus.text_pair,
        "label_names": label_names,
        "domains": domains,
        "counts": counts,
        "split_hashes": split_hashes,
        "hash": dataset_hash(split_hashes, cfg.max_seq_length, tokenizer_name, label_names, domains),
    }
    if cfg.source == "synthetic":
        syn = cfg.synthetic
        manifest["synthetic"] = syn.model_dump() if hasattr(syn, "model_dump") else dict(vars(syn))
    if getattr(cfg, "has_transfer", False):
        manifest["transfer"] = build_transfer_sets(cfg, corpus, splits, tokenizer, out_dir, embeddings)
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


def build_transfer_sets(cfg, corpus: RawCorpus, splits: Splits, tokenizer, out_dir: Path, embeddings=None) -> dict:
    """Write <domain>/transfer for every domain; returns the manifest's "transfer" entry."""
    columns, report = build_transfer(cfg, corpus, splits, tokenizer, embeddings)
    hashes = {}
    for d, cols in columns.items():
        hashes[d] = split_hash(cols)
        datasets.Dataset.from_dict(cols, features=TRANSFER_FEATURES).save_to_disk(str(out_dir / d / TRANSFER))
    return {**report, "split_hashes": hashes, "hash": transfer_hash(hashes, report)}


def prepare_dataset(cfg, tokenizer, out_dir: Path, tokenizer_name: str, corpus: RawCorpus | None = None,
                    embeddings=None) -> dict:
    """Read the source named by ``cfg`` (a DataConfig), split, tokenize, store; returns the manifest.

    ``corpus`` skips reading the source (for callers that already hold one). ``embeddings`` returns the
    teacher's input-embedding matrix, which data.augment_copies needs.
    """
    out_dir = Path(out_dir).expanduser().absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise HrkdError(f"{out_dir}: exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file():
        raise HrkdError(f"{out_dir}: exists, is not empty and is not a prepared dataset; refusing to replace it")
    corpus = corpus if corpus is not None else read_source(cfg)
    splits = make_splits(corpus, cfg)
    bars_were_off = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    tmp = None
    try:
        with writing(out_dir):  # unwritable directory, disk full: one line naming out_dir
            tmp = staging_dir(out_dir)
            manifest = build(cfg, corpus, splits, tokenizer, tmp, tokenizer_name, embeddings)
            replace_dir(tmp, out_dir)
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if not bars_were_off:
            datasets.enable_progress_bars()
    return manifest


class PreparedData:
    """A prepared dataset directory: its manifest and its (domain, split) datasets."""

    def __init__(self, path: Path, manifest: dict):
        self.path = Path(path)
        self.manifest = manifest
        self._cache: dict[tuple[str, str], datasets.Dataset] = {}

    domains = property(lambda self: list(self.manifest["domains"]))
    label_names = property(lambda self: list(self.manifest["label_names"]))
    num_labels = property(lambda self: len(self.manifest["label_names"]))
    hash = property(lambda self: self.manifest["hash"])
    text_pair = property(lambda self: bool(self.manifest["text_pair"]))
    max_seq_length = property(lambda self: int(self.manifest["max_seq_length"]))
    counts = property(lambda self: self.manifest["counts"])
    transfer = property(lambda self: self.manifest.get("transfer"))  # None: no transfer examples

    def dataset(self, domain: str, split: str) -> datasets.Dataset:
        """The stored ``datasets.Dataset`` of one domain and split (memory-mapped, cached)."""
        if domain not in self.manifest["domains"]:
            raise HrkdError(f"{self.path}: no domain {domain!r}; domains: {', '.join(self.domains)}")
        if split == TRANSFER and not self.transfer:
            raise HrkdError(f"{self.path}: no transfer examples (prepared without data.unlabeled, data.windows "
                            "or data.augment_copies)")
        if split not in SPLITS + (TRANSFER,):
            raise HrkdError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        key = (domain, split)
        if key not in self._cache:
            where = self.path / domain / split
            try:
                self._cache[key] = datasets.load_from_disk(str(where))
            except FileNotFoundError:
                raise HrkdError(f"{where}: missing; the prepared dataset is incomplete, prepare it again") from None
        return self._cache[key]

    def __repr__(self) -> str:
        return f"PreparedData({str(self.path)!r}, domains={self.domains}, hash={self.hash[:12]})"


def load_prepared(data_dir) -> PreparedData:
    """Open a directory written by :func:`prepare_dataset`, or raise a one-line HrkdError."""
    path = Path(data_dir).expanduser()
    mf = path / MANIFEST
    if not mf.is_file():
        raise HrkdError(f"{path}: not a prepared dataset (no {MANIFEST}); prepare the data first")
    manifest = read_json(mf)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else None
        raise HrkdError(f"{mf}: format {got!r}, expected {FORMAT!r}; not a dataset prepared by this version of hrkd")
    return PreparedData(path, manifest)
