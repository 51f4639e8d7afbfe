"""``geokd dashboard``: the command exists in the real CLI and serves the app headless."""

from __future__ import annotations

import subprocess
import sys

import typer
from typer.testing import CliRunner

from dashboard.cli import APP, register, streamlit_command


def test_streamlit_command_is_headless_on_the_given_port() -> None:
    cmd = streamlit_command(8765, "0.0.0.0")
    assert cmd[:5] == [sys.executable, "-m", "streamlit", "run", str(APP)] and APP.exists()
    opts = dict(zip(cmd[5::2], cmd[6::2], strict=True))
    assert opts["--server.headless"] == "true"
    assert opts["--server.port"] == "8765" and opts["--server.address"] == "0.0.0.0"
    assert opts["--browser.gatherUsageStats"] == "false"


def test_register_adds_the_dashboard_command() -> None:
    app = typer.Typer()
    register(app)

    @app.command("other")  # a second command, so typer keeps sub-command names
    def other() -> None: ...

    result = CliRunner().invoke(app, ["dashboard", "--help"])
    assert result.exit_code == 0 and "--port" in result.output and "--api-url" in result.output


def test_geokd_cli_lists_dashboard() -> None:
    out = subprocess.run([sys.executable, "-c", "from geokd_core.cli import main; main()", "--help"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "dashboard" in out.stdout
