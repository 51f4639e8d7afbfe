"""``ApiEventSink``: the engine callback that ships events to the API and carries control back.

The engine thread only appends to a buffer (and snapshots a checkpoint into a tar, so the file
uploaded is the one the event announced, not a later overwrite). A background thread posts the
buffer in batches — soon after events arrive, at least every ``flush_interval_s`` — and sends a
heartbeat when nothing was posted for ``heartbeat_interval_s``. Events stay in the buffer until
the API acknowledged them, so an API restart mid-job loses nothing: the thread backs off and
retries. Replies carry ``cancel_requested``; a 409 means the lease is lost (the reaper gave the
job to another worker) and the run must stop. Either sets ``control.should_stop`` at the next
hook the engine calls.
"""

from __future__ import annotations

import json
import logging
import tarfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from geokd_core.callbacks import Callback, TrainerControl, TrainerState
from geokd_core.events import Event, EventType
from worker.api_client import ApiUnavailable, JobNotFound, LeaseLost, WorkerApiClient

log = logging.getLogger(__name__)

MAX_BATCH_BYTES = 400_000  # stay well under the API's default 1 MB body limit
MIN_GAP_S = 0.05  # after a post, wait this long so events emitted in a burst share one request


class ApiEventSink(Callback):
    """Buffers engine events and forwards them to ``POST /worker/jobs/{id}/events``."""

    def __init__(self, client: WorkerApiClient, job_id: str, lease: str, out_dir: Path,
                 flush_interval_s: float = 0.5, heartbeat_interval_s: float = 2.0) -> None:
        self.client, self.job_id, self.lease = client, job_id, lease
        self.out_dir = Path(out_dir)
        self.flush_interval_s = flush_interval_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.cancel_requested = False
        self.lease_lost = False
        self.stop_reason: str | None = None  # set by request_stop (e.g. worker shutdown)
        self._buffer: deque[tuple[dict[str, Any], int]] = deque()  # (event JSON, its size)
        self._pending_checkpoint: Path | None = None
        # Events appended / acknowledged so far, and how many had to be acknowledged before the
        # pending checkpoint may go up: a checkpoint the API holds must never be ahead of the
        # events it stored, or a resume from it would skip the steps between them.
        self._emitted = 0
        self._acked = 0
        self._checkpoint_after = 0
        self.artifacts: dict[str, Path] = {}  # announced by `artifact` events, uploaded at the end
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._last_contact = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name=f"sink-{job_id[:8]}", daemon=True)

    # ---- engine side (the training thread) ---------------------------------------------------
    def start(self) -> ApiEventSink:
        self._thread.start()
        return self

    def emit(self, event: Event) -> None:
        """Queue an event produced by the service itself (status, log)."""
        payload = event.model_dump(mode="json")
        with self._lock:
            self._buffer.append((payload, len(json.dumps(payload))))
            self._emitted += 1
        self._wake.set()

    def on_event(self, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        event: Event = kwargs["event"]
        if event.type == EventType.CHECKPOINT:
            self._snapshot_checkpoint(event)
        elif event.type == EventType.ARTIFACT and "name" in event.data and "path" in event.data:
            self.artifacts[str(event.data["name"])] = Path(event.data["path"])
        self.emit(event)
        self._apply(control)

    def on_step_end(self, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self._apply(control)

    def request_stop(self, reason: str) -> None:
        """Ask the run to stop at its next hook (worker shutdown); the job is not finished."""
        self.stop_reason = reason

    @property
    def must_stop(self) -> bool:
        return self.cancel_requested or self.lease_lost or self.stop_reason is not None

    def _apply(self, control: TrainerControl) -> None:
        if self.must_stop:
            control.should_stop = True

    def _snapshot_checkpoint(self, event: Event) -> None:
        src = self.out_dir / "checkpoints" / "last"
        if not src.exists():
            src = Path(event.data.get("path", ""))
        if not src.exists():
            log.warning("checkpoint event names %s, which does not exist", src)
            return
        upload_dir = self.out_dir / ".upload"
        upload_dir.mkdir(exist_ok=True)
        tar_path = upload_dir / f"checkpoint-{event.step}-{time.monotonic_ns()}.tar"
        with tarfile.open(tar_path, "w") as tar:
            tar.add(src, arcname="checkpoints/last")
        with self._lock:
            old, self._pending_checkpoint = self._pending_checkpoint, tar_path
            self._checkpoint_after = self._emitted
        if old is not None:  # superseded before it was uploaded: only the latest matters
            old.unlink(missing_ok=True)
        self._wake.set()

    # ---- background thread ---------------------------------------------------------------------
    def _loop(self) -> None:
        delay = 0.2
        while not self._closing.is_set() and not self.lease_lost:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            try:
                self._flush_once()
                delay = 0.2
                time.sleep(MIN_GAP_S)
            except ApiUnavailable as exc:
                log.warning("API unavailable (%s); retrying in %.1fs", exc, delay)
                self._closing.wait(delay)
                delay = min(delay * 2, 5.0)
            except (LeaseLost, JobNotFound):  # re-queued to another worker, or deleted
                log.warning("lease on job %s lost; stopping the run", self.job_id)
                self.lease_lost = True
            except Exception:  # never let the sink thread die silently: the job would look stale
                log.exception("event sink error")
                self._closing.wait(1.0)

    def _flush_once(self) -> None:
        """Post buffered events (or a heartbeat if due), then the pending checkpoint."""
        batch = self._take_batch()
        if batch:
            self._post(batch)
        elif time.monotonic() - self._last_contact >= self.heartbeat_interval_s:
            self.cancel_requested |= self.client.heartbeat(self.job_id, self.lease)
            self._last_contact = time.monotonic()
        with self._lock:
            ckpt = self._pending_checkpoint if self._acked >= self._checkpoint_after else None
        if ckpt is not None:
            self.client.put_checkpoint(self.job_id, self.lease, ckpt)
            with self._lock:
                if self._pending_checkpoint == ckpt:
                    self._pending_checkpoint = None
            ckpt.unlink(missing_ok=True)

    def _take_batch(self) -> list[dict[str, Any]]:
        # Events stay in the buffer until acknowledged: a failed post re-sends the same head.
        batch: list[dict[str, Any]] = []
        size = 0
        with self._lock:
            for payload, n in self._buffer:
                if batch and size + n > MAX_BATCH_BYTES:
                    break
                batch.append(payload)
                size += n
        return batch

    def _post(self, batch: list[dict[str, Any]]) -> None:
        cancel = self.client.post_events(self.job_id, self.lease, batch)
        with self._lock:
            for _ in batch:
                self._buffer.popleft()
            self._acked += len(batch)
        self.cancel_requested |= cancel
        self._last_contact = time.monotonic()

    # ---- shutdown --------------------------------------------------------------------------------
    def pending(self) -> int:
        with self._lock:
            return len(self._buffer) + (self._pending_checkpoint is not None)

    def close(self, deadline_s: float = 300.0) -> bool:
        """Stop the thread, then drain everything (retrying while the API is down).

        Returns True when every event and the last checkpoint were acknowledged.
        """
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout=30)
        start, delay = time.monotonic(), 0.2
        while self.pending() and not self.lease_lost:
            try:
                self._flush_once()
            except ApiUnavailable as exc:
                if time.monotonic() - start > deadline_s:
                    log.error("giving up on %d unsent items: %s", self.pending(), exc)
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
            except (LeaseLost, JobNotFound):
                self.lease_lost = True
        return not self.pending()
