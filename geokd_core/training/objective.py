"""The distillation objective L = γ·CE + α·L_feature + (1−α)·L_KD, one term at a time.

Each term is returned separately so the loop can log ``train/ce``, ``train/feature`` and
``train/kd``. The feature-loss modules live here (one per mapped layer pair): ``linproj`` and
``orthproj`` carry trainable projections, so this module is optimised and checkpointed together
with the student.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from geokd_core.spec import LossSpec


@dataclass
class TeacherTargets:
    """What the student is distilled towards, for one batch.

    Attributes:
        logits: ``[b, C]`` (classification/regression) or ``[b, L, V]`` (causal LM).
        feats: one tensor per mapped pair: ``[b, L, d_t]`` for token granularity (padding rows
            are ignored through the attention mask), ``[b, d_t]`` for pooled granularity.
    """

    logits: torch.Tensor
    feats: list[torch.Tensor]


def reduce_features(hidden: torch.Tensor, mask: torch.Tensor, granularity: str) -> torch.Tensor:
    """``[b, L, d]`` hidden states → ``[n, d]`` rows compared by the feature losses.

    token: every non-padding token (n = number of valid tokens); pooled: the masked mean per
    example (n = b).
    """
    from geokd_core import losses

    if granularity == "pooled":
        return losses.pool(hidden, mask, "mean")
    return losses.valid_tokens(hidden, mask)


def supervised_loss(logits: torch.Tensor, labels: torch.Tensor, task_type: str) -> torch.Tensor:
    """Cross-entropy (classification), MSE (regression) or next-token CE (causal LM, -100 ignored)."""
    if task_type == "regression":
        return F.mse_loss(logits.squeeze(-1).float(), labels.float())
    if task_type == "causal_lm":
        return F.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1), ignore_index=-100
        )
    return F.cross_entropy(logits.float(), labels)


class Objective(nn.Module):
    """Computes the loss terms of one batch.

    Args:
        spec: the job's loss settings.
        task_type: ``classification`` | ``regression`` | ``causal_lm``.
        n_pairs: number of mapped layer pairs (one feature-loss module each).
        d_student / d_teacher: hidden sizes of the two models.
        distill: False for finetune (CE only, no teacher).
    """

    def __init__(self, spec: LossSpec, task_type: str, n_pairs: int, d_student: int, d_teacher: int,
                 distill: bool) -> None:
        super().__init__()
        self.spec = spec
        self.task_type = task_type
        self.distill = distill
        self.feature_losses = nn.ModuleList()
        if distill and spec.feature is not None:
            from geokd_core import losses

            self.feature_losses.extend(
                losses.make_feature_loss(spec.feature, d_student, d_teacher) for _ in range(n_pairs)
            )

    @property
    def uses_features(self) -> bool:
        return len(self.feature_losses) > 0

    def kd_term(self, s_logits: torch.Tensor, t_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Logit distillation: KD of ``spec.kd_kind`` (MSE to the teacher's score for regression)."""
        from geokd_core import losses

        if self.task_type == "regression":
            return F.mse_loss(s_logits.float(), t_logits.float())
        if self.task_type == "causal_lm":
            # Position p predicts token p+1: only response tokens (label != -100) are distilled.
            mask = labels[:, 1:] != -100
            return losses.kd(s_logits[:, :-1].float(), t_logits[:, :-1].float(), self.spec.temperature,
                             self.spec.kd_kind, mask=mask, skew_lambda=self.spec.skew_lambda)
        return losses.kd(s_logits.float(), t_logits.float(), self.spec.temperature, self.spec.kd_kind,
                         skew_lambda=self.spec.skew_lambda)

    def feature_term(self, s_hidden: Sequence[torch.Tensor], targets: TeacherTargets,
                     mask: torch.Tensor) -> torch.Tensor:
        """Mean over mapped pairs of the feature loss between student and teacher rows."""
        terms = []
        for fl, h_s, f_t in zip(self.feature_losses, s_hidden, targets.feats, strict=True):
            s = reduce_features(h_s.float(), mask, self.spec.granularity)
            t = f_t.float() if self.spec.granularity == "pooled" else reduce_features(f_t.float(), mask, "token")
            terms.append(fl(s, t))
        return torch.stack(terms).mean()

    def forward(self, s_logits: torch.Tensor, s_hidden: Sequence[torch.Tensor], labels: torch.Tensor,
                mask: torch.Tensor, targets: TeacherTargets | None) -> dict[str, torch.Tensor]:
        """The loss terms of one batch.

        Args:
            s_logits: student logits, ``[b, C]`` or ``[b, L, V]``.
            s_hidden: the student's hidden states of the mapped layers, each ``[b, L, d_s]``.
            labels: ``[b]`` class ids / scores, or ``[b, L]`` token ids with -100 on ignored positions.
            mask: ``[b, L]`` attention mask.
            targets: the teacher's logits and mapped features (None for finetune).

        Returns:
            ``{"loss", "ce", "kd", "feature"}``; ``loss`` carries the gradient, the others are
            the unweighted terms (zeros for terms the job does not use).
        """
        zero = s_logits.new_zeros((), dtype=torch.float32)
        ce = supervised_loss(s_logits, labels, self.task_type)
        if not self.distill or targets is None:
            return {"loss": ce, "ce": ce.detach(), "kd": zero, "feature": zero}
        a, g = self.spec.alpha, self.spec.gamma
        kd = self.kd_term(s_logits, targets.logits, labels) if a < 1.0 else zero
        feat = self.feature_term(s_hidden, targets, mask) if self.uses_features and a > 0.0 else zero
        loss = g * ce + a * feat + (1.0 - a) * kd
        return {"loss": loss, "ce": ce.detach(), "kd": kd.detach(), "feature": feat.detach()}
