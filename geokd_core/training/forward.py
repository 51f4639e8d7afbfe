"""Model forward passes that return logits plus the hidden states of chosen layers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from geokd_core.training.objective import TeacherTargets

# Keys of a collated batch that are not model inputs.
_NON_INPUTS = ("labels", "idx")


def model_inputs(batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The tensors of ``batch`` a transformers model accepts (input_ids, attention_mask, ...)."""
    return {k: v for k, v in batch.items() if k not in _NON_INPUTS and isinstance(v, torch.Tensor)}


def forward_with_layers(model: torch.nn.Module, batch: Mapping[str, Any],
                        layers: Sequence[int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run ``model`` and pick hidden states.

    Returns:
        ``(logits, [hidden_states[l] for l in layers])``; logits ``[b, C]`` or ``[b, L, V]``, each
        hidden state ``[b, L, d]`` (index 0 = embeddings, i = output of block i).
    """
    out = model(**model_inputs(batch), output_hidden_states=bool(layers))
    hidden = out.hidden_states if layers else ()
    return out.logits, [hidden[i] for i in layers]


@torch.no_grad()
def teacher_targets(teacher: torch.nn.Module, batch: Mapping[str, Any], layers: Sequence[int],
                    granularity: str) -> TeacherTargets:
    """The frozen teacher's logits and mapped features (``[b, d_t]`` when pooled)."""
    from geokd_core.training.objective import reduce_features

    logits, feats = forward_with_layers(teacher, batch, layers)
    if granularity == "pooled":
        feats = [reduce_features(f, batch["attention_mask"], "pooled") for f in feats]
    return TeacherTargets(logits=logits.float(), feats=[f.float() for f in feats])


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
