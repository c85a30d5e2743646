"""The transfer set: examples the students distil on and the teachers never see (docs/transfer.md).

Three sources, each optional, per domain and in this order:
  unlabeled  rows of ``data.unlabeled`` (hrkd_cli/data/unlabeled.py), file order;
  window     the later windows of training texts longer than ``max_seq_length`` tokens: window k >= 1
             holds text tokens [k S, k S + max_seq_length - 2) with S = ``data.window_stride``, made while
             the previous window stopped before the text's end, at most ``data.windows`` per text;
  augmented  ``data.augment_copies`` copies of each training text (hrkd_cli/data/augment.py); of a single
             text longer than ``max_seq_length`` tokens, copies of the part the model reads (its first
             window), so that no replacement is lost to truncation.
Windows and copies come from the train split only (after any few-shot sample). A transfer set must never
leak the evaluation splits: an unlabelled text equal to a dev or test text (any domain; case and
whitespace ignored) is dropped, and a training text equal to one gives no windows or copies; both counted.
Transfer rows carry no label (NO_LABEL); ``origin`` says where a row comes from and ``source_row`` which
line of the file (unlabeled) or which row of the train split (window, augmented).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import torch

from hrkd_cli.data.augment import Neighbours, augment_copies
from hrkd_cli.data.corpus import NO_LABEL, Example, RawCorpus
from hrkd_cli.data.tokens import tokenize
from hrkd_cli.data.unlabeled import file_sha256, read_unlabeled, unlabeled_file
from hrkd_cli.errors import HrkdError

TRANSFER = "transfer"  # the split name of a domain's transfer examples
ORIGINS = ("unlabeled", "window", "augmented")


def normalised(text: str, text_b: str | None = None) -> str:
    """The key two texts are compared by: lower case, whitespace runs collapsed (pairs: both segments)."""
    key = " ".join(text.lower().split())
    return key + ("\x1f" + " ".join(text_b.lower().split()) if text_b else "")


def window_spans(n_tokens: int, max_seq_length: int, windows: int, stride: int) -> list[tuple[int, int]]:
    """Token spans [start, end) of the later windows (k = 1 .. windows) of a text of ``n_tokens`` pieces.

    A window holds ``max_seq_length - 2`` pieces ([CLS] and [SEP] take two); window k starts at k * stride
    and is made only while window k - 1 stopped before the end, so every window adds pieces of its own."""
    width = max_seq_length - 2
    stride = stride or width
    spans = []
    for k in range(1, windows + 1):
        if (k - 1) * stride + width >= n_tokens:
            break
        spans.append((k * stride, min(k * stride + width, n_tokens)))
    return spans


class Rows:
    """One domain's transfer rows under construction: untokenised examples or ready token ids."""

    def __init__(self):
        self.examples: list[tuple[str, str | None, str, int, list[int] | None, list[int] | None]] = []

    def add(self, text: str, text_b: str | None, origin: str, source_row: int, ids=None, types=None) -> None:
        self.examples.append((text, text_b, origin, source_row, ids, types))

    def columns(self, tokenizer, max_seq_length: int, text_pair: bool) -> dict[str, list]:
        todo = [i for i, e in enumerate(self.examples) if e[4] is None]
        enc = tokenize(tokenizer, [Example(self.examples[i][0], NO_LABEL, self.examples[i][1]) for i in todo],
                       max_seq_length, text_pair)
        ids, types = [e[4] for e in self.examples], [e[5] for e in self.examples]
        for j, i in enumerate(todo):
            ids[i], types[i] = enc["input_ids"][j], enc["token_type_ids"][j]
        return {
            "input_ids": ids, "token_type_ids": types, "attention_mask": [[1] * len(x) for x in ids],
            "label": [NO_LABEL] * len(ids), "text": [e[0] for e in self.examples],
            "text_b": [e[1] or "" for e in self.examples], "idx": list(range(len(ids))),
            "origin": [e[2] for e in self.examples], "source_row": [e[3] for e in self.examples],
        }


def _unlabeled(cfg, corpus: RawCorpus, domains: list[str], evaluation: dict[str, str], rows: dict[str, Rows]) -> dict:
    """Add the file's rows to ``rows``; what was read, kept and dropped, for the manifest."""
    path = unlabeled_file(cfg.unlabeled)
    read = read_unlabeled(cfg.unlabeled, cfg.unlabeled_domain, corpus.text_pair)
    dropped = {"dev": 0, "test": 0}
    other = 0
    for r in read:
        if r.domain not in corpus.domains:
            raise HrkdError(f"{path}:{r.line}: domain {r.domain!r} is not a domain of the labelled data "
                            f"({', '.join(corpus.domains)})")
        if r.domain not in domains:
            other += 1  # a domain left out with data.domains
            continue
        split = evaluation.get(normalised(r.text, r.text_b))
        if split is not None:
            dropped[split] += 1
            continue
        rows[r.domain].add(r.text, r.text_b, "unlabeled", r.line)
    return {"path": str(path), "arg": str(cfg.unlabeled).strip(), "sha256": file_sha256(path), "rows": len(read),
            "domain": cfg.unlabeled_domain, "dropped": dropped, "other_domains": other}


def _windows(cfg, d: str, train: list[Example], usable: list[int], tokenizer, rows: Rows) -> None:
    texts = [train[i].text for i in usable]
    width = cfg.max_seq_length - 2
    for start in range(0, len(texts), 1024):
        enc = tokenizer(texts[start : start + 1024], add_special_tokens=False, return_offsets_mapping=True,
                        verbose=False)
        for j, (pieces, offsets) in enumerate(zip(enc["input_ids"], enc["offset_mapping"])):
            if len(pieces) <= width:
                continue
            i = usable[start + j]
            for a, b in window_spans(len(pieces), cfg.max_seq_length, cfg.windows, cfg.window_stride):
                ids = [tokenizer.cls_token_id] + pieces[a:b] + [tokenizer.sep_token_id]  # as BERT frames one text
                rows.add(train[i].text[offsets[a][0] : offsets[b - 1][1]], None, "window", i, ids, [0] * len(ids))


def first_windows(tokenizer, texts: list[str], max_seq_length: int) -> list[str]:
    """Each text cut after its first ``max_seq_length - 2`` word pieces: what the model reads of it."""
    width, out = max_seq_length - 2, []
    for start in range(0, len(texts), 1024):
        chunk = texts[start : start + 1024]
        enc = tokenizer(chunk, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        out += [t if len(o) <= width else t[: o[width - 1][1]] for t, o in zip(chunk, enc["offset_mapping"])]
    return out


def build_transfer(cfg, corpus: RawCorpus, splits: dict, tokenizer,
                   embeddings: Callable[[], torch.Tensor] | None = None) -> tuple[dict[str, dict[str, list]], dict]:
    """Per domain the transfer rows as stored columns, and the manifest's ``transfer`` entry.

    ``embeddings`` returns the teacher's input-embedding matrix (needed for augmentation only)."""
    domains = list(splits)
    if cfg.windows and corpus.text_pair:
        raise HrkdError("data.windows applies to single texts; this data is sentence pairs (set data.windows = 0)")
    evaluation: dict[str, str] = {}
    for split in ("test", "dev"):  # a text in both counts as test
        for d in domains:
            for e in splits[d][split]:
                evaluation[normalised(e.text, e.text_b)] = split
    rows = {d: Rows() for d in domains}
    report: dict = {"unlabeled": None, "windows": cfg.windows, "window_stride": cfg.window_stride or cfg.max_seq_length - 2,
                    "augment": None}
    if cfg.unlabeled:
        report["unlabeled"] = _unlabeled(cfg, corpus, domains, evaluation, rows)
    usable = {d: [i for i, e in enumerate(splits[d]["train"]) if normalised(e.text, e.text_b) not in evaluation]
              for d in domains}
    report["train_texts_in_evaluation"] = sum(len(splits[d]["train"]) - len(usable[d]) for d in domains)
    if cfg.windows:
        for d in domains:
            _windows(cfg, d, splits[d]["train"], usable[d], tokenizer, rows[d])
    if cfg.augment_copies:
        if embeddings is None:
            raise HrkdError("data.augment_copies needs the teacher's input embeddings; prepare through `hrkd prepare`")
        near = Neighbours(tokenizer, embeddings(), cfg.augment_neighbours)
        texts = {d: [splits[d]["train"][i] for i in usable[d]] for d in domains}
        if not corpus.text_pair:
            texts = {d: [Example(t, e.label) for t, e in zip(first_windows(tokenizer, [e.text for e in xs],
                                                                           cfg.max_seq_length), xs)]
                     for d, xs in texts.items()}
        near.learn(seg for xs in texts.values() for e in xs for seg in (e.text, e.text_b) if seg)
        without = 0
        for d in domains:
            for i, e in zip(usable[d], texts[d]):
                copies = augment_copies(e.text, e.text_b, cfg.augment_copies, cfg.augment_rate, cfg.augment_seed, near)
                without += not copies
                for a, b in copies:
                    rows[d].add(a, b, "augmented", i)
        report["augment"] = {"copies": cfg.augment_copies, "rate": cfg.augment_rate, "neighbours": cfg.augment_neighbours,
                             "seed": cfg.augment_seed, "vocabulary_words": len(near.words),
                             "texts_without_replaceable_words": without}
    columns = {d: rows[d].columns(tokenizer, cfg.max_seq_length, corpus.text_pair) for d in domains}
    report["counts"] = {d: {**{o: columns[d]["origin"].count(o) for o in ORIGINS}, "total": len(columns[d]["origin"])}
                        for d in domains}
    return columns, report


def transfer_hash(split_hashes: dict[str, str], report: dict) -> str:
    """What identifies a transfer set: its rows (per-domain hashes) and the settings that made them."""
    settings = {k: report[k] for k in ("windows", "window_stride", "augment")}
    unlabeled = report.get("unlabeled") or {}
    blob = json.dumps({"split_hashes": sorted(split_hashes.items()), "settings": settings,
                       "unlabeled_sha256": unlabeled.get("sha256")}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()
