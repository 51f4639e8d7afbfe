"""The FastAPI app factory: settings → engine (migrated) → queue → routers, middleware, reaper.

Run it with ``geokd api`` or ``uvicorn api.main:create_app --factory`` (settings from ``GEOKD_*``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import Scope

from api.body_limit import BodyLimitMiddleware
from api.crud import Conflict
from api.db import init_db, make_engine
from api.ingest import finite
from api.queue import CeleryQueue, Queue
from api.reaper import run_reaper
from api.routes import artifacts, events, health, jobs, metrics, worker
from api.security import KeyCache
from geokd_core.settings import Settings

log = logging.getLogger("geokd.api")
PREFIX = "/api/v1"


def _warn_auth_off() -> None:
    banner = (
        "\n" + "!" * 78 + "\n!! GEOKD_AUTH_ENABLED=false: AUTHENTICATION IS OFF. Every caller is the admin 'local'.\n"
        "!! Only run this on a machine nobody else can reach.\n" + "!" * 78
    )
    log.warning(banner)


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI's own handler, except that a NaN/Infinity echoed back in `input` becomes null
    # instead of crashing the JSON encoder (which would turn a 422 into a 500).
    return JSONResponse(status_code=422, content={"detail": finite(jsonable_encoder(exc.errors()))})


async def _conflict(_request: Request, exc: Conflict) -> JSONResponse:
    # A request that the job's state does not allow (cancel a finished job, a lost worker lease).
    return JSONResponse(status_code=409, content={"detail": str(exc)})


def create_app(settings: Settings | None = None, *, queue: Queue | None = None, reaper: bool = True) -> FastAPI:
    """Build the API.

    Args:
        settings: defaults to ``Settings()`` (the environment).
        queue: how jobs reach workers; defaults to Celery via ``worker.celery_app.make_celery``.
        reaper: run the stale-heartbeat reaper in the background (tests turn it off and call
            ``api.reaper.reap_once`` themselves).
    """
    settings = settings or Settings()
    engine = make_engine(settings.resolved_database_url())
    init_db(engine)
    settings.resolved_artifact_dir().mkdir(parents=True, exist_ok=True)
    the_queue: Queue = queue if queue is not None else CeleryQueue(settings)
    if not settings.auth_enabled:
        _warn_auth_off()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if not settings.auth_enabled:
            _warn_auth_off()  # again at serve time, where the operator is looking
        task = asyncio.create_task(run_reaper(engine, settings, the_queue)) if reaper else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            engine.dispose()

    app = FastAPI(
        title="geokd",
        version="1",
        summary="Geometry-aware knowledge distillation as a service.",
        description="Submit distillation jobs, follow them live (SSE), read metrics and Gram matrices. "
        "Authenticate with `Authorization: Bearer <API key>` (`geokd keys create`).",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.queue = the_queue
    app.state.key_cache = KeyCache()

    def limit_for(scope: Scope) -> int:
        if scope.get("method") == "PUT" and scope.get("path", "").startswith(f"{PREFIX}/worker/"):
            return settings.max_upload_bytes
        return settings.max_body_bytes

    app.add_middleware(BodyLimitMiddleware, limit_for=limit_for)
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(Conflict, _conflict)  # type: ignore[arg-type]
    for router in (jobs.router, metrics.router, events.router, artifacts.router, worker.router, health.router):
        app.include_router(router, prefix=PREFIX)
    app.include_router(health.router, include_in_schema=False)  # /healthz, /readyz for probes too
    return app
