"""Jobs page: every visible job with status, progress, timing and key metric; cancel / retry."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from dashboard import session, shaping
from dashboard.client import ApiClient, ApiError

STATUSES = ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]
STATUS_COLORS = {"QUEUED": "#6b7280", "RUNNING": "#1d4ed8", "SUCCEEDED": "#15803d", "FAILED": "#b91c1c",
                 "CANCELLED": "#b45309"}

st.title("Jobs")
c = session.require_client()

f1, f2, f3, f4 = st.columns([1, 2, 1, 1], vertical_alignment="bottom")
status = f1.selectbox("Status", ["all", *STATUSES], key="jobs_status")
name = f2.text_input("Name contains", key="jobs_name", placeholder="e.g. demo")
owner = f3.text_input("Owner", key="jobs_owner")
live = f4.toggle("Auto-refresh", value=True, key="jobs_live", help="Reload the table every 2 s.")


def _act(client: ApiClient, job: dict, action: str) -> None:
    try:
        if action == "cancel":
            client.cancel(job["id"])
        elif action == "retry":
            client.retry(job["id"])
        elif action == "delete":
            client.delete(job["id"])
    except ApiError as exc:
        session.show_api_error(exc)
        return
    st.toast(f"{action.capitalize()}: {job['name']}", icon=":material/check:")
    st.rerun()  # show the new status now, not at the next tick


def jobs_table() -> None:
    try:
        data = c.list_jobs(status=None if status == "all" else status, name=name or None, owner=owner or None,
                           limit=200)
    except ApiError as exc:
        session.show_api_error(exc)
        return
    items = data.get("items") or []
    if not items:
        st.info("No jobs yet. Submit the demo job (a small synthetic experiment) to see the dashboard live.")
        st.page_link("views/submit.py", label="Submit a job", icon=":material/add_circle:")
        return
    frame = shaping.jobs_frame(items, datetime.now(UTC))
    frame["id"] = frame["id"].str[:8]  # enough to tell jobs apart; the Job page shows the full id
    styled = frame.style.map(lambda s: f"color: {STATUS_COLORS.get(s, 'inherit')}; font-weight: 600",
                             subset=["status"])
    st.dataframe(
        styled, hide_index=True, key="jobs_table",
        column_order=["name", "kind", "status", "progress", "elapsed", "eta", "metric", "owner", "attempt",
                      "created", "id"],
        column_config={
            "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
            "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm:ss"),
            "eta": st.column_config.TextColumn("ETA"),
            "id": st.column_config.TextColumn("id", width="small"),
        },
    )
    st.caption(f"{len(items)} of {data.get('total', len(items))} jobs")

    by_id = {j["id"]: j for j in items}
    left, right = st.columns([2, 3], vertical_alignment="bottom")
    chosen = left.selectbox(
        "Job", list(by_id), key="jobs_selected",
        format_func=lambda i: f"{by_id[i]['name']} · {by_id[i]['status']} · {i[:8]}",
    )
    job = by_id[chosen]
    finished = job["status"] in ("SUCCEEDED", "FAILED", "CANCELLED")
    row = right.container(horizontal=True)
    if row.button("Open", icon=":material/open_in_new:", type="primary", key="jobs_open"):
        st.switch_page("views/job.py", query_params={"job": chosen})
    if row.button("Cancel", icon=":material/stop_circle:", disabled=finished or job.get("cancel_requested", False),
                 key="jobs_cancel"):
        _act(c, job, "cancel")
    if row.button("Retry", icon=":material/replay:", disabled=job["status"] not in ("FAILED", "CANCELLED"),
                 key="jobs_retry"):
        _act(c, job, "retry")
    if row.button("Delete", icon=":material/delete:", disabled=not finished, key="jobs_delete"):
        _act(c, job, "delete")


st.fragment(jobs_table, run_every="2s" if live else None)()
