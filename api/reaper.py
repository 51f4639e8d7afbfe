"""The reaper: a background task in the API process that keeps jobs moving when workers die.

Every ``GEOKD_REAPER_INTERVAL_S`` it re-queues RUNNING jobs whose heartbeat went stale (see
``api.lease.reap``) and re-sends QUEUED jobs that the broker never accepted (broker was down at
submit time), so neither a dead worker nor a broker outage loses a job.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy import Engine
from sqlmodel import Session

from api import crud, lease
from api.models import Job
from api.queue import Queue
from geokd_core.settings import Settings

log = logging.getLogger("geokd.reaper")


def reap_once(engine: Engine, settings: Settings, queue: Queue, *, reap_stale: bool = True) -> list[str]:
    """One pass; returns the ids sent to the broker again.

    Args:
        reap_stale: also re-queue stale RUNNING jobs (off during the start-up grace period).
    """
    with Session(engine, expire_on_commit=False) as session:
        requeued = lease.reap(session, settings.stale_after_s, settings.max_attempts) if reap_stale else []
        if requeued:
            log.warning("re-queued jobs with stale heartbeats: %s", requeued)
        # Re-queued jobs plus submissions the broker refused earlier (young ones may still be in flight).
        todo = {j.id: j.spec for j in lease.unsent(session, min_age_s=settings.reaper_interval_s)}
        for job_id in requeued:
            row = session.get(Job, job_id)
            if row is not None:
                todo[job_id] = row.spec
        sent: list[str] = []
        for job_id, spec in todo.items():
            try:
                queue.enqueue(job_id, spec)
            except Exception as exc:
                log.warning("broker unreachable (%s); %d job(s) wait for the next pass", exc, len(todo) - len(sent))
                break  # the broker is down: trying the rest now would only stall this pass
            crud.mark_enqueued(session, job_id)
            sent.append(job_id)
        return sent


async def run_reaper(engine: Engine, settings: Settings, queue: Queue) -> None:
    """Loop forever (cancelled at shutdown); one failing pass never stops the loop.

    For the first ``stale_after_s`` after start no RUNNING job is reaped: heartbeats could not
    arrive while this API was down, so their age says nothing about the workers yet.
    """
    started = time.monotonic()
    while True:
        await asyncio.sleep(settings.reaper_interval_s)
        grace_over = time.monotonic() - started >= settings.stale_after_s
        try:
            await asyncio.to_thread(reap_once, engine, settings, queue, reap_stale=grace_over)
        except Exception:
            log.exception("reaper pass failed")
