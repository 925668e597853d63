"""Hidden checks of notebook 05, run only by ``qgait-lab lab grade`` (cases the visible checkers do not use)."""
from __future__ import annotations

import numpy as np
import torch

from qgait_lab.lab.exercises import ste_vs_soft as ex
from qgait_lab.lab.exercises.core import Wrong, as_array, call, check_choice


def step_grad_other_settings(soft_step_grad) -> str:
    """8-bit codes, a step above 1, large k, and v exactly on grid points and rounding thresholds."""
    for bits, signed, step, k in ((8, False, 0.03, 10.0), (8, True, 2.0, 2.5), (3, True, 0.7, 1.0)):
        lo, hi = _bounds(bits, signed)
        grid = torch.arange(lo - 3, hi + 3, 0.5, dtype=torch.float64) * step    # integers and half-integers of c
        ex.assert_soft_step_grad(soft_step_grad, grid, step, bits, signed, k)
    return "right for 3 and 8 bits, a step of 2, k = 10, and v/step on grid points and rounding thresholds"


def step_grad_float32_matrix(soft_step_grad) -> str:
    """A float32 [40, 25] tensor keeps its shape (and the gradient is right on it)."""
    gen = torch.Generator().manual_seed(5)
    v = (torch.rand(40, 25, generator=gen) * 10 - 3).to(torch.float32)
    got = as_array(call(soft_step_grad, v.clone(), 0.5, 4, False, 3.0), "soft_step_grad")
    if got.shape != (40, 25):
        raise Wrong(f"for a [40, 25] input, soft_step_grad returned shape {got.shape}")
    ex.assert_soft_step_grad(soft_step_grad, v, 0.5, 4, False, 3.0, atol=1e-4)
    return "keeps the shape of a float32 [40, 25] input and is right on it"


def _bounds(bits: int, signed: bool) -> tuple[int, int]:
    from qgait_lab.quant.functional import lsq_bounds

    return lsq_bounds(bits, signed)


def variance_other_k(slope_variance) -> str:
    """k just above 1, between the visible values, and at the top of the stated range."""
    for k in (1.0001, 2.2, 12.5, 50.0):
        ex.assert_slope_variance(slope_variance, k)
    return "right at k = 1.0001, 2.2, 12.5 and 50"


def variance_matrix_of_k(slope_variance) -> str:
    """A 2-D array of k gives a 2-D array of variances."""
    ex.assert_slope_variance(slope_variance, np.array([[1.1, 2.0, 4.0], [8.0, 16.0, 32.0]]))
    return "right on a [2, 3] array of k"


def fig5_choice_again(fig5_reading) -> str:
    """The choice re-checked here, independently of the notebook's check cell."""
    return check_choice("5.3", fig5_reading, ex.FIG5_OPTIONS, ex.FIG5_DIGEST)


HIDDEN = {
    "5.1": [step_grad_other_settings, step_grad_float32_matrix],
    "5.2": [variance_other_k, variance_matrix_of_k],
    "5.3": [fig5_choice_again],
}
