"""geokd feature and logit distillation losses.

Feature losses take ``student [n, d_s]`` and ``teacher [n, d_t]`` (``d_s != d_t`` allowed), center
and scale both to unit Frobenius norm, and return a differentiable scalar:

* :func:`procrustes` ``D_P^2``, :func:`gram` ``D_FG^2``, :func:`cka` ``1 - CKA``,
  :func:`linproj` with a :class:`Projection` (``linear`` / ``orthogonal``).
* :func:`kd` logit distillation (``geokd_core.spec.KD_KINDS``).
* :func:`get` / :func:`available` / :func:`make_feature_loss`: the by-name registry.
* :func:`valid_tokens` / :func:`pool`: ``[batch, seq, d]`` + mask to loss inputs.
"""

from ._normalize import center_and_normalize
from .cka import cka, cka_debiased
from .gram import gram
from .kd import kd
from .pooling import pool, valid_tokens
from .procrustes import nuclear_cross, procrustes
from .projection import PROJECTION_KINDS, Projection, linproj
from .registry import FeatureLoss, available, get, make_feature_loss

__all__ = [
    "PROJECTION_KINDS",
    "FeatureLoss",
    "Projection",
    "available",
    "center_and_normalize",
    "cka",
    "cka_debiased",
    "get",
    "gram",
    "kd",
    "linproj",
    "make_feature_loss",
    "nuclear_cross",
    "pool",
    "procrustes",
    "valid_tokens",
]
