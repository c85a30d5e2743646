"""The few-shot study's results (HRKD Figure 2), read back from the runs that `hrkd fewshot` made.

Per point the baseline is ``BERT-single -(TinyBERT-KD)-> BERT_S`` (method
``tinybert``), and the reported number is the relative improvement of a
method's mean test average over it: 100 * (acc_method - acc_base) / acc_base,
with a 90 % confidence interval (:func:`improvement_interval`).
HRKD always; Meta-KD where its runs exist (``--meta-kd`` trains them).
A point where a teacher is within NEAR_CHANCE_POINTS of the majority-class
rate is flagged: its students' differences are noise.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table

from hrkd_cli.compare.records import check_same_data, collect, domains_of, results_records
from hrkd_cli.compare.statistics import STD_NOTE, TTEST, format_p, welch_p
from hrkd_cli.compare.tables import group_rows
from hrkd_cli.errors import HrkdError
from hrkd_cli.fsio import read_json_if_present, write_png_atomic
from hrkd_cli.experiments.samples import Sample, as_sample, rate_dir
from hrkd_cli.vocabulary import TEACHER_ROW_NAMES

BASELINE = "BERT-single -(TinyBERT-KD)-> BERT_S"
# A teacher within this many points of the majority-class rate has learnt (almost) nothing from the sample:
# the students' differences at that rate are noise, and the table says so.
NEAR_CHANCE_POINTS = 5.0
METHODS = {"hrkd": "HRKD", "meta-kd": "Meta-KD"}
# method -> the teacher kind its paper row uses (HRKD Figure 2 compares these rows)
ROW_TEACHER = {"tinybert": "single", "hrkd": "multi-domain", "meta-kd": "meta"}


def improvement_interval(a: list[float], b: list[float], level: float = 0.90) -> tuple[float, float] | None:
    """Confidence interval (%) of the relative improvement 100 * (mean(a) - mean(b)) / mean(b).

    A Welch t-interval for the difference of the means over seeds (Welch-Satterthwaite degrees of freedom),
    divided by the baseline mean taken as fixed. None with fewer than 2 values on a side or no spread."""
    if len(a) < 2 or len(b) < 2:
        return None
    # lazy: scipy.stats costs ~0.8 s at start-up (tools/startup_time.py); `hrkd report` on results without
    # few-shot points of 2+ seeds a side needs none
    from scipy import stats

    ma, mb = sum(a) / len(a), sum(b) / len(b)
    va = sum((x - ma) ** 2 for x in a) / (len(a) - 1) / len(a)
    vb = sum((x - mb) ** 2 for x in b) / (len(b) - 1) / len(b)
    if va + vb == 0 or not mb:
        return None
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(stats.t.ppf(0.5 + level / 2, df)) * math.sqrt(va + vb)
    return 100.0 * (ma - mb - half) / mb, 100.0 * (ma - mb + half) / mb


CI_NOTE = ("90% CI: Welch t-interval of the difference between the mean average accuracies over seeds (method minus "
           "baseline), divided by the baseline mean (whose own uncertainty it leaves out); n/a with fewer than 2 seeds a side")



@dataclass
class RatePoint:
    rate: float | None  # percent of each training split; None for a count point
    data_hash: str
    train_counts: dict[str, int]
    rows: dict[str, object] = field(default_factory=dict)  # "baseline" | method -> compare.TableRow
    improvement: dict[str, float] = field(default_factory=dict)  # method -> % over baseline
    p_value: dict[str, float | None] = field(default_factory=dict)
    improvement_ci: dict[str, tuple[float, float] | None] = field(default_factory=dict)  # method -> 90% CI (%)
    teacher_average: dict[str, float] = field(default_factory=dict)  # "baseline" | method -> teacher's accuracy (%)
    chance: float | None = None  # majority-class accuracy (%) of the split, averaged over domains
    per_domain: int | None = None  # training examples per domain, for a count point
    counts: tuple[tuple[str, int], ...] | None = None  # each domain's own count, for a per-domain count point

    @property
    def sample(self) -> Sample:
        if self.counts is not None:
            return Sample(counts=self.counts)
        return Sample(percent=self.rate) if self.per_domain is None else Sample(per_domain=self.per_domain)

    @property
    def label(self) -> str:
        return self.sample.label

    @property
    def near_chance(self) -> bool:
        """True when a teacher at this rate is within NEAR_CHANCE_POINTS of the majority-class rate."""
        return self.chance is not None and any(a - self.chance < NEAR_CHANCE_POINTS for a in self.teacher_average.values())

    def to_json(self) -> dict:
        return {
            "rate_percent": self.rate, "per_domain": self.per_domain,
            "counts": None if self.counts is None else dict(self.counts), "data_hash": self.data_hash,
            "train_counts": self.train_counts, "rows": {k: v.to_json() for k, v in self.rows.items()},
            "improvement_percent": self.improvement, "p_value": self.p_value,
            "improvement_ci90_percent": {m: list(ci) if ci else None for m, ci in self.improvement_ci.items()},
            "teacher_average": self.teacher_average, "chance": self.chance, "near_chance": self.near_chance,
        }


@dataclass
class FewshotResult:
    points: list[RatePoint]
    split: str = "test"

    @property
    def methods(self) -> list[str]:
        return [m for m in METHODS if any(m in p.improvement for p in self.points)]

    def to_json(self) -> dict:
        return {"split": self.split, "baseline": BASELINE, "ttest": TTEST,
                "improvement": "100 * (mean average accuracy of the method - that of the baseline) / that of the baseline",
                "improvement_ci90": CI_NOTE,
                "points": [p.to_json() for p in self.points]}

    def header(self) -> list[str]:
        cols = ["Sample", "Train/domain", "Teachers avg", "Baseline avg"]
        for m in self.methods:
            cols += [f"{METHODS[m]} avg", f"{METHODS[m]} impr. (%)", f"{METHODS[m]} 90% CI", f"{METHODS[m]} p"]
        return cols

    def cells(self, pt: RatePoint) -> list[str]:
        counts = sorted(set(pt.train_counts.values()))
        base = pt.rows.get("baseline")
        teachers = " / ".join(f"{pt.teacher_average[k]:.1f}" if k in pt.teacher_average else "-"
                              for k in ["baseline"] + self.methods)
        cells = [pt.label + (" *" if pt.near_chance else ""),
                 "-".join(str(c) for c in (counts[:1] + counts[-1:] if len(counts) > 1 else counts)) or "?",
                 teachers, base.stats["average"].text() if base is not None and "average" in base.stats else "-"]
        for m in self.methods:
            row = pt.rows.get(m)
            cells += [row.stats["average"].text() if row is not None and "average" in row.stats else "-",
                      f"{pt.improvement[m]:+.1f}" if m in pt.improvement else "-",
                      _ci_text(pt.improvement_ci.get(m)) if m in pt.improvement else "-",
                      format_p(pt.p_value.get(m)) if m in pt.improvement else "-"]
        return cells

    def rich_table(self) -> Table:
        t = Table(title=f"Few-shot (HRKD Figure 2): improvement over {BASELINE} ({self.split} average, %)",
                  title_justify="left")
        for i, h in enumerate(self.header()):
            t.add_column(h, justify="left" if i == 0 else "right")
        for pt in self.points:
            t.add_row(*self.cells(pt))
        t.caption, t.caption_justify = " ".join(self.notes()), "left"
        return t

    def notes(self) -> list[str]:
        """Footnotes a reader needs before trusting an improvement rate."""
        teachers = ", ".join(TEACHER_ROW_NAMES[ROW_TEACHER[m]] for m in ["tinybert"] + self.methods)
        notes = [f"Teachers avg: {self.split} average of the teachers ({teachers}), each trained on the sample.",
                 CI_NOTE + "."]
        flagged = [p for p in self.points if p.near_chance]
        if flagged:
            chance = ", ".join(f"{p.label}: {p.chance:.1f}" for p in flagged)
            notes.append(f"* a teacher is within {NEAR_CHANCE_POINTS:g} points of the majority-class rate ({chance}): "
                         "it learnt (almost) nothing from so small a sample, so the improvement at that rate is noise.")
        return notes

    def to_markdown(self, heading: str = "###") -> str:
        lines = [f"{heading} Few-shot learning (HRKD Figure 2)", ""] if heading else []
        h = self.header()
        lines.append("| " + " | ".join(h) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(h) - 1)) + "|")
        for pt in self.points:
            lines.append("| " + " | ".join(self.cells(pt)) + " |")
        lines += ["", f"- baseline: `{BASELINE}` trained on the same sample; improvement = 100 × (method − baseline) / baseline, "
                      f"on mean {self.split} average accuracy",
                  f"- {STD_NOTE}", f"- p: {TTEST}, method vs baseline",
                  *[f"- {n}" for n in self.notes()],
                  "- data manifest hash per sample: " + ", ".join(f"{p.label} `{p.data_hash[:16]}`" for p in self.points)]
        return "\n".join(lines) + "\n"


def _ci_text(ci: tuple[float, float] | None) -> str:
    return "n/a" if ci is None else f"[{ci[0]:+.1f}, {ci[1]:+.1f}]"


def _pick(rows, method: str, tag: str | None = None):
    """The row of ``method`` distilled from its paper teacher; with several configurations, the one in
    student/``tag`` (default: the method's plain one), then the one with most seeds."""
    cands = [r for r in rows if r.role == "student" and r.first.method == method and not r.first.drop
             and r.first.teacher_kind == ROW_TEACHER[method] and not (r.first.preset.get("teacher") or {}).get("exclude_domain")]
    if not cands:
        return None
    cands.sort(key=lambda r: (r.first.tag != (tag or method), -len(r.runs),
                              -max(Path(x.path / "run.json").stat().st_mtime for x in r.runs)))
    return cands[0]


def rate_point(rate, records, split: str = "test", tags: dict[str, str] | None = None) -> RatePoint | None:
    """Baseline, HRKD and Meta-KD rows of one point's records (a rate in percent, or a Sample); None without a
    baseline. ``tags`` (method -> student/<tag>) picks a configuration where a point holds several."""
    tags = tags or {}
    students = [r for r in records if r.role == "student"]
    if not students:
        return None
    data_hash = check_same_data(students)
    rows = group_rows(students, split, domains_of(students, split))
    base = _pick(rows, "tinybert", tags.get("tinybert"))
    if base is None:
        return None
    counts = {}
    manifest = _manifest_for(base, data_hash)
    if manifest:
        counts = {d: c["train"]["total"] for d, c in manifest.get("counts", {}).items()}
    sample = as_sample(rate)
    pt = RatePoint(sample.percent, data_hash, counts, rows={"baseline": base}, chance=majority_rate(manifest, split),
                   per_domain=sample.per_domain, counts=sample.counts)
    b = base.stats.get("average")
    if (t := _teacher_average(base, split)) is not None:
        pt.teacher_average["baseline"] = t
    for m in METHODS:
        row = _pick(rows, m, tags.get(m))
        if row is None or b is None or "average" not in row.stats or not b.mean:
            continue
        pt.rows[m] = row
        if (t := _teacher_average(row, split)) is not None:
            pt.teacher_average[m] = t
        a = row.stats["average"]
        pt.improvement[m] = 100.0 * (a.mean - b.mean) / b.mean
        pt.p_value[m] = welch_p(a.values, b.values)
        pt.improvement_ci[m] = improvement_interval(a.values, b.values)
    return pt


def majority_rate(manifest: dict | None, split: str) -> float | None:
    """Accuracy (%) of always predicting each domain's most frequent label on ``split``, averaged over domains."""
    rates = []
    for counts in ((manifest or {}).get("counts") or {}).values():
        c = counts.get(split) or {}
        total = c.get("total") or 0
        labels = [v for k, v in c.items() if k != "total"]
        if total and labels:
            rates.append(100.0 * max(labels) / total)
    return sum(rates) / len(rates) if rates else None


def _teacher_average(row, split: str) -> float | None:
    """The ``split`` average (%) of the teacher a student row was distilled from, from its run.json."""
    teacher = row.first.record.get("teacher")
    if not teacher:
        return None
    # The record holds the path as the run saw it (often relative to where it ran); the layout
    # <results>/student/<tag>/seed-N beside <results>/teacher/<kind> finds it from anywhere.
    for cand in (Path(teacher), row.first.path.parents[2] / "teacher" / Path(teacher).name):
        record = read_json_if_present(cand / "run.json")
        if record is not None:
            avg = (record.get(split) or {}).get("average")
            return 100.0 * avg if isinstance(avg, (int, float)) else None
    return None


def _manifest_for(row, data_hash: str) -> dict | None:
    run_dir = (row.first.preset or {}).get("run_dir")
    for cand in [row.first.path.parents[2] / "data" / "manifest.json"] + ([Path(run_dir) / "data" / "manifest.json"] if run_dir else []):
        manifest = read_json_if_present(cand)
        if manifest is not None and manifest.get("hash") == data_hash:
            return manifest
    return None


def sample_dirs(results_dir: Path) -> list[tuple[Sample, Path]]:
    """The rate-<r> and count-<N> directories under <results_dir>/fewshot: rates ascending, then counts."""
    found = [(Sample(percent=r), d) for r, d in rate_dirs(results_dir)]
    for d in (Path(results_dir) / "fewshot").glob("count-*"):
        if not d.is_dir():
            continue
        m = re.fullmatch(r"count-([0-9]+)", d.name)
        if m and int(m.group(1)) > 0:
            found.append((Sample(per_domain=int(m.group(1))), d))
        elif (counts := _recorded_counts(d)) is not None:
            found.append((Sample(counts=counts), d))
    return sorted(found, key=lambda item: item[0].sort_key())


def _recorded_counts(point_dir: Path) -> tuple[tuple[str, int], ...] | None:
    """A per-domain count point's counts, as its runs recorded them (data.sample_counts of any run.json in it)."""
    for record_file in sorted(point_dir.glob("*/*/run.json")) + sorted(point_dir.glob("student/*/seed-*/run.json")):
        record = read_json_if_present(record_file)
        counts = ((record or {}).get("preset") or {}).get("data", {}).get("sample_counts")
        if counts:
            return tuple((str(d), int(n)) for d, n in counts.items())
    return None


def rate_dirs(results_dir: Path) -> list[tuple[float, Path]]:
    """The rate-<r> directories under <results_dir>/fewshot, by rate (count-<N> ones: sample_dirs)."""
    found = []
    for d in (Path(results_dir) / "fewshot").glob("rate-*"):
        m = re.fullmatch(r"rate-([0-9.]+)", d.name)
        if m and d.is_dir():
            try:
                found.append((float(m.group(1)), d))
            except ValueError:
                continue
    return sorted(found)


def fewshot_results(results_dir: Path, rates: list | None = None, split: str = "test",
                    runs: dict | None = None, tags: dict[str, str] | None = None) -> FewshotResult:
    """Figure 2's numbers from <results_dir>/fewshot/{rate,count}-*/ (or from the run directories of one call).

    ``rates`` and the keys of ``runs`` are points: rates in percent or Samples. ``tags`` (method ->
    student/<tag>) picks the configuration a `fewshot` call ran where a point holds several (rate_point)."""

    points = []
    if runs is not None:
        order = sorted(runs, key=lambda r: as_sample(r).sort_key())
        items = [(r, collect([p for paths in runs[r].values() for p in paths])) for r in order]
        # Meta-KD runs that exist from earlier calls count too ("where available").
        for i, (r, recs) in enumerate(items):
            extra = [x for x in results_records(rate_dir(results_dir, r)) if x.method == "meta-kd"]
            known = {x.path.resolve() for x in recs}
            items[i] = (r, recs + [x for x in extra if x.path.resolve() not in known])
    else:
        wanted = None if rates is None else {as_sample(r) for r in rates}
        items = [(s, results_records(d)) for s, d in sample_dirs(results_dir) if wanted is None or s in wanted]
    for rate, recs in items:
        pt = rate_point(rate, recs, split, tags)
        if pt is not None:
            points.append(pt)
    return FewshotResult(points, split)


def plot_fewshot(result: FewshotResult, path: Path) -> Path:
    """Grouped bars of the improvement rate per sample rate (HRKD Figure 2), written atomically as PNG."""
    if not result.points:
        raise HrkdError("--plot: no few-shot results to draw")
    methods = result.methods
    if not methods:
        raise HrkdError("--plot: no rate has both the baseline and an HRKD or Meta-KD run")
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise HrkdError(f"--plot {path}: the figure is written as PNG; give a .png path")
    colors = {"hrkd": "#d62728", "meta-kd": "#1f77b4"}
    n = len(methods)
    width = 0.8 / n
    xs = range(len(result.points))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.4 * len(result.points) + 2.5, 3.4))
    for i, m in enumerate(methods):
        vals = [pt.improvement.get(m, float("nan")) for pt in result.points]
        pos = [x - 0.4 + width * (i + 0.5) for x in xs]
        cis = [pt.improvement_ci.get(m) for pt in result.points]
        yerr = [[v - ci[0] if ci else 0.0 for v, ci in zip(vals, cis)], [ci[1] - v if ci else 0.0 for v, ci in zip(vals, cis)]]
        bars = ax.bar(pos, vals, width, label=METHODS[m], color=colors.get(m),
                      yerr=yerr if any(cis) else None, capsize=3, error_kw={"elinewidth": 0.8})
        for b, v in zip(bars, vals):
            if not math.isnan(v):
                ax.annotate(f"{v:.1f}", (b.get_x() + b.get_width() / 2, v), ha="center",
                            va="bottom" if v >= 0 else "top", fontsize=8)
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xticks(list(xs), [pt.label + (" *" if pt.near_chance else "") for pt in result.points])
    near = any(pt.near_chance for pt in result.points)
    ax.set_xlabel("sample of the training data" + ("  (* teacher near chance: noise)" if near else ""))
    ax.set_ylabel("improvement rate (%), 90% CI" if any(pt.improvement_ci.get(m) for pt in result.points for m in methods)
                  else "improvement rate (%)")
    ax.set_title("Few-shot: improvement over BERT-single -(TinyBERT-KD)-> BERT_S", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()

    try:
        write_png_atomic(path, fig)
    finally:
        plt.close(fig)
    return path


def _pyplot():
    """matplotlib.pyplot drawing to files (the Agg backend, no display)."""
    # lazy: matplotlib.pyplot costs ~0.45 s at start-up (tools/startup_time.py); only a figure needs it
    import matplotlib

    matplotlib.use("Agg")
    # lazy: as above
    import matplotlib.pyplot as plt

    return plt
