"""Exercises of notebook 03 (the soft-round derivation): solutions pass, stubs are "not attempted",
typical mistakes fail with feedback that names what is wrong and never the expected value, hints hide
the solution, and every hidden check passes the solution and fails a mistake."""
from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
import torch

from exercise_support import (assert_fails_without_revealing, assert_hidden_checks_separate, assert_hints_hide,
                              assert_not_attempted, assert_passes, load_instructor_module)
from qgait_lab.lab import checks
from qgait_lab.lab import theory as T
from qgait_lab.lab.exercises import exercises_of
from qgait_lab.quant.functional import soft_round

SOLUTIONS = load_instructor_module("solutions", "nb03")
HIDDEN = load_instructor_module("hidden", "nb03").HIDDEN
k, z = T.k, T.z


# -- typical mistakes ---------------------------------------------------------------------------
def theta_without_rescaling(x, kk):            # forgets the 1 / tanh(k/2): the integers move
    fl = torch.floor(x)
    return fl + 0.5 * torch.tanh(kk * (x - fl - 0.5)) + 0.5


def theta_with_round(x, kk):                   # round in place of floor: a jump at every threshold
    fl = torch.round(x)
    return fl + torch.tanh(kk * (x - fl - 0.5)) / (2 * math.tanh(kk / 2)) + 0.5


def theta_without_half(x, kk):                 # d = x - floor(x): the offset from the cell's middle is lost
    fl = torch.floor(x)
    return fl + torch.tanh(kk * (x - fl)) / (2 * math.tanh(kk / 2)) + 0.5


def theta_in_x_only(x, kk):                    # no floor at all: right on [0, 1] only
    return torch.tanh(kk * (x - 0.5)) / (2 * math.tanh(kk / 2)) + 0.5


def theta_float32_inside(x, kk):               # computes in float32 and loses the visible precision
    xf = x.float()
    fl = torch.floor(xf)
    return fl + torch.tanh(kk * (xf - fl - 0.5)) / (2 * math.tanh(kk / 2)) + 0.5


def theta_stub(x, kk):
    raise NotImplementedError


def _reference_values() -> list[float]:
    xs = torch.tensor([-1.3, -0.4, 0.3, 0.6, 1.9, 2.25], dtype=torch.float64)
    return [float(v) for kk in (1.0, 2.5, 7.0) for v in soft_round(xs, kk)]


def _k_values(expr, points=(1.5, 2.0, 3.0, 5.0, 8.0)) -> list[float]:
    f = sp.lambdify(k, expr, "math")
    return [f(p) for p in points]


MEAN_SECRETS = ["1/k", "k**(-1)", r"\frac{1}{k}", *_k_values(1 / k)]
SECOND_SECRETS = [sp.sstr(SOLUTIONS.slope_second_moment), "k^2 ·", "k²",
                  *_k_values(T.slope_second_moment_expected())]
ALPHA_SECRETS = ["1 - tanh(k/2)", "2/(exp(k) + 1)", "2/(1 + exp(k))", 
                 # not at k = 3: there α equals 1 - tanh(k) at k = 1.5, a mistake's own value
                 *_k_values(1 - sp.tanh(k / 2), (1.5, 2.0, 5.0, 8.0))]
F_SECRETS = ["-tanh(z)**3/3 + tanh(z)", "tanh(z) - tanh(z)**3/3", "tanh - tanh", "1 - u"]


def test_the_notebook_has_five_exercises_in_order():
    assert [ex.id for ex in exercises_of("03")] == ["3.1", "3.2", "3.3", "3.4", "3.5"]
    assert [ex.answer for ex in exercises_of("03")] == ["theta_k", "mean_grad_G", "sech4_antiderivative",
                                                        "slope_second_moment", "dsq_alpha"]
    for ex in exercises_of("03"):
        assert hasattr(SOLUTIONS, ex.answer), f"instructor/solutions/nb03.py lacks {ex.answer}"
        assert HIDDEN.get(ex.id), f"Exercise {ex.id} has no hidden check"


# -- 3.1 θ_k ------------------------------------------------------------------------------------
def test_theta_k():
    assert_passes(checks.check_theta_k, SOLUTIONS.theta_k)
    assert_not_attempted(checks.check_theta_k, theta_stub)
    assert_not_attempted(checks.check_theta_k, None)
    secrets = _reference_values()
    assert_fails_without_revealing(checks.check_theta_k, theta_without_rescaling, secrets,
                                   mentions=["integer x =", "θ_k(n) = n"])
    assert_fails_without_revealing(checks.check_theta_k, theta_without_half, secrets, mentions=["integer"])
    assert_fails_without_revealing(checks.check_theta_k, theta_with_round, secrets,
                                   mentions=["jumps", "between x ="])
    assert_fails_without_revealing(checks.check_theta_k, theta_in_x_only, secrets, mentions=["integer x = -3"])
    text = assert_fails_without_revealing(checks.check_theta_k, theta_float32_inside, secrets, mentions=["x ="])
    assert "index" not in text                 # the student's x, not an array index
    hide = ["torch.floor(x)", "- 0.5", "math.tanh(k / 2)", "2 * math.tanh"]
    assert_hints_hide("3.1", hide)


def test_theta_k_feedback_names_periodicity_and_the_limits():
    def not_periodic(x, kk):                   # right on [-3, 3) but a steeper staircase beyond x = 1
        base = SOLUTIONS.theta_k(x, kk)
        return torch.where(x >= 1, 1 + 1.0001 * (base - 1), base)

    # Right at the integers below 1, wrong above: the integer check names x = 2.
    assert "integer x = 2" in checks.check_theta_k(not_periodic).message

    def shifted_period(x, kk):                 # joins up and keeps the integers, but is not periodic
        base = SOLUTIONS.theta_k(x, kk)
        return base + 0.01 * torch.sin(math.pi * x) ** 2 * (x > 1)

    message = checks.check_theta_k(shifted_period).message
    assert "θ_k(x + 1) = θ_k(x) + 1 fails at x =" in message

    def never_sharp(x, kk):                    # caps k at 5: right at k = 1 and 2.5, blurry at k = 80
        return SOLUTIONS.theta_k(x, min(kk, 5.0)) if kk >= 1 else SOLUTIONS.theta_k(x, kk)

    assert "as k → ∞" in checks.check_theta_k(never_sharp).message

    def reports_identity_late(x, kk):          # breaks down for k < 1
        return SOLUTIONS.theta_k(x, max(kk, 1.0))

    assert "as k → 0" in checks.check_theta_k(reports_identity_late).message


def test_theta_k_reports_the_students_error_and_wrong_shapes():
    def tensor_tanh(x, kk):                    # torch.tanh of a float
        return torch.tanh(kk * x) / torch.tanh(kk / 2)

    result = checks.check_theta_k(tensor_tanh)
    assert result.status == "failed" and "TypeError" in result.message and "line" in result.message
    result = checks.check_theta_k(lambda x, kk: SOLUTIONS.theta_k(x, kk).sum())
    assert result.status == "failed" and "shape" in result.message

    def in_place(x, kk):
        out = SOLUTIONS.theta_k(x, kk)
        x.zero_()
        return out

    assert "in place" in checks.check_theta_k(in_place).message


# -- 3.2 the mean of ∇G --------------------------------------------------------------------------
def test_mean_grad_G():
    assert_passes(checks.check_mean_grad_G, SOLUTIONS.mean_grad_G)
    assert_passes(checks.check_mean_grad_G, "1/k")
    assert_passes(checks.check_mean_grad_G, 1 / sp.Symbol("k"))           # any symbol named k
    assert_not_attempted(checks.check_mean_grad_G, None)
    # Eq. 11's square: told where it is off and which property it breaks, never "derived 1/k".
    text = assert_fails_without_revealing(checks.check_mean_grad_G, 1 / k ** 2, MEAN_SECRETS,
                                          mentions=["k = 1.5", "too small", "does not depend on k"])
    assert "derived" not in text
    assert_fails_without_revealing(checks.check_mean_grad_G, sp.Integer(1), MEAN_SECRETS,
                                   mentions=["too large", "tends to 0 as k grows"])
    assert_fails_without_revealing(checks.check_mean_grad_G, 2 * sp.tanh(k / 2) / k, MEAN_SECRETS,
                                   mentions=["k = 1.5", "changes with k"])
    assert_fails_without_revealing(checks.check_mean_grad_G, 2 / k, MEAN_SECRETS, mentions=["too large"])
    assert "may depend on k only" in checks.check_mean_grad_G(1 / sp.Symbol("x")).message
    assert_hints_hide("3.2", MEAN_SECRETS[:3])


# -- 3.3 an antiderivative of sech⁴ -------------------------------------------------------------
def test_sech4_antiderivative():
    assert_passes(checks.check_sech4_antiderivative, SOLUTIONS.sech4_antiderivative)
    # Any antiderivative passes: Eq. 19's first line, its corrected second line, plus a constant.
    assert_passes(checks.check_sech4_antiderivative, T.sech4_antiderivative_first_line(z))
    assert_passes(checks.check_sech4_antiderivative, T.sech4_antiderivative_corrected(z) + 7)
    assert_passes(checks.check_sech4_antiderivative, "tanh(z) - tanh(z)**3/3")
    assert_not_attempted(checks.check_sech4_antiderivative, None)
    assert_fails_without_revealing(checks.check_sech4_antiderivative, sp.tanh(z) - sp.tanh(z) ** 3, F_SECRETS,
                                   mentions=["z = -1.3", "negative"])
    assert_fails_without_revealing(checks.check_sech4_antiderivative, T.sech4_antiderivative_printed(z),
                                   F_SECRETS, mentions=["too large", "level off"])       # Eq. 19's typo
    assert_fails_without_revealing(checks.check_sech4_antiderivative, sp.tanh(z) ** 3 / 3, F_SECRETS,
                                   mentions=["is not sech⁴"])
    assert_fails_without_revealing(checks.check_sech4_antiderivative, sp.Integral(sp.sech(z) ** 4, z),
                                   F_SECRETS, mentions=["unevaluated integral"])
    assert "constant" in checks.check_sech4_antiderivative(sp.Integer(3)).message
    assert_hints_hide("3.3", F_SECRETS)


# -- 3.4 the second moment in x ------------------------------------------------------------------
def test_slope_second_moment():
    assert_passes(checks.check_slope_second_moment, SOLUTIONS.slope_second_moment)
    assert_passes(checks.check_slope_second_moment, k ** 2 * T.second_moment_grad_G_printed())
    assert_not_attempted(checks.check_slope_second_moment, None)
    assert_fails_without_revealing(checks.check_slope_second_moment, T.second_moment_grad_G_printed(),
                                   SECOND_SECRETS, mentions=["k = 1.5", "at least 1"])        # no k²
    assert_fails_without_revealing(checks.check_slope_second_moment, k * T.second_moment_grad_G_printed(),
                                   SECOND_SECRETS, mentions=["too small", "Jensen"])          # one k
    assert_fails_without_revealing(checks.check_slope_second_moment, 1 + k / 3, SECOND_SECRETS,
                                   mentions=["too large"])                                    # the asymptote
    assert_fails_without_revealing(checks.check_slope_second_moment,
                                   k ** 2 * (sp.cosh(k) + 1) / (3 * k * sp.sinh(k)), SECOND_SECRETS,
                                   mentions=["too small", "at least 1"])
    assert_hints_hide("3.4", SECOND_SECRETS[:2] + ["k**2 *", "k ** 2"])


# -- 3.5 DSQ's α ---------------------------------------------------------------------------------
def test_dsq_alpha():
    assert_passes(checks.check_dsq_alpha, SOLUTIONS.dsq_alpha)
    assert_passes(checks.check_dsq_alpha, 2 / (1 + sp.exp(k)))        # the form the inversion gives
    assert_not_attempted(checks.check_dsq_alpha, None)
    assert_fails_without_revealing(checks.check_dsq_alpha, sp.tanh(k / 2), ALPHA_SECRETS,
                                   mentions=["k = 1.5", "tends to 0 as k grows"])
    assert_fails_without_revealing(checks.check_dsq_alpha, 1 / sp.tanh(k / 2), ALPHA_SECRETS,
                                   mentions=["between 0 and 1"])      # DSQ's scale s, not α
    assert_fails_without_revealing(checks.check_dsq_alpha, 1 - sp.tanh(k), ALPHA_SECRETS,
                                   mentions=["too small", "k = 1.5"])
    assert_fails_without_revealing(checks.check_dsq_alpha, 1 / (1 + sp.exp(k)), ALPHA_SECRETS,
                                   mentions=["tends to 1 as k → 0"])
    assert_hints_hide("3.5", ALPHA_SECRETS[:3])


# -- hidden checks -------------------------------------------------------------------------------
WRONG_FOR_HIDDEN = {
    "3.1": [theta_without_rescaling, theta_in_x_only],
    "3.2": [1 / k ** 2],
    "3.3": [sp.tanh(z) - sp.tanh(z) ** 3],
    "3.4": [T.second_moment_grad_G_printed()],
    "3.5": [sp.tanh(k / 2)],
}


@pytest.mark.parametrize("exercise_id", sorted(HIDDEN))
def test_hidden_checks_pass_the_solution_and_fail_a_mistake(exercise_id):
    from qgait_lab.lab.exercises.core import Wrong, get

    answer = getattr(SOLUTIONS, get(exercise_id).answer)
    assert_hidden_checks_separate(HIDDEN[exercise_id], answer, WRONG_FOR_HIDDEN[exercise_id])


def test_hidden_checks_catch_what_the_visible_checks_miss():
    from qgait_lab.lab.exercises.core import Wrong

    def only_float64(x, kk):                   # fine on the visible float64 inputs, wrong dtype handling
        if x.dtype != torch.float64:
            return SOLUTIONS.theta_k(x.half().float(), kk)
        return SOLUTIONS.theta_k(x, kk)

    assert checks.check_theta_k(only_float64).passed
    with pytest.raises(Wrong):
        HIDDEN["3.1"][0](only_float64)

    def only_near_zero(x, kk):                 # right on the visible [-3.2, 3.2], wrong far out
        return torch.where(x.abs() < 10, SOLUTIONS.theta_k(x, kk), x)

    assert checks.check_theta_k(only_near_zero).passed
    with pytest.raises(Wrong):
        HIDDEN["3.1"][1](only_near_zero)
