"""Exercises of notebook 04 (the k-slider explorer): who still gets a gradient, and what the step does.

* 4.1 the share of uniformly spread inputs whose soft slope θ_k' is at least τ, in closed form;
* 4.2 the k at which half of them have lost that meaningful gradient (a number read off the explorer
  and pinned down with 4.1);
* 4.3 what the step slider shows at 4 bits: clipping against rounding (a choice).

The reference of 4.1 and 4.2 is the library's dense numeric estimate
:func:`qgait_lab.lab.widgets.uniform_meaningful_fraction` (no closed form in the
package), and failures name the (k, τ) where the answer is off and the property
it breaks, never the estimate itself.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from .core import NotAttempted, Wrong, as_number, call, check_choice, exercise, raised_message

NOTEBOOK = "04_k_slider_explorer"

FRACTION_CASES: tuple[tuple[float, float], ...] = tuple(
    (k, t) for k in (1.0, 2.0, 3.0, 6.0, 10.0, 20.0, 50.0) for t in (0.1, 0.3, 1.0, 2.0))
"""The (k, τ) pairs of the visible check of 4.1: thresholds below the smallest slope, between, above the peak."""

FRACTION_TOLERANCE = 2e-4
"""The numeric estimate samples 50,001 points of a cell: its error is below 2e-5."""

HALF_THRESHOLD = 0.1
"""Exercise 4.2 asks about the explorer's threshold: 10 % of the STE's slope."""

K_TOLERANCE = 0.01
"""How close to the crossing the answer of 4.2 must be (the slider moves in steps of 0.5)."""


def _peak_slope(k: float) -> float:
    """θ_k' at the rounding threshold d = 0: k / (2 tanh(k/2)), its largest value."""
    return k / (2 * math.tanh(k / 2))


def _edge_slope(k: float) -> float:
    """θ_k' at the cell edges d = ±1/2: k sech²(k/2) / (2 tanh(k/2)), its smallest value."""
    return _peak_slope(k) / math.cosh(k / 2) ** 2


# ---------------------------------------------------------------------------
# 4.1 the meaningful fraction
# ---------------------------------------------------------------------------
def fraction_value(fraction: Callable, k: float, t: float) -> float:
    """The student's fraction at (k, τ) as a float in [0, 1], or :class:`Wrong` saying what and where."""
    where = f"k = {k:g}, τ = {t:g}"
    try:
        got = call(fraction, k, t)
    except (Wrong, NotAttempted):
        raise
    except Exception as err:  # noqa: BLE001 - the student's code may raise anything (a math domain error)
        note = " (here even the peak slope, at d = 0, is below τ)" if _peak_slope(k) < t else ""
        raise Wrong(f"at {where}{note}: {raised_message(err)}") from None
    if got is None:
        raise Wrong(f"meaningful_fraction({k:g}, {t:g}) returned None: did you forget the return statement?")
    value = as_number(got, f"meaningful_fraction({k:g}, {t:g})")
    if not 0.0 <= value <= 1.0:
        raise Wrong(f"at {where} your fraction is {value:.4g}, but a share of inputs lies in [0, 1]")
    return value


def fraction_properties(fraction: Callable, k: float, t: float, value: float) -> None:
    """The cases the answer must get exactly: every input, or none."""
    where = f"k = {k:g}, τ = {t:g}"
    if _edge_slope(k) >= t and value != 1.0:
        raise Wrong(f"at {where} even the smallest slope, at the cell edges d = ±1/2, is at least τ, so every "
                    f"input has a meaningful gradient; your fraction is {value:.4g}")
    if _peak_slope(k) < t and value != 0.0:
        raise Wrong(f"at {where} even the largest slope, at the threshold d = 0, is below τ, so no input has a "
                    f"meaningful gradient; your fraction is {value:.4g}")


def fraction_matches(fraction: Callable, cases: Sequence[tuple[float, float]],
                     tolerance: float = FRACTION_TOLERANCE) -> None:
    """Properties first, then the values against the numeric estimate, for every (k, τ) of ``cases``."""
    from ..widgets import uniform_meaningful_fraction

    values = {}
    for k, t in cases:
        values[k, t] = fraction_value(fraction, k, t)
        fraction_properties(fraction, k, t, values[k, t])
    for (k, t), value in values.items():
        for (k2, t2), other in values.items():
            if k2 == k and t2 > t and other > value + 1e-12:
                raise Wrong(f"at k = {k:g} your fraction grows with the threshold, from {value:.4g} at τ = {t:g} "
                            f"to {other:.4g} at τ = {t2:g}; a higher bar can only be met by fewer inputs")
    for (k, t), value in values.items():
        want = uniform_meaningful_fraction(k, t)
        if abs(value - want) > tolerance:
            side = "too large" if value > want else "too small"
            raise Wrong(f"at k = {k:g}, τ = {t:g} your fraction {value:.4f} is {side} (compared with a dense "
                        "numeric estimate)")


@exercise("4.1", NOTEBOOK, "the meaningful fraction in closed form", answer="meaningful_fraction", hints=(
    "θ_k' is largest at the threshold d = 0 and falls symmetrically towards the cell edges: the inputs with "
    "θ_k'(d) ≥ τ form one interval of d around 0. Find its half-width.",
    "Write the condition θ_k'(d) ≥ τ as sech²(k d) ≥ r, with r a number that depends on k and τ only, and "
    "invert sech² (math.acosh helps). The share of a uniform d in [-1/2, 1/2] is the length of the interval.",
    "Two edge cases: when r > 1 no d qualifies (math.acosh would fail), and when the interval is longer than "
    "the cell, every input qualifies. Check your function at k = 1 and k = 50 with τ = 0.1 and τ = 2.",
))
def check_meaningful_fraction(fraction: Callable) -> str:
    """``fraction(k, threshold)``: the share of uniformly spread inputs whose soft slope is >= threshold."""
    fraction_matches(fraction, FRACTION_CASES)
    return (f"agrees with a 50,001-point numeric estimate for {len(FRACTION_CASES)} pairs (k, τ), k from 1 to 50, "
            "τ from 0.1 to 2, including the cases where every input or none qualifies")


# ---------------------------------------------------------------------------
# 4.2 where half of the gradients are lost
# ---------------------------------------------------------------------------
def share_at(k: float, samples: int = 50_001) -> float:
    from ..widgets import uniform_meaningful_fraction

    return uniform_meaningful_fraction(k, HALF_THRESHOLD, samples=samples)


@exercise("4.2", NOTEBOOK, "where half of the gradients are lost", answer="k_half", hints=(
    "The share falls steadily as k grows. Use the k slider first: the legend of the top-right panel prints "
    "the share at the current k, so you can find two neighbouring slider positions on either side of one half.",
    "Between those two values of k, halve the interval again and again (bisection): evaluate your "
    "meaningful_fraction(k, 0.1) (or widgets.uniform_meaningful_fraction(k)) at the middle and keep the half "
    "in which the share crosses 0.5. Ten halvings are plenty.",
))
def check_k_half(value: Any) -> str:
    """``value``: the k at which the share of uniform inputs with θ_k' >= 0.1 falls to one half."""
    k = as_number(value, "k_half")
    if not 1.0 <= k <= 20.0:
        raise Wrong(f"k_half = {k:g} is outside the range of the question (k from 1, the smallest k of Eq. 6, "
                    "to the explorer's 20)")
    here = share_at(k)
    if share_at(k - K_TOLERANCE) >= 0.5 >= share_at(k + K_TOLERANCE):
        return (f"at k = {k:.4g} the share of uniformly spread inputs with θ_k' ≥ 0.1 is {here:.4f}: half of "
                "them still get a meaningful gradient, half have lost it")
    side, where = ("too large", "below") if here < 0.5 else ("too small", "above")
    raise Wrong(f"at your k = {k:.4g} the share of uniformly spread inputs with θ_k' ≥ 0.1 is {here:.4f}, {where} "
                f"one half: your k is {side} (it must be within {K_TOLERANCE:g} of the crossing)")


# ---------------------------------------------------------------------------
# 4.3 what the step slider shows
# ---------------------------------------------------------------------------
STEP_OPTIONS: Sequence[str] = ("a", "b", "c", "d")
_STEP = "9cbd461e5b4ca6f5"
_STEP_FEEDBACK = {
    "a": "finer levels help only the values inside the range; look at the clipped share at step × 0.25",
    "c": "the top level is the largest code times the step, so it moves up as the step grows; read the clipped "
         "share at × 0.25 and at × 4 again",
    "d": "read the activation error at × 1 and at × 2 again; LSQ's rule sets a starting point for the step, "
         "which training then adjusts",
}


@exercise("4.3", NOTEBOOK, "what the step slider shows", answer="step_choice", hints=(
    "Two things can go wrong in a quantizer: values above the top level are clipped to it, and values inside "
    "the range are rounded to the nearest level. Which one does a larger step make worse, and which one better?",
    "At 4 bits and k = 3, write down the clipped share and the activation error at step × 0.25, 1, 2 and 4. "
    "Does the error follow the clipped share, or the size of the step?",
))
def check_step_slider_choice(answer: Any) -> str:
    """``answer``: the letter of the statement that explains the step slider at 4 bits."""
    return check_choice("4.3", answer, STEP_OPTIONS, _STEP, _STEP_FEEDBACK)
