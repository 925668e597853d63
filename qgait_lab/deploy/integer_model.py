"""A trained fake-quantized GaitBase as integers: weight codes, activation grids and folded BatchNorm.

:func:`build_integer_model` reads a fake-quantized GaitBase (LSQ or QGait at
2-8 bits; DoReFa and PACT where their grids fit 8 bits) and returns an
:class:`IntegerGaitBase`: for every quantized convolution and the separate FCs,

* the int8 weight codes training used, and their step (per tensor, or per
  output channel with LSQ's ``per_channel``);
* the grid of its input activations (step, code range; zero point 0);
* the BatchNorm that follows it, folded into a per-channel scale and shift.

Nothing is re-quantized: the codes are read off the fake quantizers, so the
integer model is the trained model, not an approximation fitted afterwards.
BatchNorm folding keeps every weight code (Sec. "Folding" below).

Folding
-------
A convolution with weight step ``s_w`` and input step ``s_x``, followed by
BatchNorm ``gamma (z - mu) / sigma + beta``, computes in real numbers

    y_c = acc_c * s_x * s_w * gamma_c / sigma_c + (beta_c - gamma_c mu_c / sigma_c)

with ``acc_c`` the int32 sum of code products.  The per-channel factor joins
the requantization multiplier and the shift becomes an int32 bias in units of
``s_x s_w gamma_c / sigma_c``.  Where ``gamma_c < 0`` the channel's codes are
negated so that every scale is positive (ONNX wants positive scales): the
values are unchanged, and a 4-bit code -8 becomes +8, which the int8
container holds but a packed nibble would not (the packed file stores the
trained codes; see :mod:`qgait_lab.deploy.packing`).

The shift itself stays exact in the integer reference (it enters the
requantization as a fixed-point offset, :mod:`.reference`); an int32 bias, as
integer convolution kernels take it, rounds it (:meth:`IntegerConv.int32_bias`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..models.gaitbase import GaitBase
from ..models.inference import batchnorm_affine
from ..quant.modules import QuantizedLayer
from .grids import Grid, activation_grid, weight_codes

__all__ = ["IntegerConv", "IntegerBlock", "IntegerFC", "IntegerGaitBase", "build_integer_model"]


@dataclass
class IntegerConv:
    """One quantized convolution and the BatchNorm after it, in integer form.

    ``codes`` int8 ``[O, C, kh, kw]`` and ``weight_scale`` (``[]`` or ``[O]``)
    are the trained weights; ``bn_scale`` / ``bn_shift`` (float64 ``[O]``) are
    the BatchNorm as ``gamma / sigma`` and ``beta - gamma mu / sigma``.
    """

    name: str
    codes: Tensor
    weight_scale: Tensor
    input_grid: Grid
    bn_scale: Tensor
    bn_shift: Tensor
    stride: int
    padding: int
    w_bits: int

    @property
    def out_channels(self) -> int:
        return int(self.codes.shape[0])

    def _per_channel_weight_scale(self) -> Tensor:
        return self.weight_scale.double().expand(self.out_channels).clone()

    @property
    def sign(self) -> Tensor:
        """+1 / -1 per output channel: -1 where the folded BN scale is negative."""
        return torch.where(self.bn_scale < 0, -1.0, 1.0).double()

    @property
    def folded_codes(self) -> Tensor:
        """The weight codes with negative-BN channels negated (values unchanged), int8."""
        return (self.codes.double() * self.sign.view(-1, 1, 1, 1)).to(torch.int8)

    @property
    def folded_weight_scale(self) -> Tensor:
        """``|s_w gamma / sigma|`` per output channel (float64): the folded weights' step."""
        return (self._per_channel_weight_scale() * self.bn_scale).abs()

    @property
    def accumulator_scale(self) -> Tensor:
        """Real value of one unit of the int32 accumulator, per channel: ``s_x * folded step``."""
        return self.input_grid.scale * self.folded_weight_scale

    @property
    def headroom(self) -> int:
        """The largest power of two ``h`` with ``h * folded_codes`` still in int8.

        ``h * codes`` at step ``s_w / h`` are the same weights (4-bit codes get
        ``h = 16`` or more); an int8 kernel then accumulates in finer units,
        which is what :meth:`int32_bias` needs.
        """
        codes = self.folded_codes.to(torch.int64)
        return _headroom(int(codes.min()), int(codes.max()), -128, 127)

    @property
    def input_headroom(self) -> int:
        """The same for the input codes: the largest power of two that keeps the grid's codes in its container."""
        g = self.input_grid
        return _headroom(g.lo, g.hi, *((-128, 127) if g.signed else (0, 255)))

    def int32_bias(self) -> tuple[Tensor, Tensor]:
        """``(bias int64, unit float64)``: the BN shift as an integer kernel takes it, an int32 bias.

        The unit is an accumulator unit of the kernel's operands, weight codes
        times :attr:`headroom` and input codes times :attr:`input_headroom`
        (the same values at finer steps; 256 times finer at w4a4, up to the
        spare range of the 8-bit codes at w8a8).  In whole accumulator units of
        the trained codes the rounding moved 1-5 % of the codes of the tests'
        trained tiny models: a layer with few inputs has only tens of units per
        output step.
        """
        unit = self.accumulator_scale / (self.headroom * self.input_headroom)
        return torch.round(self.bn_shift / unit).to(torch.int64), unit


def _headroom(lo: int, hi: int, container_lo: int, container_hi: int) -> int:
    h = 1
    while h < 2 ** 8 and hi * 2 * h <= container_hi and lo * 2 * h >= container_lo:
        h *= 2
    return h


@dataclass
class IntegerBlock:
    """A ResNet basic block: two convolutions and, where the shape changes, a 1x1 downsample."""

    conv1: IntegerConv
    conv2: IntegerConv
    downsample: IntegerConv | None = None

    def convs(self) -> list[IntegerConv]:
        return [self.conv1, self.conv2] + ([self.downsample] if self.downsample else [])


@dataclass
class IntegerFC:
    """The separate FCs (F in Eq. 1): int8 codes ``[p, c_in, c_out]`` and their step(s)."""

    name: str
    codes: Tensor
    weight_scale: Tensor
    input_grid: Grid
    w_bits: int

    @property
    def output_scale(self) -> Tensor:
        """Real value of one accumulator unit: ``s_x * s_w`` (``[]`` or one per part)."""
        return self.input_grid.scale * self.weight_scale.double()


@dataclass
class IntegerGaitBase:
    """GaitBase for integer inference: the backbone's convolutions, the pyramid's bins, the FCs.

    ``config`` is the float model's constructor arguments (``GaitBase.config``);
    ``method`` and ``bits`` say how it was trained.
    """

    stem: IntegerConv
    blocks: list[IntegerBlock]
    fc: IntegerFC
    parts: int
    config: dict
    method: str = "lsq"
    bits: int = 4
    notes: dict = field(default_factory=dict)

    def convs(self) -> list[IntegerConv]:
        return [self.stem] + [c for b in self.blocks for c in b.convs()]

    def layers(self) -> list[IntegerConv | IntegerFC]:
        """Every quantized layer, in forward order."""
        return self.convs() + [self.fc]

    def summary_rows(self) -> list[dict]:
        """One row per layer: name, weight shape, bits, input grid."""
        rows = []
        for layer in self.layers():
            g = layer.input_grid
            rows.append({"layer": layer.name, "weight": "x".join(map(str, layer.codes.shape)),
                         "w_bits": layer.w_bits, "a_bits": g.bits, "a_codes": f"{g.lo}..{g.hi}",
                         "a_step": g.scale})
        return rows


def _quantizers(name: str, layer: nn.Module) -> tuple:
    if not isinstance(layer, QuantizedLayer) or getattr(layer, "weight_quantizer", None) is None \
            or getattr(layer, "act_quantizer", None) is None:
        raise ConfigError(f"layer {name} is not quantized (weights and inputs): the integer path needs "
                          f"every convolution and the FCs fake-quantized; export a model trained with "
                          f"--method lsq, qgait, dorefa or pact, not a float one")
    return layer.weight_quantizer, layer.act_quantizer


def _integer_conv(name: str, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> IntegerConv:
    wq, aq = _quantizers(name, conv)
    if conv.groups != 1 or conv.dilation not in ((1, 1), 1) or conv.bias is not None:
        raise ConfigError(f"layer {name}: only plain bias-free convolutions have an integer path here")
    codes, scale = weight_codes(wq, conv.weight, f"weights of {name}")
    bn_scale, bn_shift = batchnorm_affine(bn)
    return IntegerConv(name, codes, scale, activation_grid(aq, f"input of {name}"), bn_scale, bn_shift,
                       stride=int(conv.stride[0]), padding=int(conv.padding[0]), w_bits=wq.bits)


@torch.no_grad()
def build_integer_model(model: nn.Module, method: str = "lsq") -> IntegerGaitBase:
    """The integer form of a fake-quantized :class:`~qgait_lab.models.GaitBase` (see the module docstring).

    Raises :class:`~qgait_lab.errors.ConfigError` naming the layer for a float
    model, quantizers that were never initialised, or codes that do not fit 8 bits.
    """
    if not isinstance(model, GaitBase):
        raise ConfigError(f"the integer path knows GaitBase, got {type(model).__name__}")
    if len(model.HPP.bin_num) != 1:
        raise ConfigError(f"the integer path needs one pyramid level, got bins {model.HPP.bin_num}")
    net = model.Backbone.forward_block
    prefix = "Backbone.forward_block"
    stem = _integer_conv(f"{prefix}.conv1.conv", net.conv1.conv, net.bn1)
    blocks = []
    for i in range(1, 5):
        block = getattr(net, f"layer{i}")[0]
        p = f"{prefix}.layer{i}.0"
        down = None
        if block.downsample is not None:
            down = _integer_conv(f"{p}.downsample.0", block.downsample[0], block.downsample[1])
        blocks.append(IntegerBlock(_integer_conv(f"{p}.conv1", block.conv1, block.bn1),
                                   _integer_conv(f"{p}.conv2", block.conv2, block.bn2), down))
    wq, aq = _quantizers("FCs", model.FCs)
    codes, scale = weight_codes(wq, model.FCs.fc_bin, "weights of FCs")
    fc = IntegerFC("FCs", codes, scale, activation_grid(aq, "input of FCs"), wq.bits)
    widths = [layer.w_bits for layer in [stem, *(c for b in blocks for c in b.convs()), fc]]
    bits = max(set(widths), key=widths.count)     # the preset's bits; first/last may differ
    return IntegerGaitBase(stem, blocks, fc, parts=model.HPP.bin_num[0], config=dict(model.config),
                           method=method, bits=bits)
