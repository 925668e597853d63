"""Solutions for notebook 02 (the k-slider explorer)."""
from __future__ import annotations

import math

import torch


def meaningful_fraction(k: float, threshold: float = 0.1) -> float:
    """Share of inputs, uniform over a rounding cell, whose slope theta_k' is >= ``threshold``.

    ``theta_k'(d) = k sech^2(k d) / (2 tanh(k/2))`` is largest at the threshold
    ``d = 0`` and smallest at the integers ``d = +-1/2``.  It is >= tau exactly
    when ``sech^2(k d) >= r = 2 tau tanh(k/2) / k``, i.e. when
    ``|d| <= arccosh(1 / sqrt(r)) / k``.
    """
    r = 2 * threshold * math.tanh(k / 2) / k
    if r > 1:           # even the peak slope k / (2 tanh(k/2)) is below the threshold
        return 0.0
    half_width = math.acosh(1 / math.sqrt(r)) / k
    return min(1.0, 2 * half_width)


def lsq_codes(v: torch.Tensor, step: float, bits: int, signed: bool) -> torch.Tensor:
    """The integers ``round(clamp(v / s, lo, hi))`` of paper Eqs. 2-3."""
    if signed:
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    else:
        lo, hi = 0, 2 ** bits - 1
    return torch.round(torch.clamp(v / step, lo, hi))
