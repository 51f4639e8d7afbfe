"""dashboard.stats against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from dashboard import stats


def _runs(rows: list[tuple[str, float, int, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["loss", "alpha", "seed", "mcc"])


RUNS = _runs([
    ("cka", 0.5, 0, 0.40), ("cka", 0.5, 1, 0.41), ("cka", 0.5, 2, 0.45),
    ("procrustes", 0.5, 0, 0.42), ("procrustes", 0.5, 1, 0.47), ("procrustes", 0.5, 2, 0.44),
    ("procrustes", 0.2, 0, 0.30), ("procrustes", 0.2, 5, 0.99),  # seed 5 has no cka partner
])


def test_summarize_mean_and_sample_std() -> None:
    out = stats.summarize(RUNS, "mcc")
    cka = out[(out["loss"] == "cka")].iloc[0]
    assert cka["n"] == 3
    assert cka["mean"] == pytest.approx(0.42)
    # std (ddof=1) of 0.40, 0.41, 0.45: deviations −0.02, −0.01, 0.03 → sqrt(0.0014 / 2)
    assert cka["std"] == pytest.approx(math.sqrt(0.0014 / 2))
    assert cka["mean ± std"] == "0.4200 ± 0.0265"
    assert list(zip(out["loss"], out["alpha"], strict=True)) == [("cka", 0.5), ("procrustes", 0.2), ("procrustes", 0.5)]


def test_summarize_single_seed_and_missing_metric() -> None:
    one = stats.summarize(_runs([("gram", 1.0, 0, 0.5)]), "mcc")
    assert one.iloc[0]["n"] == 1 and math.isnan(one.iloc[0]["std"]) and one.iloc[0]["mean ± std"] == "0.5000"
    assert stats.summarize(RUNS, "absent").empty


def test_paired_matches_by_seed() -> None:
    p = stats.paired(RUNS, "mcc", ("cka", 0.5), ("procrustes", 0.2))
    assert p.to_dict("records") == [{"seed": 0, "baseline": 0.40, "value": 0.30, "diff": pytest.approx(-0.10)}]


def test_paired_ttest_by_hand() -> None:
    values, base = np.array([2.0, 4.0, 6.0, 8.0]), np.array([1.0, 2.0, 3.0, 4.0])
    d = values - base  # 1, 2, 3, 4: mean 2.5, sample sd sqrt(5/3)
    t_hand = 2.5 / (math.sqrt(5 / 3) / 2)
    p_hand = 2 * sps.t.sf(t_hand, df=3)
    t, p = stats.paired_ttest(values, base)
    assert t == pytest.approx(t_hand) and p == pytest.approx(p_hand)
    assert d.mean() == 2.5


def test_paired_ttest_degenerate_cases() -> None:
    assert all(math.isnan(x) for x in stats.paired_ttest(np.array([1.0]), np.array([0.0])))
    assert all(math.isnan(x) for x in stats.paired_ttest(np.array([1.0, 2.0]), np.array([0.0, 1.0])))


def test_bootstrap_ci_two_points_by_hand() -> None:
    # Resampling two diffs gives means a, (a+b)/2, b with probabilities 1/4, 1/2, 1/4:
    # the 2.5 % and 97.5 % quantiles are a and b.
    low, high = stats.bootstrap_ci(np.array([-1.0, 3.0]))
    assert (low, high) == (-1.0, 3.0)
    # A 40 % interval falls inside the middle atom (a+b)/2 = 1.
    assert stats.bootstrap_ci(np.array([-1.0, 3.0]), level=0.4) == (1.0, 1.0)


def test_bootstrap_ci_constant_and_empty() -> None:
    assert stats.bootstrap_ci(np.full(5, 0.25)) == (pytest.approx(0.25), pytest.approx(0.25))
    assert all(math.isnan(x) for x in stats.bootstrap_ci(np.array([])))


def test_bootstrap_ci_is_reproducible_and_contains_the_mean() -> None:
    d = np.array([0.02, 0.06, -0.01, 0.03, 0.04])
    a, b = stats.bootstrap_ci(d), stats.bootstrap_ci(d)
    assert a == b and a[0] < d.mean() < a[1]
    assert d.min() <= a[0] and a[1] <= d.max()


def test_compare_to_baseline_table() -> None:
    out = stats.compare_to_baseline(RUNS, "mcc", ("cka", 0.5))
    assert list(zip(out["loss"], out["alpha"], strict=True)) == [("procrustes", 0.2), ("procrustes", 0.5)]
    p05 = out[out["alpha"] == 0.5].iloc[0]
    assert p05["n_pairs"] == 3
    assert p05["mean_diff"] == pytest.approx((0.02 + 0.06 - 0.01) / 3)
    res = sps.ttest_rel([0.42, 0.47, 0.44], [0.40, 0.41, 0.45])
    assert p05["t"] == pytest.approx(res.statistic) and p05["p_value"] == pytest.approx(res.pvalue)
    assert p05["ci_low"] <= p05["mean_diff"] <= p05["ci_high"]
    one_pair = out[out["alpha"] == 0.2].iloc[0]
    assert one_pair["n_pairs"] == 1 and math.isnan(one_pair["p_value"])
    assert one_pair["ci_low"] == pytest.approx(-0.10) == one_pair["ci_high"]
    assert stats.compare_to_baseline(RUNS, "absent", ("cka", 0.5)).empty
