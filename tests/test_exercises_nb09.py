"""Exercises of notebook 09 (from fake quantization to integers), and the library function behind 9.2.

The solutions pass, stubs are "not attempted", typical mistakes (a floor instead of a rounding, ties to
even, the real multiplier in float, a forgotten clamp, a forgotten sign bit, the rule of thumb, ...) fail
with feedback that names the mistake and hides the solution's code, hints hide the solution, and every
hidden check passes the solution and fails a mistake.  ``accumulator_bits`` is checked against a brute
force over every weight and input code."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from exercise_support import (assert_fails_without_revealing, assert_hidden_checks_separate, assert_hints_hide,
                              assert_not_attempted, assert_passes, load_instructor_module)
from qgait_lab.lab import checks
from qgait_lab.deploy.accumulator import (accumulator_bits, accumulator_bound, largest_input_code,
                                          largest_weight_code, layer_accumulator_rows)
from qgait_lab.deploy.fixed_point import quantize_multiplier, requantize
from qgait_lab.lab.exercises import deployment
from qgait_lab.lab.exercises.core import Wrong

SOL = load_instructor_module("solutions", "nb09")
HIDDEN = load_instructor_module("hidden", "nb09").HIDDEN

REQUANT_CODE = ["quantize_multiplier(multiplier)", "fixed.mantissa", "(1 << (fixed.shift - 1))", ">> fixed.shift",
                "clamp(grid.lo, grid.hi)"]
BITS_CODE = ["bit_length() + 1", "c_in * kernel * kernel", "2 ** (w_bits - 1) *", "2 ** a_bits - 1"]


def stub(*args, **kwargs):
    raise NotImplementedError


# -- the library's accumulator width ------------------------------------------------------------------
def brute_force_bits(w_bits: int, a_bits: int, fan_in: int, signed_input: bool) -> int:
    """Every sum of ``fan_in`` products, over folded weight codes -2^(b-1)..2^(b-1) and the input grid."""
    weights = range(-2 ** (w_bits - 1), 2 ** (w_bits - 1) + 1)
    inputs = range(-2 ** (a_bits - 1), 2 ** (a_bits - 1)) if signed_input else range(0, 2 ** a_bits)
    products = sorted({w * x for w in weights for x in inputs})
    lo, hi = fan_in * products[0], fan_in * products[-1]       # every term at the same extreme
    return next(n for n in itertools.count(1) if -2 ** (n - 1) <= lo and hi <= 2 ** (n - 1) - 1)


@pytest.mark.parametrize("w_bits, a_bits, fan_in, signed", [
    (2, 2, 1, False), (2, 2, 3, True), (3, 2, 5, False), (4, 4, 9, False), (4, 4, 9, True), (2, 3, 16, False),
    (3, 3, 7, True), (8, 8, 1, True), (8, 8, 4608, False)])
def test_accumulator_bits_is_the_exact_worst_case(w_bits, a_bits, fan_in, signed):
    assert accumulator_bits(w_bits, a_bits, fan_in, signed) == brute_force_bits(w_bits, a_bits, fan_in, signed)


def test_the_rule_of_thumb_is_an_upper_bound_at_most_one_bit_too_many():
    seen_equal = seen_more = False
    for w, a, k, s in itertools.product((2, 4, 8), (2, 4, 8), (1, 9, 33, 64, 144, 576, 4608), (False, True)):
        exact, rule = accumulator_bits(w, a, k, s), w + a + math.ceil(math.log2(k))
        assert exact <= rule <= exact + 1
        seen_equal |= rule == exact
        seen_more |= rule == exact + 1
    assert seen_equal and seen_more


def test_w8a8_leaves_int32_past_65793_terms():
    assert accumulator_bound(8, 8, 1) == 128 * 255
    assert largest_weight_code(8) == 128 and largest_input_code(8) == 255 and largest_input_code(8, True) == 128
    limit = (2 ** 31 - 1) // (128 * 255)
    assert accumulator_bits(8, 8, limit) == 32 and accumulator_bits(8, 8, limit + 1) == 33


def test_accumulator_bits_refuses_nonsense():
    for args in ((0, 8, 9), (8, 8, 0), (8, 2.5, 9), (True, 8, 9)):
        with pytest.raises(ValueError, match="positive integer"):
            accumulator_bits(*args)


@pytest.mark.parametrize("method", ["lsq", "dorefa"])
def test_layer_rows_count_each_layers_fan_in_and_grid(method):
    from qgait_lab.deploy import build_integer_model
    from qgait_lab.models import GaitBase
    from qgait_lab.quant import quantize_model

    torch.manual_seed(0)
    model = quantize_model(GaitBase(num_classes=4, channels=(8, 16, 32, 64)), method, 4, 4)
    model.eval()(torch.rand(1, 3, 32, 22))                  # a forward pass initialises LSQ's steps
    integer = build_integer_model(model, method)
    rows = {r["layer"]: r for r in layer_accumulator_rows(integer)}
    assert list(rows) == [layer.name for layer in integer.layers()]
    fan_ins = {"Backbone.forward_block.conv1.conv": 9, "Backbone.forward_block.layer1.0.conv1": 8 * 9,
               "Backbone.forward_block.layer2.0.downsample.0": 8, "Backbone.forward_block.layer4.0.conv2": 64 * 9,
               "FCs": 64}
    weight_max = 15 if method == "dorefa" else 8                # DoReFa's odd codes reach 2^b - 1
    for name, fan_in in fan_ins.items():
        row = rows[name]
        assert row["fan_in"] == fan_in and (row["w_bits"], row["a_bits"], row["signed_input"]) == (4, 4, False)
        assert row["bound"] == fan_in * weight_max * 15
        assert row["bits"] == row["bound"].bit_length() + 1 and row["fits_int32"]


# -- the references are the library ------------------------------------------------------------------
def test_the_9_1_reference_is_the_librarys_requantize_and_clamp():
    for case in deployment.requant_cases():
        acc = case.accumulators()
        want = requantize(acc, quantize_multiplier(case.multiplier)).clamp(case.lo, case.hi)
        assert torch.equal(deployment.reference_requantize(acc, case.multiplier, case.lo, case.hi), want)
        assert torch.equal(SOL.requantize_codes(acc, case.multiplier, case.grid()), want)


def test_the_9_1_cases_reach_what_they_say():
    cases = {c.label: c for c in deployment.requant_cases()}
    near = next(c for label, c in cases.items() if "int32 limit" in label).accumulators()
    assert int(near.max()) == 2 ** 31 - 1 and int(near.min()) >= 0
    ties = next(c for label, c in cases.items() if "ties" in label)
    assert all((2 * a * ties.multiplier) % 2 == 1 for a in ties.acc if a % 2)   # odd acc * 0.5: exact halves
    inexact = next(c for label, c in cases.items() if "does not hold" in label)
    assert quantize_multiplier(inexact.multiplier).value != inexact.multiplier
    for case in cases.values():                                   # every case has codes inside and at a clamp
        codes = deployment.reference_requantize(case.accumulators(), case.multiplier, case.lo, case.hi)
        assert ((codes > case.lo) & (codes < case.hi)).any(), case.label


def test_the_9_2_reference_is_the_librarys_accumulator_bits():
    for case in deployment.BITS_CASES:
        w, a, c, k, s = case
        assert deployment.bits_reference(*case) == accumulator_bits(w, a, c * k * k, s)
        assert SOL.accumulator_bits_needed(*case) == accumulator_bits(w, a, c * k * k, s)
    assert any(deployment.bits_reference(*case) > 32 for case in deployment.BITS_CASES)   # "does it fit int32?"


# -- 9.1 ---------------------------------------------------------------------------------------------
def test_9_1_solution_passes_and_stub_is_not_attempted():
    assert_passes(checks.check_requantize_codes, SOL.requantize_codes)
    assert_not_attempted(checks.check_requantize_codes, stub)
    assert_not_attempted(checks.check_requantize_codes, None)


def _from_reading(reading):
    return lambda acc, multiplier, grid: reading(acc, multiplier).clamp(grid.lo, grid.hi)


READING_WORDS = ["rounds down", "ties to even", "away from zero", "truncation toward zero", "one bit too few",
                 "one bit too many", "ties to even", "real M in floating point", "float32", "float32"]


@pytest.mark.parametrize("index", range(len(deployment.REQUANT_READINGS)))
def test_9_1_each_typical_mistake_is_named(index):
    reading, _ = deployment.REQUANT_READINGS[index]
    assert_fails_without_revealing(checks.check_requantize_codes, _from_reading(reading), secrets=REQUANT_CODE,
                                   mentions=[READING_WORDS[index]])


def test_9_1_readings_are_told_apart():
    """Each typical mistake is reported as itself (or, for float mistakes, one of the same family)."""
    said = []
    for reading, what in deployment.REQUANT_READINGS:
        result = checks.check_requantize_codes(_from_reading(reading))
        said.append(next(w for _, w in deployment.REQUANT_READINGS if w in result.message))
    assert said[:6] == [w for _, w in deployment.REQUANT_READINGS[:6]]


def test_9_1_a_forgotten_clamp_says_out_of_range():
    def no_clamp(acc, multiplier, grid):
        fixed = quantize_multiplier(multiplier)
        return (acc * fixed.mantissa + (1 << (fixed.shift - 1))) >> fixed.shift

    assert_fails_without_revealing(checks.check_requantize_codes, no_clamp, secrets=REQUANT_CODE,
                                   mentions=["out of the grid's range", "clamp", "acc = "])


def test_9_1_float_codes_are_not_integers():
    assert_fails_without_revealing(checks.check_requantize_codes,
                                   lambda acc, m, grid: torch.round(acc * m).clamp(grid.lo, grid.hi),
                                   mentions=["not integers", "float32"])
    assert_fails_without_revealing(checks.check_requantize_codes,
                                   lambda acc, m, grid: np.clip(np.round(acc.numpy() * m), grid.lo, grid.hi),
                                   mentions=["not integers", "numpy"])


def test_9_1_calling_the_library_is_refused():
    from qgait_lab.deploy import requantize as library_step

    def uses_library(acc, multiplier, grid):
        return library_step(acc, quantize_multiplier(multiplier)).clamp(grid.lo, grid.hi)

    assert_fails_without_revealing(checks.check_requantize_codes, uses_library, mentions=["library's requantize"])


def test_9_1_an_int32_product_is_told_to_use_int64():
    def in_int32(acc, multiplier, grid):
        fixed = quantize_multiplier(multiplier)
        product = acc.to(torch.int32) * fixed.mantissa
        return ((product + (1 << (fixed.shift - 1))) >> fixed.shift).clamp(grid.lo, grid.hi)

    assert_fails_without_revealing(checks.check_requantize_codes, in_int32, secrets=REQUANT_CODE,
                                   mentions=["int64", "your code"])


def test_9_1_shape_and_return_mistakes_are_told():
    assert_fails_without_revealing(checks.check_requantize_codes, lambda acc, m, grid: None,
                                   mentions=["returned None"])
    assert_fails_without_revealing(checks.check_requantize_codes,
                                   lambda acc, m, grid: SOL.requantize_codes(acc, m, grid)[:3], mentions=["shape"])
    assert_fails_without_revealing(checks.check_requantize_codes,
                                   lambda acc, m, grid: SOL.requantize_codes(acc, m, grid).tolist(),
                                   mentions=["not a tensor"])


def test_9_1_an_off_by_one_code_names_the_accumulator_not_the_answer():
    def one_off(acc, multiplier, grid):
        out = SOL.requantize_codes(acc, multiplier, grid)
        if multiplier == 0.5:                               # the ties case: one interior code one too small
            out[2] -= 1
        return out

    text = assert_fails_without_revealing(checks.check_requantize_codes, one_off, secrets=REQUANT_CODE,
                                          mentions=["at acc = 3", "halfway", "too small", "1 of 12"])
    assert "should be" not in text and "expected" not in text.lower()


def test_9_1_a_step_that_overwrites_its_input_is_still_checked_on_the_real_cases():
    def mutates(acc, multiplier, grid):
        out = SOL.requantize_codes(acc, multiplier, grid)
        acc.zero_()
        return out

    assert_passes(checks.check_requantize_codes, mutates)     # each case passes a copy; the reference keeps its own


def test_9_1_hints_do_not_give_the_code():
    assert_hints_hide("9.1", REQUANT_CODE + [".clamp(", ">> shift", "mantissa + "])


# -- 9.2 ---------------------------------------------------------------------------------------------
def test_9_2_solution_passes_and_stub_is_not_attempted():
    assert_passes(checks.check_accumulator_bits_needed, SOL.accumulator_bits_needed)
    assert_not_attempted(checks.check_accumulator_bits_needed, stub)
    assert_not_attempted(checks.check_accumulator_bits_needed, None)


BITS_WORDS = [["unsigned", "sign"], ["rule of thumb", "upper bound"], ["C_in products"], ["kernel size k"],
              ["weight codes as unsigned"], ["2**b_a as the largest"], ["signed inputs like unsigned"],
              ["one product"]]


@pytest.mark.parametrize("index", range(len(deployment.BITS_READINGS)))
def test_9_2_each_typical_mistake_is_named(index):
    reading, _ = deployment.BITS_READINGS[index]
    assert_fails_without_revealing(checks.check_accumulator_bits_needed, reading, secrets=BITS_CODE,
                                   mentions=BITS_WORDS[index] + ["accumulator_bits_needed(w_bits="])


def test_9_2_an_unrecognised_count_is_too_many_or_too_few():
    def off_for_big_layers(w, a, c, k, s=False):
        return SOL.accumulator_bits_needed(w, a, c, k, s) + (2 if c * k * k > 1000 else 0)

    assert_fails_without_revealing(checks.check_accumulator_bits_needed, off_for_big_layers, secrets=BITS_CODE,
                                   mentions=["too many bits", "c_in=128"])


def test_9_2_a_fraction_of_a_bit_and_a_missing_return_are_told():
    assert_fails_without_revealing(checks.check_accumulator_bits_needed,
                                   lambda w, a, c, k, s=False: math.log2(c * k * k) + w + a,
                                   mentions=["whole number"])
    assert_fails_without_revealing(checks.check_accumulator_bits_needed, lambda *args: None,
                                   mentions=["returned None"])


def test_9_2_hints_do_not_give_the_code():
    assert_hints_hide("9.2", BITS_CODE + ["c_in * k * k *", "+ 1 bit"])


# -- hidden checks -----------------------------------------------------------------------------------
WRONG_FOR_HIDDEN = {
    "9.1": [_from_reading(deployment.REQUANT_READINGS[0][0]), _from_reading(deployment.REQUANT_READINGS[1][0])],
    "9.2": [deployment.BITS_READINGS[0][0], deployment.BITS_READINGS[2][0]],
}


@pytest.mark.parametrize("exercise", sorted(WRONG_FOR_HIDDEN))
def test_hidden_checks_pass_the_solution_and_fail_a_mistake(exercise):
    answer = {"9.1": SOL.requantize_codes, "9.2": SOL.accumulator_bits_needed}[exercise]
    assert HIDDEN[exercise], f"Exercise {exercise} has no hidden check"
    assert_hidden_checks_separate(HIDDEN[exercise], answer, WRONG_FOR_HIDDEN[exercise])


def test_a_step_that_ignores_multipliers_above_one_passes_visibly_but_not_hidden():
    def below_one_only(acc, multiplier, grid):
        fixed = quantize_multiplier(min(multiplier, 0.999))
        return ((acc * fixed.mantissa + (1 << (fixed.shift - 1))) >> fixed.shift).clamp(grid.lo, grid.hi)

    assert checks.check_requantize_codes(below_one_only).passed
    with pytest.raises(Wrong, match="above 1"):
        HIDDEN["9.1"][0](below_one_only)
