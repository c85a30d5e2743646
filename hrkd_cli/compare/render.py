"""Writers for result tables: rich (terminal), Markdown, CSV, JSON; with ``per_seed`` also each seed's average."""

from __future__ import annotations

import csv
import io
import json

from rich.markup import escape
from rich.table import Table

from hrkd_cli.compare.tables import ResultTable, TableRow
from hrkd_cli.errors import HrkdError

FORMATS = {"markdown": ".md", "csv": ".csv", "json": ".json"}


def seed_columns(table: ResultTable) -> list:
    """Every seed number of the table's student rows (all rows if there are none), in order."""
    pool = [r for r in table.rows if r.role == "student"] or table.rows
    return sorted({s for r in pool for s in r.seeds if isinstance(s, int)})


def per_seed_header(table: ResultTable) -> list[str]:
    return ["Method", *[f"Seed {s}" for s in seed_columns(table)], "mean paired Δ (n)"]


def per_seed_cells(table: ResultTable, row: TableRow) -> list[str]:
    """A row's average accuracy per seed and its mean difference from its reference over the matched seeds."""
    by_seed = row.per_seed(table.split)
    cells = [row.label] + ["-" if by_seed.get(s) is None else f"{by_seed[s]:.2f}" for s in seed_columns(table)]
    pr = row.paired
    delta = "ref" if row.p_note == "ref" else ("" if pr is None or pr.mean_diff is None else f"{pr.mean_diff:+.2f} ({len(pr.seeds)})")
    return cells + [delta]


def _per_seed_rows(table: ResultTable) -> list[TableRow]:
    return [r for r in table.rows if r.role == "student"] or table.rows


PER_SEED_NOTE = ("average accuracy (%) of each seed's run; mean paired Δ: mean over the seeds shared with the reference "
                 "row of (row - reference), in points, and how many seeds")


def rich_table(table: ResultTable):
    t = Table(title=table.title, title_justify="left", caption="\n".join(table.notes) if table.notes else None,
              caption_justify="left")
    header = table.header()
    t.add_column(header[0])
    for h in header[1:]:
        t.add_column(h, justify="right")
    styles = {"best": "bold", "second": "underline"}
    for row in table.rows:
        cells = table.cells(row)
        out = [cells[0]]
        for i, c in enumerate(table.columns):
            text = cells[1 + i]
            style = styles.get(row.marks.get(c, ""))
            out.append(f"[{style}]{_escape(text)}[/{style}]" if style else _escape(text))
        out += [_escape(x) for x in cells[1 + len(table.columns):]]
        t.add_row(_escape(out[0]), *out[1:])
    return t


def per_seed_rich_table(table: ResultTable):
    t = Table(title=f"{table.title}: per seed", title_justify="left", caption=PER_SEED_NOTE, caption_justify="left")
    header = per_seed_header(table)
    t.add_column(header[0])
    for h in header[1:]:
        t.add_column(h, justify="right")
    for row in _per_seed_rows(table):
        t.add_row(*[_escape(x) for x in per_seed_cells(table, row)])
    return t


def _escape(s: str) -> str:
    return escape(s)


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def _md_rows(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    return lines + ["| " + " | ".join(_md_escape(x) for x in cells) + " |" for cells in rows]


def to_markdown(table: ResultTable, heading: str = "###") -> str:
    lines = [f"{heading} {table.title}", ""] if heading else []
    body = []
    for row in table.rows:
        cells = table.cells(row)
        for i, c in enumerate(table.columns):
            mark = row.marks.get(c)
            if mark == "best":
                cells[1 + i] = f"**{cells[1 + i]}**"
            elif mark == "second":
                cells[1 + i] = f"<u>{cells[1 + i]}</u>"
        body.append(cells)
    lines += _md_rows(table.header(), body)
    lines.append("")
    lines += [f"- {n}" for n in table.notes]
    lines.append(f"- split: {table.split}; data manifest hash: `{table.data_hash}`")
    if table.per_seed:
        lines += ["", f"Per seed: {PER_SEED_NOTE}.", ""]
        lines += _md_rows(per_seed_header(table), [per_seed_cells(table, r) for r in _per_seed_rows(table)])
    return "\n".join(lines) + "\n"


def to_csv(table: ResultTable) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    cols = table.columns
    seeds = seed_columns(table) if table.per_seed else []
    w.writerow(["method", "role", "n_seeds", "seeds", *[f"{c}_{s}" for c in cols for s in ("mean", "std")],
                *table.extra_columns, "p_value", "paired_n", "paired_t_p", "paired_mean_diff", "example_p",
                "examples_differing", "examples", "example_diff", "example_ci95_low", "example_ci95_high", *[f"seed_{s}_average" for s in seeds], "reference", "preset_hash", "data_hash"])
    for row in table.rows:
        stats = []
        for c in cols:
            st = row.stats.get(c)
            stats += ["" if st is None else f"{st.mean:.4f}", "" if st is None or st.std is None else f"{st.std:.4f}"]
        p = "" if row.role != "student" else (row.p_note or ("n/a" if row.p_value is None else f"{row.p_value:.6g}"))
        pr = row.paired
        interval = (pr.interval if pr is not None and pr.interval is not None else (None, None, None))
        paired = [""] * 9 if pr is None else [
            len(pr.seeds), _num(pr.t_p), _num(pr.mean_diff), _num(pr.example_p), _num(pr.differing), _num(pr.examples),
            *[_num(x) for x in interval]]
        by_seed = row.per_seed(table.split)
        w.writerow([row.label, row.role, len(row.runs), " ".join(str(s) for s in row.seeds), *stats,
                    *[row.extra.get(c, "") for c in table.extra_columns], p, *paired,
                    *[_num(by_seed.get(s)) for s in seeds], row.reference, row.preset_hash, table.data_hash])
    return buf.getvalue()


def _num(x) -> str:
    return "" if x is None else (str(x) if isinstance(x, int) else f"{x:.6g}")


def to_json_text(tables: list[ResultTable]) -> str:
    obj = tables[0].to_json() if len(tables) == 1 else {"tables": [t.to_json() for t in tables]}
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def render(tables: list[ResultTable], fmt: str) -> str:
    if fmt == "markdown":
        return "\n".join(to_markdown(t) for t in tables)
    if fmt == "csv":
        return "\n".join(to_csv(t) for t in tables)
    if fmt == "json":
        return to_json_text(tables)
    raise HrkdError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")

