"""``geokd api --workers 2``: two real uvicorn server processes over one SQLite store.

Every process must serve the same jobs, and a job's SSE stream must carry events that another
process stored (the streams poll the store; nothing is kept per process).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest

from api.client import parse_sse
from tests.utils.redis_server import free_port
from worker.up import geokd_cmd, wait_healthy

TOKEN = "workers-test-token"
SYN = {"kind": "synthetic", "name": "two-procs", "synthetic": {"n": 16, "d_teacher": 8, "d_student": 4, "steps": 5}}


def _server_pids(parent: psutil.Process) -> set[int]:
    """uvicorn's worker processes (multiprocessing spawn children), not its resource tracker."""
    return {c.pid for c in parent.children() if "spawn_main" in " ".join(c.cmdline())}


@pytest.fixture(scope="module")
def two_process_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str], psutil.Process]]:
    home = tmp_path_factory.mktemp("api-workers") / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEOKD_")}
    env.update(GEOKD_HOME=str(home), GEOKD_WORKER_TOKEN=TOKEN)
    key = subprocess.run(geokd_cmd("keys", "create", "--name", "alice"), env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    port = free_port()
    log = home / "api.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(geokd_cmd("api", "--port", str(port), "--workers", "2"), env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}/api/v1"
    parent = psutil.Process(proc.pid)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, timeout_s=90)
        deadline = time.monotonic() + 30  # healthy = one process answered; the other may still import
        while len(_server_pids(parent)) < 2:
            assert time.monotonic() < deadline, f"2 server processes not up:\n{log.read_text()[-3000:]}"
            time.sleep(0.3)
        yield base, {"Authorization": f"Bearer {key}"}, parent
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_both_processes_serve_one_store(two_process_api: tuple[str, dict[str, str], psutil.Process]) -> None:
    base, headers, parent = two_process_api
    pids = _server_pids(parent)
    assert len(pids) == 2
    before = {p: psutil.Process(p).cpu_times().user for p in pids}
    ids = [httpx.post(f"{base}/jobs", json=SYN, headers=headers, timeout=30).json()["id"] for _ in range(4)]

    def read(i: int) -> int:
        # A fresh connection per request: the kernel spreads accepts over both processes.
        return httpx.get(f"{base}/jobs/{ids[i % 4]}", headers=headers, timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(read, range(400)))
    assert codes == [200] * 400  # every process sees every job, whichever process created it
    busy = [psutil.Process(p).cpu_times().user - before[p] for p in pids]
    assert min(busy) > 0.05, f"one server process did no work: {busy} s of CPU"
    listed = httpx.get(f"{base}/jobs", headers=headers, params={"limit": 50}, timeout=30).json()
    assert set(ids) <= {j["id"] for j in listed["items"]}


def test_sse_sees_events_stored_through_other_connections(
        two_process_api: tuple[str, dict[str, str], psutil.Process]) -> None:
    base, headers, _ = two_process_api
    job = httpx.post(f"{base}/jobs", json=SYN, headers=headers, timeout=30).json()
    wh = {"Authorization": f"Bearer {TOKEN}"}
    wurl = f"{base}/worker/jobs/{job['id']}"
    lease = httpx.post(f"{wurl}/claim", json={"worker": "t:1"}, headers=wh, timeout=30).json()["lease"]
    with httpx.stream("GET", f"{base}/jobs/{job['id']}/events", headers=headers, timeout=30) as r:
        # Each worker post is its own connection, so they land on either process.
        for step in range(1, 11):
            ev = {"type": "metric", "step": step, "data": {"values": {"train/loss": 1.0 / step}}, "ts": time.time()}
            assert httpx.post(f"{wurl}/events", json={"lease": lease, "events": [ev]}, headers=wh,
                              timeout=30).status_code == 200
        assert httpx.post(f"{wurl}/finish", json={"lease": lease, "status": "SUCCEEDED"}, headers=wh,
                          timeout=30).status_code == 200
        events = list(parse_sse(r.iter_lines()))  # ends by itself once the job finished
    assert [e.data["step"] for e in events if e.type == "metric"] == list(range(1, 11))
    assert events[-1].data["data"]["status"] == "SUCCEEDED"
