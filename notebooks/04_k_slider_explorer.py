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
# # 02 · Exploring k: sliders for the soft quantizer
#
# *QGait lab, notebook 2 of 6. Paper: Sec. 3.1–3.2 (Eqs. 2–7, 9–12), Fig. 3.*
#
# Notebook 01 derived the moments of the soft quantizer's gradient. Here you move three knobs, the
# sharpness **k**, the **bit-width** and the quantizer's **step**, and watch what happens to θ_k, its
# slope, the two terms of the convergence bound, and a real gait silhouette pushed through the first
# layers of GaitBase.
#
# **Learning goals.** After this notebook you can
#
# 1. describe how k trades a faithful imitation of rounding for gradient noise, reading E[∇G] and
#    E[‖∇G‖²] at the current k in both the paper's reading and the chain-rule reading;
# 2. say which fraction of the elements still receives a *meaningful* gradient (at least 10 % of the STE's)
#    under θ_k, for uniformly spread inputs and for real activations, and compute it in closed form;
# 3. explain what b-bit LSQ quantization does to a binary silhouette and to the first activation of
#    GaitBase, and how the step size trades rounding error against clipping;
# 4. compute the integer codes an LSQ quantizer stores.
#
# **How to work.** Run all cells, then play with the sliders. Exercises (✏️) are checked by
# `qgait_lab.checks`. The explorer is built by `qgait_lab.widgets.k_explorer` with
# `ipywidgets.interactive_output`; figures are inline unless `ipympl` is installed, in which case one
# figure is redrawn in place.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

from qgait_lab import checks
from qgait_lab.widgets import (FirstLayersProbe, k_explorer, load_sample_sequence, setup_matplotlib,
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
fig, axes = plt.subplots(1, 6, figsize=(10, 2.6))
for ax, i in zip(axes, np.linspace(0, len(frames) - 1, 6).round().astype(int)):
    ax.imshow(frames[i], cmap="gray")
    ax.set(title=f"frame {i}", xticks=[], yticks=[])
fig.tight_layout()

# %% [markdown]
# GaitBase's first layers: a 3×3 convolution (1 → 64 channels), BatchNorm and ReLU, then the first
# residual block (`layer1`). `FirstLayersProbe` runs two frames (cut to 64×44 and scaled to [0, 1], the
# test-time transform) through these layers in full precision and through a fake-quantized copy made
# by `qgait_lab.quant.quantize_model` (LSQ, the same bits for weights and activations). The weights are
# a seeded random initialisation: what matters here is what quantization does to real activation
# statistics, not what the features mean.

# %%
probe = FirstLayersProbe(frames, n_frames=2, seed=0)
print(f"activation shown: channel {probe.channel} of {probe.activation.shape[1]} "
      f"(the one with the largest spread), {tuple(probe.activation.shape)} in total")

# %% [markdown]
# ## 2. The explorer
#
# * **k** (1 to 20): the sharpness of θ_k. The top row shows θ_k against round (Eq. 6), its slope
#   against the STE's constant 1 (Eq. 7, log scale; the red line marks 0.1), the two terms of Eq. 8 with the
#   current k marked (blue: the paper's reading in z; red and black: the slope in x), and the fraction of
#   in-range inputs whose slope is still ≥ 0.1.
# * **bits** (2 to 8) and **step ×** (¼ to 4 times LSQ's initial step 2·mean|v|/√Q_P): the bottom row
#   shows the input silhouette, one channel of the first activation, the same channel after the b-bit
#   quantizer, and the error; the text panel gives the error before and after `layer1`, the clipped share,
#   what the *input* quantizer makes of a foreground pixel, and who gets a gradient.

# %%
explorer = k_explorer(probe, k=3.0, bits=4, step_scale=1.0)
display(explorer)

# %% [markdown]
# **Things to try.**
#
# 1. Set k = 1 and then k = 20. At k = 1 the slope stays between 0.85 and 1.08 and every element in the
#    range gets a meaningful gradient; at k = 20 the slope is huge near the rounding thresholds and almost zero
#    elsewhere. The *mean* slope stays 1 throughout (notebook 01): only the spread grows.
# 2. Compare the blue and the red curve in the fourth panel: E[‖∇G‖²] (Eq. 12, in z) *falls* with k, while
#    the second moment of the slope that the network actually sees (in x) *rises* like k/3.
# 3. With k fixed, move the step. Small steps: fine levels, but many activations are clipped at the top
#    level (and clipped elements get no gradient at all). Large steps: nothing is clipped, but few levels
#    are used and the rounding error grows. LSQ *learns* the step to balance the two.
# 4. Watch "input 1.0 →" at 2, 4 and 8 bits, and as you move the step. Almost every silhouette pixel is 0
#    or 1, but the input quantizer's step rarely divides 1, so a foreground pixel becomes 0.8 or 0.96 or
#    1.06 instead of 1. This is the paper's point about binarized input: small, systematic errors on a
#    binary image are not small changes of the posture.

# %% [markdown]
# ## 3. The same numbers, in tables
#
# Sliders are for intuition; tables are for the lab report. The same probe at k = 3 and LSQ's initial
# step, for three bit-widths, then the step sweep at 4 bits:

# %%
def probe_table(results) -> str:
    lines = ["| bits | step × | levels used | clipped | activation error | error after layer1 | input 1.0 → | "
             "STE passes | θ_k' ≥ 0.1 |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r.bits} | {r.step_scale:g} | {r.levels_used} | {100 * r.clipped:.1f} % | "
                     f"{100 * r.act_rel_error:.1f} % | {100 * r.out_rel_error:.1f} % | {r.input_one:.3f} | "
                     f"{100 * r.meaningful_ste:.1f} % | {100 * r.meaningful_soft:.1f} % |")
    return "\n".join(lines)


by_bits = [probe.run(b, 1.0, 3.0) for b in (2, 3, 4, 8)]
by_step = [probe.run(4, s, 3.0) for s in (0.25, 0.5, 1.0, 2.0, 4.0)]
display(Markdown("**By bit-width (step × 1, k = 3)**\n\n" + probe_table(by_bits)))
display(Markdown("**By step (4 bits, k = 3)**\n\n" + probe_table(by_step)))
assert by_bits[-1].act_rel_error < by_bits[0].act_rel_error       # more bits, less error
assert by_step[0].clipped >= by_step[-1].clipped                  # smaller steps clip more

# %% [markdown]
# Two observations to write down:
#
# * Most activations after the first ReLU are exactly 0 (the background of the silhouette). They sit
#   on the lower clip bound, so neither the STE nor θ_k passes a gradient to them: the "STE passes" column
#   is the share of elements strictly inside the range.
# * At k = 3 the soft slope never falls below 0.1 (its minimum, at the integers, is
#   3·sech²(1.5)/(2·tanh 1.5) ≈ 0.30), so θ_k' ≥ 0.1 exactly where the STE passes anything. Raise k to
#   10 and about half of those elements lose their gradient:

# %%
for kk in (3.0, 6.0, 10.0, 20.0):
    r = probe.run(4, 1.0, kk)
    print(f"k = {kk:4g}: uniform inputs {uniform_meaningful_fraction(kk):.3f}; silhouette activations "
          f"{r.meaningful_soft / max(r.meaningful_ste, 1e-12):.3f} of the elements the STE passes")

# %% [markdown]
# ### ✏️ Exercise 2.1: the meaningful fraction in closed form
#
# For inputs spread uniformly over a rounding cell (d ~ U[−½, ½]), which fraction has
# θ_k'(d) = k·sech²(kd)/(2·tanh(k/2)) ≥ τ? Write `meaningful_fraction(k, threshold)` in closed form (no
# sampling). The checker compares it with a dense numeric estimate for 21 pairs (k, τ), including τ = 1,
# where the answer can be 0.

# %%
def meaningful_fraction(k: float, threshold: float = 0.1) -> float:
    """Share of uniformly spread inputs whose soft slope is >= threshold."""
    # YOUR CODE HERE
    raise NotImplementedError


checks.check_meaningful_fraction(meaningful_fraction)

# %% [markdown]
# ### ✏️ Exercise 2.2: LSQ's integer codes
#
# A deployed model stores integers, not the fake-quantized floats: the codes
# $\bar v = \lfloor\mathrm{clamp}(v/s, r_1, r_2)\rceil$ of Eq. 2, with $r_1, r_2 = 0, 2^b-1$ for unsigned data
# (activations after ReLU) and $-2^{b-1}, 2^{b-1}-1$ for signed data (weights). Write
# `lsq_codes(v, step, bits, signed)`.

# %%
def lsq_codes(v: torch.Tensor, step: float, bits: int, signed: bool) -> torch.Tensor:
    """The integers round(clamp(v / step, lo, hi)) of Eq. 2."""
    # YOUR CODE HERE
    raise NotImplementedError


checks.check_lsq_codes(lsq_codes)

# %% [markdown]
# ## Summary
#
# * k does not change the mean gradient in x, only how it is spread: as k grows, more and more elements
#   get almost no gradient while a few near the thresholds get a large one.
# * On real activations most elements get no gradient anyway (they are clipped at 0); θ_k thins out the
#   rest.
# * Bits and step decide the forward error: too small a step clips, too large a step rounds coarsely,
#   and a binary input is distorted unless the step divides 1.
#
# **Next:** notebook 03 puts LSQ, DoReFa and PACT side by side, derives their gradients, and trains
# from scratch with θ_k at several k (the paper's Fig. 5).
