"""ASGI middleware refusing request bodies over a size limit with 413, before they are buffered.

Checks ``Content-Length`` up front and counts streamed (chunked) bytes as they arrive, so a body
without a length header cannot slip past. Worker uploads (checkpoints, artifacts) get their own,
larger limit.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, limit_for: Callable[[Scope], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                too_big = False  # a malformed header is the server's (h11's) problem, not ours
            if too_big:
                await _refuse(limit)(scope, receive, send)
                return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # Raised inside the route's body read; FastAPI passes HTTPException through.
                    raise HTTPException(status_code=413, detail=_detail(limit))
            return message

        await self.app(scope, counting_receive, send)


def _detail(limit: int) -> str:
    return f"request body is larger than this server's limit of {limit} bytes"


def _refuse(limit: int) -> JSONResponse:
    return JSONResponse({"detail": _detail(limit)}, status_code=413)
