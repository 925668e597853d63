"""Hidden checks of notebook 08, run only by ``qgait-lab lab grade``: cases the visible checkers do not try."""
from __future__ import annotations

import math

from qgait_lab.lab.exercises import bitops
from qgait_lab.lab.exercises.core import Wrong, as_number


def conv_other_shapes(conv_bitops) -> str:
    """5x5 and 7x7 kernels, RGB input, a 1x1 output, 2-bit weights with 32-bit inputs, 120 frames."""
    for case in ((3, 16, 5, 31, 17, 120, 2, 32), (8, 4, 7, 1, 1, 5, 32, 8), (256, 512, 3, 16, 11, 100, 2, 2)):
        bitops.compare_conv(conv_bitops, case)
    return "5x5 and 7x7 kernels, a 1x1 output, 2-bit weights with 32-bit activations, 120 frames"


def _exact(value, want: float, what: str) -> str:
    got = as_number(value, what)
    if not math.isclose(got, want, rel_tol=1e-6):
        raise Wrong(f"your {what} = {got:.6g} is not the counter's own value to 6 digits: assign the "
                    "computed number, not a typed copy")
    return f"{what} is the counter's value to 6 digits"


def first_last_from_the_counter(value) -> str:
    """Exactly the counter's value (a copy typed from a printout with 4 digits fails here)."""
    return _exact(value, bitops.first_last_reference(), "first_last_bitops")


def share_from_the_counter(value) -> str:
    """Exactly the counter's value (a copy typed from a printout with 4 digits fails here)."""
    return _exact(value, bitops.first_layer_share_reference(), "first_layer_share")


HIDDEN = {
    "8.1": [conv_other_shapes],
    "8.2": [first_last_from_the_counter],
    "8.3": [share_from_the_counter],
}
