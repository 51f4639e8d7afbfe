"""Results statistics for the Compare page (pure: no streamlit, no HTTP).

Runs are grouped by (loss, α); seeds are the replicates. A group is compared with a chosen
baseline group by pairing runs that share a seed (same data order and init), which removes the
seed-to-seed variance both groups share: a paired t-test (scipy) and a percentile bootstrap CI of
the mean paired difference.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from geokd_core import stats as core_stats

Group = tuple[str, float]  # (loss, alpha)


def summarize(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean ± std (ddof=1) of ``metric`` over seeds per (loss, α).

    Args:
        runs: ``shaping.runs_frame`` output.
        metric: a metric column.

    Returns:
        Columns loss, alpha, n, mean, std (NaN for n = 1), ``mean ± std`` (text); sorted by loss, α.
    """
    columns = ["loss", "alpha", "n", "mean", "std", "mean ± std"]
    if metric not in runs.columns:
        return pd.DataFrame(columns=columns)
    data = runs.dropna(subset=[metric])
    if data.empty:
        return pd.DataFrame(columns=columns)
    out = data.groupby(["loss", "alpha"])[metric].agg(n="count", mean="mean", std="std").reset_index()
    out["mean ± std"] = [
        f"{m:.4f}" if n < 2 else f"{m:.4f} ± {s:.4f}" for m, s, n in zip(out["mean"], out["std"], out["n"],
                                                                         strict=True)
    ]
    return out.sort_values(["loss", "alpha"]).reset_index(drop=True)[columns]


def paired(runs: pd.DataFrame, metric: str, baseline: Group, group: Group) -> pd.DataFrame:
    """Runs of ``group`` and ``baseline`` matched by seed: columns seed, baseline, value, diff.

    A seed present in only one of the two groups is left out (it has no partner).
    """
    def pick(g: Group) -> pd.Series:
        rows = runs[(runs["loss"] == g[0]) & np.isclose(runs["alpha"].astype(float), g[1])]
        rows = rows.dropna(subset=[metric])
        # If a seed was run twice (a retry of a sweep), the latest row wins.
        return rows.drop_duplicates("seed", keep="last").set_index("seed")[metric]

    if metric not in runs.columns:
        return pd.DataFrame(columns=["seed", "baseline", "value", "diff"])
    both = pd.concat({"baseline": pick(baseline), "value": pick(group)}, axis=1, join="inner")
    both["diff"] = both["value"] - both["baseline"]
    return both.rename_axis("seed").reset_index().sort_values("seed").reset_index(drop=True)


def paired_ttest(values: np.ndarray, baseline: np.ndarray) -> tuple[float, float]:
    """Two-sided paired t-test of ``values`` against ``baseline``: (t, p); NaN when undefined.

    Thin wrapper over :func:`geokd_core.stats.paired_ttest` (one implementation for the dashboard
    and the reproduction reports).
    """
    t, p, _ = core_stats.paired_ttest(values, baseline)
    return t, p


def bootstrap_ci(diffs: np.ndarray, level: float = 0.95, n_boot: int = 4000, seed: int = 0
                 ) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean paired difference (seeded, so refreshes agree).

    Thin wrapper over :func:`geokd_core.stats.bootstrap_ci`.
    """
    return core_stats.bootstrap_ci(diffs, n=n_boot, seed=seed, level=level)


def compare_to_baseline(runs: pd.DataFrame, metric: str, baseline: Group, level: float = 0.95,
                        n_boot: int = 4000) -> pd.DataFrame:
    """Every (loss, α) group against ``baseline``, paired by seed.

    Returns:
        Columns loss, alpha, n_pairs, mean_diff, t, p_value, ci_low, ci_high (diff = group − baseline);
        the baseline itself is left out.
    """
    columns = ["loss", "alpha", "n_pairs", "mean_diff", "t", "p_value", "ci_low", "ci_high"]
    if metric not in runs.columns or runs.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for loss, alpha in sorted({(str(a), float(b)) for a, b in zip(runs["loss"], runs["alpha"], strict=True)}):
        if loss == baseline[0] and math.isclose(alpha, baseline[1]):
            continue
        pairs = paired(runs, metric, baseline, (loss, alpha))
        if pairs.empty:
            continue
        t, p = paired_ttest(pairs["value"].to_numpy(), pairs["baseline"].to_numpy())
        low, high = bootstrap_ci(pairs["diff"].to_numpy(), level=level, n_boot=n_boot)
        rows.append({"loss": loss, "alpha": alpha, "n_pairs": len(pairs), "mean_diff": pairs["diff"].mean(),
                     "t": t, "p_value": p, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=columns)
