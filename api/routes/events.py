"""Server-Sent Events: a job's event log, live.

The stream polls the events table (every ``POLL_S``), so events written by any API process reach
every subscriber. Each message is ``id: <seq>``, ``event: <type>``, ``data: <Event JSON>``; a client
that reconnects with ``Last-Event-ID`` (or ``?last_event_id=``) gets exactly what it missed. The
stream ends once the job has finished and every event was sent. Browsers' ``EventSource`` cannot
set headers, so ``?api_key=`` is accepted here as well as ``Authorization: Bearer``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy import Engine
from sqlmodel import Session

from api import reads
from api.deps import CurrentUserOrQuery, SessionDep
from api.models import EventRow, Job
from api.routes.jobs import ERRORS, job_or_404
from geokd_core.spec import JobStatus

router = APIRouter(prefix="/jobs", tags=["events"])

POLL_S = 0.2
KEEPALIVE_S = 10.0


def format_event(row: EventRow) -> str:
    """One SSE message; ``data`` is the ``geokd_core.events.Event`` JSON."""
    data = json.dumps({"type": row.type, "step": row.step, "data": row.data, "ts": row.ts}, separators=(",", ":"))
    return f"id: {row.seq}\nevent: {row.type}\ndata: {data}\n\n"


def _poll(engine: Engine, job_id: str, after: int) -> tuple[list[EventRow], bool]:
    with Session(engine, expire_on_commit=False) as session:
        # Status first, then events: if the job had finished, every event it wrote is visible below.
        job = session.get(Job, job_id)
        finished = job is None or JobStatus(job.status).finished
        return reads.events_after(session, job_id, after), finished


async def event_stream(request: Request, engine: Engine, job_id: str, after: int) -> AsyncIterator[str]:
    last_sent = time.monotonic()
    yield "retry: 1000\n\n"
    while True:
        rows, finished = await run_in_threadpool(_poll, engine, job_id, after)
        for row in rows:
            yield format_event(row)
            after = row.seq or after
        if rows:
            last_sent = time.monotonic()
            continue  # drain a backlog before sleeping
        if finished:
            return
        if await request.is_disconnected():
            return
        if time.monotonic() - last_sent > KEEPALIVE_S:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(POLL_S)


@router.get(
    "/{job_id}/events",
    summary="Live event stream (SSE)",
    description="`text/event-stream` of the job's events (status, metric, gram, layer_similarity, eval, log, "
    "progress, checkpoint, artifact): `id:` = event sequence number, `event:` = type, `data:` = Event JSON. "
    "Reconnect with `Last-Event-ID` to resume without loss. Auth by header or `?api_key=` (EventSource). "
    "Ends when the job has finished and all its events were sent.",
    response_class=StreamingResponse,
    responses={**ERRORS, 200: {"content": {"text/event-stream": {}}, "description": "The event stream"}},
)
async def stream_events(
    job_id: uuid.UUID,
    request: Request,
    who: CurrentUserOrQuery,
    session: SessionDep,
    last_event_id: Annotated[str | None, Header(max_length=30)] = None,
    last_event_id_q: Annotated[int | None, Query(alias="last_event_id", ge=0, le=2**62)] = None,
) -> StreamingResponse:
    job = await run_in_threadpool(job_or_404, session, job_id, who)  # a blocking DB read
    after = last_event_id_q or 0
    if last_event_id and last_event_id.strip().isdigit():
        after = min(int(last_event_id.strip()), 2**62)
    session.close()  # do not hold a pooled connection for the life of the stream
    return StreamingResponse(
        event_stream(request, request.app.state.engine, job.id, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
