"""Job page: live curves, alignment, Gram heatmaps, layer similarity, evals, logs and downloads.

The job comes from the ``?job=<id>`` query parameter (or the picker). While the job is live,
the data sections sit in a fragment that reruns every 2 s; when the job finishes the whole page
reruns once, the timer stops and the artifacts appear.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import streamlit as st

from dashboard import panels, session, shaping
from dashboard.client import ApiClient, ApiError

FINISHED = ("SUCCEEDED", "FAILED", "CANCELLED")
BADGE_COLORS = {"QUEUED": "gray", "RUNNING": "blue", "SUCCEEDED": "green", "FAILED": "red", "CANCELLED": "orange"}

c = session.require_client()


def _pick(jobs: dict[str, dict[str, Any]]) -> str | None:
    """The job to show: ``?job=`` if set, else the newest; the picker rewrites the query parameter."""
    current = st.query_params.get("job")
    options = list(jobs)
    if current and current not in jobs:
        options.insert(0, current)
    if not options:
        return None

    def label(i: str) -> str:
        j = jobs.get(i)
        # No status here: the picker is drawn by the full run and would show a stale one while live.
        return f"{j['name']} · {j['kind']} · {i[:8]}" if j else i

    def changed() -> None:
        st.query_params["job"] = st.session_state["job_pick"]

    if not current:
        current = st.query_params["job"] = options[0]  # pinned: a newer job must not take over the page
    if st.session_state.get("job_pick") != current:
        st.session_state["job_pick"] = current
    return st.columns([2, 3])[0].selectbox("Job", options, key="job_pick", format_func=label, on_change=changed,
                                           label_visibility="collapsed")


def header(client: ApiClient, job: dict[str, Any]) -> None:
    title, actions = st.columns([5, 2], vertical_alignment="center")
    with title:
        st.markdown(f"## {job['name']} :{BADGE_COLORS.get(job['status'], 'gray')}-badge[{job['status']}]")
        spec = job.get("spec") or {}
        bits = [job["kind"], f"owner {job.get('owner') or '—'}", f"attempt {job.get('attempt') or 1}",
                f"id `{job['id']}`"]
        if job["kind"] != "synthetic" and spec.get("loss"):
            loss = spec["loss"]
            bits.insert(1, f"{loss.get('feature') or 'KD only'} · α={loss.get('alpha')}")
        st.caption(" · ".join(bits))
    with actions:
        a, b = st.columns(2)
        if a.button("Cancel", icon=":material/stop_circle:", key="job_cancel", width="stretch",
                    disabled=job["status"] in FINISHED or job.get("cancel_requested", False)):
            _act(client.cancel, job)
        if b.button("Retry", icon=":material/replay:", key="job_retry", width="stretch",
                    disabled=job["status"] not in ("FAILED", "CANCELLED")):
            _act(client.retry, job)
    elapsed, eta = shaping.timing(job, datetime.now(UTC))
    p = job.get("progress") or {}
    text = f"step {p.get('step') or 0} / {p.get('total_steps') or '?'} · elapsed {shaping.format_duration(elapsed)}"
    if job["status"] == "RUNNING":
        text += f" · ETA {shaping.format_duration(eta)}"
    st.progress(shaping.progress_fraction(job), text=text)
    if job.get("cancel_requested") and job["status"] == "RUNNING":
        st.warning("Cancellation requested: the job stops at its next step and saves a checkpoint.")
    if job.get("error"):
        st.error(job["error"], icon=":material/error:")


def _act(action: Any, job: dict[str, Any]) -> None:
    try:
        action(job["id"])
    except ApiError as exc:
        session.show_api_error(exc)
        return
    st.rerun()  # whole page: the live timer must start (retry) or the status change show (cancel)


def live(job_id: str, was_live: bool) -> None:
    try:
        job = c.get_job(job_id)
        header(c, job)
        payload = panels.metrics(c, job)
        version = (payload["last_step"], job["status"])
        panels.curves(job, payload)
        panels.gram(c, job, version)
        if job["kind"] != "synthetic":
            panels.similarity_and_evals(c, job, version)
        panels.logs(c, job)
    except ApiError as exc:
        session.show_api_error(exc)
        return
    if was_live and job["status"] in FINISHED:
        st.rerun()  # stop the timer and show the artifacts


try:
    recent = {j["id"]: j for j in c.list_jobs(limit=50).get("items") or []}
except ApiError as exc:
    session.show_api_error(exc)
    st.stop()
job_id = _pick(recent)
if job_id is None:
    st.title("Job")
    st.info("No jobs yet.")
    st.page_link("views/submit.py", label="Submit the demo job", icon=":material/add_circle:")
    st.stop()
try:
    first = c.get_job(job_id)
except ApiError as exc:
    session.show_api_error(exc)
    st.stop()
is_live = first["status"] not in FINISHED
st.fragment(live, run_every="2s" if is_live else None)(job_id, is_live)

st.divider()
left, right = st.columns(2)
with left:
    st.subheader("Artifacts")
    try:
        panels.artifacts(c, first)
    except ApiError as exc:
        session.show_api_error(exc)
with right, st.expander("Spec", icon=":material/data_object:"):
    st.json(first.get("spec") or {}, expanded=2)
