"""``geokd reproduce glue`` end to end: a real API, a real Celery worker, a tiny BERT teacher.

One task (RTE fixture), two methods, two seeds, the ``tiny`` budget, one student setting: the
teacher is fine-tuned by a job, downloaded, unpacked under the model root and distilled from; α is
chosen on holdout; the report files hold every cell. A second run must submit nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.utils.glue_fixtures import write_glue
from tests.utils.live_api import live_api
from tests.utils.live_worker import start_worker
from tests.utils.tiny_models import make_bert_dir

pytestmark = pytest.mark.slow

# Load the engine once in the worker's main process: each job then forks with it imported
# (max_tasks_per_child=1), instead of importing transformers per job.
PRELOAD = ",".join(["torch", "torch._dynamo", "transformers", "transformers.models.bert.modeling_bert",
                    "geokd_core.train", "geokd_core.data", "geokd_core.evaluate"])


def _reproduce(api, out: Path, glue: Path, teacher: Path, models: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from geokd_core.cli import main; main()", "reproduce", "glue",
           "--budget", "tiny", "--tasks", "rte", "--methods", "kd_only,procrustes_kd", "--seeds", "2",
           "--settings", "L2-init", "--data", str(glue), "--base-model", str(teacher), "--out", str(out),
           "--models-dir", str(models), "--api-url", api.base_url, "--api-key", api.admin_key, "--poll", "0.2", "--concurrency", "3", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=150)


def _scores(out: Path) -> dict[str, Any]:
    report = json.loads((out / "results.json").read_text())
    return {"tables": report["tables"], "significance": report["significance"]}


def _without_job_times(md: str) -> str:
    """results.md without its "N jobs, M min of job time" note (wall times vary from run to run)."""
    return "\n".join(line for line in md.splitlines() if " min of job time in total" not in line)


def test_reproduce_glue_through_the_service(tmp_path: Path) -> None:
    data_root, model_root = tmp_path / "data", tmp_path / "models"
    glue = write_glue(data_root / "glue", ("rte",), n_train=40, n_dev=16)
    teacher = make_bert_dir(model_root / "base", num_layers=4, hidden=32, heads=2)
    env = {"GEOKD_DATA_ROOTS": json.dumps([str(data_root)]), "GEOKD_MODEL_ROOTS": json.dumps([str(model_root)])}
    out = tmp_path / "results" / "glue"
    with live_api(tmp_path / "home", env=env) as api:
        worker = start_worker(api.base_url, api.worker_token, api.home, f"sqla+sqlite:///{api.home / 'broker.db'}",
                              extra_env={**env, "GEOKD_WORKER_PRELOAD": PRELOAD}, concurrency=2)
        try:
            first = _reproduce(api, out, glue, teacher, model_root / "teachers", "--delete-finished")
            assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:] + worker.log()[-3000:]
            kept = api_jobs(api)
            second = _reproduce(api, out, glue, teacher, model_root / "teachers")
            assert second.returncode == 0, second.stderr[-3000:]
            assert api_jobs(api) == kept  # nothing resubmitted: the runs store answers for deleted jobs
            md, scores = (out / "results.md").read_text(), _scores(out)
            (out / "results.md").unlink()
            third = _reproduce(api, out, glue, teacher, model_root / "teachers", "--report-only")
            assert third.returncode == 0, third.stderr[-3000:]
            assert api_jobs(api) == kept and (out / "results.md").read_text() == md
            # The teacher is lost twice over (its job deleted, as after a database reset, and its
            # unpacked copy removed): it is fine-tuned again, nothing else runs, the report stands.
            httpx.delete(f"{api.base_url}/api/v1/jobs/{kept[0]['id']}", headers=api.headers).raise_for_status()
            shutil.rmtree(model_root / "teachers")
            stopped = _reproduce(api, out, glue, teacher, model_root / "teachers")  # a 404 may be a wrong key
            assert stopped.returncode == 1 and "--refit-missing-teachers" in stopped.stderr, stopped.stderr[-3000:]
            assert "Traceback" not in stopped.stderr and api_jobs(api) == []
            fourth = _reproduce(api, out, glue, teacher, model_root / "teachers", "--refit-missing-teachers")
            assert fourth.returncode == 0, fourth.stdout[-3000:] + fourth.stderr[-3000:]
            assert "teacher is not in" in fourth.stdout and "fine-tuning it again" in fourth.stdout, fourth.stdout
            refit = api_jobs(api)
            assert [j["name"] for j in refit] == ["glue-rte-teacher-teacher-s0"] and refit[0]["id"] != kept[0]["id"]
            # The same scores (the fine-tune is deterministic); only the job-time note may differ.
            assert _scores(out) == scores and _without_job_times((out / "results.md").read_text()) == _without_job_times(md)
        finally:
            worker.stop()

    lines = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    runs = lines[:-1]
    # teacher 1 + α (procrustes × 2 α) 2 + main (2 methods × 2 seeds, procrustes seed 0 reused) 3;
    # --delete-finished removed the five student jobs from the service, the teacher stays. The last
    # line is the teacher's re-run: its record supersedes the first.
    assert len(runs) == 6 and [j["name"] for j in kept] == ["glue-rte-teacher-teacher-s0"]
    assert lines[-1]["spec_hash"] == runs[0]["spec_hash"] and lines[-1]["job_id"] == refit[0]["id"]
    assert lines[-1]["replaces"] == kept[0]["id"]
    assert all(r["status"] == "SUCCEEDED" and r["metric"] == "accuracy" for r in runs), runs
    assert all(0.0 <= r["value"] <= 1.0 and r["wall_s"] > 0 for r in runs)
    assert len({r["spec_hash"] for r in runs}) == 6
    teacher_dirs = list((model_root / "teachers").iterdir())
    assert len(teacher_dirs) == 1 and (teacher_dirs[0] / "config.json").is_file()

    report = json.loads((out / "results.json").read_text())
    alpha = report["alphas"]["rte/L2-init/procrustes_kd"]
    alpha_runs = {r["alpha"]: r["metrics"]["holdout/accuracy"] for r in runs if r["phase"] == "alpha"}
    assert alpha == max(sorted(alpha_runs), key=lambda a: alpha_runs[a])  # chosen on holdout
    rows = {row["method"]: row["entries"]["RTE (acc)"] for row in report["tables"][0]["rows"]}
    assert rows["kd_only"]["n"] == 2 and rows["procrustes_kd"]["n"] == 2
    kd = [r["value"] for r in runs if r["phase"] == "main" and r["method"] == "kd_only"]
    assert rows["kd_only"]["mean"] == pytest.approx(100 * sum(kd) / 2)
    assert [(s["target"], s["baseline"]) for s in report["significance"]] == [("procrustes_kd", "kd_only")]
    md = (out / "results.md").read_text()
    assert "| Procrustes + KD |" in md and "| KD only |" in md and "procrustes_kd − kd_only" in md


def api_jobs(api) -> list[dict]:  # type: ignore[no-untyped-def]
    import httpx

    r = httpx.get(f"{api.base_url}/api/v1/jobs", headers=api.headers, params={"limit": 500})
    r.raise_for_status()
    return r.json()["items"]


def test_http_backend_retries_transient_errors_only() -> None:
    import httpx

    from api.client import ApiError, GeokdClient
    from api.reproduce import HttpBackend

    answers = iter([httpx.Response(503, json={"detail": "restarting"}), httpx.Response(200, json={"id": "j1"}),
                    httpx.Response(422, json={"detail": "bad spec"})])
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return next(answers)

    client = GeokdClient("http://api.test", "k")
    client.http = httpx.Client(base_url="http://api.test/api/v1", transport=httpx.MockTransport(handler))
    backend = HttpBackend(client, backoff_s=0.0)
    assert backend.job("j1") == {"id": "j1"} and calls == ["/api/v1/jobs/j1"] * 2
    with pytest.raises(ApiError, match="bad spec"):
        backend.submit({"kind": "x"}, "key")
    assert len(calls) == 3  # a 4xx is not retried
