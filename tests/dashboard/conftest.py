"""Fixtures for the dashboard tests: one REAL API (uvicorn subprocess) seeded with known jobs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.dashboard.seed import Seeded, seed_api
from tests.utils.live_api import LiveApi, live_api

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


@dataclass
class SeededApi:
    api: LiveApi
    jobs: Seeded


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededApi]:
    with live_api(tmp_path_factory.mktemp("dash-api") / "home") as api:
        yield SeededApi(api, seed_api(api.base_url, api.admin_key, api.worker_token))


def open_page(api: LiveApi, page: str | None = None, query: dict[str, str] | None = None,
              key: str | None = "admin") -> AppTest:
    """Run the dashboard in AppTest on ``page`` (``views/<name>.py``), logged in unless ``key=None``."""
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["api_url"] = api.base_url
    if key is not None:
        at.session_state["api_key"] = api.admin_key if key == "admin" else key
    if page:
        at.switch_page(page)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    return at.run()
