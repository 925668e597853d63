"""GaitSet and GaitPart: OpenGait's names and shapes, their forward semantics, quantization, BitOPs.

The expected state dicts are written out by hand from OpenGait's code (commit 0efafd4 of
ShiqiYu/OpenGait): ``opengait/modeling/models/gaitset.py`` and ``gaitpart.py``, the ``Plain``
backbone in ``opengait/modeling/backbones/plain.py``, ``BasicConv2d`` / ``FocalConv2d`` /
``SeparateFCs`` / ``SetBlockWrapper`` / ``PackSequenceWrapper`` in ``opengait/modeling/modules.py``
and the ``model_cfg`` of ``configs/gaitset/gaitset{,_GREW}.yaml`` and
``configs/gaitpart/gaitpart{,_GREW}.yaml``.  The paper's BitOPs are Table 1 (100 frames) and
Table 2a (GREW, 120 frames), at 64x44 and 32 bits.
"""
import json
import math

import pytest
import torch

from qgait_lab.cli import main
from qgait_lab.errors import ConfigError
from qgait_lab.models import MODELS, GaitPart, GaitSet, build_model, count_parameters
from qgait_lab.models.gaitpart import FocalConv2d, TemporalFeatureAggregator
from qgait_lab.quant import quantize_model
from qgait_lab.quant.bitops import count_costs, summarize
from qgait_lab.quant.convert import layer_bits
from qgait_lab.models.checkpoint import load_checkpoint, load_model_state, model_state_of

# Small widths for the forward/backward tests; 64x44 is needed by the 16-strip pyramid
# (two 2x2 max-pools leave 16 rows).
TINY_SET = dict(channels=(4, 8, 16), embed_dim=8)
TINY_PART = dict(layers=("BC-4", "BC-4", "M", "FC-8-2", "FC-8-2", "M", "FC-16-3", "FC-16-3"), embed_dim=8)
H, W = 64, 44


def opengait_gaitset_shapes(in_c, out_dim=256, parts=62):
    """GaitSet's state dict: ``model_cfg.in_channels`` = in_c, ``SeparateFCs`` out_dim and parts_num.

    set_block1 = [BasicConv2d(in_c[0], in_c[1], 5, 1, 2), LeakyReLU, BasicConv2d(in_c[1], in_c[1], 3, 1, 1),
    LeakyReLU, MaxPool2d] wrapped in SetBlockWrapper (hence ``forward_block``); set_block2, set_block3 the
    same with 3x3 kernels (no pool in 3); gl_block2/3 are deep copies of the *unwrapped* blocks 2 and 3.
    """
    shapes = {}
    for name, (c_in, c_out, k) in {"set_block1": (in_c[0], in_c[1], 5), "set_block2": (in_c[1], in_c[2], 3),
                                   "set_block3": (in_c[2], in_c[3], 3)}.items():
        for prefix in [f"{name}.forward_block"] + ([name.replace("set", "gl")] if name != "set_block1" else []):
            shapes[f"{prefix}.0.conv.weight"] = (c_out, c_in, k, k)
            shapes[f"{prefix}.2.conv.weight"] = (c_out, c_out, 3, 3)
    shapes["Head.fc_bin"] = (parts, in_c[3], out_dim)
    return shapes


def opengait_gaitpart_shapes(layers_cfg, out_dim, parts=16):
    """GaitPart's state dict: ``Plain(layers_cfg)`` under ``Backbone.forward_block.feature``.

    Plain appends a LeakyReLU after each conv, so the conv indices skip one; the first conv is
    5x5.  TFA = PackSequenceWrapper(TemporalFeatureAggregator(c)): per part, conv1d3x1 =
    [BasicConv1d(c, c//4, 3), LeakyReLU, BasicConv1d(c//4, c, 1)] and conv1d3x3 = [.. 3), .., (c//4, c, 3)].
    """
    shapes, index, c_in = {}, 0, 1
    for i, spec in enumerate(layers_cfg):
        if spec == "M":
            index += 1
            continue
        c_out, k = int(spec.split("-")[1]), 5 if i == 0 else 3
        shapes[f"Backbone.forward_block.feature.{index}.conv.weight"] = (c_out, c_in, k, k)
        index, c_in = index + 2, c_out
    hidden = c_in // 4
    for j in range(parts):
        shapes[f"TFA.pooling_func.conv1d3x1.{j}.0.conv.weight"] = (hidden, c_in, 3)
        shapes[f"TFA.pooling_func.conv1d3x1.{j}.2.conv.weight"] = (c_in, hidden, 1)
        shapes[f"TFA.pooling_func.conv1d3x3.{j}.0.conv.weight"] = (hidden, c_in, 3)
        shapes[f"TFA.pooling_func.conv1d3x3.{j}.2.conv.weight"] = (c_in, hidden, 3)
    shapes["Head.fc_bin"] = (parts, c_in, out_dim)
    return shapes


CASES = {  # (model, config): (OpenGait's state dict, its parameter count worked out by hand)
    ("gaitset", "casia-b"): (opengait_gaitset_shapes((1, 32, 64, 128)), 2_594_592),
    ("gaitset", "grew"): (opengait_gaitset_shapes((1, 64, 128, 256)), 6_313_536),
    ("gaitpart", "casia-b"): (opengait_gaitpart_shapes(
        ["BC-32", "BC-32", "M", "FC-64-2", "FC-64-2", "M", "FC-128-3", "FC-128-3"], 128), 1_204_000),
    ("gaitpart", "grew"): (opengait_gaitpart_shapes(
        ["BC-32", "BC-32", "M", "BC-64", "BC-64", "M", "FC-128-3", "FC-128-3", "FC-256-3", "FC-256-3"], 256),
        4_841_248),
}

PAPER_BITOPS = {  # (model, config, frames): G BitOPs at 32 bits
    ("gaitset", "casia-b", 100): 10.68, ("gaitpart", "casia-b", 100): 10.67,   # Table 1
    ("gaitset", "grew", 120): 50.68, ("gaitpart", "grew", 120): 31.68,         # Table 2a
}


def _sils(n, frames, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, frames, H, W, generator=g) > 0.5).float()


def test_both_are_registered_with_their_opengait_configurations():
    assert MODELS["gaitset"] is GaitSet and MODELS["gaitpart"] is GaitPart
    assert build_model("gaitset", config="oumvlp").config["channels"] == (64, 128, 256)
    assert build_model("gaitpart", config="oumvlp").config["embed_dim"] == 256
    with pytest.raises(ConfigError, match="'gaitset' has no configuration 'casia'.*casia-b"):
        build_model("gaitset", config="casia")
    with pytest.raises(ConfigError, match="'gaitbase' has no configuration"):
        build_model("gaitbase", config="grew")


@pytest.mark.parametrize("model, config", list(CASES))
def test_state_dict_names_shapes_and_parameter_counts_are_opengaits(model, config):
    expected, params = CASES[model, config]
    m = build_model(model, config=config)
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == expected
    assert sum(math.prod(s) for s in expected.values()) == params == count_parameters(m)


@pytest.mark.parametrize("model, config", list(CASES))
def test_opengait_style_ddp_checkpoint_loads_strictly(model, config, tmp_path):
    src = build_model(model, config=config).eval()
    state = {f"module.{k}": v for k, v in src.state_dict().items()}   # saved from a DDP wrapper
    torch.save({"model": state, "optimizer": {}, "scheduler": {}, "iteration": 40000}, tmp_path / "og.pt")
    dst = build_model(model, config=config).eval()
    assert not torch.equal(dst.Head.fc_bin, src.Head.fc_bin)   # a fresh init differs
    load_model_state(dst, model_state_of(load_checkpoint(tmp_path / "og.pt")), "og.pt")
    x = _sils(1, 3, seed=1)
    with torch.no_grad():
        assert torch.equal(src(x)["inference_feat"]["embeddings"], dst(x)["inference_feat"]["embeddings"])


@pytest.mark.parametrize("cls, kwargs, out", [(GaitSet, TINY_SET, (3, 8, 62)), (GaitPart, TINY_PART, (3, 8, 16))])
def test_embeddings_only_and_packed_sequences_equal_one_at_a_time(cls, kwargs, out):
    m = cls(**kwargs).eval()
    lengths = [7, 3, 5]
    seqs = [_sils(1, s, seed=i) for i, s in enumerate(lengths)]
    with torch.no_grad():
        packed = m(torch.cat(seqs, dim=1), seqL=lengths)
        alone = torch.cat([m(s)["inference_feat"]["embeddings"] for s in seqs])
        batch = m(torch.cat([s[:, :3] for s in seqs]))["inference_feat"]["embeddings"]
        batch_alone = torch.cat([m(s[:, :3])["inference_feat"]["embeddings"] for s in seqs])
        whole = m(torch.cat(seqs, dim=1))["inference_feat"]["embeddings"]   # the same frames read as one sequence
    # No logits: OpenGait trains both with the triplet loss alone.
    assert set(packed["training_feat"]) == {"triplet"}
    packed = packed["inference_feat"]["embeddings"]
    assert packed.shape == out and batch.shape == out
    assert torch.allclose(packed, alone, atol=1e-5)
    assert torch.allclose(batch, batch_alone, atol=1e-5)
    assert whole.shape == (1,) + out[1:] and not torch.allclose(whole[0], alone[0], atol=1e-3)


def test_gaitset_sees_a_set_and_gaitpart_a_sequence():
    x = _sils(1, 8, seed=3)
    shuffled = x[:, torch.randperm(8, generator=torch.Generator().manual_seed(0))]
    repeated = torch.cat([x, x[:, :3]], dim=1)   # frames seen twice
    gaitset, gaitpart = GaitSet(**TINY_SET).eval(), GaitPart(**TINY_PART).eval()
    with torch.no_grad():
        e = gaitset(x)["inference_feat"]["embeddings"]
        # GaitSet pools with a max over frames after every block: order and repeats do not matter
        assert torch.allclose(gaitset(shuffled)["inference_feat"]["embeddings"], e, atol=1e-5)
        assert torch.allclose(gaitset(repeated)["inference_feat"]["embeddings"], e, atol=1e-5)
        # GaitPart's temporal convolutions see the order
        assert not torch.allclose(gaitpart(shuffled)["inference_feat"]["embeddings"], gaitpart(x)["inference_feat"]["embeddings"], atol=1e-3)


def test_gaitset_forward_follows_opengaits_two_branches():
    """OpenGait's GaitSet.forward, written out with the model's own blocks and a hand-made pyramid."""
    m = GaitSet(**TINY_SET).eval()
    x = _sils(2, 5, seed=4).unsqueeze(1)   # [n, 1, s, h, w]

    def frames(block, v):   # a 2D block on every frame
        n, c, s, h, w = v.shape
        y = block(v.transpose(1, 2).reshape(n * s, c, h, w))
        return y.reshape(n, s, *y.shape[1:]).transpose(1, 2)

    def pyramid(v):   # bins 16, 8, 4, 2, 1 of whole rows (16 rows here), mean + max of each strip
        return torch.cat([torch.stack([strip.mean((-2, -1)) + strip.amax((-2, -1))
                                       for strip in v.chunk(b, dim=2)], dim=-1) for b in (16, 8, 4, 2, 1)], -1)

    with torch.no_grad():
        outs = frames(m.set_block1.forward_block, x)
        gl = m.gl_block2(outs.amax(2))
        outs = frames(m.set_block2.forward_block, outs)
        gl = m.gl_block3(gl + outs.amax(2))
        outs = frames(m.set_block3.forward_block, outs).amax(2)
        gl = gl + outs
        parts = torch.cat([pyramid(outs), pyramid(gl)], dim=-1)   # [n, c, 62]
        expected = torch.einsum("ncp,pcd->ndp", parts, m.Head.fc_bin)
        assert torch.allclose(m(x[:, 0])["inference_feat"]["embeddings"], expected, atol=1e-4)


def test_temporal_feature_aggregator_against_its_definition_written_out():
    """TFA per part j: max over t of sum_r (avg_r + max_r)(x_j)[t] * sigmoid(convs_r(x_j))[t], windows 3 and 5.

    As in OpenGait's ``TemporalFeatureAggregator``: the average pads with zeros and divides by the
    window (AvgPool1d's default), the max ignores the padding; the 1D convolutions pad to keep the length.
    """
    import torch.nn.functional as F

    tfa = TemporalFeatureAggregator(8, parts_num=3).eval()
    x = torch.randn(2, 8, 6, 3)   # [n, c, s, p]

    def window(v, k, reduce):   # [n, c, s] -> [n, c, s], a centred window of k frames
        pad = k // 2
        fill = 0.0 if reduce == "mean" else float("-inf")
        w = F.pad(v, (pad, pad), value=fill).unfold(-1, k, 1)
        return w.sum(-1) / k if reduce == "mean" else w.max(-1).values

    expected = []
    for j in range(3):
        v = x[..., j]
        total = 0
        for convs, k in ((tfa.conv1d3x1[j], 3), (tfa.conv1d3x3[j], 5)):
            first, second = convs[0].conv.weight, convs[2].conv.weight
            hidden = F.leaky_relu(F.conv1d(v, first, padding=1), 0.01)
            score = torch.sigmoid(F.conv1d(hidden, second, padding=second.shape[-1] // 2))
            total = total + (window(v, k, "mean") + window(v, k, "max")) * score
        expected.append(total.max(dim=-1).values)
    with torch.no_grad():
        assert torch.allclose(tfa(x), torch.stack(expected, dim=-1), atol=1e-5)


def test_focal_convolution_keeps_each_strip_to_itself():
    conv = FocalConv2d(2, 3, 3, 1, 1, halving=2)   # four strips of 4 rows
    x = torch.rand(1, 2, 16, 5)
    y = conv(x)
    x2 = x.clone()
    x2[:, :, 4:8] = torch.rand(1, 2, 4, 5)   # change the second strip only
    y2 = conv(x2)
    assert y.shape == (1, 3, 16, 5)
    assert torch.equal(y[:, :, :4], y2[:, :, :4]) and torch.equal(y[:, :, 8:], y2[:, :, 8:])
    assert not torch.allclose(y[:, :, 4:8], y2[:, :, 4:8])
    # halving 0 is the plain convolution
    plain = FocalConv2d(2, 3, 3, 1, 1, halving=0)
    assert torch.equal(plain(x), plain.conv(x))


def test_bad_backbone_layer_and_too_short_input_are_clear_errors():
    with pytest.raises(ConfigError, match="'XC-8'"):
        GaitPart(layers=("BC-8", "XC-8"))
    with pytest.raises(ValueError, match=r"\(8, 5\).*\(16, 8, 4, 2, 1\)"):
        GaitSet(**TINY_SET)(torch.rand(1, 2, 32, 22))   # 32x22 leaves 8 rows for 16 strips


@pytest.mark.parametrize("cls, kwargs, layers", [(GaitSet, TINY_SET, 11), (GaitPart, TINY_PART, 6 + 4 * 16 + 1)])
def test_lsq4_quantizes_every_convolution_and_the_head_and_trains(cls, kwargs, layers):
    m = quantize_model(cls(**kwargs), "lsq", 4, 4)
    bits = layer_bits(m)
    assert len(bits) == layers and set(bits.values()) == {(4, 4)}   # the temporal 1D convolutions too
    lengths = [4, 6]
    out = m(torch.cat([_sils(1, s, seed=s) for s in lengths], dim=1), seqL=lengths)["inference_feat"]["embeddings"]
    out.square().mean().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    steps = [p for name, p in m.named_parameters() if name.endswith("step")]
    assert len(steps) == 2 * layers and all(s.grad.abs().sum() > 0 for s in steps)
    assert m.Head.fc_bin.grad.abs().sum() > 0


@pytest.mark.parametrize("model, config, frames", list(PAPER_BITOPS))
def test_bitops_command_is_within_one_percent_of_the_paper(model, config, frames, capsys):
    assert main(["bitops", "--model", model, "--config", config, "--frames", str(frames), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {r["bits"]: r["bitops"] / 1e9 for r in data["rows"]}
    paper = PAPER_BITOPS[model, config, frames]
    assert abs(rows[32] - paper) / paper < 0.01, rows[32]
    assert rows[8] == pytest.approx(rows[32] / 16) and rows[4] == pytest.approx(rows[32] / 64)
    assert data["config"] == config


def test_bitops_count_every_run_of_every_convolution_by_hand():
    """GaitPart, CASIA-B, 100 frames of 64x44: the counter's MACs against a count by hand."""
    frames = 100
    costs = count_costs(build_model("gaitpart", config="casia-b"), torch.zeros(1, frames, H, W),
                        convention="paper")
    macs = {c.name: c.macs for c in costs}
    assert len(macs) == len(costs) == 71   # a focal convolution's strips add up in one entry
    # per frame: (out channels x rows x cols) x (in channels x kernel), summed over the six 2D convolutions
    backbone = (32 * 64 * 44 * (1 * 25) + 32 * 64 * 44 * (32 * 9) + 64 * 32 * 22 * (32 * 9)
                + 64 * 32 * 22 * (64 * 9) + 128 * 16 * 11 * (64 * 9) + 128 * 16 * 11 * (128 * 9))
    assert sum(v for k, v in macs.items() if k.startswith("Backbone")) == frames * backbone
    # per part and frame: 128 -> 32 (k 3), 32 -> 128 (k 1); 128 -> 32 (k 3), 32 -> 128 (k 3)
    tfa = 16 * (32 * 128 * 3 + 128 * 32 * 1 + 32 * 128 * 3 + 128 * 32 * 3)
    assert sum(v for k, v in macs.items() if k.startswith("TFA")) == frames * tfa
    assert macs["Head"] == 16 * 128 * 128
    # the temporal convolutions must count: without them the count misses Table 1 by more than 0.5 %
    assert abs((frames * backbone + 16 * 128 * 128) / 1e9 - 10.67) / 10.67 > 0.005
    assert summarize(costs)["bitops"] == frames * (backbone + tfa) + 16 * 128 * 128


def test_gaitset_bitops_count_the_global_branch_once_per_sequence():
    one, two = (summarize(count_costs(build_model("gaitset"), torch.zeros(1, s, H, W)))["macs"] for s in (1, 2))
    per_frame = two - one   # what one more frame adds: the three set blocks only
    set_blocks = (32 * 64 * 44 * 25 + 32 * 64 * 44 * 32 * 9 + 64 * 32 * 22 * 32 * 9 + 64 * 32 * 22 * 64 * 9
                  + 128 * 16 * 11 * 64 * 9 + 128 * 16 * 11 * 128 * 9)
    # gl_block2 runs at 32x22 (it pools after its convolutions, as set_block2 does), gl_block3 at 16x11
    gl_blocks = 64 * 32 * 22 * 32 * 9 + 64 * 32 * 22 * 64 * 9 + 128 * 16 * 11 * 64 * 9 + 128 * 16 * 11 * 128 * 9
    assert per_frame == set_blocks
    assert one - per_frame == gl_blocks + 62 * 128 * 256   # once per sequence: the global branch and the Head


def test_bitops_command_options_are_checked(capsys):
    assert main(["bitops", "--model", "gaitset", "--channels", "8", "16", "32", "64"]) == 2
    assert "--config" in capsys.readouterr().err
    assert main(["bitops", "--model", "gaitbase", "--config", "grew"]) == 2
    assert "--channels" in capsys.readouterr().err
    assert main(["bitops", "--model", "gaitpart", "--config", "gait3d"]) == 2
    assert "'gait3d'" in capsys.readouterr().err
    assert main(["bitops", "--model", "gaitpart", "--frames", "10", "--bits", "32"]) == 0
    assert "gaitpart: OpenGait's casia-b configuration, 10 frames of 64x44" in capsys.readouterr().out
