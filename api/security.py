"""API keys: high-entropy random tokens, stored only as their SHA-256, compared in constant time.

A slow password hash is unnecessary here: the keys carry 256 random bits, so the hash only has to
make a leaked database useless, not resist guessing.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

from sqlmodel import Session, select

from api.models import ApiKey

KEY_PREFIX = "gk_"
LOCAL_OWNER = "local"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the owner name their jobs are filed under, and whether they see everything."""

    owner: str
    is_admin: bool


def hash_key(key: str) -> str:
    """Hex SHA-256 of ``key`` (what the store keeps)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_key() -> str:
    """A fresh API key (``gk_`` + 43 url-safe characters = 256 random bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def create_key(session: Session, name: str, *, admin: bool = False) -> str:
    """Store a new key for ``name`` and return it in clear (the only time it is visible)."""
    key = new_key()
    session.add(ApiKey(name=name, key_hash=hash_key(key), prefix=key[:8], is_admin=admin))
    session.commit()
    return key


def authenticate(session: Session, presented: str) -> Principal | None:
    """The principal owning ``presented``, or None. The final comparison is constant-time."""
    digest = hash_key(presented)
    row = session.exec(select(ApiKey).where(ApiKey.key_hash == digest)).first()
    if row is None or not secrets.compare_digest(row.key_hash, digest):
        return None
    return Principal(owner=row.name, is_admin=row.is_admin)


def token_matches(presented: str | None, expected: str | None) -> bool:
    """Constant-time check of a shared secret (the worker token); False if either is missing."""
    if not presented or not expected:
        return False
    return secrets.compare_digest(presented.encode(), expected.encode())


class KeyCache:
    """Recently authenticated keys (by hash) for ``ttl_s`` seconds, so a read costs no key query.

    Keys cannot be revoked through the API yet; when they can, the cache bounds how long a
    revoked key keeps working (``ttl_s``).
    """

    def __init__(self, ttl_s: float = 30.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._hits: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def get(self, presented: str) -> Principal | None:
        digest = hash_key(presented)
        with self._lock:
            hit = self._hits.get(digest)
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def put(self, presented: str, who: Principal) -> None:
        with self._lock:
            if len(self._hits) >= self.max_entries:
                self._hits.clear()
            self._hits[hash_key(presented)] = (who, time.monotonic() + self.ttl_s)
