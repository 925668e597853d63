# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-all
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · The soft quantizer θ_k, derived and checked
#
# *QGait lab, notebook 1 of 6. Paper: Sec. 3.2 (Eqs. 6–12) and Appendix A.1 (Eqs. 16–19).*
#
# QGait replaces the straight-through estimator (STE) of the round function by the slope of a smooth
# staircase θ_k, and then argues, with a short calculation, that training with θ_k from the start
# converges worse than training with the STE. That calculation decides the whole training recipe (STE
# first, θ_k only in a short fine-tune), so in this notebook we redo it with a computer-algebra system and
# check every step.
#
# **Learning goals.** After this notebook you can
#
# 1. write down θ_k (Eq. 6), explain its limits k → 0 and k → ∞, and show that θ_k(n) = n at every integer;
# 2. derive Eqs. 10, 11 and 12 and check them **symbolically and by Monte Carlo**, with assertions that
#    would fail if an equation were wrong;
# 3. redraw Fig. 3(b)(c);
# 4. apply the chain rule to obtain the slope *with respect to the quantizer's input x*: its mean is
#    exactly 1 and its second moment is k²·Eq. 12, and say what this changes in the paper's convergence
#    argument (Eq. 8), and what it does not change;
# 5. audit the appendix integrals (Eqs. 16–19) and produce an errata table;
# 6. relate θ_k to DSQ's soft quantizer (Gong et al., 2019).
#
# **How to work.** Run the cells from top to bottom. Exercises are marked ✏️; each ends with a call to a
# checker from `qgait_lab.checks` that tells you whether your answer is right and, if not, gives a hint.
# All derivations are in `qgait_lab.theory`; this notebook calls them and asserts on the results, so
# read the source of that module alongside.

# %%
import numpy as np
import sympy as sp
import torch
from IPython.display import Markdown, display

from qgait_lab import checks
from qgait_lab import theory as T
from qgait_lab.quant.functional import soft_round, soft_round_slope
from qgait_lab.viz import soft_quantizer_moments_figure, theta_k_figure
from qgait_lab.widgets import setup_matplotlib

setup_matplotlib()
sp.init_printing(use_latex="mathjax")
k, x, z, d = T.k, T.x, T.z, T.d

# %% [markdown]
# ## 1. The soft quantizer θ_k (Eq. 6)
#
# Write the input as its integer part plus an offset from the middle of the rounding cell,
# $d = x - \lfloor x\rfloor - \tfrac12 \in [-\tfrac12, \tfrac12)$. The paper defines
#
# $$\theta_k(x) = \lfloor x \rfloor + \frac{1}{2}\,\frac{\tanh(k d)}{\tanh(k/2)} + \frac12, \qquad k \ge 1. \tag{6}$$
#
# Inside one cell, θ_k is a rescaled tanh that climbs from ⌊x⌋ at the left edge to ⌊x⌋ + 1 at the
# right edge; the rescaling by tanh(k/2) is what makes the pieces join into a continuous staircase.

# %%
display(T.theta())
theta_k_figure(ks=(1, 3, 5, 10));

# %% [markdown]
# Three properties follow directly from Eq. 6; sympy confirms them on `theory.theta_on_cell()`, which is
# θ_k − ⌊x⌋ written as a function of d:
#
# * **θ_k(n) = n.** At an integer, d = −½ and tanh(−k/2)/tanh(k/2) = −1, so θ_k(n) = n + 0: θ_k never
#   changes an integer, whatever k.
# * **k → 0 gives the identity.** tanh(kd)/tanh(k/2) → 2d, so θ_k(x) → ⌊x⌋ + d + ½ = x. The slope is
#   then 1 everywhere: the STE's backward pass.
# * **k → ∞ gives the round function.** tanh(kd)/tanh(k/2) → sign(d), so θ_k jumps from ⌊x⌋ to ⌊x⌋ + 1 at
#   d = 0, the rounding threshold.

# %%
cell = T.theta_on_cell()
d_pos = sp.Symbol("d_pos", positive=True)

at_left_edge = sp.simplify(cell.subs(d, -sp.Rational(1, 2)))
limit_small_k = sp.limit(cell, k, 0)
limit_large_k_right = sp.limit(cell.subs(d, d_pos), k, sp.oo)      # d > 0: above the threshold
limit_large_k_left = sp.limit(cell.subs(d, -d_pos), k, sp.oo)      # d < 0: below the threshold
display(Markdown(f"θ_k − ⌊x⌋ at d = −½: `{at_left_edge}`; as k → 0: `{limit_small_k}`; "
                 f"as k → ∞: `{limit_large_k_right}` for d > 0 and `{limit_large_k_left}` for d < 0."))

assert at_left_edge == 0                                   # theta_k(n) = n
assert sp.simplify(limit_small_k - (d + sp.Rational(1, 2))) == 0   # floor(x) + d + 1/2 = x
assert limit_large_k_right == 1 and limit_large_k_left == 0        # the round function

# The torch implementation used in training agrees (exactly at integers, closely at the limits).
ints = torch.arange(-4, 5, dtype=torch.float64)
assert all(torch.allclose(soft_round(ints, kk), ints, atol=1e-12) for kk in (1.0, 3.0, 10.0))
xs = torch.linspace(-2.2, 2.2, 441, dtype=torch.float64)
assert torch.allclose(soft_round(xs, 1e-4), xs, atol=1e-6)
away = (xs - torch.floor(xs) - 0.5).abs() > 0.1
assert torch.allclose(soft_round(xs, 80.0)[away], torch.round(xs)[away], atol=1e-6)

# %% [markdown]
# ### ✏️ Exercise 1.1: implement θ_k
#
# Write `theta_k(x, k)` for a tensor `x` using only `torch.floor` and `torch.tanh` (no library call). The
# checker compares it with `qgait_lab.quant.soft_round` on 1,294 points, integers and half-integers
# included.

# %%
def theta_k(x: torch.Tensor, k: float) -> torch.Tensor:
    """Eq. 6: the soft quantizer."""
    # YOUR CODE HERE
    raise NotImplementedError


checks.check_theta_k(theta_k)

# %% [markdown]
# ## 2. The gradient of G (Eqs. 9–10)
#
# The floor has zero gradient, so the backward pass sees only the tanh part. The paper names it G and
# writes it as a function of **z = k·d**:
#
# $$G(z) = \frac{\tanh z}{2\tanh(k/2)},\quad z\in[-\tfrac k2, \tfrac k2],\qquad
# \nabla G(z) = \tfrac12 \coth\!\big(\tfrac k2\big)\,\mathrm{sech}^2 z. \tag{9, 10}$$
#
# `verify_eq10` differentiates Eq. 9 with sympy and compares the result with the printed Eq. 10 at a grid
# of points and symbolically. Every `verify_*` function returns `(holds, detail)`; `holds` is True only
# when both the numeric and the symbolic comparison agree.

# %%
display(T.G(), T.grad_G(), T.grad_G_printed())
holds, detail = T.verify_eq10()
print(detail)
assert holds, "Eq. 10 does not follow from Eq. 9"

# %% [markdown]
# ## 3. The first-order term (Eq. 11)
#
# Eq. 8 bounds the expected change of the loss after one step of size η along a random direction v:
#
# $$\mathbb{E}[G(x_{t+1}) - G(x_t)] \le -\eta\,\langle \mathbb{E}(v_t), \nabla G(x_t)\rangle + \frac{\eta^2 L}{2}\,\mathbb{E}\|v_t\|^2. \tag{8}$$
#
# The first term is the descent we get, the second the price of noise. With z uniform on
# [−k/2, k/2], the paper computes the mean of ∇G:
#
# $$\mathbb{E}^2[\nabla G(z)] = \Big(\frac1k\int_{-k/2}^{k/2} \tfrac12\coth\!\big(\tfrac k2\big)\,\mathrm{sech}^2 z\,dz\Big)^2 = \frac{1}{k^2} < 1. \tag{11}$$
#
# Since G is an antiderivative of ∇G, the integral is G(k/2) − G(−k/2) = ½ + ½ = 1, and the mean is 1/k. `verify_eq11` evaluates the mean symbolically, estimates it by Monte Carlo (200,000 samples
# for each of five values of k) and compares both with the printed claim.

# %%
display(T.mean_grad_G())
holds, detail = T.verify_eq11()
print(detail)
assert holds, "Eq. 11 is wrong"
assert T.verify_mean_grad_G(1 / k)[0]

# %% [markdown]
# One detail: Eq. 6 allows k = 1, where E²[∇G] = 1 exactly, so "< 1" is strict only for k > 1.
#
# ### ✏️ Exercise 1.2: the mean of ∇G
#
# Give E[∇G(z)] (the mean itself, not its square) as a sympy expression in `k` (use the symbol `k`
# defined above, or any symbol named `k`). Derive it on paper first.

# %%
mean_grad_G_answer = None   # YOUR ANSWER: a sympy expression in k

checks.check_mean_grad_G(mean_grad_G_answer)

# %% [markdown]
# ## 4. The second-order term (Eq. 12)
#
# $$\mathbb{E}[\|\nabla G(z)\|^2] = \frac1k\int_{-k/2}^{k/2}\Big(\tfrac12\coth\!\big(\tfrac k2\big)\,\mathrm{sech}^2 z\Big)^2 dz
# = \frac{\cosh k + 2}{3k\sinh k}. \tag{12}$$
#
# The integral needs an antiderivative of sech⁴, which is where the appendix comes in (Section 7).
# `theory.second_moment_grad_G()` uses tanh − tanh³/3, after sympy has confirmed by differentiation that it
# *is* an antiderivative of sech⁴.

# %%
display(T.second_moment_grad_G())
holds, detail = T.verify_eq12()
print(detail)
assert holds, "Eq. 12 is wrong"

# %% [markdown]
# **Do these assertions have teeth?** A check that cannot fail proves nothing. Feed the verifiers
# plausible-looking wrong variants, such as a dropped factor of k or a square in the wrong place; each must be
# refuted.

# %%
wrong_variants = {
    "Eq. 12 without the 1/k": (T.verify_eq12, (sp.cosh(k) + 2) / (3 * sp.sinh(k))),
    "Eq. 12 with cosh k + 1": (T.verify_eq12, (sp.cosh(k) + 1) / (3 * k * sp.sinh(k))),
    "Eq. 11 as 1/k (not squared)": (T.verify_eq11, 1 / k),
    "Eq. 10 without coth": (T.verify_eq10, sp.sech(z) ** 2 / 2),
}
for name, (verify, claim) in wrong_variants.items():
    holds, detail = verify(claim)
    print(f"{name:32s} -> holds={holds}: {detail[:110]}...")
    assert not holds, f"the checker failed to refute {name}"

# %% [markdown]
# ## 5. Fig. 3(b)(c), redrawn
#
# The blue curves are the paper's Fig. 3(b) and 3(c): E²[∇G] falls like 1/k² and E[‖∇G‖²] stays
# positive. The paper reads this as "the first-order (descent) term vanishes as k grows while the
# second-order (noise) term does not", hence "STE is superior in terms of convergence". The black and red
# curves are the same two quantities for the slope with respect to x; they are the subject of the next section.

# %%
soft_quantizer_moments_figure(k_max=10);

# %% [markdown]
# ## 6. The chain-rule reading
#
# The network never differentiates with respect to z. The quantizer's input is x, and inside a cell
# z = k·d with dd/dx = 1, so
#
# $$\frac{\partial\theta_k}{\partial x} = k\,\nabla G(k d).$$
#
# Eqs. 9–12 leave this factor k out. Putting it back changes both moments (x's fractional part uniform,
# i.e. d ~ U[−½, ½]):
#
# * **mean:** $\mathbb{E}_x[\partial\theta_k/\partial x] = k\cdot\tfrac1k = 1$, *exactly the STE's slope*,
#   for every k. This also follows without any integral: θ_k rises by exactly 1 over every unit interval;
# * **second moment:** $\mathbb{E}_x[(\partial\theta_k/\partial x)^2] = k^2\cdot\text{Eq. 12} = \dfrac{k(\cosh k + 2)}{3\sinh k}$,
#   which tends to 1 as k → 0 (the STE) and grows like k/3 for large k.

# %%
checks_chain = {
    "chain rule  dθ/dx = k·G'(k d)": T.verify_chain_rule(),
    "mean slope in x = 1": T.verify_slope_mean(),
    "second moment in x = k (cosh k + 2)/(3 sinh k)": T.verify_slope_second_moment(),
    "limits: 1 as k→0, ~k/3 as k→∞": T.verify_slope_asymptotics(),
    "variance ≥ 0 (Jensen)": T.verify_slope_variance_nonnegative(),
}
for name, (holds, detail) in checks_chain.items():
    print(f"{name:48s} {holds}  {detail[:90]}")
    assert holds, name
display(T.slope_mean(), T.slope_second_moment(), T.slope_variance())

# %% [markdown]
# The same two numbers, measured on the torch implementation that training actually uses
# (`soft_round_slope`, the backward pass of Eq. 7), with inputs spread over many rounding cells:

# %%
gen = torch.Generator().manual_seed(0)
samples = torch.rand(2_000_000, generator=gen, dtype=torch.float64) * 16 - 8
rows = ["| k | mean slope (measured) | second moment (measured) | k²·Eq. 12 | Eq. 12 (paper, in z) |",
        "|---:|---:|---:|---:|---:|"]
for kk in (1.0, 2.0, 3.0, 5.0, 10.0):
    s = soft_round_slope(samples, kk)
    predicted = float(T.slope_second_moment_numpy(np.array([kk]))[0])
    rows.append(f"| {kk:g} | {float(s.mean()):.4f} | {float((s ** 2).mean()):.4f} | {predicted:.4f} | "
                f"{float(T.second_moment_grad_G_numpy(np.array([kk]))[0]):.4f} |")
    assert abs(float(s.mean()) - 1.0) < 5e-3
    assert abs(float((s ** 2).mean()) / predicted - 1.0) < 1e-2
display(Markdown("\n".join(rows)))

# %% [markdown]
# ### What changes in the convergence argument, and what does not
#
# *What changes.* In the paper's reading the first-order term of Eq. 8 shrinks like 1/k², as if a
# large k starved the network of gradient. With respect to x it does not shrink at all: on average the soft
# quantizer passes exactly as much gradient as the STE, for every k. θ_k does not *reduce* the gradient;
# it *redistributes* it, concentrating it near the rounding thresholds (d ≈ 0, where a small change of x
# flips the rounded value) and starving inputs that sit near an integer. The argument "E²[∇G] = 1/k² → 0,
# so descent stalls" is therefore not the mechanism.
#
# *What does not change.* With the mean fixed at 1, the second moment is the whole story, and it is
# worse than the STE's: E[(∂θ_k/∂x)²] = k(cosh k + 2)/(3 sinh k) ≥ 1, with equality only as k → 0, so the
# slope has variance k(cosh k + 2)/(3 sinh k) − 1 > 0 that grows roughly like k/3. In Eq. 8 the noise term
# η²L/2·E‖v‖² is larger than with the STE while the descent term is the same, so for a fixed step size the
# bound is worse, and it worsens as k grows. The paper's conclusion (train with the STE, use θ_k only in a
# short fine-tune, and let k grow slowly to a moderate T such as 3–5, Table 3a) survives; only the reason
# shifts from "vanishing mean" to "growing variance".
#
# *Caveats that apply to both readings.* Eq. 8 is a bound for convex, L-smooth objectives, and a deep
# network is neither. The uniform distribution of the fractional part is a good model when the step is
# small against the spread of the values, and a poor one for a binary silhouette, whose values sit *on*
# the grid. Finally, the training code uses the hard round in the forward pass (Eq. 7 changes only the
# backward pass), so the "simulated quantization error" of θ_k is a property of the gradient, not of the
# forward values.

# %% [markdown]
# ### ✏️ Exercise 1.3: the second moment in x
#
# Give $\mathbb{E}_x[(\partial\theta_k/\partial x)^2]$ as a sympy expression in `k`. You may build it from
# `T.second_moment_grad_G_printed()`.

# %%
slope_second_moment_answer = None   # YOUR ANSWER: a sympy expression in k

checks.check_slope_second_moment(slope_second_moment_answer)

# %% [markdown]
# ## 7. The appendix integrals (Eqs. 16–19): an errata table
#
# Appendix A.1 derives the antiderivatives of sech² and sech⁴ that Eqs. 11–12 need. Checking an
# antiderivative is easy: differentiate it and compare with the integrand. `theory.appendix_errata()`
# does this for every printed claim (numerically at sample points, and symbolically) and, where a claim
# fails, checks a corrected form the same way. Nothing in the table below is typed in by hand: each verdict
# is computed when the cell runs.

# %%
errata = T.appendix_errata()
display(Markdown(T.errata_markdown(errata)))
verdicts = {row.equation: row.holds for row in errata}
# What sympy refutes: the reduction formula's boundary term (sinh where sech/tanh belong) and the
# second line of Eq. 19 (sinh^2 where sech^2 belongs).  Everything else holds.
assert verdicts == {"Eq. 16": True, "Eq. 16-17 (substitution)": True, "Eq. 17": True,
                    "Eq. 18": False, "Eq. 19, line 1": True, "Eq. 19, line 2": False}, verdicts
assert all(row.correction_holds for row in errata if not row.holds)

# %% [markdown]
# The errors are typographical: Eq. 18's boundary term should read sech^{m−2}(x)·tanh(x)/(m−1), and the
# second line of Eq. 19 should have sech²(x) where it prints sinh²(x). The first line of Eq. 19 and the final
# values of Eqs. 11–12 are right, so the main text does not inherit the slips. The main text's own claims
# and this notebook's derived ones, checked by the same machinery:

# %%
main = T.main_text_checks()
display(Markdown(T.errata_markdown(main)))
assert all(row.holds for row in main)

# %% [markdown]
# ## 8. θ_k is DSQ's soft quantizer
#
# Differentiable Soft Quantization (DSQ, Gong et al., 2019) approximates each rounding cell
# [l + iΔ, l + (i+1)Δ) by φ(x) = s·tanh(k(x − m_i)) around the cell centre m_i, with s = 1/tanh(kΔ/2) so that φ
# reaches ±1 at the cell edges, and parametrises the sharpness by α = 1 − tanh(kΔ/2) (the gap between tanh at
# the edge and its asymptote). With Δ = 1 and l = 0 this is exactly Eq. 6, and for a general step it is
# θ_{kΔ} applied to (x − l)/Δ.

# %%
for name, (holds, detail) in {"DSQ (Δ = 1) = θ_k": T.verify_dsq_equals_theta(),
                              "DSQ (step Δ) = l + Δ·θ_{kΔ}((x − l)/Δ)": T.verify_dsq_general_step(),
                              "α = 1 − tanh(k/2)": T.verify_dsq_alpha()}.items():
    print(f"{name:42s} {holds}  {detail[:80]}")
    assert holds, name
# ...and a wrong cell index is caught:
assert not T.verify_dsq_equals_theta(cell_shift=1)[0]

# %% [markdown]
# So QGait's contribution is not the soft quantizer itself but *where* it is used (the backward pass of a
# short fine-tune, after STE training) and *how k moves* (the GROW schedule). DSQ learns α during
# training; QGait schedules k.
#
# ### ✏️ Exercise 1.4: DSQ's α
#
# Express DSQ's α for a unit step as a sympy expression in `k`. Hint: compare the two scale factors.

# %%
dsq_alpha_answer = None   # YOUR ANSWER: a sympy expression in k

checks.check_dsq_alpha(dsq_alpha_answer)

# %% [markdown]
# ## Summary
#
# * θ_k interpolates between the identity (k → 0, the STE's backward) and the round function (k → ∞) and
#   never moves an integer.
# * Eqs. 10, 11 and 12 are correct as printed; Appendix Eqs. 18 and 19 (second line) have typos, which
#   sympy refutes and whose corrections it confirms.
# * In the quantizer's own variable x, the soft slope has mean 1 (same as the STE) and second moment
#   k(cosh k + 2)/(3 sinh k) ≥ 1. The convergence penalty of θ_k is extra variance, not a smaller mean.
# * θ_k is DSQ with α = 1 − tanh(k/2).
#
# **Next:** notebook 02 lets you move k, the bit-width and the step with sliders and watch the same
# quantities, and the quantization of a real silhouette, change.
