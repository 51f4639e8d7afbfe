"""dashboard.shaping: API JSON → DataFrames, checked against hand-built expectations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from dashboard import shaping

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def _payload(series: dict[str, dict[int, float]], last: int | None = None) -> dict:
    return {"series": {k: {"steps": list(v), "values": list(v.values())} for k, v in series.items()},
            "last_step": last if last is not None else max((s for v in series.values() for s in v), default=None)}


def test_merge_appends_new_points_and_overwrites_re_emitted_steps() -> None:
    cache = _payload({"train/loss": {0: 3.0, 10: 2.0}})
    update = _payload({"train/loss": {10: 1.9, 20: 1.5}, "train/ce": {20: 0.7}})
    merged = shaping.merge_metrics(cache, update)
    assert merged["series"]["train/loss"] == {"steps": [0, 10, 20], "values": [3.0, 1.9, 1.5]}
    assert merged["series"]["train/ce"] == {"steps": [20], "values": [0.7]}
    assert merged["last_step"] == 20
    assert cache["series"]["train/loss"]["values"] == [3.0, 2.0]  # pure: the input is untouched


def test_merge_of_an_empty_update_keeps_the_cache() -> None:
    cache = _payload({"a": {1: 1.0}})
    assert shaping.merge_metrics(cache, {"series": {}, "last_step": 1}) == cache
    assert shaping.merge_metrics(None, {"series": {}, "last_step": None}) == shaping.empty_metrics()


def test_metrics_frame_is_long_form_and_typed() -> None:
    frame = shaping.metrics_frame(_payload({"train/loss": {0: 3.0, 5: 2.0}, "train/kd": {5: 1.0}}))
    assert list(frame.columns) == ["step", "series", "value"]
    assert len(frame) == 3 and frame["step"].dtype == "int64" and frame["value"].dtype == "float64"
    empty = shaping.metrics_frame(shaping.empty_metrics())
    assert empty.empty and list(empty.columns) == ["step", "series", "value"]


def test_train_terms_keeps_only_loss_terms_in_legend_order() -> None:
    frame = shaping.metrics_frame(_payload({
        "train/feature": {0: 0.5}, "train/loss": {0: 3.0}, "train/lr": {0: 1e-4}, "align/s1-t2/cka": {0: 0.3},
        "train/ce": {0: 1.0}, "train/kd": {0: 1.5},
    }))
    terms = shaping.train_terms(frame)
    assert list(terms["term"]) == ["total", "CE", "KD", "feature"]
    assert list(terms["value"]) == [3.0, 1.0, 1.5, 0.5]


def test_alignment_frame_splits_pair_and_metric() -> None:
    frame = shaping.metrics_frame(_payload({"align/s1-t2/cka": {0: 0.3, 10: 0.5}, "align/s3-t6/procrustes": {10: 0.9},
                                            "train/loss": {0: 1.0}}))
    align = shaping.alignment_frame(frame)
    assert align.to_dict("records") == [
        {"step": 0, "pair": "s1-t2", "metric": "cka", "value": 0.3},
        {"step": 10, "pair": "s1-t2", "metric": "cka", "value": 0.5},
        {"step": 10, "pair": "s3-t6", "metric": "procrustes", "value": 0.9},
    ]


def test_synthetic_frame_puts_sequential_runs_on_a_common_axis() -> None:
    frame = shaping.metrics_frame(_payload({
        "synthetic/gram/seed1/loss": {101: 0.9, 111: 0.5},
        "synthetic/gram/seed1/preserved_pairs": {101: 10.0, 111: 20.0},
        "synthetic/procrustes/seed0/loss": {0: 1.0, 10: 0.2},
    }))
    syn = shaping.synthetic_frame(frame)
    gram = syn[(syn["loss"] == "gram") & (syn["metric"] == "loss")]
    assert list(gram["step"]) == [101, 111] and list(gram["run_step"]) == [0, 10]
    assert set(syn["seed"]) == {0, 1} and syn["seed"].dtype == "int64"
    assert set(syn["metric"]) == {"loss", "preserved_pairs"}


def test_timing_extrapolates_the_mean_step_time() -> None:
    job = {"status": "RUNNING", "started_at": (NOW - timedelta(seconds=100)).isoformat(),
           "progress": {"step": 25, "total_steps": 100}}
    elapsed, eta = shaping.timing(job, NOW)
    assert elapsed == pytest.approx(100.0) and eta == pytest.approx(300.0)
    done = {**job, "status": "SUCCEEDED", "finished_at": (NOW - timedelta(seconds=40)).isoformat()}
    assert shaping.timing(done, NOW) == (pytest.approx(60.0), None)
    assert shaping.timing({"status": "QUEUED"}, NOW) == (None, None)


def test_naive_timestamps_are_read_as_utc() -> None:
    assert shaping.parse_time("2026-01-01T12:00:00") == NOW
    assert shaping.parse_time("2026-01-01T12:00:00Z") == NOW
    assert shaping.parse_time(None) is None


@pytest.mark.parametrize(("seconds", "text"), [(None, "—"), (float("nan"), "—"), (12.4, "12s"), (185, "3m 05s"),
                                               (3720, "1h 02m")])
def test_format_duration(seconds: float | None, text: str) -> None:
    assert shaping.format_duration(seconds) == text


def test_key_metric_prefers_eval_scores_then_loss() -> None:
    assert shaping.key_metric({"train/loss": 0.3, "eval/rte/mcc": 0.41}) == ("eval/rte/mcc", 0.41)
    assert shaping.key_metric({"train/loss": 0.3, "other": 1}) == ("train/loss", 0.3)
    assert shaping.key_metric({"zeta": 2, "alpha": 1}) == ("alpha", 1.0)
    assert shaping.key_metric({}) is None and shaping.key_metric({"note": "text"}) is None


def test_jobs_frame_newest_first_with_progress() -> None:
    def job(i: int, status: str, step: int) -> dict:
        return {"id": f"id{i}", "name": f"job{i}", "kind": "distill", "status": status, "owner": "ann",
                "created_at": (NOW - timedelta(minutes=10 - i)).isoformat(), "started_at": None,
                "progress": {"step": step, "total_steps": 40}, "summary": {"eval/mcc": 0.5} if i == 1 else {}}

    frame = shaping.jobs_frame([job(0, "RUNNING", 10), job(1, "SUCCEEDED", 30), job(2, "QUEUED", 0)], NOW)
    assert list(frame["id"]) == ["id2", "id1", "id0"]
    assert list(frame["progress"]) == [0.0, 1.0, 0.25]  # a succeeded job is complete
    assert frame.loc[1, "metric"] == "eval/mcc = 0.5"
    assert shaping.jobs_frame([], NOW).empty


def test_evals_frame_flattens_metrics() -> None:
    frame = shaping.evals_frame([{"step": 30, "split": "dev", "task": "rte", "metrics": {"mcc": 0.4, "accuracy": 0.6}},
                                 {"step": 10, "split": "dev", "task": "rte", "metrics": {"mcc": 0.2}}])
    assert list(frame["step"]) == [10, 30]
    assert frame.loc[1, "accuracy"] == 0.6 and pd.isna(frame.loc[0, "accuracy"])
    assert list(shaping.evals_frame([]).columns) == ["step", "split", "task"]


def test_logs_text_formats_epoch_and_iso_times() -> None:
    ts = NOW.timestamp()
    text = shaping.logs_text([{"ts": ts, "level": "INFO", "message": "a"},
                              {"ts": "2026-01-01T12:00:05Z", "level": "WARNING", "message": "b"}])
    assert text.splitlines() == ["12:00:00 INFO    a", "12:00:05 WARNING b"]


def test_runs_frame_one_row_per_distill_job_and_per_synthetic_run() -> None:
    distill = {"id": "d1", "name": "p-a0.2-s1", "kind": "distill", "summary": {"eval/mcc": 0.4},
               "spec": {"loss": {"feature": "procrustes", "alpha": 0.2}, "train": {"seed": 1}}}
    kd_only = {"id": "d2", "name": "kd", "kind": "distill", "summary": {},
               "spec": {"loss": {"feature": None, "alpha": 0.0}, "train": {"seed": 0}}}
    synthetic = {"id": "s1", "name": "demo", "kind": "synthetic", "spec": {}, "summary": {
        "synthetic/cka/seed0/preserved_pairs": 7.0, "synthetic/cka/seed3/preserved_pairs": 9.0}}
    runs = shaping.runs_frame([distill, kd_only, synthetic], finals={"d2": {"eval/mcc": 0.3}})
    assert runs[["loss", "alpha", "seed"]].values.tolist() == [
        ["procrustes", 0.2, 1], ["kd-only", 0.0, 0], ["cka", 1.0, 0], ["cka", 1.0, 3]]
    assert runs["eval/mcc"].tolist()[:2] == [0.4, 0.3]  # the summary or, failing that, the last logged value
    assert runs["synthetic/preserved_pairs"].tolist()[2:] == [7.0, 9.0]
    assert shaping.metric_columns(runs) == ["eval/mcc", "synthetic/preserved_pairs"]
    assert shaping.runs_frame([]).empty


def test_stable_order_appends_new_items_and_drops_gone_ones() -> None:
    assert shaping.stable_order([], ["b", "a"]) == ["b", "a"]
    assert shaping.stable_order(["p", "g"], ["c", "g", "p"]) == ["p", "g", "c"]
    assert shaping.stable_order(["x", "p"], ["p"]) == ["p"]


def test_last_values_skip_nulls() -> None:
    assert shaping.last_values(_payload({"a": {1: 1.0, 2: 5.0}, "b": {}})) == {"a": 5.0}
    # Non-finite floats come back from the API as null: the last finite value is the final one.
    assert shaping.last_values(_payload({"a": {1: 2.0, 2: None}, "b": {1: None}})) == {"a": 2.0}


def test_null_values_become_nan_gaps() -> None:
    frame = shaping.metrics_frame(_payload({"train/loss": {0: 3.0, 1: None, 2: 1.0}}))
    assert frame["value"].isna().tolist() == [False, True, False]
    assert len(shaping.train_terms(frame)) == 3
