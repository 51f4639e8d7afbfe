"""``load_task_data``: one DataSpec in, the train / holdout / eval splits out.

Splitting rules (all seeded, so a job sees the same rows on every attempt and resume):
- train is shuffled once with ``random.Random(seed)``; dev is never touched by the holdout.
- When there is no dev file (custom file without ``eval_path``, instruct without ``eval_path``),
  the last ``max_eval_examples`` (default 10 %, at least 1) shuffled train rows become ``eval``.
- The next ``holdout_examples`` rows from the end become ``holdout``; they do not depend on
  ``max_train_examples``.
- ``max_train_examples`` keeps the first rows of the remaining shuffled order; ``max_eval_examples``
  caps dev and every eval set with a seeded random subset.
- Every returned list keeps the file order and is re-numbered: ``idx`` = position in the list.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from geokd_core.data.custom import load_custom
from geokd_core.data.glue import glue_info, load_glue_hub, load_glue_local, read_glue_tsv
from geokd_core.data.instruct import read_instruct_jsonl
from geokd_core.data.types import Example, TaskData, TaskInfo
from geokd_core.errors import DataError
from geokd_core.spec import DataSpec


def _numbered(rows: Sequence[Example]) -> list[Example]:
    return [{"idx": i, **{k: v for k, v in r.items() if k != "idx"}} for i, r in enumerate(rows)]


def _subset(rows: list[Example], cap: int | None, seed: int) -> list[Example]:
    """A seeded random subset of at most ``cap`` rows, in file order."""
    if cap is None or len(rows) <= cap:
        return rows
    keep = sorted(random.Random(seed).sample(range(len(rows)), cap))
    return [rows[i] for i in keep]


def _load_sources(spec: DataSpec) -> tuple[TaskInfo, list[Example], list[Example] | None, dict[str, list[Example]]]:
    if spec.source == "glue":
        assert spec.task is not None
        train, dev, extra = load_glue_local(spec.path, spec.task) if spec.path else load_glue_hub(spec.task)
        if spec.eval_path:
            dev = read_glue_tsv(spec.eval_path, spec.task)
        for name, p in spec.eval_sets.items():
            extra[name] = read_glue_tsv(p, spec.task)
        return glue_info(spec.task), train, dev, extra
    if spec.source == "file":
        assert spec.path and spec.label_column
        return load_custom(spec.path, spec.eval_path, spec.eval_sets, spec.text_columns, spec.label_column, spec.num_labels)
    assert spec.path
    info = TaskInfo("causal_lm", 1, None, [])
    dev = read_instruct_jsonl(spec.eval_path) if spec.eval_path else None
    extra = {name: read_instruct_jsonl(p) for name, p in spec.eval_sets.items()}
    return info, read_instruct_jsonl(spec.path), dev, extra


def load_task_data(spec: DataSpec, *, seed: int = 0) -> TaskData:
    """Read every split the spec names and apply the seeded caps and holdout.

    Args:
        spec: the job's data section.
        seed: shuffling seed (use the job's ``train.seed``).

    Raises:
        DataError: unreadable / malformed files (with file, line and reason), or too few rows for
            the requested holdout / held-out eval part.
    """
    info, train, dev, extra = _load_sources(spec)
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    n_eval = 0
    if dev is None:
        n_eval = spec.max_eval_examples or max(1, len(train) // 10)
    n_hold = spec.holdout_examples
    if n_eval + n_hold >= len(train) and (n_eval or n_hold):
        raise DataError(
            f"{spec.path}: {len(train)} training rows cannot give {n_eval} eval + {n_hold} holdout rows "
            "and still leave rows to train on"
        )
    cut_eval = len(order) - n_eval
    cut_hold = cut_eval - n_hold
    if dev is None:
        dev = [train[i] for i in sorted(order[cut_eval:])]
    else:
        dev = _subset(dev, spec.max_eval_examples, seed)
    holdout = [train[i] for i in sorted(order[cut_hold:cut_eval])]
    kept = order[:cut_hold]
    if spec.max_train_examples is not None:
        kept = kept[: spec.max_train_examples]
    return TaskData(
        info=info,
        train=_numbered([train[i] for i in sorted(kept)]),
        holdout=_numbered(holdout),
        eval=_numbered(dev),
        eval_sets={name: _numbered(_subset(rows, spec.max_eval_examples, seed)) for name, rows in extra.items()},
    )
