"""Reference solutions of notebook 04 (the k-slider explorer), one name per exercise."""
from __future__ import annotations

import math


# 4.1: theta_k'(d) = k sech^2(k d) / (2 tanh(k/2)) >= tau  <=>  sech^2(k d) >= r = 2 tau tanh(k/2) / k
#      <=>  |d| <= arccosh(1 / sqrt(r)) / k; the share of d ~ U[-1/2, 1/2] is twice that, at most 1.
def meaningful_fraction(k: float, threshold: float = 0.1) -> float:
    """Share of inputs, uniform over a rounding cell, whose slope theta_k' is >= ``threshold``."""
    r = 2 * threshold * math.tanh(k / 2) / k
    if r > 1:           # even the peak slope k / (2 tanh(k/2)) is below the threshold
        return 0.0
    half_width = math.acosh(1 / math.sqrt(r)) / k
    return min(1.0, 2 * half_width)


def _crossing(threshold: float = 0.1, share: float = 0.5, lo: float = 1.0, hi: float = 20.0) -> float:
    """Bisection on the closed form: the k where the share falls to ``share``."""
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if meaningful_fraction(mid, threshold) > share else (lo, mid)
    return 0.5 * (lo + hi)


# 4.2: where the share of uniformly spread inputs with theta_k' >= 0.1 falls to one half.
k_half = _crossing()

# 4.3: a larger step clips less, and at LSQ's initial 4-bit step clipping dominates the error.
step_choice = "b"
