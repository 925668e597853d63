"""Hidden checks of notebook 03, run only by ``qgait-lab lab grade`` (never shown to students).

They try cases the visible checkers leave out: other shapes and dtypes, inputs far from 0, values of k
outside the visible grid, and the tails of the functions, compared with 50 significant digits.
"""
from __future__ import annotations

import mpmath
import numpy as np
import sympy as sp
import torch

from qgait_lab.lab import theory
from qgait_lab.lab.exercises import soft_round as ex
from qgait_lab.lab.exercises.core import Wrong, fmt, sympy_in
from qgait_lab.quant.functional import soft_round

DIGITS = 50


def _close_in(expr: sp.Expr, want: sp.Expr, symbol: sp.Symbol, points, what: str) -> None:
    """Relative agreement to 1e-20 at ``points``, with 50 digits (tails included)."""
    f_got, f_want = sp.lambdify(symbol, expr, "mpmath"), sp.lambdify(symbol, want, "mpmath")
    with mpmath.workdps(DIGITS):
        for p in points:
            try:
                g = complex(f_got(mpmath.mpf(p)))
            except Exception:  # noqa: BLE001
                raise Wrong(f"{what} cannot be evaluated at {symbol.name} = {p:g}") from None
            w = complex(f_want(mpmath.mpf(p)))
            if abs(g - w) > 1e-20 * abs(w):
                side = "too large" if g.real > w.real else "too small"
                raise Wrong(f"{what} = {sp.sstr(expr)} is {side} at {symbol.name} = {p:g} "
                            f"(your value {fmt(g.real)})")


# 3.1 ------------------------------------------------------------------------
def theta_other_shapes_and_dtypes(theta_k) -> str:
    """A float32 tensor of shape [3, 5, 7], and a 0-d tensor."""
    gen = torch.Generator().manual_seed(3)
    x = (torch.rand(3, 5, 7, generator=gen) * 8 - 4).float()
    for k in (1.5, 4.0):
        got = ex.theta_values(theta_k, x, k)
        ex.compare_on_grid(got, soft_round(x.double(), k).numpy(), x.double().numpy(),
                           f"theta_k(x, k={k:g}) on a float32 tensor of shape [3, 5, 7]", atol=1e-5, rtol=0)
    scalar = torch.tensor(0.3, dtype=torch.float64)
    got = ex.theta_values(theta_k, scalar, 2.0)
    ex.compare_on_grid(got, soft_round(scalar, 2.0).numpy(), np.array(0.3), "theta_k on a 0-d tensor", atol=1e-10)
    return "right on a float32 tensor of shape [3, 5, 7] and on a 0-d tensor"


def theta_far_out_and_other_k(theta_k) -> str:
    """Inputs in the hundreds, and k = 0.5, 12 and 40."""
    x = torch.linspace(-400.37, 400.91, 2001, dtype=torch.float64)
    for k in (0.5, 12.0, 40.0):
        ex.theta_matches(theta_k, x, k, atol=1e-7)
    return "right for |x| up to 400 and for k = 0.5, 12 and 40"


# 3.2 ------------------------------------------------------------------------
def mean_at_other_k(expr) -> str:
    answer = sympy_in(expr, theory.k, "E[∇G(z)]")
    _close_in(answer, theory.mean_grad_G(), theory.k, (0.05, 0.37, 13.0, 41.0, 250.0), "E[∇G(z)]")
    return "right at k = 0.05, 0.37, 13, 41 and 250 (50 digits)"


# 3.3 ------------------------------------------------------------------------
def antiderivative_in_the_tails(expr) -> str:
    """F' = sech⁴ relative to sech⁴ itself where sech⁴ is tiny (|z| up to 20)."""
    F = sympy_in(expr, theory.z, "your antiderivative F(z)")
    _close_in(sp.diff(F, theory.z), sp.sech(theory.z) ** 4, theory.z, (-20.0, -7.5, 4.2, 11.0, 20.0),
              "the derivative of your F")
    return "F' = sech⁴ also in the tails (|z| up to 20, relative to sech⁴, 50 digits)"


# 3.4 ------------------------------------------------------------------------
def second_moment_at_other_k(expr) -> str:
    answer = sympy_in(expr, theory.k, "E_x[(∂θ_k/∂x)²]")
    _close_in(answer, theory.slope_second_moment_expected(), theory.k, (0.02, 0.4, 13.0, 35.0, 120.0),
              "E_x[(∂θ_k/∂x)²]")
    return "right at k = 0.02, 0.4, 13, 35 and 120 (50 digits)"


# 3.5 ------------------------------------------------------------------------
def alpha_gives_back_k(expr) -> str:
    """DSQ's own relation k = log(2/α - 1), with the student's α substituted, at other k."""
    k = theory.k
    answer = sympy_in(expr, k, "α")
    _close_in(theory.dsq_k_from_alpha(answer, sp.Integer(1)), k, k, (0.1, 0.9, 14.0, 30.0),
              "log(2/α - 1) with your α")
    return "substituted into DSQ's k = log(2/α - 1), your α gives back k (k = 0.1 to 30, 50 digits)"


HIDDEN = {
    "3.1": [theta_other_shapes_and_dtypes, theta_far_out_and_other_k],
    "3.2": [mean_at_other_k],
    "3.3": [antiderivative_in_the_tails],
    "3.4": [second_moment_at_other_k],
    "3.5": [alpha_gives_back_k],
}
