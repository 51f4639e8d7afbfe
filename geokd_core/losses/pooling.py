"""From ``[batch, seq, d]`` hidden states with an attention mask to ``[n, d]`` loss inputs."""

from __future__ import annotations

from typing import Literal

from torch import Tensor

__all__ = ["pool", "valid_tokens"]


def _check(hidden: Tensor, mask: Tensor) -> None:
    if hidden.dim() != 3:
        raise ValueError(f"hidden must be [batch, seq, d], got {tuple(hidden.shape)}")
    if tuple(mask.shape) != tuple(hidden.shape[:2]):
        raise ValueError(f"mask must be [batch, seq] = {tuple(hidden.shape[:2])}, got {tuple(mask.shape)}")


def valid_tokens(hidden: Tensor, mask: Tensor) -> Tensor:
    """Token granularity: the rows of ``hidden [b, L, d]`` where ``mask [b, L]`` is set -> ``[n, d]``.

    Rows keep batch-major order, so student and teacher tokens line up when both use one mask.
    """
    _check(hidden, mask)
    return hidden[mask.bool()]


def pool(hidden: Tensor, mask: Tensor, how: Literal["mean", "cls"] = "mean") -> Tensor:
    """Pooled granularity: one vector per sequence, ``[b, L, d] -> [b, d]``.

    ``"mean"`` averages the valid tokens (a fully masked row gives zeros); ``"cls"`` takes position 0.
    """
    _check(hidden, mask)
    if how == "cls":
        return hidden[:, 0]
    if how != "mean":
        raise ValueError(f"unknown pooling {how!r}; choose 'mean' or 'cls'")
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)
