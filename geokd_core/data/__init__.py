"""Task data: GLUE (local TSV layout or hub), custom TSV/CSV/JSONL files, MiniLLM instruction JSONL.

Public API: :class:`TaskInfo`, :class:`TaskData`, :func:`load_task_data`, :func:`make_collator`.
"""

from geokd_core.data.collate import IGNORE_INDEX, fit_prompt_output, make_collator
from geokd_core.data.glue import GLUE, glue_info
from geokd_core.data.instruct import render_prompt
from geokd_core.data.load import load_task_data
from geokd_core.data.types import Example, TaskData, TaskInfo, TaskType

__all__ = [
    "GLUE",
    "IGNORE_INDEX",
    "Example",
    "TaskData",
    "TaskInfo",
    "TaskType",
    "fit_prompt_output",
    "glue_info",
    "load_task_data",
    "make_collator",
    "render_prompt",
]
