"""CSV/TSV and JSON-lines files as rows: the one reader behind `hrkd prepare` (custom source) and `hrkd predict`.

CSV follows RFC 4180 (a field that starts with ``"`` is quoted, ``""`` inside it is one quote, it may span
lines), and is strict where Python's csv module is lax: a quoted field that never closes, or text after a
closing quote, is an error naming the line where the field started, not a field that swallows the rest of the
file; a row with more or fewer fields than the header is an error naming its line, not a row whose extra text is
dropped. A quote inside an unquoted field is kept as text (``12" pan``), as the csv module and spreadsheets do.
There is no field-size limit: a long text is read whole and truncated by the tokenizer like any other.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from hrkd_cli.errors import HrkdError

CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}
JSONL_SUFFIXES = (".jsonl", ".ndjson")
# A quoted field, unrolled so that matching is linear in its length: "text ""with"" quotes".
_QUOTED = re.compile(r'"([^"]*(?:""[^"]*)*)"')
_BARE = {d: re.compile(f"[^{re.escape(d)}\r\n]*") for d in CSV_SUFFIXES.values()}


@dataclass
class Table:
    """The column names (in order of appearance) and (line where the row starts, column -> value) per row."""

    columns: list[str]
    rows: list[tuple[int, dict]]


def _line_breaks(text: str) -> int:
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def _csv_records(text: str, name: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(line where the record starts, its fields) for every record of ``text``."""
    bare, n, pos, line = _BARE[delimiter], len(text), 0, 1
    while pos < n:
        start, fields = line, []
        while True:
            if text.startswith('"', pos):
                m = _QUOTED.match(text, pos)
                if m is None:
                    raise HrkdError(f"{name}:{line}: unclosed quote: the quoted field starting on this line runs to "
                                    "the end of the file")
                field_line, line, pos = line, line + _line_breaks(m.group(0)), m.end()
                if pos < n and text[pos] not in (delimiter, "\r", "\n"):
                    raise HrkdError(f"{name}:{field_line}: the quoted field starting on this line closes on line {line} "
                                    f"before {text[pos]!r}, not before a delimiter or line end (an unclosed quote? "
                                    "a quote inside a quoted field is written \"\")")
                fields.append(m.group(1).replace('""', '"'))
            else:
                m = bare.match(text, pos)
                fields.append(m.group(0))
                pos = m.end()
            if pos < n and text[pos] == delimiter:
                pos += 1
                continue
            pos += 2 if text.startswith("\r\n", pos) else 1  # the line break (or past the end)
            line += 1
            break
        yield start, fields


def csv_table(text: str, name: str, delimiter: str = ",") -> Table:
    """The header and data rows of CSV (or, with a tab delimiter, TSV) text; blank lines are skipped."""
    records = ((line, fields) for line, fields in _csv_records(text, name, delimiter) if any(f.strip() for f in fields))
    first = next(records, None)
    if first is None:
        return Table([], [])
    columns = [c.strip() for c in first[1]]
    named = [c for c in columns if c]
    dup = next((c for c in named if named.count(c) > 1), None)
    if dup is not None:
        raise HrkdError(f"{name}:{first[0]}: column {dup!r} appears twice in the header")
    what = "tab-separated field" if delimiter == "\t" else "field"
    rows = []
    for line, fields in records:
        if len(fields) != len(columns):
            hint = (" (an unquoted delimiter inside a text? quote that field)" if len(fields) > len(columns) else "")
            raise HrkdError(f"{name}:{line}: {len(fields)} {what}{'s' * (len(fields) != 1)}, the header has "
                            f"{len(columns)}{hint}")
        rows.append((line, {c: v for c, v in zip(columns, fields) if c}))
    return Table(named, rows)


def json_lines(lines: Iterable[str], name: str) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line of JSON-lines text; a bad line is a one-line error."""
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise HrkdError(f"{name}:{lineno}: not valid JSON ({err.msg})") from None
        if not isinstance(obj, dict):
            raise HrkdError(f"{name}:{lineno}: expected a JSON object per line")
        yield lineno, obj


def jsonl_objects(path: Path, encoding: str = "utf-8"):
    """json_lines of a file, read line by line (large corpora need not fit in memory twice)."""
    with Path(path).open(encoding=encoding) as f:
        yield from json_lines(f, str(path))


def jsonl_table(lines: Iterable[str], name: str) -> Table:
    rows = list(json_lines(lines, name))
    return Table(list(dict.fromkeys(k for _, obj in rows for k in obj)), rows)


def read_utf8(path: Path) -> str:
    """A file's text, line breaks as written (CSV fields keep theirs); a leading BOM is dropped."""
    try:
        with Path(path).open(encoding="utf-8-sig", newline="") as f:
            return f.read()
    except UnicodeDecodeError as err:
        raise HrkdError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def text_lines(text: str) -> io.StringIO:
    """``text`` split into lines at \\n, \\r\\n or \\r only (str.splitlines also splits at U+2028 and others,
    which JSON strings may hold)."""
    return io.StringIO(text, newline=None)


def read_table(path: Path) -> Table:
    """A .csv, .tsv, .jsonl or .ndjson file as a Table."""
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return csv_table(read_utf8(path), str(path), CSV_SUFFIXES[suffix])
    if suffix in JSONL_SUFFIXES:
        return jsonl_table(text_lines(read_utf8(path)), str(path))
    raise HrkdError(f"{path}: unsupported file type {suffix or '(none)'!r}; use .csv, .tsv or .jsonl")
