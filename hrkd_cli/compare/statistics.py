"""The statistics of the tables, on accuracies in percent; each test one function with its formula.

- cells: mean over seeds ± sample standard deviation (ddof = 1); one seed gives the bare value;
- Welch: unequal-variance two-sided t-test of two rows' per-seed average accuracies;
- paired t: two-sided t-test on the per-seed differences over the seeds both rows have;
- McNemar: exact two-sided test on the examples where exactly one of two models is right, pooled
  over the matched seeds' per-example test predictions.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

MEAN_DIGITS, STD_DIGITS = 1, 2

TTEST = "Welch's unequal-variance two-sided t-test (scipy.stats.ttest_ind, equal_var=False) on per-seed average accuracy"
PAIRED_TTEST = ("paired two-sided t-test (scipy.stats.ttest_rel) on per-seed average accuracy over the seeds both rows "
                "have (matched by seed number: same batch order and student initialisation)")
MCNEMAR = ("McNemar's exact two-sided test (binomial on the discordant pairs, scipy.stats.binom) on the per-example test "
           "predictions pooled over the matched seeds and domains; b: examples this row gets right and the reference "
           "wrong, c: the reverse. Pooling treats each (seed, example) as a pair: it asks whether these trained models "
           "differ on this test set, not whether another seed would")
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


def _finite(p: float) -> float | None:
    return None if math.isnan(p) else p


def welch_p(a: list[float], b: list[float]) -> float | None:
    """Two-sided Welch t-test: t = (mean_a - mean_b) / sqrt(s_a²/n_a + s_b²/n_b), Welch-Satterthwaite degrees of
    freedom. None when either side has fewer than 2 values or the test is undefined (constant samples)."""
    if len(a) < 2 or len(b) < 2:
        return None
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant samples: the test is undefined (nan -> n/a)
        return _finite(float(stats.ttest_ind(a, b, equal_var=False).pvalue))


def paired_t_p(a: list[float], b: list[float]) -> float | None:
    """Two-sided paired t-test on matched values a_i, b_i: with d_i = a_i - b_i,
    t = mean(d) / (sd(d) / sqrt(n)) (sd with ddof=1) on n - 1 degrees of freedom, p = 2 P(T > |t|).
    None with fewer than 2 pairs or when every difference is the same (sd(d) = 0)."""
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    if len(a) < 2:
        return None
    d = [x - y for x, y in zip(a, b)]
    if max(d) - min(d) <= 1e-9 * (1.0 + max(abs(x) for x in d)):
        return None  # sd(d) = 0 up to rounding: t is 0/0 or infinite, scipy would answer nan or p = 0
    from scipy import stats

    return _finite(float(stats.ttest_rel(a, b).pvalue))


def mean_difference(a: list[float], b: list[float]) -> float | None:
    """mean(a_i - b_i) over matched values: the quantity the paired t-test tests against 0."""
    return sum(x - y for x, y in zip(a, b)) / len(a) if a else None


def discordant_counts(pred: list[int], ref_pred: list[int], gold: list[int]) -> tuple[int, int]:
    """(b, c) of McNemar's 2x2 table: b = #{i: pred_i = gold_i != ref_pred_i} (only this model right),
    c = #{i: ref_pred_i = gold_i != pred_i} (only the reference right)."""
    b = sum(p == y and r != y for p, r, y in zip(pred, ref_pred, gold))
    c = sum(r == y and p != y for p, r, y in zip(pred, ref_pred, gold))
    return b, c


def mcnemar_exact_p(b: int, c: int) -> float:
    """McNemar's exact two-sided test: under H0 each of the n = b + c discordant pairs falls either way with
    probability 1/2, so p = min(1, 2 * sum_{k=0}^{min(b,c)} C(n, k) / 2^n). No discordant pair gives p = 1."""
    n = b + c
    if n == 0:
        return 1.0
    from scipy import stats

    return min(1.0, 2.0 * float(stats.binom.cdf(min(b, c), n, 0.5)))


def format_p(p: float | None, note: str = "") -> str:
    if note:
        return note
    if p is None:
        return "n/a"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"
