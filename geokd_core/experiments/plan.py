"""Shared pieces of an experiment plan: methods, cells, α selection, spec hashing.

An experiment is a grid of *cells* (task × student setting × method × seed, at one α). Each cell is
one service job whose spec is built here; the runner submits it and stores one record per run.
Torch-free: the CLI in ``api/`` imports this.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from geokd_core.spec import JobSpec

Phase = Literal["teacher", "alpha", "main"]


@dataclass(frozen=True)
class Method:
    """One row of the results table.

    Attributes:
        name: key used in records and on the command line (``procrustes_kd``).
        label: row label of the markdown table.
        kind: ``distill`` (with a teacher) or ``finetune`` (no teacher, CE only).
        feature: feature-loss registry name, or None (logit KD only / no teacher).
    """

    name: str
    label: str
    kind: Literal["distill", "finetune"]
    feature: str | None

    @property
    def uses_alpha(self) -> bool:
        """Only a feature loss has an α to choose; KD-only runs with α = 0 (full KD weight)."""
        return self.feature is not None


@dataclass(frozen=True)
class Cell:
    """One job of the plan. ``spec`` is a JobSpec as a JSON dict (``JobSpec.model_dump(mode="json")``)."""

    phase: Phase
    experiment: str
    task: str
    setting: str
    method: str
    seed: int
    alpha: float | None
    spec: dict[str, Any] = field(compare=False, hash=False, repr=False)

    @functools.cached_property
    def spec_hash(self) -> str:
        """Computed once per cell: it validates the whole JobSpec, and lookups call it often."""
        return spec_hash(self.spec)

    def meta(self) -> dict[str, Any]:
        """The cell's coordinates, as stored in each run record."""
        return {"experiment": self.experiment, "phase": self.phase, "task": self.task, "setting": self.setting,
                "method": self.method, "seed": self.seed, "alpha": self.alpha}


def spec_hash(spec: Mapping[str, Any]) -> str:
    """The JobSpec's own content hash (name and tags excluded): equal hashes = the same run."""
    return JobSpec.model_validate(dict(spec)).spec_hash()


def loss_section(method: Method, alpha: float | None, temperature: float, layer_map: str) -> dict[str, Any]:
    """L = γ·CE + α·L_feature + (1−α)·L_KD with the same γ, T and layer map for every method."""
    if method.kind == "finetune":
        return {"feature": None, "alpha": 0.0}
    return {"feature": method.feature, "alpha": float(alpha if method.uses_alpha and alpha is not None else 0.0),
            "gamma": 1.0, "temperature": temperature, "layer_map": layer_map}


def tags_for(cell_meta: Mapping[str, Any]) -> dict[str, str]:
    """Job tags (shown in the dashboard; excluded from the spec hash)."""
    return {k: "" if v is None else f"{v:g}" if isinstance(v, float) else str(v) for k, v in cell_meta.items()}


def finalize(cell: Cell) -> Cell:
    """Validate the cell's spec and give it a readable name and tags."""
    meta = cell.meta()
    name = "-".join(str(x) for x in (cell.experiment, cell.task, cell.setting, cell.method, f"s{cell.seed}")
                    if x != "")
    if cell.alpha is not None:
        name += f"-a{cell.alpha:g}"
    spec = {**cell.spec, "name": name, "tags": tags_for(meta)}
    JobSpec.model_validate(spec)  # fail at plan time, not on the worker
    return Cell(cell.phase, cell.experiment, cell.task, cell.setting, cell.method, cell.seed, cell.alpha, spec)


def select_alpha(results: Mapping[float, Mapping[str, Any] | None], key: str) -> float:
    """The α with the best held-out score (ties: the smaller α).

    Args:
        results: α → the run record of that α-phase cell (None if it has not finished).
        key: the score to read from ``record["metrics"]``; must be a ``holdout/...`` key, so dev
            never influences the choice.

    Raises:
        ValueError: ``key`` is not a holdout metric, or no run has a finite value.
    """
    if not key.startswith("holdout/"):
        raise ValueError(f"α is chosen on held-out train rows, not on {key!r}")
    scores: dict[float, float] = {}
    for alpha, rec in results.items():
        v = (rec or {}).get("metrics", {}).get(key) if rec and rec.get("status") == "SUCCEEDED" else None
        if isinstance(v, int | float) and math.isfinite(v):
            scores[float(alpha)] = float(v)
    if not scores:
        raise ValueError(f"no finished run has a finite {key!r} for α in {sorted(results)}")
    return max(sorted(scores), key=lambda a: scores[a])  # max keeps the first (smallest α) of ties
