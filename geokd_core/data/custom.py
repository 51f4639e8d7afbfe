"""Custom classification/regression files: TSV, CSV or JSONL with named text and label columns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from geokd_core.data.files import read_records, require
from geokd_core.data.labels import LabelScheme, infer_scheme
from geokd_core.data.types import Example, TaskInfo
from geokd_core.errors import DataError

Raw = list[tuple[str, dict[str, Any]]]  # ("file:line", {"text_a", "text_b", "label": raw value})


def _read_raw(path: str | Path, text_columns: list[str], label_column: str) -> Raw:
    if not 1 <= len(text_columns) <= 2:
        raise DataError(f"{path}: `text_columns` must name 1 or 2 columns (a text or a text pair), got {text_columns}")
    out: Raw = []
    for n, row in read_records(path):
        texts = [require(path, n, row, c) for c in text_columns]
        for c, t in zip(text_columns, texts, strict=True):
            if not isinstance(t, str):
                raise DataError(f"{path}:{n}: column {c!r} must be text, found {type(t).__name__}")
        label = require(path, n, row, label_column)
        out.append((f"{path}:{n}", {"text_a": texts[0], "text_b": texts[1] if len(texts) > 1 else None, "label": label}))
    return out


def _convert(raw: Raw, scheme: LabelScheme) -> list[Example]:
    return [{**ex, "label": scheme.convert(where, ex["label"])} for where, ex in raw]


def load_custom(
    path: str | Path,
    eval_path: str | Path | None,
    eval_sets: dict[str, str],
    text_columns: list[str],
    label_column: str,
    num_labels: int | None,
) -> tuple[TaskInfo, list[Example], list[Example] | None, dict[str, list[Example]]]:
    """``(info, train, dev or None, extra eval sets)``; the label set comes from the train file.

    String labels are mapped to ids in sorted order (recorded in ``info.label_names``); a label in an
    eval file that train does not have is an error.
    """
    train_raw = _read_raw(path, text_columns, label_column)
    scheme = infer_scheme([(w, ex["label"]) for w, ex in train_raw], num_labels)
    info = TaskInfo(scheme.task_type, scheme.num_labels, None, scheme.label_names)  # type: ignore[arg-type]
    dev = _convert(_read_raw(eval_path, text_columns, label_column), scheme) if eval_path else None
    extra = {name: _convert(_read_raw(p, text_columns, label_column), scheme) for name, p in eval_sets.items()}
    return info, _convert(train_raw, scheme), dev, extra
