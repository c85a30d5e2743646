"""`hrkd predict`: label new text with one domain of a teacher, a student, or an exported folder.

Input: CSV (a header row with ``text`` and, for sentence pairs, ``text_b``), JSON lines (objects with
those keys) or plain text (one example per line; blank lines are skipped). The format follows the
file's extension (.csv, .jsonl / .json / .ndjson, anything else is text); on stdin (``-``) it is JSON
lines when the first line is a JSON object, else text. An ``id`` column or key is passed through.

Output: one row per example with its row number, the text, the label and the probability of every
class (JSON lines, or CSV with one ``prob_<label>`` column per class).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from hrkd_cli.data.tabular import csv_table, json_lines, read_utf8, text_lines
from hrkd_cli.errors import HrkdError
from hrkd_cli.fsio import write_text_atomic
from hrkd_cli.model.export import DomainModel, model_domains, open_domain
from hrkd_cli.runs import Say

OUTPUT_FORMATS = ("jsonl", "csv")
JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
PROGRESS_FROM = 8  # batches; shorter inputs finish before a bar is worth drawing


@dataclass
class Example:
    row: int  # line number (text, JSON lines) or data row number (CSV), from 1
    text: str
    text_b: str | None = None
    id: object = None


def _field(value, name: str, where: str) -> str:
    if value is None:
        raise HrkdError(f"{where}: no value for {name!r}")
    if not isinstance(value, str):
        raise HrkdError(f"{where}: {name!r} is {type(value).__name__}, not text")
    return value


def _read_csv(content: str, name: str) -> list[Example]:
    table = csv_table(content, name)
    if not table.columns:
        return []
    if "text" not in table.columns:
        raise HrkdError(f"{name}: no column 'text' (columns: {', '.join(table.columns)})")
    pair = "text_b" in table.columns
    return [Example(n, rec["text"], rec["text_b"] if pair else None, rec.get("id"))
            for n, (_, rec) in enumerate(table.rows, start=1)]


def _read_jsonl(content: str, name: str) -> list[Example]:
    out = []
    for n, obj in json_lines(text_lines(content), name):
        where = f"{name}:{n}"
        if "text" not in obj:
            raise HrkdError(f"{where}: no key 'text' (keys: {', '.join(obj) or 'none'})")
        text_b = _field(obj["text_b"], "text_b", where) if obj.get("text_b") is not None else None
        out.append(Example(n, _field(obj["text"], "text", where), text_b, obj.get("id")))
    return out


def _read_text(content: str, name: str) -> list[Example]:
    return [Example(n, line.rstrip("\n")) for n, line in enumerate(text_lines(content), start=1) if line.strip()]


def read_examples(source: str) -> tuple[str, list[Example]]:
    """(name for messages, examples) of a file, or of stdin for ``-``."""
    if source == "-":
        name, content = "<stdin>", sys.stdin.read()
        first = next((line for line in content.splitlines() if line.strip()), "")
        reader = _read_jsonl if first.lstrip().startswith("{") else _read_text
    else:
        path = Path(source)
        name = str(path)
        if not path.is_file():
            raise HrkdError(f"{path}: input file not found")
        content = read_utf8(path)  # BOM dropped: spreadsheets often start CSV files with one
        suffix = path.suffix.lower()
        reader = _read_csv if suffix == ".csv" else _read_jsonl if suffix in JSONL_SUFFIXES else _read_text
    examples = reader(content, name)
    if not examples:
        raise HrkdError(f"{name}: no examples to predict")
    return name, examples


def check_pairs(dm: DomainModel, examples: list[Example], name: str) -> list[str] | None:
    """The second texts to tokenise with, or None for single texts; refuses input the model cannot read."""
    given = [e.text_b for e in examples]
    has_b = any(b is not None for b in given)
    if dm.text_pair and not has_b:
        raise HrkdError(f"{name}: no field 'text_b'; the {dm.domain} model reads sentence pairs (text, text_b)")
    if dm.text_pair is False and any(b for b in given):
        raise HrkdError(f"{name}: has 'text_b' but the {dm.domain} model reads single texts; drop that field")
    if dm.text_pair or (dm.text_pair is None and has_b):
        return [b or "" for b in given]  # as `hrkd prepare` tokenised pairs: a missing second text is ""
    return None


def predict_probabilities(dm: DomainModel, examples: list[Example], pairs: list[str] | None, batch_size: int,
                          console: Console | None = None) -> torch.Tensor:
    """Class probabilities [N, C] in input order; batches of ``batch_size``, a bar on stderr for long inputs."""
    chunks = [range(i, min(i + batch_size, len(examples))) for i in range(0, len(examples), batch_size)]
    probs = []
    progress = Progress(TextColumn("[bold]predict"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=console or Console(stderr=True), transient=True, disable=len(chunks) < PROGRESS_FROM)
    with progress:
        task = progress.add_task("predict", total=len(examples))
        for rows in chunks:
            enc = dm.encode([examples[i].text for i in rows], [pairs[i] for i in rows] if pairs is not None else None)
            probs.append(dm.logits(enc).double().softmax(-1))
            progress.advance(task, len(rows))
    return torch.cat(probs)


def output_rows(dm: DomainModel, examples: list[Example], probs: torch.Tensor) -> list[dict]:
    rows = []
    for e, p in zip(examples, probs.tolist()):
        row = {"row": e.row}
        if e.id is not None:
            row["id"] = e.id
        row["text"] = e.text
        if e.text_b is not None:
            row["text_b"] = e.text_b
        row["label"] = dm.label_names[max(range(len(p)), key=p.__getitem__)]
        row["probabilities"] = dict(zip(dm.label_names, p))
        rows.append(row)
    return rows


def format_rows(rows: list[dict], fmt: str) -> str:
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    flat = [{**{k: v for k, v in r.items() if k != "probabilities"}, **{f"prob_{n}": p for n, p in r["probabilities"].items()}}
            for r in rows]
    columns = list(dict.fromkeys(k for r in flat for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    return buf.getvalue()


def predict(model: Path, domain: str, source: str, output: Path | None = None, fmt: str | None = None,
            batch_size: int = 32, device: torch.device | str = "cpu", console: Console | None = None, say: Say = print) -> list[dict]:
    """Label every example of ``source`` with ``model``'s head for ``domain``; write them to ``output``
    (atomically) or print them to stdout. Returns the rows."""
    fmt = fmt or ("csv" if output is not None and Path(output).suffix.lower() == ".csv" else "jsonl")
    if fmt not in OUTPUT_FORMATS:
        raise HrkdError(f"--format {fmt!r}: choose {' or '.join(OUTPUT_FORMATS)}")
    if batch_size < 1:
        raise HrkdError(f"--batch-size {batch_size}: must be at least 1")
    domains = model_domains(model)
    if domain not in domains:
        raise HrkdError(f"{model}: has no model for domain {domain!r} (domains: {', '.join(domains)})")
    name, examples = read_examples(source)
    dm = open_domain(model, domain, device)
    pairs = check_pairs(dm, examples, name)
    rows = output_rows(dm, examples, predict_probabilities(dm, examples, pairs, batch_size, console))
    text = format_rows(rows, fmt)
    if output is None or str(output) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_text_atomic(Path(output), text)
        say(f"wrote {len(rows)} predictions to {output}")
    return rows
