"""What every loss checks first: ``[n, c, p]`` tensors, ``[n]`` labels, two identities.

Also the loss errors (:class:`LossInputError`, :class:`NotEnoughIdentitiesError`)
and :data:`LossInfo`, the type of the logging dict each loss returns.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError, QGaitError

LossInfo = dict[str, Tensor]


class LossInputError(QGaitError, ValueError):
    """A loss received tensors of the wrong shape, dtype or label range."""


class NotEnoughIdentitiesError(LossInputError):
    """A metric loss needs samples of at least two identities in the batch."""


def _as_parts(t: Tensor, name: str) -> Tensor:
    """Return ``t`` as ``[n, c, p]`` (``[n, c]`` becomes one part), promoting half precision."""
    if t.dim() == 2:
        t = t.unsqueeze(-1)
    if t.dim() != 3:
        raise LossInputError(f"{name} must be [n, c, p] (or [n, c]); got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        raise LossInputError(f"{name} must be a floating-point tensor; got {t.dtype}")
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    return t


def _check_labels(labels: Tensor, n: int) -> None:
    if labels.dim() != 1 or labels.shape[0] != n:
        raise LossInputError(f"labels must be [n] with n = {n}; got shape {tuple(labels.shape)}")
    if labels.is_floating_point():
        raise LossInputError(f"labels must be integers; got {labels.dtype}")


def _require_identities(labels: Tensor, loss_name: str) -> int:
    """Raise unless the batch holds at least two identities; return their number."""
    found = int(torch.unique(labels).numel())
    if found < 2:
        raise NotEnoughIdentitiesError(
            f"{loss_name} needs samples of at least 2 identities in the batch to form "
            f"different-label pairs; found {found} identity among {labels.numel()} samples. "
            "Use an identity-balanced (P x K) sampler with P >= 2.")
    return found


def _check_positive(value: float, name: str) -> float:
    if not value > 0:
        raise ConfigError(f"{name} must be > 0; got {value}")
    return float(value)
