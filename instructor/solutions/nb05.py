"""Solutions for notebook 03 (quantizers: STE against the soft gradient)."""
from __future__ import annotations

import torch

from qgait_lab.quant.functional import soft_round, soft_round_slope


def _bounds(bits: int, signed: bool) -> tuple[int, int]:
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)


def lsq_step_grad(v: torch.Tensor, step: float, bits: int, signed: bool) -> torch.Tensor:
    """LSQ's ``d v_hat / d s`` with the STE: ``round(c) - c`` inside, the bound outside."""
    lo, hi = _bounds(bits, signed)
    c = v / step
    inside = torch.round(c) - c
    return torch.where(c <= lo, torch.full_like(c, lo), torch.where(c >= hi, torch.full_like(c, hi), inside))


def pact_alpha_grad(x: torch.Tensor, alpha: float, bits: int) -> torch.Tensor:
    """PACT's ``d y_q / d alpha``: 1 where the input is clipped (x >= alpha), else 0."""
    return (x >= alpha).to(x.dtype)


def soft_step_grad(v: torch.Tensor, step: float, bits: int, signed: bool, k: float) -> torch.Tensor:
    """``d/ds [s * theta_k(clamp(v / s))]``: ``theta_k(c) - c * theta_k'(c)`` inside, the bound outside."""
    lo, hi = _bounds(bits, signed)
    c = v / step
    inside = soft_round(c, k) - c * soft_round_slope(c, k)
    return torch.where(c <= lo, torch.full_like(c, lo), torch.where(c >= hi, torch.full_like(c, hi), inside))
