"""The P x K batch sampler of triplet training.

Each batch holds ``P`` distinct identities with ``K`` sequences each.
Identities with fewer than ``K`` sequences are sampled with replacement (as
OpenGait's ``TripletSampler`` does), the others without.

Distributed training needs no process group here: every rank builds the same
global batch from ``(seed, epoch)`` and keeps its own share of identities,
``P / world_size`` of them, so the shares are disjoint and together form the
global batch.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

__all__ = ["PKSampler"]


class PKSampler(Sampler[list[int]]):
    """Yield batches of dataset indices: P identities x K sequences.

    Args:
        labels: the identity of every dataset item (any hashable values).
        p: identities per (global) batch; at most the number of identities.
        k: sequences per identity.
        seed: base seed; batches depend only on ``(seed, epoch)``.
        batches_per_epoch: batches per iteration over the sampler (default:
            number of identities // p, at least 1).
        rank, world_size: this process's share of each global batch.

    Each yielded list has ``(p // world_size) * k`` indices, grouped by
    identity (``k`` consecutive indices per identity).  Use it as a
    DataLoader's ``batch_sampler`` and call :meth:`set_epoch` every epoch.
    """

    def __init__(
        self,
        labels: Sequence | np.ndarray,
        p: int,
        k: int,
        seed: int = 0,
        batches_per_epoch: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        labels = np.asarray(labels)
        unique = np.unique(labels)
        if p < 1 or k < 1:
            raise ValueError(f"p and k must be >= 1, got p={p}, k={k}")
        if p > len(unique):
            raise ValueError(f"p={p} identities per batch, but the data has only {len(unique)}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        if p % world_size:
            raise ValueError(f"p={p} must be divisible by world_size={world_size}")
        self.p, self.k, self.seed = p, k, seed
        self.rank, self.world_size = rank, world_size
        self.identities = unique
        self.groups = [np.flatnonzero(labels == u) for u in unique]
        self.batches_per_epoch = batches_per_epoch if batches_per_epoch is not None else max(1, len(unique) // p)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the batches of *epoch* (the same on every rank)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.batches_per_epoch

    def global_batches(self) -> Iterator[list[int]]:
        """The full P x K batches of the current epoch, before sharing out."""
        rng = np.random.default_rng([self.seed, self.epoch])
        for _ in range(self.batches_per_epoch):
            chosen = rng.choice(len(self.groups), size=self.p, replace=False)
            batch: list[int] = []
            for g in chosen:
                group = self.groups[g]
                batch.extend(rng.choice(group, size=self.k, replace=len(group) < self.k).tolist())
            yield batch

    def __iter__(self) -> Iterator[list[int]]:
        share = (self.p // self.world_size) * self.k
        for batch in self.global_batches():
            yield batch[self.rank * share : (self.rank + 1) * share]
