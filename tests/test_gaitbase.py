"""GaitBase: OpenGait's architecture, parameter counts and key names; quantized variants."""
import io

import pytest
import torch
import torch.nn.functional as F

from qgait_lab.models import GaitBase, build_model, count_parameters
from qgait_lab.quant import quantize_model, quantizers
from qgait_lab.quant.bitops import count_costs, gaitbase_inference_layers, summarize

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def opengait_keys():
    """The key names of OpenGait's GaitBase (ARCHITECTURE.md §4), written out by hand."""
    p = "Backbone.forward_block."
    keys = {p + "conv1.conv.weight"} | {p + f"bn1.{b}" for b in BN}
    for i in range(1, 5):
        blk = p + f"layer{i}.0."
        keys |= {blk + "conv1.weight", blk + "conv2.weight"}
        keys |= {blk + f"bn{j}.{b}" for j in (1, 2) for b in BN}
        if i > 1:  # channels change in stages 2-4
            keys |= {blk + "downsample.0.weight"} | {blk + f"downsample.1.{b}" for b in BN}
    keys |= {"FCs.fc_bin", "BNNecks.fc_bin"} | {f"BNNecks.bn1d.{b}" for b in BN}
    return keys


def test_parameter_counts_match_opengait():
    assert count_parameters(GaitBase(num_classes=74)) == 7_305_408
    assert count_parameters(GaitBase(num_classes=3000)) == 19_290_304
    m = GaitBase(74)
    assert count_parameters(m) - count_parameters(m.BNNecks) == 6_994_112


def test_state_dict_keys_are_exactly_opengaits():
    m = GaitBase(74)
    assert set(m.state_dict()) == opengait_keys()
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes["FCs.fc_bin"] == (16, 512, 256)
    assert shapes["BNNecks.fc_bin"] == (16, 256, 74)
    assert shapes["BNNecks.bn1d.weight"] == (4096,)


def test_opengait_style_checkpoint_loads_without_renaming():
    src = GaitBase(74)
    ckpt = {"model": src.state_dict(), "iteration": 60000}   # OpenGait's checkpoint layout
    dst = GaitBase(74)
    dst.load_state_dict(ckpt["model"], strict=True)
    x = torch.rand(2, 6, 64, 44)
    src.eval(), dst.eval()
    assert torch.equal(src(x)["inference_feat"]["embeddings"], dst(x)["inference_feat"]["embeddings"])


def test_output_shapes_and_configurable_width():
    m = build_model("gaitbase", num_classes=10, channels=(16, 32, 64, 128))
    out = m(torch.rand(3, 5, 32, 22))
    assert out["inference_feat"]["embeddings"].shape == (3, 256, 16)
    assert out["training_feat"]["softmax"]["logits"].shape == (3, 10, 16)
    # cosine logits are bounded by 1
    assert out["training_feat"]["softmax"]["logits"].abs().max() <= 1 + 1e-5


def test_packed_variable_length_equals_separate_sequences():
    m = GaitBase(5, channels=(8, 16, 32, 64)).eval()
    a, b = torch.rand(1, 7, 64, 44), torch.rand(1, 4, 64, 44)
    packed = m(torch.cat([a, b], dim=1), seqL=[7, 4])["inference_feat"]["embeddings"]
    separate = torch.cat([m(a)["inference_feat"]["embeddings"], m(b)["inference_feat"]["embeddings"]])
    assert torch.allclose(packed, separate, atol=1e-5)


def test_macs_per_frame_and_paper_bitops():
    costs = count_costs(GaitBase(3000), torch.zeros(1, 1, 64, 44),
                        include=gaitbase_inference_layers)
    backbone = sum(c.macs for c in costs if c.name.startswith("Backbone"))
    assert backbone / 1e9 == pytest.approx(1.178, abs=0.001)   # ~1.178 GMAC per frame
    for bits, paper in ((32, 118.30e9), (8, 7.39e9), (4, 1.85e9)):
        model = GaitBase(3000) if bits == 32 else quantize_model(GaitBase(3000), "lsq", bits, bits)
        total = summarize(count_costs(model, torch.zeros(1, 100, 64, 44),
                                      include=gaitbase_inference_layers))
        assert total["bitops"] == pytest.approx(paper, rel=0.01)


def test_bitops_follow_per_layer_bits():
    from qgait_lab.quant import LayerPolicy
    x = torch.zeros(1, 10, 64, 44)
    uniform = quantize_model(GaitBase(74), "lsq", 4, 4)
    mixed = quantize_model(GaitBase(74), "lsq", 4, 4,
                           LayerPolicy(first_layer_bits=(8, 8), last_layer_bits=(8, 8)))
    cu = {c.name: c for c in count_costs(uniform, x, include=gaitbase_inference_layers)}
    cm = {c.name: c for c in count_costs(mixed, x, include=gaitbase_inference_layers)}
    first, last = "Backbone.forward_block.conv1.conv", "FCs"
    assert cm[first].bitops == pytest.approx(4 * cu[first].bitops)
    assert cm[last].bitops == pytest.approx(4 * cu[last].bitops)
    middle = [n for n in cu if n not in (first, last)]
    assert all(cm[n].bitops == cu[n].bitops for n in middle)


def test_w8a8_lsq_stays_close_to_full_precision_after_init():
    torch.manual_seed(0)
    fp = GaitBase(20, channels=(16, 32, 64, 128)).eval()
    q = GaitBase(20, channels=(16, 32, 64, 128))
    q.load_state_dict(fp.state_dict())
    quantize_model(q, "lsq", 8, 8).eval()
    x = (torch.rand(4, 8, 64, 44) > 0.5).float()
    e_fp, e_q = fp(x)["inference_feat"]["embeddings"].flatten(1), q(x)["inference_feat"]["embeddings"].flatten(1)
    cos = F.cosine_similarity(e_fp, e_q, dim=1)
    assert cos.min() > 0.99
    # 4 bits is visibly coarser: the check above is not vacuous.
    q4 = GaitBase(20, channels=(16, 32, 64, 128))
    q4.load_state_dict(fp.state_dict())
    quantize_model(q4, "lsq", 4, 4).eval()
    assert F.cosine_similarity(e_fp, q4(x)["inference_feat"]["embeddings"].flatten(1), dim=1).min() < cos.min()


@pytest.mark.parametrize("method", ["lsq", "dorefa", "pact"])
def test_quantized_gaitbase_survives_save_load(method):
    torch.manual_seed(1)
    a = quantize_model(GaitBase(10, channels=(8, 16, 32, 64)), method, 4, 4)
    x = torch.rand(2, 5, 64, 44)
    a(x)  # one training-mode step initialises LSQ steps and BN statistics
    a.eval()
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = quantize_model(GaitBase(10, channels=(8, 16, 32, 64)), method, 4, 4)
    b.load_state_dict(torch.load(buf, weights_only=True))
    b.eval()
    out_a, out_b = a(x), b(x)
    assert torch.equal(out_a["inference_feat"]["embeddings"], out_b["inference_feat"]["embeddings"])
    assert torch.equal(out_a["training_feat"]["softmax"]["logits"], out_b["training_feat"]["softmax"]["logits"])
    assert sum(1 for _ in quantizers(b)) == 2 * 13   # 12 convs + FCs, weight + activation


def test_bnneck_cosine_head_runs_in_float32_for_half_inputs():
    """Under fp16 autocast the part features arrive in half precision.  When a batch's
    features coincide (4-bit codes of near-identical samples), BatchNorm outputs zero
    vectors, and normalising them in half precision loses F.normalize's eps (1e-12
    underflows to 0): 0/0.  The head therefore works in float32."""
    from qgait_lab.models.gaitbase import SeparateBNNecks

    torch.manual_seed(0)
    neck = SeparateBNNecks(parts_num=4, in_channels=8, class_num=5)
    same = torch.ones(6, 8, 4, dtype=torch.float16)              # identical samples
    feature, logits = neck(same)
    assert feature.dtype == logits.dtype == torch.float32
    assert torch.isfinite(feature).all() and torch.isfinite(logits).all()
    x = torch.randn(6, 8, 4).half().requires_grad_()
    F.cross_entropy(16 * neck(x)[1].mean(-1), torch.arange(6) % 5).backward()
    assert x.grad.dtype == torch.float16 and torch.isfinite(x.grad).all()
