"""Compare page: overlay curves of several runs; final metrics by loss and α, mean ± std over
seeds, and a paired (by seed) t-test and bootstrap CI against a chosen baseline."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import figures, panels, session, shaping, stats
from dashboard.client import ApiError

st.title("Compare runs")
c = session.require_client()

try:
    jobs = {j["id"]: j for j in c.list_jobs(limit=200).get("items") or []}
except ApiError as exc:
    session.show_api_error(exc)
    st.stop()
if not jobs:
    st.info("No jobs to compare yet.")
    st.stop()



def _select_matching() -> None:
    # "How did my sweep do?": pick every finished job whose name holds the filter text.
    text = st.session_state.get("compare_filter", "").strip()
    st.session_state["compare_jobs"] = [
        i for i, j in jobs.items() if j["status"] == "SUCCEEDED" and text in j["name"]
    ][:48]


if "compare_jobs" not in st.session_state:
    _select_matching()  # start from the finished jobs, newest first
st.session_state["compare_jobs"] = [i for i in st.session_state["compare_jobs"] if i in jobs]
f1, f2 = st.columns([1, 3])
f1.text_input("Select finished runs whose name contains", key="compare_filter", on_change=_select_matching,
              placeholder="e.g. a sweep name")
chosen = f2.multiselect(
    "Runs", list(jobs), key="compare_jobs", placeholder="Pick jobs to compare",
    format_func=lambda i: f"{jobs[i]['name']} · {jobs[i]['status']} · {i[:8]}",
)
if not chosen:
    st.info("Pick one or more jobs above.")
    st.stop()

payloads: dict[str, dict[str, Any]] = {}
try:
    for job_id in chosen:
        payloads[job_id] = panels.metrics(c, jobs[job_id])
except ApiError as exc:
    session.show_api_error(exc)
    st.stop()

# ---- overlay -------------------------------------------------------------------------------------
st.subheader("Curves")
names = sorted({name for p in payloads.values() for name in p["series"]})
if names:
    o1, o2 = st.columns([4, 1], vertical_alignment="bottom")
    default = "train/loss" if "train/loss" in names else names[0]
    if st.session_state.get("compare_series") not in names:
        st.session_state["compare_series"] = default
    series = o1.selectbox("Series", names, key="compare_series")
    log_y = o2.toggle("Log scale", key="compare_log")
    runs = {f"{jobs[i]['name']} ({i[:6]})": shaping.series_frame(payloads[i], series) for i in chosen}
    st.plotly_chart(figures.compare_overlay(runs, series, log_y), key="compare_overlay", width="stretch")
else:
    st.caption("The chosen runs have no metric points yet.")

# ---- results table -------------------------------------------------------------------------------
st.subheader("Results by loss and α")
table = shaping.runs_frame([jobs[i] for i in chosen], {i: shaping.last_values(p) for i, p in payloads.items()})
metrics = shaping.metric_columns(table)
if not metrics:
    st.caption("No final metrics yet: they appear when the runs log or finish.")
    st.stop()
m1, m2 = st.columns([2, 3])
if st.session_state.get("compare_metric") not in metrics:
    preferred = [m for m in metrics if m.split("/")[-1] in ("preserved_pairs", "mcc", "accuracy", "f1", "rougeL")]
    st.session_state["compare_metric"] = (preferred or metrics)[0]
metric = m1.selectbox("Metric (final value)", metrics, key="compare_metric")
summary = stats.summarize(table, metric)
groups = [(str(r.loss), float(r.alpha)) for r in summary.itertuples()]
if not groups:
    st.caption(f"No run has `{metric}`.")
    st.stop()
if st.session_state.get("compare_baseline") not in groups:
    st.session_state["compare_baseline"] = next((g for g in groups if g[0] in ("cka", "kd-only")), groups[0])
baseline = m2.selectbox("Baseline", groups, key="compare_baseline", format_func=lambda g: f"{g[0]} · α={g[1]:g}")

left, right = st.columns([3, 2])
with left:
    st.dataframe(summary, hide_index=True, key="compare_summary",
                 column_config={"mean": st.column_config.NumberColumn(format="%.4f"),
                                "std": st.column_config.NumberColumn(format="%.4f")})
    tests = stats.compare_to_baseline(table, metric, baseline)
    st.markdown(f"**Against {baseline[0]} · α={baseline[1]:g}** (paired by seed; diff = run − baseline)")
    if tests.empty:
        st.caption("No group shares seeds with the baseline.")
    else:
        st.dataframe(tests, hide_index=True, key="compare_tests", column_config={
            "mean_diff": st.column_config.NumberColumn("mean diff", format="%.4f"),
            "t": st.column_config.NumberColumn(format="%.2f"),
            "p_value": st.column_config.NumberColumn("p (paired t)", format="%.4f"),
            "ci_low": st.column_config.NumberColumn("95% CI low", format="%.4f"),
            "ci_high": st.column_config.NumberColumn("95% CI high", format="%.4f"),
        })
        st.caption("p is blank with fewer than two pairs. A CI that excludes 0 means the difference "
                   "held across the resampled seeds.")
with right:
    st.plotly_chart(figures.results_bars(summary, metric), key="compare_bars", width="stretch")
with st.expander(f"All runs ({len(table)})"):
    st.dataframe(table, hide_index=True, key="compare_runs")
