"""Array-level statistics for experiment reports (numpy/scipy only, no torch).

Seeds are the replicates of an experiment cell. Two methods run with the same seeds share the data
order and the initialisation, so they are compared by *pairing* runs on the seed: a paired t-test
on the per-seed differences and a percentile bootstrap CI of their mean. A report runs many such
tests, so its p-values are also given Holm-adjusted over the report (``holm``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

ArrayLike = Sequence[float] | np.ndarray


def mean_std(values: ArrayLike) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) of ``values``.

    Args:
        values: (n,) numbers; NaN entries are ignored.

    Returns:
        ``(mean, std)``; ``std`` is NaN when fewer than 2 finite values remain, both are NaN when none.

    >>> mean_std([1.0, 2.0, 3.0])
    (2.0, 1.0)
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan
    std = float(x.std(ddof=1)) if x.size > 1 else math.nan
    return float(x.mean()), std


def paired_ttest(a: ArrayLike, b: ArrayLike) -> tuple[float, float, float]:
    """Two-sided paired t-test of ``a`` against ``b`` (``a[i]`` and ``b[i]`` share seed ``i``).

    Args:
        a: (n,) values of the method under test.
        b: (n,) values of the baseline, in the same seed order.

    Returns:
        ``(t, p, mean_diff)`` with ``mean_diff = mean(a - b)``. ``t`` and ``p`` are NaN when
        n < 2 or all differences are equal (zero variance: the test is undefined).

    Raises:
        ValueError: if ``a`` and ``b`` differ in length.
    """
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired samples must have the same length, got {x.shape} and {y.shape}")
    d = x - y
    if d.size == 0:
        return math.nan, math.nan, math.nan
    mean_diff = float(d.mean())
    if d.size < 2 or np.allclose(d, d[0], rtol=0.0, atol=1e-12):
        return math.nan, math.nan, mean_diff
    res = sps.ttest_rel(x, y)
    return float(res.statistic), float(res.pvalue), mean_diff


def bootstrap_ci(diffs: ArrayLike, n: int = 10000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``diffs`` (seeds resampled with replacement).

    Args:
        diffs: (m,) paired differences.
        n: number of bootstrap resamples.
        seed: seed of the resampling generator (the CI is reproducible).
        level: coverage of the interval, e.g. 0.95.

    Returns:
        ``(low, high)``; NaN for an empty input. With one difference both ends equal it.
    """
    d = np.asarray(diffs, dtype=float)
    if d.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, d.size, size=(n, d.size))
    means = d[idx].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(low), float(high)


def holm(pvalues: ArrayLike) -> list[float]:
    """Holm–Bonferroni adjusted p-values (family-wise error control over the given tests).

    The i-th smallest of the m finite p-values becomes ``max_{j<=i} min(1, (m - j + 1) p_(j))``; a
    test is significant at level a after correction iff its adjusted p-value is <= a. Uniformly
    more powerful than Bonferroni (``m p``), with the same guarantee and no independence assumption.

    Args:
        pvalues: (m,) raw p-values, in any order; NaN entries (undefined tests) stay NaN and do not
            count towards m.

    Returns:
        The adjusted p-values, in the input order.

    Raises:
        ValueError: if ``pvalues`` is not one-dimensional.

    >>> holm([0.01, 0.04, 0.03, 0.005])
    [0.03, 0.06, 0.06, 0.02]
    """
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"p-values must be one-dimensional, got shape {p.shape}")
    out = np.full(p.shape, math.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    order = finite[np.argsort(p[finite], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p[i])))
        out[i] = running
    return [float(v) for v in out]
