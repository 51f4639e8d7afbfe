"""The ``geokd`` console command.

Core commands (``run``, ``spec``, ``synthetic``) live in ``geokd_core.cli``; the service packages
(api, worker, dashboard) add theirs through the ``geokd.cli`` entry-point group, so this package
never imports them.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import typer

app = typer.Typer(
    name="geokd",
    help="Geometry-aware knowledge distillation: run jobs locally or as a service.",
    no_args_is_help=True,
    add_completion=False,
)


def _register_core() -> None:
    from geokd_core.cli import core_commands

    core_commands.register(app)


def _register_plugins() -> None:
    for ep in entry_points(group="geokd.cli"):
        try:
            register = ep.load()
        except ImportError as exc:  # an optional extra is not installed: its commands are absent
            typer.echo(f"note: `{ep.name}` commands unavailable ({exc})", err=True)
            continue
        register(app)


def main() -> None:
    _register_core()
    _register_plugins()
    app()
