"""A recording HTTP server for the worker routes, for unit tests of the sink and the client.

It speaks the Worker ↔ API protocol of docs/DESIGN.md just enough to record what a worker sends
and to answer the way the real API can (200, 409 lease lost, 503 while "down"). The service
tests (tests/service) run against the real API.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


@dataclass
class Recorded:
    events: list[dict[str, Any]] = field(default_factory=list)
    heartbeats: int = 0
    checkpoints: list[bytes] = field(default_factory=list)
    posts: int = 0
    leases: list[str] = field(default_factory=list)


class RecordingApi:
    """``down=True`` answers 503 to everything; ``lost=True`` answers 409; ``cancel`` is echoed."""

    def __init__(self) -> None:
        self.rec = Recorded()
        self.down = False
        self.lost = False
        self.cancel = False
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def _reply(self, code: int, body: dict[str, Any] | None = None) -> None:
                data = json.dumps(body or {}).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                body = self._body()
                if api.down:
                    return self._reply(503, {"detail": "down"})
                if api.lost:
                    return self._reply(409, {"detail": "lease lost"})
                payload = json.loads(body)
                with api.lock:
                    api.rec.leases.append(payload.get("lease", ""))
                    if self.path.endswith("/events"):
                        api.rec.posts += 1
                        api.rec.events.extend(payload["events"])
                    elif self.path.endswith("/heartbeat"):
                        api.rec.heartbeats += 1
                self._reply(200, {"cancel_requested": api.cancel})

            def do_PUT(self) -> None:  # noqa: N802
                body = self._body()
                if api.down:
                    return self._reply(503, {"detail": "down"})
                if api.lost:
                    return self._reply(409, {"detail": "lease lost"})
                with api.lock:
                    api.rec.leases.append(parse_qs(urlparse(self.path).query).get("lease", [""])[0])
                    api.rec.checkpoints.append(body)
                self._reply(200, {})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> RecordingApi:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
