"""A user's own multi-domain data: one CSV/TSV or JSONL file.

Columns: ``text``, optional ``text_b`` (sentence pairs), ``label``, ``domain``,
optional ``split`` (train/dev/test). Label names are the sorted set of label
values (numerically when every value is an integer). Rows with a ``split``
value are fixed to that split; the splitter carves whatever a domain lacks
(seeded) out of the remaining rows: train rows, rows with an empty split, or
every row when there is no split column.
"""

from __future__ import annotations

import re
from pathlib import Path

from hrkd_cli.data.corpus import SPLITS, Example, RawCorpus, source_path
from hrkd_cli.data.tabular import read_table
from hrkd_cli.errors import HrkdError

_INT = re.compile(r"^[+-]?\d+$")


def _rows(path: Path) -> tuple[list[tuple[int, dict]], list[str]]:
    """(line number, row) for every non-blank data row, and the column names (hrkd_cli/data/tabular.py)."""
    table = read_table(path)
    if not table.columns:
        raise HrkdError(f"{path}: empty file")
    return table.rows, table.columns


def _str(value) -> str:
    return "" if value is None else str(value)


def read_custom(path: str | Path) -> RawCorpus:
    """The file's rows grouped by domain; rows naming a split are kept in that split."""
    p = source_path(path, "CSV or JSONL file with text, label and domain columns")
    if not p.is_file():
        raise HrkdError(f"data.path {str(p)!r}: expected a .csv, .tsv or .jsonl file, not a directory")
    rows, fields = _rows(p)
    if not rows:
        raise HrkdError(f"{p}: empty file (no data rows)")
    for col in ("text", "label", "domain"):
        if col not in fields:
            raise HrkdError(f"{p}: missing column {col!r} (found: {', '.join(fields) or 'none'})")
    has_split = "split" in fields
    text_pair = "text_b" in fields and any(_str(r.get("text_b")).strip() for _, r in rows)

    raw_labels = set()
    for lineno, r in rows:
        for col in ("label", "domain"):
            if not _str(r.get(col)).strip():
                raise HrkdError(f"{p}:{lineno}: empty {col!r}")
        raw_labels.add(_str(r["label"]).strip())
    if all(_INT.match(v) for v in raw_labels):
        label_names = sorted(raw_labels, key=int)
    else:
        label_names = sorted(raw_labels)
    label_id = {name: i for i, name in enumerate(label_names)}

    pools: dict[str, list[Example]] = {}
    fixed: dict[str, dict[str, list[Example]]] = {"dev": {}, "test": {}}
    for lineno, r in rows:
        domain = _str(r["domain"]).strip()
        ex = Example(_str(r.get("text")), label_id[_str(r["label"]).strip()], _str(r.get("text_b")) if text_pair else None)
        split = _str(r.get("split")).strip().lower() if has_split else ""
        if split not in ("",) + SPLITS:
            raise HrkdError(f"{p}:{lineno}: split {r.get('split')!r} is not one of train, dev, test (or empty)")
        pools.setdefault(domain, [])
        if split in ("dev", "test"):
            fixed[split].setdefault(domain, []).append(ex)
        else:
            pools[domain].append(ex)
    return RawCorpus(
        task="custom",
        label_names=label_names,
        domains=sorted(pools),
        pools=pools,
        devs=fixed["dev"],
        tests=fixed["test"],
        text_pair=text_pair,
    )
