"""CPU threads per job: the worker's cores shared among its concurrent jobs, not oversubscribed.

torch's default intra-op pool is one thread per core in *every* process. ``geokd worker -c 2`` on a
2-core machine then runs 2 × 2 busy threads on 2 cores: measured here (bench/concurrent_jobs.py,
3-layer MiniLM student, KD + Procrustes, batch 32×64, 2 jobs at once) a step took 2.03× as long as
with one thread per job; the RTE jobs of that shape spent 25–50 % of their CPU time in the kernel. So each job
child gets ``cores // concurrency`` threads (at least 1) unless the operator says otherwise:
``GEOKD_TORCH_THREADS`` (> 0) wins, and an explicit ``OMP_NUM_THREADS`` is left for torch to read.

No torch import at module level: the CLI and the API import the worker package.
"""

from __future__ import annotations

import os
import sys


def available_cpus() -> int:
    """Cores this process may run on (its affinity mask, as a container's cpuset limits it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def threads_per_job(cpus: int, concurrency: int, configured: int = 0,
                    omp_num_threads: str | None = None) -> int | None:
    """How many intra-op threads one job should use; ``None`` = leave torch's own choice.

    ``configured`` is ``GEOKD_TORCH_THREADS`` (0 = automatic). ``omp_num_threads`` is the raw
    ``OMP_NUM_THREADS`` value: torch already honours it, so automatic mode does not override it.
    """
    if configured < 0:
        raise ValueError(f"GEOKD_TORCH_THREADS must be >= 0 (0 = automatic), got {configured}")
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    if configured > 0:
        return configured
    if omp_num_threads and omp_num_threads.strip():
        return None
    return max(1, cpus // concurrency)


def apply_threads_per_job(concurrency: int, configured: int = 0) -> int | None:
    """Set torch's intra-op threads for this (job) process by :func:`threads_per_job`; returns it."""
    n = threads_per_job(available_cpus(), concurrency, configured, os.environ.get("OMP_NUM_THREADS"))
    if n is None:
        return None
    torch = sys.modules.get("torch")
    if torch is not None:  # preloaded by the worker's main process
        torch.set_num_threads(n)
    else:  # not loaded yet (GEOKD_WORKER_PRELOAD=""): torch reads it at import (capped at the cores)
        os.environ["OMP_NUM_THREADS"] = str(n)
    return n


def torch_threads() -> int | None:
    """The intra-op threads torch uses in this process, or ``None`` when torch is not loaded."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None
