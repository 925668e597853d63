"""GaitBase as an ONNX graph: the integer model in QDQ form, and the float model beside it.

:func:`export_onnx` writes an :class:`~qgait_lab.deploy.IntegerGaitBase` as a
QDQ graph (opset 17): every quantized layer's input passes through
``QuantizeLinear`` (the codes) and ``DequantizeLinear``, and every quantized
layer's weights are int8 initialisers read through ``DequantizeLinear``.
:func:`export_float_onnx` writes a float GaitBase as the same graph with the
Q/DQ pairs left out and the (BN-folded) weights stored in float32: the
"onnxruntime fp32" baseline.  One builder writes both.

The graph, for silhouettes ``[batch, frames, h, w]`` (batch and frame count dynamic)::

    Reshape [batch*frames, 1, h, w]
    stem     Q -> DQ -> Conv(DQ(W), DQ(B)) -> Relu                         = x
    block    Q -> DQ -> conv1 -> Relu -> Q -> DQ -> conv2 ─┐
             x, or Q -> DQ -> downsample ───────────────── Add -> Relu     = x
             (4-bit grids: Q -> Clip -> DQ, see below)
    Reshape [batch, frames, C, H', W'], ReduceMax over frames
    Reshape [batch, C, parts, -1], ReduceMean + ReduceMax                   (the pyramid)
    Q -> DQ -> Transpose [parts, batch, C] -> MatMul DQ(W) -> Transpose     = embeddings [batch, O, parts]

``W`` are the folded weight codes (int8, one step per output channel).
``B`` is the folded BatchNorm shift: for each block's conv1, which onnxruntime
runs as ``QLinearConv`` (below), an int32 bias, the only form that kernel
takes, in units of ``s_x s_w / headroom`` with the codes scaled by ``headroom``
(16 at 4 bits: the same weights, a 16 times finer bias); for the other
convolutions, which run in float, the exact shift in float32.  The integer
reference's ``bias="onnx"`` mode computes the same.  A tensor read by two quantizers (a block's
input, read by conv1 and the downsample) gets one ``QuantizeLinear`` for each.

What onnxruntime runs in integers
---------------------------------
The graph is written in float semantics; which parts run in integers is
onnxruntime's choice, made by pattern matching when it optimises the graph.
Measured with onnxruntime 1.30 on the CPU provider (``tests/test_deploy_onnx.py``),
for GaitBase's 12 convolutions and the FCs:

* ``DQ(x) -> Conv(DQ(W), DQ(B)) -> Relu -> Q`` becomes one ``QLinearConv``
  (uint8 x int8 products, int32 accumulator, requantization to uint8; the
  ReLU is the saturation at code 0), with NCHW <-> NHWC ``Transpose`` nodes
  around it.  In GaitBase that is every block's conv1 and nothing else: conv1
  is the one convolution whose output goes straight into a quantizer.
* conv2 and the downsample feed the residual ``Add``, which GaitBase computes
  in float, and the stem's output is read both by a quantizer and, as
  layer1's identity, by an ``Add``.  With no lone ``Q`` after them these 8
  stay float convolutions (``Conv``, the stem a ``FusedConv`` with its ReLU).
  Their weight and bias ``DequantizeLinear`` nodes are not constant-folded
  (onnxruntime keeps the Q/DQ nodes of a QDQ graph for its fusions), so they
  run at every call.  Making these convolutions integer would need a
  quantizer on the residual sum, which the trained model does not have.
* ``DQ(z) -> MatMul(DQ(W))``, the FCs, becomes ``MatMulIntegerToFloat``
  (uint8 x int8 in int32, then scaled to float): the output is not
  quantized, so it is this op and not ``QLinearMatMul``.
* The residual adds, temporal max pooling and the pyramid's mean + max run
  in float, as the trained model computes them.
* With optimisations off onnxruntime runs the nodes as written: every DQ,
  Conv and Q in float32.  The codes then agree with the integer reference
  except where a value lies within float32 rounding of a quantization
  boundary (the reference sums exactly in integers); such a code then moves
  the codes computed from it.

Codes narrower than the container
---------------------------------
``QuantizeLinear`` saturates to its 8-bit type only; a 4-bit grid ``0..15``
needs a clamp as well.  It is written as ``Q -> Clip(codes, lo, hi) -> DQ``
on the integer codes: onnxruntime still fuses the convolution before ``Q``
and the one after ``DQ`` into ``QLinearConv`` (``Clip`` on uint8 runs between
them).  A ``Clip`` on the float before ``Q`` breaks the ``Conv -> Q``
pattern instead: onnxruntime then fuses Conv, ReLU and Clip into a float
``FusedConv`` (measured: no ``QLinearConv`` left at 4 bits).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from ..errors import ConfigError
from ..models.gaitbase import GaitBase
from .grids import Grid
from ..models.inference import batchnorm_affine
from .integer_model import IntegerConv, IntegerGaitBase

__all__ = ["export_onnx", "export_float_onnx", "OPSET", "IR_VERSION", "INPUT", "OUTPUT", "CODES_PREFIX"]

OPSET = 17
IR_VERSION = 10          # onnxruntime 1.30 reads IR <= 13; onnx 1.23 would write 14
INPUT = "silhouettes"
OUTPUT = "embeddings"
CODES_PREFIX = "codes:"
_INT32 = 2 ** 31


@dataclass
class _Conv:
    """One convolution with BN folded in: float weights, or int8 codes with their steps."""

    name: str
    weight: np.ndarray              # float32, or int8 codes [O, C, kh, kw]
    bias: np.ndarray                # float32, or int32 in accumulator units [O]
    stride: int
    padding: int
    grid: Grid | None = None        # the input's grid; None: a float layer
    weight_scale: np.ndarray | None = None
    bias_scale: np.ndarray | None = None
    input_headroom: int = 1         # input codes scaled by this for an integer kernel (see _integer_conv)


@dataclass
class _FC:
    name: str
    weight: np.ndarray              # float32, or int8 codes [p, C, O]
    grid: Grid | None = None
    weight_scale: np.ndarray | None = None   # [] or [p]


@dataclass
class _Net:
    stem: _Conv
    blocks: list[tuple[_Conv, _Conv, _Conv | None]]
    fc: _FC
    parts: int
    strides: tuple[int, ...]


# ---------------------------------------------------------------- the two sources

def _integer_conv(conv: IntegerConv, integer_kernel: bool = False) -> _Conv:
    """``conv`` as graph data.  Where onnxruntime runs an integer kernel (``integer_kernel``) the
    BN shift must be an int32 bias: weight and input codes are scaled by ``headroom`` and
    ``input_headroom`` to make its unit finer (:meth:`IntegerConv.int32_bias`).  Elsewhere the convolution runs in float and the shift
    stays an exact float32 bias."""
    if not integer_kernel:
        return _Conv(conv.name, conv.folded_codes.numpy().astype(np.int8),
                     conv.bn_shift.numpy().astype(np.float32), conv.stride, conv.padding, conv.input_grid,
                     conv.folded_weight_scale.numpy().astype(np.float32))
    bias, unit = conv.int32_bias()
    if bias.numel() and int(bias.abs().max()) >= _INT32:
        raise ConfigError(f"layer {conv.name}: the folded BatchNorm bias leaves int32 "
                          f"(|bias| up to {int(bias.abs().max())} units of {float(unit.min()):.3g})")
    h = conv.headroom
    return _Conv(conv.name, (conv.folded_codes.to(torch.int16) * h).numpy().astype(np.int8),
                 bias.numpy().astype(np.int32), conv.stride, conv.padding, conv.input_grid,
                 (conv.folded_weight_scale / h).numpy().astype(np.float32), unit.numpy().astype(np.float32),
                 input_headroom=conv.input_headroom)


def _from_integer(model: IntegerGaitBase) -> _Net:
    blocks = [(_integer_conv(b.conv1, integer_kernel=True), _integer_conv(b.conv2),
               _integer_conv(b.downsample) if b.downsample is not None else None) for b in model.blocks]
    fc = model.fc
    fc_node = _FC(fc.name, fc.codes.numpy().astype(np.int8), fc.input_grid,
                  fc.weight_scale.double().numpy().astype(np.float32))
    return _Net(_integer_conv(model.stem), blocks, fc_node, model.parts, tuple(model.config["strides"]))


@torch.no_grad()
def _float_conv(name: str, conv: torch.nn.Conv2d, bn: torch.nn.BatchNorm2d) -> _Conv:
    scale, shift = batchnorm_affine(bn)
    weight = conv.weight.detach().double() * scale.view(-1, 1, 1, 1)
    return _Conv(name, weight.numpy().astype(np.float32), shift.numpy().astype(np.float32),
                 int(conv.stride[0]), int(conv.padding[0]))


def _from_float(model: GaitBase) -> _Net:
    if not isinstance(model, GaitBase):
        raise ConfigError(f"export_float_onnx knows GaitBase, got {type(model).__name__}")
    if len(model.HPP.bin_num) != 1:
        raise ConfigError(f"the ONNX export needs one pyramid level, got bins {model.HPP.bin_num}")
    net, prefix = model.Backbone.forward_block, "Backbone.forward_block"
    blocks = []
    for i in range(1, 5):
        block, p = getattr(net, f"layer{i}")[0], f"{prefix}.layer{i}.0"
        down = None
        if block.downsample is not None:
            down = _float_conv(f"{p}.downsample.0", block.downsample[0], block.downsample[1])
        blocks.append((_float_conv(f"{p}.conv1", block.conv1, block.bn1),
                       _float_conv(f"{p}.conv2", block.conv2, block.bn2), down))
    fc = _FC("FCs", model.FCs.fc_bin.detach().float().numpy().copy())
    return _Net(_float_conv(f"{prefix}.conv1.conv", net.conv1.conv, net.bn1), blocks, fc,
                model.HPP.bin_num[0], tuple(model.config["strides"]))


# ---------------------------------------------------------------- the one builder

class _Graph:
    """Nodes and initialisers of the graph being written, with unique tensor names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.code_outputs: list[tuple[str, int, int]] = []     # (name, ONNX element type, rank)
        self._count = 0

    def fresh(self, stem: str) -> str:
        self._count += 1
        return f"{stem}#{self._count}"

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], stem: str | None = None, output: str | None = None,
             **attributes) -> str:
        out = output or self.fresh(stem or op)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attributes))
        return out

    def quantize(self, x: str, grid: Grid | None, layer: str, rank: int = 4, headroom: int = 1) -> str:
        """``x`` on ``layer``'s input grid: Q (codes) [-> Clip] -> DQ; unchanged for a float layer.

        ``headroom`` > 1 re-expresses the codes ``c`` as ``headroom * c`` at step
        ``s / headroom`` (DQ -> Q -> DQ; exact, as ``c s / (s / headroom)`` is a
        power-of-two multiple of ``c``) for an integer kernel's finer bias.
        """
        if grid is None:
            return x
        zero = np.zeros((), dtype=np.int8 if grid.signed else np.uint8)
        scale = self.const(f"{layer}/x_scale", np.float32(grid.scale))
        zp = self.const(f"{layer}/x_zero_point", zero)
        codes_name = f"{CODES_PREFIX}{layer}"
        lo, hi = np.iinfo(zero.dtype).min, np.iinfo(zero.dtype).max
        narrow = (grid.lo, grid.hi) != (lo, hi)
        q = self.node("QuantizeLinear", [x, scale, zp],
                      output=self.fresh(f"{layer}/q") if narrow else codes_name)
        if narrow:                            # see "Codes narrower than the container"
            q = self.node("Clip", [q, self.const(f"{layer}/code_lo", zero.dtype.type(grid.lo)),
                                   self.const(f"{layer}/code_hi", zero.dtype.type(grid.hi))],
                          output=codes_name)
        self.code_outputs.append((codes_name, helper.np_dtype_to_tensor_dtype(zero.dtype), rank))
        dq = self.node("DequantizeLinear", [q, scale, zp], f"{layer}/dq")
        if headroom == 1:
            return dq
        fine = self.const(f"{layer}/x_scale_fine", np.float32(grid.scale / headroom))
        q = self.node("QuantizeLinear", [dq, fine, zp], f"{layer}/q_fine")
        return self.node("DequantizeLinear", [q, fine, zp], f"{layer}/dq_fine")

    def weights(self, name: str, values: np.ndarray, scale: np.ndarray | None, axis: int = 0) -> str:
        """A weight initialiser, read through DQ when it holds integer codes."""
        w = self.const(f"{name}/w", values)
        if scale is None:
            return w
        args = [w, self.const(f"{name}/w_scale", scale)]
        if values.dtype == np.int8:            # int32 biases take no zero point
            args.append(self.const(f"{name}/w_zero_point", np.zeros(scale.shape, dtype=np.int8)))
        return self.node("DequantizeLinear", args, f"{name}/w_dq", axis=axis)

    def conv(self, x: str, conv: _Conv, relu: bool = False) -> str:
        x = self.quantize(x, conv.grid, conv.name, headroom=conv.input_headroom)
        w = self.weights(conv.name, conv.weight, conv.weight_scale)
        b = self.weights(f"{conv.name}/bias", conv.bias, conv.bias_scale)
        kh, kw = conv.weight.shape[2:]
        y = self.node("Conv", [x, w, b], f"{conv.name}/conv", kernel_shape=[int(kh), int(kw)],
                      strides=[conv.stride] * 2, pads=[conv.padding] * 4)
        return self.node("Relu", [y], f"{conv.name}/relu") if relu else y


def _feature_size(input_size: tuple[int, int], strides: tuple[int, ...]) -> tuple[int, int]:
    h, w = input_size
    for s in strides:                  # 3x3 pad 1 and 1x1 pad 0 both give ceil(size / stride)
        h, w = -(-h // s), -(-w // s)
    return h, w


def _check_size(input_size, net: _Net) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in input_size)
    except (TypeError, ValueError):
        raise ConfigError(f"input_size must be (height, width), got {input_size!r}") from None
    if h < 1 or w < 1 or (h, w) != tuple(input_size):
        raise ConfigError(f"input_size must be two positive integers, got {input_size!r}")
    fh, fw = _feature_size((h, w), net.strides)
    if (fh * fw) % net.parts:
        raise ConfigError(f"input_size {h}x{w} gives {fh}x{fw} feature maps, which do not split "
                          f"into {net.parts} pyramid parts")
    return h, w


def _build(net: _Net, input_size: tuple[int, int], expose_codes: bool) -> onnx.ModelProto:
    h, w = _check_size(input_size, net)
    g = _Graph()
    batch = g.node("Shape", [INPUT], "batch", start=0, end=1)
    x = g.node("Reshape", [INPUT, g.const("frames_shape", np.array([-1, 1, h, w], np.int64))], "frames")

    x = g.conv(x, net.stem, relu=True)
    for conv1, conv2, down in net.blocks:
        out = g.conv(g.conv(x, conv1, relu=True), conv2)
        identity = x if down is None else g.conv(x, down)
        x = g.node("Relu", [g.node("Add", [out, identity], "residual")], "block_out")

    per_frame = g.node("Shape", [x], "map_shape", start=1)                        # [C, H', W']
    x = g.node("Reshape", [x, g.node("Concat", [batch, g.const("minus_one", np.array([-1], np.int64)),
                                                per_frame], "sequence_shape", axis=0)], "sequences")
    x = g.node("ReduceMax", [x], "temporal_max", axes=[1], keepdims=0)           # [batch, C, H', W']
    c = net.fc.weight.shape[1]
    x = g.node("Reshape", [x, g.const("strips_shape", np.array([0, c, net.parts, -1], np.int64))], "strips")
    x = g.node("Add", [g.node("ReduceMean", [x], "strip_mean", axes=[-1], keepdims=0),
                       g.node("ReduceMax", [x], "strip_max", axes=[-1], keepdims=0)], "pyramid")

    fc = net.fc
    x = g.node("Transpose", [g.quantize(x, fc.grid, fc.name, rank=3)], "parts_first", perm=[2, 0, 1])
    per_part = fc.weight_scale is not None and fc.weight_scale.ndim == 1
    if per_part:
        # onnxruntime 1.30 fuses DQ(axis 0) -> MatMul into MatMulIntegerToFloat, whose kernel
        # then reads a [p] step as one per output column and fails at run time.  The product is
        # taken on unit-step codes instead and each part's step applied after it (the same value).
        x = g.node("MatMul", [x, g.weights(fc.name, fc.weight, np.float32(1.0))], "fc")
        part_scale = g.const(f"{fc.name}/part_scale", fc.weight_scale.reshape(-1, 1, 1))
        x = g.node("Mul", [x, part_scale], "fc_scaled")
    else:
        x = g.node("MatMul", [x, g.weights(fc.name, fc.weight, fc.weight_scale)], "fc")
    g.node("Transpose", [x], output=OUTPUT, perm=[1, 2, 0])

    inputs = [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", "frames", h, w])]
    outputs = [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT,
                                             ["batch", fc.weight.shape[2], net.parts])]
    if expose_codes:
        outputs += [helper.make_tensor_value_info(name, dtype, [None] * rank)
                    for name, dtype, rank in g.code_outputs]
    graph = helper.make_graph(g.nodes, "gaitbase", inputs, outputs, g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="qgait_lab.deploy")
    model.ir_version = IR_VERSION
    return model


def _save(model: onnx.ModelProto, path: str | os.PathLike) -> Path:
    onnx.checker.check_model(model, full_check=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


def export_onnx(model: IntegerGaitBase, path: str | os.PathLike, input_size: tuple[int, int], *,
                expose_codes: bool = False) -> Path:
    """Write ``model`` as a QDQ ONNX graph for silhouettes of ``input_size`` (h, w); return the path.

    ``expose_codes`` adds, for every quantized layer, the codes of its input
    (the output of its ``QuantizeLinear``, clamped to the grid) as an extra
    graph output ``codes:<layer name>``, for the parity tests.  See the module
    docstring for the graph and for what onnxruntime runs in integers.
    """
    if not isinstance(model, IntegerGaitBase):
        raise ConfigError(f"export_onnx writes an IntegerGaitBase (build_integer_model), "
                          f"got {type(model).__name__}")
    return _save(_build(_from_integer(model), input_size, expose_codes), path)


def export_float_onnx(float_gaitbase: GaitBase, path: str | os.PathLike, input_size: tuple[int, int]) -> Path:
    """Write a GaitBase in float32, BatchNorm folded into the convolutions: the fp32 baseline.

    The weights are the module's float weights as stored (for a fake-quantized
    model, the latent float weights, not their quantized values).
    """
    return _save(_build(_from_float(float_gaitbase), input_size, False), path)
