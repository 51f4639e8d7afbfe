"""Threads per job: the rule, and that a job process really runs with it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from geokd_core.settings import Settings
from worker.threads import threads_per_job


@pytest.mark.parametrize(("cpus", "concurrency", "expected"), [
    (2, 1, 2),    # one job: every core
    (2, 2, 1),    # the oversubscription this module exists for
    (16, 4, 4),
    (16, 3, 5),   # the remainder stays idle rather than oversubscribed
    (2, 8, 1),    # more jobs than cores: never zero threads
])
def test_automatic_share_of_the_cores(cpus: int, concurrency: int, expected: int) -> None:
    assert threads_per_job(cpus, concurrency) == expected


def test_configured_threads_win_over_everything() -> None:
    assert threads_per_job(2, 2, configured=3, omp_num_threads="8") == 3


def test_explicit_omp_num_threads_is_left_to_torch() -> None:
    assert threads_per_job(16, 4, omp_num_threads="2") is None
    assert threads_per_job(16, 4, omp_num_threads=" ") == 4  # set but empty = not set


def test_bad_values_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="GEOKD_TORCH_THREADS must be >= 0"):
        threads_per_job(2, 1, configured=-1)
    with pytest.raises(ValueError, match="concurrency must be >= 1"):
        threads_per_job(2, 0)
    with pytest.raises(ValidationError, match="torch_threads"):
        Settings(torch_threads=-1)


def test_settings_read_geokd_torch_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEOKD_TORCH_THREADS", "3")
    assert Settings().torch_threads == 3


@pytest.mark.parametrize(("env", "expected"), [
    ({"GEOKD_TORCH_THREADS": "3"}, "3 3"),
    ({"OMP_NUM_THREADS": "1"}, "None 1"),
])
def test_apply_sets_torch_in_the_process(env: dict[str, str], expected: str) -> None:
    # A fresh interpreter: torch reads OMP_NUM_THREADS at start-up, and this test's own process
    # keeps its threads.
    code = ("from geokd_core.settings import Settings; from worker.threads import apply_threads_per_job;"
            "import torch; n = apply_threads_per_job(4, Settings().torch_threads);"
            "print(n, torch.get_num_threads())")
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "GEOKD_TORCH_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True,
                         check=True).stdout.split()
    assert " ".join(out) == expected


def test_apply_before_torch_loads_sets_it_through_the_environment() -> None:
    # GEOKD_WORKER_PRELOAD="" leaves torch unloaded in a job child: nothing is imported for the
    # threads; torch reads the share at its own import.
    code = ("import sys; from worker.threads import apply_threads_per_job;"
            "n = apply_threads_per_job(4, 1); assert 'torch' not in sys.modules;"
            "import torch; print(n, torch.get_num_threads())")
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "GEOKD_TORCH_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], env=base, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1"]
