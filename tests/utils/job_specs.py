"""Job-spec factories for engine tests (plain dicts, validated by the test with ``load_spec``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def distill_spec(teacher: Path, glue: Path, **overrides: Any) -> dict[str, Any]:
    """A small CoLA distillation spec (dict) for a 2-layer, hidden-16 student.

    ``overrides`` are merged into their section (``teacher``/``student`` are replaced whole).
    """
    spec: dict[str, Any] = {
        "name": "tiny-distill",
        "kind": "distill",
        "teacher": {"model": str(teacher)},
        "student": {"config": {"num_layers": 2, "hidden_size": 16, "num_heads": 2}},
        "data": {"source": "glue", "task": "cola", "path": str(glue), "max_seq_len": 16},
        "loss": {"feature": "procrustes", "alpha": 0.5, "gamma": 1.0, "temperature": 2.0},
        "train": {"max_steps": 6, "batch_size": 8, "lr": 1e-3, "log_every": 2, "seed": 3, "device": "cpu"},
    }
    for section, values in overrides.items():
        if section not in ("teacher", "student") and isinstance(values, dict) and isinstance(spec.get(section), dict):
            spec[section] = {**spec[section], **values}
        else:
            spec[section] = values
    return spec
