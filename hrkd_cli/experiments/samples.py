"""The points of the few-shot study (HRKD Figure 2; docs/usage.md): a share of each domain's training split, a
count per domain, or one count for each domain, and the results directory of each. Read by `hrkd fewshot`
(fewshot.py) and by its read-back (fewshot_results.py, report.py), which need no training code."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def rate_name(rate: float) -> str:
    return f"{rate:g}"


@dataclass(frozen=True)
class Sample:
    """One point of the few-shot study: ``percent`` of each domain's training split, ``per_domain`` examples of
    every domain, or ``counts`` ((domain, examples) pairs: each domain's own absolute training size)."""

    percent: float | None = None
    per_domain: int | None = None
    counts: tuple[tuple[str, int], ...] | None = None

    def __post_init__(self):
        if sum(x is not None for x in (self.percent, self.per_domain, self.counts)) != 1:
            raise ValueError("a Sample is a percent, a count per domain, or one count for each domain")

    @property
    def label(self) -> str:
        if self.counts is not None:
            return "+".join(f"{d}:{n}" for d, n in self.counts)
        return f"{rate_name(self.percent)}%" if self.per_domain is None else f"{self.per_domain}/domain"

    @property
    def dirname(self) -> str:
        if self.counts is not None:
            return "count-" + "-".join(f"{d}{n}" for d, n in self.counts)
        return f"rate-{rate_name(self.percent)}" if self.per_domain is None else f"count-{self.per_domain}"

    def sort_key(self) -> tuple:
        if self.counts is not None:
            return (2, sum(n for _, n in self.counts), self.label)
        return (self.per_domain is not None, self.per_domain if self.per_domain is not None else self.percent, "")


def as_sample(point) -> Sample:
    """A Sample; a plain number is a rate in percent (as ``--rates`` gives them)."""
    return point if isinstance(point, Sample) else Sample(percent=float(point))


def rate_dir(run_dir: Path | str, rate) -> Path:
    """The results directory of one point (a rate in percent, or a Sample)."""
    return Path(run_dir) / "fewshot" / as_sample(rate).dirname
