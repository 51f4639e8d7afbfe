"""The engine's single entry point: a validated JobSpec in, a finished (or stopped) run out.

The CLI (`geokd run`) and the service's worker call exactly this function.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from geokd_core.callbacks import Callback
from geokd_core.spec import JobKind, JobSpec


@dataclass
class RunResult:
    status: Literal["completed", "stopped"]
    step: int
    final_metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, Path] = field(default_factory=dict)


def run_job(
    spec: JobSpec,
    out_dir: str | Path,
    callbacks: Sequence[Callback] = (),
    resume: bool = False,
) -> RunResult:
    """Run ``spec`` writing everything under ``out_dir``; ``resume`` continues from its last checkpoint."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if spec.kind == JobKind.SYNTHETIC:
        from geokd_core.synthetic import run_synthetic_job

        return run_synthetic_job(spec, out, callbacks=callbacks, resume=resume)
    if spec.kind == JobKind.EVALUATE:
        from geokd_core.train import run_evaluation_job

        return run_evaluation_job(spec, out, callbacks=callbacks)
    from geokd_core.train import run_training_job

    return run_training_job(spec, out, callbacks=callbacks, resume=resume)
