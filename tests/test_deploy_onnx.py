"""The integer GaitBase as an ONNX QDQ graph, run by onnxruntime (issue 14).

A small fake-quantized GaitBase (quarter width, 32x22 input, LSQ at w8a8 and
w4a4) stands in for a trained one: its LSQ steps are initialised and its
BatchNorm statistics gathered by a few train-mode forwards on random binary
silhouettes, with random BN scales (some negative, so that the export's
channel negation is exercised) and shifts.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from qgait_lab.deploy import (build_integer_model, compare_codes, embedding_cosine, integer_forward,
                              quantize_multiplier, requantize)
from qgait_lab.deploy.reference import conv_codes
from qgait_lab.deploy.onnx_export import CODES_PREFIX, IR_VERSION, OPSET, export_float_onnx, export_onnx
from qgait_lab.deploy.onnx_runtime import OnnxModel
from qgait_lab.errors import ConfigError, DataFormatError
from qgait_lab.models import GaitBase
from qgait_lab.quant import quantize_model
from qgait_lab.quant.convert import QuantizerOptions

SIZE = (32, 22)
CHANNELS = (16, 32, 64, 128)


def _silhouettes(n: int, frames: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, frames, *SIZE, generator=g) > 0.5).float()


def _float_gaitbase(seed: int) -> GaitBase:
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = GaitBase(num_classes=8, channels=CHANNELS, parts=16, embed_dim=64)
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.momentum = None                      # cumulative statistics over the forwards below
        with torch.no_grad():
            bn.weight.copy_(torch.randn(bn.weight.shape, generator=g) * 0.5 + 0.6)
            bn.bias.copy_(torch.randn(bn.bias.shape, generator=g) * 0.2)
    return model


def _fake_quantized(bits: int, per_channel: bool = False, seed: int = 0) -> GaitBase:
    model = quantize_model(_float_gaitbase(seed), "lsq", bits, bits,
                           options=QuantizerOptions(per_channel=per_channel))
    model.train()
    with torch.no_grad():
        for i in range(3):                      # the first forward initialises the LSQ steps
            model(_silhouettes(4, 6, seed=100 + i))
    return model.eval()


@pytest.fixture(scope="module", params=[8, 4], ids=["w8a8", "w4a4"])
def exported(request, tmp_path_factory):
    """``(bits, integer model, path of its export with codes, path without)``."""
    bits = request.param
    integer = build_integer_model(_fake_quantized(bits))
    folder = tmp_path_factory.mktemp(f"onnx{bits}")
    with_codes = export_onnx(integer, folder / "codes.onnx", SIZE, expose_codes=True)
    plain = export_onnx(integer, folder / "plain.onnx", SIZE)
    return bits, integer, with_codes, plain


@pytest.fixture(scope="module")
def sils() -> torch.Tensor:
    return _silhouettes(3, 7, seed=1)


def _reference(integer, sils):
    """The integer reference computing what the ONNX graph computes (int32 bias in the QLinearConv layers)."""
    return integer_forward(integer, sils, bias="onnx")


def _local_conv2_agreement(integer, onnx_codes: dict[str, np.ndarray]):
    """Each block's conv2 input codes, computed in integers from onnxruntime's own conv1 input codes."""
    ours, theirs = {}, {}
    for block in integer.blocks:
        a = torch.from_numpy(onnx_codes[block.conv1.name])
        ours[block.conv2.name] = conv_codes(block.conv1, a, block.conv2.input_grid, int32_bias=True)
        theirs[block.conv2.name] = torch.from_numpy(onnx_codes[block.conv2.name])
    return compare_codes(ours, theirs)


def _as_tensors(codes: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(v) for name, v in codes.items()}


# ------------------------------------------------------------------------- the graph

def test_graph_is_valid_opset17_qdq_with_dynamic_frames(exported):
    bits, integer, with_codes, plain = exported
    model = onnx.load(str(with_codes))
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == IR_VERSION and model.opset_import[0].version == OPSET
    (x,) = model.graph.input
    dims = [d.dim_param or d.dim_value for d in x.type.tensor_type.shape.dim]
    assert x.name == "silhouettes" and dims == ["batch", "frames", *SIZE]

    ops = [n.op_type for n in model.graph.node]
    layers = integer.layers()
    # one per quantized layer input, and one more where an integer kernel reads the codes at a finer step
    rescaled = sum(b.conv1.input_headroom > 1 for b in integer.blocks)
    assert len(layers) == 13 and rescaled == (len(integer.blocks) if bits == 4 else 0)
    assert ops.count("QuantizeLinear") == len(layers) + rescaled
    # every layer's input DQ, the weights of every conv, the int32 bias of each block's conv1
    # (the integer kernels; the other convs take their exact float bias), and the FC weights
    assert ops.count("DequantizeLinear") == (len(layers) + rescaled + len(integer.convs())
                                             + len(integer.blocks) + 1)
    assert ops.count("Clip") == (len(layers) if bits == 4 else 0)   # 4-bit codes inside uint8
    assert ops.count("Conv") == len(integer.convs()) and ops.count("MatMul") == 1
    codes = [CODES_PREFIX + layer.name for layer in layers]
    assert [o.name for o in model.graph.output] == ["embeddings"] + codes
    assert [o.name for o in onnx.load(str(plain)).graph.output] == ["embeddings"]

    weights = {t.name: t for t in model.graph.initializer}
    stem = integer.stem
    assert weights[f"{stem.name}/w"].data_type == TensorProto.INT8
    assert weights[f"{stem.name}/bias/w"].data_type == TensorProto.FLOAT      # a float conv: exact shift
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(weights[f"{stem.name}/w"]),
                                  stem.folded_codes.numpy())
    conv1 = integer.blocks[0].conv1                                # an integer kernel: int32 bias
    assert weights[f"{conv1.name}/bias/w"].data_type == TensorProto.INT32
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(weights[f"{conv1.name}/w"]),
                                  conv1.folded_codes.numpy() * conv1.headroom)
    scaled = conv1.folded_codes.to(torch.int64) * conv1.headroom            # the largest that still fits
    assert -128 <= int(scaled.min()) and int(scaled.max()) <= 127
    assert int(scaled.min()) * 2 < -128 or int(scaled.max()) * 2 > 127
    assert (stem.bn_scale < 0).any(), "the fixture should have negated channels"


@pytest.mark.parametrize("frames", [7, 12])
def test_dynamic_frame_count_runs_and_pools_over_time(exported, frames):
    _, integer, _, plain = exported
    runtime = OnnxModel(plain, optimize=False, threads=1)
    x = _silhouettes(2, frames, seed=frames)
    embeddings = runtime.embed(x.numpy())
    assert embeddings.shape == (2, 64, 16) == (2, runtime.embed_dim, runtime.parts)
    assert embedding_cosine(torch.from_numpy(embeddings), _reference(integer, x).embeddings) > 0.999
    # temporal max pooling: the sequence played twice embeds exactly as once
    np.testing.assert_array_equal(runtime.embed(torch.cat([x, x], dim=1).numpy()), embeddings)


# ------------------------------------------------------------------------- parity

def _agreement(integer, runtime: OnnxModel, sils: torch.Tensor):
    """``(one layer, chained, embedding cosine)`` of ``runtime`` against the integer reference."""
    reference = _reference(integer, sils)
    codes = runtime.codes(sils.numpy())
    assert set(codes) == set(reference.codes)
    stem = integer.stem.name        # the first quantizer, round(x / s) in float32 on both sides
    np.testing.assert_array_equal(codes[stem], reference.codes[stem].numpy())
    cosine = embedding_cosine(torch.from_numpy(runtime.embed(sils.numpy())), reference.embeddings)
    return _local_conv2_agreement(integer, codes), compare_codes(reference.codes, _as_tensors(codes)), cosine


def _assert_agreement(local, chained, cosine) -> None:
    assert local.differing <= 1e-5 * local.elements and local.max_step <= 1
    assert chained.fraction >= 0.998 and chained.max_step <= 4
    assert cosine >= 0.9995


def test_unoptimised_graph_against_integer_reference(exported, sils):
    """Graph optimisations off: onnxruntime runs DQ -> float32 Conv -> Q as written.

    The issue asks for bit-exact codes.  Bit-exact is guaranteed only where
    both sides compute the same thing: the first quantizer, ``round(x / s)``
    in float32 on both sides.  After it they differ in arithmetic: the
    reference sums integer products exactly and requantizes with a fixed-point
    multiplier (and adds residuals on a 2**-16 fixed-point grid); onnxruntime
    sums dequantized float32 products, rounding at every step.  A code
    differs wherever a value lies within float32 rounding of a quantization
    boundary, and a differing code moves the codes computed from it.  So:

    * one layer at a time (each block's conv1 -> conv2 from onnxruntime's own
      input codes) at most a few codes in a million differ, by one step;
    * chained through the network the codes are identical on most seeded
      models (7 of 10 tried: 5 seeds x w8a8/w4a4, this file's fixture); the
      worst, this fixture at w8a8, had 3 layer-local differences in layer2's
      conv1 that grew to 1412 of 1.6 million codes (99.91 %), at most 3 steps,
      with embedding cosine 0.99992.  The bounds below leave a margin over
      that for other CPUs, whose kernels sum in other orders.
    """
    bits, integer, with_codes, _ = exported
    local, chained, cosine = _agreement(integer, OnnxModel(with_codes, optimize=False, threads=1), sils)
    print(f"\nw{bits}a{bits} optimisations off: one layer {local}\n  chained {chained}\n  "
          f"embedding cosine {cosine:.7f}")
    _assert_agreement(local, chained, cosine)


def test_optimised_graph_runs_integer_kernels(exported, sils):
    """Optimisations on: every block's conv1 becomes a QLinearConv and the FC a MatMulIntegerToFloat.

    conv1 is the only convolution whose output goes straight into a quantizer;
    the stem (read also as layer1's identity), conv2 and the downsample feed
    float residual adds and stay float convolutions on dequantized weights.
    The integer kernels agree with the reference more closely than the float
    graph (every seeded per-tensor model tried was bit-exact; one per-channel
    w8a8 model had 218 of 1.6 million codes one step apart, from the float
    residual path), but float convolutions remain, so the same bounds apply.
    """
    bits, integer, with_codes, plain = exported
    runtime = OnnxModel(with_codes, optimize=True, threads=1)
    types = runtime.node_types()
    assert OnnxModel(plain, threads=1).node_types() == types     # exposing the codes keeps the fusions
    fused = types["QLinearConv"]
    print(f"\nw{bits}a{bits} optimised graph: {dict(types)}")
    assert fused == len(integer.blocks) == 4
    assert types["Conv"] + types["FusedConv"] == len(integer.convs()) - fused
    assert types["MatMulIntegerToFloat"] == 1 and types["MatMul"] == 0
    rescaled = sum(b.conv1.input_headroom > 1 for b in integer.blocks)  # 4 bits: conv1 reads 16 c at s / 16
    assert types["QuantizeLinear"] == len(integer.layers()) - fused + rescaled   # conv2's Q went into QLinearConv

    local, chained, cosine = _agreement(integer, runtime, sils)
    print(f"  one layer {local}\n  chained {chained}\n  embedding cosine {cosine:.7f}")
    _assert_agreement(local, chained, cosine)


def test_per_part_fc_steps_survive_the_integer_matmul_fusion(tmp_path, sils):
    """Per-channel LSQ gives the FCs one step per part; onnxruntime's fused MatMul must still run."""
    integer = build_integer_model(_fake_quantized(4, per_channel=True, seed=3))
    assert integer.fc.weight_scale.shape == (16,)
    path = export_onnx(integer, tmp_path / "per_part.onnx", SIZE, expose_codes=True)
    assert OnnxModel(path, threads=1).node_types()["MatMulIntegerToFloat"] == 1
    for optimize in (False, True):
        _assert_agreement(*_agreement(integer, OnnxModel(path, optimize=optimize, threads=1), sils))


def test_float_export_matches_torch(tmp_path):
    model = _float_gaitbase(seed=5)
    model.train()
    with torch.no_grad():
        model(_silhouettes(4, 6, seed=6))        # BN statistics away from (0, 1)
    model.eval()
    path = export_float_onnx(model, tmp_path / "float.onnx", SIZE)
    graph = onnx.load(str(path)).graph
    ops = {n.op_type for n in graph.node}
    assert "QuantizeLinear" not in ops and "DequantizeLinear" not in ops and "BatchNormalization" not in ops
    assert {t.data_type for t in graph.initializer if t.dims and len(t.dims) > 1} == {TensorProto.FLOAT}
    runtime = OnnxModel(path, threads=1)
    for frames in (7, 12):
        x = _silhouettes(2, frames, seed=frames)
        with torch.no_grad():
            want = model(x)["inference_feat"]["embeddings"].numpy()
        np.testing.assert_allclose(runtime.embed(x.numpy()), want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


# ------------------------------------------------------------------------- bad input

def test_corrupt_files_name_the_file(exported, tmp_path):
    _, _, _, plain = exported
    data = plain.read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    noise = tmp_path / "noise.onnx"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    for path in (truncated, noise, tmp_path / "missing.onnx"):
        with pytest.raises(DataFormatError, match=str(path)):
            OnnxModel(path)


def test_a_model_of_the_wrong_shape_is_refused(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 32, 22])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, 32, 22])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "not_gaitbase", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    path = tmp_path / "relu.onnx"
    onnx.save(model, path)
    with pytest.raises(DataFormatError, match=r"relu\.onnx.*\[\*, c, p\].*\[\*, 3, 32, 22\]"):
        OnnxModel(path)


def test_check_fits_and_bad_arguments(exported, tmp_path):
    _, integer, with_codes, plain = exported
    runtime = OnnxModel(plain, threads=1)
    assert runtime.input_size == SIZE and runtime.parts == 16
    runtime.check_fits(SIZE, 16)
    with pytest.raises(DataFormatError, match=r"plain\.onnx.*32, 22.*64, 44"):
        runtime.check_fits((64, 44), 16)
    with pytest.raises(DataFormatError, match="8 parts"):
        runtime.check_fits(SIZE, 8)
    with pytest.raises(DataFormatError, match=r"\(2, 5, 64, 44\)"):
        runtime.embed(np.zeros((2, 5, 64, 44), np.float32))
    with pytest.raises(ConfigError, match="expose_codes"):
        runtime.codes(np.zeros((1, 3, *SIZE), np.float32))
    with pytest.raises(ConfigError, match="IntegerGaitBase"):
        export_onnx(_float_gaitbase(0), tmp_path / "x.onnx", SIZE)
    with pytest.raises(ConfigError, match="input_size"):
        export_onnx(integer, tmp_path / "x.onnx", (32,))
    with pytest.raises(ConfigError, match="pyramid parts"):
        export_onnx(integer, tmp_path / "x.onnx", (28, 22))
