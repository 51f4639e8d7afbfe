"""Checkpoint/artifact packaging and the Celery app's configuration (no broker needed)."""

from __future__ import annotations

import io
import math
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from geokd_core.errors import DataError
from geokd_core.settings import Settings
from worker.celery_app import make_celery, queue_for, result_backend
from worker.job_runner import readable_error, traceback_tail
from worker.packaging import collect_artifacts, extract_checkpoint, json_safe


def test_checkpoint_roundtrip(tmp_path: Path) -> None:
    src = tmp_path / "a" / "checkpoints" / "last"
    src.mkdir(parents=True)
    (src / "model.pt").write_bytes(b"\x00\x01weights")
    tar_path = tmp_path / "c.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(src, arcname="checkpoints/last")
    out = tmp_path / "b"
    assert extract_checkpoint(tar_path, out) == out / "checkpoints" / "last"
    assert (out / "checkpoints" / "last" / "model.pt").read_bytes() == b"\x00\x01weights"


def test_checkpoint_tar_cannot_escape(tmp_path: Path) -> None:
    tar_path = tmp_path / "evil.tar"
    with tarfile.open(tar_path, "w") as tar:
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(tarfile.FilterError):
        extract_checkpoint(tar_path, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()


def test_collect_artifacts_zips_dirs_and_finds_card(tmp_path: Path) -> None:
    student = tmp_path / "student"
    student.mkdir()
    (student / "config.json").write_text("{}")
    (student / "README.md").write_text("# card")
    (tmp_path / "results.json").write_text('{"acc": 1}')
    files = collect_artifacts(tmp_path, {"student": student}, tmp_path / ".artifacts")
    assert set(files) == {"student.zip", "model_card.md", "results.json"}
    with zipfile.ZipFile(files["student.zip"]) as z:
        assert sorted(z.namelist()) == ["README.md", "config.json"]
    assert files["model_card.md"].read_text() == "# card"


def test_json_safe_drops_non_finite() -> None:
    out = json_safe({"a": 1.5, "b": math.nan, "c": math.inf, "d": 3})
    assert out == {"a": 1.5, "b": None, "c": None, "d": 3}


def test_readable_errors() -> None:
    assert readable_error(DataError("column `label` missing in train.tsv")) == "column `label` missing in train.tsv"
    assert readable_error(KeyError("x")) == "KeyError: 'x'"
    try:
        raise ValueError("deep")
    except ValueError as exc:
        tail = traceback_tail(exc)
    assert tail[-1] == "ValueError: deep" and len(tail) <= 15


def test_embedded_app_config(tmp_path: Path) -> None:
    app = make_celery(Settings(home=tmp_path))
    conf = app.conf
    assert conf.broker_url == f"sqla+sqlite:///{tmp_path / 'broker.db'}"
    assert conf.result_backend == f"db+sqlite:///{tmp_path / 'results.db'}"
    assert (conf.task_acks_late, conf.worker_prefetch_multiplier, conf.worker_max_tasks_per_child) == (False, 1, 1)
    assert {q.name for q in conf.task_queues} == {"cpu", "gpu"}
    from kombu.transport.sqlalchemy import Transport

    assert Transport.polling_interval <= 0.1


def test_backends_follow_the_broker(tmp_path: Path) -> None:
    assert result_backend(Settings(home=tmp_path, broker_url="redis://h:1/3")) == "redis://h:1/3"
    shared = Settings(home=tmp_path / "w", broker_url=f"sqla+sqlite:///{tmp_path / 'api' / 'broker.db'}")
    assert result_backend(shared) == f"db+sqlite:///{tmp_path / 'api' / 'results.db'}"
    assert queue_for("cuda") == "gpu" and queue_for("auto") == "cpu"


def test_celery_app_imports_no_torch() -> None:
    code = "import sys, worker.celery_app; print('torch' in sys.modules, 'geokd_core.run' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_call_with_retry_backs_off_then_succeeds() -> None:
    from worker.api_client import ApiUnavailable, LeaseLost, call_with_retry

    calls, sleeps = [], []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise ApiUnavailable("503")
        return "ok"

    assert call_with_retry(flaky, sleep=sleeps.append) == "ok"
    assert sleeps == [0.2, 0.4, 0.8]  # exponential backoff

    def lost() -> None:
        raise LeaseLost("409")

    with pytest.raises(LeaseLost):  # retrying cannot fix a lost lease: no waiting at all
        call_with_retry(lost, sleep=lambda _: pytest.fail("must not sleep"))

    def down() -> None:
        raise ApiUnavailable("down")

    with pytest.raises(ApiUnavailable):
        call_with_retry(down, deadline_s=0.0, sleep=lambda _: None)
