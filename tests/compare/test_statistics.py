"""Each statistic against a hand-derived number and scipy on the same numbers."""

from __future__ import annotations

import math

import pytest
from scipy import stats

import itertools

from hrkd_cli.compare.statistics import (correct_count_differences, mean_difference, paired_difference_interval,
                                         paired_t_p, sign_flip_p, welch_p)

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


def test_welch_is_undefined_not_zero_for_constant_samples():
    assert welch_p([87.0, 87.0, 87.0], [86.0, 86.0, 86.0]) is None  # scipy answers p = 0 here
    assert welch_p([87.0, 87.0], [86.0, 86.5]) is not None  # one constant side is a defined test
    assert welch_p([87.0], [86.0, 86.5]) is None


def brute_force_sign_flip(d):
    """All 2^k sign flips of the nonzero d_i, counted (the definition the exact computation must match)."""
    nz = [x for x in d if x]
    t = abs(sum(d))
    flips = [abs(sum(s * x for s, x in zip(signs, nz))) >= t for signs in itertools.product((1, -1), repeat=len(nz))]
    return sum(flips) / len(flips)


def test_the_same_example_discordant_in_every_seed_counts_once():
    # 3 seeds, gold all 1. Example 0: A right and B wrong in every seed (d = +3); example 1: only A right in
    # seed 1 (d = +1); example 2: only B right in seed 2 (d = -1); examples 3-5 right under both.
    gold = [1] * 6
    a = [[1, 1, 1, 1, 1, 1], [1, 0, 0, 1, 1, 1], [1, 0, 1, 1, 1, 1]]
    b = [[0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]]
    d = correct_count_differences(a, b, gold)
    assert d == [3, 1, -1, 0, 0, 0]
    # By hand: T = 3; T' = +-3 +-1 +-1 takes 5, 3, 3, 1, -1, -3, -3, -5 with probability 1/8 each; |T'| >= 3 in 6.
    assert sign_flip_p(d) == pytest.approx(6 / 8)
    # Pooling (seed, example) pairs as McNemar would: b = 4, c = 1, p = 2 * 6 / 32 = 0.375, twice as strong.
    assert stats.binomtest(4, 5, 0.5).pvalue == pytest.approx(0.375)
    # Two examples discordant in all three seeds: T = 6, T' in {6, 0, 0, -6}: p = 1/2 (pooled McNemar: 6/0, p 1/32).
    assert sign_flip_p([3, 3, 0]) == pytest.approx(0.5)


def test_sign_flip_is_exact_against_brute_force_and_mcnemar_with_one_seed():
    for d in ([2, -1, 1, 3, 0, -2, 1], [1, 1, 1, -1, 2], [-3, -3, -1, 2, 0, 0, 1, 1]):
        assert sign_flip_p(d) == pytest.approx(brute_force_sign_flip(d), abs=1e-12)
    # one seed: d in {-1, 0, 1}, b = 8 (d = +1), c = 2: McNemar's exact p = 2 * 56 / 1024
    d = [1] * 8 + [-1] * 2 + [0] * 5
    assert sign_flip_p(d) == pytest.approx(0.109375, abs=1e-12)
    assert sign_flip_p(d) == pytest.approx(stats.binomtest(8, 10, 0.5).pvalue)
    assert sign_flip_p([1] * 5 + [-1] * 5) == pytest.approx(1.0)
    assert sign_flip_p([0, 0, 0]) is None  # no example differs: n/a, not 0 or 1


def test_the_paired_difference_interval_by_hand():
    # 2 seeds, d = [2, 0, 0, -1]: per-example differences 1, 0, 0, -0.5; mean 0.125 (12.5 points);
    # interval: mean +- 1.96 * sd / sqrt(4), sd with ddof = 1.
    x = [1.0, 0.0, 0.0, -0.5]
    mean = sum(x) / 4
    sd = math.sqrt(sum((v - mean) ** 2 for v in x) / 3)
    got = paired_difference_interval([2, 0, 0, -1], seeds=2)
    assert got[0] == pytest.approx(12.5)
    assert got[1] == pytest.approx(100 * (mean - 1.959963984540054 * sd / 2))
    assert got[2] == pytest.approx(100 * (mean + 1.959963984540054 * sd / 2))
    assert paired_difference_interval([1], seeds=1) is None
