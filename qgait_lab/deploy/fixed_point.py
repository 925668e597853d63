"""Fixed-point requantization: a real multiplier M as an integer and a shift (Jacob et al. 2018, Sec. 2.2).

An integer layer ends with an int32 accumulator ``acc`` whose real value is
``acc * s_acc``.  Moving it onto the next layer's grid of step ``s_y`` means
multiplying by the real number ``M = s_acc / s_y`` and rounding.  Integer-only
hardware never holds ``M`` as a float: it writes ``M = m0 * 2**-n`` with an
integer mantissa ``m0`` in ``[2**30, 2**31)`` and computes

    round(acc * M) = (acc * m0 + 2**(n - 1)) >> n        (one int64 product, one shift)

The product of an int32 accumulator and a 31-bit mantissa fits in int64, and
the mantissa's 31 bits make ``m0 * 2**-n`` equal ``M`` to a relative 2**-31,
far below the half step that decides a rounding.  Jacob et al. split ``n``
into a rounding "doubling high multiply" and a rounding right shift (two
roundings, as gemmlowp does it on 32-bit registers); with an int64 product one
rounding is enough.  Ties round half up (towards +inf), where the fake
quantizers' ``torch.round`` rounds half to even: an exact tie needs
``acc * M`` to be exactly ``j + 1/2``, which the tests have never met outside
constructed examples.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["FixedPointMultiplier", "quantize_multiplier", "requantize", "MANTISSA_BITS"]

MANTISSA_BITS = 31
_INT64_LIMIT = 2 ** 63


@dataclass(frozen=True)
class FixedPointMultiplier:
    """``M ~= mantissa * 2**-shift``; ``mantissa`` in ``[2**30, 2**31)`` (or 0 for M = 0)."""

    mantissa: int
    shift: int

    @property
    def value(self) -> float:
        return math.ldexp(self.mantissa, -self.shift)


def quantize_multiplier(m: float, bits: int = MANTISSA_BITS) -> FixedPointMultiplier:
    """Write a real multiplier ``m >= 0`` as a ``bits``-bit integer mantissa and a right shift."""
    if not math.isfinite(m) or m < 0:
        raise ValueError(f"a requantization multiplier must be finite and >= 0, got {m!r}")
    if m == 0:
        return FixedPointMultiplier(0, 0)
    fraction, exponent = math.frexp(m)             # m = fraction * 2**exponent, fraction in [0.5, 1)
    mantissa = round(fraction * 2 ** bits)
    if mantissa == 2 ** bits:                      # fraction rounded up to 1.0
        mantissa //= 2
        exponent += 1
    return FixedPointMultiplier(int(mantissa), bits - exponent)


def requantize(values: Tensor, multipliers: list[FixedPointMultiplier] | FixedPointMultiplier,
               channel_dim: int = 1, offsets: Tensor | None = None) -> Tensor:
    """``round(values * M + b)`` in integers: int64 ``values`` times each channel's fixed-point multiplier.

    ``multipliers`` is one multiplier for the whole tensor or one per channel
    along ``channel_dim``.  ``offsets`` (optional, real numbers ``b`` per
    channel, in output units) are added in the product's own fixed-point units,
    ``2**-shift``: this is how a folded BatchNorm shift enters without being
    rounded to a whole accumulator unit first (:func:`offset_units`).
    Raises ``OverflowError`` if a product could leave int64 (never for an
    int32 accumulator and a 31-bit mantissa).
    """
    if values.dtype != torch.int64:
        raise TypeError(f"requantize works on int64 tensors, got {values.dtype}")
    per_channel = not isinstance(multipliers, FixedPointMultiplier)
    mults = list(multipliers) if per_channel else [multipliers]
    mantissa = torch.tensor([m.mantissa for m in mults], dtype=torch.int64)
    shift = torch.tensor([m.shift for m in mults], dtype=torch.int64)
    if per_channel:
        shape = [1] * values.dim()
        shape[channel_dim] = len(mults)
        mantissa, shift = mantissa.view(shape), shift.view(shape)
    biggest = int(values.abs().max()) if values.numel() else 0
    if biggest * int(mantissa.max()) >= _INT64_LIMIT // 2:
        raise OverflowError(f"fixed-point product out of int64 range: |value| up to {biggest}")
    product = values * mantissa
    right = shift.clamp(min=0)
    left = (-shift).clamp(min=0)               # multipliers >= 2**31 shift left instead
    nudge = torch.where(right > 0, torch.ones_like(right) << (right - 1).clamp(min=0),
                        torch.zeros_like(right))
    if offsets is not None:
        product = product + offset_units(offsets, shift)
    return ((product + nudge) >> right) << left


def offset_units(offsets: Tensor, shift: Tensor) -> Tensor:
    """Real offsets ``b`` as integers of ``2**-shift``: ``round(b * 2**shift)`` (int64)."""
    scaled = offsets.double().reshape(shift.shape) * torch.pow(2.0, shift.double())
    if scaled.numel() and float(scaled.abs().max()) >= _INT64_LIMIT // 4:
        raise OverflowError("a requantization offset is out of int64 range")
    return torch.round(scaled).to(torch.int64)
