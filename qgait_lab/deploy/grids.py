"""The integer grid behind each fake quantizer: a step, and the range of integer codes.

A fake quantizer (``qgait_lab.quant.quantizers``) returns ``code * step`` with
an integer ``code``; a deployed model stores the code and remembers the step.
Every grid here has zero point 0, because every quantizer of this project is
symmetric around 0 (LSQ, Eq. 2-3) or starts at 0 (PACT, DoReFa activations).

=====================  ============================  ======================
quantizer              codes                          step
=====================  ============================  ======================
LSQ, unsigned (b bits)  0 .. 2^b - 1                   learned ``s``
LSQ, signed (b bits)    -2^(b-1) .. 2^(b-1) - 1        learned ``s``
PACT activations        0 .. 2^b - 1                   ``alpha / (2^b - 1)``
DoReFa activations      0 .. 2^b - 1                   ``1 / (2^b - 1)``
DoReFa weights          odd -L .. L, L = 2^b - 1       ``1 / L``
=====================  ============================  ======================

DoReFa's weights ``2 q - 1`` are odd multiples of ``1/L``: b-bit DoReFa
weights need b + 1 bits of signed storage, so they fit an int8 container up to
7 bits only, and :func:`weight_codes` refuses 8.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError
from ..quant.quantizers import (DoReFaActQuantizer, DoReFaWeightQuantizer, LSQQuantizer,
                                PACTQuantizer, Quantizer)

__all__ = ["Grid", "activation_grid", "weight_codes", "codes_of"]

INT8 = (-128, 127)
UINT8 = (0, 255)


@dataclass(frozen=True)
class Grid:
    """Activation codes ``lo .. hi`` of real value ``code * scale`` (zero point 0)."""

    scale: float
    lo: int
    hi: int

    @property
    def signed(self) -> bool:
        return self.lo < 0

    @property
    def container(self) -> str:
        """The 8-bit type that holds the codes: ``uint8`` for unsigned grids, else ``int8``."""
        return "int8" if self.signed else "uint8"

    @property
    def bits(self) -> int:
        return int(np.ceil(np.log2(self.hi - self.lo + 1)))

    def quantize(self, x: Tensor) -> Tensor:
        """Float to codes, as the fake quantizers do it: ``round(clamp(x / s))`` in float32."""
        return torch.round(torch.clamp(x / torch.tensor(self.scale, dtype=x.dtype), self.lo, self.hi))


def _check_container(codes_lo: int, codes_hi: int, container: tuple[int, int], what: str) -> None:
    if codes_lo < container[0] or codes_hi > container[1]:
        raise ConfigError(f"{what}: codes {codes_lo}..{codes_hi} do not fit an 8-bit container "
                          f"({container[0]}..{container[1]}); the integer path holds at most 8 bits")


def _uninitialised(q: Quantizer, what: str) -> None:
    if isinstance(q, LSQQuantizer) and (not q.initialized or q.signed is None):
        raise ConfigError(f"{what}: its LSQ quantizer was never initialised (no forward pass has set "
                          f"its step); train the model, or run initialize_quantizers on data, first")


def activation_grid(q: Quantizer, what: str = "activation") -> Grid:
    """The grid of an activation quantizer."""
    _uninitialised(q, what)
    levels = 2 ** q.bits - 1
    if isinstance(q, LSQQuantizer):
        lo, hi = q.bounds
        grid = Grid(float(q.step.detach().clamp(min=q.STEP_FLOOR)), int(lo), int(hi))
    elif isinstance(q, PACTQuantizer):
        grid = Grid(float(q.alpha.detach().clamp(min=1e-3)) / levels, 0, levels)
    elif isinstance(q, DoReFaActQuantizer):
        grid = Grid(1.0 / levels, 0, levels)
    else:
        raise ConfigError(f"{what}: no integer grid for activation quantizer {type(q).__name__}")
    if isinstance(q, LSQQuantizer) and q.channels:
        raise ConfigError(f"{what}: per-channel activation steps have no integer path here")
    _check_container(grid.lo, grid.hi, INT8 if grid.signed else UINT8, what)
    return grid


@torch.no_grad()
def weight_codes(q: Quantizer, weight: Tensor, what: str = "weight") -> tuple[Tensor, Tensor]:
    """``(codes int8, scale float64)``: the integer weights and the step of each output channel.

    ``scale`` has one entry per tensor (shape ``[]``) or per output channel
    (LSQ with ``per_channel``).  The codes are read off the fake-quantized
    weight, ``round(q(w) / scale)``, so they are exactly what training used.
    """
    _uninitialised(q, what)
    if isinstance(q, LSQQuantizer):
        scale = q.step.detach().clamp(min=q.STEP_FLOOR).double()
        lo, hi = q.bounds
    elif isinstance(q, DoReFaWeightQuantizer):
        levels = 2 ** q.bits - 1
        scale = torch.tensor(1.0 / levels, dtype=torch.float64)
        lo, hi = -levels, levels
    else:
        raise ConfigError(f"{what}: no integer weights for quantizer {type(q).__name__}")
    _check_container(lo, hi, INT8, what)
    view = scale.view(-1, *([1] * (weight.dim() - 1))) if scale.dim() else scale
    codes = torch.round(q(weight.detach()).double() / view)
    if codes.min() < lo or codes.max() > hi:     # cannot happen for a quantizer's own output
        raise ConfigError(f"{what}: codes leave {lo}..{hi}")
    return codes.to(torch.int8), scale


def codes_of(fake_quantized: Tensor, grid: Grid) -> Tensor:
    """The integer codes behind a fake-quantized tensor ``code * step`` (exact in float32)."""
    return torch.round(fake_quantized.double() / grid.scale)
