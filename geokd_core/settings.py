"""One settings object for every geokd process, read from the environment (``GEOKD_*``).

No torch here: the API, worker and dashboard all import it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path.home() / ".geokd"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GEOKD_", env_file=".env", extra="ignore")

    # Where local state lives (SQLite DB, embedded broker, artifacts) unless overridden below.
    home: Path = Field(default_factory=_default_home)

    # ---- store ----------------------------------------------------------------------------
    database_url: str | None = None  # default: sqlite:///<home>/geokd.db

    # ---- queue ----------------------------------------------------------------------------
    # None = embedded broker (kombu SQLAlchemy transport over SQLite in <home>), no Redis needed.
    broker_url: str | None = None
    result_backend: str | None = None

    # ---- API ------------------------------------------------------------------------------
    api_url: str = "http://127.0.0.1:8000"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # uvicorn worker processes of `geokd api`. One process is GIL-bound (~160 reads/s on the 2-core
    # dev box); every process shares the store, the SSE streams poll it and the reapers compare-and-set.
    api_workers: int = Field(default=1, ge=1)
    api_key: str | None = None  # what CLI / dashboard / worker clients send
    auth_enabled: bool = True
    worker_token: str | None = None  # shared secret workers use for /api/v1/worker routes
    max_body_bytes: int = 1_000_000
    max_upload_bytes: int = 20_000_000_000  # worker uploads (checkpoint tar, student zip)
    preflight_timeout_s: float = 60.0  # POST /jobs/validate?preflight=true waits this long for a worker
    artifact_dir: Path | None = None  # default: <home>/artifacts

    # Local paths a spec may name (models, data); empty = only paths under `home`.
    data_roots: list[Path] = Field(default_factory=list)
    model_roots: list[Path] = Field(default_factory=list)

    # ---- limits enforced on submitted specs --------------------------------------------------
    max_batch_size: int = 1024
    max_steps: int = 1_000_000
    max_seq_len: int = 2048

    # ---- reliability ----------------------------------------------------------------------
    heartbeat_interval_s: float = 2.0
    stale_after_s: float = 30.0
    reaper_interval_s: float = 5.0
    max_attempts: int = 3

    # ---- worker ---------------------------------------------------------------------------
    # torch intra-op threads per job process; 0 = this machine's cores // the worker's concurrency
    # (worker/threads.py says why). An explicit OMP_NUM_THREADS is respected in automatic mode.
    torch_threads: int = Field(default=0, ge=0)

    # ---- dashboard ------------------------------------------------------------------------
    dashboard_port: int = 8501

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'geokd.db'}"

    def resolved_artifact_dir(self) -> Path:
        return self.artifact_dir or (self.home / "artifacts")


@lru_cache
def get_settings() -> Settings:
    return Settings()
