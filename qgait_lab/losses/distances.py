"""Euclidean distances per horizontal part, the one definition the losses and evaluation share.

:func:`squared_part_distances` is the ``|a|^2 + |b|^2 - 2 a.b`` expansion on
parts-first tensors; :func:`part_distances` (the losses) and
:func:`qgait_lab.evaluation.pairwise_distance` (evaluation) both build on it.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .inputs import _as_parts


def squared_norms(y: Tensor) -> Tensor:
    """``|b|^2`` of every row of ``[p, m, c]``: ``[p, m]``."""
    return (y * y).sum(-1)


def squared_part_distances(x: Tensor, y: Tensor, y_norms: Tensor | None = None) -> Tensor:
    """Squared Euclidean distances per part: ``[p, n, c]`` and ``[p, m, c]`` give ``[p, n, m]``.

    ``|a|^2 + |b|^2 - 2 a.b`` with one batched matmul, as OpenGait does.
    ``y_norms`` (:func:`squared_norms` of ``y``) spares recomputing ``|b|^2``
    when ``y`` meets several chunks of ``x``.  Rounding can leave entries
    slightly below 0; callers clamp or guard before taking the square root.
    """
    y_norms = squared_norms(y) if y_norms is None else y_norms
    return (x * x).sum(-1, keepdim=True) + y_norms.unsqueeze(1) - 2.0 * x @ y.transpose(1, 2)


def part_distances(x: Tensor, y: Tensor | None = None, eps: float = 1e-12) -> Tensor:
    """Euclidean distances per part: ``[n, c, p]`` and ``[m, c, p]`` give ``[p, n, m]``.

    Uses ``|a|^2 + |b|^2 - 2 a.b`` (one batched matmul, as OpenGait does).
    The square root is taken only where the squared distance exceeds ``eps``;
    elsewhere the distance is exactly 0 with zero gradient.  A plain
    ``sqrt(relu(.))`` has an infinite derivative at 0, which turns into NaN
    as soon as two embeddings coincide (always true on the diagonal).
    """
    x = _as_parts(x, "x").permute(2, 0, 1)                      # [p, n, c]
    y = x if y is None else _as_parts(y, "y").permute(2, 0, 1)  # [p, m, c]
    squared = squared_part_distances(x, y)
    if y is x:  # self-distances: exactly 0 rather than a rounding residue of the expansion
        eye = torch.eye(x.shape[1], dtype=torch.bool, device=x.device)
        squared = squared.masked_fill(eye, 0.0)
    positive = squared > eps
    return torch.where(positive, squared.clamp_min(eps).sqrt(), torch.zeros_like(squared))
