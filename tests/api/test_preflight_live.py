"""`POST /jobs/validate?preflight=true` through the real path: API → embedded broker → a Celery
worker subprocess running `geokd.preflight` → result backend → API."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.utils.live_api import live_api
from tests.utils.live_worker import start_worker

SYN = {"kind": "synthetic", "synthetic": {"n": 16, "d_teacher": 8, "d_student": 4, "steps": 2}}


def test_preflight_round_trip_and_timeout(tmp_path: Path) -> None:
    with live_api(tmp_path / "home", env={"GEOKD_PREFLIGHT_TIMEOUT_S": "3"}) as api:
        url = f"{api.base_url}/api/v1/jobs/validate"
        # No worker yet: the API gives up after GEOKD_PREFLIGHT_TIMEOUT_S with a clear 504.
        r = httpx.post(url, params={"preflight": "true"}, json=SYN, headers=api.headers, timeout=30)
        assert r.status_code == 504 and "no worker answered" in r.json()["detail"]
        worker = start_worker(api.base_url, api.worker_token, api.home, extra_env={"GEOKD_WORKER_PRELOAD": ""})
        try:
            ok = httpx.post(url, params={"preflight": "true"}, json=SYN, headers=api.headers, timeout=60)
            assert ok.status_code == 200, ok.text
            assert ok.json() == {"valid": True, "problems": []}
        finally:
            worker.stop()
