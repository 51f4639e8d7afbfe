"""Start and stop a real ``geokd worker`` (Celery, prefork) subprocess bound to an API and a broker.

The worker runs in its own session, so ``kill()`` can SIGKILL the main process and its pool
children together (as a crashed machine would), and ``stop()`` is a warm shutdown (SIGTERM).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

READY_MARK = " ready."


@dataclass
class LiveWorker:
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once (no chance to checkpoint)."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout_s: float = 30.0) -> int:
        """Warm shutdown; SIGKILL if it does not exit in ``timeout_s``. Returns the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode


def worker_env(api_url: str, worker_token: str | None, home: Path, broker_url: str | None,
               extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEOKD_")}
    env.update({"GEOKD_API_URL": api_url, "GEOKD_HOME": str(home), "GEOKD_HEARTBEAT_INTERVAL_S": "0.5"})
    if worker_token:
        env["GEOKD_WORKER_TOKEN"] = worker_token
    if broker_url:
        env["GEOKD_BROKER_URL"] = broker_url
    env.update(extra or {})
    return env


def start_worker(api_url: str, worker_token: str | None, home: Path, broker_url: str | None = None,
                 queue: str = "cpu", concurrency: int = 1, extra_env: dict[str, str] | None = None,
                 ready_timeout_s: float = 60.0) -> LiveWorker:
    """Start ``geokd worker --queue QUEUE`` and wait until Celery says it is ready.

    ``broker_url=None`` uses the embedded SQLite broker under ``home`` (share ``home`` with the API
    or pass its ``sqla+sqlite:///…/broker.db`` URL explicitly).
    """
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / f"worker-{time.monotonic_ns()}.log"
    cmd = [sys.executable, "-c", "from geokd_core.cli import main; main()", "worker", "--queue", queue,
           "--concurrency", str(concurrency),
           "--name", f"test-{time.monotonic_ns()}@%h"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, env=worker_env(api_url, worker_token, home, broker_url, extra_env),
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    worker = LiveWorker(proc, log_path)
    deadline = time.monotonic() + ready_timeout_s
    while READY_MARK not in worker.log():
        if not worker.alive():
            raise RuntimeError(f"worker exited with {proc.returncode}:\n{worker.log()[-3000:]}")
        if time.monotonic() > deadline:
            worker.kill()
            raise RuntimeError(f"worker not ready after {ready_timeout_s}s:\n{worker.log()[-3000:]}")
        time.sleep(0.1)
    return worker
