"""Sections of the Job page (streamlit): fetch through the client, shape, draw.

Each section is called from the page's live fragment. Fetching is incremental: metric points
come with ``?since=`` and merge into a per-job cache in session state; Gram snapshots and the
layer-similarity matrix are re-read only when new metric steps arrived (``version``). Widget keys
are stable, so the user's layer / step / zoom survive every refresh.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from typing import Any

import streamlit as st

from dashboard import figures, shaping
from dashboard.client import ApiClient

_GRAM_CACHE_SIZE = 8  # snapshots kept per session (a 512×512 probe Gram is ~2 MB of JSON)


def metrics(c: ApiClient, job: dict[str, Any]) -> dict[str, Any]:
    """All metric points of ``job`` so far, fetching only steps after the cached last step."""
    key = f"metrics:{job['id']}"
    cached = st.session_state.get(key)
    if cached is None or cached["attempt"] != job.get("attempt"):
        # A new attempt resumes from its checkpoint and rewrites later steps: start over.
        cached = {"attempt": job.get("attempt"), "payload": shaping.empty_metrics()}
    update = c.metrics(job["id"], since=cached["payload"]["last_step"])
    cached["payload"] = shaping.merge_metrics(cached["payload"], update)
    st.session_state[key] = cached
    return cached["payload"]


def curves(job: dict[str, Any], payload: dict[str, Any]) -> None:
    """Loss curves and alignment metrics (or, for a synthetic job, loss and preserved pairs)."""
    frame = shaping.metrics_frame(payload)
    log_y = st.toggle("Log scale", key="curves_log", help="Log-scale y axis for the loss curves.")
    left, right = st.columns(2)
    if job.get("kind") == "synthetic":
        synth = shaping.synthetic_frame(frame)
        left.plotly_chart(figures.synthetic_curves(synth, "loss", log_y), key="curve_loss", width="stretch")
        right.plotly_chart(figures.synthetic_curves(synth, "preserved_pairs"), key="curve_align", width="stretch")
        return
    left.plotly_chart(figures.loss_curves(shaping.train_terms(frame), log_y), key="curve_loss", width="stretch")
    right.plotly_chart(figures.alignment_curves(shaping.alignment_frame(frame)), key="curve_align",
                       width="stretch")


def _gram(c: ApiClient, job_id: str, layer: str | None, step: int | None, version: Any) -> dict | None:
    # An explicit step never changes; "latest" is re-read only when new steps were logged.
    key = (job_id, layer, step, None if step is not None else version)
    cache: OrderedDict = st.session_state.setdefault("gram_cache", OrderedDict())
    if key not in cache:
        cache[key] = c.gram(job_id, layer=layer, step=step)
        while len(cache) > _GRAM_CACHE_SIZE:
            cache.popitem(last=False)
    return cache[key]


def _follow_changed() -> None:
    # Turning "follow" off starts the slider at the step on screen, not at an old choice.
    if not st.session_state.get("gram_follow"):
        st.session_state["gram_step"] = st.session_state.get("_gram_shown_step")


def gram(c: ApiClient, job: dict[str, Any], version: Any) -> None:
    """Teacher | student | difference Gram heatmaps with a layer selector and a step slider."""
    st.subheader("Gram matrices of the probe batch")
    layer = st.session_state.get("gram_layer")
    follow = st.session_state.setdefault("gram_follow", True)
    step = None if follow else st.session_state.get("gram_step")
    snap = _gram(c, job["id"], layer, step, version)
    if snap is None and (layer is not None or step is not None):
        snap = _gram(c, job["id"], None, None, version)  # the choice belongs to another job
    if not snap or not snap.get("layers") or snap.get("teacher") is None:
        st.info("No Gram snapshots yet: they appear at the first snapshot step.", icon=":material/grid_on:")
        return
    # Options only ever grow at the end while the job runs, so the browser's selection never
    # shifts onto another layer when a new one appears.
    layers = shaping.stable_order(st.session_state.get(f"_gram_layers:{job['id']}", []), snap["layers"])
    st.session_state[f"_gram_layers:{job['id']}"] = layers
    if st.session_state.get("gram_layer") not in layers:
        st.session_state["gram_layer"] = snap["layer"]
    a, b, s = st.columns([3, 2, 5], vertical_alignment="bottom")
    a.selectbox("Layer", layers, key="gram_layer")
    b.toggle("Follow latest", key="gram_follow", on_change=_follow_changed,
             help="Show the newest snapshot as it arrives; turn off to pick a step.")
    if len(snap["steps"]) <= 1:
        s.caption(f"step {snap['step']} (the only snapshot so far)")
    elif follow:
        # Read-only while following: a live slider would fight the refresh for its value.
        s.select_slider("Step", options=snap["steps"], value=snap["step"], disabled=True)
    else:
        if st.session_state.get("gram_step") not in snap["steps"]:
            st.session_state["gram_step"] = snap["step"]
        s.select_slider("Step", options=snap["steps"], key="gram_step")
    st.session_state["_gram_shown_step"] = snap["step"]
    figs = figures.gram_heatmaps(snap["teacher"], snap["student"], label=str(snap["layer"]))
    for col, name in zip(st.columns(3), ("teacher", "student", "difference"), strict=True):
        col.plotly_chart(figs[name], key=f"gram_{name}", width="stretch")
    k = len(snap["teacher"])
    st.caption(f"Step {snap['step']} · {k}×{k} probe Gram"
               + (f", shown block-averaged to {figures.MAX_HEATMAP}×{figures.MAX_HEATMAP}" if k > figures.MAX_HEATMAP
                  else "") + ". Difference = teacher − student (red: the student under-represents a similarity).")


def similarity_and_evals(c: ApiClient, job: dict[str, Any], version: Any) -> None:
    """The teacher × student layer-similarity matrix next to the eval metrics table."""
    key = ("layersim", job["id"], version)
    if st.session_state.get("_layersim_key") != key:
        st.session_state["_layersim"] = c.layer_similarity(job["id"])
        st.session_state["_layersim_key"] = key
    evals = shaping.evals_frame(c.evals(job["id"]))
    left, right = st.columns(2)
    left.plotly_chart(figures.layer_similarity_heatmap(st.session_state["_layersim"]), key="layersim",
                      width="stretch")
    with right:
        st.subheader("Evaluation")
        if evals.empty:
            st.caption("No evaluation yet (GLUE metric per task; ROUGE-L for instruction sets).")
        else:
            st.dataframe(evals, hide_index=True, key="evals_table")


def logs(c: ApiClient, job: dict[str, Any]) -> None:
    lines = c.logs(job["id"], tail=100)
    with st.expander(f"Log tail ({len(lines)} lines)", icon=":material/article:"):
        st.code(shaping.logs_text(lines) or "(no log lines yet)", language=None)


def artifacts(c: ApiClient, job: dict[str, Any]) -> None:
    """Download buttons; the bytes are fetched only when a button is clicked."""
    items = c.artifacts(job["id"])
    if not items:
        st.caption("No artifacts yet: the student is published when the job finishes.")
        return
    for i, item in enumerate(items):
        size = item.get("size") or 0
        name = str(item["name"])
        file_name = name if "." in name else f"{name}.zip"
        st.download_button(f"{name} ({size / 1e6:.1f} MB)", data=functools.partial(c.download_artifact, job["id"], name),
                           file_name=file_name, icon=":material/download:", key=f"artifact_{i}", on_click="ignore")
