"""CLI: ``geokd spec schema`` and ``geokd spec validate SPEC.yaml``."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from geokd_core.spec import JobSpec, json_schema, load_spec

spec_app = typer.Typer(help="Inspect and validate job specs.", no_args_is_help=True)


def format_validation_error(exc: ValidationError) -> list[str]:
    """One ``field.path: reason`` line per error (pydantic's "Value error, " prefix dropped)."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(spec)"
        msg = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}")
    return lines


def read_spec_or_exit(path: Path) -> JobSpec:
    """Load and validate ``path``; on failure print every problem per field and exit 1."""
    if not path.exists():
        typer.echo(f"error: {path} does not exist", err=True)
        raise typer.Exit(1)
    try:
        return load_spec(path)
    except ValidationError as exc:
        typer.echo(f"{path}: invalid job spec", err=True)
        for line in format_validation_error(exc):
            typer.echo(f"  {line}", err=True)
        raise typer.Exit(1) from None
    except (ValueError, OSError) as exc:  # YAML syntax, not a mapping, unreadable
        typer.echo(f"{path}: {exc}", err=True)
        raise typer.Exit(1) from None


def run_preflight(spec: JobSpec) -> list[dict[str, Any]] | None:
    """``geokd_core.preflight.check`` (paths, layer ranges, heads) when that module exists."""
    if importlib.util.find_spec("geokd_core.preflight") is None:
        return None
    from geokd_core import preflight

    problems = preflight.check(spec, data_roots=None, model_roots=None, dry_run=False)
    return [p.to_dict() if hasattr(p, "to_dict") else dict(p) for p in problems]


@spec_app.command("schema")
def schema_cmd() -> None:
    """Print the job spec's JSON Schema."""
    typer.echo(json.dumps(json_schema(), indent=2))


@spec_app.command("validate")
def validate_cmd(
    spec_path: Path = typer.Argument(..., help="A job spec (YAML or JSON)."),
    preflight: bool = typer.Option(True, "--preflight/--no-preflight", help="Also check paths, models and layers."),
) -> None:
    """Validate a spec: schema errors per field (exit 1), then the preflight checks."""
    spec = read_spec_or_exit(spec_path)
    if preflight:
        problems = run_preflight(spec)
        if problems:
            typer.echo(f"{spec_path}: {len(problems)} problem(s)", err=True)
            for p in problems:
                loc = ".".join(str(x) for x in p.get("loc", [])) or "(spec)"
                typer.echo(f"  {loc}: {p.get('msg')}", err=True)
            raise typer.Exit(1)
    typer.echo(f"{spec_path}: valid ({spec.kind.value} job {spec.name!r}, spec hash {spec.spec_hash()})")


def register(app: typer.Typer) -> None:
    app.add_typer(spec_app, name="spec")
