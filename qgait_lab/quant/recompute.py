"""Keep a quantized layer's input for the backward pass as the float it came from, not as a copy.

A float convolution saves its input for the weight gradient, and that input is
usually a ReLU's output, which the ReLU saves anyway: one tensor, kept once.  A
quantized convolution saves its *fake-quantized* input instead, a new tensor of
the same size, while the quantizer itself keeps the float input for its own
backward (Eqs. 4 and 7 need ``v / s``).  So every quantized layer holds one
activation more than its float counterpart; on GaitBase that is the difference
between 1.0x and about 1.6x the float step's saved memory.

:func:`recomputed_input` removes the copy.  While the layer's operation runs,
autograd's saved-tensor hooks replace the saved quantized input with a note
"recompute from ``x``", and the backward pass recomputes it with the same
quantizer, the same step and the same kernel: bit for bit the values the
forward used (elementwise arithmetic is deterministic), so every gradient is
exactly what it was.  The cost is one elementwise pass per layer in the
backward pass.  ``x`` itself is kept alive by the quantizer's own backward, so
holding it costs nothing.

Under fp16 autocast the layer saves its input's half-precision cast rather
than the quantized float32 tensor; the recomputation casts the same way.
Inside ``torch.compile`` the compiler decides what to save, so nothing is
changed there.
"""
from __future__ import annotations

import contextlib
from typing import Callable, ContextManager

import torch
from torch import Tensor


def recomputed_input(x: Tensor, quantized: Tensor, quantize: Callable[[Tensor], Tensor]
                     ) -> ContextManager:
    """A context in which saving ``quantized`` (``quantize(x)``) saves a recipe instead.

    Use it around the operation that consumes ``quantized``::

        xq = quantizer(x)
        with recomputed_input(x, xq, quantizer):
            y = conv(xq, w)

    Outside training (no gradient needed) and under ``torch.compile`` it is a
    no-op context.
    """
    if (not torch.is_grad_enabled() or not quantized.requires_grad
            or torch.compiler.is_compiling() or quantized.data_ptr() == x.data_ptr()):
        return contextlib.nullcontext()
    source = x.detach()
    target = (quantized.data_ptr(), tuple(quantized.shape))

    def pack(t: Tensor):
        if tuple(t.shape) == target[1] and (t.data_ptr() == target[0] or t.dtype != quantized.dtype):
            return _Recipe(source, quantize, t.dtype, t.stride())
        return t

    return torch.autograd.graph.saved_tensors_hooks(pack, _unpack)


class _Recipe:
    """How to rebuild a saved quantized input: the float source, the quantizer, the dtype and strides."""

    __slots__ = ("source", "quantize", "dtype", "stride")

    def __init__(self, source: Tensor, quantize: Callable[[Tensor], Tensor], dtype: torch.dtype,
                 stride: tuple[int, ...]) -> None:
        self.source, self.quantize, self.dtype, self.stride = source, quantize, dtype, stride


def _unpack(saved):
    if not isinstance(saved, _Recipe):
        return saved
    with torch.no_grad():
        values = saved.quantize(saved.source)
    if values.dtype != saved.dtype:
        values = values.to(saved.dtype)
    if values.stride() != saved.stride:
        values = torch.empty_strided(values.shape, saved.stride, dtype=values.dtype,
                                     device=values.device).copy_(values)
    return values
