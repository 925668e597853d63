"""The elementwise arithmetic of fake quantization, run eagerly or fused.

A fake quantizer is a short chain of elementwise operations: divide by the
step, clamp, round, multiply back (Eqs. 2-3), and in the backward pass a few
masks and the step's gradient.  Eager PyTorch runs every operation as its own
pass over memory, so on a CPU the quantizers, not the convolutions, can decide
the cost of a QAT step: the LSQ backward of one 640x16x32x22 activation made
about 25 passes and took 80 ms on a 2-core machine, against 6 ms as one fused
loop (``benchmarks/bench_quant.py`` measures the whole training step).

Every kernel below is a pure function of tensors.  Clip bounds and level counts
arrive as 0-d tensors rather than Python numbers, so that 4-bit and 8-bit
layers share one compiled kernel instead of each triggering a recompilation.
:func:`run` calls a kernel either eagerly or through ``torch.compile``
(Inductor: C++/OpenMP on the CPU, Triton on CUDA) with dynamic shapes; Inductor
keeps what it compiled in its on-disk cache, so later processes start fast.

If compiling fails (no C++ compiler, an unsupported platform) a warning says
why and that kernel runs eagerly from then on.  Inside a model that is itself
being compiled (``runtime.compile``) the eager function is traced instead, so
the model's own graph fuses it with its neighbours.  Fused and eager results
agree up to the order of the float additions in the step's gradient.
"""
from __future__ import annotations

import warnings
from typing import Callable

import torch
from torch import Tensor

from .soft_round import soft_round, soft_round_slope

_compiled: dict[Callable, Callable] = {}
_failed: set[Callable] = set()


def run(kernel: Callable, fused: bool, *args):
    """``kernel(*args)``, through its compiled version when ``fused``.

    ``args[0]`` is the tensor being quantized; other tensors of its shape are
    elementwise partners (the incoming gradient), 0-d tensors are scalars and a
    ``[C, 1, ..., 1]`` tensor is a per-channel step.
    """
    if not fused or kernel in _failed or torch.compiler.is_compiling():
        return kernel(*args)
    compiled = _compiled.get(kernel)
    if compiled is None:
        compiled = _compiled[kernel] = torch.compile(kernel, dynamic=True)
    flat_args, restore = _flatten(args)
    try:
        out = compiled(*flat_args)
    except Exception as err:  # noqa: BLE001 - any compiler failure means "run eagerly"
        _failed.add(kernel)
        warnings.warn(f"the fused fake-quantization kernel {kernel.__name__} could not be "
                      f"compiled ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''});"
                      " it runs eagerly from now on (set runtime.fuse_quantizers=false to "
                      "silence this)", RuntimeWarning, stacklevel=2)
        return kernel(*args)
    return tuple(map(restore, out)) if isinstance(out, tuple) else restore(out)


def _flatten(args: tuple) -> tuple[list, Callable[[Tensor], Tensor]]:
    """Elementwise arguments as 1-D (or ``[C, n]`` per channel) views in memory order.

    The compiler guards a kernel on its inputs' rank, strides and size-1 dims, so
    every layer (channels_last activations, contiguous weights, 1x1 and 3x3
    kernels) would compile a kernel of its own.  Viewed flat, all of them share
    one kernel per dtype; the result is viewed back to the input's shape and
    strides.  Arguments that are not laid out densely are passed unchanged.
    """
    x = args[0]
    # Parameters are guarded on their exact shape and type: pass plain tensors.
    plain = [a.detach() if isinstance(a, Tensor) else a for a in args]
    identity = lambda t: t  # noqa: E731
    if x.dim() <= 1:
        return plain, identity
    order = sorted(range(x.dim()), key=lambda d: (-x.stride(d), d))
    permuted = plain[0].permute(order)
    if not permuted.is_contiguous():
        return plain, identity
    per_channel = [a for a in plain[1:] if isinstance(a, Tensor) and 0 < a.numel() < x.numel()
                   and a.shape == (x.shape[0],) + (1,) * (x.dim() - 1)]
    if per_channel and order[0] != 0:
        return plain, identity
    flat_shape = (x.shape[0], x.numel() // x.shape[0]) if per_channel else (x.numel(),)
    out = []
    for a in plain:
        if isinstance(a, Tensor) and a.shape == x.shape:
            a = _alias(a.permute(order).contiguous(), flat_shape)
        elif isinstance(a, Tensor) and per_channel and a.shape == per_channel[0].shape:
            a = _alias(a.contiguous(), (x.shape[0], 1))
        out.append(a)
    step_shape = per_channel[0].shape if per_channel else None
    shape, strides = x.shape, x.stride()

    def restore(t: Tensor) -> Tensor:
        # x's own strides, size-1 dimensions included: a permuted view would give those
        # other strides, and a [c, 1, k, k] weight would lose its channels_last layout
        # (and with it the layout the convolution picks for its output).
        if t.numel() == x.numel() and t.dim() == len(flat_shape):
            return t.as_strided(shape, strides)
        if step_shape is not None and t.shape == (x.shape[0], 1):
            return t.view(step_shape)
        return t

    return out, restore


def _alias(t: Tensor, shape: tuple[int, ...]) -> Tensor:
    """A contiguous ``t`` reshaped, sharing its memory but not recorded as a view.

    The compiler guards a view on the shape and strides of its base tensor, which
    would bring back one kernel per layer; an alias made with ``set_`` has no base.
    """
    strides = [1] * len(shape)
    for i in range(len(shape) - 2, -1, -1):
        strides[i] = strides[i + 1] * shape[i + 1]
    return t.new_empty(0).set_(t.untyped_storage(), t.storage_offset(), shape, strides)


def scalar(value: float, like: Tensor) -> Tensor:
    """A 0-d float32 tensor on ``like``'s device (a fill, never a host-to-device copy)."""
    return torch.full((), float(value), dtype=torch.float32, device=like.device)


def _sum_like(x: Tensor, target: Tensor) -> Tensor:
    """Sum ``x`` down to ``target``'s shape, accumulating in ``target``'s dtype.

    Under fp16 autocast ``x`` is half precision and loss-scaled; a half-precision
    sum over a whole activation overflows, so the sum is taken in the
    parameter's float32.
    """
    if target.dim() == 0:
        return torch.sum(x, dtype=target.dtype)
    return x.to(target.dtype).sum_to_size(target.shape)


# -- LSQ (Eqs. 2-3 with a learned step) ------------------------------------------

def lsq_forward(v: Tensor, s: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """``s * round(clamp(v / s, lo, hi))``."""
    return torch.round(torch.clamp(v / s, lo, hi)) * s


def lsq_forward_soft(v: Tensor, s: Tensor, lo: Tensor, hi: Tensor, k: Tensor) -> Tensor:
    """``s * theta_k(clamp(v / s, lo, hi))``: the soft quantizer in the forward pass too."""
    return soft_round(torch.clamp(v / s, lo, hi), k) * s


def lsq_backward(v: Tensor, s: Tensor, grad: Tensor, lo: Tensor, hi: Tensor
                 ) -> tuple[Tensor, Tensor]:
    """STE gradients ``(dL/dv, dL/ds before LSQ's scale g)``; see ``functional._LsqFakeQuant``."""
    c = v / s
    inside = (c > lo) & (c < hi)
    clipped = torch.clamp(c, lo, hi)
    grad_v = torch.where(inside, grad, 0.0)
    ds = torch.where(inside, torch.round(clipped) - c, clipped)
    return grad_v, _sum_like(grad * ds, s)


def lsq_backward_soft(v: Tensor, s: Tensor, grad: Tensor, lo: Tensor, hi: Tensor, k: Tensor,
                      soft_forward: bool) -> tuple[Tensor, Tensor]:
    """theta_k' gradients (Eq. 7) ``(dL/dv, dL/ds before LSQ's scale g)``."""
    c = v / s
    inside = (c > lo) & (c < hi)
    clipped = torch.clamp(c, lo, hi)
    slope = soft_round_slope(c, k)
    rounded = soft_round(clipped, k) if soft_forward else torch.round(clipped)
    grad_v = torch.where(inside, grad * slope, 0.0)
    ds = torch.where(inside, rounded - c * slope, clipped)
    return grad_v, _sum_like(grad * ds, s)


# -- values in [0, 1] onto `levels` steps (DoReFa) ------------------------------------

def unit_forward(x: Tensor, levels: Tensor) -> Tensor:
    """``round(clamp(x, 0, 1) * L) / L`` (DoReFa's quantize_k after its clip)."""
    return torch.round(torch.clamp(x, 0.0, 1.0) * levels) / levels


def unit_forward_soft(x: Tensor, levels: Tensor, k: Tensor) -> Tensor:
    return soft_round(torch.clamp(x, 0.0, 1.0) * levels, k) / levels


def unit_backward(x: Tensor, grad: Tensor) -> Tensor:
    """STE through the round; the clip passes the gradient on ``[0, 1]`` (as ``torch.clamp`` does)."""
    return torch.where((x >= 0.0) & (x <= 1.0), grad, 0.0)


def unit_backward_soft(x: Tensor, grad: Tensor, levels: Tensor, k: Tensor) -> Tensor:
    slope = soft_round_slope(torch.clamp(x, 0.0, 1.0) * levels, k)
    return torch.where((x >= 0.0) & (x <= 1.0), grad * slope, 0.0)


# -- PACT: clip at a learned alpha, quantize [0, alpha] ------------------------------

def pact_forward(x: Tensor, alpha: Tensor, levels: Tensor) -> Tensor:
    """``round(clamp(x, 0, alpha) / scale) * scale`` with ``scale = alpha / L``."""
    scale = alpha / levels
    return torch.round(torch.minimum(torch.relu(x), alpha) / scale) * scale


def pact_forward_soft(x: Tensor, alpha: Tensor, levels: Tensor, k: Tensor) -> Tensor:
    scale = alpha / levels
    return soft_round(torch.minimum(torch.relu(x), alpha) / scale, k) * scale


def pact_backward(x: Tensor, alpha: Tensor, grad: Tensor) -> tuple[Tensor, Tensor]:
    """STE gradients ``(dL/dx, dL/dalpha)``: x inside ``(0, alpha)``; alpha where ``x >= alpha``."""
    grad_x = torch.where((x > 0.0) & (x < alpha), grad, 0.0)
    return grad_x, _sum_like(torch.where(x >= alpha, grad, 0.0), alpha)


def pact_backward_soft(x: Tensor, alpha: Tensor, grad: Tensor, levels: Tensor, k: Tensor
                       ) -> tuple[Tensor, Tensor]:
    slope = soft_round_slope(torch.minimum(torch.relu(x), alpha) / (alpha / levels), k)
    grad_x = torch.where((x > 0.0) & (x < alpha), grad * slope, 0.0)
    return grad_x, _sum_like(torch.where(x >= alpha, grad, 0.0), alpha)
