"""The data containers every loader returns and the training loop consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

TaskType = Literal["classification", "regression", "causal_lm"]

# One example. Classification/regression: {"idx", "text_a", "text_b", "label"};
# causal_lm: {"idx", "prompt", "output"} where output is a string or a list of references.
Example = dict[str, Any]


@dataclass
class TaskInfo:
    """What kind of prediction the task needs.

    Attributes:
        task_type: ``classification`` (integer labels), ``regression`` (float labels) or
            ``causal_lm`` (prompt → output generation).
        num_labels: number of classes; 1 for regression and causal_lm.
        task: GLUE task name used to pick the metrics, None for custom files and instruct data.
        label_names: name of each class id (``label_names[i]`` is class ``i``); empty for causal_lm.
    """

    task_type: TaskType
    num_labels: int
    task: str | None
    label_names: list[str] = field(default_factory=list)


@dataclass
class TaskData:
    """All splits of one task.

    ``idx`` of every example is its position in the list it belongs to (0..len-1), so the teacher
    cache can index a dense array by it; it is re-numbered after subsetting.

    Attributes:
        info: the task description.
        train: training examples (after ``max_train_examples``).
        holdout: rows split off train for model selection (never taken from dev).
        eval: the dev split (GLUE dev.tsv, ``eval_path``, or a held part of train when neither).
        eval_sets: further named evaluation sets (instruct: dolly, self-inst, ...; MNLI: mismatched).
    """

    info: TaskInfo
    train: list[Example]
    holdout: list[Example]
    eval: list[Example]
    eval_sets: dict[str, list[Example]] = field(default_factory=dict)
