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
# # 03 · The soft quantizer θ_k, derived step by step
#
# *QGait lab, notebook 3 of 9. Paper: Sec. 3.2 (Eqs. 6–12) and Appendix A.1 (Eqs. 16–19).*
#
# Notebook 02 introduced the straight-through estimator (STE): in the backward pass, the round function's
# gradient is taken to be 1. QGait replaces it by the slope of a smooth staircase θ_k, and then argues,
# with a short calculation, that training with θ_k from the start converges worse than training with the
# STE. That calculation decides the whole training recipe (STE first, θ_k only in a short fine-tune), so
# in this notebook we redo it step by step with a computer-algebra system (sympy) and check every step.
#
# **Learning goals.** After this notebook you can
#
# 1. write down θ_k (Eq. 6), explain its limits k → 0 and k → ∞, and show that θ_k(n) = n at every integer;
# 2. derive Eqs. 10, 11 and 12 yourself: the integrand, its antiderivative, the bounds, and the
#    half-angle identities that turn the result into the paper's printed form;
# 3. redraw Fig. 3(b)(c);
# 4. apply the chain rule to obtain the moments of the slope *with respect to the quantizer's input x*,
#    and say what this changes in the paper's convergence argument (Eq. 8), and what it does not change;
# 5. audit the appendix integrals (Eqs. 16–19) and produce an errata table;
# 6. relate θ_k to DSQ's soft quantizer (Gong et al., 2019).
#
# **How to work.** Run the cells from top to bottom. Every derivation step is a sympy expression that
# the cell displays with a label and checks with an `assert`, so a cell fails loudly if a step is wrong.
# Exercises are marked ✏️: fill in the stub cell (`# Exercise N.M`), then run the check cell below it.
# A failed check says what is wrong and where; `checks.hint("3.2")` gives a nudge, `checks.hint("3.2", 2)`
# more. The library behind the derivations is `qgait_lab.lab.theory`; its `verify_*` functions re-check
# everything at the end.

# %%
import numpy as np
import sympy as sp
import torch
from IPython.display import Markdown, display

from qgait_lab.lab import checks  # noqa: F401  (the check cells import it again; this also explains NameErrors)
from qgait_lab.lab import theory as T
from qgait_lab.quant.functional import soft_round, soft_round_slope
from qgait_lab.experiments.figures import theta_k_figure
from qgait_lab.lab.figures import soft_quantizer_moments_figure
from qgait_lab.lab.widgets import setup_matplotlib

setup_matplotlib()
k, x, z, d = T.k, T.x, T.z, T.d
zero = T.symbolically_zero          # True when sympy reduces an expression to 0
HALF = sp.Rational(1, 2)


def show(label, expr, lhs=None):
    """Display one step of a derivation: its label in bold, then lhs = expr."""
    display(Markdown(T.formula_markdown(label, expr, lhs)))


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
show("Eq. 6, the soft quantizer", T.theta(), r"\theta_k(x)")
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

at_left_edge = sp.simplify(cell.subs(d, -HALF))
limit_small_k = sp.limit(cell, k, 0)
limit_large_k_right = sp.limit(cell.subs(d, d_pos), k, sp.oo)      # d > 0: above the threshold
limit_large_k_left = sp.limit(cell.subs(d, -d_pos), k, sp.oo)      # d < 0: below the threshold
show("θ_k − ⌊x⌋ on one cell, as a function of d", cell, r"\theta_k(x) - \lfloor x\rfloor")
show("at the left edge d = −½", at_left_edge, r"\theta_k - \lfloor x\rfloor\,\big|_{d=-1/2}")
show("as k → 0", limit_small_k, r"\lim_{k\to 0}\,(\theta_k - \lfloor x\rfloor)")
show("as k → ∞, above the threshold (d > 0)", limit_large_k_right, r"\lim_{k\to\infty}\,(\theta_k - \lfloor x\rfloor)")
show("as k → ∞, below the threshold (d < 0)", limit_large_k_left, r"\lim_{k\to\infty}\,(\theta_k - \lfloor x\rfloor)")

assert at_left_edge == 0                                   # theta_k(n) = n
assert zero(limit_small_k - (d + HALF))                    # floor(x) + d + 1/2 = x
assert limit_large_k_right == 1 and limit_large_k_left == 0        # the round function

# The torch implementation used in training agrees (exactly at integers, closely at the limits).
ints = torch.arange(-4, 5, dtype=torch.float64)
assert all(torch.allclose(soft_round(ints, kk), ints, atol=1e-12) for kk in (1.0, 3.0, 10.0))
xs = torch.linspace(-2.2, 2.2, 441, dtype=torch.float64)
assert torch.allclose(soft_round(xs, 1e-4), xs, atol=1e-6)
away = (xs - torch.floor(xs) - 0.5).abs() > 0.1
assert torch.allclose(soft_round(xs, 80.0)[away], torch.round(xs)[away], atol=1e-6)

# %% [markdown]
# ### ✏️ Exercise 3.1: implement θ_k
#
# Write `theta_k(x, k)`: `x` is a torch tensor of any shape and dtype (the checks use float64 and
# float32), `k` a Python `float` (the checks use k from 0.0001 to 80, for the limits). Return a tensor of
# x's shape, built with `torch.floor` and `torch.tanh` (no call of the library's `soft_round`), and leave x
# unchanged. The checker tests the three properties above and θ_k(x + 1) = θ_k(x) + 1, then compares your
# values with `qgait_lab.quant.soft_round` on a grid of x for k = 1, 2.5 and 7.

# %%
# Exercise 3.1
def theta_k(x: torch.Tensor, k: float) -> torch.Tensor:
    """Eq. 6: the soft quantizer."""
    # YOUR CODE HERE
    raise NotImplementedError

# %%
from qgait_lab.lab import checks
checks.check_theta_k(theta_k)

# %% [markdown]
# ## 2. The gradient of G (Eqs. 9–10), step by step
#
# The floor has zero gradient, so the backward pass sees only the tanh part. The paper names it G and
# writes it as a function of **z = k·d**:
#
# $$G(z) = \frac{\tanh z}{2\tanh(k/2)},\quad z\in[-\tfrac k2, \tfrac k2],\qquad
# \nabla G(z) = \tfrac12 \coth\!\big(\tfrac k2\big)\,\mathrm{sech}^2 z. \tag{9, 10}$$
#
# Eq. 10 takes three steps: differentiate (sympy writes the derivative of tanh as 1 − tanh²), use
# 1 − tanh² z = sech² z, and write 1/tanh(k/2) as coth(k/2).

# %%
G = T.G()
show("Eq. 9, the tanh part of θ_k, in z = k·d", G, "G(z)")
step_1 = sp.diff(G, z)
show("Step 1: sympy differentiates Eq. 9 in z", step_1, r"\nabla G(z)")
step_2 = sp.sech(z) ** 2 / (2 * sp.tanh(k / 2))
show("Step 2: with 1 − tanh² z = sech² z", step_2, r"\nabla G(z)")
assert zero(step_1 - step_2)
eq10 = T.grad_G_printed()
show("Step 3: with 1/tanh(k/2) = coth(k/2), the printed Eq. 10", eq10, r"\nabla G(z)")
assert zero(step_2 - eq10)

# %% [markdown]
# ## 3. The first-order term (Eq. 11)
#
# Eq. 8 bounds the expected change of the loss after one step of size η along a random direction v:
#
# $$\mathbb{E}[G(x_{t+1}) - G(x_t)] \le -\eta\,\langle \mathbb{E}(v_t), \nabla G(x_t)\rangle + \frac{\eta^2 L}{2}\,\mathbb{E}\|v_t\|^2. \tag{8}$$
#
# The first term is the descent we get, the second the price of noise. With z uniform on [−k/2, k/2],
# the paper evaluates the square of the mean of ∇G,
#
# $$\mathbb{E}^2[\nabla G(z)] = \Big(\frac1k\int_{-k/2}^{k/2} \tfrac12\coth\!\big(\tfrac k2\big)\,\mathrm{sech}^2 z\,dz\Big)^2, \tag{11}$$
#
# and finds it below 1. Before reading the paper's value, compute the mean yourself.
#
# ### ✏️ Exercise 3.2: the mean of ∇G
#
# Give $\mathbb{E}[\nabla G(z)]$ for z ~ U[−k/2, k/2] (the mean itself, not its square) as a sympy
# expression in `k`: use the symbol `k` of the first code cell (or any symbol named `k`; a string such as
# `"sqrt(k)"` is read by sympy too). Derive it on paper first; the integral needs no table of integrals.

# %%
# Exercise 3.2
mean_grad_G = None   # YOUR ANSWER: a sympy expression in k

# %%
from qgait_lab.lab import checks
checks.check_mean_grad_G(mean_grad_G)

# %% [markdown]
# ### Eq. 11, step by step
#
# 1. **The integrand** is ∇G(z), Eq. 10.
# 2. **An antiderivative** is G itself (Eq. 9): ∇G is its derivative. sympy confirms it by differentiating.
# 3. **The bounds:** G(k/2) − G(−k/2) = ½ + ½ = 1, because Eq. 9 divides by tanh(k/2) exactly so that G
#    reaches ±½ at the cell edges.
# 4. **The mean** divides the integral by the length k of the interval: E[∇G(z)] = 1/k, your answer to
#    Exercise 3.2.
# 5. **The square** is Eq. 11's printed value 1/k².

# %%
integrand_11 = T.grad_G_printed()
show("Step 1, the integrand: Eq. 10", integrand_11, r"\nabla G(z)")
antiderivative_11 = T.G()
show("Step 2, an antiderivative: G itself (Eq. 9)", antiderivative_11, r"\int \nabla G(z)\,dz")
assert zero(sp.diff(antiderivative_11, z) - integrand_11)          # it IS an antiderivative
at_bounds_11 = antiderivative_11.subs(z, k / 2) - antiderivative_11.subs(z, -k / 2)
show("Step 3, at the bounds: G(k/2) − G(−k/2)", at_bounds_11, r"\int_{-k/2}^{k/2} \nabla G(z)\,dz")
assert at_bounds_11 == 1
mean_11 = at_bounds_11 / k                                          # Step 4 (Exercise 3.2)
assert zero(mean_11 - T.mean_grad_G())                              # the library's derivation agrees
squared_11 = mean_11 ** 2
show("Step 5, the square of the mean (Step 4 divides Step 3 by k)", squared_11, r"\mathbb{E}^2[\nabla G(z)]")
assert zero(squared_11 - T.mean_grad_G_squared_printed())           # Eq. 11 as printed

# %% [markdown]
# One detail: Eq. 6 allows k = 1, where E²[∇G] = 1 exactly, so the paper's "< 1" is strict only for k > 1.
#
# ## 4. The second-order term (Eq. 12)
#
# $$\mathbb{E}[\|\nabla G(z)\|^2] = \frac1k\int_{-k/2}^{k/2}\Big(\tfrac12\coth\!\big(\tfrac k2\big)\,\mathrm{sech}^2 z\Big)^2 dz
# = \frac{\cosh k + 2}{3k\sinh k}. \tag{12}$$
#
# **Step 1, the integrand.** Squaring Eq. 10 gives a constant, ¼coth²(k/2), times sech⁴ z. The constant
# comes out of the integral; what is left needs an antiderivative of sech⁴, and sympy cannot find one:
# `sp.integrate(sp.sech(z)**4, z)` comes back unevaluated. That step is yours.

# %%
integrand_12 = T.grad_G_printed() ** 2
show("Step 1, the integrand: Eq. 10 squared", integrand_12, r"\|\nabla G(z)\|^2")
coefficient_12 = sp.coth(k / 2) ** 2 / 4
show("... which is a constant times sech⁴ z; the constant", coefficient_12, r"\|\nabla G(z)\|^2 / \mathrm{sech}^4 z")
assert zero(integrand_12 - coefficient_12 * sp.sech(z) ** 4)
assert isinstance(sp.integrate(sp.sech(z) ** 4, z), sp.Integral)   # sympy gives up

# %% [markdown]
# ### ✏️ Exercise 3.3: an antiderivative of sech⁴
#
# Give a function F(z) with dF/dz = sech⁴ z, as a sympy expression in `z` (the symbol `z` of the first
# code cell, or any symbol named `z`). Any constant of integration is fine. `sp.sech`, `sp.tanh`,
# `sp.cosh` and `sp.diff` are at hand; do it on paper, then check your F with `sp.diff` before you run
# the check. The checker differentiates your F and compares F′ with sech⁴ at several z and symbolically.

# %%
# Exercise 3.3
sech4_antiderivative = None   # YOUR ANSWER: a sympy expression in z

# %%
from qgait_lab.lab import checks
checks.check_sech4_antiderivative(sech4_antiderivative)

# %% [markdown]
# ### What you found, and Eq. 12 step by step
#
# With u = tanh z, du = sech² z dz and sech⁴ z dz = (1 − tanh² z)·sech² z dz = (1 − u²) du, so
# **F(z) = tanh z − tanh³z / 3** is an antiderivative of sech⁴. The appendix writes the same function as
# tanh z·sech² z/3 + (2/3)·tanh z (Eq. 19, first line); Section 7 checks that form and a typo in the next line.
# With F, Eq. 12 takes four more steps:
#
# 2. **An antiderivative of the integrand** is ¼coth²(k/2)·F(z).
# 3. **The bounds:** F is odd, so F(k/2) − F(−k/2) = 2F(k/2); with coth(k/2)·tanh(k/2) = 1 the integral is
#    ½(coth(k/2) − tanh(k/2)/3).
# 4. **The mean** divides by the length k.
# 5. **The paper's form:** the half-angle identities tanh(k/2) = (cosh k − 1)/sinh k and
#    coth(k/2) = (cosh k + 1)/sinh k turn the mean into (cosh k + 2)/(3k sinh k), Eq. 12 as printed.

# %%
F = T.sech4_antiderivative(z)
assert zero(sp.diff(F, z) - sp.sech(z) ** 4)                        # F' = sech^4: F is an antiderivative
F_named = sp.Function("F")(z)
show("Step 2, an antiderivative of the integrand (F from Exercise 3.3)", coefficient_12 * F_named,
     r"\int \|\nabla G(z)\|^2\,dz")
assert zero(sp.diff(coefficient_12 * F, z) - integrand_12)
at_bounds_12 = coefficient_12 * (F.subs(z, k / 2) - F.subs(z, -k / 2))
show("Step 3, at the bounds ±k/2", at_bounds_12, r"\int_{-k/2}^{k/2} \|\nabla G(z)\|^2\,dz")
tidy_12 = (sp.coth(k / 2) - sp.tanh(k / 2) / 3) / 2
show("... and with coth(k/2)·tanh(k/2) = 1", tidy_12, r"\int_{-k/2}^{k/2} \|\nabla G(z)\|^2\,dz")
assert zero(at_bounds_12 - tidy_12)
mean_12 = tidy_12 / k
show("Step 4, divided by the length k of the interval", mean_12, r"\mathbb{E}[\|\nabla G(z)\|^2]")

# %%
half_angle = T.half_angle_identities(k)
for half, full in half_angle.items():
    show("a half-angle identity", full, sp.latex(half))
    assert zero(half - full)
paper_12 = sp.together(mean_12.subs(half_angle))
show("Step 5, with the half-angle identities: Eq. 12 as printed", paper_12, r"\mathbb{E}[\|\nabla G(z)\|^2]")
assert sp.simplify(paper_12 - T.second_moment_grad_G_printed()) == 0
assert zero(mean_12 - T.second_moment_grad_G())                     # the library's derivation agrees

# %% [markdown]
# **Do these assertions have teeth?** A check that cannot fail proves nothing. The library's verifiers,
# which compare a claim with the derivation both symbolically and by a seeded Monte-Carlo estimate
# (200,000 samples for each of five values of k), must refute plausible-looking wrong variants, such as a
# dropped factor of k or a square in the wrong place:

# %%
wrong_variants = {
    "Eq. 12 without the 1/k": T.verify_eq12((sp.cosh(k) + 2) / (3 * sp.sinh(k))),
    "Eq. 12 with cosh k + 1": T.verify_eq12((sp.cosh(k) + 1) / (3 * k * sp.sinh(k))),
    "Eq. 11 with the mean in place of its square": T.verify_eq11(mean_11),
    "Eq. 10 without coth(k/2)": T.verify_eq10(sp.sech(z) ** 2 / 2),
}
display(Markdown("**The verifiers on wrong variants** (each must say no)\n\n" + T.checks_markdown(wrong_variants)))
assert not any(holds for holds, _ in wrong_variants.values())

display(Markdown("**The verifiers on the printed Eqs. 10–12** (each must say yes)\n\n" + T.checks_markdown(
    {"Eq. 10": T.verify_eq10(), "Eq. 11": T.verify_eq11(), "Eq. 12": T.verify_eq12()})))
assert T.verify_eq10()[0] and T.verify_eq11()[0] and T.verify_eq12()[0]

# %% [markdown]
# ## 5. The chain-rule reading
#
# The network never differentiates with respect to z. The quantizer's input is x, and inside a cell
# z = k·d with dd/dx = 1, so
#
# $$\frac{\partial\theta_k}{\partial x} = k\,\nabla G(k d).$$
#
# Eqs. 9–12 leave this factor k out. Putting it back changes the moments, now taken over x's fractional
# part, uniform on a unit interval (d ~ U[−½, ½]). The mean needs no integral at all: θ_k rises by exactly
# 1 over every unit interval, so the mean slope is that rise divided by the length 1.

# %%
slope_x = sp.diff(T.theta_on_cell(), d)
show("∂θ_k/∂x inside a cell: sympy differentiates Eq. 6 in d (dd/dx = 1)", slope_x, r"\partial\theta_k/\partial x")
chain = k * T.grad_G_printed().subs(z, k * d)
show("the chain rule: k times Eq. 10 at z = k·d", chain, r"k\,\nabla G(k d)")
assert zero(slope_x - chain)
rise = T.theta_on_cell().subs(d, HALF) - T.theta_on_cell().subs(d, -HALF)
show("the mean slope in x: the rise of θ_k over one cell, divided by its length 1", rise,
     r"\mathbb{E}_x[\partial\theta_k/\partial x]")
assert rise == 1
assert zero(k * mean_11 - rise)          # the same number as k times your E[∇G] of Exercise 3.2

# %% [markdown]
# The mean slope in x is exactly the STE's 1, for every k. The second moment is the next exercise.
#
# ### ✏️ Exercise 3.4: the second moment in x
#
# Give $\mathbb{E}_x[(\partial\theta_k/\partial x)^2]$, with d ~ U[−½, ½], as a sympy expression in `k`.
# You may build it from `T.second_moment_grad_G_printed()` (Eq. 12 as printed) and the symbol `k`.

# %%
# Exercise 3.4
slope_second_moment = None   # YOUR ANSWER: a sympy expression in k

# %%
from qgait_lab.lab import checks
checks.check_slope_second_moment(slope_second_moment)

# %% [markdown]
# ### What you found
#
# Square the chain rule and average over d ∈ [−½, ½]; the substitution z = k·d (dd = dz/k) maps the
# interval onto [−k/2, k/2]:
#
# $$\mathbb{E}_x\big[(\partial\theta_k/\partial x)^2\big] = \int_{-1/2}^{1/2} k^2\,\nabla G(kd)^2\,dd
# = k^2\cdot\frac1k\int_{-k/2}^{k/2}\nabla G(z)^2\,dz = k^2\cdot\text{Eq. 12} = \frac{k(\cosh k + 2)}{3\sinh k}.$$
#
# It tends to 1 as k → 0 (the STE) and grows like k/3 for large k. The cell below does the same
# computation in d, with the antiderivative F(k·d)·k/4·coth²(k/2) (by the chain rule, d/dd F(kd) = k F′(kd)),
# and asserts every step.

# %%
integrand_x = slope_x ** 2
antiderivative_x = coefficient_12 * k ** 2 * F.subs(z, k * d) / k
assert zero(sp.diff(antiderivative_x, d) - integrand_x)
at_bounds_x = antiderivative_x.subs(d, HALF) - antiderivative_x.subs(d, -HALF)     # the interval has length 1
show("the second moment in x, at the bounds d = ±½", at_bounds_x, r"\mathbb{E}_x[(\partial\theta_k/\partial x)^2]")
assert zero(at_bounds_x - k ** 2 * T.second_moment_grad_G_printed())               # k^2 times Eq. 12
assert zero(at_bounds_x - T.slope_second_moment())                                 # the library agrees
display(Markdown("**Limits and variance** (the library's checks)\n\n" + T.checks_markdown(
    {"the second moment tends to 1 as k → 0 and grows like k/3": T.verify_slope_asymptotics(),
     "its variance (second moment − 1) is ≥ 0 for every k": T.verify_slope_variance_nonnegative()})))
assert T.verify_slope_asymptotics()[0] and T.verify_slope_variance_nonnegative()[0]

# %% [markdown]
# ## 6. Fig. 3(b)(c), redrawn, and measured
#
# The blue curves are the paper's Fig. 3(b) and 3(c): E²[∇G] falls like 1/k² and E[‖∇G‖²] stays
# positive. The paper reads this as "the first-order (descent) term vanishes as k grows while the
# second-order (noise) term does not", hence "STE is superior in terms of convergence". The black and red
# curves are the same two quantities for the slope with respect to x, from Section 5.

# %%
soft_quantizer_moments_figure(k_max=10);

# %% [markdown]
# The same two numbers, measured on the torch implementation that training actually uses
# (`soft_round_slope`, the backward pass of Eq. 7), with inputs spread over many rounding cells:

# %%
gen = torch.Generator().manual_seed(0)
samples = torch.rand(2_000_000, generator=gen, dtype=torch.float64) * 16 - 8
rows = ["| k | mean slope in x (measured) | second moment in x (measured) | k²·Eq. 12 | Eq. 12 (paper, in z) |",
        "|---:|---:|---:|---:|---:|"]
for kk in (1.0, 2.0, 3.0, 5.0, 10.0):
    s = soft_round_slope(samples, kk)
    predicted = float(T.slope_second_moment_numpy(np.array([kk]))[0])
    rows.append(f"| {kk:g} | {float(s.mean()):.4f} | {float((s ** 2).mean()):.4f} | {predicted:.4f} | "
                f"{float(T.second_moment_grad_G_numpy(np.array([kk]))[0]):.4f} |")
    assert abs(float(s.mean()) - 1.0) < 5e-3
    assert abs(float((s ** 2).mean()) / predicted - 1.0) < 1e-2
display(Markdown("**The slope of θ_k, measured on 2,000,000 inputs**\n\n" + "\n".join(rows)))

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
# ## 7. The appendix integrals (Eqs. 16–19): an errata table
#
# Appendix A.1 derives the antiderivatives of sech² and sech⁴ that Eqs. 11–12 need. Checking an
# antiderivative is easy, as in Exercise 3.3: differentiate it and compare with the integrand.
# `theory.appendix_errata()` does this for every printed claim (numerically at sample points, and
# symbolically) and, where a claim fails, checks a corrected form the same way. Nothing in the table below
# is typed in by hand: each verdict is computed when the cell runs.

# %%
errata = T.appendix_errata()
display(Markdown("**Appendix A.1, claim by claim**\n\n" + T.errata_markdown(errata)))
display(Markdown("**The details of each check**\n\n" + T.checks_markdown(
    {row.equation: (row.holds, row.detail) for row in errata})))
verdicts = {row.equation: row.holds for row in errata}
# What sympy refutes: the reduction formula's boundary term (sinh where sech/tanh belong) and the
# second line of Eq. 19 (sinh^2 where sech^2 belongs).  Everything else holds.
assert verdicts == {"Eq. 16": True, "Eq. 16-17 (substitution)": True, "Eq. 17": True,
                    "Eq. 18": False, "Eq. 19, line 1": True, "Eq. 19, line 2": False}, verdicts
assert all(row.correction_holds for row in errata if not row.holds)

# %% [markdown]
# The errors are typographical: Eq. 18's boundary term should read sech^{m−2}(x)·tanh(x)/(m−1), and the
# second line of Eq. 19 should have sech²(x) where it prints sinh²(x). The first line of Eq. 19 and the final
# values of Eqs. 11–12 are right, so the main text does not inherit the slips.
#
# ## 8. θ_k is DSQ's soft quantizer
#
# Differentiable Soft Quantization (DSQ, Gong et al., 2019) approximates each rounding cell
# [l + iΔ, l + (i+1)Δ) by φ(x) = s·tanh(k(x − m_i)) around the cell centre m_i, with the scale
# s = 1/tanh(kΔ/2), so that φ reaches ±1 at the cell edges. DSQ does not tune k directly: it parametrises
# the sharpness by its *characteristic variable* α ∈ (0, 1), through
#
# $$k = \frac{1}{\Delta}\,\log\!\Big(\frac{2}{\alpha} - 1\Big).$$
#
# With Δ = 1 and l = 0, DSQ's soft quantizer is exactly Eq. 6 with the same k, and for a general step it is
# θ_{kΔ} applied to (x − l)/Δ; sympy checks both (and refutes a wrong cell index):

# %%
dsq_checks = {"DSQ (Δ = 1, l = 0) = θ_k": T.verify_dsq_equals_theta(),
              "DSQ (step Δ) = l + Δ·θ_{kΔ}((x − l)/Δ)": T.verify_dsq_general_step(),
              "DSQ with the wrong cell index ≠ θ_k (must say no)": T.verify_dsq_equals_theta(cell_shift=1)}
display(Markdown("**DSQ against Eq. 6**\n\n" + T.checks_markdown(dsq_checks)))
assert dsq_checks["DSQ (Δ = 1, l = 0) = θ_k"][0] and dsq_checks["DSQ (step Δ) = l + Δ·θ_{kΔ}((x − l)/Δ)"][0]
assert not dsq_checks["DSQ with the wrong cell index ≠ θ_k (must say no)"][0]

# %% [markdown]
# ### ✏️ Exercise 3.5: DSQ's α
#
# Which α makes DSQ (unit step, Δ = 1) the θ_k of Eq. 6? Solve DSQ's relation above for α and give it as
# a sympy expression in `k` (`sp.exp`, `sp.log`, `sp.tanh` are at hand).

# %%
# Exercise 3.5
dsq_alpha = None   # YOUR ANSWER: a sympy expression in k

# %%
from qgait_lab.lab import checks
checks.check_dsq_alpha(dsq_alpha)

# %% [markdown]
# ### What you found
#
# Exponentiating, 2/α − 1 = e^k, so α = 2/(1 + e^k) = **1 − tanh(k/2)**: α is the gap between the
# unscaled tanh at the cell edge, tanh(k/2), and its asymptote 1, which is how far the soft quantizer is
# from the hard round. DSQ's scale is then s = 1/(1 − α), the same rescaling as Eq. 6's 1/tanh(k/2).
#
# So QGait's contribution is not the soft quantizer itself but *where* it is used (the backward pass of a
# short fine-tune, after STE training) and *how k moves* (the GROW schedule). DSQ learns α during
# training; QGait schedules k.

# %%
alpha_from_k = sp.solve(sp.Eq(T.dsq_k_from_alpha(T.alpha, 1), k), T.alpha)
assert len(alpha_from_k) == 1 and zero(alpha_from_k[0] - T.dsq_alpha(k, 1))
assert zero(1 / (1 - T.dsq_alpha(k, 1)) - T.dsq_scale(k, 1))       # s = 1/(1 - alpha) = 1/tanh(k/2)
display(Markdown("**DSQ's α, checked by the library**\n\n" + T.checks_markdown(
    {"α solves k = log(2/α − 1), and s = 1/(1 − α) is Eq. 6's scale": T.verify_dsq_alpha()})))

# %% [markdown]
# ## 9. The whole main text, re-checked by the library
#
# Every claim this notebook derived, judged again by `qgait_lab.lab.theory`'s verifiers (symbolically, and
# numerically or by Monte Carlo), with the full detail of each check. Where a detail would print one of
# your answers, the table says so instead.

# %%
final = {
    "Eq. 10: ∇G = coth(k/2) sech²(z)/2": T.verify_eq10(),
    "Eq. 11: E²[∇G] as printed": T.verify_eq11(),
    "Eq. 12: E[‖∇G‖²] as printed": T.verify_eq12(),
    "the chain rule ∂θ_k/∂x = k ∇G(k d)": T.verify_chain_rule(),
    "the mean slope in x = 1 (the STE's)": T.verify_slope_mean(),
    "the second moment in x (Exercise 3.4)": T.verify_slope_second_moment(),
    "θ_k = DSQ (Δ = 1)": T.verify_dsq_equals_theta(),
    "DSQ's α (Exercise 3.5)": T.verify_dsq_alpha(),
}
display(Markdown("**Main text and derived claims**\n\n"
                 + T.checks_markdown(final, hide=[T.slope_second_moment_expected(), T.slope_second_moment()])))
assert all(holds for holds, _ in final.values())

# %% [markdown]
# ## Summary
#
# * θ_k interpolates between the identity (k → 0, the STE's backward) and the round function (k → ∞) and
#   never moves an integer.
# * Eqs. 10, 11 and 12 are correct as printed. Each is four or five steps: the integrand, an
#   antiderivative (G for Eq. 11, ¼coth²(k/2)·(tanh z − tanh³z/3) for Eq. 12), the bounds, the division by
#   k, and the half-angle identities. Appendix Eqs. 18 and 19 (second line) have typos, which sympy refutes
#   and whose corrections it confirms.
# * In the quantizer's own variable x, the soft slope has mean 1 (same as the STE) and second moment
#   k(cosh k + 2)/(3 sinh k) ≥ 1. The convergence penalty of θ_k is extra variance, not a smaller mean.
# * θ_k is DSQ with α = 1 − tanh(k/2).
#
# **Next:** notebook 04 lets you move k, the bit-width and the step with sliders and watch the same
# quantities, and the quantization of a real silhouette, change.
