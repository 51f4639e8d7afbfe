"""A REAL geokd API for tests: ``uvicorn api.main:create_app --factory`` in a subprocess.

It gets a fresh ``GEOKD_HOME`` (SQLite store, embedded broker, artifacts), a free loopback port
(retried on another port if it was taken in the meantime) and an
admin API key created before start. Parent ``GEOKD_*`` variables are NOT inherited; pass what you
need in ``env`` (e.g. ``{"GEOKD_BROKER_URL": "redis://127.0.0.1:6379/7"}``).

Usage::

    from tests.utils.live_api import live_api, WORKER_TOKEN

    def test_something(tmp_path):
        with live_api(tmp_path / "home", env={"GEOKD_STALE_AFTER_S": "3"}) as api:
            base_url, admin_key, home = api            # unpacks like a 3-tuple
            headers = api.headers                      # {"Authorization": "Bearer <admin key>"}
            httpx.get(f"{base_url}/api/v1/jobs", headers=headers)
            # workers: GEOKD_API_URL=api.base_url, GEOKD_WORKER_TOKEN=api.worker_token,
            #          GEOKD_HOME=api.home (same embedded broker); or use api.env_for_clients()
            api.proc.restart()                         # stop (SIGTERM) and start on the same port
            api.proc.kill()                            # SIGKILL, e.g. to test crash recovery

Or as a fixture: ``from tests.utils.live_api import live_api_server`` in a conftest/test module,
then take ``live_api_server`` as an argument (function-scoped, yields the same ``LiveApi``).
The server log is at ``<home>/api.log`` (its tail is raised with any start failure).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKER_TOKEN = "test-worker-token"


class _PortTaken(Exception):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiProcess:
    """One uvicorn process bound to a fixed loopback port; can be stopped, killed and restarted."""

    def __init__(self, env: dict[str, str], port: int, log_path: Path, workers: int = 1) -> None:
        self.env = env
        self.port = port
        self.log_path = log_path
        self.workers = workers  # uvicorn server processes sharing the port
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        # uvicorn gets --host/--port, not an inherited socket: with --fd it treats the socket as
        # AF_UNIX and never sets TCP_NODELAY, which adds ~40 ms (delayed ACK) to every request.
        # A port picked here could be taken before uvicorn binds it: then pick another and retry.
        for _ in range(5):
            pick = self.port or _free_port()
            cmd = [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--host", "127.0.0.1",
                   "--port", str(pick), "--log-level", "warning", "--timeout-graceful-shutdown", "5", "--workers", str(self.workers)]
            with open(self.log_path, "ab") as log:
                self.popen = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
            self.port = pick
            try:
                self._wait_healthy(timeout)
                return
            except _PortTaken:
                self.port = 0
        raise RuntimeError(f"could not bind a free port:\n{self.log_tail()}")

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.popen is not None
            if self.popen.poll() is not None:
                if "address already in use" in self.log_tail(2000).lower():
                    raise _PortTaken
                raise RuntimeError(f"API exited with {self.popen.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"API did not become healthy in {timeout} s:\n{self.log_tail()}")

    def log_tail(self, n: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(sig)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class LiveApi:
    base_url: str
    admin_key: str
    home: Path
    worker_token: str
    proc: ApiProcess
    env: dict[str, str] = field(default_factory=dict)

    def __iter__(self) -> Iterator[object]:
        return iter((self.base_url, self.admin_key, self.home))

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    def env_for_clients(self) -> dict[str, str]:
        """The API's GEOKD_* environment plus GEOKD_API_URL/GEOKD_API_KEY, for worker or CLI subprocesses."""
        return {**self.env, "GEOKD_API_URL": self.base_url, "GEOKD_API_KEY": self.admin_key}


def create_admin_key(env: dict[str, str], name: str = "admin") -> str:
    """Migrate the store named by ``env`` and add an admin key (runs in this process)."""
    from sqlmodel import Session

    from api.db import init_db, make_engine
    from api.security import create_key
    from geokd_core.settings import Settings

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        home=Path(env["GEOKD_HOME"]),
        database_url=env.get("GEOKD_DATABASE_URL"),
    )
    engine = make_engine(settings.resolved_database_url())
    try:
        init_db(engine)
        with Session(engine) as session:
            return create_key(session, name, admin=True)
    finally:
        engine.dispose()


@contextmanager
def live_api(home: Path, *, env: dict[str, str] | None = None, port: int = 0, timeout: float = 60.0,
             workers: int = 1) -> Iterator[LiveApi]:
    """Start the API on ``home`` (created if missing; ``workers`` server processes), yield a
    ``LiveApi``, always stop it."""
    home.mkdir(parents=True, exist_ok=True)
    geokd_env = {
        "GEOKD_HOME": str(home),
        "GEOKD_WORKER_TOKEN": WORKER_TOKEN,
        "GEOKD_AUTH_ENABLED": "true",
        **(env or {}),
    }
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GEOKD_")}
    full_env.update(geokd_env)
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    admin_key = create_admin_key(geokd_env)
    proc = ApiProcess(full_env, port, home / "api.log", workers)
    proc.start(timeout)
    api = LiveApi(proc.base_url, admin_key, home, geokd_env["GEOKD_WORKER_TOKEN"], proc, geokd_env)
    try:
        yield api
    finally:
        proc.stop()


@pytest.fixture
def live_api_server(tmp_path: Path) -> Iterator[LiveApi]:
    """A fresh live API per test (see the module docstring)."""
    with live_api(tmp_path / "home") as api:
        yield api
