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
# # 02 · Quantization basics: Eqs. 2–4, the STE, LSQ, DoReFa and PACT
#
# *QGait lab, notebook 2 of 9. Paper: Sec. 3.1 (Eqs. 2–4). Baselines: LSQ (Esser et al., 2019),
# DoReFa-Net (Zhou et al., 2016), PACT (Choi et al., 2018).*
#
# Notebook 01 built GaitBase, a network of convolutions and one set of part-wise linear layers. QGait
# runs that network with 8-bit or 4-bit weights and activations instead of 32-bit floats. This notebook
# teaches the machinery every quantized model of the paper shares: the uniform quantizer of Eqs. 2–3,
# the straight-through estimator (STE) of Eq. 4 that lets gradients through its rounding, and the three
# quantizers the paper compares with: LSQ, which learns its step, DoReFa, which learns nothing, and
# PACT, which learns where to clip. It ends by quantizing a small network with the library.
#
# **Learning goals.** After this notebook you can
#
# 1. say what quantization saves (memory, BitOPs), quantize a tensor with Eqs. 2–3, give the code range
#    of signed and unsigned b-bit data, and compute the integer codes a deployed model stores;
# 2. explain why the round needs the STE (Eq. 4) and where the STE passes a gradient;
# 3. derive LSQ's step-size gradient, and state its gradient scale and its initial step;
# 4. say what DoReFa and PACT quantize and learn, derive PACT's clip gradient and write DoReFa's weight
#    quantizer;
# 5. quantize a network with `quantize_model` and a per-layer bit policy, and run one training step.
#
# **How to work.** Run the cells in order (Run > Run All Cells works: the exercises only report
# "not attempted" until you fill them in). An exercise (✏️) is three cells: the task, a stub to replace
# with your code, and a check cell; run the check cell after your code. Hints come on request,
# one tier at a time: `checks.hint("2.1")`, then `checks.hint("2.1", 2)`. Nothing is trained here; the
# whole notebook runs in a few seconds.

# %%
import math

import numpy as np
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display
from torch import nn

from qgait_lab.lab import checks
from qgait_lab.data.transforms import SilCutScale
from qgait_lab.models import build_model
from qgait_lab.quant import (METHODS, DoReFaActQuantizer, DoReFaWeightQuantizer, LayerPolicy, LSQQuantizer,
                             PACTQuantizer, layer_bits, quantize_model, quantizers, round_ste)
from qgait_lab.quant.bitops import bitops_table, gaitbase_inference_layers
from qgait_lab.quant.functional import lsq_bounds, lsq_fake_quant
from qgait_lab.lab.figures import (forward_backward_figure, quantization_error_parts, quantizer_response,
                                   step_tradeoff_figure, uniform_quantization_figure)
from qgait_lab.lab.widgets import load_sample_sequence, setup_matplotlib

setup_matplotlib(prefer_widget=False)
gen = torch.Generator().manual_seed(0)

# %% [markdown]
# ## 1. Uniform quantization (Eqs. 2–3)
#
# ### Why quantize
#
# A 32-bit float weight takes 4 bytes; a 4-bit code takes half a byte. And a multiply-accumulate (MAC) of
# two low-bit integers is far cheaper in silicon than a float one. The paper measures that cost in
# **BitOPs** (Sec. 4.1): a layer with $b_w$-bit weights and $b_a$-bit inputs costs
# $\frac{b_w}{32}\cdot\frac{b_a}{32}$ BitOPs per MAC, summed over the convolutions and linear layers.
# The library counts both for GaitBase (the paper's full-size model, on one 100-frame sequence of
# 64 × 44 silhouettes as on Gait3D, without the BNNeck head that only training uses; the count runs on
# PyTorch's `meta` device, so only shapes flow):

# %%
def gaitbase_shapes_only() -> nn.Module:
    with torch.device("meta"):                 # parameters without memory: counting needs only their shapes
        return build_model("gaitbase")


params = sum(p.numel() for name, p in gaitbase_shapes_only().named_parameters() if not name.startswith("BNNecks"))
rows = bitops_table(gaitbase_shapes_only, [torch.zeros(1, 100, 64, 44)], [32, 8, 4], include=gaitbase_inference_layers)
table = ["| weights and activations | parameter memory (MB) | BitOPs (G), one 100-frame sequence |", "|---|---:|---:|"]
for row in rows:
    table.append(f"| {row['label']} | {params * row['bits'] / 8 / 1e6:.1f} | {row['bitops'] / 1e9:.2f} |")
display(Markdown(f"GaitBase's inference path has **{params:,} parameters**. At each bit-width:\n\n" + "\n".join(table)))

# %% [markdown]
# Four bits everywhere divide the memory by 8 and the BitOPs by 64. (The paper's Table 1 gives 118.30 G at
# 32 bits: the same count plus the BatchNorm layers; notebook 08 takes the BitOPs apart layer by layer.)
# The price is accuracy: every
# weight and every activation is replaced by one of $2^b$ values. The rest of the course is about
# keeping that price small.
#
# ### Eqs. 2–3: scale, clip, round, scale back
#
# The paper quantizes a weight or an activation $x$ with a step $v$ and two integer bounds $r_1 < r_2$:
#
# $$\bar x = \Big\lfloor \mathrm{clamp}\Big(\frac{x}{v},\ r_1,\ r_2\Big)\Big\rceil \quad\text{(Eq. 2)},
# \qquad \hat x = \bar x \cdot v \quad\text{(Eq. 3)},$$
#
# where ⌊·⌉ rounds to the nearest integer. $\bar x$ is an integer **code**; $\hat x$ is its value on the
# grid of step $v$. Training computes $\hat x$ in floating point (*fake quantization*) so that the
# network learns with the errors it will have once deployed; a deployed model stores and multiplies the
# codes. With $b$ bits the bounds are (Sec. 3.1):

# %%
table = ["| bits b | unsigned [r₁, r₂] (e.g. after a ReLU) | signed [r₁, r₂] (e.g. weights) | codes |", "|---|---|---|---:|"]
for b in (1, 2, 3, 4, 8):
    table.append(f"| {b} | {list(lsq_bounds(b, False))} | {list(lsq_bounds(b, True))} | {2 ** b} |")
display(Markdown("**Code ranges** of `qgait_lab.quant.functional.lsq_bounds`:\n\n" + "\n".join(table)))

# %% [markdown]
# Below, Eqs. 2–3 with 3-bit signed codes and a step of 0.5, computed by the library's
# `lsq_fake_quant`. Left: the staircase; right: the error it makes.

# %%
x = torch.linspace(-3.0, 3.0, 1201)
lo, hi = lsq_bounds(3, signed=True)
x_hat = lsq_fake_quant(x, torch.tensor(0.5), lo, hi, 1.0)
uniform_quantization_figure(x, x_hat, 0.5, (lo, hi), "3-bit signed codes, step v = 0.5");

# %% [markdown]
# Two kinds of error, and they pull in opposite directions:
#
# * **rounding error** inside the range: a saw-tooth that never exceeds $v/2$;
# * **clipping error** outside it: the clamp holds the output at $r_1 v$ or $r_2 v$, so the error grows
#   linearly with the distance from the range.
#
# A smaller step rounds more finely but clips more; a larger one clips less and rounds more coarsely.
# Note also that the signed range is not symmetric: there is one more negative code than positive ones.
#
# ### ✏️ Exercise 2.1: LSQ's integer codes
#
# A deployed model stores the integer codes $\bar v$ of Eq. 2, not the fake-quantized floats. Write
# `lsq_codes(v, step, bits, signed)`: for a tensor `v`, a float `step > 0`, an integer `bits` ≥ 1 and a
# bool `signed` (`False`: the unsigned range of the table above, `True`: the signed one), return the
# tensor of codes $\bar v = \lfloor\mathrm{clamp}(v/\mathrm{step}, r_1, r_2)\rceil$, of `v`'s shape (floats
# whose values are integers are fine). Round as `torch.round` does: a value exactly halfway between two
# integers goes to the even one. The checker compares your codes with the library's
# `LSQQuantizer.integer_codes` for 2, 4 and 8 bits, signed and unsigned, and at exact rounding thresholds.

# %%
# Exercise 2.1
def lsq_codes(v, step, bits, signed):
    """The integer codes round(clamp(v / step, r1, r2)) of Eq. 2: a tensor of v's shape."""
    # YOUR CODE HERE
    raise NotImplementedError


# %%
from qgait_lab.lab import checks
checks.check_lsq_codes(lsq_codes)

# %% [markdown]
# The library's quantizers keep their codes one call away. An LSQ quantizer for signed 3-bit weights
# stores a step; its fake-quantized output is exactly its codes times that step:

# %%
w = 0.05 * torch.randn(16, 8, 3, 3, generator=gen)
q = LSQQuantizer(3, is_weight=True, signed=True)
w_hat = q(w)                                   # the first call also sets the step (Section 3)
codes = q.integer_codes(w)
print(f"step {q.step.item():.4f}; the codes used: {sorted(set(codes.int().flatten().tolist()))}")
print("w_hat == codes * step:", torch.allclose(w_hat, codes * q.step))

# %% [markdown]
# ## 2. The round has no gradient: the straight-through estimator (Eq. 4)
#
# Training needs $\partial\hat x/\partial x$. The round is a staircase: flat everywhere except at the
# thresholds, where it jumps. Its derivative is 0 almost everywhere, so plain backpropagation through
# Eq. 2 gives every layer below a quantizer a zero gradient. Autograd agrees:

# %%
x = torch.tensor([-1.3, -0.4, 0.2, 0.7, 1.6], requires_grad=True)
torch.round(x).sum().backward()
print("gradient of torch.round:        ", x.grad)
x.grad = None
round_ste(x).sum().backward()
print("gradient of round_ste (the STE):", x.grad)

# %% [markdown]
# The **straight-through estimator** (STE) keeps the round in the forward pass and pretends, in the
# backward pass, that it was the identity. `round_ste(x)` is one line of the library:
# `x + (torch.round(x) - x).detach()`; its value is `round(x)`, and since the detached part carries no
# gradient, its derivative is that of `x`, which is 1. Through the whole quantizer, with the clamp, the
# paper writes the result as
#
# $$\frac{\partial \hat x}{\partial x} = \begin{cases} 1, & \text{if } r_1 < \frac{x}{v} < r_2,\\
# 0, & \text{otherwise.}\end{cases}\qquad\text{(Eq. 4)}$$
#
# `viz.quantizer_response` sweeps a quantizer of `qgait_lab.quant` over a range of inputs and takes
# each derivative by autograd through the quantizer itself. Here two LSQ quantizers with their step
# fixed at 0.5, at 2 bits so that the steps are visible:

# %%
x = torch.linspace(-2.5, 2.5, 501)
ste_quantizers = {"LSQ, unsigned 2-bit, step 0.5": LSQQuantizer(2, is_weight=False, signed=False),
                  "LSQ, signed 2-bit, step 0.5": LSQQuantizer(2, is_weight=True, signed=True)}
for q in ste_quantizers.values():
    q(x)                                       # the first call initialises the step...
    with torch.no_grad():
        q.step.fill_(0.5)                      # ...which we then fix for the picture
forward_backward_figure({name: quantizer_response(q, x) for name, q in ste_quantizers.items()},
                        keys=("d/dx",), title="Eqs. 2–3 forward (top), the STE of Eq. 4 backward (bottom)");

# %% [markdown]
# Inside the range the gradient passes unchanged; outside, where the clamp holds the output, it is 0.
# Why 0 there, and not 1 as well? Keep the question in mind: Exercise 2.5 asks it, once LSQ and PACT
# have shown what the clip range does to their own parameters.
#
# ## 3. LSQ: learning the step
#
# Which step is best? Too small, and many values are clipped; too large, and the rounding is coarse.
# `viz.quantization_error_parts` splits the mean squared error of Eqs. 2–3 into the two parts, for a
# convolution's weights (signed) and for a batch of ReLU activations (unsigned), at 4 bits. The marks
# are the step that minimises the error on this grid, and the step LSQ starts from (its rule comes at
# the end of this section):

# %%
w = 0.05 * torch.randn(64, 32, 3, 3, generator=gen)                 # a conv weight, as initialised
a = torch.relu(torch.randn(8, 32, 16, 11, generator=gen))           # a batch of ReLU activations
panels, marks = {}, {}
for name, tensor, signed in (("conv weight, signed 4-bit", w, True), ("ReLU activations, unsigned 4-bit", a, False)):
    q = LSQQuantizer(4, is_weight=signed, signed=signed)
    q(tensor)
    start = q.step.item()
    parts = quantization_error_parts(tensor, np.geomspace(start / 20, start * 10, 120), 4, signed)
    panels[name] = parts
    marks[name] = {"least error": float(parts["step"][parts["total"].argmin()]), "LSQ's start": start}
step_tradeoff_figure(panels, marks);

# %% [markdown]
# The best step sits where the two parts cross, and it depends on the data and on the bits. LSQ (Learned
# Step size Quantization) does not search for it: it makes the step $s$ (the paper's $v$) a parameter
# and trains it with the network, by gradient descent on the task loss. The loss, not the squared
# error, decides where the step goes. For that, LSQ needs $\partial\hat v/\partial s$.
#
# ### ✏️ Exercise 2.2: LSQ's step gradient
#
# Derive $\partial\hat v/\partial s$ for $\hat v = s\cdot\lfloor\mathrm{clamp}(v/s, r_1, r_2)\rceil$ with the
# STE ($\partial\lfloor c\rceil/\partial c = 1$), per element and *without* LSQ's gradient scale (below).
# Write `lsq_step_grad(v, step, bits, signed)`: for a tensor `v`, a float `step`, the bits and the
# signedness (the ranges of Section 1), return a tensor of `v`'s shape with $\partial\hat v/\partial s$ for
# each element, rounding as `torch.round` does. The checker compares it with autograd through the
# library's `lsq_fake_quant` for 2 and 4 bits, signed and unsigned. Inputs exactly on a clip bound, where
# the function has a kink, are not checked.

# %%
# Exercise 2.2
def lsq_step_grad(v, step, bits, signed):
    """d v_hat / d step for each element of the tensor v (STE, no gradient scale): a tensor of v's shape."""
    # YOUR CODE HERE
    raise NotImplementedError


# %%
from qgait_lab.lab import checks
checks.check_lsq_step_grad(lsq_step_grad)

# %% [markdown]
# **LSQ's step gradient** (Esser et al. 2019, their Eq. 3), with $c = v/s$:
#
# $$\frac{\partial\hat v}{\partial s} = \begin{cases} -c + \lfloor c\rceil, & r_1 < c < r_2,\\ r_1, & c \le r_1,\\
# r_2, & c \ge r_2.\end{cases}$$
#
# Inside the range, the product rule gives $\lfloor c\rceil + s\cdot(-c/s)$; outside, $\hat v = s\,r_1$ or
# $s\,r_2$ is linear in $s$. Here it is on the quantizers of Section 2, next to their input gradient:

# %%
x = torch.linspace(-2.5, 2.5, 501)
forward_backward_figure({name: quantizer_response(q, x) for name, q in ste_quantizers.items()},
                        title="LSQ: the STE (Eq. 4) and the step gradient (Esser et al., Eq. 3)");

# %% [markdown]
# Read the bottom row:
#
# * **∂out/∂input** is the STE of Eq. 4.
# * **∂out/∂step** is a saw-tooth inside the range: $\lfloor c\rceil - c$ tells the step in which direction
#   the nearest grid point lies, and it is largest, ±½, right at the rounding thresholds. Outside, it is the
#   bound itself: a larger step lets clipped values out further. The step's gradient is the sum of these
#   over all the elements it quantizes, each weighted by the loss gradient of its output.
#
# ### The gradient scale and the initial step
#
# That sum runs over every element the step covers, and with many codes the step itself is small: an
# unscaled update would move the step far more, relative to its size, than a weight moves relative to
# its own. LSQ balances the two (Esser et al., Sec. 2.2) by multiplying the step's gradient by
#
# $$g = \frac{1}{\sqrt{N\cdot Q_P}},$$
#
# where $Q_P = r_2$ is the largest code and $N$ is the number of elements the step covers. The library
# (`LSQQuantizer`) counts $N$ as the whole weight tensor for a weight step (one output channel of it with
# `per_channel`), and as the features of *one sample* for an activation step (the tensor divided by the
# batch size), LSQ's $N_W$ and $N_F$. It starts the step, on the quantizer's first forward pass, at
#
# $$s_0 = \frac{2\,\mathrm{mean}|v|}{\sqrt{Q_P}},$$
#
# and clamps the step to stay positive. An activation quantizer built with `signed=None` decides its range
# on that first pass too: signed if the batch has a negative value, unsigned otherwise. The library against
# the two formulas:

# %%
table = ["| tensor | shape | range | g (library) | 1/√(N·Q_P) | s₀ (library) | 2·mean\\|v\\|/√Q_P |",
         "|---|---|---|---:|---:|---:|---:|"]
for name, tensor, q, n in (("conv weight, 4 bit", w, LSQQuantizer(4, is_weight=True, signed=True), w.numel()),
                           ("activation batch, 4 bit", a, LSQQuantizer(4, is_weight=False), a[0].numel())):
    q(tensor)
    q_p = q.bounds[1]
    table.append(f"| {name} | {list(tensor.shape)} | {list(q.bounds)} | {q.grad_scale_factor(tensor):.3e} | "
                 f"{1 / math.sqrt(n * q_p):.3e} | {q.step.item():.4f} | {2 * tensor.abs().mean().item() / math.sqrt(q_p):.4f} |")
display(Markdown("**LSQ's conventions**, `LSQQuantizer` against the formulas:\n\n" + "\n".join(table)))

# %% [markdown]
# The activation quantizer saw no negative value and chose the unsigned range. The start $s_0$ is only a
# start: in the figure above it lands near the step of least error, not on it, and training moves it to
# wherever the loss wants it.
#
# ## 4. Activations: DoReFa's fixed clip and PACT's learned one
#
# **DoReFa** (Zhou et al., 2016) quantizes an activation by clipping it to [0, 1] and rounding onto
# $L = 2^b - 1$ steps: $x_q = \lfloor \mathrm{clamp}(x, 0, 1)\cdot L\rceil / L$. Nothing is learned: the
# step is $1/L$ and the clip is fixed at 1, whatever the activations' scale.
#
# **PACT** (Choi et al., 2018) learns the clip. With a parameter $\alpha > 0$:
#
# $$y = \mathrm{clamp}(x, 0, \alpha),\qquad y_q = \Big\lfloor y\cdot\frac{L}{\alpha}\Big\rceil\cdot\frac{\alpha}{L}.$$
#
# The round gets the STE as before. For $\alpha$, PACT holds the $\alpha$ inside the rounding (the scale
# $\alpha/L$) constant. To keep $\alpha$ from growing without need, PACT adds an L2 penalty
# $\lambda\alpha^2$ to the loss. The library's `PACTQuantizer` starts at $\alpha = 10$ (the PACT paper's
# value; implementations use anything from 6 to 20) with $\lambda = 2\cdot10^{-4}$
# (`QuantizerOptions.pact_alpha_init` and `pact_alpha_l2`).
#
# ### ✏️ Exercise 2.3: PACT's clip gradient
#
# Write `pact_alpha_grad(x, alpha, bits)`: for a tensor `x`, a float `alpha > 0` and the bits, return a
# tensor of `x`'s shape and dtype with $\partial y_q/\partial\alpha$ for each element, under PACT's rule
# (the $\alpha$ inside the rounding held constant). The checker compares it with autograd through the
# library's `pact_fake_quant` for two values of α and two bit-widths.

# %%
# Exercise 2.3
def pact_alpha_grad(x, alpha, bits):
    """d y_q / d alpha for each element of the tensor x: a tensor of x's shape and dtype."""
    # YOUR CODE HERE
    raise NotImplementedError


# %%
from qgait_lab.lab import checks
checks.check_pact_alpha_grad(pact_alpha_grad)

# %% [markdown]
# With the α inside the rounding held constant, $y_q$ depends on α only through the clamp, which outputs
# α itself for the clipped inputs: $\partial y_q/\partial\alpha = 1$ where $x \ge \alpha$, and 0 elsewhere.
# Both activation quantizers at 2 bits, PACT with α = 2.5:

# %%
x = torch.linspace(-1.0, 4.0, 501)
activation_quantizers = {"DoReFa activation, 2-bit": DoReFaActQuantizer(2),
                         "PACT activation, 2-bit, α = 2.5": PACTQuantizer(2, alpha_init=2.5)}
forward_backward_figure({name: quantizer_response(q, x) for name, q in activation_quantizers.items()},
                        title="activation quantizers: forward (top), backward (bottom)");

# %% [markdown]
# * **∂out/∂input** is the STE again: DoReFa passes the gradient on (0, 1), PACT on (0, α).
# * **∂out/∂α** is 1 exactly where the input gradient is 0, on the clipped inputs. If the loss would
#   like those outputs larger, α grows and clips less; the penalty's gradient $2\lambda\alpha$ pulls it
#   back all the time.
#
# At the start, α = 10 is far above a typical activation, so nothing is clipped and only the penalty
# moves α:

# %%
pact = PACTQuantizer(4)
clipped = (a >= pact.alpha).float().mean().item()
pact.penalty().backward()
print(f"alpha {pact.alpha.item():g}; share of the ReLU batch clipped: {clipped:.4f}; largest activation "
      f"{a.max().item():.2f}")
print(f"penalty {pact.penalty().item():.4f}, its gradient in alpha {pact.alpha.grad.item():.4f} (= 2·λ·α)")

# %% [markdown]
# ## 5. Weights: LSQ's signed range, DoReFa's tanh
#
# LSQ quantizes weights like activations, with the signed range and its own learned step per weight
# tensor. **DoReFa** normalises the weights first: it squashes them with tanh, rescales them into
# [0, 1] by the largest |tanh| of the whole tensor, quantizes onto $L = 2^b - 1$ steps and maps the
# result back to [−1, 1]:
#
# $$w_q = 2\,\mathrm{quantize}_b\!\Big(\frac{\tanh w}{2\max|\tanh w|} + \frac12\Big) - 1,\qquad
# \mathrm{quantize}_b(u) = \frac{\lfloor u\cdot L\rceil}{L}.$$
#
# The output lies in [−1, 1] whatever the scale of the weights; where a BatchNorm follows the layer, it
# absorbs the scale. Nothing is learned. PACT quantizes weights the same way (the PACT paper does, and so does the
# library).
#
# ### ✏️ Exercise 2.4: DoReFa's weight quantizer
#
# Write `dorefa_weight(w, bits)`: for a weight tensor `w` of any shape and the bits, return the tensor
# $w_q$ of the formula above, of `w`'s shape, with values in [−1, 1]. The maximum is a single number over
# the whole tensor. Round as `torch.round` does. The checker compares your values with the library's
# `DoReFaWeightQuantizer` for 2 and 4 bits, on weights of a small and a large scale.

# %%
# Exercise 2.4
def dorefa_weight(w, bits):
    """DoReFa's quantized weights for the tensor w: a tensor of w's shape, values in [-1, 1]."""
    # YOUR CODE HERE
    raise NotImplementedError


# %%
from qgait_lab.lab import checks
checks.check_dorefa_weight(dorefa_weight)

# %% [markdown]
# The weight quantizers side by side, at 2 bits, on a sweep of weights from −2 to 2 (LSQ's step fixed at
# 0.75):

# %%
x = torch.linspace(-2.0, 2.0, 401)
weight_quantizers = {"LSQ weight, signed 2-bit, step 0.75": LSQQuantizer(2, is_weight=True, signed=True),
                     "DoReFa weight, 2-bit": DoReFaWeightQuantizer(2)}
weight_quantizers["LSQ weight, signed 2-bit, step 0.75"](x)
with torch.no_grad():
    weight_quantizers["LSQ weight, signed 2-bit, step 0.75"].step.fill_(0.75)
forward_backward_figure({name: quantizer_response(q, x) for name, q in weight_quantizers.items()},
                        title="weight quantizers: forward (top), backward (bottom)");
print("DoReFa's 2-bit levels:", ", ".join(f"{level:.3f}" for level in torch.unique(DoReFaWeightQuantizer(2)(x))))

# %% [markdown]
# * DoReFa's $2^b$ levels are spread evenly over [−1, 1] and, as there is an even number of them, none is
#   0; LSQ's signed codes include 0 and have one more negative level than positive ones.
# * DoReFa's weight quantizer is not elementwise: the normalisation by $\max|\tanh w|$ makes every output
#   depend on every weight. Its curve "∂out/∂input" above is the diagonal of the Jacobian: the STE's 1
#   times the slope of the normalisation, $\mathrm{sech}^2 w / \max|\tanh w|$, so it is largest at 0 and
#   fades for large |w|, and no weight is ever clipped.
#
# ## 6. A quantized network: `quantize_model`
#
# `quantize_model(model, method, w_bits, a_bits, policy)` turns a float network into a fake-quantized one,
# in place. It replaces every `nn.Conv2d` by a `QConv2d` and every `nn.Linear` by a `QLinear`, keeping the
# parameter names, so a float checkpoint still loads; each of them gets two child quantizers,
# `weight_quantizer` for its weight and `act_quantizer` for its *input*. A `LayerPolicy` gives the first
# and the last layer their own bits (LSQ keeps both at 8 bits; the paper's BitOPs imply the same bits
# everywhere, the library's default); 32 bits means "leave this part in full precision". A small
# network, with 4 bits inside and 8 at both ends:

# %%
def small_net() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))


ends_at_8 = LayerPolicy(first_layer_bits=(8, 8), last_layer_bits=(8, 8))
net = quantize_model(small_net(), "lsq", w_bits=4, a_bits=4, policy=ends_at_8)
print(net)
display(Markdown("**Bits per layer** (`layer_bits`):\n\n| layer | type | (w_bits, a_bits) |\n|---|---|---|\n"
                 + "\n".join(f"| {name} | {type(net.get_submodule(name)).__name__} | {bits} |"
                             for name, bits in layer_bits(net).items())))

# %% [markdown]
# One training step on real silhouettes from `data_samples/` (4 frames each of two sequences, cut to
# 64 × 44 as in notebook 01, with made-up labels). The first forward pass sets every LSQ step; the
# backward pass reaches the weights through the STE and every step through LSQ's gradient:

# %%
frames = torch.cat([SilCutScale()(torch.as_tensor(load_sample_sequence(i)[0][:4]).float()) for i in (0, 9)])
images, labels = frames.unsqueeze(1), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
loss = F.cross_entropy(net(images), labels)
loss.backward()
table = ["| quantizer | range | step | gradient of the step |", "|---|---|---:|---:|"]
for name, module in net.named_modules():
    if isinstance(module, LSQQuantizer):
        table.append(f"| {name} | {list(module.bounds)} | {module.step.item():.4f} | {module.step.grad.item():+.2e} |")
display(Markdown(f"Loss {loss.item():.3f}; the first layer's weight gradient has norm "
                 f"{net[0].weight.grad.norm().item():.3g}.\n\n" + "\n".join(table)))

# %% [markdown]
# The first layer's input quantizer saw silhouettes (values in [0, 1], no negatives) and chose the
# unsigned range. The same network with each method of the library, and what each quantizer learns:

# %%
table = ["| method | weight quantizer | activation quantizer | learned by the quantizers of one layer |", "|---|---|---|---|"]
for method in METHODS:
    layer = quantize_model(small_net(), method, 4, 4)[3]
    learned = [name for name, _ in layer.named_parameters() if "quantizer" in name]
    table.append(f"| {method} | {type(layer.weight_quantizer).__name__} | {type(layer.act_quantizer).__name__} | "
                 f"{', '.join(learned) or 'nothing'} |")
display(Markdown("**The three methods** on the second convolution:\n\n" + "\n".join(table)))

# %% [markdown]
# GaitBase is quantized the same way. Its part-wise linear layer `FCs` is not an `nn.Linear` but is built
# on the library's `QuantizedLayer`, so it gets its quantizers in place; it is the last quantized layer.
# The BNNeck head (`BNNecks`) is used only in training and stays in full precision:

# %%
small_gaitbase = quantize_model(build_model("gaitbase", num_classes=4, channels=(8, 16, 32, 64)), "lsq", 4, 4,
                                policy=ends_at_8)
bits = layer_bits(small_gaitbase)
print(f"{len(bits)} quantized layers; first {next(iter(bits.items()))}, last {list(bits.items())[-1]}")
print("quantizers in BNNecks:", sum(1 for _ in quantizers(small_gaitbase.BNNecks)))

# %% [markdown]
# ### ✏️ Exercise 2.5: why Eq. 4 is zero outside the clip range
#
# Eq. 4 passes the gradient inside the clip range and sets it to 0 outside. One public LSQ implementation
# left that mask out (it passed 1 everywhere) and lost accuracy. Explain to yourself in one sentence why
# the 0 belongs there, then pick the statement that explains it:
#
# * **a**: the round has zero derivative outside the range, so the STE must be switched off there;
# * **b**: outside the range the forward output is the constant $r_1 v$ or $r_2 v$, so moving the input
#   does not change $\hat x$ at all: 0 is the true derivative of the clamp, and a 1 would keep pushing
#   clipped inputs with a gradient the loss never responds to (the signal that clipping hurts goes to the
#   step or to α instead);
# * **c**: the mask only saves memory; the forward output is the same either way, so training is too;
# * **d**: without the mask, the step's gradient would be zero, so LSQ could not learn its step.
#
# Set `mask_reason` to the letter, as a string.

# %%
# Exercise 2.5
mask_reason = None  # YOUR ANSWER: "a", "b", "c" or "d"

# %%
from qgait_lab.lab import checks
checks.check_mask_reason(mask_reason)

# %% [markdown]
# A gradient answers "if this input moved a little, how would the loss change?". For a clipped input
# the honest answer is "not at all", and that is what the 0 of Eq. 4 says; it is the clamp's own
# derivative, while only the round is replaced by the STE. Without the mask, weights beyond the range
# keep drifting outward and activations keep being pushed although they no longer affect anything.
# Where the clip does matter, the gradient is not lost: it is exactly the part that LSQ's step
# (the bound, in Exercise 2.2) and PACT's α (Exercise 2.3) receive.
#
# ## Summary
#
# One skeleton, scale, clip, round, scale back (Eqs. 2–3), with the STE of Eq. 4 for the round:
#
# | | quantizes | learns | range | gradient of what it learns |
# |---|---|---|---|---|
# | **LSQ** | weights (signed) and activations (unsigned after a ReLU) | the step s, gradient scaled by g = 1/√(N·Q_P), starting at 2·mean\|v\|/√Q_P | [−2^{b−1}, 2^{b−1}−1] or [0, 2^b−1] | ⌊c⌉ − c inside, the bound outside |
# | **DoReFa** | weights (tanh, normalise, quantize, map to [−1, 1]) and activations (clip to [0, 1]) | nothing | fixed | none |
# | **PACT** | activations, clipped at α (weights as DoReFa) | the clip α, with an L2 penalty, starting at 10 here | [0, α] | 1 where x ≥ α, else 0 |
#
# `quantize_model` puts these quantizers into any network, with per-layer bits.
#
# **Next.** QGait keeps LSQ but replaces the STE's flat slope 1 by the slope of a soft quantizer θ_k
# (Sec. 3.2); notebook 03 derives it.
