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

from . import kernels as K
from .soft_round import as_k, soft_round, soft_round_slope

__all__ = ["round_ste", "grad_scale", "soft_round", "soft_round_slope", "round_soft_grad",
           "round_with", "lsq_fake_quant", "unit_fake_quant", "pact_fake_quant",
           "lsq_bounds", "lsq_grad_scale"]

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
    return _RoundSoftGrad.apply(x, as_k(k, x))


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
    quantization is elementwise and memory-bound; the arithmetic itself is in
    :mod:`.kernels`, run eagerly or as one fused kernel (``fused``).

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
                k: Tensor | None, soft_forward: bool, fused: bool) -> Tensor:  # type: ignore[override]
        lo_t, hi_t = K.scalar(lo, v), K.scalar(hi, v)
        if soft_forward:
            out = K.run(K.lsq_forward_soft, fused, v, s, lo_t, hi_t, k)
        else:
            out = K.run(K.lsq_forward, fused, v, s, lo_t, hi_t)
        ctx.save_for_backward(v, s, lo_t, hi_t, k if k is not None else torch.empty(0))
        ctx.g, ctx.use_k, ctx.soft_forward, ctx.fused = g, k is not None, soft_forward, fused
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        v, s, lo, hi, k = ctx.saved_tensors
        if ctx.use_k:
            grad_v, grad_s = K.run(K.lsq_backward_soft, ctx.fused, v, s, grad, lo, hi, k,
                                   ctx.soft_forward)
        else:
            grad_v, grad_s = K.run(K.lsq_backward, ctx.fused, v, s, grad, lo, hi)
        return grad_v, grad_s * ctx.g, None, None, None, None, None, None


def lsq_fake_quant(v: Tensor, step: Tensor, lo: float, hi: float, grad_scale_factor: float,
                   gradient: GradientMode = "ste", k: float | Tensor | None = None,
                   soft_forward: bool = False, fused: bool = False) -> Tensor:
    """LSQ fake quantization with a learned step (Esser et al. 2019; paper Eqs. 2-3, 7).

    ``step`` broadcasts against ``v`` (a scalar, or ``[C, 1, 1, 1]`` per channel).
    ``lo``/``hi`` are the integer clip bounds (``-Q_N`` and ``Q_P``).  ``fused``
    runs the arithmetic as compiled kernels (:mod:`.kernels`).
    """
    k_t = _k_for(gradient, k, v)
    return _LsqFakeQuant.apply(v, step, float(lo), float(hi), float(grad_scale_factor), k_t,
                               bool(soft_forward and k_t is not None), bool(fused))


class _UnitFakeQuant(torch.autograd.Function):
    """``round(clamp(x, 0, 1) * L) / L`` in one node, with the STE or theta_k' backward."""

    @staticmethod
    def forward(ctx, x: Tensor, levels: float, k: Tensor | None, soft_forward: bool,
                fused: bool) -> Tensor:  # type: ignore[override]
        levels_t = K.scalar(levels, x)
        if soft_forward:
            out = K.run(K.unit_forward_soft, fused, x, levels_t, k)
        else:
            out = K.run(K.unit_forward, fused, x, levels_t)
        ctx.save_for_backward(x, levels_t, k if k is not None else torch.empty(0))
        ctx.use_k, ctx.fused = k is not None, fused
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, levels, k = ctx.saved_tensors
        if ctx.use_k:
            grad_x = K.run(K.unit_backward_soft, ctx.fused, x, grad, levels, k)
        else:
            grad_x = K.run(K.unit_backward, ctx.fused, x, grad)
        return grad_x, None, None, None, None


def unit_fake_quant(x: Tensor, bits: int, gradient: GradientMode = "ste",
                    k: float | Tensor | None = None, soft_forward: bool = False,
                    fused: bool = False) -> Tensor:
    """Clip ``x`` to ``[0, 1]`` and quantize onto ``2**bits - 1`` uniform steps (DoReFa's quantize_k).

    The clip passes the gradient on ``[0, 1]`` and blocks it outside (as
    ``torch.clamp`` does); the round uses the STE (Eq. 4) or theta_k' (Eq. 7).
    """
    k_t = _k_for(gradient, k, x)
    return _UnitFakeQuant.apply(x, float(2 ** bits - 1), k_t, bool(soft_forward and k_t is not None),
                                bool(fused))


class _PactFakeQuant(torch.autograd.Function):
    """PACT's ``round(clamp(x, 0, alpha) / scale) * scale``, ``scale = alpha / L``, in one node.

    ``alpha`` receives PACT's gradient, ``sum(grad * [x >= alpha])``, accumulated in
    alpha's float32 (under fp16 autocast a half-precision sum over a whole
    activation overflows).  ``x`` receives the gradient inside ``(0, alpha)``.
    """

    @staticmethod
    def forward(ctx, x: Tensor, alpha: Tensor, levels: float, k: Tensor | None,
                soft_forward: bool, fused: bool) -> Tensor:  # type: ignore[override]
        levels_t = K.scalar(levels, x)
        a = alpha.detach()
        if soft_forward:
            out = K.run(K.pact_forward_soft, fused, x, a, levels_t, k)
        else:
            out = K.run(K.pact_forward, fused, x, a, levels_t)
        ctx.save_for_backward(x, a, levels_t, k if k is not None else torch.empty(0))
        ctx.use_k, ctx.fused = k is not None, fused
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, a, levels, k = ctx.saved_tensors
        if ctx.use_k:
            grad_x, grad_a = K.run(K.pact_backward_soft, ctx.fused, x, a, grad, levels, k)
        else:
            grad_x, grad_a = K.run(K.pact_backward, ctx.fused, x, a, grad)
        return grad_x, grad_a, None, None, None, None


def pact_fake_quant(x: Tensor, alpha: Tensor, bits: int, gradient: GradientMode = "ste",
                    k: float | Tensor | None = None, soft_forward: bool = False,
                    fused: bool = False) -> Tensor:
    """PACT activation quantization (Choi et al. 2018) with a learned clip ``alpha`` (0-d)."""
    k_t = _k_for(gradient, k, x)
    return _PactFakeQuant.apply(x, alpha, float(2 ** bits - 1), k_t,
                                bool(soft_forward and k_t is not None), bool(fused))


def _k_for(gradient: GradientMode, k: float | Tensor | None, like: Tensor) -> Tensor | None:
    if gradient == "ste":
        return None
    if k is None:
        raise ValueError("gradient='soft' needs a value of k")
    return as_k(k, like)


def lsq_bounds(bits: int, signed: bool) -> tuple[int, int]:
    """Integer clip range ``(-Q_N, Q_P)`` for ``bits`` (paper Sec. 3.1)."""
    if signed:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2 ** bits - 1


def lsq_grad_scale(num_elements: int, q_p: int) -> float:
    """LSQ's step-gradient scale ``g = 1 / sqrt(N * Q_P)``."""
    return 1.0 / math.sqrt(max(num_elements, 1) * max(q_p, 1))
