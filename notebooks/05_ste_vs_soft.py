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
# # 05 · The STE against the soft gradient, and Fig. 5 at lab scale
#
# *QGait lab, notebook 5 of 9. Paper: Sec. 3.1 (Eqs. 2–4), Sec. 3.2 (Eqs. 6–7), Sec. 4.3 and Appendix A.2
# (Fig. 5).*
#
# Notebook 02 built the quantizers (LSQ, DoReFa, PACT) and their straight-through estimator (STE);
# notebook 03 derived the soft quantizer θ_k and the moments of its slope; notebook 04 let you move k. This
# notebook puts θ_k' where QGait puts it, into the backward pass of a real LSQ quantizer: it compares it
# with the STE, derives the step-size gradient when θ_k is the forward pass too, predicts and measures
# how much the soft gradient spreads, and finally runs quantization-aware training of a small GaitBase
# with θ_k' instead of the STE at several k, the experiment behind the paper's Fig. 5.
#
# **Learning goals.** After this notebook you can
#
# 1. compare the STE with θ_k' on an LSQ quantizer: what changes in the forward pass, the input gradient
#    and the step gradient;
# 2. derive the step-size gradient under θ_k (the soft forward) and check it against autograd;
# 3. predict the spread of the soft gradient through a quantizer from Eq. 12 and match it with a
#    measurement;
# 4. run the experiment behind Fig. 5 at lab scale and say what its loss and Rank-1 table compares.
#
# **How to work.** Run all cells. Exercises (✏️) are checked by `qgait_lab.lab.checks`; `checks.hint("5.1")`
# gives a first hint, `checks.hint("5.1", 2)` the next. The training runs at the end use the lab budget
# by default (a few minutes on two CPU cores; `notebooks/README.md` has the measured times) and share the
# full-precision model with notebooks 06–08 (`NAME`), so whichever runs first trains it.

# %% tags=["parameters"]
PRESET = "tiny-cpu"       # configuration preset for the Fig. 5 runs (see notebook 06)
NAME = "lab"              # runs/<NAME>/, shared with notebooks 06-08 (the full-precision model is reused)
BUDGET = None  # "fast" | "lab" | "full"; None: fast under QGAIT_FAST=1, else the preset's lab budget
MODEL = "gaitbase"        # gaitbase | gaitset | gaitpart, at the preset's size for it
BITS = 4
FIG5_KS = [1, 3, 5, 10]   # the k of the soft runs; the STE run is always added
OVERRIDES = []            # extra --set style overrides, e.g. ["stage1.iterations=300"]
RUN_FIG5 = True           # train the Fig. 5 models
FIG5_START = "fp"         # "fp": stage 1 from the full-precision model (the lab budget: a few minutes);
                          # "scratch": from a random initialisation, as `qgait-lab reproduce --what fig5`

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Image, Markdown, display

from qgait_lab.lab import checks
from qgait_lab.lab import theory as T
from qgait_lab.lab.course.budget import default_budget, notebook_config
from qgait_lab.quant import LSQQuantizer
from qgait_lab.experiments.pipeline import Experiment
from qgait_lab.experiments.figures import loss_curves_figure, read_metrics
from qgait_lab.lab.figures import quantizer_response
from qgait_lab.lab.widgets import setup_matplotlib

setup_matplotlib()
budget = BUDGET or default_budget(PRESET)
print(f"preset {PRESET}, budget {budget!r}, overrides {OVERRIDES}")

# %% [markdown]
# ## 1. The STE against θ_k' on the quantizer
#
# An LSQ quantizer (notebook 02) computes $\hat v = s\cdot\lfloor\mathrm{clamp}(v/s, r_1, r_2)\rceil$ and
# passes gradients through the round with the STE (Eq. 4): slope 1 inside the clip range, 0 outside.
# QGait keeps LSQ and changes one thing (Eq. 7): `gradient="soft"` replaces the slope 1 inside the range by
# θ_k'(c), the slope of θ_k at c = v/s. Below, one unsigned 2-bit LSQ quantizer with step 1 (so that
# c = v) is swept over its range with each rule; every curve is computed by autograd through the
# quantizer itself (`viz.quantizer_response`).

# %%
x = torch.linspace(-0.5, 3.5, 1601)
curves = {}
for label, gradient, k in (("STE", "ste", 1.0), ("θ_k', k = 1", "soft", 1.0), ("θ_k', k = 3", "soft", 3.0),
                           ("θ_k', k = 8", "soft", 8.0)):
    q = LSQQuantizer(2, is_weight=False, signed=False, gradient=gradient, k=k)
    with torch.no_grad():
        q(x)                  # LSQ initialises its step on first use...
        q.step.fill_(1.0)     # ...which we then fix to 1 for the picture
    curves[label] = quantizer_response(q, x)

fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
for label, r in curves.items():
    axes[0].plot(r["x"], r["forward"], label=label, lw=3 if label == "STE" else 1.2)
    axes[1].plot(r["x"], r["d/dx"], label=label)
    axes[2].plot(r["x"], r["d/dstep"], label=label)
axes[0].set(title="forward pass", ylabel="v̂")
axes[1].set(title="input gradient", ylabel="d v̂ / d v")
axes[2].set(title="step gradient", ylabel="d v̂ / d step")
for ax in axes:
    ax.set(xlabel="v (= c, step 1)")
    ax.grid(alpha=0.3)
axes[1].legend(loc="upper left")
fig.tight_layout()

# %% [markdown]
# The input gradient is redistributed: large near the rounding thresholds (c = ½, 3/2, 5/2), small near
# the grid points, and still 0 outside the clip range. The step gradient changes too: LSQ's saw-tooth
# inside the range is reshaped by θ_k'. The forward pass is drawn for all four rules; look at how many
# curves you can tell apart there.
#
# ## 2. The step-size gradient under θ_k
#
# The paper's QGait keeps the hard round in the forward pass. If θ_k is used in the forward pass too
# (`soft_forward=True` in `qgait_lab.quant`), the quantizer is an honest differentiable function of its
# step, and its step gradient follows from calculus alone, without any estimator.
#
# ### ✏️ Exercise 5.1: the step gradient under θ_k
#
# With the soft forward, $\hat v = s\cdot\theta_k(c)$ with $c = \mathrm{clamp}(v/s, r_1, r_2)$. Derive
# $\partial\hat v/\partial s$ per element and write `soft_step_grad(v, step, bits, signed, k)`.
#
# * `v`: a float tensor of any shape; `step`: the step s > 0 (a float); `bits`, `signed`: the code range
#   $[r_1, r_2]$, as in notebook 02 (`qgait_lab.quant.functional.lsq_bounds(bits, signed)` returns it);
#   `k` ≥ 1. Return a tensor of the shape of `v`.
# * `qgait_lab.quant.functional` has `soft_round(x, k)` (θ_k, Eq. 6) and `soft_round_slope(x, k)` (θ_k').
# * The checker compares your function with autograd through the soft forward for 2 and 4 bits, signed
#   and unsigned, two steps and two k. Derive the formula by hand: the point is to see where each term
#   comes from.

# %%
# Exercise 5.1
def soft_step_grad(v: torch.Tensor, step: float, bits: int, signed: bool, k: float) -> torch.Tensor:
    """d/ds [s * theta_k(clamp(v / s, r1, r2))] for each element of v."""
    # YOUR CODE HERE
    raise NotImplementedError

# %%
from qgait_lab.lab import checks
checks.check_soft_step_grad(soft_step_grad)

# %% [markdown]
# Inside the clip range the result has two terms: θ_k(c) from the factor s, and a term in θ_k'(c) that
# comes through c = v/s; outside the range only the bound remains. As k grows, θ_k tends to the round and
# the result tends to LSQ's STE rule of notebook 02 wherever c is not on a rounding threshold.
#
# ## 3. How much gradient gets through, and how much it spreads
#
# Notebook 03 showed, for x spread uniformly over a cell, that the slope of θ_k in x has mean 1 for every
# k (Eq. 11 and the chain rule) and second moment k(cosh k + 2)/(3 sinh k) (Eq. 12 in x). A real
# quantizer sees many cells at once and scales its input by the step. Does that change the numbers?
#
# ### ✏️ Exercise 5.2: the spread of the soft gradient
#
# Write `slope_variance(k)`: the variance of the input gradient d v̂ / d v of an LSQ quantizer with
# `gradient="soft"` (θ_k', hard forward), for inputs spread uniformly over whole cells inside its clip
# range, at any step and bit width.
#
# * `k`: a float ≥ 1 (up to 50), or a numpy array of such floats; return a float, or an array of the
#   same shape.
# * `qgait_lab.lab.theory.slope_second_moment_numpy(k_array)` evaluates Eq. 12 in x on a numpy array of k.
# * The answer is exact, from the formulas: a Monte-Carlo estimate is not accurate enough to pass.

# %%
# Exercise 5.2
def slope_variance(k):
    """Var[d v_hat / d v] through an LSQ quantizer with theta_k', inputs uniform over whole cells."""
    # YOUR CODE HERE
    raise NotImplementedError

# %%
from qgait_lab.lab import checks
checks.check_slope_variance(slope_variance)

# %% [markdown]
# Now measure it: 200,000 inputs spread uniformly over 14 whole cells of a 4-bit quantizer with step 1,
# the slope of each by autograd through the quantizer, and the library's prediction (Eq. 12 in x, minus
# the squared mean 1) next to it. (Change the step in `q.step.fill_(1.0)` and run the cell again: the
# measured numbers stay where they are.)

# %%
gen = torch.Generator().manual_seed(0)
inputs = torch.rand(200_000, generator=gen, dtype=torch.float64) * 14 + 0.5     # 14 whole cells of (0, 15)
rows = ["| gradient | mean slope | second moment | variance (measured) | variance (Eq. 12 − 1) |",
        "|---|---:|---:|---:|---:|"]
for label, gradient, k in (("STE", "ste", 1.0), ("θ_k', k = 1", "soft", 1.0), ("θ_k', k = 3", "soft", 3.0),
                           ("θ_k', k = 5", "soft", 5.0), ("θ_k', k = 10", "soft", 10.0)):
    q = LSQQuantizer(4, is_weight=False, signed=False, gradient=gradient, k=k).double()
    with torch.no_grad():
        q(inputs)
        q.step.fill_(1.0)
    v = inputs.clone().requires_grad_(True)
    (slope,) = torch.autograd.grad(q(v).sum(), v)
    predicted = 0.0 if gradient == "ste" else float(T.slope_second_moment_numpy(np.array([k]))[0]) - 1.0
    m1, m2 = float(slope.mean()), float((slope ** 2).mean())
    rows.append(f"| {label} | {m1:.4f} | {m2:.4f} | {m2 - m1 ** 2:.4f} | {predicted:.4f} |")
display(Markdown("\n".join(rows)))

# %% [markdown]
# Same mean, growing variance: the chain-rule reading of notebook 03, measured on the quantizer that
# training uses. The step cancels (v̂ = s·θ_k(v/s) has slope θ_k'(v/s)), and so does the number of cells.
# For large k the variance grows like k/3 − 1: most inputs get almost no gradient, a few near the
# thresholds get a lot.
#
# ## 4. Fig. 5 at lab scale: quantization-aware training with θ_k from the first step
#
# Appendix A.2 trains the network with the soft quantizer at several k and reports that "as k increases,
# the convergence speed of the network becomes very slow"; this is why QGait keeps the STE for stage 1.
# The appendix does not say where training starts. Every QAT run in the paper starts from the
# full-precision model (stage 1, LSQ practice), so we do the same: stage 1 of a 4-bit LSQ model, once with
# the STE (the LSQ baseline) and once with θ_k' at each k of `FIG5_KS`, everything else equal (Adam,
# lr 1e-4, the budget's stage-1 iterations), and compare the loss curves and the accuracy reached.
#
# The other reading trains from a random initialisation, for the preset's full-precision iterations (SGD,
# lr 0.1) at k ∈ {1, 3, 5, 10}: set `FIG5_START = "scratch"`. It runs `qgait-lab reproduce --what fig5`
# as it is, on the preset's full budget (its fast one under `QGAIT_FAST=1`; `BUDGET` does not apply), about
# 25 minutes on a laptop CPU. At this scale a 4-bit GaitBase trained from scratch can fail to learn at
# all, whatever its gradient, which then says little about θ_k; compare both readings.

# %%
if FIG5_START not in ("fp", "scratch"):
    raise ValueError(f"FIG5_START must be 'fp' or 'scratch', got {FIG5_START!r}")
if RUN_FIG5 and FIG5_START == "scratch":
    from qgait_lab.experiments.reproduce import run_reproduce

    report = run_reproduce("fig5", seeds=1, preset=PRESET, overrides=[f"model.name={MODEL}"] + list(OVERRIDES))
    plt.close("all")      # the figure is saved next to the report; show the saved file once
    display(Image(filename=str(report.path.parent / "fig5_loss_curves.png")))
    display(Markdown(report.markdown))
elif RUN_FIG5:
    base = [f"name={NAME}", f"model.name={MODEL}", f"quant.bits={BITS}", "stage2.iterations=0"]  # stage 1 only
    variants = {"STE": []}
    for k in FIG5_KS:
        variants[f"θ_k', k = {k:g}"] = ["stage1.gradient=soft", "stage1.k.kind=fixed",
                                         f"stage1.k.start={k}", f"stage1.k.max={k}"]
    fig5 = {label: Experiment(notebook_config(PRESET, BUDGET, base + extra + list(OVERRIDES))).run("lsq")
            for label, extra in variants.items()}
    loss_curves_figure({label: [r.stages[-1].run_dir] for label, r in fig5.items()}, keys=("loss", "triplet"));
else:
    print("RUN_FIG5 is False: skipping the training runs.")

# %% [markdown]
# The curves are noisy at this scale, so summarise each run by its mean loss over the last fifth of the
# iterations and by the Rank-1 it reaches (the `"scratch"` report above has its own table):

# %%
if RUN_FIG5 and FIG5_START == "fp":
    lines = ["| stage 1 with | mean loss, last fifth | Rank-1 after stage 1 | Rank-1 of the full-precision start |",
             "|---|---:|---:|---:|"]
    final_loss = {}
    for label, r in fig5.items():
        losses = [rec["loss"] for rec in read_metrics(r.stages[-1].run_dir / "metrics.jsonl")
                  if rec.get("kind") == "train"]
        final_loss[label] = float(np.mean(losses[-max(1, len(losses) // 5):]))
        lines.append(f"| {label} | {final_loss[label]:.3f} | {r.metrics.get('rank1', float('nan')):.2f} | "
                     f"{r.stages[0].metrics.get('rank1', float('nan')):.2f} |")
    display(Markdown("\n".join(lines)))
    if budget == "fast":
        display(Markdown("*Fast mode: a handful of iterations; these numbers say nothing about convergence.*"))

# %% [markdown]
# ### ✏️ Exercise 5.3: what the Fig. 5 table compares
#
# Every row of the table above (or of the `"scratch"` report) trains the same 4-bit GaitBase with the same
# data, seed, optimiser and number of iterations; the rows differ only in `stage1.gradient` (and k).
# Which statement is right? Answer with one letter, as a string (`"a"` to `"d"`).
#
# * **(a)** A θ_k' row computes its loss with θ_k in the forward pass, a smoother function than the STE
#   row's round, so a lower loss in a soft row may come from the smoother function alone.
# * **(b)** Every row computes its loss with the same hard round in the forward pass, so a difference
#   between rows is a difference between the parameters (weights and LSQ steps) that the two kinds of
#   gradient led training to.
# * **(c)** The θ_k' rows train for more iterations than the STE row (QGait's extra fine-tune budget), so
#   their last fifth lies later in training.
# * **(d)** The Rank-1 column is the same in every row by construction, because evaluation always uses
#   the STE; only the loss column can differ.

# %%
# Exercise 5.3
fig5_reading = None  # YOUR ANSWER: "a", "b", "c" or "d"

# %%
from qgait_lab.lab import checks
checks.check_fig5_reading(fig5_reading)

# %% [markdown]
# **Reading the result.** `stage1.gradient=soft` changes the backward pass only (section 1): all rows
# evaluate the same function of their weights, so the table compares where the STE and θ_k' took
# training, not two ways of computing a loss. The paper explains the slower convergence at large k by a
# smaller mean gradient; notebook 03 and section 3 showed that the mean slope is 1 for every k and the
# *variance* grows like k/3. Either way one expects slower convergence for large k. At this scale (a few
# dozen Adam steps from a good starting point on a small synthetic dataset) the effect can be small or
# drowned by noise, and the ordering may even come out reversed; before drawing conclusions, lengthen
# stage 1 (`OVERRIDES = ["stage1.iterations=300"]`) or repeat with other seeds (`"runtime.seed=1"`).
# Report what you see, including when it disagrees with the paper.
#
# ## Summary
#
# * θ_k' changes only the backward pass of LSQ's round: the input gradient is redistributed towards the
#   rounding thresholds and the step gradient is reshaped; the forward pass is unchanged.
# * With θ_k in the forward pass too, the step gradient follows from the product and chain rules.
# * Through a real quantizer θ_k' keeps the mean slope at 1 and adds a variance that grows with k (Eq. 12
#   minus 1), independent of the step; using it for the whole of quantization-aware training with a large
#   k is where that variance should hurt most.
#
# **Next:** notebook 06 runs QGait's actual recipe (full precision, then the STE, then a short θ_k
# fine-tune with IDD) with live loss curves.
