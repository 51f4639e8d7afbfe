"""Run a list of cells through a job service: submit, wait, record — restartable.

The service is reached through a small :class:`Backend` (the CLI passes an HTTP client of the REST
API; see ``api/reproduce.py``), so this module knows neither HTTP nor Celery.

Restart safety: every submit carries ``Idempotency-Key: geokd-reproduce-<spec hash>``, so a
re-run after a crash re-attaches to the job it had already submitted instead of queueing a copy;
a cell whose spec hash already has a SUCCEEDED record in the store is skipped; a job that fails
(or was found FAILED/CANCELLED from an earlier run) is retried once per reproduction run. Every
outcome, failures included, is appended to the store. A SUCCEEDED cell is run again only when the
caller says which job it replaces (``replace``): e.g. a teacher whose job, and so its model, is gone
from a service whose database was reset.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from geokd_core.experiments.plan import Cell
from geokd_core.experiments.results import RunStore, make_record

FINISHED = ("SUCCEEDED", "FAILED", "CANCELLED")


class Backend(Protocol):
    """The four service calls a reproduction needs (``JobPublic`` dicts as in docs/DESIGN.md)."""

    def submit(self, spec: dict[str, Any], idempotency_key: str) -> dict[str, Any]: ...

    def job(self, job_id: str) -> dict[str, Any]: ...

    def retry(self, job_id: str) -> dict[str, Any]: ...

    def download(self, job_id: str, name: str, dest: Path) -> Path:
        """Save artifact ``name`` of the job to ``dest``; ``FileNotFoundError`` if the job or it is gone."""
        ...


OnDone = Callable[[Cell, dict[str, Any], bool], None]  # (cell, record, skipped)


def wall_seconds(job: dict[str, Any]) -> float | None:
    """Run time of the job (``finished_at − started_at``), queue wait excluded."""
    try:
        start = datetime.fromisoformat(str(job["started_at"]))
        end = datetime.fromisoformat(str(job["finished_at"]))
    except (KeyError, TypeError, ValueError):
        return None
    return round((end - start).total_seconds(), 3)


def idempotency_key(cell: Cell, replaces: str | None = None) -> str:
    """The submit key of ``cell``; a re-run that ``replaces`` an earlier job gets a key of its own."""
    key = f"geokd-reproduce-{cell.spec_hash}"
    return key if replaces is None else f"{key}-replaces-{replaces}"


def phase_runner(backend: Backend | None, store: RunStore, metric_key: Callable[[Cell], str], *,
                 concurrency: int, poll_s: float, on_done: OnDone | None,
                 log: Callable[[str], None]) -> Callable[[Sequence[Cell]], None]:
    """``run(cells)`` for each phase of an experiment: ``run_cells`` on ``backend``.

    With ``backend=None`` (report only) it submits nothing and logs the planned runs that have no
    result, each cell once even when two phases plan it (a seed-0 main run is also an α run).
    """
    reported: set[str] = set()

    def run(cells: Sequence[Cell]) -> None:
        if backend is not None:
            run_cells(cells, backend, store, metric_key, concurrency=concurrency, poll_s=poll_s, on_done=on_done)
            return
        missing = {c.spec_hash: c for c in cells if c.spec_hash not in reported and store.done(c.spec_hash) is None}
        reported.update(missing)
        if missing:
            log(f"report only: {len(missing)} planned run(s) have no result yet, "
                f"e.g. {next(iter(missing.values())).meta()}")

    return run


def run_cells(cells: Sequence[Cell], backend: Backend, store: RunStore, metric_key: Callable[[Cell], str], *,
              concurrency: int = 2, poll_s: float = 1.0, on_done: OnDone | None = None,
              replace: Mapping[str, str] | None = None,
              sleep: Callable[[float], None] = time.sleep) -> dict[str, dict[str, Any]]:
    """Run every cell without a SUCCEEDED record; returns spec hash → record for all cells.

    Args:
        cells: the jobs to run (duplicated spec hashes run once).
        backend: the service.
        store: the runs store; each finished job is appended at once (restartable).
        metric_key: the summary key of a cell's primary metric (e.g. ``dev/mcc``).
        concurrency: jobs in flight at once (queued or running on the service).
        poll_s: seconds between status polls.
        on_done: called per cell when its record exists (``skipped`` = it was already in the store).
        replace: spec hash → job id of cells to run again although they succeeded (that job's
            outputs are lost); the new record supersedes the old one in the store and names the
            job it replaces, so a restart after the replacement failed keeps its key.
    """
    replace = dict(replace or {})
    unique: dict[str, Cell] = {}
    for c in cells:
        unique.setdefault(c.spec_hash, c)
    out: dict[str, dict[str, Any]] = {}
    pending: list[Cell] = []
    for h, c in unique.items():
        latest = store.get(h) or {}
        if latest.get("replaces") and latest.get("status") != "SUCCEEDED":
            replace.setdefault(h, latest["replaces"])  # a replacement that failed: keep its key
        rec = store.done(h)
        if rec is not None and h not in replace:
            out[h] = rec
            if on_done:
                on_done(c, rec, True)
        else:
            pending.append(c)
    in_flight: dict[str, Cell] = {}
    retried: set[str] = set()

    def record(cell: Cell, job: dict[str, Any], final: bool = True) -> None:
        rec = make_record(cell, job, metric_key(cell), wall_seconds(job), replaces=replace.get(cell.spec_hash))
        store.add(rec)
        out[cell.spec_hash] = rec
        if on_done and final:
            on_done(cell, rec, False)

    while pending or in_flight:
        while pending and len(in_flight) < max(1, concurrency):
            cell = pending.pop(0)
            job = backend.submit(cell.spec, idempotency_key(cell, replace.get(cell.spec_hash)))
            if job["status"] in ("FAILED", "CANCELLED") and cell.spec_hash not in retried:
                retried.add(cell.spec_hash)  # an earlier run of this reproduction failed: try once more
                job = backend.retry(job["id"])
            if job["status"] in FINISHED:
                record(cell, job)
            else:
                in_flight[str(job["id"])] = cell
        if not in_flight:
            continue
        sleep(poll_s)
        for job_id in list(in_flight):
            job = backend.job(job_id)
            if job["status"] not in FINISHED:
                continue
            cell = in_flight.pop(job_id)
            again = job["status"] == "FAILED" and cell.spec_hash not in retried
            record(cell, job, final=not again)
            if again:
                retried.add(cell.spec_hash)  # one automatic retry (resumes from its last checkpoint)
                in_flight[str(backend.retry(job_id)["id"])] = cell
    return out


def unpack_student(backend: Backend, job_id: str, dest: Path) -> Path:
    """Download a finished job's ``student.zip`` artifact and unpack it into ``dest`` (idempotent)."""
    if (dest / "config.json").is_file():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    archive = backend.download(job_id, "student.zip", dest.parent / f".{dest.name}.zip")
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():  # the zip came over the network: no absolute or `..` paths
            if member.startswith("/") or ".." in Path(member).parts:
                raise ValueError(f"unsafe path {member!r} in the student artifact of job {job_id}")
        zf.extractall(dest)
    archive.unlink()
    if not (dest / "config.json").is_file():
        raise ValueError(f"the student artifact of job {job_id} has no config.json")
    return dest
