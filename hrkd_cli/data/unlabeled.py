"""Reading unlabelled in-domain text (``data.unlabeled``): every reader of it is here.

A table (.csv, .tsv, .jsonl, .ndjson) is read with the custom source's reader (hrkd_cli/data/custom.py):
column ``text``, optional ``text_b`` (sentence pairs) and ``domain``; any other column (a ``label``, say)
is ignored, since the teacher labels these texts. A plain-text file (.txt, .text) holds one text per
non-blank line. A file without a domain column takes ``data.unlabeled_domain`` for every row.

Every problem is one line naming the file (and line): a missing, empty or binary file, text that is not
UTF-8, no ``text`` column, an empty text or domain, a domain given twice (column and setting) or not at all.
Which domains the labelled data has is checked by the caller (hrkd_cli/data/transfer.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from hrkd_cli.data.custom import _rows
from hrkd_cli.errors import HrkdError

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson")
TEXT_SUFFIXES = (".txt", ".text")


@dataclass(frozen=True)
class UnlabeledRow:
    line: int  # in the file, 1-based
    domain: str
    text: str
    text_b: str | None = None


def unlabeled_file(path: str) -> Path:
    """``data.unlabeled`` as an existing file, or a one-line error naming it."""
    p = Path(str(path)).expanduser()
    if not p.exists():
        raise HrkdError(f"data.unlabeled {str(path)!r}: no such file")
    if not p.is_file():
        raise HrkdError(f"data.unlabeled {str(path)!r}: not a file")
    if p.suffix.lower() not in TABLE_SUFFIXES + TEXT_SUFFIXES:
        raise HrkdError(f"data.unlabeled {str(path)!r}: unsupported file type {p.suffix or '(none)'!r}; "
                        f"use {', '.join(TABLE_SUFFIXES + TEXT_SUFFIXES)}")
    return p.resolve()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _decoded(p: Path) -> str:
    """The file as text; a binary or non-UTF-8 file is a one-line error naming the line."""
    data = p.read_bytes()
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data[:nul].count(b"\n") + 1
        raise HrkdError(f"{p}:{line}: binary file (a NUL byte at offset {nul}); expected text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise HrkdError(f"{p}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start})") from None
    if not text.strip():
        raise HrkdError(f"{p}: empty file (no text)")
    return text


def _str(value) -> str:
    return "" if value is None else str(value)


def read_unlabeled(path: str, domain: str = "", text_pair: bool = False) -> list[UnlabeledRow]:
    """The rows of an unlabelled-text file, in file order (see the module docstring)."""
    p = unlabeled_file(path)
    text = _decoded(p)
    if p.suffix.lower() in TEXT_SUFFIXES:
        if text_pair:
            raise HrkdError(f"{p}: a plain-text file holds single texts, but the labelled data is sentence pairs; "
                            "use a .csv or .jsonl file with text and text_b")
        if not domain:
            raise HrkdError(f"{p}: a plain-text file has no domain column; name its domain with data.unlabeled_domain")
        return [UnlabeledRow(n, domain, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    rows, fields = _rows(p)
    if not rows:
        raise HrkdError(f"{p}: empty file (no data rows)")
    if "text" not in fields:
        raise HrkdError(f"{p}: no 'text' column (found: {', '.join(fields) or 'none'})")
    if "domain" in fields and domain:
        raise HrkdError(f"{p}: has a domain column and data.unlabeled_domain = {domain!r} is set too; give one")
    if "domain" not in fields and not domain:
        raise HrkdError(f"{p}: no 'domain' column (found: {', '.join(fields)}); add one or set data.unlabeled_domain")
    out = []
    for lineno, r in rows:
        t, b = _str(r.get("text")).strip(), _str(r.get("text_b")).strip()
        d = domain or _str(r.get("domain")).strip()
        if not t:
            raise HrkdError(f"{p}:{lineno}: empty 'text'")
        if not d:
            raise HrkdError(f"{p}:{lineno}: empty 'domain'")
        if text_pair and not b:
            raise HrkdError(f"{p}:{lineno}: empty 'text_b' (the labelled data is sentence pairs)")
        if b and not text_pair:
            raise HrkdError(f"{p}:{lineno}: a 'text_b' is given, but the labelled data has single texts")
        out.append(UnlabeledRow(lineno, d, t, b if text_pair else None))
    return out
