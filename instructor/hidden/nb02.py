"""Hidden checks of notebook 02, run only by ``qgait-lab lab grade``.

Each takes the student's answer and returns a sentence, or raises
``qgait_lab.lab.exercises.core.Wrong``.  They use what the visible checkers do not:
other bit-widths (1, 3, 8, 16), other shapes and dtypes, and steps that are not
round numbers.
"""
from __future__ import annotations

import torch

from qgait_lab.lab.exercises import quantization as Q


def codes_other_shapes_and_bits(lsq_codes) -> str:
    """1-, 3- and 16-bit codes on a 2-D float64 tensor and a 4-D float32 one; ties beyond the range."""
    for bits, signed, step, shape, dtype in ((1, True, 0.07, (16, 9), torch.float64),
                                             (1, False, 0.07, (16, 9), torch.float64),
                                             (3, True, 0.013, (4, 3, 5, 5), torch.float32),
                                             (16, False, 1e-3, (300,), torch.float64)):
        Q.assert_codes(lsq_codes, Q.codes_inputs(bits, signed, step, seed=7, shape=shape, dtype=dtype),
                       step, bits, signed)
    Q.assert_codes(lsq_codes, Q.tie_inputs(3, True, 0.5), 0.5, 3, True)
    return "right for 1, 3 and 16 bits, 2-D and 4-D tensors, float32 and float64"


def step_grad_other_settings(lsq_step_grad) -> str:
    """3- and 8-bit step gradients, a step that is not a round number, a 2-D float32 tensor."""
    for bits, signed, step in ((3, True, 0.037), (8, False, 0.0123), (8, True, 0.0123)):
        v = Q.step_grad_inputs(step, dtype=torch.float32)
        v = v[: (v.numel() // 25) * 25].reshape(-1, 25)
        Q.assert_step_grad(lsq_step_grad, v, step, bits, signed)
    Q.assert_step_grad(lsq_step_grad, Q.tie_inputs(3, False, 0.5), 0.5, 3, False)
    return "right for 3 and 8 bits, other steps, a 2-D float32 tensor"


def alpha_grad_other_settings(pact_alpha_grad) -> str:
    """1- and 8-bit PACT, alpha 0.3 and 12, a 3-D float64 batch of activations."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(4, 8, 16, generator=gen, dtype=torch.float64) * 6
    for alpha, bits in ((0.3, 1), (12.0, 8), (2.7, 8)):
        Q.assert_alpha_grad(pact_alpha_grad, x, alpha, bits)
    return "right for 1 and 8 bits, alpha 0.3, 2.7 and 12, a 3-D float64 batch"


def dorefa_other_settings(dorefa_weight) -> str:
    """1-, 3- and 8-bit DoReFa on a linear layer's 2-D float64 weight, saturating weights, a 1x1x3x3 kernel."""
    for bits, shape, scale, dtype in ((1, (24, 48), 0.05, torch.float64), (3, (24, 48), 3.0, torch.float64),
                                      (8, (24, 48), 0.05, torch.float32), (3, (1, 1, 3, 3), 0.4, torch.float32)):
        Q.assert_dorefa(dorefa_weight, Q.dorefa_inputs(shape, scale, seed=11, dtype=dtype), bits)
    return "right for 1, 3 and 8 bits, 2-D and 4-D weights, saturating tanh"


def mask_reason_again(mask_reason) -> str:
    """The choice is graded the same way as the visible check (a choice has no other cases)."""
    return Q.check_mask_reason.raw(mask_reason)


HIDDEN = {
    "2.1": [codes_other_shapes_and_bits],
    "2.2": [step_grad_other_settings],
    "2.3": [alpha_grad_other_settings],
    "2.4": [dorefa_other_settings],
    "2.5": [mask_reason_again],
}
