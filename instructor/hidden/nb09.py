"""Hidden checks of notebook 09, run only by ``qgait-lab lab grade``: cases the visible checkers do not try."""
from __future__ import annotations

from qgait_lab.lab.exercises import deployment
from qgait_lab.lab.exercises.deployment import RequantCase


def requantize_other_cases(requantize_codes) -> str:
    """A multiplier above 1, a tiny one (a shift past 32 bits), a 2-bit grid, and a 4-D accumulator."""
    cases = [
        RequantCase("a multiplier above 1", (0, 1, -1, 3, -3, 10, -10, 40, -40), 2.75, -128, 127),
        RequantCase("a tiny multiplier (a shift of more than 32 bits)", (2 ** 31 - 1, -2 ** 31 + 1, 2 ** 30),
                    3.0e-8, -128, 127),
        RequantCase("a 2-bit signed grid", (-9, -6, -5, -4, -1, 0, 1, 4, 5, 6, 9), 0.2, -2, 1),
        RequantCase("a 4-D accumulator [n, c, h, w]", tuple(range(-23, 25)), 0.0917, 0, 15, shape=(2, 3, 2, 4)),
    ]
    for case in cases:
        deployment.compare_requantize(requantize_codes, case)
    return "a multiplier above 1, a shift past 32 bits, a 2-bit grid and a 4-D accumulator"


def accumulator_other_layers(accumulator_bits_needed) -> str:
    """5x5 and 7x7 kernels, 3-, 5- and 6-bit codes, signed inputs, and one input channel."""
    deployment.compare_bits(accumulator_bits_needed, ((3, 5, 7, 5, False), (6, 6, 256, 7, True),
                                                      (5, 3, 1, 1, False), (8, 4, 3, 7, True),
                                                      (4, 8, 100, 3, False)))
    return "5x5 and 7x7 kernels, 3-, 5- and 6-bit codes, signed inputs and a single input channel"


HIDDEN = {
    "9.1": [requantize_other_cases],
    "9.2": [accumulator_other_layers],
}
