"""Core CLI commands. Each command group lives in its own module (one owner each)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    from geokd_core.cli import run_cmd, spec_cmd, synthetic_cmd

    run_cmd.register(app)
    spec_cmd.register(app)
    synthetic_cmd.register(app)
