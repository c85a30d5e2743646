"""Run records -> tables in the layout of HRKD Tables 2, 3 and 4.

A *run record* is the ``run.json`` every teach and distill run leaves next to its
checkpoint. Records are grouped into table rows: a teacher row is one teacher
directory; a student row is every seed of one configuration (same
``preset_hash``, i.e. the same data, teacher, student and distill sections).

Statistics, on accuracies in percent:
- each cell is the mean over seeds +- the sample standard deviation (ddof = 1);
  with one seed the cell is the bare value;
- the p-value of a student row is Welch's unequal-variance two-sided t-test
  (``scipy.stats.ttest_ind(equal_var=False)``) of its per-seed average
  accuracies against those of the TinyBERT-KD row distilled from the same
  teacher; fewer than two seeds on either side, or two constant samples,
  give ``n/a``;
- best and second-best means per column among the student rows (compared at
  the displayed precision, so ties share the mark) are bold and underlined.

Records of different prepared datasets (manifest hashes) are never mixed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from hrkd_cli.errors import HrkdError

TTEST = "Welch's unequal-variance two-sided t-test (scipy.stats.ttest_ind, equal_var=False) on per-seed average accuracy"
STD_NOTE = "cells: mean over seeds ± sample standard deviation (ddof=1), accuracy in %"
MEAN_DIGITS, STD_DIGITS = 1, 2

# Paper order of the rows (HRKD Tables 2 and 3).
TEACHER_ORDER = ["single", "mix", "mtl", "meta", "multi-domain"]
METHOD_ORDER = ["tinybert", "multi-domain", "mtn-kd", "meta-kd", "hrkd"]
TINYBERT_METHODS = ("tinybert", "multi-domain")
# hrkd_cli.recipes.distill.DEFAULT_TEACHER, copied so that reading tables never imports torch (a test keeps them equal).
DEFAULT_TEACHER = {"tinybert": "single", "multi-domain": "multi-domain", "hrkd": "multi-domain", "meta-kd": "meta", "mtn-kd": "single"}
# Which TinyBERT-KD method is the natural one for a teacher kind (distill.DEFAULT_TEACHER reversed).
NATURAL_TINYBERT = {"single": "tinybert", "multi-domain": "multi-domain"}

ABLATION_LABELS = {
    "self-attention": "Self-attention",
    "comp-agg": "Comp-Agg",
    "hierarchical": "Hierarchical Rel.",
    "domain-rel": "Domain Rel.",
}


# ---------------------------------------------------------------- records


@dataclass
class RunRecord:
    path: Path  # the directory holding run.json
    record: dict

    @property
    def role(self) -> str:
        return self.record.get("role", "")

    @property
    def seed(self) -> int | None:
        return self.record.get("seed")

    @property
    def data_hash(self) -> str:
        return self.record.get("data_hash", "")

    @property
    def preset(self) -> dict:
        return self.record.get("preset") or {}

    @property
    def method(self) -> str:
        return self.record.get("method") or ""

    @property
    def drop(self) -> tuple[str, ...]:
        return tuple((self.preset.get("distill") or {}).get("drop") or ())

    @property
    def tag(self) -> str:
        """student/<tag>/seed-N -> tag; teacher/<kind> -> kind."""
        return self.path.parent.name if self.role == "student" else self.path.name

    @property
    def teacher_kind(self) -> str:
        if self.role == "teacher":
            return self.record.get("kind", "")
        kind = (self.preset.get("distill") or {}).get("teacher_kind", "auto")
        return DEFAULT_TEACHER.get(self.method, "") if kind == "auto" else kind

    @property
    def group_key(self) -> str:
        if self.role == "teacher":
            return "teacher:" + str(self.path.resolve())
        return "student:" + (self.record.get("preset_hash") or str(self.path.parent.resolve()))

    def score(self, split: str, column: str) -> float | None:
        v = (self.record.get(split) or {}).get(column)
        return None if v is None else 100.0 * float(v)


def _read(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _record_at(run_json: Path) -> RunRecord | None:
    rec = _read(run_json)
    if not isinstance(rec, dict) or rec.get("role") not in ("teacher", "student"):
        return None
    return RunRecord(run_json.parent, rec)


def results_records(results_dir: Path) -> list[RunRecord]:
    """The records of one results directory (a preset's run_dir): teacher/*/run.json, student/*/seed-*/run.json.

    Sub-experiments below it (fewshot/rate-*/) are separate results directories and are not included.
    """
    results_dir = Path(results_dir)
    found = sorted(results_dir.glob("teacher/*/run.json")) + sorted(results_dir.glob("student/*/seed-*/run.json"))
    return [r for r in (_record_at(p) for p in found) if r is not None]


def collect(paths: list[Path]) -> list[RunRecord]:
    """Records from run directories (teacher/<kind>, student/<tag>/seed-N), student tag directories
    (every seed-N below) or results directories (a preset's run_dir)."""
    if not paths:
        raise HrkdError("nothing to compare: give run directories or a results directory")
    records: dict[Path, RunRecord] = {}
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise HrkdError(f"{path}: no such run or results directory")
        if path.is_file() and path.name == "run.json":
            path = path.parent
        if not (path / "run.json").is_file() and (path.parent / "run.json").is_file() and (path / "hrkd.json").is_file():
            path = path.parent  # a checkpoint inside a run (best/, last/, a tinybert domain's directory)
        if (path / "run.json").is_file():
            found = [_record_at(path / "run.json")]
            if found[0] is None:
                raise HrkdError(f"{path}/run.json: not a teach or distill run record")
        elif list(path.glob("seed-*/run.json")):
            found = [_record_at(p) for p in sorted(path.glob("seed-*/run.json"))]
        else:
            found = results_records(path)
        found = [r for r in found if r is not None]
        if not found:
            raise HrkdError(f"{path}: no finished runs (run.json) in it, in its seed-*/ or under teacher/ and student/")
        for r in found:
            records.setdefault(r.path.resolve(), r)
    return list(records.values())


def check_same_data(records: list[RunRecord]) -> str:
    """The one manifest hash of ``records``; refuse records from different prepared datasets."""
    first: RunRecord | None = None
    for r in records:
        if not r.data_hash:
            raise HrkdError(f"{r.path}: run record has no data hash")
        if first is None:
            first = r
        elif r.data_hash != first.data_hash:
            raise HrkdError(
                f"runs from different datasets cannot be compared: {first.path} used data {first.data_hash} "
                f"and {r.path} used data {r.data_hash}"
            )
    return first.data_hash if first else ""


# ---------------------------------------------------------------- statistics


@dataclass
class Stat:
    values: list[float]  # per seed, in %

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return sum(self.values) / self.n if self.values else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (ddof=1); None with fewer than two values."""
        if self.n < 2:
            return None
        m = self.mean
        return math.sqrt(sum((v - m) ** 2 for v in self.values) / (self.n - 1))

    def text(self, digits: int = MEAN_DIGITS, std_digits: int = STD_DIGITS) -> str:
        if not self.values:
            return "-"
        if self.std is None:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f}±{self.std:.{std_digits}f}"

    def to_json(self) -> dict:
        return {"values": self.values, "n": self.n, "mean": self.mean, "std": self.std}


def welch_p(a: list[float], b: list[float]) -> float | None:
    """Two-sided Welch t-test p-value; None when either side has fewer than 2 values or the test is undefined."""
    if len(a) < 2 or len(b) < 2:
        return None
    import warnings

    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant samples: the test is undefined (nan -> n/a)
        p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return None if math.isnan(p) else p


def format_p(p: float | None, note: str = "") -> str:
    if note:
        return note
    if p is None:
        return "n/a"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


# ---------------------------------------------------------------- tables


@dataclass
class TableRow:
    label: str
    role: str
    runs: list[RunRecord]
    stats: dict[str, Stat]  # column ("average" and the domains) -> Stat
    p_value: float | None = None
    p_note: str = ""  # "ref" for the reference row, "" when p_value (or n/a) applies
    reference: str = ""  # label of the row the p-value compares against
    extra: dict[str, str] = field(default_factory=dict)
    marks: dict[str, str] = field(default_factory=dict)  # column -> "best" | "second"

    @property
    def seeds(self) -> list:
        return [r.seed for r in self.runs]

    @property
    def first(self) -> RunRecord:
        return self.runs[0]

    @property
    def preset_hash(self) -> str:
        return self.first.record.get("preset_hash", "")

    @property
    def wall_time_s(self) -> float:
        return sum(float(r.record.get("wall_time_s") or 0.0) for r in self.runs)

    def to_json(self) -> dict:
        return {
            "label": self.label, "role": self.role, "seeds": self.seeds,
            "runs": [str(r.path) for r in self.runs], "preset_hash": self.preset_hash,
            "stats": {k: v.to_json() for k, v in self.stats.items()},
            "p_value": self.p_value, "p_note": self.p_note or (None if self.p_value is not None else ("n/a" if self.role == "student" else None)),
            "reference": self.reference or None, "extra": self.extra, "marks": self.marks,
            "wall_time_s": self.wall_time_s,
        }


@dataclass
class ResultTable:
    title: str
    split: str
    domains: list[str]
    rows: list[TableRow]
    data_hash: str
    extra_columns: list[str] = field(default_factory=list)
    p_label: str = "p vs TinyBERT-KD"
    notes: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return [*self.domains, "average"]

    def header(self) -> list[str]:
        return ["Method", *[_domain_title(d) for d in self.domains], "Average", *self.extra_columns, "Seeds", self.p_label]

    def cells(self, row: TableRow) -> list[str]:
        return [
            row.label, *[row.stats[c].text() if c in row.stats else "-" for c in self.columns],
            *[row.extra.get(c, "") for c in self.extra_columns],
            str(len(row.runs)), format_p(row.p_value, row.p_note) if row.role == "student" else "",
        ]

    def to_json(self) -> dict:
        return {
            "title": self.title, "split": self.split, "domains": self.domains, "data_hash": self.data_hash,
            "ttest": TTEST, "std": "sample standard deviation (ddof=1)", "unit": "accuracy (%)",
            "p_column": self.p_label, "notes": self.notes, "rows": [r.to_json() for r in self.rows],
        }


def _domain_title(d: str) -> str:
    return d if any(c.isupper() for c in d) else d.capitalize()


def _row_stats(runs: list[RunRecord], split: str, columns: list[str]) -> dict[str, Stat]:
    stats = {}
    for c in columns:
        vals = [r.score(split, c) for r in runs]
        if all(v is not None for v in vals):
            stats[c] = Stat([float(v) for v in vals])
    return stats


def _order_key(row: TableRow) -> tuple:
    r = row.first
    kind = r.teacher_kind
    t = TEACHER_ORDER.index(kind) if kind in TEACHER_ORDER else len(TEACHER_ORDER)
    if row.role == "teacher":
        return (0, t, bool(r.preset.get("teacher", {}).get("exclude_domain")), row.label)
    m = METHOD_ORDER.index(r.method) if r.method in METHOD_ORDER else len(METHOD_ORDER)
    # Meta-KD's and MTN-KD's rows sit with their teachers as in the paper; HRKD rows last.
    if r.method == "hrkd":
        t = len(TEACHER_ORDER) + 1
    return (1, t, m, len(r.drop), [list(ABLATION_LABELS).index(d) for d in r.drop if d in ABLATION_LABELS],
            r.tag, row.label)


def group_rows(records: list[RunRecord], split: str, domains: list[str]) -> list[TableRow]:
    """One row per teacher directory and per student configuration, in the paper's order."""
    groups: dict[str, list[RunRecord]] = {}
    for r in records:
        groups.setdefault(r.group_key, []).append(r)
    rows = []
    for runs in groups.values():
        runs.sort(key=lambda r: (r.seed if isinstance(r.seed, int) else 0, str(r.path)))
        first = runs[0]
        label = first.record.get("row") or first.tag
        rows.append(TableRow(label, first.role, runs, _row_stats(runs, split, [*domains, "average"])))
    # Same label, different configuration (graph mode, another preset): tell them apart.
    by_label: dict[str, list[TableRow]] = {}
    for row in rows:
        by_label.setdefault(row.label, []).append(row)
    for same in by_label.values():
        if len(same) < 2:
            continue
        tags = [row.first.tag for row in same]
        for row in same:
            suffix = row.first.tag if tags.count(row.first.tag) == 1 else (row.preset_hash[:8] or row.first.tag)
            row.label = f"{row.label} [{suffix}]"
    rows.sort(key=_order_key)
    return rows


def _teacher_id(r: RunRecord) -> str:
    t = r.record.get("teacher")
    return str(Path(t).resolve()) if t else "kind:" + r.teacher_kind


def tinybert_reference(row: TableRow, rows: list[TableRow]) -> TableRow | None:
    """The TinyBERT-KD row distilled from the same teacher as ``row`` (None when absent)."""
    cands = [x for x in rows if x.role == "student" and x.first.method in TINYBERT_METHODS and not x.first.drop
             and _teacher_id(x.first) == _teacher_id(row.first)]
    if not cands:
        return None
    natural = NATURAL_TINYBERT.get(row.first.teacher_kind)
    cands.sort(key=lambda x: (x.first.method != natural, -len(x.runs), x.label))
    return cands[0]


def mark_best(rows: list[TableRow], columns: list[str]) -> None:
    """Bold (best) and underline (second best) per column among student rows (all rows if there are none)."""
    pool = [r for r in rows if r.role == "student"] or rows
    for c in columns:
        vals = sorted({round(r.stats[c].mean, MEAN_DIGITS) for r in pool if c in r.stats}, reverse=True)
        for r in pool:
            if c not in r.stats:
                continue
            v = round(r.stats[c].mean, MEAN_DIGITS)
            if vals and v == vals[0]:
                r.marks[c] = "best"
            elif len(vals) > 1 and v == vals[1]:
                r.marks[c] = "second"


def domains_of(records: list[RunRecord], split: str) -> list[str]:
    """Domain columns in the data's order (the first record naming the most domains)."""
    best: list[str] = []
    for r in records:
        ds = [k for k in (r.record.get(split) or {}) if k != "average"]
        if len(ds) > len(best):
            best = ds
    manifest_order = None
    for r in records:
        ds = (r.preset.get("data") or {}).get("domains")
        if ds:
            manifest_order = ds
            break
    if manifest_order and set(manifest_order) == set(best):
        return list(manifest_order)
    return best


def compare_table(records: list[RunRecord], split: str = "test", title: str | None = None) -> ResultTable:
    """Tables 2/3: teacher rows, then student rows with mean±std, marks and p-values vs TinyBERT-KD."""
    if split not in ("dev", "test"):
        raise HrkdError(f"split {split!r}: choose dev or test")
    if not records:
        raise HrkdError("no run records to compare")
    data_hash = check_same_data(records)
    domains = domains_of(records, split)
    rows = group_rows(records, split, domains)
    for row in rows:
        if row.role != "student":
            continue
        ref = tinybert_reference(row, rows)
        if ref is row:
            row.p_note = "ref"
            continue
        if ref is None:
            row.p_note = "n/a"
            continue
        row.reference = ref.label
        row.p_value = welch_p(row.stats["average"].values, ref.stats["average"].values) \
            if "average" in row.stats and "average" in ref.stats else None
    mark_best(rows, [*domains, "average"])
    notes = [STD_NOTE, f"p: {TTEST}, against the TinyBERT-KD row distilled from the same teacher "
             "(ref: that row; n/a: fewer than 2 seeds on a side, no such row, or constant samples)",
             "bold: best, underlined: second best among the student rows"]
    return ResultTable(title or f"Accuracy (%) on {split}", split, domains, rows, data_hash, notes=notes)


# ---------------------------------------------------------------- Table 4


def ablation_label(drop: tuple[str, ...]) -> str:
    """Paper labels for the cumulative configurations; '(alone)' for single switches off that path."""
    from hrkd_cli.config import PROGRESSIVE_ABLATIONS

    if not drop:
        return "HRKD"
    k = len(drop)
    if tuple(drop) == tuple(PROGRESSIVE_ABLATIONS[:k]):
        return f"- {ABLATION_LABELS[drop[-1]]}"
    if k == 1:
        return f"- {ABLATION_LABELS[drop[0]]} (alone)"
    return " ".join(f"- {ABLATION_LABELS.get(d, d)}" for d in drop) + " (together)"


def _distill_key(r: RunRecord, leave_out: tuple[str, ...]) -> str:
    dump = json.loads(json.dumps({k: r.preset.get(k) for k in ("data", "teacher", "student", "distill")}))
    for field in leave_out:
        (dump.get("distill") or {}).pop(field, None)
    return hashlib.sha256(json.dumps(dump, sort_keys=True).encode()).hexdigest()[:16]


def variant_key(r: RunRecord) -> str:
    """What an ablation shares with its full-HRKD reference: every preset section but distill.drop and the seed."""
    return _distill_key(r, ("drop",))


# distill fields that act only through the relational graph (prototypes, GAT, compare-aggregate)
GRAPH_ONLY_FIELDS = ("method", "drop", "graph_mode", "graph_lr", "gat_heads", "gat_dropout", "prototype_tokens",
                     "domain_rel_scale")


def stands_for_domain_rel(r: RunRecord, family: list[RunRecord]) -> bool:
    """A multi-domain TinyBERT-KD run is HRKD with every switch dropped at the released code's scale (SPEC 5, 8.5):
    no graph, Eq. 5 with unit weights. It serves an HRKD family whose other settings it shares."""
    ref = family[0]
    return (r.role == "student" and r.method == "multi-domain" and not r.drop and r.data_hash == ref.data_hash
            and (ref.preset.get("distill") or {}).get("domain_rel_scale", "eq5") == "eq5"
            and _distill_key(r, GRAPH_ONLY_FIELDS) == _distill_key(ref, GRAPH_ONLY_FIELDS))


def ablation_drop(r: RunRecord) -> tuple[str, ...]:
    """The switches a run has off, as Table 4 counts them: a multi-domain run has all of them off."""
    from hrkd_cli.config import ABLATIONS

    return tuple(ABLATIONS) if r.method == "multi-domain" else r.drop


def ablation_tables(records: list[RunRecord], split: str = "test") -> list[ResultTable]:
    """Table 4 for every HRKD configuration that has a full run and at least one ablation beside it."""
    from hrkd_cli.config import ABLATIONS

    hrkd = [r for r in records if r.role == "student" and r.method == "hrkd"]
    if not hrkd:
        return []
    data_hash = check_same_data(hrkd)
    families: dict[str, list[RunRecord]] = {}
    for r in hrkd:
        families.setdefault(variant_key(r), []).append(r)
    tables = []
    for fam in families.values():
        if not any(set(r.drop) == set(ABLATIONS) for r in fam):
            fam = fam + [r for r in records if stands_for_domain_rel(r, fam)]
        if not any(not r.drop for r in fam) or not any(ablation_drop(r) for r in fam):
            continue
        domains = domains_of(fam, split)
        rows = group_rows(fam, split, domains)
        full = next(row for row in rows if not ablation_drop(row.first))
        for row in rows:
            row.label = ablation_label(tuple(d for d in ABLATIONS if d in ablation_drop(row.first)))
        rows.sort(key=lambda row: (bool(ablation_drop(row.first)), row.label.endswith(")"), len(ablation_drop(row.first)),
                                   [ABLATIONS.index(d) for d in ablation_drop(row.first)]))
        base = full.stats.get("average")
        for row in rows:
            avg = row.stats.get("average")
            if row is full:
                row.p_note = "ref"
                row.extra["Δ Average"] = "0.0"
                continue
            row.reference = full.label
            if avg and base:
                row.extra["Δ Average"] = f"{avg.mean - base.mean:+.1f}"
                row.p_value = welch_p(avg.values, base.values)
        mark_best(rows, [*domains, "average"])
        tag = full.first.tag
        notes = [STD_NOTE, "Δ Average: mean average accuracy minus that of full HRKD (points)",
                 f"p: {TTEST}, against full HRKD", "rows without a suffix follow the paper's cumulative order: "
                 "each also drops the ones above it", "bold: best, underlined: second best"]
        tables.append(ResultTable(f"Table 4: ablations of {full.first.record.get('row', 'HRKD')}" + (f" [{tag}]" if tag != "hrkd" else ""),
                                  split, domains, rows, data_hash, extra_columns=["Δ Average"], p_label="p vs HRKD", notes=notes))
    return tables


# ---------------------------------------------------------------- writers


def rich_table(table: ResultTable):
    from rich.table import Table

    t = Table(title=table.title, title_justify="left", caption="; ".join(table.notes[:2]) if table.notes else None,
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


def print_table(console, renderable, max_width: int = 250) -> None:
    """Print without truncating cells: a table wider than the console (80 columns off a terminal) is printed at
    its natural width, up to ``max_width``."""
    from rich.console import Console
    from rich.measure import Measurement

    need = min(Measurement.get(console, console.options.update_width(max_width), renderable).maximum, max_width)
    if need <= console.width:
        console.print(renderable)
        return
    wide = Console(file=console.file, width=need, force_terminal=console.is_terminal, color_system=console.color_system,
                   highlight=False)
    wide.print(renderable)


def _escape(s: str) -> str:
    from rich.markup import escape

    return escape(s)


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def to_markdown(table: ResultTable, heading: str = "###") -> str:
    lines = [f"{heading} {table.title}", ""] if heading else []
    header = table.header()
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    for row in table.rows:
        cells = table.cells(row)
        for i, c in enumerate(table.columns):
            mark = row.marks.get(c)
            if mark == "best":
                cells[1 + i] = f"**{cells[1 + i]}**"
            elif mark == "second":
                cells[1 + i] = f"<u>{cells[1 + i]}</u>"
        lines.append("| " + " | ".join(_md_escape(x) for x in cells) + " |")
    lines.append("")
    lines += [f"- {n}" for n in table.notes]
    lines.append(f"- split: {table.split}; data manifest hash: `{table.data_hash}`")
    return "\n".join(lines) + "\n"


def to_csv(table: ResultTable) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    cols = table.columns
    w.writerow(["method", "role", "n_seeds", "seeds", *[f"{c}_{s}" for c in cols for s in ("mean", "std")],
                *table.extra_columns, "p_value", "reference", "preset_hash", "data_hash"])
    for row in table.rows:
        stats = []
        for c in cols:
            st = row.stats.get(c)
            stats += ["" if st is None else f"{st.mean:.4f}", "" if st is None or st.std is None else f"{st.std:.4f}"]
        p = "" if row.role != "student" else (row.p_note or ("n/a" if row.p_value is None else f"{row.p_value:.6g}"))
        w.writerow([row.label, row.role, len(row.runs), " ".join(str(s) for s in row.seeds), *stats,
                    *[row.extra.get(c, "") for c in table.extra_columns], p, row.reference, row.preset_hash, table.data_hash])
    return buf.getvalue()


def to_json_text(tables: list[ResultTable]) -> str:
    obj = tables[0].to_json() if len(tables) == 1 else {"tables": [t.to_json() for t in tables]}
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


FORMATS = {"markdown": ".md", "csv": ".csv", "json": ".json"}


def render(tables: list[ResultTable], fmt: str) -> str:
    if fmt == "markdown":
        return "\n".join(to_markdown(t) for t in tables)
    if fmt == "csv":
        return "\n".join(to_csv(t) for t in tables)
    if fmt == "json":
        return to_json_text(tables)
    raise HrkdError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")


def write_text_atomic(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
