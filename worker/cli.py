"""CLI: ``geokd worker`` (a Celery worker) and ``geokd up`` (the whole local service)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this package's commands to the `geokd` CLI."""
    app.command("worker")(worker)
    app.command("up")(up)


def worker(
    queue: str = typer.Option("cpu", "--queue", "-Q", help="cpu, gpu or both (cpu,gpu)."),
    concurrency: int = typer.Option(1, "--concurrency", "-c", min=1, help="Jobs run at the same time (each gets cores // N torch threads; GEOKD_TORCH_THREADS overrides)."),
    loglevel: str = typer.Option("INFO", "--loglevel", "-l"),
    name: str | None = typer.Option(None, "--name", "-n", help="Celery node name (default geokd-<queue>@host)."),
) -> None:
    """Run a worker: takes jobs from the broker, runs them, reports to the API (GEOKD_API_URL)."""
    from geokd_core.settings import get_settings
    from worker.celery_app import QUEUES, make_celery

    queues = [q.strip() for q in queue.split(",") if q.strip()]
    bad = [q for q in queues if q not in QUEUES]
    if bad or not queues:
        raise typer.BadParameter(f"unknown queue(s) {bad}; choose from {list(QUEUES)}", param_hint="--queue")
    settings = get_settings()
    if not settings.worker_token:
        typer.echo("warning: GEOKD_WORKER_TOKEN is not set; the API will refuse worker calls "
                   "unless it runs with auth off", err=True)
    app = make_celery(settings)
    # Prefork (so time limits and remote control work) with prompt replacement of exited children.
    app.conf.worker_pool = "worker.pool:TaskPool"
    argv = [
        "worker", "--concurrency", str(concurrency), "--queues", ",".join(queues),
        "--hostname", name or f"geokd-{'-'.join(queues)}@%h", "--loglevel", loglevel,
        # Mingle/gossip/heartbeat only slow the start and load the broker; jobs need none of them.
        "--without-mingle", "--without-gossip", "--without-heartbeat",
    ]
    app.worker_main(argv=argv)


def up(
    demo: bool = typer.Option(True, "--demo/--no-demo", help="Submit a small synthetic job once up."),
    dashboard: bool = typer.Option(True, "--dashboard/--no-dashboard", help="Start the dashboard too."),
) -> None:
    """Bring up API, one worker and the dashboard on this machine (embedded broker unless configured)."""
    from worker.up import run_local_service

    raise typer.Exit(run_local_service(demo=demo, dashboard=dashboard))
