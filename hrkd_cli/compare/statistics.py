"""The statistics of the tables, on accuracies in percent; each test one function with its formula.

- cells: mean over seeds ± sample standard deviation (ddof = 1); one seed gives the bare value;
- Welch: unequal-variance two-sided t-test of two rows' per-seed average accuracies;
- paired t: two-sided t-test on the per-seed differences over the seeds both rows have;
- example test: an exact two-sided sign-flip permutation test whose unit is the test example: each
  example's number of matched seeds that get it right under one row minus under the other. The same
  test examples recur in every seed, so (seed, example) pairs are not independent and pooling them (as
  McNemar over seeds would) overstates the evidence. With one seed it is McNemar's exact test.

Every p-value here is two-sided. A test that is undefined on its inputs (too few values, constant
samples) gives None, shown as n/a, never 0.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

MEAN_DIGITS, STD_DIGITS = 1, 2

TTEST = "Welch's unequal-variance two-sided t-test (scipy.stats.ttest_ind, equal_var=False) on per-seed average accuracy"
PAIRED_TTEST = ("paired two-sided t-test (scipy.stats.ttest_rel) on per-seed average accuracy over the seeds both rows "
                "have (matched by seed number: same batch order and student initialisation)")
EXAMPLE_TEST = ("exact two-sided sign-flip permutation test whose unit is the test example: d_i = (matched seeds right on "
                "example i under this row) - (under the reference), T = sum_i d_i, p = P(|T'| >= |T|) over all 2^k sign "
                "flips of the k examples with d_i != 0 (computed exactly, not sampled); with one seed it is McNemar's "
                "exact test. k: distinct test examples the rows differ on; diff: mean paired difference in accuracy "
                "(points) with a 95% interval from the examples' spread (normal approximation)")
STD_NOTE = "cells: mean over seeds ± sample standard deviation (ddof=1), accuracy in %"


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


def _scipy_stats():
    """scipy.stats, for the tests below."""
    # lazy: ~0.7 s at start-up; `eval --compare` and `hrkd report` on single-seed rows run no test
    from scipy import stats

    return stats


def _finite(p: float) -> float | None:
    return None if math.isnan(p) else p


def welch_p(a: list[float], b: list[float]) -> float | None:
    """Two-sided Welch t-test: t = (mean_a - mean_b) / sqrt(s_a²/n_a + s_b²/n_b), Welch-Satterthwaite degrees of
    freedom. None when either side has fewer than 2 values or both samples are constant (s_a = s_b = 0: t is 0/0
    or infinite, and scipy would answer nan or p = 0)."""
    if len(a) < 2 or len(b) < 2:
        return None
    if _constant(a) and _constant(b):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _finite(float(_scipy_stats().ttest_ind(a, b, equal_var=False).pvalue))


def _constant(x: list[float]) -> bool:
    return max(x) - min(x) <= 1e-9 * (1.0 + max(abs(v) for v in x))


def paired_t_p(a: list[float], b: list[float]) -> float | None:
    """Two-sided paired t-test on matched values a_i, b_i: with d_i = a_i - b_i,
    t = mean(d) / (sd(d) / sqrt(n)) (sd with ddof=1) on n - 1 degrees of freedom, p = 2 P(T > |t|).
    None with fewer than 2 pairs or when every difference is the same (sd(d) = 0)."""
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    if len(a) < 2:
        return None
    d = [x - y for x, y in zip(a, b)]
    if _constant(d):
        return None  # sd(d) = 0 up to rounding: t is 0/0 or infinite, scipy would answer nan or p = 0
    return _finite(float(_scipy_stats().ttest_rel(a, b).pvalue))


def mean_difference(a: list[float], b: list[float]) -> float | None:
    """mean(a_i - b_i) over matched values: the quantity the paired t-test tests against 0."""
    return sum(x - y for x, y in zip(a, b)) / len(a) if a else None


def correct_count_differences(pred: list[list[int]], ref_pred: list[list[int]], gold: list[int]) -> list[int]:
    """d_i = sum_s [pred_s,i = gold_i] - sum_s [ref_pred_s,i = gold_i] over the matched seeds s: one integer in
    [-S, S] per test example. ``pred`` and ``ref_pred`` hold one list per seed, each in the order of ``gold``."""
    if len(pred) != len(ref_pred) or any(len(p) != len(gold) for p in [*pred, *ref_pred]):
        raise ValueError("every seed's predictions must cover the same examples as gold, for both rows")
    return [sum(p[i] == y for p in pred) - sum(r[i] == y for r in ref_pred) for i, y in enumerate(gold)]


def sign_flip_p(d: list[int]) -> float | None:
    """Exact two-sided sign-flip test of H0: each example's d_i is as likely to be -d_i (the two rows are
    exchangeable on every example). T = sum_i d_i; under H0, T' = sum_i s_i |d_i| with independent fair signs
    s_i, and p = P(|T'| >= |T|). The examples with |d_i| = m contribute m (2 J_m - k_m), J_m ~ Binomial(k_m, 1/2),
    so the null distribution is the convolution of one binomial per magnitude: exact, with no sampling. None when
    no example differs (k = 0: no evidence either way, reported n/a). With d_i in {-1, 0, 1} (one seed) this is
    McNemar's exact test."""
    nonzero = [abs(x) for x in d if x]
    if not nonzero:
        return None
    binom = _scipy_stats().binom
    dist = {0: 1.0}  # value of T' -> probability
    for m in sorted(set(nonzero)):
        k = nonzero.count(m)
        pmf = binom.pmf(range(k + 1), k, 0.5)
        step = {m * (2 * j - k): float(pmf[j]) for j in range(k + 1)}
        merged: dict[int, float] = {}
        for t, pt in dist.items():
            for v, pv in step.items():
                merged[t + v] = merged.get(t + v, 0.0) + pt * pv
        dist = merged
    observed = abs(sum(d))
    return min(1.0, sum(p for t, p in dist.items() if abs(t) >= observed))


def paired_difference_interval(d: list[int], seeds: int, z: float = 1.959963984540054) -> tuple[float, float, float] | None:
    """Mean paired difference in accuracy (points) over the examples, mean_i d_i / S * 100, and its 95% interval
    mean ± z * sd / sqrt(n) (sd of the examples' d_i / S, ddof = 1; normal approximation, the example as the unit).
    None with fewer than 2 examples."""
    n = len(d)
    if n < 2 or seeds < 1:
        return None
    x = [v / seeds for v in d]
    mean = sum(x) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in x) / (n - 1))
    half = z * sd / math.sqrt(n)
    return 100 * mean, 100 * (mean - half), 100 * (mean + half)


def format_p(p: float | None, note: str = "") -> str:
    if note:
        return note
    if p is None:
        return "n/a"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"
