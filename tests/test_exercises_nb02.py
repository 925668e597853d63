"""Notebook 02 (quantization basics): its five exercises, their hidden checks, and its figures.

For every exercise: the reference solution passes, an untouched stub is "not
attempted", typical wrong answers fail with feedback that names where they are
wrong and hides the expected values, no hint tier gives the solution away, and
every hidden check passes the solution and fails a wrong answer.
"""
from __future__ import annotations

import jupytext
import matplotlib
import numpy as np
import pytest
import torch

from exercise_support import (REPO, assert_fails_without_revealing, assert_hints_hide, assert_not_attempted,
                              assert_passes, load_instructor_module)
from qgait_lab.lab import checks
from qgait_lab.lab.exercises import core
from qgait_lab.lab.exercises import quantization as Q

matplotlib.use("Agg")

sol = load_instructor_module("solutions", "nb02")
hidden = load_instructor_module("hidden", "nb02")
NOTEBOOK = REPO / "notebooks" / "02_quantization_basics.py"


def _bounds(bits, signed):
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)


def _stub(*args, **kwargs):
    raise NotImplementedError


# -- typical mistakes -------------------------------------------------------------------------------------
def codes_without_clamp(v, step, bits, signed):
    return torch.round(v / step)


def codes_half_up(v, step, bits, signed):               # floor(c + 1/2): differs from torch.round at halves
    lo, hi = _bounds(bits, signed)
    return torch.floor(torch.clamp(v / step, lo, hi) + 0.5)


def codes_symmetric_signed(v, step, bits, signed):      # -(2^(b-1) - 1): one negative code too few
    lo, hi = _bounds(bits, signed)
    return torch.round(torch.clamp(v / step, lo + 1 if signed else lo, hi))


def codes_not_rounded(v, step, bits, signed):
    lo, hi = _bounds(bits, signed)
    return torch.clamp(v / step, lo, hi)


def step_grad_without_clip(v, step, bits, signed):
    c = v / step
    return torch.round(c) - c


def step_grad_sign_flipped(v, step, bits, signed):
    lo, hi = _bounds(bits, signed)
    c = v / step
    return torch.where(c <= lo, torch.full_like(c, lo), torch.where(c >= hi, torch.full_like(c, hi), c - torch.round(c)))


def step_grad_zero_outside(v, step, bits, signed):      # Eq. 4's mask applied to the step as well
    lo, hi = _bounds(bits, signed)
    c = v / step
    return torch.where((c <= lo) | (c >= hi), torch.zeros_like(c), torch.round(c) - c)


def pact_grad_inverted(x, alpha, bits):
    return (x < alpha).to(x.dtype)


def pact_grad_through_the_scale(x, alpha, bits):        # differentiates the alpha inside the rounding too
    levels = 2 ** bits - 1
    c = torch.clamp(x, 0, alpha) * levels / alpha
    inside = torch.round(c) / levels - x / alpha
    return torch.where(x >= alpha, torch.ones_like(x), torch.where(x > 0, inside, torch.zeros_like(x)))


def dorefa_without_tanh(w, bits):
    levels = 2 ** bits - 1
    unit = w / (2 * w.abs().max()) + 0.5
    return 2 * torch.round(unit * levels) / levels - 1


def dorefa_two_to_the_b_steps(w, bits):
    levels = 2 ** bits
    t = torch.tanh(w)
    return 2 * torch.round((t / (2 * t.abs().max()) + 0.5) * levels) / levels - 1


def dorefa_not_mapped_back(w, bits):
    levels = 2 ** bits - 1
    t = torch.tanh(w)
    return torch.round((t / (2 * t.abs().max()) + 0.5) * levels) / levels


# -- where the expected values of a wrong answer's first failing setting are ------------------------------
def _codes_settings():
    yield from (((st, b, s), Q.codes_inputs(b, s, st)) for b, s, st in Q.CODES_CASES)
    yield from (((st, b, s), Q.tie_inputs(b, s, st)) for b, s, st in Q.CODES_TIE_CASES)


def _step_settings():
    yield from (((st, b, s), Q.step_grad_inputs(st)) for b, s, st in Q.STEP_GRAD_CASES)
    yield from (((st, b, s), Q.tie_inputs(b, s, st)) for b, s, st in Q.CODES_TIE_CASES)


def _pact_settings():
    yield from (((alpha, bits), Q.pact_inputs()) for alpha, bits in Q.PACT_CASES)


def _dorefa_settings():
    yield from (((bits,), Q.dorefa_inputs(scale=scale, seed=bits)) for bits, scale in Q.DOREFA_CASES)


def expected_where_wrong(settings, wrong, reference) -> list[float]:
    """The reference values at the first inputs where ``wrong`` differs, in the first setting where it does.

    Each setting is ``(args, inputs)`` with ``args`` in the order of the answer's signature after the tensor.
    """
    for args, inputs in settings:
        got = wrong(inputs.clone(), *args)
        want = reference(inputs, *args)
        bad = np.flatnonzero(~np.isclose(got.double().numpy(), want.double().numpy(), atol=1e-6).ravel())
        if bad.size:
            return [float(want.double().numpy().ravel()[i]) for i in bad[:3]]
    return []


# (id, checker, solution, settings, reference, [(wrong answer, words the feedback must contain)], code secrets)
FUNCTION_EXERCISES = [
    ("2.1", checks.check_lsq_codes, sol.lsq_codes, _codes_settings, Q.reference_codes,
     [(codes_without_clamp, ["below the range", "v = ", "unsigned 2-bit"]),
      (codes_half_up, ["exactly at a rounding threshold", "v = "]),
      (codes_symmetric_signed, ["below the clip range", "signed"]),
      (codes_not_rounded, ["integers", "v = "])],
     ["torch.round(torch.clamp(", "clamp(v / step"]),
    ("2.2", checks.check_lsq_step_grad, sol.lsq_step_grad, _step_settings, Q.reference_step_grad,
     [(step_grad_without_clip, ["below the clip range", "v = "]),
      (step_grad_sign_flipped, ["inside the clip range", "too large"]),
      (step_grad_zero_outside, ["above the clip range", "too small"])],
     ["torch.round(c) - c", "round(c) - c", "torch.full_like(c, lo)"]),
    ("2.3", checks.check_pact_alpha_grad, sol.pact_alpha_grad, _pact_settings, Q.reference_alpha_grad,
     [(pact_grad_inverted, ["at or below 0", "x = "]),
      (pact_grad_through_the_scale, ["inside the clip range", "x = "])],
     ["(x >= alpha)", "x >= alpha", ".to(x.dtype)"]),
    ("2.4", checks.check_dorefa_weight, sol.dorefa_weight, _dorefa_settings, Q.reference_dorefa,
     [(dorefa_without_tanh, ["largest |w|", "w["]),
      (dorefa_two_to_the_b_steps, ["distinct levels"]),
      (dorefa_not_mapped_back, ["negative"])],
     ["t.abs().max()", "torch.round(unit * levels)", "2 * torch.round"]),
]
IDS = [case[0] for case in FUNCTION_EXERCISES]


@pytest.mark.parametrize("case", FUNCTION_EXERCISES, ids=IDS)
def test_the_solution_passes_and_the_stub_is_not_attempted(case):
    _, checker, solution, *_ = case
    assert_passes(checker, solution)
    assert_not_attempted(checker, _stub)
    assert_not_attempted(checker, None)


@pytest.mark.parametrize("case", FUNCTION_EXERCISES, ids=IDS)
def test_typical_mistakes_fail_without_revealing_the_expected_values(case):
    _, checker, _, settings, reference, wrongs, code = case
    assert len(wrongs) >= 2
    for wrong, mentions in wrongs:
        secrets = expected_where_wrong(settings(), wrong, reference) + code
        assert_fails_without_revealing(checker, wrong, secrets=secrets, mentions=mentions)


@pytest.mark.parametrize("case", FUNCTION_EXERCISES, ids=IDS)
def test_hints_come_in_tiers_and_hide_the_solution(case):
    exercise_id, *_, code = case
    assert_hints_hide(exercise_id, code)


@pytest.mark.parametrize("case", FUNCTION_EXERCISES, ids=IDS)
def test_hidden_checks_pass_the_solution_and_fail_a_mistake(case):
    exercise_id, _, solution, _, _, wrongs, _ = case
    assert hidden.HIDDEN[exercise_id]
    for check in hidden.HIDDEN[exercise_id]:
        assert isinstance(check(solution), str)
        for wrong, _ in wrongs:
            with pytest.raises(core.Wrong):
                check(wrong)


def test_a_wrong_shape_and_a_missing_return_are_named():
    text = str(checks.check_lsq_codes(lambda v, step, bits, signed: torch.round(v / step)[:10]))
    assert "shape" in text and "not attempted" not in text
    assert "returned None" in str(checks.check_pact_alpha_grad(lambda x, alpha, bits: None))
    raised = checks.check_dorefa_weight(lambda w, bits: w.foo())
    assert raised.status == "failed" and "AttributeError" in raised.message


# -- 2.5, the choice ------------------------------------------------------------------------------------
def test_the_mask_choice():
    assert_passes(checks.check_mask_reason, sol.mask_reason)
    assert_passes(checks.check_mask_reason, " B ")
    assert_not_attempted(checks.check_mask_reason, None)
    for wrong in ("a", "c", "d"):
        assert_fails_without_revealing(checks.check_mask_reason, wrong, secrets=["option 'b'", "'b' is"],
                                       mentions=[f"option '{wrong}'"])
    for not_an_option in ("e", 2):
        result = checks.check_mask_reason(not_an_option)
        assert result.status == "failed" and "'a', 'b', 'c', 'd'" in result.message
    assert_hints_hide("2.5", ["option b", "'b'", '"b"', "(b)"])
    # The package stores only the digest of the right letter.
    assert Q.MASK_DIGEST == core.choice_digest("2.5", sol.mask_reason)
    for check in hidden.HIDDEN["2.5"]:
        assert isinstance(check(sol.mask_reason), str)
        with pytest.raises(core.Wrong):
            check("c")


# -- the registry and the notebook agree ------------------------------------------------------------------
def test_the_notebook_defines_every_answer_and_calls_every_checker():
    exercises = core.exercises_of("02")
    assert [e.id for e in exercises] == ["2.1", "2.2", "2.3", "2.4", "2.5"]
    cells = [c.source for c in jupytext.read(NOTEBOOK).cells if c.cell_type == "code"]
    for ex in exercises:
        assert ex.notebook == "02_quantization_basics" and hasattr(sol, ex.answer)
        assert set(hidden.HIDDEN) >= {ex.id}
        stub = [c for c in cells if c.startswith(f"# Exercise {ex.id}\n")]
        assert len(stub) == 1 and (f"def {ex.answer}(" in stub[0] or f"{ex.answer} = None" in stub[0])
        check = f"from qgait_lab.lab import checks\nchecks.{ex.checker.__name__}({ex.answer})"
        assert check in cells, f"the check cell of Exercise {ex.id} is missing or differs"


# -- figures and helpers appended to qgait_lab.lab.figures for this notebook --------------------------------------
def test_quantization_error_parts_splits_rounding_from_clipping():
    from qgait_lab.lab.figures import quantization_error_parts

    parts = quantization_error_parts(torch.tensor([0.3, 5.0]), [1.0, 2.0], bits=2, signed=False)
    # step 1: 0.3 rounds to 0 (error 0.09, inside), 5.0 is clipped at 3 (error 4): means over 2 elements.
    assert parts["rounding"][0] == pytest.approx(0.045) and parts["clipping"][0] == pytest.approx(2.0)
    # step 2: 0.3 -> 0 (0.09), 5.0 -> code 2.5 rounds to 2 -> 4.0 (error 1.0), both inside.
    assert parts["rounding"][1] == pytest.approx((0.09 + 1.0) / 2) and parts["clipping"][1] == 0.0
    assert np.allclose(parts["total"], parts["rounding"] + parts["clipping"])


def _legend_sizes(fig):
    return [t.get_fontsize() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


def test_notebook_02_figures_are_labelled_and_readable():
    import matplotlib.pyplot as plt

    from qgait_lab.quant import LSQQuantizer, PACTQuantizer
    from qgait_lab.quant.functional import lsq_fake_quant
    from qgait_lab.lab.figures import (forward_backward_figure, quantization_error_parts,
                                       quantizer_response, step_tradeoff_figure,
                                       uniform_quantization_figure)

    x = torch.linspace(-3, 3, 301)
    figs = [uniform_quantization_figure(x, lsq_fake_quant(x, torch.tensor(0.5), -4, 3, 1.0), 0.5, (-4, 3))]
    v = torch.randn(500, generator=torch.Generator().manual_seed(0))
    parts = quantization_error_parts(v, np.geomspace(0.01, 3, 30), 4, True)
    figs.append(step_tradeoff_figure({"weights": parts, "again": parts}, {"weights": {"start": 0.3}}))
    q = LSQQuantizer(2, is_weight=False, signed=False)
    q(x)
    responses = {"LSQ": quantizer_response(q, x), "PACT": quantizer_response(PACTQuantizer(2, alpha_init=2.0), x)}
    figs.append(forward_backward_figure(responses, keys=("d/dx",)))
    figs.append(forward_backward_figure(responses))
    for fig in figs:
        assert fig.get_size_inches()[0] <= 10.0
        assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
        assert _legend_sizes(fig) and min(_legend_sizes(fig)) >= 10
    only_ste = figs[2].axes[2]            # the bottom-left panel: only the input derivative is drawn
    assert len(only_ste.get_lines()) == 1
    assert len(figs[3].axes[3].get_lines()) == 2     # PACT: d/dx and d/dalpha
    for fig in figs:
        plt.close(fig)
