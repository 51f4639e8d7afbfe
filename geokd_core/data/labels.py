"""Turning raw label values from a custom file into class ids or regression targets."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from geokd_core.errors import DataError

_INT = re.compile(r"^[+-]?\d+$")

# (where, raw value): ``where`` is "file:line" for error messages.
RawLabel = tuple[str, Any]


@dataclass
class LabelScheme:
    """How raw labels map to model targets."""

    task_type: str  # "classification" | "regression"
    num_labels: int
    label_names: list[str]
    _ids: dict[str, int]

    def convert(self, where: str, value: Any) -> int | float:
        """The target for one raw value; DataError if it is not a known label."""
        if self.task_type == "regression":
            return _to_float(where, value)
        key = _key(value)
        if key not in self._ids:
            raise DataError(f"{where}: unknown label {value!r} (known labels: {self.label_names})")
        return self._ids[key]


def _key(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    s = str(value).strip()
    return str(int(s)) if _INT.match(s) else s


def _to_float(where: str, value: Any) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: label {value!r} is not a number (regression needs float labels)") from None
    if not math.isfinite(x):
        raise DataError(f"{where}: label {value!r} is not finite")
    return x


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def infer_scheme(train_labels: Sequence[RawLabel], num_labels: int | None) -> LabelScheme:
    """Pick the label scheme from the training labels.

    - ``num_labels == 1`` → regression (float labels).
    - all labels integers → class ids ``0..num_labels-1`` (``num_labels`` defaults to max + 1).
    - all numbers, some non-integer, ``num_labels`` unset → regression.
    - otherwise string labels: sorted unique names, id = position (``label_names``).
    """
    if not train_labels:
        raise DataError("no training labels to infer the label set from")
    values = [v for _, v in train_labels]
    if num_labels == 1:
        for where, v in train_labels:
            _to_float(where, v)
        return LabelScheme("regression", 1, [], {})
    keys = [_key(v) for v in values]
    if all(_INT.match(k) for k in keys):
        ids = [int(k) for k in keys]
        n = num_labels if num_labels is not None else max(ids) + 1
        for (where, v), i in zip(train_labels, ids, strict=True):
            if not 0 <= i < n:
                raise DataError(f"{where}: label {v!r} is outside 0..{n - 1} (num_labels={n})")
        names = [str(i) for i in range(n)]
        return LabelScheme("classification", n, names, {name: i for i, name in enumerate(names)})
    if num_labels is None and all(_is_number(v) for v in values):
        return LabelScheme("regression", 1, [], {})
    names = sorted(set(keys))
    if num_labels is not None and len(names) > num_labels:
        raise DataError(f"found {len(names)} distinct labels {names} but num_labels={num_labels}")
    n = num_labels if num_labels is not None else len(names)
    return LabelScheme("classification", n, names, {name: i for i, name in enumerate(names)})
