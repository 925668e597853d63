"""A short numerical self-check of the quantizers, printed by ``qgait-lab sanity`` and the demo.

Each check measures something and compares it with what the paper or LSQ
predicts; nothing here is hard-coded to pass.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import functional as QF
from .quantizers import DoReFaWeightQuantizer, LSQQuantizer, PACTQuantizer


@dataclass
class CheckResult:
    name: str
    passed: bool
    detail: str


def _check(name: str, error: float, tol: float, what: str) -> CheckResult:
    return CheckResult(name, bool(error <= tol), f"{what} = {error:.2e} (tolerance {tol:.0e})")


def run_sanity_checks(seed: int = 0) -> list[CheckResult]:
    gen = torch.Generator().manual_seed(seed)
    out: list[CheckResult] = []

    ints = torch.arange(-5, 6, dtype=torch.float64)
    err = max((QF.soft_round(ints, k) - ints).abs().max().item() for k in (1.0, 3.0, 10.0))
    out.append(_check("theta_k(n) = n at integers (Eq. 6)", err, 1e-12, "max |theta_k(n) - n|"))

    x = torch.linspace(0, 1, 200001, dtype=torch.float64)[:-1] + 0.5 / 200000
    err = max(abs(QF.soft_round_slope(x, k).mean().item() - 1.0) for k in (1.0, 5.0, 20.0))
    out.append(_check("mean of theta_k' over a unit interval is 1", err, 1e-6,
                      "max |mean slope - 1|"))

    v = torch.randn(4096, generator=gen, dtype=torch.float64) * 3
    # Convergence is pointwise, not uniform: theta_k(n + 1/2) = n + 1/2 for every k.
    away = (v - torch.floor(v) - 0.5).abs() > 0.1
    err = (QF.soft_round(v, 60.0) - torch.round(v))[away].abs().max().item()
    out.append(_check("theta_k -> round as k grows (k = 60, |d| > 0.1)", err, 1e-4,
                      "max |theta_k - round|"))
    err = (QF.soft_round(v, 1e-4) - v).abs().max().item()
    out.append(_check("theta_k -> identity as k -> 0 (k = 1e-4)", err, 1e-6, "max |theta_k - x|"))

    q = LSQQuantizer(4, is_weight=True, signed=True)
    w = torch.randn(64, 32, generator=gen)
    codes = q.integer_codes(q(w))  # initialises the step on the first call
    lo, hi = q.bounds
    off_grid = (codes - torch.round(codes)).abs().max().item()
    in_range = bool(((codes >= lo) & (codes <= hi)).all())
    out.append(CheckResult("LSQ w4 values on the integer grid within [-8, 7]",
                           off_grid < 1e-5 and in_range,
                           f"max distance to grid {off_grid:.1e}, in range: {in_range}"))

    q = LSQQuantizer(4, is_weight=False, signed=False)
    a = (torch.rand(1000, generator=gen) * 4).requires_grad_()
    q(a.detach())
    q.step.data.fill_(0.1)   # clip at 1.5: most of [0, 4) is outside the range
    q(a).sum().backward()
    outside = a.detach() / 0.1 > 15
    leak = a.grad[outside].abs().max().item()
    out.append(_check("no gradient outside the clip range (LSQ)", leak, 0.0, "max |grad| outside"))

    torch.manual_seed(seed)
    ok = torch.autograd.gradcheck(
        lambda t, s: QF.lsq_fake_quant(t, s, -8, 7, 1.0, "soft", 3.0, soft_forward=True),
        (torch.randn(20, dtype=torch.float64, generator=gen).requires_grad_(),
         torch.tensor(0.3, dtype=torch.float64, requires_grad=True)), raise_exception=False)
    out.append(CheckResult("soft gradient = autograd of soft forward (gradcheck, float64)", ok,
                           "torch.autograd.gradcheck " + ("passed" if ok else "FAILED")))

    dq = DoReFaWeightQuantizer(2)(torch.randn(512, generator=gen))
    levels = torch.unique(dq).numel()
    out.append(CheckResult("DoReFa w2 uses at most 4 levels in [-1, 1]",
                           levels <= 4 and dq.abs().max().item() <= 1.0 + 1e-6,
                           f"{levels} distinct values"))

    pq = PACTQuantizer(4, alpha_init=2.0)
    y = pq(torch.linspace(-1, 5, 601))
    out.append(CheckResult("PACT a4 output within [0, alpha] on 16 levels",
                           bool(y.min() >= 0 and y.max() <= 2.0 + 1e-6)
                           and torch.unique(y).numel() <= 16,
                           f"range [{y.min():.3f}, {y.max():.3f}], {torch.unique(y).numel()} levels"))
    return out


def format_report(results: list[CheckResult]) -> str:
    width = max(len(r.name) for r in results)
    lines = ["Quantizer sanity report"]
    for r in results:
        lines.append(f"  [{'ok' if r.passed else 'FAIL':>4}] {r.name:<{width}}  {r.detail}")
    lines.append(f"  {sum(r.passed for r in results)}/{len(results)} checks passed")
    return "\n".join(lines)
