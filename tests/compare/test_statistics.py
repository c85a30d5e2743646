"""Each statistic against a hand-derived number and scipy on the same numbers."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from hrkd_cli.compare.statistics import discordant_counts, mcnemar_exact_p, mean_difference, paired_t_p, welch_p

# Per-seed average accuracies (%) of two rows over seeds 1-3.
A = [87.0, 88.0, 90.0]
B = [86.0, 86.5, 88.0]


def test_paired_t_by_hand_and_scipy():
    # d = [1.0, 1.5, 2.0]: mean 1.5, sd 0.5, t = 1.5 / (0.5 / sqrt 3) = 3 sqrt 3 on 2 df.
    # With 2 df, P(|T| > t) = 1 - t / sqrt(2 + t^2) = 1 - 3 sqrt 3 / sqrt 29.
    by_hand = 1 - 3 * math.sqrt(3) / math.sqrt(29)
    assert by_hand == pytest.approx(0.035099, abs=1e-6)
    assert paired_t_p(A, B) == pytest.approx(by_hand, rel=1e-9)
    assert paired_t_p(A, B) == pytest.approx(stats.ttest_rel(A, B).pvalue, rel=1e-12)
    assert mean_difference(A, B) == pytest.approx(1.5)
    # the same numbers unpaired: the seed-to-seed spread swamps the difference
    assert welch_p(A, B) == pytest.approx(stats.ttest_ind(A, B, equal_var=False).pvalue)
    assert welch_p(A, B) > 0.1 > paired_t_p(A, B)


def test_paired_t_undefined_cases():
    assert paired_t_p([1.0], [2.0]) is None  # one pair: no variance
    assert paired_t_p([1.0, 2.0, 3.0], [0.0, 1.0, 2.0]) is None  # constant differences
    assert paired_t_p([1.0, 2.0], [1.0, 2.0]) is None  # identical runs
    with pytest.raises(ValueError):
        paired_t_p([1.0, 2.0], [1.0])


def test_mcnemar_exact_by_hand_and_scipy():
    # b = 8, c = 2: p = 2 * (C(10,0) + C(10,1) + C(10,2)) / 2^10 = 2 * 56 / 1024
    assert mcnemar_exact_p(8, 2) == 0.109375 == 2 * 56 / 1024
    assert mcnemar_exact_p(2, 8) == 0.109375
    assert mcnemar_exact_p(8, 2) == pytest.approx(stats.binomtest(8, 10, 0.5).pvalue)
    assert mcnemar_exact_p(5, 5) == 1.0  # capped at 1
    assert mcnemar_exact_p(0, 0) == 1.0  # no discordant pair: no evidence either way
    assert mcnemar_exact_p(10, 0) == pytest.approx(2 / 1024)


def test_discordant_counts():
    gold = [1, 1, 1, 1, 0, 0]
    a = [1, 1, 0, 0, 0, 1]  # right on 0, 1, 4
    b = [1, 0, 1, 0, 1, 1]  # right on 0, 2
    assert discordant_counts(a, b, gold) == (2, 1)  # only a: 1, 4; only b: 2
