"""How wide an integer layer's accumulator must be: the worst case of a sum of code products.

An integer convolution (or linear layer) computes each output value as a sum of
``fan_in`` products ``w * x`` of a weight code and an input code, ``fan_in =
C_in * k_h * k_w`` for a convolution (Jacob et al. 2018, Sec. 2.3: the int32
accumulator).  In the worst case every product has its largest magnitude and
all have the same sign, so

    |acc| <= fan_in * max|w| * max|x|

* weights on the signed grid of LSQ (Eq. 2-3) have codes ``-2**(b_w-1) ..
  2**(b_w-1) - 1``, so ``max|w| = 2**(b_w-1)`` (the most negative code).
  Folding BatchNorm negates the codes of channels with a negative BN scale
  (:mod:`.integer_model`), so both signs of the bound occur in a deployed layer;
* unsigned inputs (after ReLU) have codes ``0 .. 2**b_a - 1``, signed inputs
  ``-2**(b_a-1) .. 2**(b_a-1) - 1``, so ``max|x|`` is ``2**b_a - 1`` or
  ``2**(b_a-1)``.

A two's-complement integer of ``n`` bits holds ``-2**(n-1) .. 2**(n-1) - 1``,
so the accumulator needs the smallest ``n`` with ``2**(n-1) - 1 >= bound``:
``bound.bit_length() + 1``.  The often-quoted rule ``b_w + b_a +
ceil(log2(fan_in))`` is an upper bound on this, up to one bit too many.  The
bias (the folded BN shift) is added to the same accumulator and is not counted
here: it is one more term, of the size of a few products for a trained layer.
"""
from __future__ import annotations

from .integer_model import IntegerConv, IntegerFC, IntegerGaitBase

__all__ = ["largest_weight_code", "largest_input_code", "accumulator_bound", "accumulator_bits",
           "layer_accumulator_rows"]

INT32_BITS = 32


def _positive(value: int, what: str) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def largest_weight_code(w_bits: int) -> int:
    """``max|w|`` of a signed ``w_bits``-bit weight grid: ``2**(w_bits-1)``."""
    return 2 ** (_positive(w_bits, "w_bits") - 1)


def largest_input_code(a_bits: int, signed_input: bool = False) -> int:
    """``max|x|`` of an ``a_bits``-bit input grid: ``2**(a_bits-1)`` signed, ``2**a_bits - 1`` unsigned."""
    a_bits = _positive(a_bits, "a_bits")
    return 2 ** (a_bits - 1) if signed_input else 2 ** a_bits - 1


def accumulator_bound(w_bits: int, a_bits: int, fan_in: int, signed_input: bool = False,
                      weight_max: int | None = None) -> int:
    """The largest ``|acc|`` a sum of ``fan_in`` code products can reach (module docstring).

    ``weight_max`` replaces ``2**(w_bits-1)`` for a weight grid of another shape
    (DoReFa's odd codes reach ``2**w_bits - 1``, :mod:`.grids`).
    """
    w_max = largest_weight_code(w_bits) if weight_max is None else _positive(weight_max, "weight_max")
    return _positive(fan_in, "fan_in") * w_max * largest_input_code(a_bits, signed_input)


def accumulator_bits(w_bits: int, a_bits: int, fan_in: int, signed_input: bool = False,
                     weight_max: int | None = None) -> int:
    """Bits of the smallest two's-complement integer that holds every possible accumulator value."""
    return accumulator_bound(w_bits, a_bits, fan_in, signed_input, weight_max).bit_length() + 1


def _fan_in(layer: IntegerConv | IntegerFC) -> int:
    if isinstance(layer, IntegerConv):
        _, c_in, kh, kw = layer.codes.shape
        return int(c_in * kh * kw)
    return int(layer.codes.shape[1])             # FCs: [parts, c_in, c_out], one sum over c_in per part


def layer_accumulator_rows(model: IntegerGaitBase) -> list[dict]:
    """One row per quantized layer: fan-in, bits, the worst-case bound and the accumulator bits it needs.

    DoReFa's weights use their own largest code (see :func:`accumulator_bound`).
    """
    rows = []
    for layer in model.layers():
        grid = layer.input_grid
        w_max = 2 ** layer.w_bits - 1 if model.method == "dorefa" else None
        fan_in = _fan_in(layer)
        bits = accumulator_bits(layer.w_bits, grid.bits, fan_in, grid.signed, w_max)
        rows.append({"layer": layer.name, "fan_in": fan_in, "w_bits": layer.w_bits, "a_bits": grid.bits,
                     "signed_input": grid.signed,
                     "bound": accumulator_bound(layer.w_bits, grid.bits, fan_in, grid.signed, w_max),
                     "bits": bits, "fits_int32": bits <= INT32_BITS})
    return rows
