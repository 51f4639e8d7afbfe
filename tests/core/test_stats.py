"""geokd_core.stats against hand computations and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from geokd_core.stats import bootstrap_ci, holm, mean_std, paired_ttest


def test_mean_std_by_hand() -> None:
    mean, std = mean_std([1.0, 2.0, 3.0, 4.0])
    assert mean == pytest.approx(2.5)
    assert std == pytest.approx(math.sqrt((1.5**2 + 0.5**2 + 0.5**2 + 1.5**2) / 3))  # ddof = 1


def test_mean_std_edge_cases() -> None:
    assert mean_std([7.0])[0] == 7.0 and math.isnan(mean_std([7.0])[1])
    assert all(math.isnan(x) for x in mean_std([]))
    assert mean_std([1.0, float("nan"), 3.0]) == pytest.approx((2.0, math.sqrt(2.0)))


def test_paired_ttest_by_hand_and_scipy() -> None:
    a = np.array([0.61, 0.58, 0.64, 0.60, 0.66])
    b = np.array([0.59, 0.58, 0.60, 0.61, 0.62])
    d = a - b
    t_hand = d.mean() / (d.std(ddof=1) / math.sqrt(d.size))
    p_hand = 2 * sps.t.sf(abs(t_hand), df=d.size - 1)
    t, p, diff = paired_ttest(a, b)
    assert diff == pytest.approx(d.mean())
    assert t == pytest.approx(t_hand) and p == pytest.approx(p_hand)
    ref = sps.ttest_rel(a, b)
    assert (t, p) == pytest.approx((ref.statistic, ref.pvalue))
    # Swapping the samples flips t and the difference, not p.
    t2, p2, diff2 = paired_ttest(b, a)
    assert (t2, p2, diff2) == pytest.approx((-t, p, -diff))


def test_paired_ttest_degenerate() -> None:
    t, p, diff = paired_ttest([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])  # every difference 0.5: zero variance
    assert math.isnan(t) and math.isnan(p) and diff == pytest.approx(0.5)
    t, p, diff = paired_ttest([1.0], [0.0])
    assert math.isnan(t) and math.isnan(p) and diff == 1.0
    with pytest.raises(ValueError, match="same length"):
        paired_ttest([1.0, 2.0], [1.0])


def test_bootstrap_ci_two_point_distribution() -> None:
    # Means of 2 draws from {0, 1}: 0, 0.5, 1 with probability 1/4, 1/2, 1/4.
    assert bootstrap_ci([0.0, 1.0], n=20000, seed=1, level=0.95) == (0.0, 1.0)
    assert bootstrap_ci([0.0, 1.0], n=20000, seed=1, level=0.4) == (0.5, 0.5)


def test_bootstrap_ci_matches_normal_theory_and_is_seeded() -> None:
    d = np.random.default_rng(0).normal(1.0, 2.0, size=400)
    lo, hi = bootstrap_ci(d, n=10000, seed=3)
    half = 1.96 * d.std(ddof=1) / math.sqrt(d.size)
    assert lo == pytest.approx(d.mean() - half, abs=0.03) and hi == pytest.approx(d.mean() + half, abs=0.03)
    assert bootstrap_ci(d, n=2000, seed=5) == bootstrap_ci(d, n=2000, seed=5)
    assert bootstrap_ci([0.3], n=100) == (0.3, 0.3)
    assert all(math.isnan(x) for x in bootstrap_ci([]))


def test_holm_by_hand() -> None:
    # Sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, then 0.04·1 = 0.04 is lifted to 0.06
    # (adjusted p-values never decrease along the sorted order).
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.2]) == [0.2] and holm([]) == []
    # An undefined test (NaN p) stays NaN and does not count towards m.
    adjusted = holm([float("nan"), 0.01, 0.04])
    assert math.isnan(adjusted[0]) and adjusted[1:] == pytest.approx([0.02, 0.04])
    with pytest.raises(ValueError, match="one-dimensional"):
        holm([[0.01], [0.02]])


def test_holm_lies_between_raw_and_bonferroni() -> None:
    p = np.random.default_rng(1).uniform(0, 0.2, size=30)
    adjusted = np.array(holm(p))
    assert np.all(adjusted >= p - 1e-15)
    assert np.all(adjusted <= np.minimum(1.0, 30 * p) + 1e-15)
    assert adjusted[np.argmin(p)] == pytest.approx(30 * p.min())  # the smallest gets the full Bonferroni factor
