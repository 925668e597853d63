"""Exercises of notebook 09 (from fake quantization to integers).

* 9.1 ``requantize_codes``: the integer requantization step, an int32 accumulator times a real
  multiplier M = s_x s_w / s_y, rounded onto the next layer's grid with integer operations only
  (Jacob et al. 2018, Sec. 2.2);
* 9.2 ``accumulator_bits_needed``: the worst-case width of a convolution's accumulator.

The references are the library's :func:`qgait_lab.deploy.fixed_point.requantize` (with the grid's
clamp) and :func:`qgait_lab.deploy.accumulator.accumulator_bits`.  When an answer is wrong, the
checkers compare it with typical wrong implementations (a floor instead of a rounding, ties rounded
to even, the real M in floating point, a forgotten sign bit, ...) and name the one it follows;
otherwise they name the first input where it is off and whether it is too large or too small.
"""
from __future__ import annotations

import math
import types
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from .core import Wrong, as_number, call, exercise

NOTEBOOK = "09_fake_to_integer"


# ---------------------------------------------------------------------------
# 9.1 The integer requantization step
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RequantCase:
    """One visible or hidden case: accumulators, the real multiplier M and the target grid."""

    label: str
    acc: tuple
    multiplier: float
    lo: int
    hi: int
    shape: tuple = ()

    def accumulators(self) -> Tensor:
        acc = torch.tensor(self.acc, dtype=torch.int64)
        return acc.reshape(self.shape) if self.shape else acc

    def grid(self):
        from ...deploy.grids import Grid

        return Grid(1.0, self.lo, self.hi)     # the step plays no part: M already holds s_y

    def setting(self) -> str:
        return f"{self.label} (M = {self.multiplier:.6g}, grid {self.lo}..{self.hi})"


def _random_acc(seed: int, lo: int, hi: int, n: int) -> tuple:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randint(lo, hi, (n,), generator=g, dtype=torch.int64).tolist())


def requant_cases() -> list[RequantCase]:
    """The visible cases of Exercise 9.1."""
    big = 2 ** 30 + 2 ** 22
    return [
        RequantCase("typical accumulators onto a 4-bit grid", _random_acc(0, -500, 2600, 240), 0.00731, 0, 15),
        RequantCase("accumulators near the int32 limit onto an 8-bit grid",
                    (big - 1, big + 1, 2 ** 31 - 1, 2 ** 30, 3 * 2 ** 28 + 5, 1)
                    + _random_acc(1, 2 ** 29, 2 ** 31 - 1, 60), 2.0 ** -23, 0, 255),
        RequantCase("exact ties (acc * M halfway between two codes) on a signed grid",
                    (5, -5, 3, -3, 1, -1, 7, -7, 13, -13, 4, -4), 0.5, -8, 7),
        RequantCase("a multiplier its fixed-point form does not hold exactly", (5, 7, -3, 9, -11, 21),
                    0.5 * (1 - 2.0 ** -40), -128, 127),
        RequantCase("signed accumulators onto an 8-bit signed grid", _random_acc(2, -40000, 40000, 240),
                    0.0031, -128, 127),
    ]


def reference_requantize(acc: Tensor, multiplier: float, lo: int, hi: int) -> Tensor:
    """The library's step: :func:`~qgait_lab.deploy.fixed_point.requantize`, then the grid's clamp."""
    from ...deploy.fixed_point import quantize_multiplier, requantize

    return requantize(acc.to(torch.int64), quantize_multiplier(multiplier)).clamp(lo, hi)


def _fixed(acc: Tensor, multiplier: float, shift_offset: int = 0) -> tuple[Tensor, int]:
    """``acc * mantissa`` (int64) and the right shift, from the library's fixed-point multiplier."""
    from ...deploy.fixed_point import quantize_multiplier

    m = quantize_multiplier(multiplier)
    return acc.to(torch.int64) * m.mantissa, m.shift + shift_offset


def _half(shift: int) -> int:
    return 1 << (shift - 1) if shift > 0 else 0


def _floor_reading(acc, multiplier):
    product, shift = _fixed(acc, multiplier)
    return product >> shift


def _half_even_reading(acc, multiplier):
    product, shift = _fixed(acc, multiplier)
    return torch.round(product.double() / 2 ** shift).to(torch.int64)


def _half_away_reading(acc, multiplier):
    product, shift = _fixed(acc, multiplier)
    return torch.sign(product) * ((product.abs() + _half(shift)) >> shift)


def _truncating_reading(acc, multiplier):
    product, shift = _fixed(acc, multiplier)
    return torch.div(product + _half(shift), 2 ** shift, rounding_mode="trunc")


def _shift_reading(offset: int):
    def reading(acc, multiplier):
        product, shift = _fixed(acc, multiplier, offset)
        return (product + _half(shift)) >> shift
    return reading


def _real_reading(rounding: str, dtype: torch.dtype):
    def reading(acc, multiplier):
        value = acc.to(dtype) * torch.tensor(multiplier, dtype=dtype)
        out = torch.round(value) if rounding == "even" else torch.floor(value + 0.5)
        return out.to(torch.int64)
    return reading


REQUANT_READINGS: tuple[tuple[Callable, str], ...] = (
    (_floor_reading, "rounds down: your codes are floor(acc * M), and a right shift floors; round to the "
                     "nearest code by adding half of 2**shift before shifting"),
    (_half_even_reading, "rounds ties to even (as torch.round does), so an exact half goes down for even "
                         "codes; the fixed-point step rounds ties up, toward +infinity"),
    (_half_away_reading, "rounds negative ties away from zero (sign and magnitude rounded separately); the "
                         "fixed-point step rounds ties up, toward +infinity, for negative accumulators too"),
    (_truncating_reading, "divides with truncation toward zero, which for negative accumulators is not a "
                          "floor; an arithmetic right shift (or floor division) floors for both signs"),
    (_shift_reading(-1), "shifts right by one bit too few: your codes are about twice too large"),
    (_shift_reading(1), "shifts right by one bit too many: your codes are about half as large as they "
                        "should be"),
    (_real_reading("even", torch.float64), "multiplies by the real M in floating point and rounds ties to "
                                           "even; the integer step uses quantize_multiplier(M)'s mantissa "
                                           "and shift"),
    (_real_reading("up", torch.float64), "multiplies by the real M in floating point; the integer step "
                                         "multiplies by quantize_multiplier(M)'s integer mantissa and "
                                         "shifts, and that fixed-point number is not exactly M"),
    (_real_reading("even", torch.float32), "computes in float32, which holds integers exactly only up to "
                                           "2**24; the accumulators here are larger"),
    (_real_reading("up", torch.float32), "computes in float32, which holds integers exactly only up to "
                                         "2**24; the accumulators here are larger"),
)
"""Typical wrong implementations (before the clamp), and what each gets wrong."""


def _names_used(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_used(const)
    return names


def calls_library_step(fn: Callable) -> bool:
    """Whether ``fn`` reaches the library's ``requantize`` (a global, a closure, or ``module.requantize``)."""
    from ...deploy.fixed_point import requantize

    code = getattr(fn, "__code__", None)
    if code is None:
        return False
    names = _names_used(code)
    found = getattr(fn, "__globals__", {})
    if any(found.get(name) is requantize for name in names):
        return True
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            if cell.cell_contents is requantize:
                return True
        except ValueError:              # an empty cell
            continue
    # ``deploy.requantize`` is an attribute name; a function of the student's own of that name is not the library's.
    return "requantize" in names and found.get("requantize", requantize) is requantize


def _as_codes(value: Any, shape: tuple, setting: str) -> tuple[Tensor, torch.dtype]:
    """The student's codes as int64, and the integer type they came in."""
    if value is None:
        raise Wrong("requantize_codes returned None: did you forget the return statement?")
    if isinstance(value, np.ndarray):
        if not np.issubdtype(value.dtype, np.integer):
            raise Wrong(f"{setting}: your codes are not integers (a numpy array of {value.dtype}); the integer "
                        "step returns integer codes, computed with integer operations")
        value = torch.from_numpy(value.astype(np.int64))
    if not torch.is_tensor(value):
        raise Wrong(f"{setting}: requantize_codes returned a {type(value).__name__}, not a tensor of codes")
    if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
        raise Wrong(f"{setting}: your codes are not integers (dtype {str(value.dtype).replace('torch.', '')}); "
                    "the integer step returns integer codes, computed with integer operations")
    if tuple(value.shape) != tuple(shape):
        raise Wrong(f"{setting}: your codes have shape {tuple(value.shape)}, the accumulators {tuple(shape)}: "
                    "return one code per accumulator")
    return value.to(torch.int64), value.dtype


def compare_requantize(requantize_codes: Callable, case: RequantCase) -> None:
    """One case: the student's codes against the library's, naming the property violated."""
    acc = case.accumulators()
    setting = case.setting()
    got, dtype = _as_codes(call(requantize_codes, acc.clone(), case.multiplier, case.grid()), acc.shape, setting)
    want = reference_requantize(acc, case.multiplier, case.lo, case.hi)
    outside = (got < case.lo) | (got > case.hi)
    if outside.any():
        i = int(torch.nonzero(outside.reshape(-1))[0])
        raise Wrong(f"{setting}: at acc = {int(acc.reshape(-1)[i])} your code {int(got.reshape(-1)[i])} is out "
                    f"of the grid's range {case.lo}..{case.hi}: clamp the codes to the grid")
    if torch.equal(got, want):
        return
    for reading, what in REQUANT_READINGS:
        candidate = reading(acc, case.multiplier).clamp(case.lo, case.hi)
        if not torch.equal(candidate, want) and torch.equal(got, candidate):
            raise Wrong(f"{setting}: your step {what}")
    wrong = torch.nonzero((got != want).reshape(-1)).reshape(-1)
    i = int(wrong[0])
    a, g = int(acc.reshape(-1)[i]), int(got.reshape(-1)[i])
    side = "too large" if g > int(want.reshape(-1)[i]) else "too small"
    product, shift = _fixed(acc.reshape(-1)[i:i + 1], case.multiplier)
    tie = shift > 0 and int(product) % (1 << shift) == _half(shift)
    where = ", where acc * M lies exactly halfway between two codes" if tie else ""
    narrow = (f" (your codes come back as {str(dtype).replace('torch.', '')}: the product acc * mantissa needs "
              "int64)") if torch.iinfo(dtype).bits < 64 else ""
    raise Wrong(f"{setting}: {wrong.numel()} of {acc.numel()} codes are wrong; at acc = {a}{where}, your code "
                f"{g} is {side}{narrow}")


@exercise("9.1", NOTEBOOK, "the integer requantization step", answer="requantize_codes", hints=(
    "quantize_multiplier(M) gives M as an integer mantissa and a shift, M ~ mantissa * 2**-shift: acc * M is "
    "then acc * mantissa moved right by shift bits. What does a right shift do to the bits it drops?",
    "A right shift floors. Rounding to the nearest integer means adding half of the divisor, 2**(shift - 1), "
    "before the shift; with an arithmetic shift this rounds every tie up, toward +infinity, for negative "
    "accumulators too.",
    "Stay in int64 from start to end (the product of an int32 accumulator and a 31-bit mantissa needs up to "
    "62 bits, which neither int32 nor float32 nor float64 holds exactly), and finish with the grid: no code "
    "below grid.lo or above grid.hi.",
))
def check_requantize_codes(requantize_codes: Callable) -> str:
    """``requantize_codes(acc, multiplier, grid)``: int64 codes on ``grid``, integer operations only."""
    if callable(requantize_codes) and calls_library_step(requantize_codes):
        raise Wrong("your function calls the library's requantize: write the step yourself with integer "
                    "operations (quantize_multiplier, for the mantissa and the shift, is allowed)")
    cases = requant_cases()
    for case in cases:
        compare_requantize(requantize_codes, case)
    return (f"your integer step gives the library's codes on {len(cases)} cases (4- and 8-bit, signed and "
            "unsigned grids, exact ties, accumulators near the int32 limit, a multiplier its fixed-point form "
            "rounds)")


# ---------------------------------------------------------------------------
# 9.2 The accumulator's width
# ---------------------------------------------------------------------------
BITS_CASES = ((4, 4, 1, 3, False), (4, 4, 128, 3, False), (8, 8, 512, 3, False), (8, 8, 64, 3, True),
              (4, 4, 33, 1, False), (4, 4, 64, 1, False), (2, 4, 32, 3, False), (8, 8, 8192, 3, False))
"""(w_bits, a_bits, c_in, kernel, signed_input) of the visible checks: GaitBase's stem and stages, 1x1
convolutions over 33 and 64 channels (a fan-in just above and one at a power of two, where the typical
mistakes part from the right count), and one convolution whose accumulator does not fit int32."""

_BITS_ARGS = ("w_bits", "a_bits", "c_in", "kernel", "signed_input")


def bits_case_text(case) -> str:
    return "accumulator_bits_needed(" + ", ".join(f"{n}={v}" for n, v in zip(_BITS_ARGS, case)) + ")"


def bits_reference(w_bits: int, a_bits: int, c_in: int, kernel: int, signed_input: bool) -> int:
    """The library's :func:`~qgait_lab.deploy.accumulator.accumulator_bits` for a ``kernel`` x ``kernel`` conv."""
    from ...deploy.accumulator import accumulator_bits

    return accumulator_bits(w_bits, a_bits, c_in * kernel * kernel, signed_input)


def _bits_of(bound: int) -> int:
    return int(bound).bit_length() + 1


def _x_max(a_bits: int, signed: bool) -> int:
    return 2 ** (a_bits - 1) if signed else 2 ** a_bits - 1


BITS_READINGS: tuple[tuple[Callable, str], ...] = (
    (lambda w, a, c, k, s: bits_reference(w, a, c, k, s) - 1,
     "holds the worst case as an unsigned number: the accumulator is signed (it reaches both plus and minus "
     "the bound), and the sign takes one more bit"),
    (lambda w, a, c, k, s: w + a + math.ceil(math.log2(c * k * k)),
     "is the rule of thumb b_w + b_a + log2(fan-in), rounded up: an upper bound that can be one bit more than "
     "the exact worst case; compute the largest |acc| itself"),
    (lambda w, a, c, k, s: bits_reference(w, a, c, 1, s),
     "counts C_in products per output value; a k x k kernel sums over C_in * k * k of them"),
    (lambda w, a, c, k, s: _bits_of(c * k * 2 ** (w - 1) * _x_max(a, s)),
     "grows with the kernel size k, not with the k x k kernel positions each output value sums over"),
    (lambda w, a, c, k, s: _bits_of(c * k * k * (2 ** w - 1) * _x_max(a, s)),
     "treats the weight codes as unsigned, up to 2**b_w - 1; they are signed, at most 2**(b_w - 1) in "
     "magnitude"),
    (lambda w, a, c, k, s: _bits_of(c * k * k * 2 ** (w - 1) * 2 ** a),
     "takes 2**b_a as the largest input code; the largest unsigned b_a-bit code is 2**b_a - 1, the largest "
     "signed one 2**(b_a - 1) in magnitude"),
    (lambda w, a, c, k, s: bits_reference(w, a, c, k, False),
     "treats signed inputs like unsigned ones; a signed b_a-bit code is at most 2**(b_a - 1) in magnitude"),
    (lambda w, a, c, k, s: w + a,
     "counts the bits of one product, not of the sum of fan-in products"),
)
"""Typical wrong predictions, and what each gets wrong."""


def _as_bits(value: Any, where: str) -> int:
    if value is None:
        raise Wrong("accumulator_bits_needed returned None: did you forget the return statement?")
    got = as_number(value, where)
    if got != int(got):
        raise Wrong(f"{where} = {got:g}: a number of bits is a whole number (round the bits up, not the bound)")
    return int(got)


def compare_bits(accumulator_bits_needed: Callable, cases) -> None:
    """The student's widths against the library's on ``cases``, naming the mistake they follow."""
    answers = {case: _as_bits(call(accumulator_bits_needed, *case), bits_case_text(case)) for case in cases}
    wrong = [case for case in cases if answers[case] != bits_reference(*case)]
    if not wrong:
        return
    for reading, what in BITS_READINGS:
        predicted = {case: reading(*case) for case in cases}
        if all(answers[c] == predicted[c] for c in cases) and any(predicted[c] != bits_reference(*c)
                                                                  for c in cases):
            raise Wrong(f"{bits_case_text(wrong[0])} = {answers[wrong[0]]}: your count {what}")
    case = wrong[0]
    side = "too many" if answers[case] > bits_reference(*case) else "too few"
    raise Wrong(f"{bits_case_text(case)} = {answers[case]} is {side} bits ({len(wrong)} of {len(cases)} cases "
                "are off)")


@exercise("9.2", NOTEBOOK, "the accumulator's width", answer="accumulator_bits_needed", hints=(
    "How many products does one output value of the convolution add up, and what is the largest magnitude "
    "one product of a weight code and an input code can have?",
    "The worst case is every product at its largest magnitude, all with the same sign: the largest weight "
    "code in magnitude is 2**(b_w - 1); the largest input code is 2**b_a - 1 unsigned and 2**(b_a - 1) in "
    "magnitude signed. Both signs of the sum occur.",
    "A signed integer of n bits holds -2**(n-1) .. 2**(n-1) - 1: find the smallest n that holds plus and "
    "minus your bound (Python's int.bit_length() counts the bits of a non-negative integer).",
))
def check_accumulator_bits_needed(accumulator_bits_needed: Callable) -> str:
    """``accumulator_bits_needed(w_bits, a_bits, c_in, kernel, signed_input)``: the accumulator's bits."""
    compare_bits(accumulator_bits_needed, BITS_CASES)
    return (f"your widths match qgait_lab.deploy.accumulator.accumulator_bits on {len(BITS_CASES)} convolutions "
            "(2- to 8-bit weights, 1x1 and 3x3 kernels, signed and unsigned inputs, one that leaves int32)")
