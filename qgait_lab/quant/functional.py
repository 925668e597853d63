"""Differentiable building blocks of fake quantization.

Everything here is stateless. The stateful quantizers (LSQ, DoReFa, PACT) in
:mod:`qgait_lab.quant.quantizers` are thin wrappers around these functions.

Notation follows the paper (Sec. 3.1-3.2): a value ``x`` is divided by a step
``s``, clamped to ``[r1, r2]`` (written ``lo``/``hi`` below), rounded, and
multiplied back (Eqs. 2-3).  The round has no useful derivative, so the backward
pass substitutes either

* the straight-through estimator (STE, Eq. 4): slope 1 inside the clip range, or
* the slope of the paper's soft quantizer theta_k (Eqs. 6-7).
"""
from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

GradientMode = Literal["ste", "soft"]


def round_ste(x: Tensor) -> Tensor:
    """Round in the forward pass, identity in the backward pass (STE, Eq. 4)."""
    return x + (torch.round(x) - x).detach()


def grad_scale(x: Tensor, scale: float) -> Tensor:
    """Return ``x`` unchanged, but multiply the gradient flowing into it by ``scale``.

    LSQ uses this to damp the step-size gradient by ``1/sqrt(N * Q_P)``.
    """
    scaled = x * scale
    return (x - scaled).detach() + scaled


def _as_k(k: float | Tensor, like: Tensor) -> Tensor:
    return torch.as_tensor(k, dtype=like.dtype, device=like.device)


def soft_round(x: Tensor, k: float | Tensor) -> Tensor:
    """The paper's soft quantizer theta_k (Eq. 6), differentiable everywhere.

    ``theta_k(x) = floor(x) + tanh(k d) / (2 tanh(k/2)) + 1/2`` with
    ``d = x - floor(x) - 1/2``.  It passes through every integer
    (``theta_k(n) = n``), tends to ``round`` as ``k -> inf`` and to the identity
    as ``k -> 0``.  The paper requires ``k >= 1``; this function accepts any
    ``k > 0`` so that the limits can be explored.  Autograd through this
    function gives exactly :func:`soft_round_slope` (``floor`` has zero
    gradient).
    """
    k = _as_k(k, x)
    fl = torch.floor(x).detach()
    d = x - fl - 0.5
    return fl + 0.5 * torch.tanh(k * d) / torch.tanh(0.5 * k) + 0.5


def soft_round_slope(x: Tensor, k: float | Tensor) -> Tensor:
    """Analytic derivative of theta_k with respect to x (the slope used in Eq. 7).

    ``d theta_k / dx = k * sech^2(k d) / (2 tanh(k/2))``.  Its mean over any unit
    interval is exactly 1 (theta_k rises by one per unit), so the soft gradient
    redistributes, rather than shrinks, the STE's constant slope of 1: large
    near the rounding thresholds (``d = 0``), small near the integers.
    """
    k = _as_k(k, x)
    d = x - torch.floor(x) - 0.5
    sech = 1.0 / torch.cosh(k * d)
    return k * sech * sech / (2.0 * torch.tanh(0.5 * k))


class _RoundSoftGrad(torch.autograd.Function):
    """Hard round forward, theta_k' backward: Eq. 7 read literally."""

    @staticmethod
    def forward(ctx, x: Tensor, k: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, k)
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, k = ctx.saved_tensors
        return grad * soft_round_slope(x, k), None


def round_soft_grad(x: Tensor, k: float | Tensor) -> Tensor:
    """``round(x)`` in the forward pass, ``theta_k'(x)`` in the backward pass."""
    return _RoundSoftGrad.apply(x, _as_k(k, x))


def round_with(x: Tensor, gradient: GradientMode, k: float | Tensor | None = None,
               soft_forward: bool = False) -> Tensor:
    """Round ``x`` with the requested backward rule.

    * ``gradient="ste"``: STE (Eq. 4).
    * ``gradient="soft"``: theta_k' backward (Eq. 7); the forward value is the
      hard round unless ``soft_forward`` is set, in which case it is theta_k(x).
    """
    if gradient == "ste":
        return round_ste(x)
    if k is None:
        raise ValueError("gradient='soft' needs a value of k")
    if soft_forward:
        return soft_round(x, k)
    return round_soft_grad(x, k)


class _LsqFakeQuant(torch.autograd.Function):
    r"""LSQ fake quantization ``v_hat = s * round(clamp(v / s, lo, hi))`` in one node.

    Writing it as one autograd node (instead of a chain of ``detach`` tricks)
    saves only ``v`` and ``s`` for the backward pass, which matters because fake
    quantization is elementwise and memory-bound.

    Backward, with ``c = v/s`` and ``q = round(clamp(c))``:

    * ``dv_hat/dv = slope(c)`` if ``lo < c < hi`` else 0, where ``slope`` is 1
      (STE) or ``theta_k'(c)`` (soft).
    * ``dv_hat/ds``: inside the range ``v_hat = s * R(v/s)`` with the rounding
      surrogate ``R``, so ``dv_hat/ds = R(c) - c * R'(c)``.  Under STE this is
      LSQ's ``q - c`` (Esser et al. 2019, Eq. 3); under theta_k the slope
      ``R' = theta_k'`` replaces 1, giving ``q - c * theta_k'(c)``; with the
      soft forward ``R = theta_k`` and the first term becomes ``theta_k(c)``.
      Outside the range ``v_hat = s * lo`` (or ``s * hi``), so the derivative is
      the bound itself (theta_k(n) = n, so it is the same for every rule).

    The step gradient is multiplied by ``g`` (LSQ's gradient scale).
    """

    @staticmethod
    def forward(ctx, v: Tensor, s: Tensor, lo: float, hi: float, g: float,
                k: Tensor | None, soft_forward: bool) -> Tensor:  # type: ignore[override]
        c = v / s
        cc = torch.clamp(c, lo, hi)
        q = soft_round(cc, k) if soft_forward else torch.round(cc)
        ctx.save_for_backward(v, s, k if k is not None else torch.empty(0))
        ctx.lo, ctx.hi, ctx.g, ctx.use_k, ctx.soft_forward = lo, hi, g, k is not None, soft_forward
        return q * s

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        v, s, k = ctx.saved_tensors
        lo, hi = ctx.lo, ctx.hi
        c = v / s
        inside = (c > lo) & (c < hi)
        cc = torch.clamp(c, lo, hi)
        if ctx.use_k:
            slope = soft_round_slope(c, k)
            rounded = soft_round(cc, k) if ctx.soft_forward else torch.round(cc)
            ds_inside = rounded - c * slope
        else:
            slope = torch.ones_like(c)
            ds_inside = torch.round(cc) - c
        grad_v = torch.where(inside, grad * slope, torch.zeros_like(grad))
        ds = torch.where(inside, ds_inside, cc)
        # Under fp16 autocast v and grad are half precision: the step's gradient sums
        # millions of (loss-scaled) terms, which overflows a half-precision result.
        if s.dim() == 0:      # per-tensor: accumulate in float32 without a float32 copy
            grad_s = torch.sum(grad * ds, dtype=s.dtype) * ctx.g
        else:
            grad_s = (grad * ds).to(s.dtype).sum_to_size(s.shape) * ctx.g
        return grad_v, grad_s, None, None, None, None, None


def lsq_fake_quant(v: Tensor, step: Tensor, lo: float, hi: float, grad_scale_factor: float,
                   gradient: GradientMode = "ste", k: float | Tensor | None = None,
                   soft_forward: bool = False) -> Tensor:
    """LSQ fake quantization with a learned step (Esser et al. 2019; paper Eqs. 2-3, 7).

    ``step`` broadcasts against ``v`` (a scalar, or ``[C, 1, 1, 1]`` per channel).
    ``lo``/``hi`` are the integer clip bounds (``-Q_N`` and ``Q_P``).
    """
    if gradient == "soft":
        if k is None:
            raise ValueError("gradient='soft' needs a value of k")
        k_t = _as_k(k, v)
    else:
        k_t = None
        soft_forward = False
    return _LsqFakeQuant.apply(v, step, float(lo), float(hi), float(grad_scale_factor), k_t,
                               bool(soft_forward))


def quantize_unit_interval(x: Tensor, bits: int, gradient: GradientMode = "ste",
                           k: float | Tensor | None = None, soft_forward: bool = False) -> Tensor:
    """Quantize values already in ``[0, 1]`` onto ``2**bits - 1`` uniform steps (DoReFa's quantize_k)."""
    levels = float(2 ** bits - 1)
    return round_with(x * levels, gradient, k, soft_forward) / levels


def lsq_bounds(bits: int, signed: bool) -> tuple[int, int]:
    """Integer clip range ``(-Q_N, Q_P)`` for ``bits`` (paper Sec. 3.1)."""
    if signed:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2 ** bits - 1


def lsq_grad_scale(num_elements: int, q_p: int) -> float:
    """LSQ's step-gradient scale ``g = 1 / sqrt(N * Q_P)``."""
    return 1.0 / math.sqrt(max(num_elements, 1) * max(q_p, 1))
