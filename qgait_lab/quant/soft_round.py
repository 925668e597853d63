"""The paper's soft quantizer theta_k (Eq. 6) and its slope (Eq. 7).

Kept in a module of its own because both the autograd nodes of
:mod:`qgait_lab.quant.functional` and the fused kernels of
:mod:`qgait_lab.quant.kernels` are written in terms of it.
"""
from __future__ import annotations

import torch
from torch import Tensor


def as_k(k: float | Tensor, like: Tensor) -> Tensor:
    """``k`` as a 0-d tensor on ``like``'s device (a 0-d tensor never changes the result dtype)."""
    return torch.as_tensor(k, dtype=like.dtype, device=like.device)


def soft_round(x: Tensor, k: float | Tensor) -> Tensor:
    """The paper's soft quantizer theta_k (Eq. 6), differentiable everywhere.

    ``theta_k(x) = floor(x) + tanh(k d) / (2 tanh(k/2)) + 1/2`` with
    ``d = x - floor(x) - 1/2``.  It passes through every integer
    (``theta_k(n) = n``), tends to ``round`` as ``k -> inf`` and to the identity
    as ``k -> 0``.  The paper requires ``k >= 1``; this function accepts any
    ``k > 0`` so that the limits can be explored.  Autograd through this
    function gives exactly :func:`soft_round_slope` (``floor`` has zero
    gradient).
    """
    k = as_k(k, x)
    fl = torch.floor(x).detach()
    d = x - fl - 0.5
    return fl + 0.5 * torch.tanh(k * d) / torch.tanh(0.5 * k) + 0.5


def soft_round_slope(x: Tensor, k: float | Tensor) -> Tensor:
    """Analytic derivative of theta_k with respect to x (the slope used in Eq. 7).

    ``d theta_k / dx = k * sech^2(k d) / (2 tanh(k/2))``.  Its mean over any unit
    interval is exactly 1 (theta_k rises by one per unit), so the soft gradient
    redistributes, rather than shrinks, the STE's constant slope of 1: large
    near the rounding thresholds (``d = 0``), small near the integers.
    """
    k = as_k(k, x)
    d = x - torch.floor(x) - 0.5
    sech = 1.0 / torch.cosh(k * d)
    return k * sech * sech / (2.0 * torch.tanh(0.5 * k))
