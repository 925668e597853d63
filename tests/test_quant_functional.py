"""The soft quantizer theta_k (Eqs. 6-7), STE helpers and the LSQ fake-quant node."""
import math

import pytest
import torch

from qgait_lab.quant import functional as QF


def test_round_ste_forward_rounds_backward_is_identity():
    x = torch.tensor([0.2, 0.7, -1.6], requires_grad=True)
    y = QF.round_ste(x)
    assert torch.equal(y, torch.tensor([0.0, 1.0, -2.0]))
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones(3))


def test_grad_scale_scales_only_the_gradient():
    x = torch.tensor([1.5, -2.0], requires_grad=True)
    y = QF.grad_scale(x, 0.25)
    assert torch.equal(y, x.detach())
    (3 * y).sum().backward()
    assert torch.allclose(x.grad, torch.full((2,), 0.75))


@pytest.mark.parametrize("k", [1.0, 2.5, 10.0, 50.0])
def test_theta_k_passes_through_integers(k):
    n = torch.arange(-7, 8, dtype=torch.float64)
    assert torch.allclose(QF.soft_round(n, k), n, atol=1e-12)


def test_theta_k_tends_to_round_away_from_half_integers():
    x = torch.linspace(-3, 3, 6001, dtype=torch.float64)
    away = (x - torch.floor(x) - 0.5).abs() > 0.05
    errors = [(QF.soft_round(x, k) - torch.round(x))[away].abs().max().item()
              for k in (5.0, 20.0, 80.0, 200.0)]
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < 1e-6


def test_theta_k_tends_to_identity_as_k_vanishes():
    x = torch.linspace(-3, 3, 1001, dtype=torch.float64)
    errs = [(QF.soft_round(x, k) - x).abs().max().item() for k in (1.0, 0.1, 1e-3)]
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 1e-6


@pytest.mark.parametrize("k", [1.0, 3.0, 5.0, 12.0])
def test_slope_mean_over_unit_interval_is_one(k):
    # Midpoint rule on a fine grid over [n, n+1): theta_k rises by exactly 1.
    m = 400000
    x = 2.0 + (torch.arange(m, dtype=torch.float64) + 0.5) / m
    assert QF.soft_round_slope(x, k).mean().item() == pytest.approx(1.0, abs=1e-8)


def test_slope_matches_autograd_of_theta_k():
    x = torch.linspace(-2.9, 2.9, 257, dtype=torch.float64, requires_grad=True)
    QF.soft_round(x, 4.0).sum().backward()
    assert torch.allclose(x.grad, QF.soft_round_slope(x.detach(), 4.0), atol=1e-12)


def test_round_soft_grad_hard_forward_soft_backward():
    x = torch.tensor([0.1, 0.45, 0.55, 1.9], dtype=torch.float64, requires_grad=True)
    y = QF.round_soft_grad(x, 3.0)
    assert torch.equal(y, torch.round(x.detach()))
    y.sum().backward()
    assert torch.allclose(x.grad, QF.soft_round_slope(x.detach(), 3.0))


def test_soft_mode_requires_k():
    with pytest.raises(ValueError, match="needs a value of k"):
        QF.round_with(torch.zeros(2), "soft", None)


def _lsq_reference_step_grad(v, s, lo, hi, g):
    """LSQ's piecewise step gradient (Esser et al. 2019, Eq. 3) times g."""
    c = v / s
    inside = (c > lo) & (c < hi)
    per_element = torch.where(inside, torch.round(c) - c, torch.where(c <= lo, float(lo), float(hi)))
    return per_element, g


def test_lsq_step_gradient_equals_piecewise_formula_times_g():
    gen = torch.Generator().manual_seed(1)
    v = torch.randn(500, dtype=torch.float64, generator=gen) * 2
    s = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(500, dtype=torch.float64, generator=gen)
    g = 1.0 / math.sqrt(500 * 7)
    QF.lsq_fake_quant(v, s, -8, 7, g).mul(upstream).sum().backward()
    per_element, _ = _lsq_reference_step_grad(v, 0.2, -8, 7, g)
    expected = (upstream * per_element).sum() * g
    assert s.grad.item() == pytest.approx(expected.item(), rel=1e-10)
    # Clipped values exist on both sides, so all three branches were exercised.
    assert (v / 0.2 > 7).any() and (v / 0.2 < -8).any()


def test_lsq_value_gradient_masked_outside_clip_range():
    v = torch.linspace(-4, 4, 81, dtype=torch.float64, requires_grad=True)
    s = torch.tensor(0.25, dtype=torch.float64, requires_grad=True)
    for gradient, k in (("ste", None), ("soft", 3.0)):
        v.grad = None
        QF.lsq_fake_quant(v, s, -8, 7, 1.0, gradient, k).sum().backward()
        c = v.detach() / 0.25
        assert torch.all(v.grad[(c < -8) | (c > 7)] == 0)
        assert torch.all(v.grad[(c > -8) & (c < 7)] > 0)


@pytest.mark.parametrize("k", [1.0, 2.0, 6.0])
def test_soft_backward_equals_autograd_of_soft_forward(k):
    """gradcheck: the analytic soft gradient (incl. the derived step gradient) is exact."""
    gen = torch.Generator().manual_seed(2)
    v = (torch.randn(40, dtype=torch.float64, generator=gen) * 1.5).requires_grad_()
    s = torch.tensor(0.27, dtype=torch.float64, requires_grad=True)
    fn = lambda t, step: QF.lsq_fake_quant(t, step, -8, 7, 1.0, "soft", k, soft_forward=True)
    assert torch.autograd.gradcheck(fn, (v, s))


def test_soft_backward_matches_explicit_autograd_expression():
    """The fused node equals autograd through s * theta_k(clamp(v / s)) (soft forward)."""
    gen = torch.Generator().manual_seed(3)
    v1 = (torch.randn(300, dtype=torch.float64, generator=gen) * 2).requires_grad_()
    v2 = v1.detach().clone().requires_grad_()
    s1 = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    s2 = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    up = torch.randn(300, dtype=torch.float64, generator=gen)
    (QF.lsq_fake_quant(v1, s1, -8, 7, 1.0, "soft", 2.0, soft_forward=True) * up).sum().backward()
    ref = s2 * QF.soft_round(torch.clamp(v2 / s2, -8, 7), 2.0)
    (ref * up).sum().backward()
    assert torch.allclose(v1.grad, v2.grad, atol=1e-10)
    assert torch.allclose(s1.grad, s2.grad, atol=1e-10)


def test_hard_forward_soft_step_gradient_formula():
    """With the hard forward, d v_hat / d s = round(c) - c * theta_k'(c) inside the range."""
    v = torch.tensor([0.33, -0.71, 1.24, 5.0], dtype=torch.float64)
    s = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)
    QF.lsq_fake_quant(v, s, -4, 3, 1.0, "soft", 2.0).sum().backward()
    c = v / 0.2
    inside = (c > -4) & (c < 3)
    expected = torch.where(inside, torch.round(c) - c * QF.soft_round_slope(c, 2.0),
                           torch.full_like(c, 3.0)).sum()
    assert s.grad.item() == pytest.approx(expected.item(), rel=1e-12)


def test_lsq_bounds_signed_and_unsigned():
    assert QF.lsq_bounds(4, signed=True) == (-8, 7)
    assert QF.lsq_bounds(4, signed=False) == (0, 15)
    assert QF.lsq_bounds(8, signed=True) == (-128, 127)


@pytest.mark.parametrize("gradient", ["ste", "soft"])
def test_step_gradient_of_half_precision_input_does_not_overflow(gradient):
    """Under fp16 autocast (CUDA AMP) activations arrive in half precision and the
    loss is scaled by ~2^16, so the step gradient sums huge numbers of large terms.
    A half-precision sum overflows to inf (GradScaler would then skip every step);
    the sum is taken in the step's own float32."""
    g = torch.Generator().manual_seed(0)
    v32 = (torch.randn(200_000, generator=g) * 1.5).half().float()
    ref_v, ref_s = v32.clone().requires_grad_(), torch.tensor(0.3, requires_grad=True)
    QF.lsq_fake_quant(ref_v, ref_s, -8, 7, 1.0, gradient, 3.0).backward(torch.full_like(v32, 1000.0))
    v16, s = v32.half().requires_grad_(), torch.tensor(0.3, requires_grad=True)
    out = QF.lsq_fake_quant(v16, s, -8, 7, 1.0, gradient, 3.0)
    out.backward(torch.full_like(out, 1000.0))
    assert out.dtype == torch.float16 and v16.grad.dtype == torch.float16
    assert s.grad.dtype == torch.float32 and torch.isfinite(s.grad)
    assert abs(ref_s.grad.item()) > 65504            # the reference really is out of half range
    # What remains is the half-precision rounding of c = v / s itself.
    assert s.grad.item() == pytest.approx(ref_s.grad.item(), rel=0.03)
