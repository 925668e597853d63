"""Exercises of notebook 03 (the soft quantizer θ_k and the moments of its gradient, Sec. 3.2).

* 3.1 θ_k itself (Eq. 6), as a torch function;
* 3.2 the mean of ∇G for z ~ U[-k/2, k/2], the quantity Eq. 11 squares;
* 3.3 an antiderivative of sech⁴, the step Eq. 12 needs (Appendix A.1);
* 3.4 the second moment of the slope in the quantizer's own input x (the chain-rule reading);
* 3.5 DSQ's α for a unit step (Gong et al. 2019).

The θ_k checker tests the properties Eq. 6 implies, in this order, and names
the first one the answer breaks, at the input x where it breaks: θ_k(n) = n at
the integers, no jump anywhere (the pieces join at the cell edges),
θ_k(x + 1) = θ_k(x) + 1, the limits k → 0 (the identity) and k → ∞ (round);
only then are the values compared with :func:`qgait_lab.quant.functional.soft_round`.
The sympy answers are compared at several k, and a mismatch names the k where
the answer is off, the student's value there, and the first property of the
true answer it violates (its sign, its range, a limit); never the expected value.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import sympy as sp
import torch

from .core import Wrong, as_array, call, compare_on_grid, exercise, fmt, sympy_in

NOTEBOOK = "03_soft_round_derivation"

K_POINTS: tuple[float, ...] = (1.5, 2.0, 3.0, 5.0, 8.0, 1.0)
"""Where the sympy answers are compared (k = 1 last: there 1/k and 1/k² agree)."""

Property = tuple[str, Callable[[sp.Expr], bool]]


def _k():
    from .. import theory

    return theory.k


def _z():
    from .. import theory

    return theory.z


# ---------------------------------------------------------------------------
# Comparing a sympy answer in k, in the student's terms
# ---------------------------------------------------------------------------
def _values(expr: sp.Expr, symbol: sp.Symbol, points: Sequence[float], what: str) -> list[float]:
    f = sp.lambdify(symbol, expr, "mpmath")
    out = []
    for p in points:
        try:
            value = complex(f(p))
        except Exception:  # noqa: BLE001 - division by zero, a log of a negative number, ...
            raise Wrong(f"{what} = {sp.sstr(expr)} cannot be evaluated at {symbol.name} = {p:g}") from None
        if abs(value.imag) > 1e-12 * max(1.0, abs(value.real)):
            raise Wrong(f"{what} = {sp.sstr(expr)} is not a real number at {symbol.name} = {p:g}")
        out.append(value.real)
    return out


def _first_violated(expr: sp.Expr, properties: Sequence[Property]) -> str | None:
    for description, holds in properties:
        try:
            ok = bool(holds(expr))
        except Exception:  # noqa: BLE001 - a property the answer cannot even be tested on is violated
            ok = False
        if not ok:
            return description
    return None


def compare_in_k(expr: sp.Expr, want: sp.Expr, what: str, properties: Sequence[Property] = (),
                 points: Sequence[float] = K_POINTS) -> str:
    """Raise :class:`Wrong` unless ``expr`` equals ``want`` as a function of k (numerically, then with sympy).

    A mismatch names the first k where the answer is off, the answer's own value
    there, and the first of ``properties`` ((description, test)) it violates.
    """
    k = _k()
    got = _values(expr, k, points, what)
    ref = _values(want, k, points, what)
    for p, g, w in zip(points, got, ref):
        if abs(g - w) > 1e-9 * max(1.0, abs(w)):
            side = "too large" if g > w else "too small"
            message = f"{what} = {sp.sstr(expr)} is {side} at k = {p:g} (your value {fmt(g)})"
            violated = _first_violated(expr, properties)
            if violated:
                message += f"; it violates a property of the true answer: {violated}"
            raise Wrong(message)
    from ..theory import symbolically_zero

    if not symbolically_zero(sp.simplify(expr - want)) and not _numerically_zero(expr - want, k):
        raise Wrong(f"{what} = {sp.sstr(expr)} agrees at k = {', '.join(f'{p:g}' for p in points)} "
                    "but is not the same function of k")
    return sp.sstr(expr)


def _numerically_zero(expr: sp.Expr, symbol: sp.Symbol) -> bool:
    f = sp.lambdify(symbol, expr, "mpmath")
    try:
        return all(abs(complex(f(p))) < 1e-12 for p in (0.7, 1.3, 2.9, 4.1, 6.6, 9.2, 12.5))
    except Exception:  # noqa: BLE001
        return False


def _on_grid(expr: sp.Expr, test: Callable[[float], bool], lo: float = 0.05, hi: float = 40.0) -> bool:
    """``test(value)`` at 60 values of k from ``lo`` to ``hi`` (log-spaced), evaluated with 50 digits.

    50 digits keep ``1 - tanh(k/2)`` positive at k = 40, where double precision rounds it to 0.
    """
    import mpmath

    f = sp.lambdify(_k(), expr, "mpmath")
    with mpmath.workdps(50):
        return all(test(mpmath.re(f(mpmath.mpf(float(p))))) for p in np.geomspace(lo, hi, 60))


def _limit(expr: sp.Expr, at) -> sp.Expr:
    return sp.limit(expr, _k(), at)


# ---------------------------------------------------------------------------
# 3.1 θ_k
# ---------------------------------------------------------------------------
X_GRID = torch.cat([torch.linspace(-3.2, 3.2, 641, dtype=torch.float64),
                    torch.arange(-3, 4, dtype=torch.float64),
                    torch.arange(-3, 3, dtype=torch.float64) + 0.5])
"""The inputs of the value comparison: a grid, the integers and the half-integers (654 points)."""


def theta_values(theta_k: Callable, x: torch.Tensor, k: float) -> np.ndarray:
    """The student's θ_k(x) as a float64 array of x's shape; :class:`Wrong` about its type or shape."""
    given = x.clone()
    out = as_array(call(theta_k, given, k), f"theta_k(x, k={k:g})")
    if out.shape != tuple(x.shape):
        raise Wrong(f"theta_k(x, k={k:g}) has shape {tuple(out.shape)} for an input of shape {tuple(x.shape)}: "
                    "return one value per element of x")
    if not torch.equal(given, x):
        raise Wrong(f"theta_k(x, k={k:g}) changed its input x in place; compute a new tensor instead")
    if not np.isfinite(out).all():
        i = int(np.flatnonzero(~np.isfinite(out.ravel()))[0])
        raise Wrong(f"theta_k(x, k={k:g}) is NaN or infinite at x = {float(x.ravel()[i]):.4g}")
    return out


def theta_properties(theta_k: Callable, k: float) -> None:
    """θ_k(n) = n, no jumps, θ_k(x + 1) = θ_k(x) + 1 at one k; :class:`Wrong` names the x that breaks one."""
    ints = torch.arange(-3, 4, dtype=torch.float64)
    at_ints = theta_values(theta_k, ints, k)
    for n, v in zip(ints.tolist(), at_ints):
        if abs(v - n) > 1e-8:
            raise Wrong(f"at the integer x = {n:g} (k = {k:g}) your θ_k is {fmt(v)}; Eq. 6 never moves an "
                        "integer: θ_k(n) = n for every n and every k")
    fine = torch.linspace(-2.5, 2.5, 5001, dtype=torch.float64)        # spacing 0.001
    values = theta_values(theta_k, fine, k)
    steps = np.abs(np.diff(values))
    # The steepest slope of Eq. 6 is k / (2 tanh(k/2)); twice that over one spacing is a jump.
    limit = 2.0 * k / (2.0 * np.tanh(k / 2.0)) * 1e-3 + 1e-9
    if (steps > limit).any():
        i = int(np.flatnonzero(steps > limit)[0])
        a, b = float(fine[i]), float(fine[i + 1])
        edge = round(0.5 * (a + b))
        where = (f"at the cell edge x = {edge:g}" if abs(0.5 * (a + b) - edge) < 2e-3
                 else f"between x = {a:.4g} and x = {b:.4g}")
        raise Wrong(f"your θ_k jumps {where} (k = {k:g}): from {fmt(values[i])} to {fmt(values[i + 1])}. The "
                    "pieces of the staircase must join: each cell climbs from its left integer to the next")
    base = torch.linspace(-2.3, 1.7, 41, dtype=torch.float64)
    here, there = theta_values(theta_k, base, k), theta_values(theta_k, base + 1, k)
    bad = np.flatnonzero(np.abs(there - here - 1.0) > 1e-8)
    if bad.size:
        i = int(bad[0])
        raise Wrong(f"θ_k(x + 1) = θ_k(x) + 1 fails at x = {float(base[i]):.4g} (k = {k:g}): your θ_k(x) = "
                    f"{fmt(here[i])} but θ_k(x + 1) = {fmt(there[i])}; every cell has the same shape, one step up")


def theta_limits(theta_k: Callable) -> None:
    """k → 0 gives the identity, k → ∞ the round function (away from the thresholds)."""
    xs = torch.linspace(-2.2, 2.2, 441, dtype=torch.float64)
    small = theta_values(theta_k, xs, 1e-4)
    bad = np.flatnonzero(np.abs(small - xs.numpy()) > 1e-6)
    if bad.size:
        i = int(bad[0])
        raise Wrong(f"as k → 0 θ_k must tend to the identity (the STE), but at k = 0.0001 and x = "
                    f"{float(xs[i]):.4g} your θ_k is {fmt(small[i])}")
    large = theta_values(theta_k, xs, 80.0)
    away = np.abs(xs.numpy() - np.floor(xs.numpy()) - 0.5) > 0.1
    bad = np.flatnonzero(away & (np.abs(large - np.round(xs.numpy())) > 1e-6))
    if bad.size:
        i = int(bad[0])
        raise Wrong(f"as k → ∞ θ_k must tend to the round function, but at k = 80 and x = {float(xs[i]):.4g} "
                    f"(not near a rounding threshold) your θ_k is {fmt(large[i])}")


def theta_matches(theta_k: Callable, x: torch.Tensor, k: float, atol: float = 1e-8) -> None:
    """The student's values against the library's ``soft_round``, wrong inputs named by their x."""
    from ...quant.functional import soft_round

    got = theta_values(theta_k, x, k)
    want = soft_round(x.double(), k).numpy()
    xs = x.double().numpy()
    compare_on_grid(got, want, xs, f"theta_k(x, k={k:g})", atol=atol, rtol=0)


@exercise("3.1", NOTEBOOK, "implement θ_k", answer="theta_k", hints=(
    "Split x into its integer part and the offset d from the middle of its rounding cell; Eq. 6 is a "
    "rescaled tanh of k·d added to the integer part.",
    "torch.floor gives the integer part, and d = x - floor(x) - 1/2 lies in [-1/2, 1/2). The rescaling "
    "divides by tanh(k/2), which is a number, not a tensor: use math.tanh for it, or turn k into a tensor "
    "first (torch.tanh accepts tensors only).",
    "Test your function yourself at the integers: at d = -1/2 the tanh term must cancel the constant 1/2 "
    "exactly, so that θ_k(n) = n. If it does not, look at the factor in front of tanh and at the sign of d.",
))
def check_theta_k(theta_k: Callable) -> str:
    """``theta_k(x, k)``: Eq. 6 on a tensor ``x`` (``k`` a Python float)."""
    for k in (1.0, 2.5, 7.0):
        theta_properties(theta_k, k)
    theta_limits(theta_k)
    for k in (1.0, 2.5, 7.0):
        theta_matches(theta_k, X_GRID, k)
    return ("θ_k(n) = n, no jumps, θ_k(x + 1) = θ_k(x) + 1, the identity as k → 0 and round as k → ∞; and "
            f"your values match qgait_lab.quant.soft_round at {len(X_GRID)} points for each of k = 1, 2.5 "
            "and 7 (integers and half-integers included)")


# ---------------------------------------------------------------------------
# 3.2 the mean of ∇G
# ---------------------------------------------------------------------------
def mean_grad_G_properties() -> list[Property]:
    k = _k()
    return [
        ("it is positive for every k > 0, since ∇G = coth(k/2) sech²(z) / 2 > 0",
         lambda e: _on_grid(e, lambda v: v > 0)),
        ("it tends to 0 as k grows: the density of z ~ U[-k/2, k/2] spreads over a longer interval",
         lambda e: _limit(e, sp.oo) == 0),
        ("k · E[∇G], the integral of ∇G over [-k/2, k/2], is G(k/2) - G(-k/2), and Eq. 9 rescales G so that "
         "this does not depend on k; your k · E[∇G] changes with k",
         lambda e: _on_grid(sp.diff(k * e, k), lambda v: abs(v) < 1e-9, 0.5, 20.0)),
    ]


@exercise("3.2", NOTEBOOK, "the mean of ∇G", answer="mean_grad_G", hints=(
    "E[∇G(z)] for z uniform on [-k/2, k/2] is the integral of ∇G over that interval divided by the "
    "interval's length.",
    "You do not need to integrate sech² yourself: ∇G is the derivative of a function you already have "
    "(Eq. 9). By the fundamental theorem of calculus the integral is that function at the upper bound "
    "minus its value at the lower bound.",
    "Evaluate G(k/2) and G(-k/2) with Eq. 9 (tanh is odd), subtract, then divide by the length of the "
    "interval. Give the mean, not its square: Eq. 11 squares it.",
))
def check_mean_grad_G(expr: Any) -> str:
    """``expr``: a sympy expression in k for E[∇G(z)], z ~ U[-k/2, k/2] (the mean, not its square)."""
    from .. import theory

    answer = sympy_in(expr, _k(), "E[∇G(z)]")
    got = compare_in_k(answer, theory.mean_grad_G(), "E[∇G(z)]", mean_grad_G_properties())
    return f"E[∇G(z)] = {got}, for every k (numerically at {len(K_POINTS)} values and symbolically)"


# ---------------------------------------------------------------------------
# 3.3 an antiderivative of sech⁴
# ---------------------------------------------------------------------------
Z_POINTS: tuple[float, ...] = (-1.3, -0.4, 0.05, 0.6, 1.9, 3.0)


def antiderivative_properties() -> list[Property]:
    z = _z()

    def derivative(e):
        return sp.lambdify(z, sp.diff(e, z), "mpmath")

    zs = np.linspace(-4.0, 4.0, 81)
    return [
        ("sech⁴ is positive, so F must never decrease, but your F' is negative somewhere in [-4, 4]",
         lambda e: all(complex(derivative(e)(float(v))).real >= -1e-12 for v in zs)),
        ("sech⁴ is even, so F' must take the same value at z and -z",
         lambda e: all(abs(complex(derivative(e)(float(v))) - complex(derivative(e)(float(-v)))) < 1e-9
                       for v in zs)),
        ("sech⁴ decays to 0 as |z| grows, so F must level off, but your F' does not tend to 0",
         lambda e: abs(complex(derivative(e)(12.0))) < 1e-6 and abs(complex(derivative(e)(-12.0))) < 1e-6),
    ]


@exercise("3.3", NOTEBOOK, "an antiderivative of sech⁴", answer="sech4_antiderivative", hints=(
    "Write sech⁴ z as sech² z · sech² z and express one of the two factors through tanh z.",
    "sech² z = 1 - tanh² z, and sech² z is the derivative of tanh z: the substitution u = tanh z turns the "
    "integral into the integral of a polynomial in u.",
    "Integrate the polynomial term by term, put u = tanh z back, and check your F with "
    "sp.simplify(sp.diff(F, z) - sp.sech(z)**4) before you hand it in.",
))
def check_sech4_antiderivative(expr: Any) -> str:
    """``expr``: a sympy expression F(z) with dF/dz = sech⁴ z (any constant of integration)."""
    from ..theory import symbolically_zero

    z = _z()
    F = sympy_in(expr, z, "your antiderivative F(z)")
    if F.has(sp.Integral):
        raise Wrong("your F still holds an unevaluated integral (sympy cannot integrate sech⁴ itself): "
                    "find F by hand")
    if not F.has(z):
        raise Wrong(f"your F = {sp.sstr(F)} is a constant, whose derivative is 0, not sech⁴ z")
    dF = sp.diff(F, z)
    f_got = sp.lambdify(z, dF, "mpmath")
    for p in Z_POINTS:
        try:
            g = complex(f_got(p))
        except Exception:  # noqa: BLE001
            raise Wrong(f"the derivative of your F = {sp.sstr(F)} cannot be evaluated at z = {p:g}") from None
        w = float(1 / np.cosh(p) ** 4)
        if abs(g - w) > 1e-9 * max(1.0, w):
            side = "too large" if g.real > w else "too small"
            message = (f"the derivative of your F = {sp.sstr(F)} is {side} at z = {p:g} "
                       f"(your F'({p:g}) = {fmt(g.real)}), so F' is not sech⁴")
            violated = _first_violated(F, antiderivative_properties())
            if violated:
                message += f"; {violated}"
            raise Wrong(message)
    if not symbolically_zero(sp.simplify(dF - sp.sech(z) ** 4)) and not _numerically_zero_in(dF - sp.sech(z) ** 4, z):
        raise Wrong(f"the derivative of your F = {sp.sstr(F)} agrees with sech⁴ at a few z but is not the "
                    "same function")
    return (f"d/dz [{sp.sstr(F)}] = sech⁴ z: sympy differentiated your F and reduced F' - sech⁴ to 0, and "
            f"the two agree at {len(Z_POINTS)} values of z")


def _numerically_zero_in(expr: sp.Expr, symbol: sp.Symbol) -> bool:
    f = sp.lambdify(symbol, expr, "mpmath")
    try:
        return all(abs(complex(f(p))) < 1e-12 for p in (-2.7, -1.1, -0.2, 0.35, 0.9, 1.6, 2.4))
    except Exception:  # noqa: BLE001
        return False


# ---------------------------------------------------------------------------
# 3.4 the second moment of the slope in x
# ---------------------------------------------------------------------------
def slope_second_moment_properties() -> list[Property]:
    return [
        ("it is at least 1 for every k (Jensen: the mean of the squared slope is at least the square of the "
         "mean slope in x, which is 1)",
         lambda e: _on_grid(e, lambda v: v >= 1 - 1e-9)),
        ("it tends to 1 as k → 0, where θ_k becomes the identity and its slope is 1 everywhere",
         lambda e: _limit(e, 0) == 1),
        ("it grows without bound as k grows: the slope's peak at the rounding threshold grows with k",
         lambda e: _limit(e, sp.oo) == sp.oo),
    ]


@exercise("3.4", NOTEBOOK, "the second moment in x", answer="slope_second_moment", hints=(
    "Start from the chain rule of this section: inside a cell the slope in x is k times ∇G evaluated at "
    "z = k d, and d is uniform on [-1/2, 1/2].",
    "Square the slope and average over d. Then substitute z = k d: the interval of d becomes [-k/2, k/2], "
    "and dd = dz / k. Compare what you get with the definition of Eq. 12, which averages over z.",
    "Count the factors of k with care: the squared chain-rule factor, dd = dz / k, and the two uniform "
    "densities (1 on the interval of d, whose length is 1; the reciprocal of the length on the interval of "
    "z). T.second_moment_grad_G_printed() gives Eq. 12, the average over z.",
))
def check_slope_second_moment(expr: Any) -> str:
    """``expr``: a sympy expression in k for E_x[(∂θ_k/∂x)²], d ~ U[-1/2, 1/2]."""
    from .. import theory

    answer = sympy_in(expr, _k(), "E_x[(∂θ_k/∂x)²]")
    got = compare_in_k(answer, theory.slope_second_moment_expected(), "E_x[(∂θ_k/∂x)²]",
                       slope_second_moment_properties())
    return f"E_x[(∂θ_k/∂x)²] = {got}, for every k (numerically at {len(K_POINTS)} values and symbolically)"


# ---------------------------------------------------------------------------
# 3.5 DSQ's α
# ---------------------------------------------------------------------------
def dsq_alpha_properties() -> list[Property]:
    return [
        ("DSQ's α lies strictly between 0 and 1 for every k > 0",
         lambda e: _on_grid(e, lambda v: 0 < v < 1)),
        ("α tends to 0 as k grows: a sharp DSQ is the hard round function",
         lambda e: _limit(e, sp.oo) == 0),
        ("α tends to 1 as k → 0, where DSQ's tanh is a straight line",
         lambda e: _limit(e, 0) == 1),
    ]


@exercise("3.5", NOTEBOOK, "DSQ's α", answer="dsq_alpha", hints=(
    "DSQ gives k as a function of α. For a unit step (Δ = 1), solve that relation for α.",
    "Exponentiate both sides of k = log(2/α - 1): the result is linear in 2/α. Any form you reach is fine; "
    "the checker compares values of k and then asks sympy.",
    "Check your α yourself: it must lie in (0, 1), and substituting it back into log(2/α - 1) must give k.",
))
def check_dsq_alpha(expr: Any) -> str:
    """``expr``: DSQ's α for a unit step, as a sympy expression in k."""
    from .. import theory

    answer = sympy_in(expr, _k(), "α")
    got = compare_in_k(answer, theory.dsq_alpha(theory.k, sp.Integer(1)), "α", dsq_alpha_properties())
    return f"α = {got}: DSQ with this α and a unit step is θ_k, for every k"
