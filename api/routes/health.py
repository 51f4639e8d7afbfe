"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

router = APIRouter(tags=["health"])

BROKER_TIMEOUT_S = 2.0


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    db: str
    broker: str


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
def healthz() -> Health:
    return Health(status="ok")


def _check_db(request: Request) -> str:
    try:
        with request.app.state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return f"error: {exc.__class__.__name__}: {exc}"[:500]
    return "ok"


def _check_broker(request: Request) -> str:
    try:
        request.app.state.queue.ping(BROKER_TIMEOUT_S)
    except Exception as exc:
        return f"error: {exc.__class__.__name__}: {exc}"[:500]
    return "ok"


@router.get(
    "/readyz",
    response_model=Ready,
    summary="Readiness: the database and the broker are reachable",
    responses={503: {"model": Ready, "description": "The database or the broker is unreachable"}},
)
async def readyz(request: Request) -> JSONResponse:
    db = await run_in_threadpool(_check_db, request)
    broker = await run_in_threadpool(_check_broker, request)
    ok = db == "ok" and broker == "ok"
    body = Ready(status="ok" if ok else "unavailable", db=db, broker=broker)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
