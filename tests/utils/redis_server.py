"""Redis for tests: a private DB on the shared server, or a private ``redis-server`` to restart.

The shared server (127.0.0.1:6379) is used by other sessions: pick an empty DB 1–15, delete only
the keys Celery/kombu created, never FLUSHALL. A test that restarts Redis starts its own server
on a free port in a temp dir instead.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

SHARED = "redis://127.0.0.1:6379"
CELERY_KEY_PATTERNS = ("celery*", "_kombu*", "unacked*", "cpu", "gpu", "geokd*")


def shared_redis_available() -> bool:
    try:
        return bool(redis.Redis.from_url(SHARED, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def pick_empty_db() -> int:
    """A random DB number 1–15 that currently holds no keys (fewer clashes with other sessions)."""
    dbs = list(range(1, 16))
    random.shuffle(dbs)
    for db in dbs:
        if redis.Redis.from_url(f"{SHARED}/{db}").dbsize() == 0:
            return db
    return dbs[0]


def delete_celery_keys(url: str) -> None:
    r = redis.Redis.from_url(url)
    for pattern in CELERY_KEY_PATTERNS:
        keys = list(r.scan_iter(match=pattern, count=500))
        if keys:
            r.delete(*keys)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrivateRedis:
    """A ``redis-server`` of our own (no persistence), which a test may kill and restart."""

    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> PrivateRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_timeout=0.5).ping():
                    return self
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def private_redis(workdir: Path) -> PrivateRedis:
    workdir.mkdir(parents=True, exist_ok=True)
    return PrivateRedis(port=free_port(), workdir=workdir).start()
