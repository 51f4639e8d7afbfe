"""Deterministic data order: a seeded permutation per epoch, addressed by a global micro-batch index.

Micro-batch ``m`` is batch ``m mod n_batches`` of epoch ``m div n_batches``; optimiser step ``k``
consumes micro-batches ``k·accum .. k·accum + accum − 1``. The order is therefore a pure
function of (seed, step): resuming at step k replays exactly the batches an uninterrupted run
would have seen.
"""

from __future__ import annotations

import math

import torch


def batches_per_epoch(n_examples: int, batch_size: int) -> int:
    return max(1, math.ceil(n_examples / batch_size))


def total_steps(n_examples: int, batch_size: int, grad_accum: int, epochs: float, max_steps: int | None) -> int:
    """Optimiser steps of the run: ``max_steps`` if given, else ``epochs`` over the data (≥ 1)."""
    if max_steps is not None:
        return max_steps
    micro = epochs * batches_per_epoch(n_examples, batch_size)
    return max(1, math.ceil(micro / grad_accum))


class BatchOrder:
    """Example positions of every micro-batch."""

    def __init__(self, n_examples: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size, self.seed = n_examples, batch_size, seed
        self.per_epoch = batches_per_epoch(n_examples, batch_size)
        self._epoch = -1
        self._perm: list[int] = []

    def permutation(self, epoch: int) -> list[int]:
        """The shuffled example order of ``epoch`` (its own generator: no global RNG is consumed)."""
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return torch.randperm(self.n, generator=g).tolist()

    def micro_batch(self, m: int) -> list[int]:
        epoch, pos = divmod(m, self.per_epoch)
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, self.permutation(epoch)
        return self._perm[pos * self.batch_size:(pos + 1) * self.batch_size]

    def epoch_of(self, m: int) -> float:
        return m / self.per_epoch
