"""Batching examples into model inputs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from geokd_core.data.types import Example, TaskInfo

if TYPE_CHECKING:
    from torch import Tensor

IGNORE_INDEX = -100  # the label value transformers' losses skip


def _first_reference(output: str | list[str]) -> str:
    return output[0] if isinstance(output, list) else output


def fit_prompt_output(prompt: list[int], output: list[int], max_len: int) -> tuple[list[int], list[int]]:
    """Truncate ``prompt + output`` to ``max_len`` tokens, keeping the prompt's end.

    When both fit nothing changes. Otherwise the prompt keeps its last ``max(max_len - len(output),
    min(len(prompt), max_len // 2))`` tokens (its start is dropped: the instruction's tail and the
    "### Response:" marker matter most) and the output is cut from the right to fill the rest.
    """
    if len(prompt) + len(output) <= max_len:
        return prompt, output
    keep_p = max(max_len - len(output), min(len(prompt), max_len // 2))
    prompt = prompt[len(prompt) - keep_p :] if keep_p else []
    return prompt, output[: max_len - len(prompt)]


def pad_id(tokenizer: Any) -> int:
    """The tokenizer's pad id, else its EOS id, else 0."""
    for attr in ("pad_token_id", "eos_token_id"):
        v = getattr(tokenizer, attr, None)
        if v is not None:
            return int(v)
    return 0


def _classification_collator(tokenizer: Any, info: TaskInfo, max_seq_len: int) -> Callable[[list[Example]], dict[str, Tensor]]:
    import torch  # lazily: loading data (and preflight) must not need torch

    label_dtype = torch.float32 if info.task_type == "regression" else torch.long

    def collate(batch: list[Example]) -> dict[str, Tensor]:
        a = [ex["text_a"] for ex in batch]
        b = [ex.get("text_b") for ex in batch]
        pair = any(x is not None for x in b)
        enc = tokenizer(
            a,
            [x or "" for x in b] if pair else None,
            truncation=True,
            max_length=max_seq_len,
            padding=True,
            return_tensors="pt",
        )
        out = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
        out["labels"] = torch.tensor([ex["label"] for ex in batch], dtype=label_dtype)
        out["idx"] = torch.tensor([ex["idx"] for ex in batch], dtype=torch.long)
        return out

    return collate


def _causal_collator(tokenizer: Any, max_seq_len: int) -> Callable[[list[Example]], dict[str, Tensor]]:
    import torch

    pad = pad_id(tokenizer)
    eos = getattr(tokenizer, "eos_token_id", None)

    def collate(batch: list[Example]) -> dict[str, Tensor]:
        seqs: list[tuple[list[int], list[int]]] = []
        for ex in batch:
            p = tokenizer(ex["prompt"], add_special_tokens=True)["input_ids"]
            o = tokenizer(_first_reference(ex["output"]), add_special_tokens=False)["input_ids"]
            if eos is not None:
                o = [*o, int(eos)]  # the model learns to stop
            seqs.append(fit_prompt_output(list(p), list(o), max_seq_len))
        width = max(len(p) + len(o) for p, o in seqs)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        for i, (p, o) in enumerate(seqs):
            n = len(p) + len(o)
            ids[i, :n] = torch.tensor(p + o, dtype=torch.long)
            mask[i, :n] = 1
            labels[i, len(p) : n] = torch.tensor(o, dtype=torch.long)
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": labels,
            "idx": torch.tensor([ex["idx"] for ex in batch], dtype=torch.long),
        }

    return collate


def make_collator(tokenizer: Any, info: TaskInfo, max_seq_len: int) -> Callable[[list[Example]], dict[str, Tensor]]:
    """A function turning a list of examples into a batch of tensors.

    Classification/regression: ``input_ids``, ``attention_mask`` ``[B, L]`` (+ ``token_type_ids``
    when the tokenizer gives them), ``labels`` ``[B]`` (long, or float32 for regression), ``idx`` ``[B]``.

    causal_lm (right padding): ``input_ids``, ``attention_mask``, ``labels`` ``[B, L]`` with
    ``labels = input_ids`` on output tokens (+ EOS) and ``-100`` on prompt and padding (the model
    shifts them itself), ``idx`` ``[B]``. A list ``output`` trains on its first reference.
    """
    if info.task_type == "causal_lm":
        return _causal_collator(tokenizer, max_seq_len)
    return _classification_collator(tokenizer, info, max_seq_len)
