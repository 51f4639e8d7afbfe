"""DataFrames and matrices → Plotly figures (pure: no streamlit, no HTTP).

Every builder returns a figure even for empty input (a titled placeholder), so a page never has
to special-case "no data yet". ``uirevision`` is set to a constant per figure kind: Plotly then
keeps the user's zoom and legend toggles when the live page redraws the figure with new points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from geokd_core.spec import FEATURE_LOSSES

MAX_HEATMAP = 128  # larger Gram matrices are block-averaged down to this many rows/columns
SEQUENTIAL = "Viridis"
DIVERGING = "RdBu_r"  # red = teacher above student, blue = below; white at 0
_MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}
# Fixed colours per loss term and per feature loss: a live chart must not recolour a line when
# another series appears later in the run.
_PALETTE = px.colors.qualitative.Plotly
TERM_COLORS = dict(zip(("total", "CE", "KD", "feature"), _PALETTE, strict=False))
LOSS_COLORS = dict(zip(FEATURE_LOSSES, _PALETTE, strict=False))


def empty_figure(title: str, message: str = "no data yet") -> go.Figure:
    """A blank, titled figure carrying ``message`` in the middle."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font={"size": 14, "color": "grey"})
    fig.update_layout(title=title, xaxis={"visible": False}, yaxis={"visible": False}, height=320,
                      margin=_MARGIN)
    return fig


def _finish(fig: go.Figure, title: str, log_y: bool, revision: str, height: int = 360) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=_MARGIN, uirevision=revision,
                      legend={"title": None})
    if log_y:
        fig.update_yaxes(type="log")
    return fig


# ---- curves --------------------------------------------------------------------------------------
def loss_curves(terms: pd.DataFrame, log_y: bool = False) -> go.Figure:
    """Training loss terms over steps, one line per term.

    Args:
        terms: ``shaping.train_terms`` output (columns step, term, value).
        log_y: log-scale y axis (non-positive values are dropped there: log of ≤ 0 is undefined).
    """
    data = terms[terms["value"] > 0] if log_y else terms
    if data.empty:
        return empty_figure("Loss", "no loss values yet")
    fig = px.line(data, x="step", y="value", color="term", markers=len(data) < 40,
                  color_discrete_map=TERM_COLORS, category_orders={"term": list(TERM_COLORS)})
    return _finish(fig, "Loss", log_y, "loss")


def synthetic_curves(frame: pd.DataFrame, metric: str, log_y: bool = False) -> go.Figure:
    """A synthetic job's ``metric`` per feature loss (colour) and seed (dash).

    Args:
        frame: ``shaping.synthetic_frame`` output.
        metric: ``loss`` or ``preserved_pairs``.
    """
    data = frame[frame["metric"] == metric]
    if log_y:
        data = data[data["value"] > 0]
    title = {"loss": "Feature loss", "preserved_pairs": "Preserved ε-orthogonal pairs"}.get(metric, metric)
    if data.empty:
        return empty_figure(title)
    data = data.assign(seed=data["seed"].map(lambda s: f"seed {s}"))
    fig = px.line(data, x="run_step", y="value", color="loss", line_dash="seed", color_discrete_map=LOSS_COLORS,
                  category_orders={"loss": list(FEATURE_LOSSES), "seed": sorted(data["seed"].unique(), key=_seed_key)},
                  labels={"run_step": "step within run", "value": metric.replace("_", " ")})
    return _finish(fig, title, log_y, f"synthetic-{metric}")


def _seed_key(label: str) -> int:
    return int(label.split()[-1])


def alignment_curves(frame: pd.DataFrame) -> go.Figure:
    """Alignment metrics over steps: one panel per metric, one line per mapped layer pair.

    Args:
        frame: ``shaping.alignment_frame`` output (columns step, pair, metric, value).
    """
    if frame.empty:
        return empty_figure("Alignment", "no alignment metrics yet")
    metrics = sorted(frame["metric"].unique())
    # Markers while points are few: a one-point line is invisible early in a run.
    fig = px.line(frame, x="step", y="value", color="pair", facet_col="metric", markers=frame["step"].nunique() < 40,
                  facet_col_wrap=min(len(metrics), 2), category_orders={"metric": metrics},
                  facet_row_spacing=0.12, facet_col_spacing=0.08)
    fig.update_yaxes(matches=None, showticklabels=True)  # metrics live on different scales
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    rows = (len(metrics) + 1) // 2
    return _finish(fig, "Alignment per mapped layer", False, "align", height=260 * rows + 60)


def compare_overlay(runs: Mapping[str, pd.DataFrame], series: str, log_y: bool = False) -> go.Figure:
    """One series of several runs on one plot.

    Args:
        runs: run label → frame with columns step, value.
        series: the series name (axis title).
    """
    parts = [f.assign(run=label) for label, f in runs.items() if not f.empty]
    data = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["step", "value", "run"])
    if log_y:
        data = data[data["value"] > 0]
    if data.empty:
        return empty_figure(series, "no points for the selected runs")
    fig = px.line(data, x="step", y="value", color="run")
    fig.update_yaxes(title=series)
    return _finish(fig, series, log_y, f"compare-{series}", height=420)


def results_bars(summary: pd.DataFrame, metric: str) -> go.Figure:
    """Mean ± std of ``metric`` per α (x) and loss (colour), from ``stats.summarize``."""
    if summary.empty:
        return empty_figure(metric, "no finished runs with this metric")
    data = summary.assign(alpha=summary["alpha"].map(lambda a: f"{a:g}"))
    fig = px.bar(data, x="alpha", y="mean", error_y="std", color="loss", barmode="group",
                 color_discrete_map={**LOSS_COLORS, "kd-only": "#7f7f7f"},
                 labels={"alpha": "α", "mean": metric})
    return _finish(fig, f"{metric}: mean ± std over seeds", False, f"bars-{metric}", height=380)


# ---- matrices ------------------------------------------------------------------------------------
def downsample(matrix: Sequence[Sequence[float]] | np.ndarray, max_size: int = MAX_HEATMAP) -> np.ndarray:
    """Block-average a (k, m) matrix to at most (max_size, max_size); smaller inputs pass through.

    Blocks are contiguous index ranges of near-equal size, so the mean of the output equals the
    mean of the input whenever the sizes divide evenly, and a diagonal stays on the diagonal.

    Returns:
        float64 array of shape (min(k, max_size), min(m, max_size)).
    """
    a = np.asarray(matrix, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D matrix, got shape {a.shape}")
    for axis in (0, 1):
        n = a.shape[axis]
        if n > max_size:
            starts = np.linspace(0, n, max_size + 1).astype(int)[:-1]
            sums = np.add.reduceat(a, starts, axis=axis)
            counts = np.diff(np.append(starts, n))
            a = sums / (counts[:, None] if axis == 0 else counts[None, :])
    return a


def _heatmap(z: np.ndarray, title: str, revision: str, **kwargs: Any) -> go.Figure:
    fig = px.imshow(z, aspect="equal", origin="upper", **kwargs)
    fig.update_layout(title=title, height=340, margin=_MARGIN, uirevision=revision,
                      coloraxis_colorbar={"thickness": 12})
    return fig


def gram_heatmaps(teacher: Sequence[Sequence[float]] | np.ndarray, student: Sequence[Sequence[float]] | np.ndarray,
                  max_size: int = MAX_HEATMAP, label: str = "") -> dict[str, go.Figure]:
    """Teacher, student and difference (teacher − student) Gram heatmaps of the probe batch.

    Teacher and student share one colour range so they can be compared by eye; the difference
    uses a diverging scale centred at 0.

    Args:
        teacher: (k, k) teacher Gram.
        student: (k, k) student Gram (same k).
        max_size: downsampling limit per side.
        label: layer name shown in the titles.

    Returns:
        ``{"teacher": fig, "student": fig, "difference": fig}``.
    """
    t, s = downsample(teacher, max_size), downsample(student, max_size)
    if t.shape != s.shape:
        raise ValueError(f"teacher {t.shape} and student {s.shape} Grams differ in shape")
    d = t - s  # block means are linear, so this equals the downsampled full difference
    lo, hi = float(min(t.min(), s.min())), float(max(t.max(), s.max()))
    suffix = f" · {label}" if label else ""
    return {
        "teacher": _heatmap(t, f"Teacher{suffix}", "gram-t", color_continuous_scale=SEQUENTIAL,
                            zmin=lo, zmax=hi),
        "student": _heatmap(s, f"Student{suffix}", "gram-s", color_continuous_scale=SEQUENTIAL,
                            zmin=lo, zmax=hi),
        "difference": _heatmap(d, "Teacher − student", "gram-d", color_continuous_scale=DIVERGING,
                               color_continuous_midpoint=0.0),
    }


def layer_similarity_heatmap(payload: Mapping[str, Any] | None) -> go.Figure:
    """Teacher × student layer similarity (rows = teacher layers, columns = student layers)."""
    if not payload or not payload.get("matrix"):
        return empty_figure("Layer similarity", "no layer-similarity snapshot yet")
    z = np.asarray(payload["matrix"], dtype=np.float64)
    metric = str(payload.get("metric", "similarity")).upper()
    fig = px.imshow(
        z, x=[f"s{i}" for i in payload.get("student_layers") or range(z.shape[1])],
        y=[f"t{j}" for j in payload.get("teacher_layers") or range(z.shape[0])],
        color_continuous_scale=SEQUENTIAL, text_auto=".2f" if z.size <= 200 else False, aspect="auto",
        labels={"x": "student layer", "y": "teacher layer", "color": metric},
    )
    fig.update_layout(title=f"Layer similarity ({metric})", height=380, margin=_MARGIN, uirevision="layersim")
    return fig
