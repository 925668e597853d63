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
# # 09 · From fake quantization to integers
#
# *QGait lab, notebook 9 of 9. Paper: Appendix A.3 (limitations: deployment). Integer-only inference:
# Jacob et al. 2018, "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only
# Inference".*
#
# Every model this course has trained computes in float: a fake quantizer rounds a value to `code × step`
# and hands the *float* product to the next layer. The paper stops there too and names deployment as its
# limitation (Appendix A.3). Here a trained QGait-4 model becomes a real integer model: weights and
# activations stored as integer codes, convolutions summed in int32, every rescaling done with an integer
# multiply and a shift. We follow one convolution from float to integers, run the whole model in integers
# and check it against the fake-quantized model, export it to ONNX, run it with onnxruntime's int8 kernels,
# and time it.
#
# **Learning goals.** After this notebook you can
#
# 1. read a trained layer's integer form: its input grid, its weight codes and their steps (Section 1);
# 2. compute the int32 accumulator of a convolution, say what real value it stands for (acc·s_x·s_w), and
#    fold BatchNorm into it (Sections 2 and 3);
# 3. write the requantization multiplier M = s_x·s_w/s_y as an integer mantissa and a shift, and move an
#    accumulator onto the next layer's grid with integer operations only (Exercise 9.1);
# 4. predict how many bits an accumulator needs for given bits, channels and kernel (Exercise 9.2);
# 5. check a whole integer model against its fake-quantized original, and run it with onnxruntime
#    (Section 5);
# 6. put the paper's BitOPs beside measured time, and explain why 4 bits do not run faster than 8 on a
#    CPU (Section 6).
#
# **How to work.** Run all cells. Exercises (✏️) are checked by `qgait_lab.lab.checks`; `checks.hint("9.1")`
# gives a first hint, `checks.hint("9.1", 2)` the next. The models are the QGait runs of notebooks 06–08
# (same `NAME`): what is there is reused, the rest is trained on the lab budget by default
# (`notebooks/README.md` has the measured times). Everything integer here is `qgait_lab.deploy`; the
# notebook only calls it and looks at what comes out.

# %% tags=["parameters"]
PRESET = "tiny-cpu"          # the preset of the runs (model width, input size, data)
NAME = "lab"                 # runs/<NAME>/, shared with notebooks 05-08
BUDGET = None  # "fast" | "lab" | "full"; None: fast under QGAIT_FAST=1, else the preset's lab budget
BITS = 4                     # the QGait model followed from float to integers (w4a4)
COMPARE_BITS = 8             # a second QGait model for the timing table (None: leave it out)
DEVICE = "auto"              # where missing runs train; the integer model itself runs on the CPU
OVERRIDES = []
TIMING_FRAMES = 30           # the timed sequence's length
REPEATS = 20                 # timed runs per variant (the median is reported)

# %%
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display

from qgait_lab.lab import checks
from qgait_lab.lab.course.budget import default_budget, notebook_config
from qgait_lab.deploy import (build_integer_model, compare_codes, embedding_cosine, fake_quant_codes,
                              integer_forward, quantize_multiplier, requantize, weight_codes)
from qgait_lab.deploy.accumulator import accumulator_bits, layer_accumulator_rows
from qgait_lab.experiments.export import parity_sequences
from qgait_lab.experiments.onnx_eval import evaluate_onnx
from qgait_lab.deploy.onnx_export import export_float_onnx, export_onnx
from qgait_lab.deploy.onnx_runtime import OnnxModel
from qgait_lab.deploy.timing import time_interleaved
from qgait_lab.deploy.reference import conv_codes
from qgait_lab.deploy.serialize import model_bytes
from qgait_lab.experiments.pipeline import Experiment, input_size, model_bitops
from qgait_lab.lab.figures import histogram_figure
from qgait_lab.lab.widgets import setup_matplotlib

setup_matplotlib()
budget = BUDGET or default_budget(PRESET)
base = [f"name={NAME}", f"runtime.device={DEVICE}"] + list(OVERRIDES)
cfg = notebook_config(PRESET, budget, base + [f"quant.bits={BITS}"])
exp = Experiment(cfg)
qgait = exp.run("qgait")                      # reused from notebooks 06-08 when it is there
model = qgait.model.cpu().eval()
integer = build_integer_model(model, "qgait")
print(f"preset {PRESET}, budget {budget!r}: QGait-{BITS} with Rank-1 {qgait.metrics['rank1']:.2f} "
      f"(fake-quantized), input {input_size(cfg)[0]}x{input_size(cfg)[1]}")

# %% [markdown]
# ## 1. A trained layer as integers
#
# `build_integer_model` reads the fake-quantized GaitBase and returns its integer form: for every quantized
# convolution and for the separate FCs, the weight **codes** training used (int8 containers), the weight
# **step**, and the **grid** of the layer's input: its step s_x and its code range. Every grid of this
# project has zero point 0 (LSQ's grid is symmetric around 0, or starts at 0 after a ReLU), so a code c
# stands for the real value c·s.

# %%
lines = ["| layer | weight codes | w bits | input codes | input step s_x | container |",
         "|---|---|---:|---|---:|---|"]
for row, layer in zip(integer.summary_rows(), integer.layers()):
    lines.append(f"| {row['layer'].replace('Backbone.forward_block.', '')} | {row['weight']} | {row['w_bits']} | "
                 f"{row['a_codes']} | {row['a_step']:.4g} | {layer.input_grid.container} |")
display(Markdown("\n".join(lines)))

# %% [markdown]
# We follow one convolution: `layer2.0.conv1`, the first 3×3 convolution of the second stage (stride 2).
# Its input comes from a ReLU, so its grid is unsigned, 0 … 2^b − 1 in a `uint8`; its weights are signed
# codes −2^(b−1) … 2^(b−1) − 1 in an `int8`. The codes are read off the fake quantizer itself
# (`weight_codes`), so the integer weights are exactly what training used, not a re-quantization after the
# fact:

# %%
LAYER = "Backbone.forward_block.layer2.0.conv1"
block = integer.blocks[1]
conv, after = block.conv1, block.conv2.input_grid     # the layer, and the grid its output goes to
assert conv.name == LAYER
module = dict(model.named_modules())[LAYER]
codes, s_w = weight_codes(module.weight_quantizer, module.weight)
s_w = s_w.expand(conv.out_channels).view(-1, 1, 1, 1)  # one step per output channel (here all equal, per tensor)
s_x = conv.input_grid.scale
with torch.no_grad():
    fake_weight = module.weight_quantizer(module.weight).double()
print(f"{LAYER}: weight codes {tuple(codes.shape)} {codes.dtype}, from {int(codes.min())} to {int(codes.max())}, "
      f"step s_w = {float(s_w.median()):.5g}; input codes {conv.input_grid.lo}..{conv.input_grid.hi} "
      f"({conv.input_grid.container}), step s_x = {s_x:.5g}")
print(f"fake-quantized weight / s_w: integers to {float((fake_weight / s_w - codes).abs().max()):.1e} (float32), "
      f"and the integer model holds the same codes: {torch.equal(codes, conv.codes)}")

# %% [markdown]
# ## 2. The int32 accumulator
#
# A convolution with input codes x and weight codes w sums products of integers. For one output value,
#
# $$y = \sum_k (s_w w_k)(s_x x_k) = s_x s_w \underbrace{\textstyle\sum_k w_k x_k}_{\text{acc, an integer}}$$
#
# The sum `acc` is what integer hardware computes: 8-bit products added in a 32-bit register (Jacob et al.
# 2018, Sec. 2.3). One float number per output channel, s_x·s_w, turns it back into the real value. We
# take a few test sequences, record the codes of every quantized layer's input in the fake-quantized model
# (`fake_quant_codes`), and compute this layer's accumulator from its input codes and its weight codes. The
# real value `acc · s_x · s_w` must be the fake-quantized model's own convolution output:

# %%
sils = parity_sequences(cfg, 4, exp.test_set)            # [sequences, frames, h, w] as evaluation reads them
seen = {}
hooks = [module.register_forward_hook(lambda m, i, o: seen.update(conv=o.detach().double())),
         dict(model.named_modules())["Backbone.forward_block.layer2.0.bn1"].register_forward_hook(
             lambda m, i, o: seen.update(bn=o.detach().double()))]
fake_codes, fake_embeddings = fake_quant_codes(model, integer, sils)
for h in hooks:
    h.remove()
x_codes = fake_codes[LAYER]                              # int64 codes of this layer's input
acc = F.conv2d(x_codes.double(), conv.codes.double(), stride=conv.stride, padding=conv.padding)
acc = acc.round().to(torch.int64)                        # float64 sums small integers exactly
real = acc.double() * s_x * s_w.view(1, -1, 1, 1)
print(f"input codes {tuple(x_codes.shape)}; accumulator {tuple(acc.shape)}, from {int(acc.min())} to "
      f"{int(acc.max())}")
print(f"acc * s_x * s_w against the fake-quantized conv output: largest difference "
      f"{float((real - seen['conv']).abs().max()):.2e} (float32 rounding of the float model), largest value "
      f"{float(seen['conv'].abs().max()):.3g}")

# %% [markdown]
# ## 3. BatchNorm folded in
#
# The BatchNorm after the convolution is, in inference, one affine map per channel c:
# γ_c (y − μ_c)/σ_c + β_c. Substituting y = s_x s_w acc gives
#
# $$\text{BN}(y)_c = \underbrace{s_x s_w \tfrac{\gamma_c}{\sigma_c}}_{\text{accumulator step}}\,\text{acc}_c
#   + \underbrace{\big(\beta_c - \gamma_c\mu_c/\sigma_c\big)}_{\text{shift}}$$
#
# So BatchNorm costs nothing at inference: its scale joins the accumulator's step (`accumulator_scale`), and
# its shift is added in integers too. A channel with γ_c < 0 gets its weight codes negated (`folded_codes`),
# so every step stays positive (ONNX wants positive scales); a 4-bit code −8 then becomes +8, which an int8
# container holds. Folding keeps every weight code. The shift can enter in two ways:
#
# * as an **int32 bias** added to the accumulator, in accumulator units: what onnxruntime's integer
#   convolution takes. It is rounded to a whole unit;
# * as an **offset of the requantization** (Section 4), in the fixed-point units of its product, 2^(−31) of
#   an output step or finer: what the library's integer reference does by default.
#
# The integer model's docstrings (`qgait_lab/deploy/integer_model.py`, `reference.py`) have the details.
# Here is the shift rounded to whole accumulator units, and how far that moves the BatchNorm output:

# %%
acc_folded = F.conv2d(x_codes.double(), conv.folded_codes.double(), stride=conv.stride, padding=conv.padding)
acc_folded = acc_folded.round().to(torch.int64)
unit = conv.accumulator_scale.view(1, -1, 1, 1)
whole_bias = torch.round(conv.bn_shift / conv.accumulator_scale).to(torch.int64).view(1, -1, 1, 1)
bn_folded = (acc_folded + whole_bias).double() * unit
error_in_units = ((bn_folded - seen["bn"]) / unit).abs().max()
print(f"{int((conv.bn_scale < 0).sum())} of {conv.out_channels} channels negated by the fold")
print(f"(acc + bias) x accumulator step against the fake-quantized BatchNorm output: largest difference "
      f"{float(error_in_units):.3f} accumulator units (the bias is rounded to whole units: at most 0.5)")
print(f"one accumulator unit is {float(conv.accumulator_scale.median() / after.scale):.3f} of the next grid's "
      f"step (median over channels)")

# %% [markdown]
# The last line matters below: the int32 bias is off by up to half an accumulator unit, and measured in
# steps of the *next* grid that is half the ratio printed. At 4 bits the steps are coarse and the
# accumulator unit is not tiny next to them, so now and then the rounded bias moves a value across a
# rounding boundary of the next layer.
#
# **Headroom.** A 4-bit code uses a small part of its 8-bit container. Multiply every weight code by a power
# of two h and divide its step by h: the weights are the same real numbers, and the codes still fit int8
# (4-bit codes up to h = 16). The same holds for the input codes in their uint8. An int8 kernel does not
# care, and its accumulator unit, and with it the int32 bias's rounding, becomes h_w·h_x times finer
# (`IntegerConv.headroom`, `input_headroom`, `int32_bias()`; the exported ONNX graph does this):

# %%
fine_bias, fine_unit = conv.int32_bias()
print(f"headroom: weight codes x {conv.headroom}, input codes x {conv.input_headroom}; the int32 bias is then in "
      f"units {conv.headroom * conv.input_headroom} times finer, "
      f"{float(fine_unit.median() / after.scale):.2e} of the next grid's step")

# %% [markdown]
# ## 4. Requantization: M as an integer and a shift
#
# The next layer (`conv2`, after the ReLU) wants codes on its own grid, step s_y. The real value
# (acc + bias)·s_acc is on that grid at (acc + bias)·s_acc/s_y, so the accumulator is multiplied by the
# real number
#
# $$M_c = \frac{s_{\text{acc},c}}{s_y} = \frac{s_x\, s_w\, |\gamma_c|/\sigma_c}{s_y}$$
#
# and rounded, then clamped to the grid (the ReLU is the grid's lower end, 0). Integer-only hardware never
# holds M as a float: it writes M = m₀ · 2^(−n) with an integer **mantissa** m₀ in [2^30, 2^31) and a
# **shift** n, and computes round(acc · M) as an integer product and a right shift
# (`qgait_lab.deploy.fixed_point.quantize_multiplier`):

# %%
m_real = (conv.accumulator_scale / after.scale).tolist()
lines = ["| channel | M | mantissa m₀ | shift n | m₀ · 2^(−n) | relative error |",
         "|---:|---:|---:|---:|---:|---:|"]
for c in range(4):
    fixed_point = quantize_multiplier(m_real[c])
    lines.append(f"| {c} | {m_real[c]:.10f} | {fixed_point.mantissa} | {fixed_point.shift} | "
                 f"{fixed_point.value:.10f} | {abs(fixed_point.value / m_real[c] - 1):.1e} |")
display(Markdown("\n".join(lines)))

# %% [markdown]
# 31 bits of mantissa hold M to a relative 2^(−31) or better, far finer than the half step that decides a
# rounding. The product of an int32 accumulator and a 31-bit mantissa needs up to 62 bits, so it is
# computed in int64. To round rather than floor, half of 2^n is added before the shift:
#
# $$\text{round}(\text{acc}\cdot M) = (\text{acc}\cdot m_0 + 2^{n-1}) \gg n$$
#
# An arithmetic right shift floors, for negative numbers too, so this rounds every exact tie **up**
# (toward +∞): 2.5 → 3 and −2.5 → −2. (The fake quantizers' `torch.round` rounds ties to even; an exact tie
# needs acc·M to be exactly j + ½, which real layers practically never produce.)
#
# ### ✏️ Exercise 9.1: the integer requantization step
#
# Write `requantize_codes(acc, multiplier, grid)`: `acc` is an int64 tensor of accumulators (any shape),
# `multiplier` the real number M > 0 (a Python float), `grid` a `qgait_lab.deploy.Grid` with the code range
# `grid.lo … grid.hi`. Return the int64 codes round(acc·M), ties up, clamped to the grid, computed with
# integer operations only: take the mantissa and the shift from `quantize_multiplier(multiplier)` (fields
# `.mantissa` and `.shift`, both Python ints, shift > 0 for every M used here), then use `*`, `+`, `>>` (or
# `//`) and `.clamp` on int64 tensors; no float tensors, and not the library's `requantize`. The checker
# tries five cases (4- and 8-bit grids, signed and unsigned, exact ties, accumulators near the int32 limit,
# and a multiplier that its fixed-point form does not hold exactly) and names the first property your codes
# violate.

# %%
# Exercise 9.1
def requantize_codes(acc: torch.Tensor, multiplier: float, grid) -> torch.Tensor:
    """round(acc * multiplier) onto grid.lo..grid.hi, with integer operations only."""
    # YOUR CODE HERE
    raise NotImplementedError

# %%
from qgait_lab.lab import checks
checks.check_requantize_codes(requantize_codes)

# %% [markdown]
# **The library's step.** `qgait_lab.deploy.requantize` does this for every channel at once, each with its
# own mantissa and shift, and can add the BatchNorm shift as an offset in the product's fixed-point units
# (`offsets`, real numbers in output steps); `qgait_lab.deploy.reference.conv_codes` runs a whole layer with
# it (accumulator, BatchNorm, ReLU, requantization). Applied to this layer, the three ways of adding the
# BatchNorm shift give the codes the next layer reads. Against the codes the fake-quantized model computed
# in float, with the same input codes for both (so only this layer is compared):

# %%
per_channel = [quantize_multiplier(m) for m in m_real]
variants = {
    "int32 bias in whole accumulator units": requantize(acc_folded + whole_bias, per_channel).clamp(0, after.hi),
    f"int32 bias in units {conv.headroom * conv.input_headroom} times finer (as exported)":
        conv_codes(conv, x_codes, after, int32_bias=True),
    "requantization offset (the default)": conv_codes(conv, x_codes, after),
}
want = fake_codes[block.conv2.name]
for how, got in variants.items():
    print(f"{how}: {100 * float((got == want).double().mean()):.4f} % of the {want.numel()} codes identical "
          f"to the fake-quantized model's, at most {int((got - want).abs().max())} step apart")

# %% [markdown]
# With the int32 bias in whole units a small share of the codes moves by one step: the values that lie
# within the bias's rounding error of a rounding boundary. Headroom makes that error a few hundred times
# smaller, and the offset, rounded only to 2^(−31) of an output step or finer, smaller still: the codes then
# agree with the fake-quantized model's up to exact ties and float32 rounding in the fake-quantized model
# itself. Section 5 measures the whole model.
#
# ### ✏️ Exercise 9.2: how wide must the accumulator be?
#
# The accumulator holds a sum of fan-in products, fan-in = C_in · k · k for a k×k convolution over C_in
# input channels. Write `accumulator_bits_needed(w_bits, a_bits, c_in, kernel, signed_input)`: the number of
# bits of the smallest signed (two's-complement) integer that holds every value the accumulator can take,
# for weight codes −2^(w_bits−1) … 2^(w_bits−1) (the folded codes of Section 3) and input codes
# 0 … 2^(a_bits) − 1, or −2^(a_bits−1) … 2^(a_bits−1) − 1 when `signed_input` is true. Leave the bias out.
# Return an int. Then answer for yourself: does a w8a8 3×3 convolution over 512 channels fit int32? Over
# 8192? The checker tries eight convolutions, among them GaitBase's stem and stages.

# %%
# Exercise 9.2
def accumulator_bits_needed(w_bits: int, a_bits: int, c_in: int, kernel: int, signed_input: bool = False) -> int:
    """Bits of the smallest signed integer that holds every possible accumulator value."""
    # YOUR CODE HERE
    raise NotImplementedError

# %%
from qgait_lab.lab import checks
checks.check_accumulator_bits_needed(accumulator_bits_needed)

# %% [markdown]
# **Every layer of our model**, with the library's count (`qgait_lab.deploy.accumulator`), and the largest
# number of 3×3 input channels whose w8a8 worst case still fits int32:

# %%
rows = layer_accumulator_rows(integer)
display(Markdown("| layer | fan-in | w/a bits | worst-case abs(acc) | accumulator bits | fits int32 |\n"
                 "|---|---:|---|---:|---:|---|\n" + "\n".join(
                     f"| {r['layer'].replace('Backbone.forward_block.', '')} | {r['fan_in']} | "
                     f"{r['w_bits']}/{r['a_bits']} | {r['bound']:,} | {r['bits']} | "
                     f"{'yes' if r['fits_int32'] else 'no'} |"
                     for r in rows)))
most = max(c for c in range(1, 2 ** 17) if accumulator_bits(8, 8, 9 * c) <= 32)
print(f"w8a8, 3x3 kernel: up to {most} input channels fit int32 in the worst case "
      f"(the full-width GaitBase has at most 512)")
followed = next(r for r in rows if r["layer"] == LAYER)
print(f"{LAYER}: the measured accumulator reaches {int(acc_folded.abs().max()):,}, "
      f"{100 * int(acc_folded.abs().max()) / followed['bound']:.1f} % of its worst case {followed['bound']:,}")
histogram_figure({LAYER.replace("Backbone.forward_block.", ""): acc_folded.numpy()}, xlabel="accumulator (integer)",
                 title="one layer's int32 accumulators on test sequences");

# %% [markdown]
# Real accumulators stay far below the worst case: products of both signs cancel, and most input codes are
# small. A w8a8 convolution needs the int32 accumulator once its fan-in passes a few hundred (int16 is far
# too small), and int32 itself runs out only past seven thousand 3×3 input channels. At 4 bits the same
# layers need about 8 bits less, which a 16-bit accumulator could hold for the small layers; x86 CPUs have
# no such kernels (Section 6).
#
# ## 5. The whole model in integers, then in onnxruntime
#
# `integer_forward` runs the whole GaitBase this way: the stem quantizes the silhouettes as training did,
# each convolution accumulates in int32 and requantizes with fixed-point multipliers, the residual adds are
# done on a fine integer grid, temporal max pooling and the horizontal pyramid are max and sum of integers,
# and the FCs' accumulators are multiplied by s_x·s_w once at the end (the module docstring of
# `qgait_lab/deploy/reference.py` lists what runs in integers and what does not). Against the
# fake-quantized model, layer by layer, with the BatchNorm shift as a requantization offset (`bias="exact"`,
# the default) and as the exported ONNX graph computes it (`bias="onnx"`: an int32 bias with headroom where
# onnxruntime runs an integer kernel):

# %%
BAR = {"identical": 0.9999, "max_step": 1, "cosine": 0.9999}   # the acceptance bar of issue 14
lines = ["| BatchNorm shift as | codes identical | codes differing | at most | worst layer | embedding cosine |",
         "|---|---:|---:|---:|---|---:|"]
verdicts = {}
for how in ("exact", "onnx"):
    out = integer_forward(integer, sils, bias=how)
    agreement = compare_codes(fake_codes, out.codes)
    cosine = embedding_cosine(fake_embeddings, out.embeddings)
    lines.append(f"| {'requantization offset' if how == 'exact' else 'as exported (int32 bias)'} | "
                 f"{100 * agreement.fraction:.4f} % | {agreement.differing} of {agreement.elements} | "
                 f"{agreement.max_step} step | {agreement.worst_layer.replace('Backbone.forward_block.', '')} | "
                 f"{cosine:.6f} |")
    verdicts[how] = (agreement.fraction >= BAR["identical"] and agreement.max_step <= BAR["max_step"]
                     and cosine >= BAR["cosine"])
display(Markdown("\n".join(lines)))
print(f"the bar (>= {100 * BAR['identical']:.2f} % identical, <= {BAR['max_step']} step, cosine >= "
      f"{BAR['cosine']}): " + ", ".join(f"bias={how!r} {'meets it' if ok else 'MISSES it'}"
                                      for how, ok in verdicts.items()))

# %% [markdown]
# A code that moves in one layer changes that layer's output, and later layers inherit the difference, so
# a difference, once there, spreads with depth. How many codes move depends on the trained model: on the
# fast budget the BatchNorm statistics come from a handful of iterations and the steps are far from trained
# ones. The embedding cosine says how much of it reaches the output.
#
# **ONNX.** `export_onnx` writes the integer model as an ONNX graph in QDQ form: a `QuantizeLinear`
# (float → codes) and a `DequantizeLinear` (codes → float) around every quantized layer's input, and the
# weights as int8 initialisers read through `DequantizeLinear`. Written this way the graph still computes in
# float; it is onnxruntime that, when it optimises the graph, recognises `DequantizeLinear → Conv → Quantize
# Linear` and replaces it with an integer kernel, `QLinearConv` (uint8 × int8 products, int32 accumulator,
# fixed-point requantization). The node types of onnxruntime's *optimised* graph show what it really runs:

# %%
deploy_dir = Path(cfg.runtime.runs_dir) / cfg.name / "deploy"
onnx_path = export_onnx(integer, deploy_dir / f"qgait-w{BITS}a{BITS}.onnx", input_size(cfg))
session = OnnxModel(onnx_path)
nodes = session.node_types()
display(Markdown("| op type in onnxruntime's optimised graph | nodes |\n|---|---:|\n" + "\n".join(
    f"| {op} | {n} |" for op, n in sorted(nodes.items(), key=lambda item: (-item[1], item[0])))))
float_convs = nodes.get("Conv", 0) + nodes.get("FusedConv", 0)        # FusedConv: a float Conv with its Relu
integer_matmuls = sum(n for op, n in nodes.items() if op.startswith("MatMulInteger") or op == "QLinearMatMul")
print(f"{nodes.get('QLinearConv', 0)} of {len(integer.convs())} convolutions run as integer kernels (QLinearConv), "
      f"{float_convs} stay float convolutions on dequantized weights; the FCs' MatMul runs "
      f"{'on int8 products' if integer_matmuls else 'in float'}")

# %% [markdown]
# Only a convolution whose output goes straight into a quantizer becomes a `QLinearConv`: in GaitBase that
# is each block's `conv1`. The stem's output, `conv2` and the downsample feed the residual sum, which
# GaitBase adds in float and which has no quantizer of its own in the trained model, so they stay float
# convolutions on dequantized weights (`FusedConv` is a float convolution with its ReLU fused in; the module
# docstring of `qgait_lab/deploy/onnx_export.py` says which nodes run in integers and why). Making them
# integer too would need a quantizer on the residual sum, which means training a different model. A
# `MatMulIntegerToFloat`, where it appears, is the FCs' matrix product on int8 codes with a float output.
# The exported graph adds the BatchNorm shift as an int32 bias (the way `QLinearConv` takes it), so
# onnxruntime computes the "as exported" row of the table above, not the default one.
#
# The exported model alone, evaluated on the test split with onnxruntime (no PyTorch model is built), beside
# the fake-quantized model:

# %%
onnx_metrics = evaluate_onnx(cfg, onnx_path, test=exp.test_set)
display(Markdown(f"| QGait-{BITS} | Rank-1 | mAP |\n|---|---:|---:|\n"
                 f"| fake-quantized (PyTorch) | {qgait.metrics['rank1']:.2f} | {qgait.metrics['mAP']:.2f} |\n"
                 f"| onnxruntime, int8 kernels | {onnx_metrics['rank1']:.2f} | {onnx_metrics['mAP']:.2f} |"))

# %% [markdown]
# ## 6. BitOPs against the clock
#
# Now one sequence of `TIMING_FRAMES` frames, timed (the median of `REPEATS` runs after a warm-up, on the
# threads PyTorch uses here): the full-precision model in PyTorch (fp32, eager), the same float model
# exported to ONNX (`export_float_onnx`, BatchNorm folded, no Q/DQ), and the quantized models through
# onnxruntime's int8 kernels. Times on a shared or busy machine are noisy, PyTorch's most of all (its
# thread pool suffers when other processes take the cores): the variants take turns, so a change of load
# hits all of them, but rerun the cell when the numbers look odd.

# %%
fp = exp.run("fp")
fp_model = fp.model.cpu().eval()
sequence = parity_sequences(cfg, 1, exp.test_set, frames=TIMING_FRAMES)
sequence = sequence.repeat(1, math.ceil(TIMING_FRAMES / sequence.shape[1]), 1, 1)[:, :TIMING_FRAMES]
x = sequence.numpy()
threads = torch.get_num_threads()
quantized = {BITS: (model, integer, onnx_path)}
if COMPARE_BITS:
    other = Experiment(notebook_config(PRESET, budget, base + [f"quant.bits={COMPARE_BITS}"])).run("qgait")
    other_model = other.model.cpu().eval()
    other_integer = build_integer_model(other_model, "qgait")
    quantized[COMPARE_BITS] = (other_model, other_integer, export_onnx(
        other_integer, deploy_dir / f"qgait-w{COMPARE_BITS}a{COMPARE_BITS}.onnx", input_size(cfg)))


def torch_fp32():
    with torch.inference_mode():
        fp_model(sequence)


sessions = {"onnxruntime fp32": OnnxModel(export_float_onnx(fp_model, deploy_dir / "fp32.onnx", input_size(cfg)),
                                          threads=threads)}
for bits, (_, _, path) in sorted(quantized.items(), reverse=True):
    sessions[f"onnxruntime w{bits}a{bits} (int8 kernels)"] = OnnxModel(path, threads=threads)
runs = {"torch fp32 (eager)": torch_fp32, **{name: (lambda s=s: s.embed(x)) for name, s in sessions.items()}}


seconds, _ = time_interleaved(runs, warmup=1, reps=REPEATS, seconds=0)   # interleaved rounds, medians
timings = {name: 1000 * s for name, s in seconds.items()}
print(f"{TIMING_FRAMES} frames of {input_size(cfg)[0]}x{input_size(cfg)[1]}, {threads} thread(s): " + ", ".join(
    f"{name} {ms:.2f} ms" for name, ms in timings.items()))

# %% [markdown]
# And the same variants in the paper's measure. BitOPs are counted for the timed sequence as the result
# tables count them (`qgait_lab.quant.bitops`, BatchNorm included, notebook 08); the weight bytes are those
# of the stored weights (`qgait_lab.deploy.serialize.model_bytes`: 4 bytes a weight in fp32, one code a byte
# in int8, two 4-bit codes a byte packed).

# %%
torch_ms = timings["torch fp32 (eager)"]
fp_bitops = model_bitops(fp_model, cfg, frames=TIMING_FRAMES) / 1e9
lines = ["| variant | BitOPs (G) | BitOPs vs fp32 | time (ms) | speed-up vs torch fp32 | weight bytes |",
         "|---|---:|---:|---:|---:|---:|"]
for name in ("torch fp32 (eager)", "onnxruntime fp32"):
    lines.append(f"| {name} | {fp_bitops:.4f} | 1 | {timings[name]:.2f} | {torch_ms / timings[name]:.2f}x | "
                 f"{model_bytes(integer, 'fp32'):,} |")
for bits, (fake_model, integer_b, _) in sorted(quantized.items(), reverse=True):
    name = f"onnxruntime w{bits}a{bits} (int8 kernels)"
    g = model_bitops(fake_model, cfg, frames=TIMING_FRAMES) / 1e9
    stored = model_bytes(integer_b, "int4") if bits <= 4 else model_bytes(integer_b, "int8")
    lines.append(f"| {name} | {g:.4f} | 1/{fp_bitops / g:.0f} | {timings[name]:.2f} | "
                 f"{torch_ms / timings[name]:.2f}x | "
                 f"{stored:,}{' (packed)' if bits <= 4 else ''} |")
display(Markdown("\n".join(lines)))

# %% [markdown]
# **Why 4 bits are not faster than 8 here.** BitOPs say a w4a4 model costs a quarter of a w8a8 one and
# 1/64 of fp32. The clock does not: the w4a4 and w8a8 rows run the same kernels and take about the same
# time. No x86 library has a 4-bit convolution kernel today: onnxruntime's int4 support is `MatMulNBits`
# (4-bit weights of a matrix product, for language models), and XNNPACK's 4-bit kernels are for fully
# connected layers only. So a w4a4 model runs as 4-bit *values* in int8 containers through the same
# `QLinearConv` as w8a8, and its results are exact (a 4-bit code is an 8-bit code that happens to be small).
# What 4 bits do save is memory: packed two per byte, the weights take half the int8 bytes and an eighth of
# fp32 (the last column).
#
# Against fp32 the picture depends on the model's size. BitOPs assume that every operation costs in
# proportion to its bits; a CPU pays per instruction, per memory access and per graph node. At the
# quarter width of this preset each convolution is small, so the fixed costs around it (the Q/DQ nodes,
# the NCHW ↔ NHWC transposes onnxruntime puts around every `QLinearConv`, the convolutions that stay in
# float) weigh as much as the arithmetic, and int8 may not beat fp32 at all; `benchmarks/bench_deploy.py`
# measures the full-width GaitBase as well, where int8 kernels have more arithmetic to save. Appendix A.3
# names the hardware where low bits do pay: INT4 tensor cores (NVIDIA's Turing and Ampere GPUs).
#
# ## Summary
#
# * A fake-quantized layer is an integer layer in disguise: its weight codes and its grids are read off the
#   trained quantizers, and acc·s_x·s_w is exactly its float output.
# * BatchNorm folds into the accumulator's step and an integer shift; as an int32 bias (what onnxruntime
#   takes) the shift is rounded to an accumulator unit, which at 4 bits moves a share of codes unless the
#   codes' headroom makes the unit finer; as a requantization offset it is exact (Sections 3–5 count them).
# * Requantization is M = s_x·s_w/s_y written as a 31-bit mantissa and a shift: one int64 product, one
#   addition, one shift, one clamp.
# * An accumulator needs about b_w + b_a + log2(fan-in) bits: int32 is plenty for GaitBase at 8 bits.
# * onnxruntime turns the QDQ graph into `QLinearConv` where a convolution's output goes to a quantizer; the
#   residual path stays float.
# * BitOPs measure arithmetic at the bits of its operands; on a CPU without 4-bit kernels, 4 bits save
#   memory, not time.
#
# This is the last notebook of the course.
