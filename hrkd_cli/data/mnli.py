"""MultiNLI, one domain per genre (HRKD uses the five matched genres).

Accepted sources for ``data.path``:
  a GLUE directory: ``MNLI/train.tsv`` + ``MNLI/dev_matched.tsv`` (or both files
    directly in the directory); tab-separated with a header, read with
    QUOTE_NONE because sentences contain unbalanced quotes;
  the MultiNLI 1.0 release: ``multinli_1.0_train.jsonl`` +
    ``multinli_1.0_dev_matched.jsonl`` (in the directory or its ``multinli_1.0/``);
  ``hub``: ``datasets.load_dataset("nyu-mll/multi_nli")``.
Rows without a gold label (``-``) are dropped. Train becomes the pool (dev is
carved out of it by the splitter); dev_matched becomes the fixed test set.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from hrkd_cli.data.corpus import Example, RawCorpus, source_path
from hrkd_cli.data.tabular import jsonl_objects
from hrkd_cli.errors import HrkdError

LABELS = ["entailment", "neutral", "contradiction"]
HUB_NAME = "nyu-mll/multi_nli"
_LABEL_ID = {name: i for i, name in enumerate(LABELS)}

Rows = list[tuple[str, Example]]  # (genre, example)


def _label(value: str, where: str) -> int | None:
    """Label id, None for the unlabelled ``-`` rows, or an error naming ``where``."""
    if value in ("-", ""):
        return None
    if value not in _LABEL_ID:
        raise HrkdError(f"{where}: unknown gold_label {value!r} (expected one of {', '.join(LABELS)} or -)")
    return _LABEL_ID[value]


def read_tsv(path: Path) -> Rows:
    """The labelled rows of a GLUE MNLI ``.tsv`` file."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    rows: Rows = []
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise HrkdError(f"{path}: empty file")
        for col in ("genre", "sentence1", "sentence2", "gold_label"):
            if col not in header:
                raise HrkdError(f"{path}: no {col!r} column in the header (is this an MNLI tsv file?)")
        ig, i1, i2, il = (header.index(c) for c in ("genre", "sentence1", "sentence2", "gold_label"))
        # gold_label is the last column; a row with too few fields would misplace it.
        width = max(ig, i1, i2, il) + 1
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < width:
                raise HrkdError(f"{path}:{lineno}: {len(row)} tab-separated fields, expected at least {width}")
            label = _label(row[il], f"{path}:{lineno}")
            if label is not None:
                rows.append((row[ig], Example(row[i1], label, row[i2])))
    return rows


def read_jsonl(path: Path) -> Rows:
    """The labelled rows of a MultiNLI 1.0 ``.jsonl`` file."""
    rows: Rows = []
    for lineno, obj in jsonl_objects(path):
        for col in ("genre", "sentence1", "sentence2", "gold_label"):
            if col not in obj:
                raise HrkdError(f"{path}:{lineno}: no {col!r} field (is this a MultiNLI 1.0 jsonl file?)")
        label = _label(obj["gold_label"], f"{path}:{lineno}")
        if label is not None:
            rows.append((obj["genre"], Example(obj["sentence1"], label, obj["sentence2"])))
    return rows


def _find_files(root: Path) -> tuple[Path, Path]:
    """(train, dev_matched) files under ``root``, in any accepted layout."""
    candidates = [
        (root / "MNLI" / "train.tsv", root / "MNLI" / "dev_matched.tsv"),
        (root / "train.tsv", root / "dev_matched.tsv"),
        (root / "multinli_1.0_train.jsonl", root / "multinli_1.0_dev_matched.jsonl"),
        (root / "multinli_1.0" / "multinli_1.0_train.jsonl", root / "multinli_1.0" / "multinli_1.0_dev_matched.jsonl"),
    ]
    for train, dev in candidates:
        if train.is_file() and dev.is_file():
            return train, dev
    raise HrkdError(
        f"{root}: no MNLI files found (expected MNLI/train.tsv + MNLI/dev_matched.tsv, "
        "or multinli_1.0_train.jsonl + multinli_1.0_dev_matched.jsonl)"
    )


def _read_hub() -> tuple[Rows, Rows]:
    """Train and dev_matched from the Hugging Face hub (needs network access)."""
    try:
        import datasets  # lazy: ~0.8 s at start-up; only data.path = 'hub' reads it

        ds = datasets.load_dataset(HUB_NAME)
        splits = (ds["train"], ds["validation_matched"])
    except Exception as err:  # noqa: BLE001 - any failure here is "the hub is not reachable"
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise HrkdError(
            f"data.path = 'hub': could not load {HUB_NAME} from the Hugging Face hub ({first}); "
            "download MNLI and set data.path to its directory"
        ) from None
    out = []
    for split in splits:
        out.append(
            [
                (r["genre"], Example(r["premise"], int(r["label"]), r["hypothesis"]))
                for r in split
                if int(r["label"]) in range(len(LABELS))
            ]
        )
    return out[0], out[1]


def read_mnli(path: str | Path) -> RawCorpus:
    """MNLI as one pool (train) and one fixed test set (dev_matched) per genre."""
    if str(path).strip() == "hub":
        train, test = _read_hub()
    else:
        root = source_path(path, "GLUE or MultiNLI 1.0 directory of MNLI")
        if not root.is_dir():
            raise HrkdError(f"data.path {str(root)!r}: expected the MNLI directory, not a file")
        train_f, dev_f = _find_files(root)
        read = read_tsv if train_f.suffix == ".tsv" else read_jsonl
        train, test = read(train_f), read(dev_f)
    domains = sorted({g for g, _ in train})
    if not domains:
        raise HrkdError(f"data.path {str(path)!r}: the MNLI train file has no labelled rows")
    pools: dict[str, list[Example]] = {d: [] for d in domains}
    tests: dict[str, list[Example]] = {d: [] for d in domains}
    for g, ex in train:
        pools[g].append(ex)
    for g, ex in test:
        if g in tests:
            tests[g].append(ex)
    return RawCorpus(task="mnli", label_names=list(LABELS), domains=domains, pools=pools, tests=tests, text_pair=True)
