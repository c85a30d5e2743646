"""Rows and tables in the layout of HRKD Tables 2 and 3: mean±std per column, and each student row
compared with the TinyBERT-KD row distilled from the same teacher by Welch's t-test, a paired t-test
over matched seeds and a sign-flip test whose unit is the test example (formulas in statistics.py).
Runs are paired only when their records agree on the teacher's weights (``teacher_mismatch``).

Best and second-best means per column among the student rows (compared at the displayed precision,
so ties share the mark) are bold and underlined.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hrkd_cli.compare.records import (
    ABLATION_LABELS,
    METHOD_ORDER,
    NATURAL_TINYBERT,
    TEACHER_ORDER,
    TINYBERT_METHODS,
    RunRecord,
    check_same_data,
    domains_of,
    group_runs,
    matched_seeds,
    prediction_pairs,
    teacher_mismatch,
)
from hrkd_cli.compare.statistics import (
    EXAMPLE_TEST,
    MEAN_DIGITS,
    PAIRED_TTEST,
    STD_NOTE,
    TTEST,
    Stat,
    correct_count_differences,
    format_p,
    mean_difference,
    paired_difference_interval,
    paired_t_p,
    sign_flip_p,
    welch_p,
)
from hrkd_cli.errors import HrkdError


@dataclass
class Paired:
    """A row against its reference, seed by seed and example by example."""

    seeds: list[int]  # seed numbers both rows have, from the same teacher weights
    t_p: float | None = None
    mean_diff: float | None = None  # mean over matched seeds of (row - reference) average accuracy, points
    example_p: float | None = None  # the sign-flip test over test examples (statistics.sign_flip_p)
    differing: int | None = None  # k: distinct test examples with d_i != 0
    examples: int | None = None  # test examples in the test
    interval: tuple[float, float, float] | None = None  # example-level mean difference and its 95% interval, points
    example_seeds: list[int] = field(default_factory=list)  # seeds whose predictions entered the example test
    skipped: list[str] = field(default_factory=list)  # seeds whose predictions did not, and why
    unpaired: list[str] = field(default_factory=list)  # seeds not paired at all (other teacher weights), and why

    def to_json(self) -> dict:
        return {"seeds": self.seeds, "n": len(self.seeds), "t_p": self.t_p, "mean_diff": self.mean_diff,
                "example_test": None if not self.example_seeds else
                {"p": self.example_p, "differing_examples": self.differing, "examples": self.examples,
                 "seeds": self.example_seeds, "mean_diff": None if self.interval is None else self.interval[0],
                 "ci95": None if self.interval is None else list(self.interval[1:])},
                "not_paired": self.skipped + self.unpaired}


def compare_paired(row: "TableRow", ref: "TableRow", split: str, domains: list[str], same_teacher: bool = True) -> Paired:
    """Paired t-test on the per-seed averages of the seeds both rows have; the sign-flip test on their test
    predictions, example by example over those seeds. With ``same_teacher``, seeds whose teachers' weights
    differ are not paired; without it (a reference the user chose), rows of different teachers are paired."""
    pairs, unpaired = [], []
    for s, a, b in matched_seeds(row.runs, ref.runs):
        if a.score(split, "average") is None or b.score(split, "average") is None:
            continue
        why = teacher_mismatch(a, b) if same_teacher else ""
        if why:
            unpaired.append(f"seed {s}: {why}")
        else:
            pairs.append((s, a, b))
    out = Paired([s for s, _, _ in pairs], unpaired=unpaired)
    if not pairs:
        return out
    a = [run.score(split, "average") for _, run, _ in pairs]
    b = [r.score(split, "average") for _, _, r in pairs]
    out.t_p, out.mean_diff = paired_t_p(a, b), mean_difference(a, b)
    if split != "test":
        out.skipped = ["predictions are saved for the test split only"]
        return out
    pred, ref_pred, gold, out.example_seeds, out.skipped = prediction_pairs(pairs, domains)
    if out.example_seeds:
        d = correct_count_differences(pred, ref_pred, gold)
        out.example_p, out.examples = sign_flip_p(d), len(d)
        out.differing = sum(1 for x in d if x)
        out.interval = paired_difference_interval(d, len(out.example_seeds))
    return out


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
    paired: Paired | None = None  # None: reference row, teacher, or no reference

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

    def per_seed(self, split: str) -> dict:
        """seed -> average accuracy (%) of that seed's run."""
        return {r.seed: r.score(split, "average") for r in self.runs}

    def paired_cells(self) -> list[str]:
        """The paired t and example-test cells: 'ref', 'n/a' (no reference), blank (no partner seeds or predictions)."""
        if self.role != "student":
            return ["", ""]
        if self.p_note:
            return [self.p_note, self.p_note]
        if self.paired is None:
            return ["n/a", "n/a"]
        if not self.paired.seeds:
            return ["", ""]
        t = f"{format_p(self.paired.t_p)} (n={len(self.paired.seeds)})"
        return [t, example_cell(self.paired)]

    def to_json(self, split: str = "test") -> dict:
        return {
            "label": self.label, "role": self.role, "seeds": self.seeds, "n": len(self.runs),
            "runs": [str(r.path) for r in self.runs], "preset_hash": self.preset_hash,
            "stats": {k: v.to_json() for k, v in self.stats.items()},
            "per_seed_average": {str(s): v for s, v in self.per_seed(split).items()},
            "p_value": self.p_value, "p_note": self.p_note or (None if self.p_value is not None else ("n/a" if self.role == "student" else None)),
            "paired": None if self.paired is None else self.paired.to_json(),
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
    per_seed: bool = False  # writers add the per-seed averages

    @property
    def columns(self) -> list[str]:
        return [*self.domains, "average"]

    def header(self) -> list[str]:
        return ["Method", *[_domain_title(d) for d in self.domains], "Average", *self.extra_columns, "Seeds (n)",
                f"{self.p_label} (Welch)", "paired t p (n)", "example test p (k; diff [95% CI])"]

    def cells(self, row: TableRow) -> list[str]:
        return [
            row.label, *[row.stats[c].text() if c in row.stats else "-" for c in self.columns],
            *[row.extra.get(c, "") for c in self.extra_columns],
            str(len(row.runs)), format_p(row.p_value, row.p_note) if row.role == "student" else "",
            *row.paired_cells(),
        ]

    def to_json(self) -> dict:
        return {
            "title": self.title, "split": self.split, "domains": self.domains, "data_hash": self.data_hash,
            "ttest": TTEST, "paired_ttest": PAIRED_TTEST, "example_test": EXAMPLE_TEST, "sided": "two-sided",
            "std": "sample standard deviation (ddof=1)", "unit": "accuracy (%)",
            "p_column": self.p_label, "notes": self.notes, "rows": [r.to_json(self.split) for r in self.rows],
        }


def example_cell(pr: Paired) -> str:
    """'p (k=K; diff D [lo, hi])': the example test's p, the distinct examples that differ, and the paired
    difference with its 95% interval; blank when no seed's predictions could be paired."""
    if not pr.example_seeds:
        return ""
    cell = f"{format_p(pr.example_p)} (k={pr.differing}"
    if pr.interval is not None:
        mean, lo, hi = pr.interval
        cell += f"; {mean:+.2f} [{lo:+.2f}, {hi:+.2f}]"
    return cell + ")"


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
    rows = []
    for runs in group_runs(records):
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
    """The teacher a student learnt from: its weights' sha256 where the record has it (a teacher copied into
    another run directory is the same teacher), else the teacher's path, else its kind."""
    if r.record.get("teacher_sha256"):
        return "sha256:" + r.record["teacher_sha256"]
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


def transfer_reference(row: TableRow, rows: list[TableRow]) -> TableRow | None:
    """For a row distilled on transfer data: the row of the same configuration without it (same teacher, same
    student, method and settings), the comparison that says what the transfer data bought. None otherwise."""
    if not row.first.uses_transfer:
        return None
    same = row.first.configuration_without_transfer
    cands = [x for x in rows if x.role == "student" and not x.first.uses_transfer
             and _teacher_id(x.first) == _teacher_id(row.first) and x.first.configuration_without_transfer == same]
    return max(cands, key=lambda x: len(x.runs)) if cands else None


def reference_row(row: TableRow, rows: list[TableRow]) -> TableRow | None:
    """The row ``row`` is tested against: its configuration without transfer data where it used some and that
    row is there, else the TinyBERT-KD row distilled from the same teacher."""
    return transfer_reference(row, rows) or tinybert_reference(row, rows)


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


def compare_with(row: TableRow, ref: TableRow, split: str, domains: list[str], same_teacher: bool = True) -> None:
    """Fill ``row``'s Welch p and paired comparison against ``ref``."""
    row.reference = ref.label
    avg, base = row.stats.get("average"), ref.stats.get("average")
    row.p_value = welch_p(avg.values, base.values) if avg and base else None
    row.paired = compare_paired(row, ref, split, domains, same_teacher)


def chosen_reference(rows: list[TableRow], against: str) -> TableRow:
    """The student row ``against`` names: its directory tag (student/<tag>/seed-N) or that directory."""
    students = [r for r in rows if r.role == "student"]
    path = Path(against).expanduser()
    found = [r for r in students if r.first.tag == against
             or (path.exists() and r.first.path.parent.resolve() == path.resolve())]
    if len(found) != 1:
        tags = ", ".join(sorted({r.first.tag for r in students})) or "none"
        what = "no student row" if not found else f"{len(found)} student rows"
        raise HrkdError(f"--against {against}: {what} with that directory tag or directory (tags: {tags})")
    return found[0]


def legend_notes(against: str, same_teacher: bool = True) -> list[str]:
    """The legend naming the three tests (all two-sided)."""
    pairing = ("runs are paired only when their records name the same teacher weights (run.json teacher_sha256)"
               if same_teacher else "runs are paired by seed number and test example, whatever their teachers")
    return [f"p (Welch): {TTEST}, against {against} (ref: that row; n/a: fewer than 2 seeds on a side, no such row, "
            "or constant samples)",
            f"paired t p (n): {PAIRED_TTEST}; n: matched seeds; n/a: fewer than 2 or constant differences",
            f"example test p (k; diff [95% CI]): {EXAMPLE_TEST}; n/a: no example differs",
            "every p-value is two-sided; " + pairing]


def pairing_notes(rows: list[TableRow]) -> list[str]:
    """One line per row whose paired columns are blank or pool fewer seeds than it has in common with its reference."""
    out = []
    for row in rows:
        pr = row.paired
        if pr is None:
            continue
        if pr.unpaired:
            out.append(f"not paired for {row.label}: " + "; ".join(pr.unpaired))
        if not pr.seeds and not pr.unpaired:
            out.append(f"no paired p for {row.label}: no seeds in common with {row.reference} "
                       f"(seeds {_seed_list(row.seeds)} vs {_seed_list(_ref_seeds(row, rows))})")
        elif pr.skipped:
            used = f"seeds {_seed_list(pr.example_seeds)}; " if pr.example_seeds else "blank: "
            out.append(f"example test for {row.label}: {used}" + "; ".join(pr.skipped))
    return out


def _ref_seeds(row: TableRow, rows: list[TableRow]) -> list:
    return next((r.seeds for r in rows if r.label == row.reference), [])


def _seed_list(seeds) -> str:
    return ", ".join(str(s) for s in seeds) or "none"


def require_partners(tables: list[ResultTable]) -> None:
    """For explicitly asked paired output: refuse, in one line, rows that have no seed in common with their reference."""
    lonely = [f"{row.label} (seeds {_seed_list(row.seeds)}) vs {row.reference}"
              + (f": {'; '.join(row.paired.unpaired)}" if row.paired.unpaired else "")
              for t in tables for row in t.rows if row.paired is not None and not row.paired.seeds]
    if lonely:
        raise HrkdError("paired tests need runs with the same seed numbers from the same teacher weights; none in "
                        "common with the reference: " + "; ".join(lonely))


def compare_table(records: list[RunRecord], split: str = "test", title: str | None = None,
                  against: str | None = None) -> ResultTable:
    """Tables 2/3: teacher rows, then student rows with mean±std, marks and p-values vs TinyBERT-KD, or, with
    ``against``, vs that one student row (seed by seed, whichever teacher each row distilled from)."""
    if split not in ("dev", "test"):
        raise HrkdError(f"split {split!r}: choose dev or test")
    if not records:
        raise HrkdError("no run records to compare")
    data_hash = check_same_data(records)
    domains = domains_of(records, split)
    rows = group_rows(records, split, domains)
    chosen = chosen_reference(rows, against) if against else None
    for row in rows:
        if row.role != "student":
            continue
        if chosen is not None:
            if row is chosen:
                row.p_note = "ref"
            else:
                compare_with(row, chosen, split, domains, same_teacher=False)
            continue
        ref = reference_row(row, rows)
        if ref is row:
            row.p_note = "ref"
        elif ref is None:
            row.p_note = "n/a"
        else:
            compare_with(row, ref, split, domains)
    mark_best(rows, [*domains, "average"])
    if chosen is not None:
        legend = legend_notes(f"{chosen.label} (--against)", same_teacher=False)
    else:
        reference = "the TinyBERT-KD row distilled from the same teacher"
        if any(transfer_reference(row, rows) for row in rows if row.role == "student"):
            reference += " (a row distilled on transfer data: the same configuration without it)"
        legend = legend_notes(reference)
    notes = [STD_NOTE, *legend, *pairing_notes(rows),
             "bold: best, underlined: second best among the student rows"]
    p_label = f"p vs {chosen.first.tag}" if chosen is not None else "p vs TinyBERT-KD"
    return ResultTable(title or f"Accuracy (%) on {split}", split, domains, rows, data_hash, notes=notes, p_label=p_label)
