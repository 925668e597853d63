"""Quantized drop-in layers: QConv2d and QLinear.

Each keeps the float layer's parameters and names (``weight``, ``bias``) and adds
two child quantizers: ``weight_quantizer`` for the weights and
``act_quantizer`` for the layer's input.  Either may be ``None`` (not
quantized), which the BitOPs counter reads as 32 bits.
"""
from __future__ import annotations

import contextlib

import torch.nn.functional as F
from torch import Tensor, nn

from .quantizers import Quantizer
from .recompute import recomputed_input

FULL_PRECISION_BITS = 32


def _bits(q: Quantizer | None) -> int:
    return q.bits if q is not None else FULL_PRECISION_BITS


class QuantizedLayer:
    """Mixin: the quantizer slots shared by every quantized layer.

    A custom layer (GaitBase's ``SeparateFCs``, say) becomes quantizable by
    inheriting this mixin, calling ``attach_quantizers(None, None)`` in its
    constructor, naming its weight in ``quant_weight_name`` and using
    ``quantized_input`` / ``quantized_weight`` in its forward pass.
    """

    quant_weight_name = "weight"
    #: Save the float input for the backward pass and recompute its quantized
    #: copy there (:mod:`.recompute`): same gradients, one activation less per layer.
    recompute_input = True

    weight_quantizer: Quantizer | None
    act_quantizer: Quantizer | None

    def attach_quantizers(self, weight_quantizer: Quantizer | None,
                          act_quantizer: Quantizer | None) -> None:
        self.weight_quantizer = weight_quantizer
        self.act_quantizer = act_quantizer

    @property
    def w_bits(self) -> int:
        return _bits(self.weight_quantizer)

    @property
    def a_bits(self) -> int:
        return _bits(self.act_quantizer)

    def quantized_weight(self, weight: Tensor) -> Tensor:
        return weight if self.weight_quantizer is None else self.weight_quantizer(weight)

    def quantized_input(self, x: Tensor) -> Tensor:
        return x if self.act_quantizer is None else self.act_quantizer(x)

    def input_kept_as_float(self, x: Tensor, quantized: Tensor):
        """Context for the operation on ``quantized``: the backward recomputes it from ``x``."""
        if self.act_quantizer is None or not self.recompute_input:
            return contextlib.nullcontext()
        return recomputed_input(x, quantized, self.act_quantizer)


class QConv2d(QuantizedLayer, nn.Conv2d):
    """``nn.Conv2d`` whose weight and input pass through fake quantizers."""

    def __init__(self, *args, weight_quantizer: Quantizer | None = None,
                 act_quantizer: Quantizer | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.attach_quantizers(weight_quantizer, act_quantizer)

    @classmethod
    def from_float(cls, conv: nn.Conv2d, weight_quantizer: Quantizer | None,
                   act_quantizer: Quantizer | None) -> "QConv2d":
        q = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                bias=conv.bias is not None, padding_mode=conv.padding_mode,
                device=conv.weight.device, dtype=conv.weight.dtype)
        q.weight = conv.weight
        q.bias = conv.bias
        q.train(conv.training)
        q.attach_quantizers(weight_quantizer, act_quantizer)
        return q

    def forward(self, x: Tensor) -> Tensor:
        xq = self.quantized_input(x)
        w = self.quantized_weight(self.weight)
        with self.input_kept_as_float(x, xq):
            return self._conv_forward(xq, w, self.bias)


class QLinear(QuantizedLayer, nn.Linear):
    """``nn.Linear`` whose weight and input pass through fake quantizers."""

    def __init__(self, *args, weight_quantizer: Quantizer | None = None,
                 act_quantizer: Quantizer | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.attach_quantizers(weight_quantizer, act_quantizer)

    @classmethod
    def from_float(cls, linear: nn.Linear, weight_quantizer: Quantizer | None,
                   act_quantizer: Quantizer | None) -> "QLinear":
        q = cls(linear.in_features, linear.out_features, bias=linear.bias is not None,
                device=linear.weight.device, dtype=linear.weight.dtype)
        q.weight = linear.weight
        q.bias = linear.bias
        q.train(linear.training)
        q.attach_quantizers(weight_quantizer, act_quantizer)
        return q

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(self.quantized_input(x), self.quantized_weight(self.weight), self.bias)
