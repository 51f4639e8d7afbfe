"""A small HTTP client for the geokd API (used by the CLI; handy in notebooks and scripts).

Reads ``GEOKD_API_URL`` / ``GEOKD_API_KEY`` from ``Settings`` unless given explicitly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from geokd_core.settings import Settings
from geokd_core.spec import JobStatus

PREFIX = "/api/v1"


class ApiError(Exception):
    """A non-2xx answer; ``str()`` is the server's readable detail."""

    def __init__(self, status_code: int, detail: Any) -> None:
        self.status_code = status_code
        self.detail = detail
        super().__init__(f"HTTP {status_code}: {format_detail(detail)}")


def response_error(r: httpx.Response) -> ApiError:
    """The :class:`ApiError` of a non-2xx response that has been read (FastAPI's ``detail`` if JSON)."""
    try:
        body = r.json()
    except ValueError:
        body = None
    return ApiError(r.status_code, body.get("detail", r.text) if isinstance(body, dict) else r.text)


def format_detail(detail: Any) -> str:
    """FastAPI's ``detail`` (a string or a list of ``{loc, msg}``) as readable lines."""
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', []) if p != 'body')}: {d.get('msg')}" if isinstance(d, dict) else str(d)
            for d in detail
        )
    return str(detail)


@dataclass(frozen=True)
class SseEvent:
    id: int
    type: str
    data: dict[str, Any]


def parse_sse(lines: Iterator[str]) -> Iterator[SseEvent]:
    """Turn ``text/event-stream`` lines into events (comments and ``retry:`` are skipped)."""
    eid: int | None = None
    etype = "message"
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield SseEvent(id=eid or 0, type=etype, data=json.loads("\n".join(data)))
            eid, etype, data = None, "message", []
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if key == "id" and value.isdigit():
            eid = int(value)
        elif key == "event":
            etype = value
        elif key == "data":
            data.append(value)


class GeokdClient:
    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        settings: Settings | None = None,
        timeout: float = 30.0,
    ) -> None:
        s = settings or Settings()
        self.base_url = (base_url or s.api_url).rstrip("/")
        key = api_key if api_key is not None else s.api_key
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=self.base_url + PREFIX, headers=self.headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        r = self.http.request(method, path, **kw)
        if r.status_code >= 400:
            raise response_error(r)
        return r.json() if r.content else None

    # ---- jobs ----------------------------------------------------------------------------
    def submit(self, spec: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._call("POST", "/jobs", json=spec, headers=headers)

    def validate(self, spec: dict[str, Any], preflight: bool = False) -> dict[str, Any]:
        return self._call("POST", "/jobs/validate", json=spec, params={"preflight": preflight})

    def jobs(self, **filters: Any) -> dict[str, Any]:
        return self._call("GET", "/jobs", params={k: v for k, v in filters.items() if v is not None})

    def job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/jobs/{job_id}")

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._call("POST", f"/jobs/{job_id}/cancel")

    def retry(self, job_id: str) -> dict[str, Any]:
        return self._call("POST", f"/jobs/{job_id}/retry")

    def delete(self, job_id: str) -> None:
        self._call("DELETE", f"/jobs/{job_id}")

    def logs(self, job_id: str, tail: int = 200) -> list[dict[str, Any]]:
        return self._call("GET", f"/jobs/{job_id}/logs", params={"tail": tail})["lines"]

    def metrics(self, job_id: str, since: int | None = None) -> dict[str, Any]:
        return self._call("GET", f"/jobs/{job_id}/metrics", params={} if since is None else {"since": since})

    # ---- live events ---------------------------------------------------------------------
    def events(self, job_id: str, last_event_id: int = 0, max_reconnects: int = 100) -> Iterator[SseEvent]:
        """Follow the job's SSE stream until it ends, reconnecting with ``Last-Event-ID``."""
        reconnects = 0
        while True:
            headers = {**self.headers, "Last-Event-ID": str(last_event_id)}
            try:
                with httpx.stream(
                    "GET", f"{self.base_url}{PREFIX}/jobs/{job_id}/events", headers=headers,
                    timeout=httpx.Timeout(30.0, read=60.0),
                ) as r:
                    if r.status_code >= 400:
                        r.read()
                        raise response_error(r)
                    for ev in parse_sse(r.iter_lines()):
                        last_event_id = ev.id
                        yield ev
            except httpx.TransportError:
                reconnects += 1
                if reconnects > max_reconnects:
                    raise
                time.sleep(min(1.0 * reconnects, 5.0))
                continue
            # A clean end means the job finished; anything else was a dropped connection.
            if JobStatus(self.job(job_id)["status"]).finished:
                return
            time.sleep(0.5)
