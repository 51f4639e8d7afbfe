"""Instruction-following data in MiniLLM / DistiLLM JSONL format (``prompt``, ``output``)."""

from __future__ import annotations

from pathlib import Path

from geokd_core.data.files import read_jsonl
from geokd_core.data.types import Example
from geokd_core.errors import DataError

# MiniLLM's Alpaca template, used only when a row has `instruction` but no rendered `prompt`.
_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)


def render_prompt(instruction: str, input_text: str = "") -> str:
    """The Alpaca-style prompt MiniLLM's data uses."""
    template = _WITH_INPUT if input_text else _NO_INPUT
    return template.format(instruction=instruction, input=input_text)


def read_instruct_jsonl(path: str | Path) -> list[Example]:
    """Examples ``{"prompt", "output"}`` (no ``idx``); ``output`` stays a list where the file has one.

    Raises:
        DataError: a row without a prompt (or instruction), without an output, or with an output
            that is neither a string nor a non-empty list of strings.
    """
    out: list[Example] = []
    for n, row in read_jsonl(path):
        prompt = row.get("prompt")
        if prompt is None and isinstance(row.get("instruction"), str):
            prompt = render_prompt(row["instruction"], str(row.get("input") or ""))
        if not isinstance(prompt, str):
            raise DataError(f"{path}:{n}: missing string field 'prompt' (or 'instruction') (found {sorted(row)})")
        output = row.get("output")
        if isinstance(output, list):
            if not output or not all(isinstance(o, str) for o in output):
                raise DataError(f"{path}:{n}: 'output' must be a string or a non-empty list of strings")
        elif not isinstance(output, str):
            raise DataError(f"{path}:{n}: missing string field 'output' (found {sorted(row)})")
        out.append({"prompt": prompt, "output": output})
    return out
