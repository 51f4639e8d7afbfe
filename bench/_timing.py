"""Shared timing helper for geokd benchmarks: warm-up, repeats, medians, environment record.

Every benchmark in ``bench/`` imports this module so their numbers are taken and reported the
same way. On a shared CPU the OpenMP wait policy and the thread count change eigen/SVD timings by
up to 100x, so :func:`environment` records them next to every result.

Example:
    >>> from bench._timing import time_fn, environment
    >>> stats = time_fn(lambda: sum(range(1000)), repeats=5, warmup=1)
    >>> {"median_s", "min_s", "cpu_median_s"} <= set(stats)
    True
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = ["environment", "sync", "time_fn", "write_json"]


def sync(device: str | torch.device | None = None) -> None:
    """Wait for queued device work so that wall-clock timings are honest (no-op on CPU)."""
    dev = torch.device(device) if device is not None else None
    if torch.cuda.is_available() and (dev is None or dev.type == "cuda"):
        torch.cuda.synchronize(dev)


def time_fn(
    fn: Callable[[], Any],
    repeats: int = 7,
    warmup: int = 2,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Time ``fn()`` ``repeats`` times after ``warmup`` untimed calls.

    Args:
        fn: zero-argument callable doing the work to time (e.g. a forward + backward).
        repeats: timed calls; the median is the headline number (robust to a busy neighbour).
        warmup: untimed calls first (allocator, lazy init, LAPACK workspace queries).
        device: device to synchronize before and after each call (CUDA); ``None`` = any CUDA.

    Returns:
        ``{"median_s", "min_s", "max_s", "repeats", "times_s"}`` (wall seconds) plus
        ``"cpu_median_s"`` / ``"cpu_min_s"``: this process's CPU time per call, which a busy
        neighbour inflates far less than wall time (with several threads it includes OpenMP
        spin-waiting, so compare it at one thread).
    """
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    for _ in range(max(warmup, 0)):
        fn()
    sync(device)
    times: list[float] = []
    cpu: list[float] = []
    for _ in range(repeats):
        sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "repeats": repeats,
        "times_s": times,
        "cpu_median_s": statistics.median(cpu),
        "cpu_min_s": min(cpu),
    }


def environment(device: str | torch.device = "cpu") -> dict[str, Any]:
    """What influenced the timings: threads, OpenMP wait policy, versions, CPU, load, device."""
    env: dict[str, Any] = {
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        # Unset means the OpenMP runtime default (GNU: spin a while, then sleep).
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "unset"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
        "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS", "unset"),
        "device": str(device),
        "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        env["loadavg_1m"] = os.getloadavg()[0]
    except OSError:  # pragma: no cover - not on every platform
        env["loadavg_1m"] = None
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        env["cuda_device"] = torch.cuda.get_device_name(torch.device(device))
        env["cuda_version"] = torch.version.cuda
    return env


def write_json(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` as pretty JSON to ``path``, creating parent folders; returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    return out
