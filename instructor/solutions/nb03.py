"""Solutions for notebook 01 (the soft-round derivation)."""
from __future__ import annotations

import sympy as sp
import torch

k = sp.Symbol("k", positive=True)


def theta_k(x: torch.Tensor, k: float) -> torch.Tensor:
    """Eq. 6: ``floor(x) + tanh(k d) / (2 tanh(k/2)) + 1/2`` with ``d = x - floor(x) - 1/2``."""
    k = torch.as_tensor(k, dtype=x.dtype)
    fl = torch.floor(x)
    d = x - fl - 0.5
    return fl + torch.tanh(k * d) / (2 * torch.tanh(k / 2)) + 0.5


# E[G'(z)], z ~ U[-k/2, k/2]: (G(k/2) - G(-k/2)) / k = (1/2 + 1/2) / k.
mean_grad_G = 1 / k

# E_x[(d theta / dx)^2] = k^2 * Eq. 12 = k (cosh k + 2) / (3 sinh k).
slope_second_moment = k ** 2 * (sp.cosh(k) + 2) / (3 * k * sp.sinh(k))

# DSQ's alpha for a unit step: s = 1/(1 - alpha) = 1/tanh(k/2)  =>  alpha = 1 - tanh(k/2).
dsq_alpha = 1 - sp.tanh(k / 2)
