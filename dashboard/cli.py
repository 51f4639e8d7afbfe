"""``geokd dashboard``: serve the Streamlit dashboard (headless) against the REST API."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

APP = Path(__file__).resolve().parent / "app.py"


def streamlit_command(port: int, address: str = "127.0.0.1") -> list[str]:
    """The ``streamlit run`` command line for the dashboard (headless, no usage stats)."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.headless", "true",
        "--server.port", str(port),
        "--server.address", address,
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",  # no "Deploy" button: users of a service do not deploy it
        "--server.fileWatcherType", "none",  # no inotify watchers: this is a service, not a dev loop
    ]


def register(app: typer.Typer) -> None:
    """Add ``geokd dashboard`` to the ``geokd`` CLI."""

    @app.command("dashboard")
    def dashboard(
        port: int = typer.Option(None, "--port", help="Port to serve on (default: GEOKD_DASHBOARD_PORT or 8501)."),
        address: str = typer.Option("127.0.0.1", "--address", help="Interface to bind (0.0.0.0 for all)."),
        api_url: str = typer.Option(None, "--api-url", help="REST API root (default: GEOKD_API_URL)."),
    ) -> None:
        """Serve the dashboard (Submit, Jobs, Job, Compare) for the REST API."""
        from geokd_core.settings import Settings

        settings = Settings()
        env = dict(os.environ)
        env["GEOKD_API_URL"] = api_url or env.get("GEOKD_API_URL") or settings.api_url
        port = port or settings.dashboard_port
        typer.echo(f"dashboard: http://{address}:{port}  (API {env['GEOKD_API_URL']})", err=True)
        cmd = streamlit_command(port, address)
        # Become streamlit (exec, not a child): a supervisor's SIGTERM (`geokd up`) then reaches the
        # server itself instead of orphaning it.
        os.execve(cmd[0], cmd, env)
