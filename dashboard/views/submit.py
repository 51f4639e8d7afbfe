"""Submit page: a form for the common fields, a YAML editor for the full spec, and an α × seed sweep.

Both are validated through ``POST /jobs/validate``; each error is shown under the field its
``loc`` names (errors no field claims go above the form).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import streamlit as st

from dashboard import forms, session
from dashboard.client import ApiClient, ApiError
from geokd_core.spec import FEATURE_LOSSES, GLUE_TASKS, KD_KINDS, JobKind

st.title("Submit a job")
c = session.require_client()
st.session_state.setdefault("submit_nonce", uuid.uuid4().hex)
# Errors and results are tagged with the tab they came from ("form" or "yaml").
_source, _found = st.session_state.get("submit_errors", ("form", {}))
errors: dict[str, list[str]] = _found if _source == "form" else {}
claimed: list[str] = []  # paths of the fields drawn (each with everything below it)
claimed_exact: list[str] = []  # container paths (``loss``) whose own errors a field shows


def field(widget: Callable[..., Any], label: str, path: str, *containers: str, **kw: Any) -> Any:
    """A form widget bound to spec ``path``, with the validation errors of ``path`` (and of the
    ``containers`` themselves, e.g. a cross-field rule of ``loss``) under it."""
    key = f"f:{path}"
    if key not in st.session_state:
        st.session_state[key] = forms.DEFAULTS[path]
    value = widget(label, key=key, **kw)
    claimed.append(path)
    claimed_exact.extend(containers)
    for message in [*forms.messages_for(errors, path), *(m for c in containers for m in errors.get(c, []))]:
        st.markdown(f":red[:material/error: {message}]")
    return value


def _rename() -> None:
    """Keep an untouched default name in step with the kind (no "demo-synthetic" distill jobs)."""
    name = st.session_state.get("f:name", "")
    if name == forms.DEFAULTS["name"] or name.endswith("-job"):
        kind = st.session_state["f:kind"]
        st.session_state["f:name"] = forms.DEFAULTS["name"] if kind == "synthetic" else f"{kind}-job"


def form_values() -> dict[str, Any]:
    return {p: st.session_state[f"f:{p}"] for p in forms.DEFAULTS if f"f:{p}" in st.session_state}


def check(client: ApiClient, specs: list[dict[str, Any]], local: dict[str, list[str]]) -> dict[str, list[str]]:
    """Local parse errors plus the API's validation of every spec (first error set wins)."""
    found = dict(local)
    for spec in specs:
        problems = client.validate(spec)
        if problems:
            for path, msgs in forms.errors_by_path(problems).items():
                found.setdefault(path, msgs)
            break
    return found


def current_specs(what: str) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """The specs of the ``form``, the ``sweep`` or the ``yaml`` editor, from the widget values NOW.

    Read at click time, not bound at draw time: a field edited and a button clicked in one go
    arrive together, and the click must see the edit.
    """
    if what == "yaml":
        try:
            return [forms.from_yaml(st.session_state.get("yaml_text", ""))], {}
        except ValueError as exc:
            return [], {"": [str(exc)]}
    spec, local, seeds = forms.build_spec(form_values())
    if what == "sweep":
        try:
            sweep_seeds = forms.parse_int_list(st.session_state.get("sweep_seeds", ""))
        except ValueError as exc:
            return [], {**local, "sweep.seeds": [str(exc)]}
        return forms.sweep_specs(spec, sorted(st.session_state.get("sweep_alphas", [])), sweep_seeds), local
    if spec["kind"] == "synthetic":
        return [spec], local
    return [forms.with_seed(spec, s, len(seeds)) for s in seeds], local


def submit(what: str, create: bool = True) -> None:
    """Validate, then (``create``) make one job per spec. A button callback: runs before the redraw."""
    source = "yaml" if what == "yaml" else "form"
    st.session_state.pop("submit_result", None)
    specs, local = current_specs(what)
    if not specs and not local:
        return
    try:
        found = check(c, specs, local)
        st.session_state["submit_errors"] = (source, found)
        if found:
            return
        if not create:
            st.session_state["submit_result"] = (source, "valid", [])
            return
        nonce = st.session_state["submit_nonce"]
        jobs = [c.submit(s, idempotency_key=forms.idempotency_key(s, nonce)) for s in specs]
    except ApiError as exc:
        st.session_state["submit_result"] = (source, "error", str(exc))
        return
    st.session_state["submit_nonce"] = uuid.uuid4().hex  # the next click is a new submission
    st.session_state["submit_result"] = (source, "ok", [(j["id"], j["name"]) for j in jobs])


def show_result(source: str) -> None:
    result = st.session_state.get("submit_result")
    if result is None or result[0] != source:
        return
    _, kind, payload = result
    if kind == "error":
        st.error(payload, icon=":material/error:")
    elif kind == "valid":
        st.success("The spec is valid.", icon=":material/check_circle:")
    else:
        st.success(f"Submitted {len(payload)} job{'s' if len(payload) != 1 else ''}.", icon=":material/rocket_launch:")
        for job_id, name in payload[:12]:
            st.page_link("views/job.py", label=f"Open {name}", icon=":material/monitoring:",
                         query_params={"job": job_id})


form_tab, yaml_tab = st.tabs(["Form", "YAML"])
with form_tab:
    top = st.container()
    n1, n2 = st.columns([3, 1])
    with n1:
        field(st.text_input, "Name", "name")
    with n2:
        kind = field(st.selectbox, "Kind", "kind", "", options=[k.value for k in JobKind], on_change=_rename)

    if kind == "synthetic":
        st.caption("The paper's synthetic experiment: n ε-orthogonal teacher vectors in d_teacher dims, "
                   "a d_student-dim student trained with each feature loss. Runs in seconds on a CPU.")
        s1, s2, s3 = st.columns(3)
        with s1:
            field(st.number_input, "Vectors n", "synthetic.n", min_value=4, max_value=20000, step=64)
            field(st.number_input, "Steps", "synthetic.steps", min_value=1, step=50)
        with s2:
            field(st.number_input, "Teacher dim", "synthetic.d_teacher", min_value=2, step=8)
            field(st.number_input, "Student dim", "synthetic.d_student", "synthetic", min_value=1, step=8)
        with s3:
            field(st.number_input, "ε", "synthetic.eps", min_value=0.01, max_value=0.99, step=0.05)
            field(st.text_input, "Seeds", "synthetic.seeds", help="Comma-separated, e.g. `0, 1, 2`.")
        field(st.multiselect, "Feature losses", "synthetic.losses", options=list(FEATURE_LOSSES))
    else:
        m, d, lo, t = st.columns(4)
        with m:
            st.subheader("Models")
            if kind != "finetune":
                field(st.text_input, "Teacher (directory or hub id)", "teacher.model", "teacher")
            source = field(st.radio, "Student", "ui.student_source", "student", horizontal=True,
                           options=["config", "init_from_teacher", "model"],
                           format_func={"config": "new (config)", "init_from_teacher": "teacher layers",
                                        "model": "existing"}.get)
            if source == "model":
                field(st.text_input, "Student model", "student.model")
            elif source == "init_from_teacher":
                field(st.text_input, "Teacher layers to copy", "student.init_from_teacher.layers")
            else:
                field(st.number_input, "Layers", "student.config.num_layers", "student.config", min_value=1)
                field(st.number_input, "Hidden size", "student.config.hidden_size", min_value=8, step=64)
                field(st.number_input, "Heads", "student.config.num_heads", min_value=1)
        with d:
            st.subheader("Data")
            data_source = field(st.selectbox, "Source", "data.source", "data", options=["glue", "file", "instruct"])
            if data_source == "glue":
                field(st.selectbox, "GLUE task", "data.task", options=list(GLUE_TASKS))
            field(st.text_input, "Path (optional for GLUE)", "data.path")
            field(st.number_input, "Max train examples (0 = all)", "data.max_train_examples", min_value=0)
        with lo:
            st.subheader("Loss")
            field(st.selectbox, "Feature loss", "loss.feature", options=[forms.NO_FEATURE, *FEATURE_LOSSES])
            field(st.slider, "α (feature vs KD)", "loss.alpha", min_value=0.0, max_value=1.0, step=0.05)
            field(st.number_input, "γ (CE weight)", "loss.gamma", min_value=0.0, step=0.1)
            field(st.selectbox, "KD kind", "loss.kd_kind", options=list(KD_KINDS))
            field(st.number_input, "Temperature", "loss.temperature", min_value=0.1, step=0.5)
            layer_map = field(st.selectbox, "Layer mapping", "loss.layer_map", "loss",
                              options=["uniform", "last", "explicit", "suggest"])
            if layer_map == "explicit":
                field(st.text_input, "Pairs (student:teacher)", "loss.pairs", placeholder="1:2, 2:4, 3:6")
        with t:
            st.subheader("Training")
            field(st.number_input, "Epochs", "train.epochs", min_value=0.1, step=1.0)
            field(st.number_input, "Max steps (0 = by epochs)", "train.max_steps", min_value=0)
            field(st.number_input, "Batch size", "train.batch_size", min_value=1)
            field(st.number_input, "Learning rate", "train.lr", min_value=1e-7, format="%.1e", step=1e-5)
            field(st.number_input, "Gram snapshot every (steps)", "train.gram_every", min_value=0)
            field(st.text_input, "Seeds (one job each)", "ui.seeds", help="Comma-separated.")

    spec, _, _ = forms.build_spec(form_values())
    specs, _ = current_specs("form")
    buttons = st.container(horizontal=True)
    buttons.button("Validate", icon=":material/rule:", on_click=submit, args=("form", False),
              key="form_validate")
    buttons.button(f"Submit {len(specs)} job{'s' if len(specs) != 1 else ''}", type="primary",
              icon=":material/rocket_launch:", on_click=submit, args=("form",),
              key="form_submit")
    with top:
        for message in forms.unclaimed(errors, claimed, claimed_exact):
            st.error(message, icon=":material/error:")
        show_result("form")

    if kind != "synthetic":
        with st.expander("Sweep α × seeds (the paper's grid)", icon=":material/grid_on:"):
            alphas = st.multiselect("α values", list(forms.ALPHA_GRID), default=list(forms.ALPHA_GRID),
                                    key="sweep_alphas")
            sweep_seeds_text = st.text_input("Seeds", value="0, 1, 2", key="sweep_seeds")
            try:
                sweep_seeds = forms.parse_int_list(sweep_seeds_text)
            except ValueError as exc:
                st.markdown(f":red[:material/error: {exc}]")
                sweep_seeds = []
            sweep = forms.sweep_specs(spec, sorted(alphas), sweep_seeds)
            st.caption(f"{len(alphas)} α × {len(sweep_seeds)} seeds = {len(sweep)} jobs, "
                       f"named `{spec['name']}-a<α>-s<seed>` and tagged `sweep={spec['name']}`.")
            st.button(f"Submit sweep ({len(sweep)} jobs)", icon=":material/grid_on:", disabled=not sweep,
                      on_click=submit, args=("sweep",), key="sweep_submit")

with yaml_tab:
    st.caption("The full spec (every field of `geokd_core.spec.JobSpec`). Starts from the form.")
    if "yaml_text" not in st.session_state or st.session_state.pop("yaml_reset", False):
        st.session_state["yaml_text"] = forms.to_yaml(specs[0] if specs else spec)
    st.button("Reset from form", key="yaml_from_form", on_click=lambda: st.session_state.update(yaml_reset=True))
    text = st.text_area("Spec (YAML)", key="yaml_text", height=380)
    yaml_errors: dict[str, list[str]] = {}
    try:
        yaml_specs = [forms.from_yaml(text)]
    except ValueError as exc:
        yaml_errors, yaml_specs = {"": [str(exc)]}, []
    for path, msgs in (yaml_errors or (_found if _source == "yaml" else {})).items():
        for message in msgs:
            st.markdown(f":red[:material/error: `{path or 'spec'}`: {message}]")
    yaml_buttons = st.container(horizontal=True)
    yaml_buttons.button("Validate", icon=":material/rule:", disabled=not yaml_specs, on_click=submit,
              args=("yaml", False), key="yaml_validate")
    yaml_buttons.button("Submit", type="primary", icon=":material/rocket_launch:", disabled=not yaml_specs,
              on_click=submit, args=("yaml",), key="yaml_submit")
    show_result("yaml")
