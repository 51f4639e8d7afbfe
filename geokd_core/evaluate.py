"""Evaluation: GLUE metrics as the benchmark defines them, and ROUGE-L for instruction following.

Metrics come from scikit-learn / scipy / rouge-score (the ``evaluate`` library fetches metric
scripts from the hub at run time, so it is not used). GLUE scores are fractions (accuracy 0.85,
not 85); ROUGE-L is ×100 like MiniLLM reports it. A correlation of a constant vector is reported
as 0.0 rather than NaN so metrics stay valid JSON.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from rouge_score import rouge_scorer
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from geokd_core.data.collate import pad_id
from geokd_core.data.types import Example, TaskInfo

_F1_TASKS = ("mrpc", "qqp")
# Inputs a sequence-classification / causal LM forward accepts (labels/idx stay out: no loss needed).
_MODEL_KEYS = ("input_ids", "attention_mask", "token_type_ids")


def _corr(fn: Callable[..., Any], a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return 0.0  # undefined for constant input; 0 = "no measurable correlation"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(fn(a, b)[0])
    return 0.0 if math.isnan(value) else value


def glue_metrics(task: str | None, preds: Sequence[float] | np.ndarray, labels: Sequence[float] | np.ndarray, task_type: str) -> dict[str, float]:
    """The GLUE metrics of ``task`` (custom tasks: accuracy, or Pearson/Spearman for regression).

    Args:
        task: GLUE task name or None.
        preds: ``[N]`` predicted class ids (or scores for regression).
        labels: ``[N]`` gold ids (or scores).
        task_type: ``classification`` or ``regression``.

    Returns:
        cola → ``{"mcc"}``; mrpc/qqp → ``{"accuracy", "f1"}`` (F1 of class 1); stsb and any
        regression → ``{"pearson", "spearman"}``; otherwise ``{"accuracy"}``.

    >>> glue_metrics("mrpc", [1, 0, 1, 1], [1, 0, 0, 1], "classification")
    {'accuracy': 0.75, 'f1': 0.8}
    """
    p = np.asarray(preds)
    y = np.asarray(labels)
    if p.shape != y.shape:
        raise ValueError(f"preds {p.shape} and labels {y.shape} differ in shape")
    if p.size == 0:
        raise ValueError("no predictions to score")
    if task_type == "regression" or task == "stsb":
        p, y = p.astype(np.float64), y.astype(np.float64)
        return {"pearson": _corr(pearsonr, p, y), "spearman": _corr(spearmanr, p, y)}
    p, y = p.astype(np.int64), y.astype(np.int64)
    if task == "cola":
        return {"mcc": float(matthews_corrcoef(y, p))}
    out = {"accuracy": float(accuracy_score(y, p))}
    if task in _F1_TASKS:
        out["f1"] = float(f1_score(y, p, pos_label=1, average="binary", zero_division=0))
    return out


def primary_metric(task: str | None, task_type: str) -> str:
    """The metric used for model selection and summaries (higher is better for all of them)."""
    if task_type == "causal_lm":
        return "rougeL"
    if task_type == "regression" or task == "stsb":
        return "spearman"
    if task == "cola":
        return "mcc"
    if task in _F1_TASKS:
        return "f1"
    return "accuracy"


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    collator: Callable[[list[Example]], dict[str, torch.Tensor]],
    examples: Sequence[Example],
    *,
    batch_size: int,
    device: str | torch.device,
) -> np.ndarray:
    """Predictions of a sequence classifier on ``examples``.

    Returns:
        ``[N]`` int64 argmax class ids, or float scores when the model has a single output (regression).
    """
    was_training = model.training
    model.eval()
    chunks: list[np.ndarray] = []
    try:
        for start in range(0, len(examples), batch_size):
            batch = collator(list(examples[start : start + batch_size]))
            inputs = {k: v.to(device) for k, v in batch.items() if k in _MODEL_KEYS}
            logits = model(**inputs).logits.float()  # [B, C]
            if logits.shape[-1] == 1:
                chunks.append(logits[:, 0].cpu().numpy())
            else:
                chunks.append(logits.argmax(dim=-1).cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(chunks) if chunks else np.zeros(0)


def evaluate_classifier(
    model: torch.nn.Module,
    collator: Callable[[list[Example]], dict[str, torch.Tensor]],
    examples: Sequence[Example],
    info: TaskInfo,
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """:func:`glue_metrics` of ``model`` on ``examples`` (their ``label`` is the reference)."""
    preds = predict(model, collator, examples, batch_size=batch_size, device=device)
    labels = np.asarray([ex["label"] for ex in examples])
    return glue_metrics(info.task, preds, labels, info.task_type)


@lru_cache(maxsize=1)
def _scorer() -> rouge_scorer.RougeScorer:
    # MiniLLM / Super-NaturalInstructions: rougeL with the Porter stemmer, default tokenizer.
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, references: str | Sequence[str]) -> float:
    """ROUGE-L F-measure ×100, the maximum over the references (as MiniLLM computes it).

    >>> rouge_l("the cat sat", ["a dog", "the cat sat"])
    100.0
    """
    refs = [references] if isinstance(references, str) else list(references)
    if not refs:
        raise ValueError("rouge_l needs at least one reference")
    return 100.0 * max(_scorer().score(r, prediction)["rougeL"].fmeasure for r in refs)


@torch.no_grad()
def generate_responses(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    max_seq_len: int = 512,
) -> list[str]:
    """Greedy completions of ``prompts`` (left padding; a prompt keeps its last tokens if too long)."""
    pad = pad_id(tokenizer)
    room = max(1, max_seq_len - max_new_tokens)
    was_training = model.training
    model.eval()
    out: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            ids = [tokenizer(p, add_special_tokens=True)["input_ids"][-room:] for p in prompts[start : start + batch_size]]
            width = max(len(x) for x in ids)
            input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
            mask = torch.zeros((len(ids), width), dtype=torch.long)
            for i, x in enumerate(ids):
                input_ids[i, width - len(x) :] = torch.tensor(x, dtype=torch.long)
                mask[i, width - len(x) :] = 1
            gen = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                pad_token_id=pad,
                eos_token_id=tokenizer.eos_token_id,
            )
            new = gen[:, width:].cpu()
            out.extend(tokenizer.decode(row, skip_special_tokens=True).strip() for row in new)
    finally:
        model.train(was_training)
    return out


def evaluate_generation(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    max_seq_len: int = 512,
) -> dict[str, float]:
    """Mean ROUGE-L (×100) of greedy completions against each example's ``output``: ``{"rougeL", "n"}``."""
    preds = generate_responses(
        model, tokenizer, [ex["prompt"] for ex in examples],
        max_new_tokens=max_new_tokens, batch_size=batch_size, device=device, max_seq_len=max_seq_len,
    )
    scores = [rouge_l(p, ex["output"]) for p, ex in zip(preds, examples, strict=True)]
    return {"rougeL": float(np.mean(scores)) if scores else 0.0, "n": float(len(scores))}
