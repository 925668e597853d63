"""Reference solutions of notebook 09 (from fake quantization to integers)."""
from __future__ import annotations

import torch

from qgait_lab.deploy.fixed_point import quantize_multiplier


# Exercise 9.1
def requantize_codes(acc: torch.Tensor, multiplier: float, grid) -> torch.Tensor:
    """round(acc * M) onto the grid in integers: M = mantissa * 2**-shift, ties rounded up, then clamped."""
    fixed = quantize_multiplier(multiplier)
    product = acc.to(torch.int64) * fixed.mantissa
    if fixed.shift > 0:
        product = (product + (1 << (fixed.shift - 1))) >> fixed.shift
    else:
        product = product << -fixed.shift
    return product.clamp(grid.lo, grid.hi)


# Exercise 9.2
def accumulator_bits_needed(w_bits: int, a_bits: int, c_in: int, kernel: int, signed_input: bool = False) -> int:
    """Bits of the smallest signed integer that holds +-(fan-in * max|w| * max|x|)."""
    largest_input = 2 ** (a_bits - 1) if signed_input else 2 ** a_bits - 1
    worst = c_in * kernel * kernel * 2 ** (w_bits - 1) * largest_input
    return worst.bit_length() + 1
