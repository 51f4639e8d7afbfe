"""The store: Alembic migrations match the models, SQLite runs in WAL with a busy timeout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlmodel import SQLModel

import api.models  # noqa: F401
from api.db import init_db, make_engine


def migrate_twice(engine: Engine) -> tuple[list[Any], str, str]:
    """Migrate twice (a restart on an existing store is a no-op); the diff against the models, the
    revision and the dialect."""
    init_db(engine)
    init_db(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        return diff, version, conn.dialect.name


def test_migrations_create_exactly_the_models(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'sub' / 'g.db'}")
    diff, version, _ = migrate_twice(engine)
    assert diff == [] and version == "0001"
    tables = set(inspect(engine).get_table_names())
    assert {"job", "event", "metric_point", "gram_snapshot", "eval_result", "artifact", "api_key"} <= tables


def test_sqlite_pragmas(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'g.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 5000
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_concurrent_first_starts_migrate_once(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = f"from api.db import make_engine, init_db; init_db(make_engine('sqlite:///{tmp_path}/g.db'))"
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
