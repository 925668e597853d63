"""Checkers for the exercises of the course notebooks.

Every exercise in ``notebooks/`` ends with a call such as
``checks.check_theta_k(theta_k)``.  A checker runs the student's answer on
several cases, compares it with the library (or with sympy), and returns a
:class:`CheckResult`: pass or fail, what was compared, and a hint when it
fails.  A checker never raises because of the answer: an unfinished stub
(``raise NotImplementedError`` or ``None``) is reported as "not attempted",
and any other exception is shown with the hint.

Reference solutions live in :mod:`qgait_lab.solutions` (one module per
notebook); ``tests/test_checks.py`` runs every checker on them and on a
wrong answer.

Exercises by notebook:

* 01: :func:`check_theta_k`, :func:`check_mean_grad_G`, :func:`check_slope_second_moment`,
  :func:`check_dsq_alpha`
* 02: :func:`check_meaningful_fraction`, :func:`check_lsq_codes`
* 03: :func:`check_lsq_step_grad`, :func:`check_pact_alpha_grad`, :func:`check_soft_step_grad`
* 04: :func:`check_grow_schedule`, :func:`check_torchrun_command`
* 05: :func:`check_idd_mask`, :func:`check_idd_loss`
* 06: :func:`check_conv_bitops`, :func:`check_first_last_bitops`
"""
from __future__ import annotations

import functools
import html
import math
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import sympy as sp
import torch

__all__ = [
    "CheckResult",
    "check_theta_k", "check_mean_grad_G", "check_slope_second_moment", "check_dsq_alpha",
    "check_meaningful_fraction", "check_lsq_codes",
    "check_lsq_step_grad", "check_pact_alpha_grad", "check_soft_step_grad",
    "check_grow_schedule", "check_torchrun_command",
    "check_idd_mask", "check_idd_loss",
    "check_conv_bitops", "check_first_last_bitops",
]


@dataclass
class CheckResult:
    """The verdict of one checker: ``passed``, a message, and a hint when it failed."""

    name: str
    passed: bool
    message: str
    hint: str = ""

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        mark = "PASS" if self.passed else "NOT YET"
        text = f"[{mark}] {self.name}: {self.message}"
        if not self.passed and self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    __repr__ = __str__

    def _repr_html_(self) -> str:
        colour, mark = ("#1a7f37", "&#10004; passed") if self.passed else ("#b35900", "&#10008; not yet")
        hint = ("" if self.passed or not self.hint
                else f"<br><b>Hint:</b> {html.escape(self.hint)}")
        return (f"<div style='border-left:4px solid {colour};padding:4px 10px;margin:4px 0'>"
                f"<b style='color:{colour}'>{mark}</b> <code>{html.escape(self.name)}</code>: "
                f"{html.escape(self.message)}{hint}</div>")


class _NotAttempted(Exception):
    pass


def _checker(hint: str) -> Callable:
    """Decorator: turn a function that raises AssertionError on a wrong answer into a checker."""

    def wrap(fn: Callable) -> Callable[..., CheckResult]:
        @functools.wraps(fn)
        def run(answer: Any, *args, **kwargs) -> CheckResult:
            name = fn.__name__
            if answer is None or answer is Ellipsis:
                return CheckResult(name, False, "not attempted yet (the answer is still None)", hint)
            try:
                message = fn(answer, *args, **kwargs)
            except _NotAttempted:
                return CheckResult(name, False, "not attempted yet (the stub still raises NotImplementedError)", hint)
            except AssertionError as err:
                return CheckResult(name, False, str(err) or "wrong answer", hint)
            except Exception as err:  # noqa: BLE001 - the student's code may raise anything
                where = traceback.extract_tb(err.__traceback__)[-1]
                return CheckResult(name, False, f"your code raised {type(err).__name__}: {err} "
                                   f"(line {where.lineno} of {where.name})", hint)
            return CheckResult(name, True, message or "correct")

        run.hint = hint  # type: ignore[attr-defined]
        return run

    return wrap


def _call(fn: Callable, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise _NotAttempted() from None


def _tensor(value: Any, what: str) -> torch.Tensor:
    if value is None:
        raise AssertionError(f"{what} returned None")
    try:
        return torch.as_tensor(np.asarray(value.detach() if torch.is_tensor(value) else value),
                               dtype=torch.float64)
    except Exception:  # noqa: BLE001
        raise AssertionError(f"{what} returned {type(value).__name__}, not an array") from None


def _close(got: torch.Tensor, want: torch.Tensor, what: str, atol: float = 1e-6, rtol: float = 1e-6) -> None:
    if tuple(got.shape) != tuple(want.shape):
        raise AssertionError(f"{what}: shape {tuple(got.shape)}, expected {tuple(want.shape)}")
    if not torch.isfinite(got).all():
        raise AssertionError(f"{what}: the result holds NaN or Inf")
    err = (got - want).abs()
    bad = err > atol + rtol * want.abs()
    if bad.any():
        i = int(torch.argmax(err))
        raise AssertionError(f"{what}: {int(bad.sum())} of {want.numel()} values differ; worst at index {i}: "
                             f"got {got.flatten()[i].item():.6g}, expected {want.flatten()[i].item():.6g}")


def _sympy_expr(answer: Any) -> sp.Expr:
    """A sympy expression in theory's ``k``: any free symbol named ``k`` is replaced by it."""
    from . import theory

    if isinstance(answer, (int, float)):
        answer = sp.nsimplify(answer)
    if not isinstance(answer, sp.Basic):
        try:
            answer = sp.sympify(answer)
        except (sp.SympifyError, TypeError):
            raise AssertionError(f"the answer must be a sympy expression in k, got {type(answer).__name__}") from None
    subs = {s: theory.k for s in answer.free_symbols if s.name == "k"}
    expr = answer.subs(subs)
    extra = sorted(str(s) for s in expr.free_symbols - {theory.k})
    if extra:
        raise AssertionError(f"the answer may depend on k only, but it contains {extra}")
    return expr


# ---------------------------------------------------------------------------
# Notebook 01: the soft quantizer and its moments
# ---------------------------------------------------------------------------
@_checker("theta_k(x) = floor(x) + tanh(k d) / (2 tanh(k/2)) + 1/2 with d = x - floor(x) - 1/2 (Eq. 6); "
          "use torch.floor and torch.tanh so it works on tensors.")
def check_theta_k(theta_k: Callable) -> str:
    """``theta_k(x, k)``: Eq. 6 on a tensor ``x``."""
    from .quant.functional import soft_round

    x = torch.cat([torch.linspace(-3.2, 3.2, 641, dtype=torch.float64),
                   torch.arange(-3, 4, dtype=torch.float64),
                   torch.arange(-3, 3, dtype=torch.float64) + 0.5])
    for k in (1.0, 2.5, 7.0):
        got = _tensor(_call(theta_k, x.clone(), k), f"theta_k(x, k={k})")
        _close(got, soft_round(x, k), f"theta_k(x, k={k})", atol=1e-8)
    return "matches qgait_lab.quant.soft_round at 1,294 points for k = 1, 2.5 and 7 (integers and half-integers included)"


def _verify(check, expr, what: str) -> str:
    holds, detail = check(expr)
    if not holds:
        raise AssertionError(f"{what} = {expr} is not right: {detail}")
    return f"{what} = {sp.simplify(expr)}: {detail}"


@_checker("E[G'(z)] for z ~ U[-k/2, k/2] is (1/k) times the integral of G' over [-k/2, k/2], and G itself "
          "is an antiderivative of G': the integral is G(k/2) - G(-k/2).")
def check_mean_grad_G(expr: Any) -> str:
    """``expr``: a sympy expression in k for ``E[G'(z)]`` (the mean, not its square)."""
    from . import theory

    return _verify(theory.verify_mean_grad_G, _sympy_expr(expr), "E[G'(z)]")


@_checker("Inside a cell d theta / dx = k * G'(k d) (chain rule), so the second moment in x is k^2 times "
          "the second moment of G' (Eq. 12). Start from theory.second_moment_grad_G_printed().")
def check_slope_second_moment(expr: Any) -> str:
    """``expr``: a sympy expression in k for ``E_x[(d theta_k / dx)^2]`` over a unit interval."""
    from . import theory

    return _verify(theory.verify_slope_second_moment, _sympy_expr(expr), "E[(d theta/dx)^2]")


@_checker("DSQ rescales tanh by s = 1 / (1 - alpha) so that it reaches +-1 at the cell edges; theta_k "
          "rescales by 1 / tanh(k/2). Set the two scales equal and solve for alpha.")
def check_dsq_alpha(expr: Any) -> str:
    """``expr``: DSQ's alpha as a sympy expression in k (unit step)."""
    from . import theory

    return _verify(theory.verify_dsq_alpha, _sympy_expr(expr), "alpha")


# ---------------------------------------------------------------------------
# Notebook 02: meaningful gradients and LSQ's integer codes
# ---------------------------------------------------------------------------
@_checker("With d uniform on [-1/2, 1/2], the slope k sech^2(k d) / (2 tanh(k/2)) is >= tau exactly when "
          "sech^2(k d) >= r = 2 tau tanh(k/2) / k, i.e. |d| <= arccosh(1/sqrt(r)) / k. The fraction is twice "
          "that bound, clipped to [0, 1]; when r > 1 even the peak slope is below tau.")
def check_meaningful_fraction(fraction: Callable) -> str:
    """``fraction(k, threshold)``: the share of uniformly spread inputs whose soft slope is >= threshold."""
    from .widgets import uniform_meaningful_fraction

    cases = [(k, t) for k in (1.0, 2.0, 3.0, 6.0, 10.0, 20.0, 50.0) for t in (0.1, 0.3, 1.0, 2.0)]
    for k, t in cases:
        got = _call(fraction, k, t)
        if got is None:
            raise AssertionError(f"fraction({k}, {t}) returned None")
        want = uniform_meaningful_fraction(k, t)
        if not abs(float(got) - want) <= 2e-4:
            raise AssertionError(f"fraction(k={k}, threshold={t}) = {float(got):.5f}, but a dense numeric "
                                 f"estimate gives {want:.5f}")
    return f"agrees with a 50,001-point numeric estimate for {len(cases)} (k, threshold) pairs"


@_checker("codes = round(clamp(v / step, lo, hi)) with lo, hi = 0, 2^b - 1 (unsigned) or -2^(b-1), "
          "2^(b-1) - 1 (signed), paper Sec. 3.1. torch.round rounds halves to even, as the library does.")
def check_lsq_codes(lsq_codes: Callable) -> str:
    """``lsq_codes(v, step, bits, signed)``: the integers an LSQ quantizer stores."""
    from .quant import LSQQuantizer

    gen = torch.Generator().manual_seed(0)
    v = torch.randn(2000, generator=gen) * 3
    for bits in (2, 4, 8):
        for signed in (False, True):
            for step in (0.05, 0.3, 1.7):
                q = LSQQuantizer(bits, is_weight=signed, signed=signed)
                with torch.no_grad():
                    q.step.fill_(step)
                q.initialized = True
                want = q.integer_codes(v).double()
                got = _tensor(_call(lsq_codes, v.clone(), step, bits, signed), "lsq_codes")
                _close(got, want, f"lsq_codes(bits={bits}, signed={signed}, step={step})", atol=1e-9, rtol=0)
    return "matches LSQQuantizer.integer_codes for 2, 4 and 8 bits, signed and unsigned, three steps"


# ---------------------------------------------------------------------------
# Notebook 03: gradients of LSQ, PACT and the soft quantizer
# ---------------------------------------------------------------------------
def _step_grad_reference(v: torch.Tensor, step: float, bits: int, signed: bool, gradient: str,
                         k: float | None, soft_forward: bool) -> torch.Tensor:
    from .quant.functional import lsq_bounds, lsq_fake_quant

    lo, hi = lsq_bounds(bits, signed)
    s = torch.full_like(v, step, requires_grad=True)     # one step per element: per-element gradients
    out = lsq_fake_quant(v, s, lo, hi, 1.0, gradient, k, soft_forward)
    (grad,) = torch.autograd.grad(out.sum(), s)
    return grad.double()


_GRAD_CASES = [(bits, signed, step) for bits in (2, 4) for signed in (False, True) for step in (0.1, 0.45)]


@_checker("Write v_hat = s * round(clamp(v / s, lo, hi)) and differentiate in s with the STE (d round / dc = 1). "
          "Inside the range: round(c) - c with c = v / s. Below lo: lo. Above hi: hi. (LSQ, Esser et al. 2019, Eq. 3.)")
def check_lsq_step_grad(lsq_step_grad: Callable) -> str:
    """``lsq_step_grad(v, step, bits, signed)``: d v_hat / d step per element, STE, without LSQ's scale g."""
    v = torch.linspace(-4, 4, 801, dtype=torch.float64)
    for bits, signed, step in _GRAD_CASES:
        want = _step_grad_reference(v, step, bits, signed, "ste", None, False)
        got = _tensor(_call(lsq_step_grad, v.clone(), step, bits, signed), "lsq_step_grad")
        # Inputs exactly on a rounding threshold or on the clip bound are ambiguous: skip them.
        c = v / step
        clear = ((c - torch.floor(c) - 0.5).abs() > 1e-6) & ((c - torch.round(c)).abs() > 1e-6)
        _close(got[clear], want[clear], f"lsq_step_grad(bits={bits}, signed={signed}, step={step})", atol=1e-6)
    return "matches autograd through qgait_lab.quant.lsq_fake_quant (STE) on 801 inputs, 8 settings"


@_checker("PACT treats alpha inside the rounding as a constant: y_q depends on alpha only through the clip, "
          "so d y_q / d alpha = 1 where x >= alpha and 0 elsewhere (Choi et al. 2018).")
def check_pact_alpha_grad(pact_alpha_grad: Callable) -> str:
    """``pact_alpha_grad(x, alpha, bits)``: d y_q / d alpha per element."""
    from .quant import PACTQuantizer
    from .viz import quantizer_response

    x = torch.linspace(-2, 8, 1001)
    for bits in (2, 4):
        for alpha in (1.5, 5.0):
            want = torch.as_tensor(quantizer_response(PACTQuantizer(bits, alpha_init=alpha), x)["d/dalpha"],
                                   dtype=torch.float64)
            got = _tensor(_call(pact_alpha_grad, x.clone(), alpha, bits), "pact_alpha_grad")
            _close(got, want, f"pact_alpha_grad(alpha={alpha}, bits={bits})", atol=1e-6)
    return "matches autograd through qgait_lab.quant.PACTQuantizer for two alphas and two bit-widths"


@_checker("With the soft forward, v_hat = s * theta_k(c), c = clamp(v / s, lo, hi). Inside the range, "
          "d v_hat / d s = theta_k(c) + s * theta_k'(c) * (-v / s^2) = theta_k(c) - c * theta_k'(c). Outside, "
          "v_hat = s * lo (or s * hi), whose derivative is the bound. Use soft_round and soft_round_slope.")
def check_soft_step_grad(soft_step_grad: Callable) -> str:
    """``soft_step_grad(v, step, bits, signed, k)``: d/ds of s * theta_k(clamp(v / s)), compared with plain autograd."""
    from .quant.functional import lsq_bounds, soft_round

    v = torch.linspace(-4, 4, 801, dtype=torch.float64)
    for bits, signed, step in _GRAD_CASES:
        for k in (1.0, 4.0):
            lo, hi = lsq_bounds(bits, signed)
            s = torch.full_like(v, step, requires_grad=True)
            # Plain autograd through the soft forward: an independent reference (no custom backward).
            (want,) = torch.autograd.grad((s * soft_round(torch.clamp(v / s, lo, hi), k)).sum(), s)
            got = _tensor(_call(soft_step_grad, v.clone(), step, bits, signed, k), "soft_step_grad")
            c = v / step
            clear = ((c - lo).abs() > 1e-6) & ((c - hi).abs() > 1e-6)
            _close(got[clear], want[clear], f"soft_step_grad(bits={bits}, signed={signed}, step={step}, k={k})",
                   atol=1e-6, rtol=1e-6)
    return "matches plain autograd of s * theta_k(clamp(v/s)) for 16 settings"


# ---------------------------------------------------------------------------
# Notebook 04: schedules and launching
# ---------------------------------------------------------------------------
@_checker("GROW-2 is +0.2 every 100 iterations of a 1000-iteration fine-tune, from k = 1 up to T. Scale "
          "'every' by iterations / 1000 (rounded, at least 1) so that k rises at the same pace relative to the "
          "fine-tune; keep start = 1, step = 0.2 and max = T. Return a qgait_lab.quant.schedules.KSchedule.")
def check_grow_schedule(grow_for: Callable) -> str:
    """``grow_for(iterations, t)``: GROW-2 rescaled to a fine-tune of ``iterations`` iterations."""
    from .quant.schedules import KSchedule

    for iterations in (3, 60, 250, 1000, 1234, 2000):
        for t in (3.0, 5.0):
            got = _call(grow_for, iterations, t)
            if not isinstance(got, KSchedule):
                raise AssertionError(f"grow_for({iterations}, {t}) returned {type(got).__name__}, not a KSchedule")
            where = f"grow_for({iterations}, {t})"
            assert got.kind == "grow", f"{where}.kind is {got.kind!r}, expected 'grow'"
            assert math.isclose(got.start, 1.0), f"{where}.start is {got.start}, expected 1 (Eq. 6 needs k >= 1)"
            assert math.isclose(got.step, 0.2), f"{where}.step is {got.step}, expected GROW-2's 0.2"
            assert math.isclose(got.max, t), f"{where}.max is {got.max}, expected T = {t}"
            exact = 100 * iterations / 1000
            allowed = {max(1, math.floor(exact)), max(1, math.ceil(exact)), max(1, round(exact))}
            assert got.every in allowed, (f"{where}.every is {got.every}; 100 iterations of the paper's 1000 are "
                                          f"{exact:g} of {iterations}, so expected {sorted(allowed)}")
    return "GROW-2 rescaled correctly for fine-tunes of 3 to 2000 iterations, T = 3 and 5"


@_checker("The command is: torchrun --nproc_per_node=N -m qgait_lab.cli train --preset gait3d --method qgait "
          "--bits 4 --set data.root=ROOT --set data.partition=PARTITION (each --set takes one key=value).")
def check_torchrun_command(command: Callable) -> str:
    """``command(nproc, root, partition)``: the argument list that trains QGait-4 on Gait3D with nproc GPUs."""
    from .cli import build_parser
    from .training.config import load_config

    for nproc, root, partition in ((4, "/data/Gait3D-pkl", "/data/Gait3D.json"), (8, "/mnt/g3d", "/mnt/g3d.json")):
        cmd = _call(command, nproc, root, partition)
        if isinstance(cmd, str):
            import shlex
            cmd = shlex.split(cmd)
        if not isinstance(cmd, (list, tuple)) or not all(isinstance(c, str) for c in cmd):
            raise AssertionError("return a list of strings (or one shell string)")
        cmd = list(cmd)
        launcher_ok = bool(cmd) and (cmd[0].endswith("torchrun") or "torch.distributed.run" in cmd)
        assert launcher_ok, "the command must start with torchrun (or python -m torch.distributed.run)"
        nprocs = [c for c in cmd if c.startswith(("--nproc_per_node", "--nproc-per-node"))]
        value = None
        if nprocs:
            flag = nprocs[0]
            value = flag.split("=", 1)[1] if "=" in flag else cmd[cmd.index(flag) + 1]
        assert value == str(nproc), f"--nproc_per_node should be {nproc}, found {value}"
        try:
            start = cmd.index("qgait_lab.cli") + 1
        except ValueError:
            raise AssertionError("run the CLI module: ... -m qgait_lab.cli train ...") from None
        assert cmd[start - 2] == "-m", "use '-m qgait_lab.cli' so torchrun runs the module"
        try:
            args = build_parser().parse_args(cmd[start:])
        except SystemExit:
            raise AssertionError(f"qgait-lab does not accept the arguments {cmd[start:]} "
                                 "(argparse printed the reason above)") from None
        assert args.command == "train", f"the subcommand should be 'train', got {args.command!r}"
        quant = {"bits": args.bits} if args.bits is not None else None
        extra = {k: v for k, v in {"method": args.method, "quant": quant}.items() if v is not None}
        cfg = load_config(args.preset, args.overrides, extra=extra)
        assert cfg.data.protocol == "gait3d" and args.preset == "gait3d", "use the gait3d preset"
        assert cfg.data.root == root, f"data.root should be {root!r}, got {cfg.data.root!r}"
        assert cfg.data.partition == partition, f"data.partition should be {partition!r}, got {cfg.data.partition!r}"
        assert cfg.method == "qgait", f"the method should be qgait, got {cfg.method!r}"
        assert cfg.quant.bits == 4, f"the bits should be 4, got {cfg.quant.bits}"
    return "a valid torchrun launch of QGait-4 on Gait3D; the CLI and the config loader accept it"


# ---------------------------------------------------------------------------
# Notebook 05: IDD
# ---------------------------------------------------------------------------
def _label_cases() -> list[torch.Tensor]:
    return [torch.tensor([0, 0, 1, 1, 2, 2]), torch.tensor([3, 1, 3, 2, 1, 1, 0]),
            torch.tensor([5, 5, 5, 7]), torch.tensor([0, 1])]


@_checker("Eq. 14 keeps the pairs (r, s) with Y_r != Y_s: mask = labels[:, None] != labels[None, :]. "
          "The diagonal (r = s) and every same-label pair must be False.")
def check_idd_mask(idd_mask: Callable) -> str:
    """``idd_mask(labels)``: the boolean [n, n] mask of the pairs that enter Eq. 14."""
    for labels in _label_cases():
        got = _call(idd_mask, labels.clone())
        got = torch.as_tensor(got)
        n = len(labels)
        assert tuple(got.shape) == (n, n), f"for {n} labels the mask must be [{n}, {n}], got {tuple(got.shape)}"
        assert got.dtype == torch.bool, f"the mask must be boolean, got {got.dtype}"
        want = labels.unsqueeze(1) != labels.unsqueeze(0)
        if not torch.equal(got, want):
            r, s = map(int, torch.nonzero(got != want)[0])
            raise AssertionError(f"labels {labels.tolist()}: entry ({r}, {s}) is {bool(got[r, s])}, but labels "
                                 f"{int(labels[r])} and {int(labels[s])} {'differ' if want[r, s] else 'are equal'}")
    return "the mask keeps exactly the different-label pairs for four label sets"


@_checker("For each anchor r: q(r, .) = softmax over s of -d(r, s) / tau, with same-label entries set to -inf "
          "before the softmax (torch.log_softmax handles -inf). The loss is the mean over anchors of "
          "sum_s q_teacher * (log q_teacher - log q_student); masked entries contribute 0 (avoid -inf - -inf).")
def check_idd_loss(idd_from_distances: Callable) -> str:
    """``idd_from_distances(d_student, d_teacher, labels, tau)``: Eqs. 14-15 on [n, n] distances."""
    from .losses import idd_loss_from_distances

    gen = torch.Generator().manual_seed(0)
    for labels in _label_cases():
        n = len(labels)
        for tau in (1.0, 0.3):
            xs, xt = torch.randn(n, 8, generator=gen, dtype=torch.float64), torch.randn(n, 8, generator=gen,
                                                                                         dtype=torch.float64)
            d_s, d_t = torch.cdist(xs, xs), torch.cdist(xt, xt)
            want = idd_loss_from_distances(d_s[None], d_t[None], labels, tau=tau, normalize="temperature")
            got = _tensor(_call(idd_from_distances, d_s.clone(), d_t.clone(), labels.clone(), tau),
                          "idd_from_distances").reshape(())
            _close(got, want.double().reshape(()), f"IDD(labels={labels.tolist()}, tau={tau})", atol=1e-8)
        # Same-label entries must not matter at all.
        poisoned = d_s.clone()
        poisoned[labels.unsqueeze(1) == labels.unsqueeze(0)] = 1e6
        got = _tensor(_call(idd_from_distances, poisoned, d_t.clone(), labels.clone(), 1.0), "idd_from_distances")
        want = idd_loss_from_distances(d_s[None], d_t[None], labels, tau=1.0, normalize="temperature")
        _close(got.reshape(()), want.double().reshape(()), "IDD with changed same-label distances (must not change)",
               atol=1e-8)
    return "matches qgait_lab.losses.idd_loss_from_distances (raw distances) and ignores same-label pairs"


# ---------------------------------------------------------------------------
# Notebook 06: BitOPs
# ---------------------------------------------------------------------------
@_checker("MACs of a convolution = C_in * C_out * F^2 * H_out * W_out per frame (no factor 2: one MAC, not "
          "two FLOPs), times the frames; BitOPs = (b_w / 32) * (b_a / 32) * MACs (paper Sec. 4.1).")
def check_conv_bitops(conv_bitops: Callable) -> str:
    """``conv_bitops(c_in, c_out, kernel, h_out, w_out, frames, w_bits, a_bits)``: BitOPs of one conv layer."""
    from torch import nn

    from .quant import quantize_model
    from .quant.bitops import count_costs, summarize

    cases = [(1, 64, 3, 64, 44, 100, 4, 4), (64, 128, 3, 32, 22, 30, 8, 8), (128, 256, 1, 16, 11, 1, 4, 8),
             (32, 32, 3, 8, 8, 7, 32, 32)]
    for c_in, c_out, f, h, w, frames, wb, ab in cases:
        stride = 1
        conv = nn.Sequential(nn.Conv2d(c_in, c_out, f, stride=stride, padding=f // 2, bias=False))
        if wb != 32:
            quantize_model(conv, "lsq", wb, ab)
        want = summarize(count_costs(conv, torch.zeros(frames, c_in, h, w)))["bitops"]
        got = _call(conv_bitops, c_in, c_out, f, h, w, frames, wb, ab)
        if got is None:
            raise AssertionError("conv_bitops returned None")
        if not math.isclose(float(got), want, rel_tol=1e-9):
            ratio = float(got) / want
            extra = " (a factor 2: count MACs, not FLOPs)" if math.isclose(ratio, 2.0, rel_tol=1e-6) else ""
            raise AssertionError(f"conv_bitops{(c_in, c_out, f, h, w, frames, wb, ab)} = {float(got):.6g}, "
                                 f"the counter gives {want:.6g}{extra}")
    return "matches qgait_lab.quant.bitops.count_costs on four convolutions"


def first_last_reference(frames: int = 100, bits: int = 4, first_last: int = 32) -> float:
    """BitOPs (G) of full-width GaitBase at ``bits`` with the first and last layers at ``first_last`` bits."""
    from .models import build_model
    from .quant import LayerPolicy
    from .quant.bitops import bitops_table, gaitbase_inference_layers

    policy = LayerPolicy(first_layer_bits=(first_last, first_last), last_layer_bits=(first_last, first_last))
    rows = bitops_table(lambda: build_model("gaitbase", num_classes=3000),
                        [torch.zeros(1, frames, 64, 44)], [bits], policy=policy,
                        include=gaitbase_inference_layers)
    return rows[0]["bitops"] / 1e9


@_checker("Build a LayerPolicy(first_layer_bits=(32, 32), last_layer_bits=(32, 32)) (32 bits = not quantized) "
          "and pass it to quant.bitops.bitops_table for GaitBase on a [1, 100, 64, 44] input at 4 bits, with "
          "include=gaitbase_inference_layers (the BNNeck is not used at inference). Give the answer in G (1e9).")
def check_first_last_bitops(value: Any) -> str:
    """``value``: BitOPs (G) of w4a4 GaitBase on 100 frames with the first and last layers in full precision."""
    try:
        got = float(value)
    except (TypeError, ValueError):
        raise AssertionError(f"the answer must be a number (BitOPs in G), got {value!r}") from None
    want = first_last_reference()
    if math.isclose(got, want * 1e9, rel_tol=0.005):
        raise AssertionError(f"{got:.4g} looks like BitOPs in units, not G (1e9)")
    uniform = first_last_reference(first_last=4)
    if math.isclose(got, uniform, rel_tol=0.005):
        raise AssertionError(f"{got:.4g} G is what every layer at 4 bits costs; the first and last layer "
                             "must stay at 32 bits")
    if not math.isclose(got, want, rel_tol=0.005):
        raise AssertionError(f"{got:.4g} G is more than 0.5 % from the counter's {want:.4g} G")
    return (f"{got:.3f} G, {100 * (want / uniform - 1):.1f} % more than {uniform:.3f} G with every layer at "
            "4 bits")
