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
# # 03 · Quantizers side by side: LSQ, DoReFa, PACT; the STE against the soft gradient
#
# *QGait lab, notebook 3 of 6. Paper: Sec. 3.1 (Eqs. 2–4), Sec. 3.2 (Eq. 7), Sec. 4.3 and Appendix A.2
# (Fig. 5). Baselines: LSQ (Esser et al., 2019), DoReFa-Net (Zhou et al., 2016), PACT (Choi et al., 2018).*
#
# The paper compares its quantizer with three baselines. All four share the same skeleton (scale,
# clip, round, scale back) and differ in *what is learned* and *how the gradient gets through the
# round*. This notebook puts them next to each other, derives their gradients, compares the STE with the
# slope of θ_k on the quantizers themselves, and finally runs quantization-aware training of a small
# GaitBase with θ_k' instead of the STE at several k, the experiment behind the paper's Fig. 5.
#
# **Learning goals.** After this notebook you can
#
# 1. draw the forward and backward pass of LSQ, DoReFa and PACT and say which parameter each one learns;
# 2. derive LSQ's step-size gradient and PACT's clip gradient, and check them against autograd;
# 3. derive the step-size gradient under θ_k (the soft forward) and compare it with the STE's;
# 4. measure the mean and the spread of the soft gradient through a real quantizer, and match them with
#    notebook 01's formulas;
# 5. run the experiment behind Fig. 5 at lab scale (quantization-aware training with θ_k' instead of the
#    STE, at several k) and read its loss curves critically.
#
# **How to work.** Run all cells. Exercises (✏️) are checked by `qgait_lab.checks`. The training runs at the
# end take about a minute in fast mode (`QGAIT_FAST=1`); on a laptop CPU otherwise, about 8 minutes plus
# the full-precision model, which they share with notebooks 04–06 (`NAME`), so whichever runs first
# trains it (about 25 minutes with `FIG5_START = "scratch"`).

# %%
from qgait_lab.training.runtime import fast_mode

# %% tags=["parameters"]
PRESET = "tiny-cpu"       # configuration preset for the Fig. 5 runs (see notebook 04)
NAME = "lab"              # runs/<NAME>/, shared with notebooks 04-06 (the full-precision model is reused)
BITS = 4
FIG5_KS = [1, 3, 5, 10]   # the k of the soft runs; the STE run is always added
OVERRIDES = []            # extra --set style overrides, e.g. ["stage1.iterations=300"]
RUN_FIG5 = True           # train the Fig. 5 models
FIG5_START = "fp"         # "fp": stage 1 from the full-precision model (about 8 min on a laptop CPU);
                          # "scratch": from a random initialisation, as reproduce --what fig5 (about 25 min)
FAST = fast_mode()        # QGAIT_FAST=1 (or CI): smoke-test budgets; numbers are then meaningless

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Image, Markdown, display

from qgait_lab import checks
from qgait_lab import theory as T
from qgait_lab.quant import DoReFaActQuantizer, DoReFaWeightQuantizer, LSQQuantizer, PACTQuantizer
from qgait_lab.training.config import load_config
from qgait_lab.training.pipeline import Experiment
from qgait_lab.viz import loss_curves_figure, quantizer_response, quantizer_responses_figure, read_metrics
from qgait_lab.widgets import setup_matplotlib

setup_matplotlib()
# In fast mode the lab notebooks share one smaller SynthGait, so that all six run in a few minutes.
LAB_FAST_OVERRIDES = ["data.synth={n_ids: 7, n_train: 4, frames: 6, views: ['018', '090']}", "data.frames=4"]
overrides = (LAB_FAST_OVERRIDES if FAST and PRESET == "tiny-cpu" else []) + list(OVERRIDES)
print(f"fast mode: {FAST}; preset {PRESET}; overrides {overrides}")

# %% [markdown]
# ## 1. One skeleton, three quantizers
#
# With a step v and clip bounds r₁, r₂ (paper Eqs. 2–3):
# $\bar x = \lfloor \mathrm{clamp}(x/v, r_1, r_2)\rceil$, $\hat x = \bar x\cdot v$.
#
# | | what it quantizes | learned | range |
# |---|---|---|---|
# | **LSQ** | weights and activations | the step v (gradient scaled by g = 1/√(N·Q_P)) | signed [−2^{b−1}, 2^{b−1}−1] or unsigned [0, 2^b−1] |
# | **DoReFa** | weights: tanh, normalise to [0, 1], quantize, map to [−1, 1]; activations: clip to [0, 1] | nothing | fixed |
# | **PACT** | activations clipped at a learned α (weights as DoReFa) | α, with an L2 penalty | [0, α] |
#
# All three use the STE for the round (Eq. 4): slope 1 inside the range, 0 outside. Below, each quantizer
# from `qgait_lab.quant` is swept over a range of inputs at **2 bits** (so the steps are visible); the
# derivatives are computed by autograd through the quantizer itself (`viz.quantizer_response`).

# %%
x_act = torch.linspace(-1.0, 4.0, 1001)
activations = {
    "LSQ activation (2 bit, step 0.8)": LSQQuantizer(2, is_weight=False, signed=False),
    "DoReFa activation (2 bit)": DoReFaActQuantizer(2),
    "PACT activation (2 bit, α = 2.5)": PACTQuantizer(2, alpha_init=2.5),
}
with torch.no_grad():
    activations["LSQ activation (2 bit, step 0.8)"](x_act)       # LSQ initialises its step on first use...
    activations["LSQ activation (2 bit, step 0.8)"].step.fill_(0.8)   # ...which we then fix for the picture
responses = {name: quantizer_response(q, x_act) for name, q in activations.items()}
quantizer_responses_figure(responses, "activation quantizers: forward (top), backward (bottom)");

# %% [markdown]
# Read the bottom row carefully:
#
# * **d out/d x** is the STE: 1 inside the range, 0 outside. LSQ clips at 3·0.8 = 2.4, DoReFa at 1,
#   PACT at α.
# * **LSQ's d out/d step** is a saw-tooth: round(c) − c inside the range (it tells the step in which
#   direction the nearest grid point lies), and the top code 3 above the range (a larger step lets
#   clipped values through). The gradient of the step is the sum of these over all inputs, times g.
# * **PACT's d out/d α** is 1 where the input is clipped and 0 elsewhere: α grows when many inputs are
#   clipped, and the L2 penalty pulls it back.
#
# Weights are signed; LSQ uses the signed range, DoReFa squashes them with tanh first:

# %%
x_w = torch.linspace(-2.0, 2.0, 801)
weights = {"LSQ weight (2 bit, signed)": LSQQuantizer(2, is_weight=True, signed=True),
           "DoReFa weight (2 bit)": DoReFaWeightQuantizer(2)}
quantizer_responses_figure({n: quantizer_response(q, x_w) for n, q in weights.items()},
                           "weight quantizers");

# %% [markdown]
# Note that DoReFa's weight quantizer is not elementwise: it normalises by max|tanh(w)| over the whole
# tensor, so each output depends on every input. Its "d out/d x" above is the diagonal of the Jacobian.
#
# ### ✏️ Exercise 3.1: LSQ's step gradient
#
# Derive $\partial\hat v/\partial s$ for $\hat v = s\cdot\lfloor\mathrm{clamp}(v/s, r_1, r_2)\rceil$ with the
# STE, per element and *without* LSQ's gradient scale g. Write `lsq_step_grad(v, step, bits, signed)`.

# %%
def lsq_step_grad(v: torch.Tensor, step: float, bits: int, signed: bool) -> torch.Tensor:
    """d v_hat / d step for each element of v (STE, no gradient scale)."""
    # YOUR CODE HERE
    raise NotImplementedError


checks.check_lsq_step_grad(lsq_step_grad)

# %% [markdown]
# ### ✏️ Exercise 3.2: PACT's clip gradient
#
# PACT computes $y = \mathrm{clamp}(x, 0, \alpha)$ and $y_q = \lfloor y\cdot L/\alpha\rceil\cdot\alpha/L$ with
# $L = 2^b - 1$, and treats the α inside the rounding as a constant. Write `pact_alpha_grad(x, alpha, bits)`,
# the per-element $\partial y_q/\partial\alpha$.

# %%
def pact_alpha_grad(x: torch.Tensor, alpha: float, bits: int) -> torch.Tensor:
    """d y_q / d alpha for each element of x."""
    # YOUR CODE HERE
    raise NotImplementedError


checks.check_pact_alpha_grad(pact_alpha_grad)

# %% [markdown]
# ## 2. The STE against the soft gradient
#
# QGait keeps LSQ and changes only the backward pass of the round (Eq. 7): inside the range the slope
# 1 becomes θ_k'(c). Switch an LSQ quantizer to `gradient="soft"` and compare, at 2 bits with step 1, so
# that c = x:

# %%
x = torch.linspace(-0.5, 3.5, 1601)
curves = {}
for label, gradient, k in (("STE", "ste", 1.0), ("θ_k', k = 1", "soft", 1.0), ("θ_k', k = 3", "soft", 3.0),
                           ("θ_k', k = 8", "soft", 8.0)):
    q = LSQQuantizer(2, is_weight=False, signed=False, gradient=gradient, k=k)
    with torch.no_grad():
        q(x)
        q.step.fill_(1.0)
    curves[label] = quantizer_response(q, x)

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
for label, r in curves.items():
    ax1.plot(r["x"], r["d/dx"], label=label)
    ax2.plot(r["x"], r["d/dstep"], label=label)
ax1.set(title="d v̂ / d x", xlabel="x (= c, step 1)")
ax2.set(title="d v̂ / d step (hard forward)", xlabel="x (= c, step 1)")
for ax in (ax1, ax2):
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# The input gradient is redistributed: large near the rounding thresholds (c = ½, 3/2, 5/2), small
# near the grid points. The step gradient changes too: with the hard forward it becomes
# round(c) − c·θ_k'(c) inside the range (see `quant.functional._LsqFakeQuant`).
#
# **How much gradient gets through, on average?** Measure the slope through the quantizer for inputs
# spread uniformly over the 4-bit range and compare with notebook 01: mean 1, second moment
# k(cosh k + 2)/(3 sinh k).

# %%
gen = torch.Generator().manual_seed(0)
inputs = torch.rand(200_000, generator=gen, dtype=torch.float64) * 14 + 0.5     # inside (0, 15)
rows = ["| gradient | mean slope | second moment | predicted second moment | variance |", "|---|---:|---:|---:|---:|"]
for label, gradient, k in (("STE", "ste", 1.0), ("soft, k = 1", "soft", 1.0), ("soft, k = 3", "soft", 3.0),
                           ("soft, k = 5", "soft", 5.0), ("soft, k = 10", "soft", 10.0)):
    q = LSQQuantizer(4, is_weight=False, signed=False, gradient=gradient, k=k).double()
    with torch.no_grad():
        q(inputs)
        q.step.fill_(1.0)
    v = inputs.clone().requires_grad_(True)
    (slope,) = torch.autograd.grad(q(v).sum(), v)
    predicted = 1.0 if gradient == "ste" else float(T.slope_second_moment_numpy(np.array([k]))[0])
    m1, m2 = float(slope.mean()), float((slope ** 2).mean())
    rows.append(f"| {label} | {m1:.4f} | {m2:.4f} | {predicted:.4f} | {m2 - m1 ** 2:.4f} |")
    assert abs(m1 - 1.0) < 1e-2 and abs(m2 / predicted - 1.0) < 2e-2
display(Markdown("\n".join(rows)))

# %% [markdown]
# Same mean, growing variance: this is the chain-rule reading of notebook 01, measured on the quantizer
# that training uses.
#
# ### ✏️ Exercise 3.3: the step gradient under θ_k
#
# With the *soft forward* (θ_k in the forward pass too, `soft_forward=True`), $\hat v = s\cdot\theta_k(c)$
# with $c = \mathrm{clamp}(v/s, r_1, r_2)$ is an honest differentiable function of s. Derive
# $\partial\hat v/\partial s$ and write `soft_step_grad(v, step, bits, signed, k)`. The checker compares it
# with plain autograd through `s * soft_round(clamp(v / s))`. (`qgait_lab.quant.functional` has
# `soft_round` and `soft_round_slope`.)

# %%
def soft_step_grad(v: torch.Tensor, step: float, bits: int, signed: bool, k: float) -> torch.Tensor:
    """d/ds [s * theta_k(clamp(v / s, lo, hi))] for each element of v."""
    # YOUR CODE HERE
    raise NotImplementedError


checks.check_soft_step_grad(soft_step_grad)

# %% [markdown]
# ## 3. Fig. 5 at lab scale: quantization-aware training with θ_k from the first step
#
# Appendix A.2 trains the network with the soft quantizer at several k and reports that "as k increases,
# the convergence speed of the network becomes very slow"; this is why QGait keeps the STE for stage 1.
# The appendix does not say where training starts. Every QAT run in the paper starts from the
# full-precision model (stage 1, LSQ practice), so we do the same: stage 1 of a 4-bit LSQ model, once with
# the STE (the LSQ baseline) and once with θ_k' at each k of `FIG5_KS`, everything else equal (Adam,
# lr 1e-4, the preset's stage-1 budget), and compare the loss curves and the accuracy reached.
#
# The other reading trains from a random initialisation, for the preset's full-precision budget (SGD,
# lr 0.1) at k ∈ {1, 3, 5, 10}: set `FIG5_START = "scratch"` (the same runs as
# `qgait-lab reproduce --what fig5`). At this scale a 4-bit GaitBase trained from scratch can fail to
# learn at all, whatever its gradient, which then says little about θ_k; compare both readings.

# %%
if FIG5_START not in ("fp", "scratch"):
    raise ValueError(f"FIG5_START must be 'fp' or 'scratch', got {FIG5_START!r}")
if RUN_FIG5 and FIG5_START == "scratch":
    from qgait_lab.reproduce import run_reproduce

    report = run_reproduce("fig5", seeds=1, preset=PRESET, overrides=overrides)
    plt.close("all")      # the figure is saved next to the report; show the saved file once
    display(Image(filename=str(report.path.parent / "fig5_loss_curves.png")))
    display(Markdown(report.markdown))
elif RUN_FIG5:
    base = overrides + [f"name={NAME}", f"quant.bits={BITS}", "stage2.iterations=0"]   # stage 1 only
    variants = {"STE": []}
    for k in FIG5_KS:
        variants[f"θ_k', k = {k:g}"] = ["stage1.gradient=soft", "stage1.k.kind=fixed",
                                         f"stage1.k.start={k}", f"stage1.k.max={k}"]
    fig5 = {label: Experiment(load_config(PRESET, base + extra)).run("lsq") for label, extra in variants.items()}
    loss_curves_figure({label: [r.stages[-1].run_dir] for label, r in fig5.items()},
                       keys=("loss", "triplet", "ce"));
else:
    print("RUN_FIG5 is False: skipping the training runs.")

# %% [markdown]
# The curves are noisy at this scale, so summarise each run by its mean loss over the last fifth of the
# iterations and by the Rank-1 it reaches (the `"scratch"` report above has its own table):

# %%
if RUN_FIG5 and FIG5_START == "fp":
    lines = ["| stage 1 with | mean loss, last fifth | Rank-1 after stage 1 | full precision |",
             "|---|---:|---:|---:|"]
    final_loss = {}
    for label, r in fig5.items():
        losses = [rec["loss"] for rec in read_metrics(r.stages[-1].run_dir / "metrics.jsonl")
                  if rec.get("kind") == "train"]
        final_loss[label] = float(np.mean(losses[-max(1, len(losses) // 5):]))
        lines.append(f"| {label} | {final_loss[label]:.3f} | {r.metrics.get('rank1', float('nan')):.2f} | "
                     f"{r.stages[0].metrics.get('rank1', float('nan')):.2f} |")
    display(Markdown("\n".join(lines)))
    soft = [final_loss[f"θ_k', k = {k:g}"] for k in FIG5_KS]
    rising = all(a <= b for a, b in zip(soft, soft[1:]))
    print(f"final loss rises with k: {rising}; STE below every soft run: "
          f"{all(final_loss['STE'] <= v for v in soft)}")
    if FAST:
        print("fast mode: a handful of iterations; these numbers say nothing about convergence.")

# %% [markdown]
# **Reading the result.** The paper's explanation is a smaller mean gradient; notebook 01 showed that
# the mean slope in x is 1 for every k and the *variance* grows like k/3. Either way one expects slower
# convergence for large k. At this scale (a few dozen Adam steps from a good starting point on a small
# synthetic dataset) the effect can be small or drowned by noise, and the ordering may even come out
# reversed; before drawing conclusions, lengthen stage 1 (`OVERRIDES = ["stage1.iterations=300"]`) or
# repeat with other seeds (`"runtime.seed=1"`). Report what you see, including when it disagrees with
# the paper.
#
# ## Summary
#
# * LSQ learns the step, PACT the clip, DoReFa nothing; all three pass gradients with the STE.
# * LSQ's step gradient is round(c) − c inside the range and the clip bound outside; PACT's α gradient is
#   the indicator of clipping.
# * θ_k' keeps the mean slope at 1 through a real quantizer and adds variance that grows with k; using it
#   for the whole of quantization-aware training with a large k is where that variance should hurt most.
#
# **Next:** notebook 04 runs QGait's actual recipe (full precision, then STE, then a short θ_k
# fine-tune) with live loss curves.
