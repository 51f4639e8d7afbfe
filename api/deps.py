"""Injected dependencies: settings, a DB session, the queue, and who is calling."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from api.queue import Queue
from api.security import LOCAL_OWNER, Principal, authenticate, token_matches
from geokd_core.settings import Settings

bearer = HTTPBearer(auto_error=False, description="An API key from `geokd keys create`.")


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        yield session


def get_queue(request: Request) -> Queue:
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


def _principal(settings: Settings, session: Session, key: str | None) -> Principal:
    if not settings.auth_enabled:
        return Principal(owner=LOCAL_OWNER, is_admin=True)
    who = authenticate(session, key) if key else None
    if who is None:
        raise _UNAUTHORIZED
    return who


def current_user(settings: SettingsDep, session: SessionDep, creds: Credentials) -> Principal:
    """The caller, from the ``Authorization: Bearer`` header."""
    return _principal(settings, session, creds.credentials if creds else None)


def current_user_or_query(
    settings: SettingsDep,
    session: SessionDep,
    creds: Credentials,
    api_key: Annotated[
        str | None,
        Query(max_length=200, description="API key, for clients that cannot set headers (browser EventSource)."),
    ] = None,
) -> Principal:
    """The caller, from the header or ``?api_key=`` (SSE and downloads from a browser)."""
    return _principal(settings, session, creds.credentials if creds else api_key)


def worker_auth(settings: SettingsDep, session: SessionDep, creds: Credentials) -> None:
    """Worker routes: the shared ``GEOKD_WORKER_TOKEN``, or an admin API key; open with auth off."""
    if not settings.auth_enabled:
        return
    presented = creds.credentials if creds else None
    if token_matches(presented, settings.worker_token):
        return
    who = authenticate(session, presented) if presented else None
    if who is None or not who.is_admin:
        raise _UNAUTHORIZED


CurrentUser = Annotated[Principal, Depends(current_user)]
CurrentUserOrQuery = Annotated[Principal, Depends(current_user_or_query)]
