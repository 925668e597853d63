"""The exercises of notebook 05 (STE against the soft gradient): solutions pass, stubs are "not attempted",
typical mistakes fail without the expected value, hints hide the solution, hidden checks discriminate."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from exercise_support import (assert_fails_without_revealing, assert_hints_hide, assert_not_attempted,
                              assert_passes, load_instructor_module)
from qgait_lab.lab import checks
from qgait_lab.lab.exercises import core
from qgait_lab.lab.exercises import ste_vs_soft as ex
from qgait_lab.quant.functional import lsq_bounds, soft_round, soft_round_slope

SOL = load_instructor_module("solutions", "nb05")
HIDDEN = load_instructor_module("hidden", "nb05").HIDDEN


def stub(*args, **kwargs):
    raise NotImplementedError


# -- typical mistakes -----------------------------------------------------------
def _three_regions(inside, v, step, bits, signed):
    lo, hi = lsq_bounds(bits, signed)
    c = v / step
    return torch.where(c <= lo, torch.full_like(c, lo), torch.where(c >= hi, torch.full_like(c, hi), inside))


def step_grad_hard_forward(v, step, bits, signed, k):        # the rule of the hard forward, round(c) - c θ'(c)
    c = v / step
    return _three_regions(torch.round(c) - c * soft_round_slope(c, k), v, step, bits, signed)


def step_grad_without_clip(v, step, bits, signed, k):        # forgets the clip range
    c = v / step
    return soft_round(c, k) - c * soft_round_slope(c, k)


def step_grad_sign_error(v, step, bits, signed, k):          # dc/ds taken as +c/s
    c = v / step
    return _three_regions(soft_round(c, k) + c * soft_round_slope(c, k), v, step, bits, signed)


def step_grad_ste(v, step, bits, signed, k):                 # LSQ's STE rule, no θ_k at all
    c = v / step
    return _three_regions(torch.round(c) - c, v, step, bits, signed)


def variance_second_moment(k):                                 # forgets to subtract the squared mean
    return SOL.slope_variance(k) + 1.0


def variance_asymptote(k):                                     # the large-k limit k/3 - 1 used everywhere
    return np.asarray(k, dtype=float) / 3 - 1


def variance_in_z(k):                                          # Eq. 12 in z (no chain rule): G' not θ'
    k = np.asarray(k, dtype=float)
    return (np.cosh(k) + 2) / (3 * k * np.sinh(k)) - 1 / k ** 2


def variance_scalar_only(k):                                   # works for a float, not for an array
    return float(SOL.slope_variance(float(k)))


STEP_GRAD_SECRETS = ["soft_round(c, k) - c * soft_round_slope(c, k)", "theta_k(c) - c"]


# -- 5.1 ----------------------------------------------------------------------------
def test_5_1_solution_passes_and_stub_is_not_attempted():
    assert_passes(checks.check_soft_step_grad, SOL.soft_step_grad)
    assert_not_attempted(checks.check_soft_step_grad, stub)
    assert_not_attempted(checks.check_soft_step_grad, None)


@pytest.mark.parametrize("wrong, mentions", [
    (step_grad_hard_forward, ["v =", "inside the clip range", "too small"]),
    (step_grad_without_clip, ["v =", "below the clip range"]),
    (step_grad_sign_error, ["v =", "inside the clip range", "too large"]),
    (step_grad_ste, ["v =", "inside the clip range"]),
])
def test_5_1_mistakes_fail_without_revealing(wrong, mentions):
    text = assert_fails_without_revealing(checks.check_soft_step_grad, wrong, mentions=mentions)
    # The expected gradient at each input the feedback names must not appear in it.
    setting = re.search(r"for (un)?signed (\d+)-bit codes, step ([\d.]+), k = ([\d.]+)", text)
    signed, bits, step, k = setting.group(1) is None, int(setting.group(2)), float(setting.group(3)), \
        float(setting.group(4))
    named = [float(v) for v in re.findall(r"at v = (-?[\d.e-]+) your value", text)]
    assert named, text
    expected = SOL.soft_step_grad(torch.tensor(named, dtype=torch.float64), step, bits, signed, k).tolist()
    assert_fails_without_revealing(checks.check_soft_step_grad, wrong,
                                   secrets=[e for e in expected if abs(e) >= 0.01])


def test_5_1_feedback_names_the_setting():
    text = str(checks.check_soft_step_grad(step_grad_hard_forward))
    assert "unsigned 2-bit codes, step 0.1, k = 1" in text


def test_5_1_wrong_shape_and_none_are_explained():
    text = str(checks.check_soft_step_grad(lambda v, s, b, sg, k: SOL.soft_step_grad(v, s, b, sg, k)[:-1]))
    assert "shape" in text
    assert "None" in str(checks.check_soft_step_grad(lambda *a: None))


def test_5_1_hints_hide_the_solution():
    assert_hints_hide("5.1", STEP_GRAD_SECRETS + ["torch.where(c <="])


# -- 5.2 ----------------------------------------------------------------------------
def test_5_2_solution_passes_and_stub_is_not_attempted():
    assert_passes(checks.check_slope_variance, SOL.slope_variance)
    assert_not_attempted(checks.check_slope_variance, stub)
    assert_not_attempted(checks.check_slope_variance, None)


@pytest.mark.parametrize("wrong, mentions", [
    (variance_second_moment, ["k = 1.2", "too large"]),
    (variance_asymptote, ["k = 1.2", "negative"]),
    (variance_in_z, ["k = 1.2", "too small"]),
    (variance_scalar_only, ["array of k", "TypeError"]),
])
def test_5_2_mistakes_fail_without_revealing(wrong, mentions):
    secrets = [float(SOL.slope_variance(k)) for k in ex.VARIANCE_KS]
    assert_fails_without_revealing(checks.check_slope_variance, wrong, secrets=secrets, mentions=mentions)


def test_5_2_a_measured_estimate_does_not_pass():
    # A Monte-Carlo measurement (as in the notebook's table) is not the exact Eq. 12 value.
    gen = np.random.default_rng(0)

    def measured(k):
        c = gen.uniform(0.0, 1.0, 200_000)
        out = []
        for kk in np.atleast_1d(np.asarray(k, dtype=float)):
            slope = soft_round_slope(torch.as_tensor(c), float(kk)).numpy()
            out.append(slope.var())
        return np.asarray(out).reshape(np.shape(k))

    assert checks.check_slope_variance(measured).status == "failed"


def test_5_2_hints_hide_the_solution():
    assert_hints_hide("5.2", ["(np.cosh(k) + 2) / (3 * np.sinh(k)) - 1", "- 1.0", "cosh k + 2"])


# -- 5.3 ----------------------------------------------------------------------------
def test_5_3_choice():
    assert_passes(checks.check_fig5_reading, SOL.fig5_reading)
    assert_passes(checks.check_fig5_reading, " B ")
    assert_not_attempted(checks.check_fig5_reading, None)
    for wrong in ("a", "c", "d"):
        assert_fails_without_revealing(checks.check_fig5_reading, wrong, secrets=["'b'", "option b"],
                                       mentions=[f"option {wrong!r}"])
    assert "not one of the options" in str(checks.check_fig5_reading("e"))
    assert checks.check_fig5_reading(2).status == "failed"


def test_5_3_stores_no_plain_answer():
    import inspect

    source = inspect.getsource(ex)
    assert ex.FIG5_DIGEST == core.choice_digest("5.3", SOL.fig5_reading)
    # The letter appears only in the list of options: no feedback entry, no assignment gives it away.
    without_options = source.replace('FIG5_OPTIONS = ("a", "b", "c", "d")', "")
    assert '"b"' not in without_options and "'b'" not in without_options
    assert SOL.fig5_reading.strip().lower() not in ex.FIG5_FEEDBACK
    assert_hints_hide("5.3", ["(b)", "option b", "'b'"])


# -- hidden checks --------------------------------------------------------------------
def test_hidden_checks_cover_every_exercise():
    assert set(HIDDEN) == {e.id for e in core.exercises_of("05")}
    assert all(len(fns) >= 1 for fns in HIDDEN.values())


@pytest.mark.parametrize("exercise_id, wrong", [
    ("5.1", step_grad_hard_forward), ("5.1", step_grad_without_clip),
    ("5.2", variance_second_moment), ("5.2", variance_scalar_only),
    ("5.3", "a"),
])
def test_hidden_checks_pass_the_solution_and_fail_a_mistake(exercise_id, wrong):
    solution = getattr(SOL, core.get(exercise_id).answer)
    for fn in HIDDEN[exercise_id]:
        assert isinstance(fn(solution), str)
    statuses = [core.run_check(core.get(exercise_id), fn, wrong).status for fn in HIDDEN[exercise_id]]
    assert "failed" in statuses


def test_hidden_step_grad_catches_an_answer_that_loses_the_shape():
    def shape_losing(v, step, bits, signed, k):            # flattens its input
        return SOL.soft_step_grad(v.reshape(-1), step, bits, signed, k)

    assert checks.check_soft_step_grad(shape_losing).passed      # the visible inputs are 1-D
    result = core.run_check(core.get("5.1"), HIDDEN["5.1"][1], shape_losing)
    assert result.status == "failed" and "shape" in result.message


def test_hidden_variance_catches_a_large_k_cutoff():
    def cut_off(k):                                         # right up to 20, then the asymptote
        k = np.asarray(k, dtype=float)
        return np.where(k <= 20, SOL.slope_variance(np.minimum(k, 20)), k / 3 - 1 + 0.01)

    assert checks.check_slope_variance(cut_off).passed
    assert core.run_check(core.get("5.2"), HIDDEN["5.2"][0], cut_off).status == "failed"
