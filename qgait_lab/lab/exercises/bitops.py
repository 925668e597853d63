"""Exercises of notebook 08 (BitOPs, Tables 1-2 and accuracy per BitOP).

* 8.1 the BitOPs of one convolution, by hand (paper Sec. 4.1);
* 8.2 the BitOPs of a w4a4 GaitBase whose first and last layers stay in full precision;
* 8.3 the first layer's share of that increase: the number behind "the first layer alone adds almost
  all of the difference".

The references are the library's hook-based counter (:mod:`qgait_lab.quant.bitops`), never a
formula typed here: :func:`gaitbase_bitops_g` counts GaitBase under a per-layer policy and
:func:`first_last_reference` is the count Exercise 8.2 asks for.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable

import torch

from .core import Wrong, as_number, call, exercise, fmt

NOTEBOOK = "08_bitops_and_tables"

FULL = 32
"""Bits that mean "not quantized" in a :class:`~qgait_lab.quant.LayerPolicy`."""


# ---------------------------------------------------------------------------
# References: the hook counter
# ---------------------------------------------------------------------------
def conv_reference(c_in: int, c_out: int, kernel: int, h_out: int, w_out: int, frames: int,
                   w_bits: int, a_bits: int) -> float:
    """BitOPs of one bias-free, stride-1 convolution, counted by :func:`quant.bitops.count_costs`."""
    from torch import nn

    from ...quant import quantize_model
    from ...quant.bitops import count_costs, summarize

    conv = nn.Sequential(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False))
    if (w_bits, a_bits) != (FULL, FULL):
        quantize_model(conv, "lsq", w_bits, a_bits)
    return summarize(count_costs(conv, torch.zeros(frames, c_in, h_out, w_out)))["bitops"]


@functools.lru_cache(maxsize=None)
def gaitbase_bitops_g(frames: int = 100, bits: int = 4, first: int | None = None, last: int | None = None,
                      inference_only: bool = True) -> float:
    """BitOPs (G) of full-width GaitBase on ``[1, frames, 64, 44]`` at ``bits`` (paper Sec. 4.1).

    ``first`` / ``last``: the bits of the first / last quantizable layer (weights and activations),
    ``None`` for the same bits as the rest; ``inference_only`` leaves out the BNNeck head, which is used
    only in training (as Tables 1-2 do).
    """
    from ...models import build_model
    from ...quant import LayerPolicy
    from ...quant.bitops import bitops_table, gaitbase_inference_layers

    policy = LayerPolicy(first_layer_bits=None if first is None else (first, first),
                         last_layer_bits=None if last is None else (last, last))
    rows = bitops_table(lambda: build_model("gaitbase", num_classes=3000), [torch.zeros(1, frames, 64, 44)],
                        [bits], policy=policy, include=gaitbase_inference_layers if inference_only else None)
    return rows[0]["bitops"] / 1e9


def first_last_reference(frames: int = 100, bits: int = 4, first_last: int = FULL) -> float:
    """BitOPs (G) of GaitBase at ``bits`` with the first and last layers at ``first_last`` bits (Ex. 8.2)."""
    return gaitbase_bitops_g(frames, bits, first_last, first_last)


def first_layer_share_reference(frames: int = 100, bits: int = 4) -> float:
    """The first layer's part (%) of the increase from uniform ``bits`` to Ex. 8.2's policy (Ex. 8.3)."""
    uniform = gaitbase_bitops_g(frames, bits)
    return 100 * (gaitbase_bitops_g(frames, bits, FULL, None) - uniform) / (first_last_reference(frames, bits)
                                                                          - uniform)


def _near(a: float, b: float, rel: float) -> bool:
    return math.isclose(a, b, rel_tol=rel)


# ---------------------------------------------------------------------------
# 8.1 One convolution by hand
# ---------------------------------------------------------------------------
CONV_CASES = ((1, 64, 3, 64, 44, 100, 4, 4), (64, 128, 3, 32, 22, 30, 8, 8), (128, 256, 1, 16, 11, 1, 4, 8),
              (32, 32, 3, 8, 8, 7, 32, 32))
"""(c_in, c_out, kernel, h_out, w_out, frames, w_bits, a_bits) of the visible checks."""

_CONV_ARGS = ("c_in", "c_out", "kernel", "h_out", "w_out", "frames", "w_bits", "a_bits")


def conv_case_text(case) -> str:
    return "conv_bitops(" + ", ".join(f"{n}={v}" for n, v in zip(_CONV_ARGS, case)) + ")"


def compare_conv(conv_bitops: Callable, case) -> None:
    """One convolution: the student's count against the counter, naming the convention it breaks."""
    c_in, c_out, kernel, h_out, w_out, frames, w_bits, a_bits = case
    where = conv_case_text(case)
    got = call(conv_bitops, *case)
    if got is None:
        raise Wrong("conv_bitops returned None: did you forget the return statement?")
    got = as_number(got, where)
    want = conv_reference(*case)
    if _near(got, want, 1e-9):
        return
    scale = (w_bits / FULL) * (a_bits / FULL)
    readings = [
        (2.0, "counts every multiply-accumulate twice (as two FLOPs); the paper's tables count MACs"),
        (float(w_out), "grows with the output width twice (the printed 'NHWW' repeats W); count each output "
                       "position once, H_out * W_out of them per frame"),
        (1 / kernel if kernel > 1 else None, "grows with the kernel size F, not with the F x F kernel "
                                             "positions each output value sums over"),
        (1 / frames if frames > 1 else None, "does not grow with the number of frames; the backbone runs on "
                                             "every frame"),
        (1 / scale if scale != 1 else None, "does not change with the bit-widths; each operand contributes "
                                            "a factor (bits / 32)"),
        (w_bits * a_bits / scale if scale != 1 else None, "multiplies by the bits themselves; BitOPs weight a "
                                                          "MAC by (b_w / 32) * (b_a / 32)"),
    ]
    for ratio, what in readings:
        if ratio is not None and _near(got, want * ratio, 1e-9):
            raise Wrong(f"{where} = {fmt(got)}: your count {what}")
    side = "too large" if got > want else "too small"
    raise Wrong(f"{where} = {fmt(got)} is {side}")


@exercise("8.1", NOTEBOOK, "one convolution by hand", answer="conv_bitops", hints=(
    "Count multiply-accumulates first: how many does one output value of the convolution need, and how many "
    "output values are there in one frame?",
    "One output value sums over every input channel and every position of the kernel window; there is one "
    "output value per output channel and output position. Then weight the count by what each operand's "
    "bit-width contributes, as Sec. 4.1 does.",
    "The printed formula of Sec. 4.1 has two details the counter (and Tables 1-2) do not follow: compare "
    "its constant factor and its letters with your own count. The checker says which one your value "
    "follows.",
))
def check_conv_bitops(conv_bitops: Callable) -> str:
    """``conv_bitops(c_in, c_out, kernel, h_out, w_out, frames, w_bits, a_bits)``: BitOPs of one conv layer."""
    for case in CONV_CASES:
        compare_conv(conv_bitops, case)
    return (f"your count matches qgait_lab.quant.bitops.count_costs on {len(CONV_CASES)} convolutions "
            "(1x1 and 3x3 kernels, 1 to 100 frames, 4, 8 and 32 bits, mixed w/a bits)")


# ---------------------------------------------------------------------------
# 8.2 First and last layers in full precision
# ---------------------------------------------------------------------------
FIRST_LAST_TOLERANCE = 5e-4
"""Relative: 0.05 %, so that a rounded guess fails and the counter's value passes."""


def _first_last_readings() -> list[tuple[float, str]]:
    """Values a typical mistake produces (G), with what the mistake is."""
    ref = first_last_reference()
    return [
        (ref * 1e9, "looks like BitOPs in units; give them in G (1e9)"),
        (gaitbase_bitops_g(), "is what the model costs with every layer at 4 bits; the first and the last "
                              "layer must stay at 32 bits (not quantized)"),
        (first_last_reference(first_last=8), "is the worked example's policy, first and last layers at 8 "
                                             "bits; this exercise keeps them at 32 bits"),
        (gaitbase_bitops_g(first=FULL), "has only the first layer at 32 bits; the last one stays at 32 "
                                        "bits too"),
        (gaitbase_bitops_g(last=FULL), "has only the last layer at 32 bits; the first one stays at 32 "
                                       "bits too"),
        (gaitbase_bitops_g(first=FULL, last=FULL, inference_only=False),
         "counts the BNNeck head, which is used only in training; pass include=gaitbase_inference_layers"),
        (first_last_reference(frames=1), "is the cost of one frame; the sequence has 100 frames"),
        (first_last_reference(frames=120), "is the cost of 120 frames (GREW's); this exercise counts 100"),
        (gaitbase_bitops_g(bits=FULL), "is the full-precision model (every layer at 32 bits)"),
    ]


@exercise("8.2", NOTEBOOK, "first and last layers in full precision", answer="first_last_bitops", hints=(
    "The worked example above computes almost the same thing: find the one setting it has to change.",
    "In a LayerPolicy, 32 bits means 'leave this layer in full precision'. Set it for the weights and the "
    "activations of both the first and the last layer, and keep the rest of the worked example's call "
    "(100 frames of 64x44, the 4-bit width, the inference-only layers).",
    "bitops_table returns one row per bit-width, with BitOPs in units: convert to G (1e9) and assign the "
    "value itself, unrounded; the check allows 0.05 %.",
))
def check_first_last_bitops(value: Any) -> str:
    """``first_last_bitops``: BitOPs (G) of w4a4 GaitBase on 100 frames, first and last layers at 32 bits."""
    got = as_number(value, "first_last_bitops")
    want = first_last_reference()
    if _near(got, want, FIRST_LAST_TOLERANCE):
        uniform = gaitbase_bitops_g()
        return (f"{got:.4f} G: the counter agrees to within 0.05 %, "
                f"{100 * (got / uniform - 1):.1f} % more than with every layer at 4 bits")
    for other, what in _first_last_readings():
        if _near(got, other, 2e-4):
            raise Wrong(f"your answer {what}")
    side = "too large" if got > want else "too small"
    raise Wrong(f"your {fmt(got)} G is {side} for w4a4 GaitBase on 100 frames with the first and the last layer "
                "at 32 bits; a rounded or estimated number will not pass (the check allows 0.05 %): assign the "
                "value the counter returns")


# ---------------------------------------------------------------------------
# 8.3 The first layer's share of the increase
# ---------------------------------------------------------------------------
SHARE_TOLERANCE = 1e-4
"""Relative: about 0.01 percentage points, so that a rounded guess such as 99 fails."""


def _share_readings() -> list[tuple[float, str]]:
    share = first_layer_share_reference()
    uniform = gaitbase_bitops_g()
    first_only = gaitbase_bitops_g(first=FULL)
    first_last = first_last_reference()
    macs_total = uniform * (FULL / 4) ** 2                      # every layer at 4 bits: BitOPs = MACs / 64
    macs_first = (first_only - uniform) / (1 - (4 / FULL) ** 2)
    macs_last = (first_last - first_only) / (1 - (4 / FULL) ** 2)
    return [
        (share / 100, "looks like a fraction; give the share as a percentage (0 to 100)"),
        (100 - share, "is the last layer's share of the increase, not the first layer's"),
        (100 * (first_last / uniform - 1), "is how much both layers at 32 bits add, relative to w4a4 "
                                           "everywhere; the question is which part of that increase the "
                                           "first layer causes"),
        (100 * (first_only / uniform - 1), "is the first layer's increase relative to w4a4 everywhere; the "
                                           "question is its part of Exercise 8.2's increase"),
        (100 * macs_first / macs_total, "is the first layer's share of all MACs, not of the increase"),
        (100 * macs_first / macs_last, "is the ratio of the two layers' MACs, not a share"),
    ]


@exercise("8.3", NOTEBOOK, "the first layer's share of the increase", answer="first_layer_share", hints=(
    "Both layers go from 4-bit to 32-bit weights and activations. How does one layer's extra cost depend "
    "on its MACs?",
    "Each layer's extra BitOPs are its MACs times the same factor, so the factor cancels in the share: you "
    "need only the two layers' MACs, which count_costs lists layer by layer (with "
    "include=gaitbase_inference_layers, the last entry is the last layer the policy means).",
    "Cross-check without MACs: the BitOPs with only the first layer at 32 bits, minus those with every "
    "layer at 4 bits, is the first layer's part of the increase.",
))
def check_first_layer_share(value: Any) -> str:
    """``first_layer_share``: the first layer's part (%) of the increase of Exercise 8.2 over w4a4."""
    got = as_number(value, "first_layer_share")
    want = first_layer_share_reference()
    if _near(got, want, SHARE_TOLERANCE):
        return (f"{got:.3f} %: the first convolution runs on every frame at full resolution, the last layer "
                "once per sequence after pooling, so the first one causes almost all of the increase")
    for other, what in _share_readings():
        if _near(got, other, 2e-4):
            raise Wrong(f"your answer {what}")
    if not 0 <= got <= 100:
        raise Wrong(f"your {fmt(got)} is not a share: a percentage of the increase lies between 0 and 100")
    side = "too large" if got > want else "too small"
    raise Wrong(f"your {fmt(got)} % is {side}; a rounded or estimated number will not pass (the check allows "
                "about 0.01 percentage points): compute it from the counter's numbers")
