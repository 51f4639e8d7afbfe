"""Injected dependencies: settings, a DB session, the queue, and who is calling."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlmodel import Session

from api.queue import Queue
from api.security import LOCAL_OWNER, KeyCache, Principal, authenticate, token_matches
from geokd_core.settings import Settings

bearer = HTTPBearer(auto_error=False, description="An API key from `geokd keys create`.")


# The light dependencies are `async` so they run inline instead of costing a thread hop each.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    # Creating a Session does no I/O (it connects on first use, inside the sync route's thread).
    session = Session(request.app.state.engine, expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()


async def get_queue(request: Request) -> Queue:
    return request.app.state.queue


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
QueueDep = Annotated[Queue, Depends(get_queue)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]

_UNAUTHORIZED = HTTPException(
    status_code=status.HTTP_401_UNAUTHORIZED,
    detail="missing or invalid API key (send `Authorization: Bearer <key>`)",
    headers={"WWW-Authenticate": "Bearer"},
)


def _lookup(engine: Engine, key: str) -> Principal | None:
    with Session(engine) as session:
        return authenticate(session, key)


async def _principal(request: Request, key: str | None) -> Principal:
    if not request.app.state.settings.auth_enabled:
        return Principal(owner=LOCAL_OWNER, is_admin=True)
    if not key:
        raise _UNAUTHORIZED
    cache: KeyCache = request.app.state.key_cache
    who = cache.get(key)
    if who is None:
        who = await run_in_threadpool(_lookup, request.app.state.engine, key)
        if who is None:
            raise _UNAUTHORIZED
        cache.put(key, who)
    return who


async def current_user(request: Request, creds: Credentials) -> Principal:
    """The caller, from the ``Authorization: Bearer`` header."""
    return await _principal(request, creds.credentials if creds else None)


async def current_user_or_query(
    request: Request,
    creds: Credentials,
    api_key: Annotated[
        str | None,
        Query(max_length=200, description="API key, for clients that cannot set headers (browser EventSource)."),
    ] = None,
) -> Principal:
    """The caller, from the header or ``?api_key=`` (SSE and downloads from a browser)."""
    return await _principal(request, creds.credentials if creds else api_key)


async def worker_auth(request: Request, creds: Credentials) -> None:
    """Worker routes: the shared ``GEOKD_WORKER_TOKEN``, or an admin API key; open with auth off."""
    settings: Settings = request.app.state.settings
    if not settings.auth_enabled:
        return
    presented = creds.credentials if creds else None
    if token_matches(presented, settings.worker_token):
        return
    who = await _principal(request, presented)
    if not who.is_admin:
        raise _UNAUTHORIZED


CurrentUser = Annotated[Principal, Depends(current_user)]
CurrentUserOrQuery = Annotated[Principal, Depends(current_user_or_query)]
