"""CLI commands of the service: ``geokd api``, ``keys``, ``submit``, ``jobs``, ``cancel``, ``logs``.

``keys`` works on the store directly (bootstrapping needs a first key); the rest go through the
HTTP API (``GEOKD_API_URL``, ``GEOKD_API_KEY``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geokd_core.settings import Settings

keys_app = typer.Typer(help="Create and list API keys (works on the local store directly).", no_args_is_help=True)


def _fail(msg: str) -> None:
    typer.secho(msg, fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def _client():  # type: ignore[no-untyped-def]
    from api.client import GeokdClient

    return GeokdClient()


def api_cmd(
    host: Annotated[str | None, typer.Option(help="Bind address (default GEOKD_API_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default GEOKD_API_PORT)")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Server processes (default GEOKD_API_WORKERS)")] = None,
) -> None:
    """Serve the REST API (uvicorn; several processes with --workers)."""
    import uvicorn

    from api.db import init_db, make_engine

    s = Settings()
    # Migrate once here, before any server process starts: N processes migrating a fresh
    # Postgres database at once would race (SQLite files are also locked in init_db).
    engine = make_engine(s.resolved_database_url())
    try:
        init_db(engine)
    finally:
        engine.dispose()
    uvicorn.run("api.main:create_app", factory=True, host=host or s.api_host, port=port or s.api_port,
                workers=workers or s.api_workers)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Owner name the key's jobs are filed under")],
    admin: Annotated[bool, typer.Option("--admin", help="May see and cancel every job")] = False,
) -> None:
    """Create a key and print it once (only its hash is stored)."""
    from sqlmodel import Session

    from api.db import init_db, make_engine
    from api.security import create_key

    engine = make_engine(Settings().resolved_database_url())
    init_db(engine)
    with Session(engine) as session:
        key = create_key(session, name, admin=admin)
    engine.dispose()
    typer.echo(key)
    typer.secho("store it now: it cannot be shown again", fg=typer.colors.YELLOW, err=True)


@keys_app.command("list")
def keys_list() -> None:
    """List keys (name, prefix, admin, created); never the keys themselves."""
    from rich.console import Console
    from rich.table import Table
    from sqlmodel import Session, select

    from api.db import init_db, make_engine
    from api.models import ApiKey

    engine = make_engine(Settings().resolved_database_url())
    init_db(engine)
    table = Table("name", "prefix", "admin", "created")
    with Session(engine) as session:
        for k in session.exec(select(ApiKey).order_by(ApiKey.created_at)).all():
            table.add_row(k.name, k.prefix + "…", "yes" if k.is_admin else "", k.created_at.isoformat(timespec="seconds"))
    engine.dispose()
    Console().print(table)


def submit_cmd(
    spec_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Job spec (YAML or JSON)")],
    watch: Annotated[bool, typer.Option("--watch", help="Follow the job with a live progress bar")] = False,
    idempotency_key: Annotated[str | None, typer.Option(help="Makes a retried submit return the same job")] = None,
) -> None:
    """Submit a job spec to the API."""
    from pydantic import ValidationError

    from api.client import ApiError
    from geokd_core.spec import load_spec

    try:
        spec = load_spec(spec_file)
    except (ValidationError, ValueError) as exc:
        _fail(f"invalid spec {spec_file}:\n{exc}")
        return
    client = _client()
    try:
        job = client.submit(spec.model_dump(mode="json"), idempotency_key)
    except ApiError as exc:
        _fail(str(exc))
        return
    typer.echo(job["id"])
    if watch:
        raise typer.Exit(_watch(client, job["id"]))


def _watch(client, job_id: str) -> int:  # type: ignore[no-untyped-def]
    """Progress bar fed by the SSE stream; returns the exit code (0 = SUCCEEDED)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    status = "QUEUED"
    with Progress(
        TextColumn("[bold]{task.fields[status]}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
    ) as bar:
        task = bar.add_task("job", total=None, status=status, info="")
        for ev in client.events(job_id):
            if ev.type == "progress":
                bar.update(task, completed=ev.data["data"].get("step", 0), total=ev.data["data"].get("total_steps"))
            elif ev.type == "status":
                status = ev.data["data"].get("status", status)
                bar.update(task, status=status, info=ev.data["data"].get("error") or "")
            elif ev.type == "metric":
                loss = {k: v for k, v in ev.data["data"].get("values", {}).items() if k.endswith("loss")}
                if loss:
                    k, v = next(iter(loss.items()))
                    bar.update(task, info=f"{k}={v:.4g}" if isinstance(v, float) else "")
    job = client.job(job_id)
    typer.echo(f"{job_id}: {job['status']}" + (f" — {job['error']}" if job.get("error") else ""))
    return 0 if job["status"] == "SUCCEEDED" else 1


def jobs_cmd(
    status: Annotated[str | None, typer.Option(help="QUEUED, RUNNING, SUCCEEDED, FAILED or CANCELLED")] = None,
    name: Annotated[str | None, typer.Option(help="Substring of the job name")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
) -> None:
    """List jobs (yours, or everyone's for an admin key)."""
    from rich.console import Console
    from rich.table import Table

    from api.client import ApiError

    try:
        page = _client().jobs(status=status, name=name, limit=limit)
    except ApiError as exc:
        _fail(str(exc))
        return
    table = Table(title=f"{page['total']} jobs")
    table.add_column("id", no_wrap=True, min_width=36)  # ids are copied into other commands: never cut
    for col in ("name", "kind", "status", "owner", "step", "created"):
        table.add_column(col, overflow="fold")
    for j in page["items"]:
        prog = j["progress"]
        step = f"{prog.get('step', 0)}/{prog.get('total_steps') or '?'}"
        table.add_row(j["id"], j["name"], j["kind"], j["status"], j["owner"], step, j["created_at"][:16])
    Console().print(table)


def cancel_cmd(job_id: Annotated[str, typer.Argument(help="Job id")]) -> None:
    """Cancel a job (queued: at once; running: it checkpoints and stops)."""
    from api.client import ApiError

    try:
        job = _client().cancel(job_id)
    except ApiError as exc:
        _fail(str(exc))
        return
    typer.echo(f"{job['id']}: {job['status']}" + (" (cancel requested)" if job["status"] == "RUNNING" else ""))


def logs_cmd(
    job_id: Annotated[str, typer.Argument(help="Job id")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until the job ends")] = False,
    tail: Annotated[int, typer.Option(min=1, max=10_000)] = 200,
) -> None:
    """Print a job's log lines."""
    from api.client import ApiError

    client = _client()
    try:
        if not follow:
            for line in client.logs(job_id, tail):
                typer.echo(f"{line['level']:<7} {line['message']}")
            return
        for ev in client.events(job_id):
            if ev.type == "log":
                typer.echo(f"{ev.data['data'].get('level', 'INFO'):<7} {ev.data['data'].get('message', '')}")
            elif ev.type == "status":
                typer.echo(f"-- {ev.data['data'].get('status')}")
    except ApiError as exc:
        _fail(str(exc))


def register(app: typer.Typer) -> None:
    """Add this package's commands to the `geokd` CLI."""
    app.command("api")(api_cmd)
    app.add_typer(keys_app, name="keys")
    app.command("submit")(submit_cmd)
    app.command("jobs")(jobs_cmd)
    app.command("cancel")(cancel_cmd)
    app.command("logs")(logs_cmd)
