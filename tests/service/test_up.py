"""``geokd up``: the embedded single-machine service (no Redis) runs the demo job end to end."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.utils.redis_server import free_port
from worker.up import dashboard_available, geokd_cmd


def _wait_for(pattern: str, log: Path, proc: subprocess.Popen[bytes], timeout_s: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        m = re.search(pattern, log.read_text(errors="replace"))
        if m:
            return m
        assert proc.poll() is None, f"geokd up exited early:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)
    raise AssertionError(f"{pattern!r} not printed in {timeout_s}s:\n{log.read_text()[-3000:]}")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie is gone for our purposes (its parent has not reaped it yet).
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def test_up_embedded_demo_and_clean_stop(tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEOKD_")}
    env.update({"GEOKD_HOME": str(home), "GEOKD_API_PORT": str(port), "GEOKD_HEARTBEAT_INTERVAL_S": "0.5"})
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(geokd_cmd("up", "--demo", "--no-dashboard"), env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        job_id = _wait_for(r"demo job\s+([0-9a-f-]{36})", log, proc, 90).group(1)
        pids = [int(p) for p in re.findall(r"pid (\d+)", log.read_text())]
        text = log.read_text()
        assert "AUTH IS OFF" in text and "embedded SQLite broker" in text
        api = f"http://127.0.0.1:{port}/api/v1"
        deadline, job = time.monotonic() + 120, {}
        while time.monotonic() < deadline:
            job = httpx.get(f"{api}/jobs/{job_id}", timeout=5).json()  # auth is off: no key
            if job["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                break
            time.sleep(0.3)
        assert job["status"] == "SUCCEEDED", job
        assert (home / "broker.db").exists()
        series = httpx.get(f"{api}/jobs/{job_id}/metrics", timeout=5).json()["series"]
        assert {"synthetic/procrustes/seed0/loss", "synthetic/gram/seed0/loss"} <= set(series)
        # Ctrl-C: the supervisor stops worker and API and exits 0; no child is left behind.
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 0
        assert len(pids) == 2 and all(_gone(p) for p in pids)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_dashboard_command_is_detected() -> None:
    assert dashboard_available()
