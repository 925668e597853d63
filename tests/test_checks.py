"""The exercise checkers: each passes the reference solution and fails a wrong answer.

``CASES`` lists, for every checker used in the notebooks, the reference
solution from :mod:`qgait_lab.solutions` and a plausible mistake (the kind a
student makes); ``tests/test_notebooks.py`` makes sure no checker used in a
notebook is missing here.
"""
from __future__ import annotations

import math

import pytest
import sympy as sp
import torch
import torch.nn.functional as F

from qgait_lab import checks
from qgait_lab import theory as T
from qgait_lab.quant.functional import soft_round_slope
from qgait_lab.quant.schedules import KSchedule
from qgait_lab.solutions import nb01, nb02, nb03, nb04, nb05, nb06

k = sp.Symbol("k", positive=True)


# -- plausible mistakes ---------------------------------------------------------
def theta_without_rescaling(x, kk):            # forgets the 1 / tanh(k/2): not continuous
    fl = torch.floor(x)
    return fl + 0.5 * torch.tanh(kk * (x - fl - 0.5)) + 0.5


def fraction_half_width(kk, t=0.1):            # forgets the factor 2
    r = 2 * t * math.tanh(kk / 2) / kk
    return 0.0 if r > 1 else min(1.0, math.acosh(1 / math.sqrt(r)) / kk)


def fraction_no_cutoff(kk, t=0.1):             # no case for r > 1 (raises a math domain error)
    r = 2 * t * math.tanh(kk / 2) / kk
    return min(1.0, 2 * math.acosh(1 / math.sqrt(r)) / kk)


def codes_without_clamp(v, step, bits, signed):
    return torch.round(v / step)


def step_grad_without_clip(v, step, bits, signed):
    c = v / step
    return torch.round(c) - c


def pact_grad_inverted(x, alpha, bits):
    return (x < alpha).to(x.dtype)


def soft_step_grad_hard_forward(v, step, bits, signed, kk):   # the hard-forward rule, not the soft one
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    c = v / step
    inside = torch.round(c) - c * soft_round_slope(c, kk)
    return torch.where(c <= lo, torch.full_like(c, lo), torch.where(c >= hi, torch.full_like(c, hi), inside))


def grow_unscaled(iterations, t=5.0):
    return KSchedule("grow", 1.0, 0.2, 100, t)


def command_without_partition(nproc, root, partition):
    return ["torchrun", f"--nproc_per_node={nproc}", "-m", "qgait_lab.cli", "train", "--preset", "gait3d",
            "--method", "qgait", "--bits", "4", "--set", f"data.root={root}"]


def mask_same_label(labels):
    return labels.unsqueeze(1) == labels.unsqueeze(0)


def idd_without_mask(d_student, d_teacher, labels, tau=1.0):
    log_s = F.log_softmax(-d_student / tau, dim=-1)
    log_t = F.log_softmax(-d_teacher / tau, dim=-1)
    return (log_t.exp() * (log_t - log_s)).sum(-1).mean()


def conv_bitops_flops(c_in, c_out, kernel, h_out, w_out, frames, w_bits, a_bits):   # the printed "2 ..."
    return 2 * nb06.conv_bitops(c_in, c_out, kernel, h_out, w_out, frames, w_bits, a_bits)


# (checker name, reference solution (a thunk), wrong answer)
CASES = [
    ("check_theta_k", lambda: nb01.theta_k, theta_without_rescaling),
    ("check_mean_grad_G", lambda: nb01.mean_grad_G, 1 / k ** 2),
    ("check_slope_second_moment", lambda: nb01.slope_second_moment, T.second_moment_grad_G_printed()),
    ("check_dsq_alpha", lambda: nb01.dsq_alpha, sp.tanh(k / 2)),
    ("check_meaningful_fraction", lambda: nb02.meaningful_fraction, fraction_half_width),
    ("check_lsq_codes", lambda: nb02.lsq_codes, codes_without_clamp),
    ("check_lsq_step_grad", lambda: nb03.lsq_step_grad, step_grad_without_clip),
    ("check_pact_alpha_grad", lambda: nb03.pact_alpha_grad, pact_grad_inverted),
    ("check_soft_step_grad", lambda: nb03.soft_step_grad, soft_step_grad_hard_forward),
    ("check_grow_schedule", lambda: nb04.grow_for, grow_unscaled),
    ("check_torchrun_command", lambda: nb04.gait3d_command, command_without_partition),
    ("check_idd_mask", lambda: nb05.idd_mask, mask_same_label),
    ("check_idd_loss", lambda: nb05.idd_from_distances, idd_without_mask),
    ("check_conv_bitops", lambda: nb06.conv_bitops, conv_bitops_flops),
    ("check_first_last_bitops", nb06.first_last_bitops_g, 118.30 / 64),     # every layer at 4 bits
]
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("name, solution, wrong", CASES, ids=IDS)
def test_reference_solution_passes(name, solution, wrong):
    result = getattr(checks, name)(solution())
    assert result.passed, str(result)
    assert bool(result) and "PASS" in str(result) and "passed" in result._repr_html_()


@pytest.mark.parametrize("name, solution, wrong", CASES, ids=IDS)
def test_wrong_answer_fails_with_a_hint(name, solution, wrong):
    result = getattr(checks, name)(wrong)
    assert not result.passed, f"{name} accepted a wrong answer: {result}"
    assert result.hint and result.hint in str(result)
    assert "not attempted" not in result.message
    assert "Hint" in result._repr_html_()


VALUE_ANSWERS = {"check_mean_grad_G", "check_slope_second_moment", "check_dsq_alpha", "check_first_last_bitops"}


@pytest.mark.parametrize("name", IDS)
def test_unfinished_stub_is_reported_not_attempted(name):
    def stub(*args, **kwargs):
        raise NotImplementedError

    for answer in (None,) if name in VALUE_ANSWERS else (stub, None):
        result = getattr(checks, name)(answer)
        assert not result.passed
        assert "not attempted" in result.message


def test_errors_in_student_code_are_reported_not_raised():
    def broken(x, kk):
        return x.nonexistent_method()

    result = checks.check_theta_k(broken)
    assert not result.passed and "AttributeError" in result.message and "line" in result.message
    result = checks.check_meaningful_fraction(fraction_no_cutoff)
    assert not result.passed and "ValueError" in result.message


def test_sympy_answers_accept_any_symbol_named_k():
    kk = sp.Symbol("k")                      # no assumptions
    assert checks.check_mean_grad_G(1 / kk).passed
    assert checks.check_mean_grad_G("1/k").passed
    result = checks.check_mean_grad_G(1 / sp.Symbol("z"))
    assert not result.passed and "k only" in result.message


def test_first_last_bitops_spots_wrong_units():
    result = checks.check_first_last_bitops(nb06.first_last_bitops_g() * 1e9)
    assert not result.passed and "units" in result.message
    assert not checks.check_first_last_bitops("a lot").passed
    eight = checks.first_last_reference(first_last=8)          # LSQ's habit: 8 bits, not 32
    assert not checks.check_first_last_bitops(eight).passed


def test_torchrun_check_accepts_a_shell_string_and_rejects_bad_arguments():
    import shlex

    assert checks.check_torchrun_command(lambda n, r, p: shlex.join(nb04.gait3d_command(n, r, p))).passed
    bad = checks.check_torchrun_command(lambda n, r, p: ["torchrun", f"--nproc_per_node={n}", "-m",
                                                         "qgait_lab.cli", "train", "--no-such-flag"])
    assert not bad.passed and "does not accept" in bad.message
    wrong_n = checks.check_torchrun_command(lambda n, r, p: nb04.gait3d_command(2, r, p))
    assert not wrong_n.passed and "nproc_per_node" in wrong_n.message
