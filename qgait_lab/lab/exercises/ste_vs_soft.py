"""Exercises of notebook 05 (the STE against the soft gradient, and Fig. 5 at lab scale).

* 5.1 ``soft_step_grad``: the step-size gradient of LSQ when θ_k is also the
  forward pass (paper Eqs. 2-3 with Eq. 6 in place of the round);
* 5.2 ``slope_variance``: the spread of θ_k' through a quantizer, from Eq. 12 (in x);
* 5.3 ``fig5_reading``: what the Fig. 5 table compares (a choice).

The checkers compare the student's function with plain autograd or with the
library (:mod:`qgait_lab.quant`, :mod:`qgait_lab.lab.theory`) and report the inputs
where it differs (v, or k), the region those inputs lie in and whether the
student's value is too large or too small, never the expected value.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from .core import NotAttempted, Wrong, as_array, call, check_choice, compare_on_grid, exercise

NOTEBOOK = "05_ste_vs_soft"


# ---------------------------------------------------------------------------
# 5.1 The step gradient under θ_k
# ---------------------------------------------------------------------------
def soft_step_grad_reference(v: torch.Tensor, step: float, bits: int, signed: bool, k: float) -> torch.Tensor:
    """``d/ds [s * θ_k(clamp(v / s, r1, r2))]`` per element, by plain autograd (no custom backward)."""
    from ...quant.functional import lsq_bounds, soft_round

    lo, hi = lsq_bounds(bits, signed)
    v = v.detach().double()
    s = torch.full_like(v, float(step), requires_grad=True)      # one step per element: per-element gradients
    (grad,) = torch.autograd.grad((s * soft_round(torch.clamp(v / s, lo, hi), k)).sum(), s)
    return grad


def _region(c: float, lo: int, hi: int) -> str:
    if c < lo:
        return "v/step is below the clip range (clipped)"
    if c > hi:
        return "v/step is above the clip range (clipped)"
    return "v/step is inside the clip range"


def assert_soft_step_grad(soft_step_grad: Callable, v: torch.Tensor, step: float, bits: int, signed: bool,
                          k: float, atol: float = 1e-6) -> None:
    """Raise Wrong, naming the setting, the inputs v and their region, where the answer differs from autograd."""
    from ...quant.functional import lsq_bounds

    lo, hi = lsq_bounds(bits, signed)
    where = f"for {'signed' if signed else 'unsigned'} {bits}-bit codes, step {step:g}, k = {k:g}"
    got = as_array(call(soft_step_grad, v.clone(), step, bits, signed, k), "soft_step_grad")
    want = soft_step_grad_reference(v, step, bits, signed, k).numpy()
    if got.shape != want.shape:
        raise Wrong(f"{where}: soft_step_grad has shape {tuple(got.shape)}, but v has shape {tuple(want.shape)}: "
                    "return one value per element of v")
    c = (v.detach().double() / step).numpy().ravel()
    # Exactly on a clip bound the derivative has a kink (left and right derivatives differ): not compared.
    keep = (np.abs(c - lo) > 1e-6) & (np.abs(c - hi) > 1e-6)
    index = np.flatnonzero(keep)
    labels = [f"v = {x:.4g}" for x in v.detach().double().numpy().ravel()[index]]
    try:
        compare_on_grid(got.ravel()[index], want.ravel()[index], labels, "soft_step_grad", atol=atol, rtol=1e-6,
                        describe=lambda i: _region(float(c[index[i]]), lo, hi))
    except Wrong as err:
        raise Wrong(f"{where}: {err}") from None


STEP_GRAD_CASES = [(bits, signed, step, k) for bits in (2, 4) for signed in (False, True)
                   for step in (0.1, 0.45) for k in (1.0, 4.0)]


@exercise("5.1", NOTEBOOK, "the step gradient under θ_k", answer="soft_step_grad",
          hints=("v̂ = s·θ_k(c) is a product of two factors that both depend on s: the step itself, and "
                 "θ_k(c) through c = clamp(v/s, r1, r2). Use the product rule, then the chain rule.",
                 "Inside the clip range, dc/ds = -v/s², which you can write with c and s alone. Outside it, c "
                 "is the constant bound, so only the first factor changes with s; θ_k of an integer is that "
                 "integer.",
                 "qgait_lab.quant.functional has soft_round (θ_k) and soft_round_slope (θ_k'), and lsq_bounds "
                 "for (r1, r2); torch.where picks a value per element from the three regions. Compare your "
                 "function with torch.autograd.grad on a few values of v if the check still fails."))
def check_soft_step_grad(soft_step_grad: Callable) -> str:
    """``soft_step_grad(v, step, bits, signed, k)``: ``d/ds [s * θ_k(clamp(v / s))]`` per element."""
    v = torch.linspace(-4, 4, 801, dtype=torch.float64)
    for bits, signed, step, k in STEP_GRAD_CASES:
        assert_soft_step_grad(soft_step_grad, v, step, bits, signed, k)
    return (f"matches plain autograd of s·θ_k(clamp(v/s)) on 801 values of v in {len(STEP_GRAD_CASES)} settings "
            "(2 and 4 bits, signed and unsigned, two steps, k = 1 and 4)")


# ---------------------------------------------------------------------------
# 5.2 The spread of the soft gradient
# ---------------------------------------------------------------------------
def slope_variance_reference(k: Any) -> np.ndarray:
    """Var[θ_k'(c)] for c uniform over whole cells: Eq. 12 (in x) minus the squared mean 1 (Eq. 11)."""
    from .. import theory

    return theory.slope_second_moment_numpy(np.asarray(k, dtype=float)) - 1.0


def assert_slope_variance(slope_variance: Callable, ks: Any) -> None:
    """Raise Wrong, naming k and the property violated, where the answer differs from Eq. 12 minus 1."""
    ks = np.asarray(ks, dtype=float)
    try:
        got = as_array(call(slope_variance, ks if ks.ndim else float(ks)), "slope_variance")
    except (NotAttempted, Wrong):
        raise
    except Exception as err:  # noqa: BLE001 - the student's code may raise anything
        if not ks.ndim:
            raise
        raise Wrong(f"slope_variance of a numpy array of k (shape {ks.shape}) raised {type(err).__name__}: "
                    f"{err}; the function must take an array of k as well as a float") from None
    labels = [f"k = {x:.4g}" for x in ks.ravel()]
    if got.shape != ks.shape:
        raise Wrong(f"slope_variance of an array of k of shape {ks.shape} returned shape {got.shape}: "
                    "return one variance per k")
    if np.isfinite(got).all() and (got < -1e-12).any():
        i = int(np.flatnonzero(got.ravel() < -1e-12)[0])
        raise Wrong(f"slope_variance at {labels[i]} is {got.ravel()[i]:.4g}, a negative number: "
                    "a variance is never negative")
    compare_on_grid(got.ravel(), slope_variance_reference(ks).ravel(), labels, "slope_variance",
                    atol=1e-9, rtol=1e-6)


VARIANCE_KS = (1.2, 1.7, 2.5, 7.0, 20.0)   # not the k of the notebook's table (1, 3, 5, 10)


@exercise("5.2", NOTEBOOK, "the spread of the soft gradient", answer="slope_variance",
          hints=("A variance is the second moment minus the square of the mean. Notebook 03 derived both for "
                 "the slope of θ_k in x, over one unit cell.",
                 "Through the quantizer, v̂ = s·θ_k(v/s): the chain rule's 1/s cancels the factor s, so the "
                 "slope d v̂/d v is θ_k'(c) whatever the step. Inputs spread uniformly over whole cells make c "
                 "uniform on each cell, which is the setting of Eqs. 11 and 12.",
                 "qgait_lab.lab.theory.slope_second_moment_numpy evaluates Eq. 12 in x on a numpy array of k; "
                 "np.asarray(k, dtype=float) lets one function serve a float and an array."))
def check_slope_variance(slope_variance: Callable) -> str:
    """``slope_variance(k)``: Var[d v̂ / d v] through an LSQ quantizer with θ_k', inputs uniform over whole cells."""
    for k in VARIANCE_KS:
        assert_slope_variance(slope_variance, k)
    assert_slope_variance(slope_variance, np.array(VARIANCE_KS))
    return "agrees with Eq. 12 (in x) minus the squared mean at k = 1.2, 1.7, 2.5, 7 and 20, and on an array of k"


# ---------------------------------------------------------------------------
# 5.3 What the Fig. 5 table compares
# ---------------------------------------------------------------------------
FIG5_OPTIONS = ("a", "b", "c", "d")
FIG5_DIGEST = "c7c1f1f6df2b1258"
FIG5_FEEDBACK = {
    "a": "which pass of the quantizer does stage1.gradient=soft change? Look at section 1 again: the forward "
         "output of an LSQ quantizer is the same function for gradient='ste' and gradient='soft'",
    "c": "every row of the table trains for the same number of iterations with the same seed; only the "
         "gradient setting differs",
    "d": "Rank-1 is measured with the forward pass of each row's own trained weights, and those weights differ "
         "between rows",
}


@exercise("5.3", NOTEBOOK, "what the Fig. 5 table compares", answer="fig5_reading",
          hints=("Ask which part of the quantizer the setting stage1.gradient changes, and which part computes "
                 "the loss that the table averages.",
                 "Section 1 switched one LSQ quantizer between gradient='ste' and gradient='soft' and drew "
                 "both passes: compare what changed in the top row of that kind of picture (the forward "
                 "output) with what changed in the derivatives."))
def check_fig5_reading(fig5_reading: Any) -> str:
    """``fig5_reading``: the letter of the right statement about the Fig. 5 table."""
    return check_choice("5.3", fig5_reading, FIG5_OPTIONS, FIG5_DIGEST, FIG5_FEEDBACK)
