"""Checks on a schema-valid spec that depend on this deployment: numeric limits and local paths.

Problems come back in FastAPI's own 422 shape (``{"loc": [...], "msg": ..., "type": ...}``) so a
client handles one error format whichever layer refused the spec.
"""

from __future__ import annotations

import json
import math
from typing import Any

from geokd_core.paths import spec_path_problems
from geokd_core.settings import Settings
from geokd_core.spec import JobSpec


def _problem(loc: list[str | int], msg: str, type_: str = "value_error") -> dict[str, Any]:
    return {"loc": ["body", *loc], "msg": msg, "type": type_}


def limit_problems(spec: JobSpec, settings: Settings) -> list[dict[str, Any]]:
    """Numeric limits from ``GEOKD_MAX_BATCH_SIZE``, ``GEOKD_MAX_STEPS``, ``GEOKD_MAX_SEQ_LEN``."""
    out = []
    checks: list[tuple[list[str | int], int | None, int, str]] = [
        (["train", "batch_size"], spec.train.batch_size, settings.max_batch_size, "GEOKD_MAX_BATCH_SIZE"),
        (["train", "max_steps"], spec.train.max_steps, settings.max_steps, "GEOKD_MAX_STEPS"),
    ]
    if spec.data is not None:
        checks.append((["data", "max_seq_len"], spec.data.max_seq_len, settings.max_seq_len, "GEOKD_MAX_SEQ_LEN"))
    if spec.synthetic is not None:
        checks.append((["synthetic", "steps"], spec.synthetic.steps, settings.max_steps, "GEOKD_MAX_STEPS"))
    for loc, value, limit, env in checks:
        if value is not None and value > limit:
            out.append(_problem(loc, f"{value} exceeds this server's limit of {limit} ({env})", "less_than_equal"))
    return out


def path_problems(spec: JobSpec, settings: Settings) -> list[dict[str, Any]]:
    """Local paths must resolve inside the configured roots (``..`` and symlink escapes refused)."""
    problems = spec_path_problems(
        spec,
        data_roots=list(settings.data_roots) or [settings.home],
        model_roots=list(settings.model_roots) or [settings.home],
    )
    return [_problem(list(p.loc), p.msg, "path_error") for p in problems]


def text_problems(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """Strings the store cannot encode (lone UTF-16 surrogates) → a 422 instead of a crash."""
    try:
        json.dumps(raw, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        return [_problem([], f"text is not valid UTF-8 ({exc.reason})", "unicode_error")]
    return []


def non_finite_problems(obj: Any, loc: tuple[str | int, ...] = ()) -> list[dict[str, Any]]:
    """NaN/Infinity (which Python's JSON parser accepts) cannot be stored or sent back: refuse them."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return [_problem(list(loc), f"{obj} is not a finite number", "finite_number")]
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in non_finite_problems(v, (*loc, k))]
    if isinstance(obj, list | tuple):
        return [p for i, v in enumerate(obj) for p in non_finite_problems(v, (*loc, i))]
    return []


def spec_problems(spec: JobSpec, settings: Settings) -> list[dict[str, Any]]:
    """All deployment-level problems with ``spec`` (empty = acceptable)."""
    raw = spec.model_dump(mode="python")
    early = non_finite_problems(raw) or text_problems(spec.model_dump(mode="json"))
    return early or [*limit_problems(spec, settings), *path_problems(spec, settings)]
