"""Exercises of notebook 02 (quantization basics: Eqs. 2-4, the STE, LSQ, DoReFa and PACT).

* 2.1 ``lsq_codes``: the integer codes of Eq. 2;
* 2.2 ``lsq_step_grad``: LSQ's step gradient with the STE (Esser et al. 2019, Eq. 3);
* 2.3 ``pact_alpha_grad``: PACT's clip gradient (Choi et al. 2018);
* 2.4 ``dorefa_weight``: DoReFa's weight quantizer (Zhou et al. 2016);
* 2.5 ``mask_reason``: why Eq. 4 is zero outside the clip range (a choice).

Every checker compares the student's function with the library
(:mod:`qgait_lab.quant`) on several settings and reports the first setting where
they differ, the inputs there (the value v, x or w), the region they lie in
(inside the clip range, above it, exactly at a rounding threshold) and whether
the student's value is too large or too small, never the library's value.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from .core import Wrong, as_array, call, check_choice, compare_on_grid, exercise

NOTEBOOK = "02_quantization_basics"


# ---------------------------------------------------------------------------
# Shared helpers: regions of the clip range, and comparisons that name them
# ---------------------------------------------------------------------------
def code_range(bits: int, signed: bool) -> tuple[int, int]:
    """The library's integer clip range ``(r1, r2)`` (paper Sec. 3.1)."""
    from ...quant.functional import lsq_bounds

    return lsq_bounds(bits, signed)


def setting(bits: int, signed: bool, step: float) -> str:
    return f"for {'signed' if signed else 'unsigned'} {bits}-bit codes with step {step:g}"


def lsq_region(c: float, lo: int, hi: int) -> str:
    """Where ``c = v / step`` lies, in words a student can act on."""
    if c < lo:
        return "v/step is below the clip range (clipped)"
    if c > hi:
        return "v/step is above the clip range (clipped)"
    if c in (lo, hi):
        return "v/step is exactly on a clip bound"
    if abs(c - np.floor(c) - 0.5) < 1e-12:
        return "v/step is exactly at a rounding threshold (halfway between two codes)"
    return "v/step is inside the clip range"


def _labels(values: np.ndarray, name: str) -> list[str]:
    return [f"{name} = {v:.4g}" for v in values.ravel()]


def _compare(got: Any, want: torch.Tensor, labels: Sequence[str], what: str, prefix: str,
             describe: Callable[[int], str] | None, atol: float, keep: np.ndarray | None = None) -> None:
    """compare_on_grid on the elements in ``keep``, with ``prefix`` (the setting) in front of its message."""
    got_arr = as_array(got, what)
    want_arr = want.detach().double().cpu().numpy()
    if got_arr.shape != want_arr.shape:
        raise Wrong(f"{prefix}: {what} has shape {tuple(got_arr.shape)}, but the input has shape "
                    f"{tuple(want_arr.shape)}: return one value per input element")
    labels = np.asarray(labels, dtype=object).reshape(want_arr.shape)
    index = np.arange(want_arr.size).reshape(want_arr.shape)
    if keep is not None:
        got_arr, want_arr, labels, index = got_arr[keep], want_arr[keep], labels[keep], index[keep]
    try:
        compare_on_grid(got_arr, want_arr, list(labels.ravel()), what, atol=atol, rtol=0.0,
                        describe=(lambda i: describe(int(index.ravel()[i]))) if describe else None)
    except Wrong as err:
        raise Wrong(f"{prefix}: {err}") from None


# ---------------------------------------------------------------------------
# 2.1 LSQ's integer codes
# ---------------------------------------------------------------------------
def reference_codes(v: torch.Tensor, step: float, bits: int, signed: bool) -> torch.Tensor:
    """The codes of :meth:`LSQQuantizer.integer_codes` with the step fixed to ``step``."""
    from ...quant import LSQQuantizer

    q = LSQQuantizer(bits, is_weight=signed, signed=signed).to(v.dtype)
    with torch.no_grad():
        q.step.fill_(step)
    q.initialized = True
    with torch.no_grad():
        return q.integer_codes(v)


def codes_inputs(bits: int, signed: bool, step: float, seed: int = 0, shape: Sequence[int] = (2000,),
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Random values of which about half fall inside the code range and half are clipped."""
    lo, hi = code_range(bits, signed)
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=dtype) * (0.6 * (hi - lo) * step)


def tie_inputs(bits: int, signed: bool, step: float, dtype=torch.float64) -> torch.Tensor:
    """Inputs with v/step exactly halfway between two integers, inside and beyond the range (step a power of 2)."""
    lo, hi = code_range(bits, signed)
    return (torch.arange(lo - 2, hi + 2, dtype=dtype) + 0.5) * step


def assert_codes(lsq_codes: Callable, v: torch.Tensor, step: float, bits: int, signed: bool) -> None:
    """Raise Wrong, naming the setting and the inputs, if ``lsq_codes`` differs from the library there."""
    prefix = setting(bits, signed, step)
    lo, hi = code_range(bits, signed)
    got = as_array(call(lsq_codes, v.clone(), step, bits, signed), "lsq_codes")
    want = reference_codes(v, step, bits, signed)
    flat_v = v.detach().double().numpy().ravel()
    if got.shape == tuple(want.shape) and np.isfinite(got).all():
        flat = got.ravel()
        off_grid = np.flatnonzero(np.abs(flat - np.round(flat)) > 1e-6)
        if off_grid.size:
            i = off_grid[0]
            raise Wrong(f"{prefix}: the codes of Eq. 2 are integers, but at v = {flat_v[i]:.4g} your code is "
                        f"{flat[i]:.4g} ({off_grid.size} of {flat.size} codes are not integers)")
        outside = np.flatnonzero((flat < lo) | (flat > hi))
        if outside.size:
            i = outside[0]
            side = "below" if flat[i] < lo else "above"
            raise Wrong(f"{prefix}: at v = {flat_v[i]:.4g} your code {flat[i]:.4g} lies {side} the range of "
                        f"codes a {bits}-bit {'signed' if signed else 'unsigned'} integer can hold "
                        f"({outside.size} of {flat.size} codes are outside it)")
    c = (v.detach().double() / step).numpy().ravel()
    _compare(got, want, _labels(flat_v, "v"), "lsq_codes", prefix,
             lambda i: lsq_region(float(c[i]), lo, hi), atol=1e-9)


CODES_CASES = [(bits, signed, step) for bits in (2, 4, 8) for signed in (False, True) for step in (0.05, 0.3, 1.7)]
CODES_TIE_CASES = [(2, True, 0.25), (4, False, 0.5), (4, True, 0.25)]


@exercise("2.1", NOTEBOOK, "LSQ's integer codes", answer="lsq_codes",
          hints=("Eq. 2 has three operations: divide by the step, clip to the range [r1, r2], round to an "
                 "integer. The range depends on the bit-width and on whether the data are signed.",
                 "The ranges are in Sec. 3.1 of the paper (and in the table above the exercise). torch.clamp "
                 "takes min= and max=; torch.round rounds a value exactly halfway between two integers to the "
                 "even one, as the library does.",
                 "Check your function on a few hand-picked values: one far below the range, one far above, "
                 "one halfway between two codes, for both signed and unsigned data."))
def check_lsq_codes(lsq_codes: Callable) -> str:
    """``lsq_codes(v, step, bits, signed)``: the integers ``round(clamp(v / step, r1, r2))`` (Eq. 2)."""
    for bits, signed, step in CODES_CASES:
        assert_codes(lsq_codes, codes_inputs(bits, signed, step), step, bits, signed)
    for bits, signed, step in CODES_TIE_CASES:
        assert_codes(lsq_codes, tie_inputs(bits, signed, step), step, bits, signed)
    return ("matches LSQQuantizer.integer_codes for 2, 4 and 8 bits, signed and unsigned, three steps, "
            "and at exact rounding thresholds")


# ---------------------------------------------------------------------------
# 2.2 LSQ's step gradient
# ---------------------------------------------------------------------------
def reference_step_grad(v: torch.Tensor, step: float, bits: int, signed: bool) -> torch.Tensor:
    """Per-element d v_hat / d s through the library's ``lsq_fake_quant`` (STE, gradient scale 1)."""
    from ...quant.functional import lsq_fake_quant

    lo, hi = code_range(bits, signed)
    s = torch.full_like(v, step, requires_grad=True)     # one step per element: per-element gradients
    out = lsq_fake_quant(v.detach(), s, lo, hi, 1.0)
    (grad,) = torch.autograd.grad(out.sum(), s)
    return grad


def assert_step_grad(lsq_step_grad: Callable, v: torch.Tensor, step: float, bits: int, signed: bool) -> None:
    prefix = setting(bits, signed, step)
    lo, hi = code_range(bits, signed)
    got = call(lsq_step_grad, v.clone(), step, bits, signed)
    want = reference_step_grad(v, step, bits, signed)
    c = (v.detach().double() / step).numpy()
    # On a clip bound the function has a kink: either one-sided derivative is accepted there.
    keep = (np.abs(c - lo) > 1e-6) & (np.abs(c - hi) > 1e-6)
    flat_c = c.ravel()
    _compare(got, want, _labels(v.detach().double().numpy(), "v"), "lsq_step_grad", prefix,
             lambda i: lsq_region(float(flat_c[i]), lo, hi), atol=1e-5, keep=keep)


def step_grad_inputs(step: float, dtype=torch.float64) -> torch.Tensor:
    """801 inputs over [-4, 4], without those within 1e-6 of a rounding threshold (float noise decides those)."""
    v = torch.linspace(-4, 4, 801, dtype=dtype)
    c = v.double() / step
    return v[(c - torch.floor(c) - 0.5).abs() > 1e-6]


STEP_GRAD_CASES = [(bits, signed, step) for bits in (2, 4) for signed in (False, True) for step in (0.1, 0.45)]


@exercise("2.2", NOTEBOOK, "LSQ's step gradient", answer="lsq_step_grad",
          hints=("Write v_hat = s * q with q = round(clamp(v / s, r1, r2)) and differentiate in s with the product "
                 "rule; the STE replaces d round(c) / dc by 1.",
                 "Treat three regions separately: v/s below r1, inside the range, above r2. Outside the range, "
                 "q does not depend on s at all. Inside it, c = v / s does, with dc/ds = -v / s**2 = -c / s.",
                 "torch.where(condition, a, b) picks a or b per element: build the inside expression first, then "
                 "replace it in the two clipped regions."))
def check_lsq_step_grad(lsq_step_grad: Callable) -> str:
    """``lsq_step_grad(v, step, bits, signed)``: d v_hat / d step per element, STE, without LSQ's scale g."""
    for bits, signed, step in STEP_GRAD_CASES:
        assert_step_grad(lsq_step_grad, step_grad_inputs(step), step, bits, signed)
    for bits, signed, step in CODES_TIE_CASES:
        assert_step_grad(lsq_step_grad, tie_inputs(bits, signed, step), step, bits, signed)
    return ("matches autograd through qgait_lab.quant.lsq_fake_quant (STE) for 2 and 4 bits, signed and "
            "unsigned, including exact rounding thresholds")


# ---------------------------------------------------------------------------
# 2.3 PACT's clip gradient
# ---------------------------------------------------------------------------
def reference_alpha_grad(x: torch.Tensor, alpha: float, bits: int) -> torch.Tensor:
    """Per-element d y_q / d alpha through the library's ``pact_fake_quant``."""
    from ...quant.functional import pact_fake_quant

    a = torch.full_like(x.detach(), float(alpha), requires_grad=True)   # one alpha per element
    (grad,) = torch.autograd.grad(pact_fake_quant(x.detach(), a, bits).sum(), a)
    return grad


def pact_region(x: float, alpha: float) -> str:
    if x <= 0:
        return "x is at or below 0 (clipped at the bottom)"
    if x >= alpha:
        return "x is at or above the clip bound alpha"
    return "x is inside the clip range (0 < x < alpha)"


def assert_alpha_grad(pact_alpha_grad: Callable, x: torch.Tensor, alpha: float, bits: int) -> None:
    prefix = f"for alpha = {alpha:g} and {bits} bits"
    got = call(pact_alpha_grad, x.clone(), alpha, bits)
    want = reference_alpha_grad(x, alpha, bits)
    flat = x.detach().double().numpy().ravel()
    keep = np.abs(x.detach().double().numpy() - alpha) > 1e-9     # x = alpha exactly: a kink, either side counts
    _compare(got, want, _labels(flat, "x"), "pact_alpha_grad", prefix,
             lambda i: pact_region(float(flat[i]), alpha), atol=1e-6, keep=keep)


def pact_inputs(dtype=torch.float32) -> torch.Tensor:
    return torch.linspace(-2, 8, 1000, dtype=dtype)


PACT_CASES = [(alpha, bits) for bits in (2, 4) for alpha in (1.5, 5.0)]


@exercise("2.3", NOTEBOOK, "PACT's clip gradient", answer="pact_alpha_grad",
          hints=("Split the inputs into three regions (at or below 0, between 0 and alpha, at or above alpha) and "
                 "ask in each how y_q changes when alpha moves a little.",
                 "PACT holds the alpha inside the rounding (the scale alpha / L) constant, so y_q depends on "
                 "alpha only through y = clamp(x, 0, alpha). In which region does y change when alpha moves?",
                 "Return numbers, not booleans: a tensor of x's shape and dtype."))
def check_pact_alpha_grad(pact_alpha_grad: Callable) -> str:
    """``pact_alpha_grad(x, alpha, bits)``: d y_q / d alpha per element."""
    for alpha, bits in PACT_CASES:
        assert_alpha_grad(pact_alpha_grad, pact_inputs(), alpha, bits)
    return "matches autograd through qgait_lab.quant.pact_fake_quant for two alphas and two bit-widths"


# ---------------------------------------------------------------------------
# 2.4 DoReFa's weight quantizer
# ---------------------------------------------------------------------------
def reference_dorefa(w: torch.Tensor, bits: int) -> torch.Tensor:
    from ...quant import DoReFaWeightQuantizer

    with torch.no_grad():
        return DoReFaWeightQuantizer(bits)(w.detach())


def dorefa_inputs(shape: Sequence[int] = (8, 4, 3, 3), scale: float = 0.1, seed: int = 0,
                  dtype=torch.float32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=dtype) * scale


def _index_labels(w: torch.Tensor) -> list[str]:
    values = w.detach().double().numpy()
    return [f"w[{', '.join(str(int(i)) for i in idx)}] = {values[idx]:.4g}" for idx in np.ndindex(values.shape)]


def assert_dorefa(dorefa_weight: Callable, w: torch.Tensor, bits: int) -> None:
    prefix = f"for {bits}-bit weights of shape {tuple(w.shape)}"
    got = as_array(call(dorefa_weight, w.clone(), bits), "dorefa_weight")
    want = reference_dorefa(w, bits)
    labels = _index_labels(w)
    if got.shape == tuple(w.shape) and np.isfinite(got).all():
        flat = got.ravel()
        outside = np.flatnonzero(np.abs(flat) > 1 + 1e-6)
        if outside.size:
            i = outside[0]
            raise Wrong(f"{prefix}: DoReFa's weights lie in [-1, 1], but at {labels[i]} your value is {flat[i]:.4g} "
                        f"({outside.size} of {flat.size} values are outside)")
        if (w < 0).any() and (flat >= 0).all():
            raise Wrong(f"{prefix}: w has negative entries, but none of your values is negative: the last step "
                        "maps [0, 1] back onto [-1, 1]")
        levels = np.unique(np.round(flat, 6)).size
        if levels > 2 ** bits:
            raise Wrong(f"{prefix}: your values take {levels} distinct levels, more than the {2 ** bits} a "
                        f"{bits}-bit code can tell apart")
    magnitude = w.detach().double().abs().numpy().ravel()
    largest = magnitude.max()

    def describe(i: int) -> str:
        if magnitude[i] == largest:
            return "the entry with the largest |w| of the tensor"
        return f"|w| is {magnitude[i] / largest:.2f} of the tensor's largest |w|"

    _compare(got, want, labels, "dorefa_weight", prefix, describe, atol=1e-5)


DOREFA_CASES = [(bits, scale) for scale in (1.5, 0.1) for bits in (2, 4)]


@exercise("2.4", NOTEBOOK, "DoReFa's weight quantizer", answer="dorefa_weight",
          hints=("Follow the value through the four steps and check its range after each: tanh(w) lies in "
                 "(-1, 1); after the normalisation the values should fill [0, 1]; quantize_b keeps them in [0, 1]; "
                 "the last step gives [-1, 1].",
                 "The maximum is one number for the whole tensor, taken of the absolute value of tanh(w). "
                 "quantize_b has 2**b levels, that is 2**b - 1 steps between 0 and 1.",
                 "Common slips: normalising by the largest |w| instead of the largest |tanh(w)|, using 2**b steps, "
                 "and forgetting the map back from [0, 1] to [-1, 1]."))
def check_dorefa_weight(dorefa_weight: Callable) -> str:
    """``dorefa_weight(w, bits)``: DoReFa's quantized weights (Zhou et al. 2016), values in [-1, 1]."""
    for bits, scale in DOREFA_CASES:
        assert_dorefa(dorefa_weight, dorefa_inputs(scale=scale, seed=bits), bits)
    return "matches qgait_lab.quant.DoReFaWeightQuantizer for 2 and 4 bits, small and large weights"


# ---------------------------------------------------------------------------
# 2.5 Why Eq. 4 is zero outside the clip range (a choice)
# ---------------------------------------------------------------------------
MASK_OPTIONS = ("a", "b", "c", "d")
MASK_DIGEST = "c25525d2b9cbfab8"
MASK_FEEDBACK = {
    "a": "the round's derivative is zero almost everywhere, inside the range as well: that is why the STE "
         "exists at all. Look at what the clamp does to the output outside the range.",
    "c": "the forward pass is the same with and without the mask, but the backward pass is not: which "
         "gradient would a clipped input receive, and does the loss respond to it?",
    "d": "the step's gradient (Exercise 2.2) is a separate path of the backward pass and is nonzero in the "
         "clipped regions; the mask concerns the gradient of the input.",
}


@exercise("2.5", NOTEBOOK, "why Eq. 4 is zero outside the clip range", answer="mask_reason",
          hints=("Look at the forward pass outside the range: what is x_hat there, as a function of x?",
                 "A gradient answers the question: if I nudge this input a little, how much does the output (and "
                 "so the loss) change? Ask it for an input that the clamp has clipped."))
def check_mask_reason(mask_reason: Any) -> str:
    """``mask_reason``: the letter of the statement that explains the zero of Eq. 4 outside the range."""
    return check_choice("2.5", mask_reason, MASK_OPTIONS, MASK_DIGEST, MASK_FEEDBACK)
