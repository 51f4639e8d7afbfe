"""CLI: ``geokd synthetic`` — the paper's synthetic experiment through the same engine path as jobs.

It builds a ``kind: synthetic`` JobSpec from the options (unset options keep the SyntheticSpec
defaults) and calls ``geokd_core.run.run_job``, exactly as the service's worker does.
"""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path
from typing import Any

import typer

from geokd_core.callbacks import Callback, StopWhen, TrainerControl, TrainerState
from geokd_core.events import EventType

DEFAULT_OUT = Path("results/synthetic")


class _SyntheticProgress(Callback):
    """A tqdm bar over the global step count showing the current run and its kept fraction."""

    def __init__(self) -> None:
        self.bar: Any = None

    def on_train_begin(self, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=state.total_steps, initial=state.step, unit="step", dynamic_ncols=True, mininterval=1.0)

    def on_step_end(self, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.update(state.step - self.bar.n)

    def on_event(self, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        event = kwargs["event"]
        if self.bar is None or event.type != EventType.METRIC:
            return
        for name, value in event.data["values"].items():
            if name.endswith("/preserved_fraction"):
                run = name.removeprefix("synthetic/").removesuffix("/preserved_fraction")
                self.bar.set_postfix_str(f"{run} kept={value:.3f}", refresh=False)

    def on_train_end(self, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.close()


def _int_list(text: str, option: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise typer.BadParameter(f"expected comma-separated integers, got {text!r}", param_hint=option) from exc


def _print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    summary, reference = results["summary"], results.get("pca_reference") or {}
    teacher = max((s["teacher_pairs_mean"] for s in summary.values()), default=0.0)
    table = Table(title=f"ε-orthogonal teacher pairs kept (of {teacher:,.0f}), mean ± std over seeds")
    for col in ("loss", "final loss", "floor", "pairs kept", "fraction", "at init"):
        table.add_column(col, justify="left" if col == "loss" else "right", no_wrap=True)
    for name, s in summary.items():
        floor = "n/a" if s["floor_loss_mean"] is None else f"{s['floor_loss_mean']:.3g}"
        table.add_row(
            name,
            f"{s['final_loss_mean']:.3g}",
            floor,
            f"{s['preserved_pairs_mean']:,.0f}±{s['preserved_pairs_std']:,.0f}",
            f"{s['preserved_fraction_mean']:.4f}±{s['preserved_fraction_std']:.4f}",
            f"{s['init_fraction_mean']:.3f}",
        )
    for key, label in (("pca", "optimum: PCA"), ("gram_optimum", "optimum: gram")) if reference else ():
        kept = sum(r[key]["kept"] for r in reference.values()) / len(reference)
        frac = sum(r[key]["fraction"] for r in reference.values()) / len(reference)
        table.add_row(label, "", "", f"{kept:,.0f}", f"{frac:.4f}", "", style="italic")
    Console().print(table)


def synthetic_cmd(
    n: int | None = typer.Option(None, "--n", help="Number of teacher/student vectors (default 1000)."),
    d_teacher: int | None = typer.Option(None, "--d-teacher", help="Teacher dimension d_t (default 100)."),
    d_student: int | None = typer.Option(None, "--d-student", help="Student dimension d_s <= d_t (default 50)."),
    eps: float | None = typer.Option(None, "--eps", help="A pair is ε-orthogonal when |cos| < eps (default 0.1)."),
    steps: int | None = typer.Option(None, "--steps", help="Adam steps per (loss, seed) run (default 300)."),
    lr: float | None = typer.Option(None, "--lr", help="Adam learning rate (default 0.05)."),
    seeds: str | None = typer.Option(None, "--seeds", help="Comma-separated seeds (default 0,1,2)."),
    losses: str | None = typer.Option(
        None, "--losses", help="Comma-separated losses from procrustes,gram,cka,cka_debiased,linproj,orthproj (default: all but cka_debiased)."
    ),
    log_every: int | None = typer.Option(None, "--log-every", help="Record loss and kept pairs every N steps (default 10)."),
    checkpoint_every: int | None = typer.Option(
        None, "--checkpoint-every", help="Also checkpoint every N global steps (runs end with one anyway)."
    ),
    out: Path = typer.Option(DEFAULT_OUT, "--out", "-o", help="Output folder for results.{json,md} and the plot."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoints/last."),
    keep_checkpoints: bool = typer.Option(
        False, "--keep-checkpoints", help="Keep OUT/checkpoints after a completed run (removed by default)."
    ),
) -> None:
    """Reproduce the paper's synthetic experiment: how many ε-orthogonal teacher pairs each loss keeps.

    The teacher is n random unit vectors in d_t dims (n >> d, so most but not all pairs are ε-orthogonal); a student of n trainable vectors in d_s dims is fitted from random init with each loss and seed (Adam, full batch). Writes results.json, results.md and preserved_pairs.png into --out and prints a summary table. Unset options keep the SyntheticSpec defaults.
    """
    from pydantic import ValidationError

    from geokd_core.errors import GeokdError
    from geokd_core.run import run_job
    from geokd_core.spec import JobKind, JobSpec, SyntheticSpec, TrainSpec

    given: dict[str, Any] = {"n": n, "d_teacher": d_teacher, "d_student": d_student, "eps": eps,
                             "steps": steps, "lr": lr, "log_every": log_every}
    options = {k: v for k, v in given.items() if v is not None}
    if seeds is not None:
        options["seeds"] = _int_list(seeds, "--seeds")
    if losses is not None:
        options["losses"] = [x.strip() for x in losses.split(",") if x.strip()]
    try:
        spec = JobSpec(
            name="synthetic",
            kind=JobKind.SYNTHETIC,
            synthetic=SyntheticSpec(**options),
            train=TrainSpec(checkpoint_every=checkpoint_every, device="cpu"),
        )
    except ValidationError as exc:
        for err in exc.errors():
            typer.echo(f"error: {'.'.join(map(str, err['loc']))}: {err['msg']}", err=True)
        raise typer.Exit(2) from None
    interrupted = {"flag": False}

    def _on_sigint(signum: int, frame: Any) -> None:
        if interrupted["flag"]:  # a second Ctrl-C aborts at once
            raise KeyboardInterrupt
        interrupted["flag"] = True
        typer.echo("\nstopping after this step (checkpoint kept; Ctrl-C again aborts)", err=True)

    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        callbacks = [_SyntheticProgress(), StopWhen(lambda: interrupted["flag"])]
        result = run_job(spec, out, callbacks=callbacks, resume=resume)
    except GeokdError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        signal.signal(signal.SIGINT, previous)
    if result.status != "completed":
        typer.echo(f"stopped at step {result.step}; continue with --resume")
        raise typer.Exit(1)
    _print_table(json.loads((out / "results.json").read_text()))
    if not keep_checkpoints:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    for name, path in result.artifacts.items():
        typer.echo(f"{name}: {path}")


def register(app: typer.Typer) -> None:
    app.command("synthetic")(synthetic_cmd)
