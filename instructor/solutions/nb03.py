"""Reference solutions of notebook 03 (the soft-round derivation), one name per exercise."""
from __future__ import annotations

import math

import sympy as sp
import torch

k = sp.Symbol("k", positive=True)
z = sp.Symbol("z", real=True)


# 3.1: Eq. 6 on a tensor.
def theta_k(x: torch.Tensor, k: float) -> torch.Tensor:
    """``floor(x) + tanh(k d) / (2 tanh(k/2)) + 1/2`` with ``d = x - floor(x) - 1/2``."""
    fl = torch.floor(x)
    d = x - fl - 0.5
    return fl + torch.tanh(k * d) / (2 * math.tanh(k / 2)) + 0.5


# 3.2: G is an antiderivative of its own gradient, so E[G'(z)] = (G(k/2) - G(-k/2)) / k = (1/2 + 1/2) / k.
mean_grad_G = 1 / k

# 3.3: with u = tanh z, du = sech^2 z dz and sech^4 z dz = (1 - u^2) du.
sech4_antiderivative = sp.tanh(z) - sp.tanh(z) ** 3 / 3

# 3.4: d theta / dx = k G'(k d) and z = k d maps d ~ U[-1/2, 1/2] onto z ~ U[-k/2, k/2]: k^2 times Eq. 12.
slope_second_moment = k ** 2 * (sp.cosh(k) + 2) / (3 * k * sp.sinh(k))

# 3.5: k = log(2/alpha - 1) for a unit step  =>  alpha = 2 / (1 + e^k) = 1 - tanh(k/2).
dsq_alpha = 1 - sp.tanh(k / 2)
