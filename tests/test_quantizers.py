"""LSQ, DoReFa and PACT quantizers, quantized layers and model conversion."""
import io
import math

import pytest
import torch
from torch import nn

from qgait_lab.errors import ConfigError, QGaitError
from qgait_lab.quant import (DoReFaActQuantizer, DoReFaWeightQuantizer, LayerPolicy,
                             LSQQuantizer, PACTQuantizer, QConv2d, QLinear, QuantizerOptions,
                             layer_bits, quantize_model, quantizer_penalty, quantizers, set_gradient,
                             set_k)


def test_lsq_init_is_two_mean_abs_over_sqrt_qp():
    w = torch.randn(32, 16, 3, 3)
    q = LSQQuantizer(4, is_weight=True, signed=True)
    q(w)
    assert q.step.item() == pytest.approx(2 * w.abs().mean().item() / math.sqrt(7), rel=1e-6)
    qc = LSQQuantizer(4, is_weight=True, signed=True, channels=32)
    qc(w)
    expected = 2 * w.abs().reshape(32, -1).mean(1) / math.sqrt(7)
    assert torch.allclose(qc.step.detach(), expected, rtol=1e-6)


@pytest.mark.parametrize("signed,channels", [(True, None), (True, 8), (False, None)])
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_lsq_values_lie_on_integer_grid_within_range(bits, signed, channels):
    x = torch.randn(8, 5, 3, 3) * 3
    if not signed:
        x = x.abs()
    q = LSQQuantizer(bits, is_weight=True, signed=signed, channels=channels)
    y = q(x)
    step = q.step.detach().view(-1, 1, 1, 1) if channels else q.step.detach()
    codes = y / step
    assert torch.allclose(codes, torch.round(codes), atol=1e-4)
    lo, hi = q.bounds
    assert codes.min() >= lo - 1e-4 and codes.max() <= hi + 1e-4


def test_lsq_signedness_decided_from_first_batch():
    q = LSQQuantizer(4, is_weight=False)
    q(torch.rand(10))
    assert q.bounds == (0, 15)
    q2 = LSQQuantizer(4, is_weight=False)
    q2(torch.randn(100))
    assert q2.bounds == (-8, 7)


def test_lsq_activation_grad_scale_uses_features_per_sample():
    q = LSQQuantizer(4, is_weight=False, signed=False)
    x = torch.rand(6, 10, 4, 4)
    assert q.grad_scale_factor(x) == pytest.approx(1 / math.sqrt(160 * 15))
    w = LSQQuantizer(4, is_weight=True, signed=True, channels=6)
    assert w.grad_scale_factor(x) == pytest.approx(1 / math.sqrt(160 * 7))


def test_lsq_step_stays_positive():
    q = LSQQuantizer(4, is_weight=True, signed=True)
    x = torch.randn(100)
    q(x)
    q.step.data.fill_(-1.0)
    y = q(x)
    assert torch.isfinite(y).all() and y.abs().max() < 1e-6


def test_dorefa_weights_in_unit_range_on_levels():
    w = torch.randn(1000) * 0.1
    y = DoReFaWeightQuantizer(3)(w)
    levels = torch.unique(y)
    assert levels.numel() <= 8 and y.abs().max() <= 1 + 1e-6
    # levels are 2 q / 7 - 1 for integers q
    q = (levels + 1) * 7 / 2
    assert torch.allclose(q, torch.round(q), atol=1e-5)


def test_dorefa_activation_clip_gradient():
    x = torch.tensor([-0.5, 0.3, 0.6, 1.5], requires_grad=True)
    y = DoReFaActQuantizer(2)(x)
    assert torch.allclose(y, torch.tensor([0.0, 1 / 3, 2 / 3, 1.0]))
    y.sum().backward()
    assert torch.equal(x.grad, torch.tensor([0.0, 1.0, 1.0, 0.0]))


def test_pact_alpha_gradient_and_penalty():
    q = PACTQuantizer(4, alpha_init=2.0, alpha_l2=0.01)
    x = torch.tensor([-1.0, 0.5, 1.0, 3.0, 4.0], requires_grad=True)
    y = q(x)
    assert y[0].item() == 0 and y[3].item() == pytest.approx(2.0) and y[4].item() == pytest.approx(2.0)
    y.sum().backward()
    assert q.alpha.grad.item() == pytest.approx(2.0)   # two inputs clipped at alpha
    assert torch.equal(x.grad, torch.tensor([0.0, 1.0, 1.0, 0.0, 0.0]))
    assert q.penalty().item() == pytest.approx(0.01 * 4.0)


def test_soft_gradient_switch_changes_backward_not_forward():
    x = torch.linspace(0.01, 1.2, 50, requires_grad=True)
    q = LSQQuantizer(4, is_weight=False, signed=False)
    y_ste = q(x)
    y_ste.sum().backward()
    g_ste = x.grad.clone()
    x.grad = None
    q.set_gradient("soft")
    q.set_k(4.0)
    y_soft = q(x)
    y_soft.sum().backward()
    assert torch.equal(y_ste, y_soft)
    assert not torch.allclose(g_ste, x.grad)


@pytest.mark.parametrize("bad", [0, 33, 2.5, "4", True])
def test_invalid_bits_are_refused(bad):
    with pytest.raises(ConfigError, match="bits"):
        LSQQuantizer(bad, is_weight=True)


@pytest.mark.parametrize("bad", [0.5, 0.0, -2, float("nan"), "x"])
def test_k_below_one_is_refused(bad):
    q = LSQQuantizer(4, is_weight=True, gradient="soft")
    with pytest.raises(ConfigError, match="k must be"):
        q.set_k(bad)


def test_unknown_method_and_gradient_are_refused():
    with pytest.raises(QGaitError, match="method"):
        quantize_model(nn.Linear(2, 2), "xnor", 4, 4)
    with pytest.raises(QGaitError, match="gradient"):
        QuantizerOptions(gradient="hard")


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.body(self.stem(x)).mean((2, 3)))


def test_quantize_model_swaps_any_module_and_keeps_names():
    m = Tiny()
    names_before = set(m.state_dict())
    quantize_model(m, "lsq", 4, 4)
    assert isinstance(m.stem, QConv2d) and isinstance(m.body[1], QConv2d)
    assert isinstance(m.head, QLinear)
    assert names_before <= set(m.state_dict())
    assert layer_bits(m) == {"stem": (4, 4), "body.1": (4, 4), "head": (4, 4)}


def test_policy_first_last_and_skip():
    m = quantize_model(Tiny(), "dorefa", 4, 4,
                       LayerPolicy(first_layer_bits=(8, 8), last_layer_bits=(32, 8)))
    assert layer_bits(m) == {"stem": (8, 8), "body.1": (4, 4), "head": (32, 8)}
    m = quantize_model(Tiny(), "pact", 4, 4, LayerPolicy(skip=("head",)))
    assert layer_bits(m)["head"] == (32, 32) and isinstance(m.head, nn.Linear)
    assert not isinstance(m.head, QLinear)


def test_set_k_and_gradient_reach_every_quantizer():
    m = quantize_model(Tiny(), "lsq", 4, 4)
    assert set_gradient(m, "soft") == 6
    assert set_k(m, 3.5) == 6
    assert all(q.gradient == "soft" and q.k.item() == 3.5 for q in quantizers(m))
    with pytest.raises(ConfigError):
        set_k(m, 0.5)


def test_pact_penalty_sums_over_layers():
    m = quantize_model(Tiny(), "pact", 4, 4, options=QuantizerOptions(pact_alpha_init=3.0,
                                                                       pact_alpha_l2=0.1))
    assert float(quantizer_penalty(m).detach()) == pytest.approx(3 * 0.1 * 9.0)


def _roundtrip(model_factory, method):
    torch.manual_seed(0)
    a = quantize_model(model_factory(), method, 4, 4)
    x = torch.rand(2, 1, 8, 8)
    a(x)  # initialise the data-driven quantizers
    a.eval()
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = quantize_model(model_factory(), method, 4, 4)
    b.load_state_dict(torch.load(buf, weights_only=True))
    b.eval()
    return a, b, x


@pytest.mark.parametrize("method", ["lsq", "dorefa", "pact"])
def test_state_dict_roundtrip_gives_identical_outputs(method):
    a, b, x = _roundtrip(Tiny, method)
    assert torch.equal(a(x), b(x))


def test_state_dict_roundtrip_keeps_lsq_initialisation_state():
    a, b, _ = _roundtrip(Tiny, "lsq")
    for qa, qb in zip(quantizers(a), quantizers(b)):
        assert qb.initialized and qa.signed == qb.signed
        assert torch.equal(qa.step, qb.step)
    # An uninitialised quantizer stays uninitialised through a round-trip.
    fresh = quantize_model(Tiny(), "lsq", 4, 4)
    other = quantize_model(Tiny(), "lsq", 4, 4)
    other.load_state_dict(fresh.state_dict())
    assert not any(q.initialized for q in quantizers(other))


def test_pact_alpha_gradient_of_half_precision_input_does_not_overflow():
    """Under fp16 AMP the activations and the (loss-scaled) gradient are half precision;
    alpha's gradient sums over the whole tensor, so it is accumulated in float32."""
    x32 = torch.linspace(-2.0, 12.0, 100_000).half().float()
    ref = PACTQuantizer(4, alpha_init=10.0)
    ref(x32).backward(torch.full_like(x32, 1000.0))
    q = PACTQuantizer(4, alpha_init=10.0)
    x16 = x32.half().requires_grad_()
    out = q(x16)
    out.backward(torch.full_like(out, 1000.0))
    assert out.dtype == torch.float16 and x16.grad.dtype == torch.float16
    assert q.alpha.grad.dtype == torch.float32 and torch.isfinite(q.alpha.grad)
    assert ref.alpha.grad.item() > 65504             # out of half range
    assert q.alpha.grad.item() == pytest.approx(ref.alpha.grad.item(), rel=1e-3)
