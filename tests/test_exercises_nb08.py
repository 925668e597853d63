"""Exercises of notebook 08 (BitOPs): the solutions pass, stubs are "not attempted", typical mistakes
(FLOPs for MACs, a rounded guess, the wrong policy) fail with feedback that names the mistake and hides
the counter's value, hints hide the solution, and every hidden check passes the solution and fails a
mistake."""
from __future__ import annotations

import pytest

from exercise_support import (assert_fails_without_revealing, assert_hidden_checks_separate, assert_hints_hide,
                              assert_not_attempted, assert_passes, load_instructor_module)
from qgait_lab.lab import checks
from qgait_lab.lab.exercises import bitops
from qgait_lab.lab.exercises.core import Wrong

SOL = load_instructor_module("solutions", "nb08")
HIDDEN = load_instructor_module("hidden", "nb08").HIDDEN

CONV_CODE = ["c_in * c_out", "kernel * kernel", "kernel ** 2", "/ 32) * (", "h_out * w_out * frames"]
POLICY_CODE = ["LayerPolicy(first_layer_bits=(32, 32)", "last_layer_bits=(32, 32)", "/ 1e9"]


def stub(*args, **kwargs):
    raise NotImplementedError


def conv_secrets() -> list[float]:
    return [bitops.conv_reference(*case) for case in bitops.CONV_CASES]


# -- the reference computation lives in the library --------------------------------------------------
def test_first_last_reference_is_the_counter_and_not_a_round_number():
    ref = bitops.first_last_reference()
    assert ref == pytest.approx(SOL.first_last_bitops, rel=1e-12)
    uniform = bitops.gaitbase_bitops_g()
    assert uniform == pytest.approx(118.30 / 64, rel=0.01)          # the paper's w4a4 row, within 1 %
    assert abs(ref / 2.0 - 1) > 2 * bitops.FIRST_LAST_TOLERANCE      # 2.0 is a round guess, not the value
    assert bitops.first_layer_share_reference() == pytest.approx(SOL.first_layer_share, rel=1e-9)


# -- 8.1 ---------------------------------------------------------------------------------------------
def conv_flops(c_in, c_out, kernel, h_out, w_out, frames, w_bits, a_bits):        # the printed "2 ..."
    return 2 * SOL.conv_bitops(c_in, c_out, kernel, h_out, w_out, frames, w_bits, a_bits)


def conv_nhww(c_in, c_out, kernel, h_out, w_out, frames, w_bits, a_bits):         # the printed "NHWW"
    return SOL.conv_bitops(c_in, c_out, kernel, h_out, w_out, frames, w_bits, a_bits) * w_out


def conv_kernel_once(c_in, c_out, kernel, h_out, w_out, frames, w_bits, a_bits):
    return (w_bits / 32) * (a_bits / 32) * c_in * c_out * kernel * h_out * w_out * frames


def conv_no_bits(c_in, c_out, kernel, h_out, w_out, frames, w_bits, a_bits):     # MACs only
    return c_in * c_out * kernel ** 2 * h_out * w_out * frames


def conv_one_frame(c_in, c_out, kernel, h_out, w_out, frames, w_bits, a_bits):
    return SOL.conv_bitops(c_in, c_out, kernel, h_out, w_out, 1, w_bits, a_bits)


def test_8_1_solution_passes_and_stub_is_not_attempted():
    assert_passes(checks.check_conv_bitops, SOL.conv_bitops)
    assert_not_attempted(checks.check_conv_bitops, stub)
    assert_not_attempted(checks.check_conv_bitops, None)


@pytest.mark.parametrize("wrong, mentions", [
    (conv_flops, ["twice", "MACs"]),
    (conv_nhww, ["output width twice", "NHWW"]),
    (conv_kernel_once, ["kernel size F"]),
    (conv_no_bits, ["bit-widths"]),
    (conv_one_frame, ["frames"]),
])
def test_8_1_mistakes_are_named_without_the_counters_value(wrong, mentions):
    assert_fails_without_revealing(checks.check_conv_bitops, wrong, secrets=conv_secrets() + CONV_CODE,
                                   mentions=mentions + ["conv_bitops(c_in="])


def test_8_1_a_missing_return_is_told_so():
    assert_fails_without_revealing(checks.check_conv_bitops, lambda *args: None, mentions=["returned None"])


def test_8_1_hints_do_not_give_the_formula():
    assert_hints_hide("8.1", CONV_CODE + ["C_in * C_out", "F^2", "F**2", "(b_w / 32) * (b_a / 32) *"])


# -- 8.2 ---------------------------------------------------------------------------------------------
def test_8_2_solution_passes_and_stub_is_not_attempted():
    assert_passes(checks.check_first_last_bitops, SOL.first_last_bitops)
    assert_not_attempted(checks.check_first_last_bitops, None)


@pytest.mark.parametrize("guess", [2.0, 2, "2.0", 2.01, 1.99, 2.001])
def test_8_2_a_round_guess_fails_and_the_feedback_hides_the_value(guess):
    text = assert_fails_without_revealing(checks.check_first_last_bitops, guess,
                                          secrets=[bitops.first_last_reference()],
                                          mentions=["will not pass", "counter"])
    assert "2.003" not in text and "expected" not in text.lower()


@pytest.mark.parametrize("wrong, mentions", [
    (lambda: bitops.first_last_reference() * 1e9, ["units"]),
    (lambda: bitops.gaitbase_bitops_g(), ["every layer at 4 bits"]),
    (lambda: bitops.first_last_reference(first_last=8), ["8 bits"]),
    (lambda: bitops.gaitbase_bitops_g(first=32), ["only the first layer"]),
    (lambda: bitops.gaitbase_bitops_g(first=32, last=32, inference_only=False), ["BNNeck"]),
    (lambda: bitops.first_last_reference(frames=1), ["one frame"]),
    (lambda: round(bitops.gaitbase_bitops_g(), 3), ["every layer at 4 bits"]),      # rounded, still named
])
def test_8_2_typical_mistakes_are_named(wrong, mentions):
    assert_fails_without_revealing(checks.check_first_last_bitops, wrong(),
                                   secrets=[bitops.first_last_reference()], mentions=mentions)


def test_8_2_a_non_number_is_told_so():
    assert_fails_without_revealing(checks.check_first_last_bitops, "a lot", mentions=["must be a number"])


def test_8_2_hints_do_not_give_the_code_or_value():
    assert_hints_hide("8.2", POLICY_CODE + [f"{bitops.first_last_reference():.3f}", "2.00"])


# -- 8.3 ---------------------------------------------------------------------------------------------
def test_8_3_solution_passes_and_stub_is_not_attempted():
    assert_passes(checks.check_first_layer_share, SOL.first_layer_share)
    assert_not_attempted(checks.check_first_layer_share, None)


@pytest.mark.parametrize("guess", [99, 99.0, 98.8, 98.6, 98.5, 100, 95])
def test_8_3_a_round_guess_fails(guess):
    assert_fails_without_revealing(checks.check_first_layer_share, guess,
                                   secrets=[bitops.first_layer_share_reference()], mentions=["will not pass"])


def _first_only_increase_pct():
    return 100 * (bitops.gaitbase_bitops_g(first=32) / bitops.gaitbase_bitops_g() - 1)


@pytest.mark.parametrize("wrong, mentions", [
    (lambda: bitops.first_layer_share_reference() / 100, ["fraction"]),
    (lambda: 100 - bitops.first_layer_share_reference(), ["last layer's share"]),
    (lambda: 100 * (bitops.first_last_reference() / bitops.gaitbase_bitops_g() - 1), ["both layers"]),
    (_first_only_increase_pct, ["relative to w4a4 everywhere"]),
    (lambda: 150.0, ["between 0 and 100"]),
])
def test_8_3_typical_mistakes_are_named(wrong, mentions):
    assert_fails_without_revealing(checks.check_first_layer_share, wrong(),
                                   secrets=[bitops.first_layer_share_reference()], mentions=mentions)


def test_8_3_hints_do_not_give_the_value():
    share = bitops.first_layer_share_reference()
    assert_hints_hide("8.3", [f"{share:.1f}", f"{share:.2f}", "macs /", "[0].macs"])


# -- hidden checks -----------------------------------------------------------------------------------
WRONG_FOR_HIDDEN = {
    "8.1": [conv_flops, conv_kernel_once],
    "8.2": [round(bitops.first_last_reference(), 4), 2.0],          # a typed copy passes the visible check
    "8.3": [round(bitops.first_layer_share_reference(), 2), 99.0],
}


@pytest.mark.parametrize("exercise", sorted(WRONG_FOR_HIDDEN))
def test_hidden_checks_pass_the_solution_and_fail_a_mistake(exercise):
    answer = {"8.1": SOL.conv_bitops, "8.2": SOL.first_last_bitops, "8.3": SOL.first_layer_share}[exercise]
    assert HIDDEN[exercise], f"Exercise {exercise} has no hidden check"
    assert_hidden_checks_separate(HIDDEN[exercise], answer, WRONG_FOR_HIDDEN[exercise])


def test_a_typed_copy_passes_the_visible_check_but_not_the_hidden_one():
    typed = round(bitops.first_last_reference(), 4)
    assert checks.check_first_last_bitops(typed).passed
    with pytest.raises(Wrong, match="typed copy"):
        HIDDEN["8.2"][0](typed)
