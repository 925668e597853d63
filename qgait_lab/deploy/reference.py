"""The integer-only forward pass of an :class:`~qgait_lab.deploy.IntegerGaitBase`.

What runs in integers, and what does not:

* **Convolutions and the separate FCs**: int8/uint8 codes, products summed in
  an int32 accumulator (checked: an accumulator that would leave int32 raises
  ``OverflowError`` naming the layer).  The sums are computed by a float64
  convolution of the integer codes: every product and partial sum is an
  integer far below 2**53, so float64 adds them without rounding and the
  result equals an int32 accumulator's bit for bit (``tests/test_deploy.py``
  checks this against an explicit int64 im2col product).
* **BatchNorm**: folded into the per-channel fixed-point multiplier that
  requantizes the accumulator, and its shift into that requantization's
  offset, an int64 in the product's own fixed-point units (:mod:`.fixed_point`).
  ``bias="onnx"`` computes what the exported ONNX graph computes instead:
  where onnxruntime runs the convolution as an integer kernel (every block's
  conv1, the one convolution whose output goes straight to a quantizer) the
  shift is an int32 bias, of units made finer by scaling the codes into the
  8-bit containers' spare range
  (:meth:`~qgait_lab.deploy.integer_model.IntegerConv.int32_bias`).
* **ReLU**: a clamp at 0 of integers; before a quantizer it is the lower end of
  the code range.
* **Residual adds**: GaitBase adds the block's output to its input in float.
  Here both live on a fine fixed-point grid, ``2**-24`` of the smallest step
  of the quantizers that read the sum, and are added as int64 integers; the
  sum reaches each reader's grid by one more fixed-point requantization, whose
  mantissa is as wide as int64 allows for the values at hand.  A code moves
  only when a value lies within about ``2**-24`` of a step from a rounding
  boundary.  (At ``2**-16`` such near-ties were the first flips of a cascade
  that reached 0.01 % of a 4-bit model's codes; float32, in which the
  fake-quantized model computes, has the same effect at its own scale.)
* **Temporal max pooling and the horizontal pyramid**: max and sum of integers;
  the pyramid's mean (sum / count) is folded into the FCs' input requantization.
* **Float at the two ends only**: the input silhouettes are quantized by the
  first layer's quantizer as training did it (``round(clamp(x / s))``), and
  the FCs' int32 accumulators are multiplied once by ``s_x s_w`` to give the
  embeddings in the fake-quantized model's units.  (Retrieval could use the
  accumulators directly: a Euclidean ranking does not change under one
  positive scale.)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from .fixed_point import MANTISSA_BITS, FixedPointMultiplier, quantize_multiplier, requantize
from .grids import Grid
from .integer_model import IntegerConv, IntegerGaitBase

__all__ = ["IntegerOutputs", "integer_forward", "conv_codes", "STREAM_FRACTION_BITS"]

STREAM_FRACTION_BITS = 24
INT32 = 2 ** 31


@dataclass
class IntegerOutputs:
    """``embeddings`` float32 ``[n, c, p]``; ``codes``: the int64 input codes of every quantized layer."""

    embeddings: Tensor
    accumulators: Tensor
    codes: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class _Stream:
    """A real-valued tensor held as int64 integers of ``unit`` (the residual path)."""

    values: Tensor
    unit: float


BIAS_MODES = ("exact", "onnx")


def _accumulate(codes: Tensor, conv: IntegerConv, int32_bias: bool = False) -> tuple[Tensor, Tensor]:
    """``(accumulator, unit)``: the int32 sum of code products (as int64) and the real value of one unit.

    With ``int32_bias`` the operands are ``headroom`` and ``input_headroom``
    times larger codes (the same values) and the BN shift is added as an int32
    bias, as the exported graph's integer kernel computes it.
    """
    hw, hx = (conv.headroom, conv.input_headroom) if int32_bias else (1, 1)
    acc = F.conv2d(codes.double() * hx, conv.folded_codes.double() * hw, stride=conv.stride,
                   padding=conv.padding)
    acc = torch.round(acc).to(torch.int64)
    unit = conv.accumulator_scale / (hw * hx)
    if int32_bias:
        bias, unit = conv.int32_bias()
        acc = acc + bias.view(1, -1, 1, 1)
    if int(acc.abs().max()) >= INT32:
        raise OverflowError(f"layer {conv.name}: the accumulator leaves int32")
    return acc, unit


def _requantize_conv(codes: Tensor, conv: IntegerConv, target_step: float, int32_bias: bool = False) -> Tensor:
    """``conv`` on ``codes``, onto a grid or stream of step ``target_step``: ``round(acc M_c + shift_c / step)``."""
    acc, unit = _accumulate(codes, conv, int32_bias)
    multipliers = [quantize_multiplier(float(r)) for r in unit / target_step]
    offsets = None if int32_bias else conv.bn_shift / target_step
    return requantize(acc, multipliers, offsets=offsets)


def _clamp(values: Tensor, grid: Grid, relu: bool = False) -> Tensor:
    return values.clamp(max(grid.lo, 0) if relu else grid.lo, grid.hi)


def conv_codes(conv: IntegerConv, codes: Tensor, out_grid: Grid, *, int32_bias: bool = False) -> Tensor:
    """One convolution, its BatchNorm and ReLU in integers: input codes to the next layer's codes.

    The step of a block's conv1 (Jacob et al. 2018): an int32 sum of code
    products, then a fixed-point requantization onto ``out_grid``; with
    ``int32_bias`` the BN shift is an int32 bias, as an integer kernel adds it.
    """
    return _clamp(_requantize_conv(codes, conv, out_grid.scale, int32_bias), out_grid, relu=True)


def _stream_unit(*grids: Grid) -> float:
    return min(g.scale for g in grids) / 2 ** STREAM_FRACTION_BITS


def _fitted(m: float, values: Tensor) -> FixedPointMultiplier:
    """``m`` with the widest mantissa (up to 31 bits) whose product with ``values`` stays in int64."""
    biggest = int(values.abs().max()) if values.numel() else 0
    return quantize_multiplier(m, bits=max(8, min(MANTISSA_BITS, 61 - biggest.bit_length())))


def _rescale(stream: _Stream, unit: float) -> _Stream:
    if stream.unit == unit:
        return stream
    return _Stream(requantize(stream.values, _fitted(stream.unit / unit, stream.values)), unit)


def _stream_codes(stream: _Stream, grid: Grid) -> Tensor:
    return _clamp(requantize(stream.values, _fitted(stream.unit / grid.scale, stream.values)), grid)


def _readers(model: IntegerGaitBase, index: int) -> list[Grid]:
    """Grids of the quantizers that read block ``index``'s input (``len(blocks)``: the FCs)."""
    if index == len(model.blocks):
        return [model.fc.input_grid]
    block = model.blocks[index]
    return [c.input_grid for c in (block.conv1, block.downsample) if c is not None]


@torch.no_grad()
def integer_forward(model: IntegerGaitBase, sils: Tensor, *, bias: str = "exact") -> IntegerOutputs:
    """Embed silhouettes ``[n, frames, h, w]`` (floats in [0, 1], as the model was trained on).

    ``bias``: ``"exact"`` (the folded BatchNorm shift enters every
    requantization as a fixed-point offset; the default) or ``"onnx"`` (as the
    exported graph computes it: an int32 bias where onnxruntime runs an integer
    kernel, see the module docstring).
    """
    if sils.dim() != 4:
        raise ValueError(f"integer_forward expects silhouettes [n, frames, h, w], got {tuple(sils.shape)}")
    if bias not in BIAS_MODES:
        raise ValueError(f"bias must be one of {BIAS_MODES}, got {bias!r}")
    n, frames, h, w = sils.shape
    fused = bias == "onnx"
    codes: dict[str, Tensor] = {}

    stem = model.stem
    x = stem.input_grid.quantize(sils.reshape(n * frames, 1, h, w).float()).to(torch.int64)
    codes[stem.name] = x
    unit = _stream_unit(*_readers(model, 0))
    stream = _Stream(_requantize_conv(x, stem, unit).clamp(min=0), unit)

    for index, block in enumerate(model.blocks):
        out_unit = _stream_unit(*_readers(model, index + 1))
        a = _stream_codes(stream, block.conv1.input_grid)
        codes[block.conv1.name] = a
        b = conv_codes(block.conv1, a, block.conv2.input_grid, int32_bias=fused)
        codes[block.conv2.name] = b
        main = _requantize_conv(b, block.conv2, out_unit)
        if block.downsample is not None:
            d = _stream_codes(stream, block.downsample.input_grid)
            codes[block.downsample.name] = d
            identity = _requantize_conv(d, block.downsample, out_unit)
        else:
            identity = _rescale(stream, out_unit).values
        stream = _Stream((main + identity).clamp(min=0), out_unit)

    fc = model.fc
    maps = stream.values
    c, fh, fw = maps.shape[1:]
    pooled = maps.reshape(n, frames, c, fh, fw).amax(dim=1)                 # temporal max
    strips = pooled.reshape(n, c, model.parts, -1)                          # horizontal pyramid
    per_strip = strips.shape[-1]
    total = strips.sum(-1) + per_strip * strips.amax(-1)                    # per_strip * (mean + max)
    m = _fitted(stream.unit / (per_strip * fc.input_grid.scale), total)
    z = _clamp(requantize(total, m), fc.input_grid)                         # [n, c, p]
    codes[fc.name] = z
    acc = torch.einsum("ncp,pco->nop", z.double(), fc.codes.double())
    acc = torch.round(acc).to(torch.int64)
    if int(acc.abs().max()) >= INT32:
        raise OverflowError(f"layer {fc.name}: the accumulator leaves int32")
    scale = fc.output_scale
    scale = scale.view(1, 1, -1) if scale.dim() else scale
    return IntegerOutputs((acc.double() * scale).float(), acc, codes)
