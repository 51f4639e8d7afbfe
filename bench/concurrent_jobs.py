"""Step time of jobs running side by side, torch's default threads vs the worker's per-job share.

``geokd worker -c N`` runs N job processes at once. By default torch gives every process one
intra-op thread per core, so N jobs oversubscribe the machine; the worker instead sets
``cores // N`` threads per job (``worker/threads.py``). This runs N real training processes at once
— the engine's own optimiser step (``bench/train_step.py``'s job: the offline MiniLM teacher, a
3-layer student from its blocks 1, 3, 5, KD + Procrustes on MRPC, batch 32 × 64 tokens) — in each
mode, interleaved per round, and reports the median step time and its ratio.

The children keep the worker's environment (no ``OMP_WAIT_POLICY`` is set for them unless you set
one). Run: ``.venv/bin/python bench/concurrent_jobs.py [--jobs 2] [--rounds 3] [--steps 5]``.
Writes ``bench/out/concurrent_jobs.json`` and ``.md`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from worker.threads import available_cpus, threads_per_job  # noqa: E402


def child(threads: int, steps: int, warmup: int) -> None:
    """One job process: build the engine, warm up, print the wall time of each timed step as JSON."""
    import torch

    from bench import train_step

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="geokd-bench-") as d:
        engine = train_step.engine_for(train_step.job("procrustes", rows=256), Path(d))
        for k in range(warmup):
            engine.optimizer_step(k)
        times = [train_step.time_once(lambda k=k: engine.optimizer_step(k))[0]
                 for k in range(warmup, warmup + steps)]
    print(json.dumps({"threads": torch.get_num_threads(), "step_s": times}))


def run_round(jobs: int, threads: int, steps: int, warmup: int) -> list[dict[str, Any]]:
    """``jobs`` child processes at once; each one's step times."""
    cmd = [sys.executable, __file__, "--child", "--threads", str(threads), "--steps", str(steps),
           "--warmup", str(warmup)]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) for _ in range(jobs)]
    out = []
    for p in procs:
        stdout, _ = p.communicate()
        if p.returncode:
            raise SystemExit(f"benchmark child failed with exit code {p.returncode}")
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2, help="processes at once (the worker's --concurrency)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per mode, interleaved")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per process")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.threads, args.steps, args.warmup)
        return
    cpus = available_cpus()
    share = threads_per_job(cpus, args.jobs) or 1
    modes = {"torch default": 0, f"per-job share ({share})": share}
    samples: dict[str, list[float]] = {m: [] for m in modes}
    seen_threads: dict[str, set[int]] = {m: set() for m in modes}
    for r in range(args.rounds):
        for mode, threads in modes.items():
            for res in run_round(args.jobs, threads, args.steps, args.warmup):
                samples[mode] += res["step_s"]
                seen_threads[mode].add(res["threads"])
            print(f"round {r + 1}/{args.rounds} {mode}: median so far {statistics.median(samples[mode]):.2f} s/step",
                  file=sys.stderr)
    base = statistics.median(samples["torch default"])
    results = {m: {"threads_per_job": sorted(seen_threads[m]), "median_step_s": statistics.median(s),
                   "min_step_s": min(s), "max_step_s": max(s), "samples": len(s),
                   "speedup_vs_default": base / statistics.median(s)} for m, s in samples.items()}
    from bench._timing import environment, write_json

    # environment() records this process's (default) torch threads; each mode, its children's.
    payload = {"benchmark": "concurrent_jobs", "jobs": args.jobs, "cpus": cpus, "environment": environment("cpu"),
               "step": "KD + Procrustes, MiniLM teacher, 3-layer student, MRPC batch 32 x 64",
               "results": results}
    write_json(payload, args.out / "concurrent_jobs.json")
    lines = [f"{args.jobs} training processes at once on {cpus} cores, {args.rounds} interleaved rounds x "
             f"{args.steps} steps each (median of all steps of all processes):", "",
             "| threads per job | torch threads | median step (s) | min–max (s) | speed-up vs default |",
             "|---|---:|---:|---:|---:|"]
    for m, r in results.items():
        lines.append(f"| {m} | {','.join(map(str, r['threads_per_job']))} | {r['median_step_s']:.2f} | "
                     f"{r['min_step_s']:.2f}–{r['max_step_s']:.2f} | {r['speedup_vs_default']:.2f}x |")
    table = "\n".join(lines)
    (args.out / "concurrent_jobs.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
