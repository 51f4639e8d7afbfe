"""dashboard.figures: trace counts, axes, colour scales and downsampling of every builder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboard import figures, shaping


def _annotation(fig) -> str:
    return " ".join(a.text for a in fig.layout.annotations)


def _terms(values: dict[str, list[float]]) -> pd.DataFrame:
    payload = {"series": {k: {"steps": list(range(len(v))), "values": v} for k, v in values.items()}, "last_step": 0}
    return shaping.train_terms(shaping.metrics_frame(payload))


def test_loss_curves_one_line_per_term() -> None:
    fig = figures.loss_curves(_terms({"train/loss": [3, 2, 1], "train/ce": [1, 0.5, 0.2], "train/kd": [2, 1, 0.5]}))
    assert [t.name for t in fig.data] == ["total", "CE", "KD"]
    assert list(fig.data[0].y) == [3, 2, 1]
    assert fig.layout.yaxis.type in (None, "linear", "-")
    assert fig.layout.uirevision == "loss"  # constant: keeps the user's zoom across refreshes


def test_loss_curves_log_scale_drops_non_positive_points() -> None:
    fig = figures.loss_curves(_terms({"train/loss": [3, 0.0, 1], "train/feature": [0.5, -0.1, 0.2]}), log_y=True)
    assert fig.layout.yaxis.type == "log"
    assert all(min(t.y) > 0 for t in fig.data)
    assert sum(len(t.y) for t in fig.data) == 4


def test_loss_curves_empty_and_partial() -> None:
    empty = figures.loss_curves(_terms({}))
    assert len(empty.data) == 0 and "no loss values" in _annotation(empty)
    partial = figures.loss_curves(_terms({"train/loss": [1.0]}))  # one point, one term
    assert len(partial.data) == 1 and list(partial.data[0].y) == [1.0]


def test_synthetic_curves_colour_by_loss_dash_by_seed_on_run_steps() -> None:
    payload = {"series": {
        f"synthetic/{loss}/seed{seed}/loss": {"steps": [off, off + 5], "values": [1.0, 0.5]}
        for loss, seed, off in [("gram", 0, 0), ("gram", 1, 6), ("cka", 0, 12)]
    }, "last_step": 17}
    syn = shaping.synthetic_frame(shaping.metrics_frame(payload))
    fig = figures.synthetic_curves(syn, "loss")
    assert len(fig.data) == 3
    assert all(list(t.x) == [0, 5] for t in fig.data)  # every run starts at step 0 of its own
    assert {t.line.dash for t in fig.data} == {"solid", "dot"}
    # A loss keeps its colour whatever else is on the chart (no recolouring as runs appear).
    only_gram = figures.synthetic_curves(syn[syn["loss"] == "gram"], "loss")
    colour = {t.legendgroup.split(",")[0]: t.line.color for t in fig.data}
    assert {t.line.color for t in only_gram.data} == {colour["gram"]} == {figures.LOSS_COLORS["gram"]}
    assert "no data" in _annotation(figures.synthetic_curves(syn, "preserved_pairs"))


def test_alignment_curves_one_panel_per_metric_with_free_y_axes() -> None:
    rows = [{"step": s, "pair": p, "metric": m, "value": v}
            for s in (0, 10) for p in ("s1-t2", "s2-t4") for m, v in (("cka", 0.5), ("procrustes", 9.0))]
    fig = figures.alignment_curves(pd.DataFrame(rows))
    assert len(fig.data) == 4  # 2 pairs × 2 metrics
    assert {a.text for a in fig.layout.annotations} >= {"cka", "procrustes"}
    assert fig.layout.yaxis.matches is None and fig.layout.yaxis2.matches is None
    assert "no alignment" in _annotation(figures.alignment_curves(pd.DataFrame(columns=["step", "pair", "metric", "value"])))


def test_downsample_small_matrices_pass_through() -> None:
    a = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(figures.downsample(a), a)


def test_downsample_even_blocks_equal_block_means() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(256, 384))
    out = figures.downsample(a, 128)
    expected = a.reshape(128, 2, 128, 3).mean(axis=(1, 3))  # independent reference: reshape-mean
    assert out.shape == (128, 128)
    np.testing.assert_allclose(out, expected, atol=1e-12)


def test_downsample_uneven_blocks_keep_structure() -> None:
    out = figures.downsample(np.eye(300), 128)
    assert out.shape == (128, 128)
    np.testing.assert_allclose(out, out.T)  # symmetric input, symmetric blocks
    assert np.all(np.diag(out) > 0.3) and np.all(out[~np.eye(128, dtype=bool)] <= np.diag(out).min())
    counts = np.diff(np.append(np.linspace(0, 300, 129).astype(int)[:-1], 300))
    # Weighted by block sizes the mean is preserved: sum over blocks of mean × area = trace = 300.
    assert (out * np.outer(counts, counts)).sum() == pytest.approx(300.0)


def test_downsample_rejects_non_matrices() -> None:
    with pytest.raises(ValueError, match="2-D"):
        figures.downsample(np.zeros(5))


def test_gram_heatmaps_side_by_side_with_diverging_difference() -> None:
    rng = np.random.default_rng(1)
    t, s = rng.uniform(-1, 1, size=(300, 300)), rng.uniform(-1, 1, size=(300, 300))
    figs = figures.gram_heatmaps(t, s, label="s3-t6")
    assert set(figs) == {"teacher", "student", "difference"}
    zt, zs, zd = (np.asarray(figs[k].data[0].z) for k in ("teacher", "student", "difference"))
    assert zt.shape == zs.shape == zd.shape == (128, 128)
    np.testing.assert_allclose(zd, figures.downsample(t - s))  # difference = teacher − student
    diff_axis = figs["difference"].layout.coloraxis
    assert diff_axis.cmid == 0
    scale = [c[1] for c in diff_axis.colorscale]
    assert scale[0] != scale[-1] and "Teacher − student" in figs["difference"].layout.title.text
    # Teacher and student share one colour range so equal values look equal.
    assert figs["teacher"].layout.coloraxis.cmin == figs["student"].layout.coloraxis.cmin
    assert figs["teacher"].layout.coloraxis.cmax == figs["student"].layout.coloraxis.cmax
    assert "s3-t6" in figs["teacher"].layout.title.text


def test_gram_heatmaps_small_and_mismatched() -> None:
    figs = figures.gram_heatmaps([[1.0, 0.2], [0.2, 1.0]], [[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(np.asarray(figs["difference"].data[0].z), [[0, 0.2], [0.2, 0]])
    with pytest.raises(ValueError, match="differ in shape"):
        figures.gram_heatmaps(np.eye(3), np.eye(4))


def test_layer_similarity_rows_are_teacher_layers() -> None:
    fig = figures.layer_similarity_heatmap({"metric": "cka", "teacher_layers": [2, 4, 6], "student_layers": [1, 2],
                                            "matrix": [[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]]})
    hm = fig.data[0]
    assert np.asarray(hm.z).shape == (3, 2)
    assert list(hm.y) == ["t2", "t4", "t6"] and list(hm.x) == ["s1", "s2"]
    assert "CKA" in fig.layout.title.text


def test_no_snapshot_yet_gives_a_placeholder() -> None:
    for payload in (None, {}, {"matrix": []}):
        fig = figures.layer_similarity_heatmap(payload)
        assert len(fig.data) == 0 and "no layer-similarity" in _annotation(fig)


def test_compare_overlay_one_line_per_run() -> None:
    runs = {"a": pd.DataFrame({"step": [0, 1], "value": [2.0, 1.0]}), "b": pd.DataFrame({"step": [0], "value": [3.0]}),
            "empty": pd.DataFrame({"step": [], "value": []})}
    fig = figures.compare_overlay(runs, "train/loss")
    assert [t.name for t in fig.data] == ["a", "b"]
    assert fig.layout.yaxis.title.text == "train/loss"
    assert figures.compare_overlay(runs, "x", log_y=True).layout.yaxis.type == "log"
    assert "no points" in _annotation(figures.compare_overlay({}, "train/loss"))


def test_results_bars_error_bars_are_the_std() -> None:
    summary = pd.DataFrame({"loss": ["cka", "procrustes"], "alpha": [0.5, 0.5], "n": [3, 3], "mean": [0.4, 0.45],
                            "std": [0.02, 0.03]})
    fig = figures.results_bars(summary, "eval/mcc")
    assert [t.name for t in fig.data] == ["cka", "procrustes"]
    assert [list(t.error_y.array) for t in fig.data] == [[0.02], [0.03]]
    assert "no finished runs" in _annotation(figures.results_bars(summary.iloc[:0], "eval/mcc"))


def test_curves_with_null_points_from_the_api() -> None:
    fig = figures.loss_curves(_terms({"train/loss": [3.0, None, 1.0]}))
    assert np.isnan(np.asarray(fig.data[0].y, dtype=float)).sum() == 1  # a gap, not a crash
    log = figures.loss_curves(_terms({"train/loss": [3.0, None, 1.0]}), log_y=True)
    assert list(log.data[0].y) == [3.0, 1.0]


def test_alignment_curves_show_markers_while_a_run_has_few_points() -> None:
    one_step = pd.DataFrame([{"step": 5, "pair": "s1-t2", "metric": "cka", "value": 0.9}])
    assert all("markers" in (t.mode or "") for t in figures.alignment_curves(one_step).data)
    many = pd.DataFrame([{"step": i, "pair": "s1-t2", "metric": "cka", "value": 0.9} for i in range(100)])
    assert all("markers" not in (t.mode or "") for t in figures.alignment_curves(many).data)
