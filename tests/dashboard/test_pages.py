"""AppTest smoke runs of every page against a REAL API (uvicorn subprocess) seeded with known jobs.

AppTest runs the page script in-process and shows Plotly charts as ``UnknownElement``s whose figure
JSON is in ``.proto.spec``; the values checked here are the ones tests/dashboard/seed.py posted.
"""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path

import httpx
import numpy as np
import pytest
from scipy import stats as sps
from streamlit.testing.v1 import AppTest

from tests.dashboard.conftest import SeededApi, open_page
from tests.dashboard.seed import DISTILL_RESULTS, GRAM_K, SYNTH_LOSSES, SYNTH_SEEDS, Seeder, distill_spec
from tests.utils.live_api import live_api

PAGES = ["views/jobs.py", "views/submit.py", "views/job.py", "views/compare.py"]


def figures_of(at: AppTest) -> dict[str, dict]:
    """Plotly figures on the page by title."""
    out = {}
    for el in at.get("plotly_chart"):
        spec = json.loads(el.proto.spec)
        out[(spec["layout"].get("title") or {}).get("text", "")] = spec
    return out


def arr(value: list | dict) -> np.ndarray:
    """A trace array; Plotly ≥ 6 writes numpy arrays as typed base64 (``bdata``) in figure JSON."""
    if isinstance(value, dict):
        out = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        return out.reshape([int(x) for x in str(value["shape"]).split(",")]) if "shape" in value else out
    return np.asarray(value, dtype=float)


def z_of(fig: dict) -> np.ndarray:
    return arr(fig["data"][0]["z"])


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def api_jobs(seeded: SeededApi, **params: str) -> list[dict]:
    r = httpx.get(f"{seeded.api.base_url}/api/v1/jobs", params={"limit": 200, **params}, headers=seeded.api.headers)
    r.raise_for_status()
    return r.json()["items"]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_asks_for_a_key_first(seeded: SeededApi, page: str) -> None:
    at = open_page(seeded.api, page, key=None)
    assert not at.exception
    assert any("Enter your API key" in i.value for i in at.info)
    assert not at.get("plotly_chart") and not at.dataframe


def test_a_wrong_key_is_reported_in_the_sidebar(seeded: SeededApi) -> None:
    at = open_page(seeded.api, "views/jobs.py", key="gk_not-a-key")
    assert any("Key rejected" in e.value for e in at.sidebar.error)


def test_an_unreachable_api_is_reported(seeded: SeededApi) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    at = AppTest.from_file(str(open_page.__globals__["APP"]), default_timeout=60)
    at.session_state["api_url"] = dead
    at.session_state["api_key"] = "anything"
    at.run()
    assert not at.exception
    assert any("unreachable" in e.value for e in [*at.error, *at.sidebar.error])


def test_with_auth_off_no_key_is_needed(tmp_path: Path) -> None:
    # `geokd up` runs the API with auth off: a newcomer goes straight to the pages.
    with live_api(tmp_path / "home", env={"GEOKD_AUTH_ENABLED": "false"}) as api:
        at = open_page(api, "views/jobs.py", key=None)
        assert not at.exception and not at.error
        assert not any("Enter your API key" in i.value for i in at.info)
        assert any("auth is off" in c.value for c in at.sidebar.caption)


def test_jobs_page_lists_every_job_with_progress(seeded: SeededApi) -> None:
    at = open_page(seeded.api, "views/jobs.py")
    no_errors(at)
    table = at.dataframe[0].value
    expected = {j["name"] for j in api_jobs(seeded)}
    assert set(table["name"]) == expected
    row = table[table["name"] == "procrustes-a0.5-s1"].iloc[0]
    assert row["status"] == "SUCCEEDED" and row["progress"] == 1.0 and row["metric"] == "eval/mcc = 0.47"
    assert table[table["name"] == "waiting-job"].iloc[0]["progress"] == 0.0


def test_jobs_page_cancel_then_retry(seeded: SeededApi) -> None:
    job_id = Seeder(seeded.api.base_url, seeded.api.admin_key, seeded.api.worker_token).submit(
        distill_spec("to-cancel", "gram", 0.4, 0))
    at = open_page(seeded.api, "views/jobs.py")
    at.selectbox(key="jobs_selected").set_value(job_id).run()
    at.button(key="jobs_cancel").click().run()
    no_errors(at)
    status = {j["id"]: j["status"] for j in api_jobs(seeded)}
    assert status[job_id] == "CANCELLED"
    at.button(key="jobs_retry").click().run()
    assert {j["id"]: j["status"] for j in api_jobs(seeded)}[job_id] == "QUEUED"


def test_job_page_synthetic_demo(seeded: SeededApi) -> None:
    at = open_page(seeded.api, "views/job.py", {"job": seeded.jobs.synthetic_id})
    no_errors(at)
    figs = figures_of(at)
    loss = figs["Feature loss"]
    assert len(loss["data"]) == len(SYNTH_LOSSES) * len(SYNTH_SEEDS)
    assert all(arr(trace["x"])[0] == 0 for trace in loss["data"])  # each run on its own step axis
    assert len(figs["Preserved ε-orthogonal pairs"]["data"]) == 4
    layers = at.selectbox(key="gram_layer")
    assert sorted(layers.options) == sorted(f"{loss}/seed{seed}" for loss in SYNTH_LOSSES for seed in SYNTH_SEEDS)
    t, s, d = (z_of(figs[k]) for k in (f"Teacher · {layers.value}", f"Student · {layers.value}",
                                                             "Teacher − student"))
    assert t.shape == (16, 16)
    np.testing.assert_allclose(d, t - s, atol=1e-9)
    assert figs["Teacher − student"]["layout"]["coloraxis"]["cmid"] == 0
    assert "Layer similarity (CKA)" not in figs  # a synthetic job has no layer mapping


def test_job_page_keeps_layer_and_step_choices(seeded: SeededApi) -> None:
    at = open_page(seeded.api, "views/job.py", {"job": seeded.jobs.synthetic_id})
    at.selectbox(key="gram_layer").set_value("procrustes/seed1").run()
    assert at.select_slider[0].disabled  # read-only while following the newest snapshot
    at.toggle(key="gram_follow").set_value(False).run()
    slider = at.select_slider(key="gram_step")
    first, last = slider.options[0], slider.options[-1]
    assert str(slider.value) == last  # starts at the step that was on screen
    slider.set_value(int(first)).run()
    no_errors(at)
    at.run()  # a refresh keeps both choices
    assert at.selectbox(key="gram_layer").value == "procrustes/seed1"
    assert str(at.select_slider(key="gram_step").value) == first
    assert "Teacher · procrustes/seed1" in figures_of(at)
    assert any(c.value.startswith(f"Step {first} ") for c in at.caption)


def test_job_page_distill_run(seeded: SeededApi) -> None:
    job_id = seeded.jobs.distill_ids[0]
    at = open_page(seeded.api, "views/job.py", {"job": job_id})
    no_errors(at)
    figs = figures_of(at)
    assert [t["name"] for t in figs["Loss"]["data"]] == ["total", "CE", "KD", "feature"]
    assert len(figs["Alignment per mapped layer"]["data"]) == 4  # 2 pairs × (cka, procrustes)
    assert z_of(figs["Teacher · s1-t2"]).shape == (128, 128)  # from 200×200
    assert any(f"{GRAM_K}×{GRAM_K} probe Gram, shown block-averaged to 128×128" in c.value for c in at.caption)
    sim = figs["Layer similarity (CKA)"]["data"][0]
    np.testing.assert_allclose(z_of(figs["Layer similarity (CKA)"]), [[0.9, 0.5], [0.4, 0.8]])
    assert list(sim["y"]) == ["t1", "t2"]
    evals = at.dataframe[0].value
    assert evals.iloc[0]["mcc"] == DISTILL_RESULTS[("procrustes", 0.5, 0)]
    at.toggle(key="curves_log").set_value(True).run()
    assert figures_of(at)["Loss"]["layout"]["yaxis"]["type"] == "log"


def test_job_page_of_a_queued_job_without_data(seeded: SeededApi) -> None:
    at = open_page(seeded.api, "views/job.py", {"job": seeded.jobs.queued_id})
    no_errors(at)
    assert any("No Gram snapshots yet" in i.value for i in at.info)
    figs = figures_of(at)
    assert figs["Loss"]["data"] == [] and figs["Layer similarity"]["data"] == []


def test_job_page_without_a_query_shows_the_newest_job(seeded: SeededApi) -> None:
    at = open_page(seeded.api, "views/job.py")
    no_errors(at)
    newest = api_jobs(seeded)[0]
    assert at.selectbox(key="job_pick").value == newest["id"]


def test_submit_form_shows_errors_next_to_fields_then_submits(seeded: SeededApi) -> None:
    at = open_page(seeded.api, "views/submit.py")
    no_errors(at)
    at.text_input(key="f:name").set_value("from-the-form")
    at.number_input(key="f:synthetic.d_student").set_value(128).run()
    at.button(key="form_validate").click().run()
    msg = "d_student must be <= d_teacher"
    errors = [m.value for m in at.markdown if msg in m.value]
    assert len(errors) == 1  # shown once, under the Student dim field
    assert not any(msg in e.value for e in at.error)  # … not in the banner above the form
    at.number_input(key="f:synthetic.d_student").set_value(8).run()
    at.button(key="form_submit").click().run()
    no_errors(at)
    assert any("Submitted 1 job" in s.value for s in at.success)
    created = [j for j in api_jobs(seeded) if j["name"] == "from-the-form"]
    assert len(created) == 1 and created[0]["spec"]["synthetic"]["d_student"] == 8


def test_submit_yaml_editor_reports_server_side_problems(seeded: SeededApi) -> None:
    at = open_page(seeded.api, "views/submit.py")
    at.text_area(key="yaml_text").set_value(
        "name: too-big\nkind: distill\nteacher: {model: prajjwal1/bert-tiny}\n"
        "student: {config: {num_layers: 2, hidden_size: 64, num_heads: 2}}\n"
        "data: {source: glue, task: rte}\ntrain: {batch_size: 100000}\n").run()
    at.button(key="yaml_validate").click().run()
    assert not at.exception
    assert any("`train.batch_size`" in m.value and "limit" in m.value for m in at.markdown)
    at.text_area(key="yaml_text").set_value("name: [unclosed\n").run()
    assert any("YAML" in m.value for m in at.markdown) and at.button(key="yaml_submit").disabled


def test_sweep_submits_one_job_per_alpha_and_seed(seeded: SeededApi) -> None:
    at = open_page(seeded.api, "views/submit.py")
    at.selectbox(key="f:kind").set_value("distill").run()
    assert at.text_input(key="f:name").value == "distill-job"  # the untouched demo name follows the kind
    at.text_input(key="f:teacher.model").set_value("prajjwal1/bert-tiny")
    at.text_input(key="f:name").set_value("sweep-test")
    at.multiselect(key="sweep_alphas").set_value([0.0, 1.0])
    at.text_input(key="sweep_seeds").set_value("3, 4").run()
    at.button(key="sweep_submit").click().run()
    no_errors(at)
    made = {(j["spec"]["loss"]["alpha"], j["spec"]["train"]["seed"]) for j in api_jobs(seeded, name="sweep-test")}
    assert made == {(0.0, 3), (0.0, 4), (1.0, 3), (1.0, 4)}


def test_compare_page_stats_match_the_seeded_results(seeded: SeededApi) -> None:
    at = open_page(seeded.api, "views/compare.py")
    no_errors(at)
    assert at.selectbox(key="compare_metric").value == "eval/mcc"
    assert at.selectbox(key="compare_baseline").value == ("cka", 0.5)
    summary = at.dataframe[0].value.set_index("loss")
    for loss in ("cka", "procrustes"):
        values = [v for (lo, _, _), v in DISTILL_RESULTS.items() if lo == loss]
        assert summary.loc[loss, "mean"] == pytest.approx(np.mean(values))
        assert summary.loc[loss, "std"] == pytest.approx(np.std(values, ddof=1))
    test = at.dataframe[1].value.iloc[0]
    ours = [DISTILL_RESULTS[("procrustes", 0.5, s)] for s in range(3)]
    base = [DISTILL_RESULTS[("cka", 0.5, s)] for s in range(3)]
    assert test["loss"] == "procrustes" and test["n_pairs"] == 3
    assert test["p_value"] == pytest.approx(sps.ttest_rel(ours, base).pvalue)
    overlay = figures_of(at)["train/loss"]
    kinds = {j["id"]: j["kind"] for j in api_jobs(seeded)}
    chosen = at.multiselect(key="compare_jobs").value
    assert len(overlay["data"]) == sum(kinds[i] == "distill" for i in chosen)  # synthetic jobs log no train/loss


def test_submit_distill_server_problems_show_once_under_their_fields(seeded: SeededApi) -> None:
    at = open_page(seeded.api, "views/submit.py")
    at.selectbox(key="f:kind").set_value("distill").run()
    at.text_input(key="f:teacher.model").set_value("/etc/passwd")
    at.number_input(key="f:train.batch_size").set_value(5000).run()
    at.button(key="form_validate").click().run()
    assert not at.exception
    shown = [m.value for m in at.markdown if ":red[" in m.value]
    assert sum("outside the allowed roots" in m for m in shown) == 1
    assert sum("GEOKD_MAX_BATCH_SIZE" in m for m in shown) == 1
    assert not at.error  # every problem had a field to sit under


def test_compare_filter_selects_a_sweep(seeded: SeededApi) -> None:
    at = open_page(seeded.api, "views/compare.py")
    at.text_input(key="compare_filter").set_value("cka-").run()
    no_errors(at)
    names = {j["id"]: j["name"] for j in api_jobs(seeded)}
    assert sorted(names[i] for i in at.multiselect(key="compare_jobs").value) == [
        "cka-a0.5-s0", "cka-a0.5-s1", "cka-a0.5-s2"]
    assert list(at.dataframe[0].value["loss"]) == ["cka"]
