"""Reference solutions of notebook 05 (the STE against the soft gradient, Fig. 5 at lab scale)."""
from __future__ import annotations

import numpy as np
import torch

from qgait_lab.quant.functional import lsq_bounds, soft_round, soft_round_slope


def soft_step_grad(v: torch.Tensor, step: float, bits: int, signed: bool, k: float) -> torch.Tensor:
    """Ex. 5.1: ``d/ds [s * θ_k(clamp(v / s))]``: ``θ_k(c) - c θ_k'(c)`` inside, the bound outside."""
    lo, hi = lsq_bounds(bits, signed)
    c = v / step
    inside = soft_round(c, k) - c * soft_round_slope(c, k)
    return torch.where(c <= lo, torch.full_like(c, lo), torch.where(c >= hi, torch.full_like(c, hi), inside))


def slope_variance(k):
    """Ex. 5.2: ``k (cosh k + 2) / (3 sinh k) - 1`` (Eq. 12 in x minus the squared mean 1 of Eq. 11)."""
    k = np.asarray(k, dtype=float)
    return k * (np.cosh(k) + 2) / (3 * np.sinh(k)) - 1


fig5_reading = "b"   # Ex. 5.3: the forward pass is the same hard round in every row
