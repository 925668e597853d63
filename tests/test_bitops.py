"""BitOPs conventions: the paper's figures to two decimals, and the convolution-and-linear count.

The paper's values are Table 1 (Gait3D, 100 frames: 118.30 / 7.39 / 1.85 G) and Table 2a (GREW,
120 frames: 141.96 / 8.87 / 2.22 G). BatchNorm output elements are counted here by hooks of the
test's own, independently of the counter.
"""
import json

import pytest
import torch
from torch import nn

from qgait_lab.cli import build_parser, main
from qgait_lab.errors import ConfigError
from qgait_lab.models import build_model
from qgait_lab.quant import LayerPolicy, quantize_model
from qgait_lab.quant.bitops import (CONVENTIONS, DEFAULT_CONVENTION, bitops_table, count_costs,
                                    gaitbase_inference_layers, summarize)

PAPER = {  # (frames, classes): {bits: BitOPs in G}
    (100, 3000): {32: 118.30, 8: 7.39, 4: 1.85},    # Table 1, Gait3D
    (120, 20000): {32: 141.96, 8: 8.87, 4: 2.22},   # Table 2a, GREW
}


def _meta_gaitbase(classes=3000):
    with torch.device("meta"):  # shapes only: no time spent initialising 23 M weights
        return build_model("gaitbase", num_classes=classes)


def _gaitbase_rows(frames, classes, convention):
    return bitops_table(lambda: _meta_gaitbase(classes), [torch.zeros(1, frames, 64, 44)],
                        [32, 8, 4], include=gaitbase_inference_layers, convention=convention)


def _batchnorm_elements(model, x, skip=("BNNecks",)):
    """Output elements of every BatchNorm in one forward pass on the meta device (the test's own hooks)."""
    model = model.to("meta").eval()
    seen = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)) and not name.startswith(skip):
            module.register_forward_hook(lambda m, a, out: seen.append(out.numel()))
    with torch.no_grad():
        model(x.to("meta"))
    return sum(seen)


@pytest.mark.parametrize("frames, classes", list(PAPER))
def test_paper_convention_reproduces_tables_1_and_2a_to_two_decimals(frames, classes):
    rows = {r["bits"]: r for r in _gaitbase_rows(frames, classes, "paper")}
    for bits, paper in PAPER[frames, classes].items():
        assert round(rows[bits]["bitops"] / 1e9, 2) == paper, (frames, bits)
    # BatchNorm takes its convolution's bits, so the quantized rows are the full-precision row / 16 and / 64.
    assert rows[8]["bitops"] == pytest.approx(rows[32]["bitops"] / 16, rel=1e-12)
    assert rows[4]["bitops"] == pytest.approx(rows[32]["bitops"] / 64, rel=1e-12)
    plain = {r["bits"]: r for r in _gaitbase_rows(frames, classes, "conv-linear")}
    assert round(plain[32]["bitops"] / 1e9, 2) != PAPER[frames, classes][32]  # MACs alone miss it


@pytest.mark.parametrize("frames", [100, 120])
def test_the_conventions_differ_by_four_ops_per_batchnorm_element(frames):
    paper = {r["bits"]: r for r in _gaitbase_rows(frames, 3000, "paper")}
    plain = {r["bits"]: r for r in _gaitbase_rows(frames, 3000, "conv-linear")}
    bn = _batchnorm_elements(_meta_gaitbase(), torch.zeros(1, frames, 64, 44))
    for bits in (32, 8, 4):
        assert paper[bits]["macs"] == plain[bits]["macs"]  # MACs are MACs under either convention
        assert plain[bits]["bitops"] == pytest.approx(plain[bits]["macs"] * (bits / 32) ** 2, rel=1e-12)
        assert paper[bits]["bitops"] - plain[bits]["bitops"] == pytest.approx(4 * bn * (bits / 32) ** 2,
                                                                               rel=1e-9)


def test_counting_the_bnneck_head_would_miss_the_paper():
    whole = summarize(count_costs(_meta_gaitbase(), torch.zeros(1, 100, 64, 44),
                                  convention="paper"))
    assert round(whole["bitops"] / 1e9, 2) != PAPER[(100, 3000)][32]


def _small_net():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Conv2d(4, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Flatten(), nn.Linear(8 * 6 * 5, 3))


def test_batchnorm_folds_into_the_layer_before_it_at_its_bits():
    x = torch.zeros(2, 1, 6, 5)
    model = quantize_model(_small_net(), "lsq", 4, 4, LayerPolicy(first_layer_bits=(8, 8)))
    costs = count_costs(model, x, convention="paper")
    assert [c.name for c in costs] == ["0", "3", "7"]  # the BatchNorms have no entry of their own
    first, second, fc = costs
    assert (first.bn_ops, second.bn_ops, fc.bn_ops) == (4 * 2 * 4 * 30, 4 * 2 * 8 * 30, 0)
    assert first.macs == 2 * 4 * 30 * 9 and second.macs == 2 * 8 * 30 * 4 * 9
    assert first.bitops == pytest.approx((first.macs + first.bn_ops) * (8 / 32) ** 2)
    assert second.bitops == pytest.approx((second.macs + second.bn_ops) * (4 / 32) ** 2)
    plain = count_costs(model, x, convention="conv-linear")
    assert [c.bn_ops for c in plain] == [0, 0, 0] and [c.macs for c in plain] == [c.macs for c in costs]


def test_a_batchnorm_without_a_counted_layer_before_it_is_counted_at_32_bits():
    x = torch.zeros(2, 1, 6, 5)
    model = quantize_model(nn.Sequential(nn.BatchNorm2d(1), *_small_net()), "lsq", 4, 4)
    costs = count_costs(model, x, convention="paper")
    assert (costs[0].name, costs[0].kind, costs[0].macs, costs[0].w_bits) == ("0", "BatchNorm2d", 0, 32)
    assert costs[0].bitops == 4 * 2 * 30
    # the first convolution filtered out: its BatchNorm stands alone, at 32 bits
    costs = count_costs(model, x, include=lambda name, m: name != "1", convention="paper")
    assert [c.name for c in costs][:2] == ["0", "2"] and costs[1].bitops == 4 * 2 * 4 * 30


def test_unknown_convention_is_a_clear_error():
    with pytest.raises(ConfigError, match="conv-linear"):
        count_costs(_small_net(), torch.zeros(1, 1, 6, 5), convention="thop")
    with pytest.raises(ConfigError, match="'flops'"):
        bitops_table(_small_net, [torch.zeros(1, 1, 6, 5)], [32], convention="flops")


def test_cli_prints_its_convention_and_offers_both(capsys):
    assert main(["bitops", "--frames", "100"]) == 0
    out = capsys.readouterr().out
    # The command prints the paper's figures; the library's default is Sec. 4.1's conv-and-linear formula.
    assert DEFAULT_CONVENTION == "conv-linear" and "convention 'paper'" in out
    assert "118.30" in out and "7.39" in out and "1.85" in out
    assert main(["bitops", "--frames", "120", "--classes", "20000", "--convention", "conv-linear", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {r["bits"]: r for r in data["rows"]}
    assert data["convention"] == "conv-linear" and rows[32]["bitops"] == rows[32]["macs"]
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    option = next(a for a in sub.choices["bitops"]._actions if a.dest == "convention")
    assert sorted(option.choices) == sorted(CONVENTIONS)
