"""Solutions for notebook 02 (quantization basics: Eqs. 2-4, the STE, LSQ, DoReFa and PACT)."""
from __future__ import annotations

import torch


def _bounds(bits: int, signed: bool) -> tuple[int, int]:
    """Sec. 3.1: [0, 2^b - 1] for unsigned data, [-2^(b-1), 2^(b-1) - 1] for signed data."""
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)


def lsq_codes(v: torch.Tensor, step: float, bits: int, signed: bool) -> torch.Tensor:
    """Eq. 2: ``round(clamp(v / step, r1, r2))``."""
    lo, hi = _bounds(bits, signed)
    return torch.round(torch.clamp(v / step, lo, hi))


def lsq_step_grad(v: torch.Tensor, step: float, bits: int, signed: bool) -> torch.Tensor:
    """LSQ's ``d v_hat / d s`` with the STE (Esser et al. 2019, Eq. 3): ``round(c) - c`` inside, the bound outside."""
    lo, hi = _bounds(bits, signed)
    c = v / step
    inside = torch.round(c) - c
    return torch.where(c <= lo, torch.full_like(c, lo), torch.where(c >= hi, torch.full_like(c, hi), inside))


def pact_alpha_grad(x: torch.Tensor, alpha: float, bits: int) -> torch.Tensor:
    """PACT's ``d y_q / d alpha``: 1 where the input is clipped (x >= alpha), else 0."""
    return (x >= alpha).to(x.dtype)


def dorefa_weight(w: torch.Tensor, bits: int) -> torch.Tensor:
    """DoReFa: ``2 quantize_b(tanh(w) / (2 max|tanh(w)|) + 1/2) - 1``, ``quantize_b(u) = round(u L) / L``."""
    levels = 2 ** bits - 1
    t = torch.tanh(w)
    unit = t / (2 * t.abs().max()) + 0.5
    return 2 * torch.round(unit * levels) / levels - 1


# Outside the range the forward output is the constant bound: x_hat does not move with x, so its true
# derivative there is 0; a 1 would push clipped inputs with a gradient the loss never responds to.
mask_reason = "b"
