"""The GLUE comparison on one GPU box, engine-direct and time-boxed.

The lent GPU machine has PyTorch but no Redis/API stack and only minutes of time, so this driver
runs the *same plan* as ``geokd reproduce glue`` (``geokd_core.experiments.glue.reproduce``:
teacher fine-tune → α chosen on held-out train rows → every seed at that α) through
:class:`geokd_core.experiments.local.LocalBackend` (a pool of spawned processes sharing the GPU)
instead of the REST service. The teachers of all tasks are fine-tuned side by side first; then the
tasks run one after another so that a deadline leaves whole tasks; the runs store is written as
jobs finish, so a killed run keeps what it finished.

Run on the GPU box (paths are fixed so that spec hashes, which contain the teacher path, can be
re-planned elsewhere):
    python bench/gpu_reproduce.py --data DIR/glue --base-model DIR/minilm --out OUT/glue
Rebuild the report from a copied runs store, without running anything:
    python bench/gpu_reproduce.py --report-only --out results/glue ...same plan flags...
"""

from __future__ import annotations

import argparse
import contextlib
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from geokd_core.experiments import glue
from geokd_core.experiments.plan import Cell, select_alpha
from geokd_core.experiments.results import RunStore
from geokd_core.experiments.runner import run_cells

WORK = Path("/tmp/geokd-gpu")


def plan_budget(args: argparse.Namespace) -> glue.Budget:
    settings = tuple(s for s in glue.SETTINGS if s.name in args.settings.split(","))
    description = (f"GPU, engine-direct (LocalBackend, {args.workers} processes on one GPU): "
                   f"{args.tasks}, train {'all rows' if args.max_train is None else args.max_train} minus the "
                   f"holdout, {args.epochs:g} epochs, seq {args.max_seq_len}, batch {args.batch_size}, "
                   f"α ∈ {{{args.alpha_grid}}}")
    return replace(glue.get_budget("full"), name="gpu", description=description,
                   tasks=tuple(args.tasks.split(",")), settings=settings,
                   alpha_grid=tuple(float(a) for a in args.alpha_grid.split(",")), epochs=args.epochs,
                   teacher_epochs=args.epochs, max_seq_len=args.max_seq_len, batch_size=args.batch_size,
                   max_train_examples=args.max_train, teacher_max_train=args.max_train, device=args.device)


def report_only(out: Path, budget: glue.Budget, seeds: list[int], data: Path, base: Path) -> None:
    store = RunStore(out / "runs.jsonl")
    methods = list(glue.METHODS)
    tcells = [glue.teacher_cell(t, budget, data, base) for t in budget.tasks]
    teacher_dirs = {c.task: WORK / "models" / f"{c.task}-{c.spec_hash[:10]}" for c in tcells if store.done(c.spec_hash)}
    tasks = [t for t in budget.tasks if t in teacher_dirs]
    acells = glue.alpha_cells(tasks, methods, budget, teacher_dirs, data)
    alphas = {}
    for key in {(c.task, c.setting, c.method) for c in acells}:
        group = {c.alpha: store.done(c.spec_hash) for c in acells if (c.task, c.setting, c.method) == key}
        with contextlib.suppress(ValueError):
            alphas[key] = select_alpha(group, glue.holdout_key(key[0]))
    mcells = [c for c in glue.main_cells(tasks, methods, seeds, budget, teacher_dirs, data, alphas)
              if not glue.METHOD_BY_NAME[c.method].uses_alpha or (c.task, c.setting, c.method) in alphas]
    md, js = glue.write_glue_report(out, store, tcells, mcells, tasks, methods, seeds, budget, alphas)
    print(md.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="GLUE-layout folder")
    ap.add_argument("--base-model", type=Path, required=True, help="the pretrained MiniLM-L6 folder")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tasks", default="rte,mrpc,stsb,cola")
    ap.add_argument("--settings", default="L3-init,L3-H192")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--alpha-grid", default="0.3,0.7")
    ap.add_argument("--epochs", type=float, default=3.0)
    ap.add_argument("--max-seq-len", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-train", type=int, default=None)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--deadline-s", type=float, default=420.0, help="start no new task after this")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    budget = plan_budget(args)
    seeds = list(range(args.seeds))
    if args.report_only:
        report_only(args.out, budget, seeds, args.data, args.base_model)
        return

    from geokd_core.experiments.local import LocalBackend

    backend = LocalBackend(WORK / "jobs", workers=args.workers)
    t0, done = time.monotonic(), []

    def progress(cell: Cell, rec: dict[str, Any], skipped: bool) -> None:
        if not skipped:
            print(f"[gpu] {time.monotonic() - t0:5.0f} s {cell.task}/{cell.method}/s{cell.seed} a={cell.alpha} "
                  f"{rec['status']} {rec.get('metric_key')}={rec.get('value')} wall={rec.get('wall_s')}", flush=True)

    try:
        # Every task's teacher first, side by side (one wave instead of one lone job per task).
        run_cells([glue.teacher_cell(t, budget, args.data, args.base_model) for t in budget.tasks], backend,
                  RunStore(args.out / "runs.jsonl"), lambda c: glue.dev_key(c.task), concurrency=args.workers,
                  poll_s=0.5, on_done=progress)
        print(f"[gpu] teachers done in {time.monotonic() - t0:.0f} s", flush=True)
        for task in budget.tasks:
            if time.monotonic() - t0 > args.deadline_s:
                print(f"[gpu] deadline reached: {task} not started", flush=True)
                break
            ts = time.monotonic()
            glue.reproduce(backend, tasks=[task], methods=list(glue.METHODS), seeds=seeds, budget=budget,
                           data_root=args.data, base_model=args.base_model, out_dir=args.out,
                           models_dir=WORK / "models", concurrency=args.workers, poll_s=0.5,
                           on_done=progress, log=lambda m: print(f"[gpu] {m}", flush=True))
            done.append(task)
            print(f"[gpu] {task} done in {time.monotonic() - ts:.0f} s", flush=True)
        if done:
            glue.reproduce(backend, tasks=done, methods=list(glue.METHODS), seeds=seeds, budget=budget,
                           data_root=args.data, base_model=args.base_model, out_dir=args.out,
                           models_dir=WORK / "models", concurrency=args.workers, poll_s=0.5)
    finally:
        backend.close()
    print((args.out / "results.md").read_text() if (args.out / "results.md").exists() else "no report")


if __name__ == "__main__":
    main()
