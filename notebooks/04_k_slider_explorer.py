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
# # 04 · Exploring k: sliders for the soft quantizer
#
# *QGait lab, notebook 4 of 9. Paper: Sec. 3.1–3.2 (Eqs. 2–7, 9–12), Fig. 3.*
#
# Notebook 03 derived the moments of the soft quantizer's gradient. Here you move three knobs, the
# sharpness **k**, the **bit-width** and the quantizer's **step**, and watch what happens to θ_k, its
# slope, the two terms of the convergence bound, and a real gait silhouette pushed through the first
# layers of GaitBase.
#
# **Learning goals.** After this notebook you can
#
# 1. describe how k trades a faithful imitation of rounding for gradient noise, reading the two terms of
#    Eq. 8 at the current k, in the paper's reading (in z) and in the chain-rule reading (in x);
# 2. compute in closed form which fraction of uniformly spread inputs still receives a *meaningful*
#    gradient (at least 10 % of the STE's) under θ_k, and find the k at which half of them have lost it;
# 3. measure the same fraction on real activations of GaitBase's first layer;
# 4. read off the sliders how the step of a b-bit LSQ quantizer trades clipping against rounding, and what
#    the input quantizer does to a binary silhouette.
#
# **How to work.** Run all cells, then play with the sliders. Exercises are marked ✏️: fill in the stub
# cell (`# Exercise N.M`), then run the check cell below it; `checks.hint("4.1")` gives a nudge and
# `checks.hint("4.1", 2)` more. The explorer is built by `qgait_lab.lab.widgets.k_explorer` with
# `ipywidgets.interactive_output`; figures are inline unless `ipympl` is installed, in which case one
# figure is redrawn in place.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from qgait_lab.lab import checks  # noqa: F401  (the check cells import it again; this also explains NameErrors)
from qgait_lab.lab.widgets import (FirstLayersProbe, k_explorer, load_sample_sequence, setup_matplotlib,
                                   uniform_meaningful_fraction)

backend = setup_matplotlib()
print(f"matplotlib backend: {backend}")

# %% [markdown]
# ## 1. A real silhouette sequence
#
# `data_samples/` holds a few sequences of SynthGait, the synthetic CASIA-B-like dataset that this
# project generates itself, stored exactly like the real datasets (OpenGait's layout: one `uint8`
# array of T × 64 × 64 per sequence). Nothing is generated here; the files are read through the safe
# loader that admits numpy arrays only. Silhouettes are binary masks, but OpenGait's pretreatment
# resizes them, which leaves a rim of grey pixels along the edges.

# %%
frames, info = load_sample_sequence(0)
share_bg, share_fg = float((frames == 0).mean()), float((frames == 255).mean())
print(f"subject {info.label}, sequence {info.type}, view {info.view}: {frames.shape[0]} frames of "
      f"{frames.shape[1]}x{frames.shape[2]}; pixels: {100 * share_bg:.1f} % at 0, {100 * share_fg:.1f} % at 255, "
      f"{100 * (1 - share_bg - share_fg):.1f} % in between")
fig, axes = plt.subplots(1, 6, figsize=(10, 2.6), layout="constrained")
for ax, i in zip(axes, np.linspace(0, len(frames) - 1, 6).round().astype(int)):
    image = ax.imshow(frames[i], cmap="gray", vmin=0, vmax=255)
    ax.set(title=f"frame {i}", xticks=[], yticks=[])
fig.colorbar(image, ax=list(axes), shrink=0.85, label="pixel value (uint8)")
fig.suptitle(f"six of the {frames.shape[0]} frames")

# %% [markdown]
# ## 2. Who still gets a gradient under θ_k?
#
# Inside a rounding cell, at the offset d ∈ [−½, ½] from the cell's middle, the backward pass of θ_k
# multiplies the incoming gradient by
#
# $$\theta_k'(d) = \frac{k\,\mathrm{sech}^2(k d)}{2\tanh(k/2)},$$
#
# which is largest at the rounding threshold d = 0 and smallest at the cell edges d = ±½ (notebook 03).
# Call a gradient *meaningful* when this factor is at least a threshold τ; the explorer uses τ = 0.1, 10 %
# of the STE's factor 1. As k grows, the slope concentrates at the threshold, and fewer inputs pass the bar.
#
# ### ✏️ Exercise 4.1: the meaningful fraction in closed form
#
# For inputs spread uniformly over a rounding cell (d ~ U[−½, ½]), which fraction has θ_k'(d) ≥ τ? Write
# `meaningful_fraction(k, threshold=0.1)` in closed form, with the `math` module (no sampling): `k` is a
# float ≥ 1, `threshold` a float > 0, and the result a float in [0, 1]. The checker compares it with a dense
# numeric estimate (`widgets.uniform_meaningful_fraction`, 50,001 points) for 28 pairs (k, τ), k from 1 to 50
# and τ from 0.1 to 2, including thresholds above the peak slope.

# %%
# Exercise 4.1
def meaningful_fraction(k: float, threshold: float = 0.1) -> float:
    """Share of uniformly spread inputs whose soft slope is >= threshold."""
    # YOUR CODE HERE
    raise NotImplementedError

# %%
from qgait_lab.lab import checks
checks.check_meaningful_fraction(meaningful_fraction)

# %% [markdown]
# ### What you found
#
# θ_k'(d) ≥ τ exactly when sech²(kd) ≥ r = 2τ·tanh(k/2)/k, i.e. when |d| ≤ arccosh(1/√r)/k. The fraction is
# twice that half-width, at most 1; when r > 1 even the peak slope k/(2 tanh(k/2)) is below τ and the
# fraction is 0. At the explorer's τ = 0.1 every input still passes for small k, because even the slope at
# the cell edges is at least 0.1; between k = 4 and k = 5 the inputs nearest the integers start to lose it:

# %%
rows = ["| k | smallest slope (d = ±½) | share with θ_k' ≥ 0.1 (numeric) |", "|---:|---:|---:|"]
for kk in (1.0, 3.0, 5.0, 6.0, 10.0, 20.0):
    smallest = kk / (2 * math.tanh(kk / 2)) / math.cosh(kk / 2) ** 2
    rows.append(f"| {kk:g} | {smallest:.3g} | {uniform_meaningful_fraction(kk):.3f} |")
display(Markdown("**The slope at the cell edges, and the share of meaningful gradients**\n\n" + "\n".join(rows)))
assert uniform_meaningful_fraction(3.0) == 1.0 and uniform_meaningful_fraction(20.0) < 0.5

# %% [markdown]
# ## 3. A silhouette through the first layers of GaitBase
#
# GaitBase's first layers: a 3×3 convolution (1 → 64 channels), BatchNorm and ReLU, then the first
# residual block (`layer1`). `FirstLayersProbe` runs two frames (cut to 64×44 and scaled to [0, 1], the
# test-time transform) through these layers in full precision and through a fake-quantized copy made
# by `qgait_lab.quant.quantize_model` (LSQ, the same bits for weights and activations). The weights are
# a seeded random initialisation: what matters here is what quantization does to real activation
# statistics, not what the features mean.
#
# The pictures show one channel of the first activation, a typical one: the channel whose clipped share
# at LSQ's initial 4-bit step is closest to the share over all 64 channels. The numbers panel reports
# both, so that the picture and the numbers tell the same story.

# %%
probe = FirstLayersProbe(frames, n_frames=2, seed=0)
print(f"activation shown: channel {probe.channel} of {probe.activation.shape[1]}, "
      f"{tuple(probe.activation.shape)} in total")

# %% [markdown]
# ## 4. The explorer
#
# * **k** (1 to 20): the sharpness of θ_k. The top row shows θ_k against round (Eq. 6), its slope
#   against the STE's constant 1 (Eq. 7, log scale; the red line marks 0.1) and the share of in-range inputs
#   whose slope is still ≥ 0.1 (its legend prints the share at the current k). The middle row shows the two
#   terms of Eq. 8 against k with the current k marked (blue: the paper's reading in z; red and black: the
#   slope in x), and the numbers of the current setting.
# * **bits** (2 to 8) and **step ×** (¼ to 4 times LSQ's initial step 2·mean|v|/√Q_P): the bottom row
#   shows the input silhouette, the shown channel of the first activation, the same channel after the b-bit
#   quantizer (its clipped pixels outlined in red), and the error, each with a colour bar. The numbers give
#   the error before and after `layer1`, the clipped share over all channels and on the shown channel, what
#   the *input* quantizer makes of a foreground pixel, and who gets a gradient.

# %%
explorer = k_explorer(probe, k=3.0, bits=4, step_scale=1.0)
display(explorer)

# %% [markdown]
# **Things to try.**
#
# 1. Set k = 1 and then k = 20. At k = 1 the slope stays close to 1 and every element in the range gets a
#    meaningful gradient; at k = 20 the slope is huge near the rounding thresholds and almost zero
#    elsewhere. The *mean* slope stays 1 throughout (notebook 03): only the spread grows.
# 2. Compare the blue and the red curve in the second-order panel: E[‖∇G‖²] (Eq. 12, in z) *falls* with
#    k, while the second moment of the slope that the network actually sees (in x) *rises*.
# 3. With k = 3 and 4 bits, move the step from ¼ to 4 and watch the clipped share and the activation error
#    (Exercise 4.3 asks what you see).
# 4. Watch "input 1.0 →" at 2, 4 and 8 bits, and as you move the step. Almost every silhouette pixel is 0
#    or 1, but the input quantizer's step rarely divides 1, so a foreground pixel becomes 0.8 or 0.96 or
#    1.06 instead of 1. This is the paper's point about binarized input: small, systematic errors on a
#    binary image are not small changes of the posture.
#
# ### ✏️ Exercise 4.2: where half of the gradients are lost
#
# In the top-right panel, the share of uniformly spread inputs with θ_k' ≥ 0.1 falls as k grows. At which
# k does it fall to one half? Narrow it down with the k slider (steps of 0.5), then pin it down with your
# `meaningful_fraction` from Exercise 4.1, or with the library's numeric `uniform_meaningful_fraction(k)`,
# for example by bisection. Give `k_half` as a number within 0.01 of the crossing.

# %%
# Exercise 4.2
k_half = None   # YOUR ANSWER: a number, the k where the share crosses one half

# %%
from qgait_lab.lab import checks
checks.check_k_half(k_half)

# %% [markdown]
# ### ✏️ Exercise 4.3: what the step slider shows
#
# Set k = 3 and bits = 4, and move **step ×** from ¼ to 4 while you watch the clipped share (all channels)
# and the activation error in the numbers panel. Which statement explains what you see? Answer with the
# letter, as a string.
#
# * **a)** A smaller step always gives a smaller error, because the levels are finer.
# * **b)** A larger step clips less, down to almost nothing at × 4, and up to × 2 the error falls with it: at
#   LSQ's initial step, this activation's error comes mostly from clipping its largest values, not from
#   rounding.
# * **c)** A larger step clips more, because the top level then lies beyond fewer of the values.
# * **d)** LSQ's initial step (× 1) gives the smallest error, because LSQ's rule balances clipping against
#   rounding.

# %%
# Exercise 4.3
step_choice = None   # YOUR ANSWER: "a", "b", "c" or "d"

# %%
from qgait_lab.lab import checks
checks.check_step_slider_choice(step_choice)

# %% [markdown]
# ## 5. What you found, in tables
#
# Sliders are for intuition; tables are for the lab report. The same probe at k = 3 for four bit-widths at
# LSQ's initial step, then the step sweep at 4 and at 8 bits:

# %%
def probe_table(results) -> str:
    lines = ["| bits | step × | levels (shown ch.) | clipped, all ch. | clipped, shown ch. | activation error | "
             "error after layer1 | input 1.0 → | STE passes | θ_k' ≥ 0.1 |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r.bits} | {r.step_scale:g} | {r.levels_used} | {100 * r.clipped:.2f} % | "
                     f"{100 * r.clipped_shown:.2f} % | {100 * r.act_rel_error:.2f} % | {100 * r.out_rel_error:.2f} % | "
                     f"{r.input_one:.3f} | {100 * r.meaningful_ste:.2f} % | {100 * r.meaningful_soft:.2f} % |")
    return "\n".join(lines)


steps = (0.25, 0.5, 1.0, 2.0, 4.0)
by_bits = [probe.run(b, 1.0, 3.0) for b in (2, 3, 4, 8)]
by_step = {b: [probe.run(b, s, 3.0) for s in steps] for b in (4, 8)}
display(Markdown("**By bit-width (step × 1, k = 3)**\n\n" + probe_table(by_bits)))
display(Markdown("**By step, 4 bits (k = 3)**\n\n" + probe_table(by_step[4])))
display(Markdown("**By step, 8 bits (k = 3)**\n\n" + probe_table(by_step[8])))

# %% [markdown]
# At 4 bits a larger step clips less, and the error follows the clipped share, not the size of the
# levels: from × ¼ to × 2 it falls steeply (option **b** of Exercise 4.3). LSQ's initial step
# 2·mean|v|/√Q_P is set from the *mean* of |v|, and this activation has a long tail of large values above
# the top level. At 8 bits there are 16 times as many levels, nothing is clipped from × 1 on, and
# the error is smallest near LSQ's initial step: there, too small a step clips and too large a step rounds
# coarsely. LSQ *learns* the step to balance the two. The cell below checks these statements on the tables.

# %%
clip4 = [r.clipped for r in by_step[4]]
error4 = [r.act_rel_error for r in by_step[4]]
error8 = [r.act_rel_error for r in by_step[8]]
assert all(a >= b for a, b in zip(clip4, clip4[1:])) and clip4[-1] < 1e-3      # larger steps clip less
assert error4[0] > error4[1] > error4[2] > error4[3]                            # ... and err less, up to x2
assert min(range(len(steps)), key=error8.__getitem__) in (1, 2)                 # 8 bits: best near x1
assert by_bits[-1].act_rel_error < by_bits[0].act_rel_error                     # more bits, less error

# %% [markdown]
# Two more observations to write down:
#
# * Most activations after the first ReLU are exactly 0 (the background of the silhouette). They sit
#   on the lower clip bound, so neither the STE nor θ_k passes a gradient to them: the "STE passes" column
#   is the share of elements strictly inside the range.
# * At k = 3 the soft slope never falls below 0.1 (its minimum, at the integers, is
#   3·sech²(1.5)/(2·tanh 1.5) ≈ 0.30), so θ_k' ≥ 0.1 exactly where the STE passes anything. As k grows, the
#   silhouette's activations lose their meaningful gradients at about the rate of uniformly spread inputs;
#   the share crosses one half just below k = 11 (Exercise 4.2):

# %%
rows = ["| k | uniform inputs | silhouette activations (share of those the STE passes) |", "|---:|---:|---:|"]
for kk in (3.0, 6.0, 10.0, 20.0):
    r = probe.run(4, 1.0, kk)
    rows.append(f"| {kk:g} | {uniform_meaningful_fraction(kk):.3f} | "
                f"{r.meaningful_soft / max(r.meaningful_ste, 1e-12):.3f} |")
display(Markdown("**Share of in-range elements with θ_k' ≥ 0.1 (4 bits, step × 1)**\n\n" + "\n".join(rows)))

# %% [markdown]
# ## Summary
#
# * k does not change the mean gradient in x, only how it is spread: as k grows, more and more elements
#   get almost no gradient while a few near the thresholds get a large one. For uniformly spread inputs
#   the share with θ_k' ≥ 0.1 is 2·arccosh(1/√r)/k with r = 0.2·tanh(k/2)/k (at most 1), and it falls
#   to one half near k ≈ 10.7.
# * On real activations most elements get no gradient anyway (they are clipped at 0); θ_k thins out the
#   rest.
# * Bits and step decide the forward error: at 4 bits LSQ's initial step clips the tail of the first
#   activation, and a larger step helps; at 8 bits too small a step clips and too large a step rounds
#   coarsely. A binary input is distorted unless the input quantizer's step divides 1.
#
# **Next:** notebook 05 compares the STE with the soft gradient on a real quantizer, then runs the
# experiment behind the paper's Fig. 5: stage 1 of quantization-aware training with θ_k'
# in place of the STE at several k. By default (`FIG5_START = "fp"`) every run starts from the
# full-precision model, as every QAT run of the paper does; `FIG5_START = "scratch"` trains from a random
# initialisation instead.
