"""CLI: ``geokd run SPEC.yaml [--out DIR] [--resume]`` — one job, locally, with a progress bar."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import typer

from geokd_core.callbacks import Callback, StopWhen, TrainerControl, TrainerState
from geokd_core.cli.spec_cmd import read_spec_or_exit
from geokd_core.errors import GeokdError
from geokd_core.events import EventType


class ProgressBar(Callback):
    """A tqdm bar over optimiser steps that shows the latest loss; log/eval events print above it."""

    def __init__(self) -> None:
        self.bar: Any = None

    def _ensure(self, state: TrainerState) -> None:
        from tqdm.auto import tqdm

        if self.bar is None and state.total_steps:
            self.bar = tqdm(total=state.total_steps, initial=state.step, unit="step", dynamic_ncols=True)

    def on_train_begin(self, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self._ensure(state)

    def on_step_end(self, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self._ensure(state)
        if self.bar is not None:
            self.bar.update(state.step - self.bar.n)

    def on_event(self, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        event = kwargs["event"]
        write = self.bar.write if self.bar is not None else typer.echo
        if event.type == EventType.METRIC and self.bar is not None:
            loss = event.data["values"].get("train/loss")
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        elif event.type == EventType.LOG:
            write(f"[{event.data['level']}] {event.data['message']}")
        elif event.type == EventType.EVAL:
            shown = ", ".join(f"{k}={v:.4f}" for k, v in event.data["metrics"].items())
            write(f"eval {event.data['split']} @ step {event.step}: {shown}")

    def on_train_end(self, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.close()


def default_out_dir(name: str, spec_hash: str) -> Path:
    return Path("runs") / f"{name}-{spec_hash[:8]}"


def print_summary(result: Any) -> None:
    typer.echo(f"\nstatus: {result.status} at step {result.step}")
    for k, v in sorted(result.final_metrics.items()):
        typer.echo(f"  {k:<40} {v:.4f}")
    for k, v in result.artifacts.items():
        typer.echo(f"  {k}: {v}")


def run_cmd(
    spec_path: Path = typer.Argument(..., help="A job spec (YAML or JSON)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output folder (default runs/<name>-<hash>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoints/last."),
) -> None:
    """Run a job locally; Ctrl-C stops cooperatively (final checkpoint, resume with --resume)."""
    spec = read_spec_or_exit(spec_path)
    out_dir = out or default_out_dir(spec.name, spec.spec_hash())
    interrupted = {"flag": False}

    def _on_sigint(signum: int, frame: Any) -> None:
        if interrupted["flag"]:
            raise KeyboardInterrupt
        interrupted["flag"] = True
        typer.echo("\nstopping after this step (Ctrl-C again to abort)...", err=True)

    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        from geokd_core.run import run_job

        result = run_job(spec, out_dir, callbacks=[ProgressBar(), StopWhen(lambda: interrupted["flag"])],
                         resume=resume)
    except GeokdError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        signal.signal(signal.SIGINT, previous)
    print_summary(result)
    if result.status == "stopped":
        typer.echo(f"resume with: geokd run {spec_path} --out {out_dir} --resume")


def register(app: typer.Typer) -> None:
    app.command("run")(run_cmd)
