"""Feature losses by name: pure functions via :func:`get`, trainable modules via :func:`make_feature_loss`.

One generic registry (the key is the name a job spec uses); the names must equal
``geokd_core.spec.FEATURE_LOSSES`` (a test checks).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from .cka import cka, cka_debiased
from .gram import gram
from .procrustes import procrustes
from .projection import Projection, linproj

__all__ = ["FeatureLoss", "available", "get", "make_feature_loss"]

LossFn = Callable[[Tensor, Tensor], Tensor]

# Parameter-free losses: name -> pure function f(student [n, d_s], teacher [n, d_t]) -> scalar.
_FUNCTIONS: dict[str, LossFn] = {
    "procrustes": procrustes,
    "gram": gram,
    "cka": cka,
    "cka_debiased": cka_debiased,
}
# Losses that own a trainable projection: name -> Projection kind.
_PROJECTED: dict[str, str] = {"linproj": "linear", "orthproj": "orthogonal"}


def available() -> tuple[str, ...]:
    """All feature-loss names, in the order of ``geokd_core.spec.FEATURE_LOSSES``."""
    return (*_FUNCTIONS, *_PROJECTED)


def _unknown(name: str) -> KeyError:
    return KeyError(f"unknown feature loss {name!r}; choose one of {list(available())}")


def get(name: str) -> LossFn:
    """The pure loss function registered as ``name`` (``procrustes``, ``gram``, ``cka``, ``cka_debiased``).

    Raises:
        KeyError: for an unknown name (the message lists the choices), or for ``linproj`` /
            ``orthproj``, which own parameters: use :func:`make_feature_loss` for those.
    """
    if name in _FUNCTIONS:
        return _FUNCTIONS[name]
    if name in _PROJECTED:
        raise KeyError(
            f"feature loss {name!r} has a trainable projection; use make_feature_loss({name!r}, d_student, d_teacher)"
        )
    raise _unknown(name)


class FeatureLoss(nn.Module):
    """A named feature loss as a module: ``forward(s [n, d_s], t [n, d_t]) -> scalar``.

    ``linproj`` / ``orthproj`` own a :class:`Projection` (``self.proj``) whose parameters the
    engine optimizes and checkpoints with the student; the other losses have no parameters.
    Inputs of shape ``[..., d]`` are flattened to ``[-1, d]``.
    """

    def __init__(self, name: str, d_student: int, d_teacher: int) -> None:
        super().__init__()
        if name not in available():
            raise _unknown(name)
        self.name, self.d_student, self.d_teacher = name, d_student, d_teacher
        self.proj: Projection | None = None
        self._fn: LossFn | None = _FUNCTIONS.get(name)
        if name in _PROJECTED:
            self.proj = Projection(d_student, d_teacher, kind=_PROJECTED[name])  # type: ignore[arg-type]

    def forward(self, s: Tensor, t: Tensor) -> Tensor:
        if s.shape[-1] != self.d_student or t.shape[-1] != self.d_teacher:
            raise ValueError(
                f"{self.name}: expected widths ({self.d_student}, {self.d_teacher}), "
                f"got {tuple(s.shape)} and {tuple(t.shape)}"
            )
        s, t = s.reshape(-1, s.shape[-1]), t.reshape(-1, t.shape[-1])
        if self.proj is not None:
            return linproj(s, t, self.proj)
        assert self._fn is not None
        return self._fn(s, t)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, d_student={self.d_student}, d_teacher={self.d_teacher}"


def make_feature_loss(name: str, d_student: int, d_teacher: int) -> FeatureLoss:
    """Build the module for feature loss ``name`` between widths ``d_student`` and ``d_teacher``.

    Raises:
        KeyError: for an unknown name (the message lists the choices).
    """
    return FeatureLoss(name, d_student, d_teacher)
