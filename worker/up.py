"""``geokd up``: the embedded single-machine service — API, one worker, the dashboard.

Every part is a child process started through the ``geokd`` CLI, each in its own session so a
Ctrl-C reaches only this supervisor, which then stops them in order: the worker first (a running
job checkpoints and uploads while the API is still there), then the dashboard and the API.
Auth is off (said loudly); workers authenticate with a token generated here and shared through
the environment.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import typer

from geokd_core.settings import Settings, get_settings

DEMO_SPEC: dict[str, Any] = {
    "name": "demo-synthetic",
    "kind": "synthetic",
    "synthetic": {"n": 200, "d_teacher": 64, "d_student": 16, "steps": 200,
                  "losses": ["procrustes", "gram"], "seeds": [0], "log_every": 5},
    "train": {"checkpoint_every": 50, "device": "cpu"},
    "tags": {"source": "geokd up --demo"},
}
WORKER_GRACE_S = 60.0  # time a running job gets to checkpoint and upload before it is killed


def geokd_cmd(*args: str) -> list[str]:
    """Command line running ``geokd ARGS`` with this interpreter (no PATH lookup)."""
    return [sys.executable, "-c", "from geokd_core.cli import main; main()", *args]


def dashboard_available() -> bool:
    """True when the installed dashboard package provides a ``dashboard`` command."""
    try:
        from dashboard.cli import register
    except ImportError:
        return False
    probe = typer.Typer()
    register(probe)
    names = {c.name or (c.callback.__name__ if c.callback else "") for c in probe.registered_commands}
    return "dashboard" in names or bool(probe.registered_groups)


def service_env(settings: Settings) -> dict[str, str]:
    """Environment shared by the children: one home, auth off, a fresh worker token."""
    env = dict(os.environ)
    env.update({
        "GEOKD_HOME": str(settings.home),
        "GEOKD_AUTH_ENABLED": "false",
        "GEOKD_WORKER_TOKEN": settings.worker_token or secrets.token_urlsafe(32),
        "GEOKD_API_URL": f"http://{settings.api_host}:{settings.api_port}",
        "GEOKD_API_HOST": settings.api_host,
        "GEOKD_API_PORT": str(settings.api_port),
    })
    return env


def wait_healthy(api_url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    """Poll ``/api/v1/healthz`` until it answers 200; fail fast if the API process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API exited with code {proc.returncode} (its log is in GEOKD_HOME/logs/api.log)")
        try:
            if httpx.get(f"{api_url}/api/v1/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the API did not become healthy at {api_url} within {timeout_s:.0f}s")


def submit_demo(api_url: str) -> str:
    r = httpx.post(f"{api_url}/api/v1/jobs", json=DEMO_SPEC, timeout=10.0)
    r.raise_for_status()
    return str(r.json()["id"])


def _die_with_parent() -> None:
    # Runs in the child before exec: if the supervisor is killed outright (SIGKILL), the kernel
    # sends the child SIGTERM, so no orphaned API or worker keeps running. Linux only.
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


@dataclass
class Children:
    """Started processes by role, stopped in reverse dependency order."""

    log_dir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def log_path(self, role: str) -> Path:
        return self.log_dir / f"{role}.log"

    def start(self, role: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        # Each child logs to its own file, so the terminal shows this summary, not three streams.
        # Own session: a terminal Ctrl-C reaches only the supervisor, which orders the shutdown.
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path(role).open("ab") as log:
            self.procs[role] = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True, preexec_fn=_die_with_parent)
        return self.procs[role]

    def first_exited(self) -> str | None:
        return next((r for r, p in self.procs.items() if p.poll() is not None), None)

    def stop(self) -> None:
        for role, grace in (("worker", WORKER_GRACE_S), ("dashboard", 10.0), ("api", 15.0)):
            proc = self.procs.get(role)
            if proc is None or proc.poll() is not None:
                continue
            typer.echo(f"stopping {role} …", err=True)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def run_local_service(demo: bool = True, dashboard: bool = True) -> int:
    """Start everything, print the URLs, wait for Ctrl-C (or a child dying); returns an exit code."""
    settings = get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    env = service_env(settings)
    api_url = env["GEOKD_API_URL"]
    broker = settings.broker_url or f"embedded SQLite broker in {settings.home / 'broker.db'}"
    typer.secho("!" * 78 + "\n!! AUTH IS OFF: anyone who can reach "
                f"{api_url} can submit, read and cancel jobs.\n!! For a shared machine run "
                "`geokd api` + `geokd worker` with GEOKD_AUTH_ENABLED=true.\n" + "!" * 78,
                fg=typer.colors.RED, bold=True, err=True)
    children = Children(log_dir=settings.home / "logs")
    stop_requested = False

    def _request_stop(*_: Any) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    try:
        api = children.start("api", geokd_cmd("api"), env)
        wait_healthy(api_url, api)
        children.start("worker", geokd_cmd("worker", "--queue", "cpu,gpu"), env)
        dash_url = None
        if dashboard and dashboard_available():
            children.start("dashboard", geokd_cmd("dashboard"), env)
            dash_url = f"http://127.0.0.1:{settings.dashboard_port}"
        typer.echo(f"geokd is up (home {settings.home}; broker: {broker})")
        typer.echo("  processes  " + ", ".join(f"{r} pid {p.pid}" for r, p in children.procs.items()))
        typer.echo(f"  logs       {children.log_dir}/{{{','.join(children.procs)}}}.log")
        typer.echo(f"  API        {api_url}/api/v1   (docs {api_url}/docs)")
        if dash_url:
            typer.echo(f"  dashboard  {dash_url}")
        if demo:
            job_id = submit_demo(api_url)
            typer.echo(f"  demo job   {job_id}   (geokd logs {job_id})")
        typer.echo("Ctrl-C stops everything.")
        while not stop_requested:
            dead = children.first_exited()
            if dead:
                typer.secho(f"{dead} exited (code {children.procs[dead].returncode}); stopping. "
                            f"See {children.log_path(dead)}", fg=typer.colors.RED, err=True)
                return 1
            time.sleep(0.5)
        return 0
    except (RuntimeError, httpx.HTTPError) as exc:
        typer.secho(f"geokd up failed: {exc}", fg=typer.colors.RED, err=True)
        return 1
    finally:
        children.stop()
