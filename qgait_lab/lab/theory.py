"""The paper's soft-quantizer analysis as sympy expressions, with checks.

This module turns Sec. 3.2 and Appendix A.1 of the QGait paper into objects a
notebook can plot, differentiate and ``assert`` on:

* the soft quantizer theta_k (Eq. 6), its tanh part G (Eq. 9) and the slope
  of G (Eq. 10);
* the first and second moments of that slope under a uniform input (Eqs. 11-12),
  both as the paper prints them and as derived here;
* the *chain-rule reading*: the paper studies G as a function of ``z = k d``,
  but the quantizer's input is ``x``, and ``d theta / dx = k * G'(k d)``.  The
  mean slope over a unit interval is then exactly 1 (the same as the STE's),
  and its second moment is ``k**2`` times Eq. 12;
* the appendix integrals (Eqs. 16-19), checked by *differentiating* each
  claimed antiderivative, which is fast and decisive (:func:`appendix_errata`);
* the relation to DSQ (Gong et al. 2019): theta_k is DSQ's soft quantizer on
  a unit step with ``alpha = 1 - tanh(k / 2)``.

How claims are checked
----------------------
Every ``verify_*`` function returns ``(holds, detail)``.  ``holds`` is True
only when *both* of two independent checks agree:

1. **symbolic**: sympy simplifies ``lhs - rhs`` to 0 (first directly, then
   after rewriting the hyperbolic functions as exponentials);
2. **numeric**: the two sides agree at a grid of sample points, or, for the
   expectations of Eqs. 11-12, a seeded numpy Monte-Carlo estimate agrees with
   the closed form within six standard errors.

Each ``verify_*`` function takes the claimed expression as an argument
(defaulting to the paper's or the correct one), so a test can feed it a
deliberately wrong variant and watch it fail.

Definite integrals are evaluated with the fundamental theorem of calculus from
an antiderivative whose derivative sympy has first confirmed
(:func:`definite_integral`); ``sympy.integrate`` on powers of ``sech`` is slow
and returns unwieldy forms.

The torch implementation of theta_k lives in :mod:`qgait_lab.quant.functional`
(``soft_round`` and ``soft_round_slope``); the ``*_numpy`` functions here are
``lambdify``-ed versions of the sympy expressions, for plotting and for
cross-checking that implementation.
"""
from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import sympy as sp

__all__ = [
    "k", "x", "z", "d", "m",
    "Check", "EquationCheck",
    # Eq. 6, 9, 10
    "theta", "theta_on_cell", "G", "grad_G_printed", "grad_G",
    # Eq. 11, 12
    "mean_grad_G_squared_printed", "mean_grad_G", "second_moment_grad_G_printed",
    "second_moment_grad_G",
    # chain rule
    "slope", "slope_in_x", "slope_mean", "slope_second_moment_expected",
    "slope_second_moment", "slope_variance",
    # appendix
    "sech2_antiderivative", "sech4_antiderivative", "sech4_antiderivative_printed",
    "sech4_antiderivative_first_line", "sech4_antiderivative_corrected",
    "sech_reduction_term_printed", "sech_reduction_term",
    # DSQ
    "delta", "alpha", "dsq_scale", "dsq_phi", "dsq_soft_output", "dsq_alpha",
    "dsq_k_from_alpha",
    # tools
    "definite_integral", "uniform_mean", "symbolically_zero", "compare",
    # verifications
    "verify_eq10", "verify_eq11", "verify_mean_grad_G", "verify_eq12",
    "verify_chain_rule", "verify_slope_mean", "verify_slope_second_moment",
    "verify_slope_asymptotics", "verify_slope_variance_nonnegative",
    "verify_antiderivative", "verify_reduction_formula", "verify_dsq_equals_theta",
    "verify_dsq_general_step", "verify_dsq_alpha",
    "appendix_errata", "main_text_checks", "errata_markdown",
    # numpy
    "to_numpy", "theta_numpy", "slope_numpy", "grad_G_numpy", "mean_grad_G_numpy",
    "second_moment_grad_G_numpy", "slope_second_moment_numpy",
]

# ---------------------------------------------------------------------------
# Symbols
# ---------------------------------------------------------------------------
k = sp.Symbol("k", positive=True)
"""Steepness of the soft quantizer (Eq. 6; the paper requires k >= 1)."""
x = sp.Symbol("x", real=True)
"""Input of the quantizer (already divided by the step, Eq. 2)."""
z = sp.Symbol("z", real=True)
"""Argument of G in Eqs. 9-12: ``z = k d``."""
d = sp.Symbol("d", real=True)
"""Offset from the middle of the rounding cell: ``d = x - floor(x) - 1/2`` in [-1/2, 1/2)."""
m = sp.Symbol("m", positive=True)
"""Power of sech in the reduction formula (Eq. 18)."""
delta = sp.Symbol("Delta", positive=True)
"""DSQ's quantization step (Gong et al. 2019)."""
alpha = sp.Symbol("alpha", positive=True)
"""DSQ's characteristic variable, in (0, 1)."""

HALF = sp.Rational(1, 2)

Check = tuple[bool, str]
"""Result of a ``verify_*`` function: ``(holds, human-readable detail)``."""

_K_SAMPLES: tuple[float, ...] = (0.5, 1.0, 2.0, 3.7, 8.0)
_X_SAMPLES: tuple[float, ...] = (-1.3, -0.4, 0.05, 0.6, 1.9)
_D_SAMPLES: tuple[float, ...] = (-0.45, -0.2, 0.0, 0.13, 0.4)


# ---------------------------------------------------------------------------
# Checking tools
# ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=1024)
def symbolically_zero(expr: sp.Expr) -> bool:
    """True if sympy can simplify ``expr`` to 0.

    Hyperbolic identities are tried first with everything rewritten as
    exponentials (usually the fastest route), then with plain ``simplify``.
    False means "not proved", not "proved non-zero"; the numeric half of
    :func:`compare` supplies the counterexample in that case.  Cached: the
    same identities recur across checks and tables.
    """
    if sp.simplify(expr.rewrite(sp.exp)) == 0:
        return True
    return sp.simplify(expr) == 0


def _default_samples(expr: sp.Expr, var: sp.Symbol) -> dict[sp.Symbol, Sequence[float]]:
    """Sample values for ``var`` and every other free symbol of ``expr`` (k gets positive values)."""
    samples: dict[sp.Symbol, Sequence[float]] = {var: _X_SAMPLES}
    for symbol in expr.free_symbols - {var}:
        samples[symbol] = _K_SAMPLES if symbol.is_positive else (-0.7, 0.4, 1.3)
    return samples


def _sample_grid(samples: Mapping[sp.Symbol, Sequence[float]]) -> Iterable[dict[sp.Symbol, float]]:
    symbols = list(samples)
    for values in itertools.product(*(samples[s] for s in symbols)):
        yield dict(zip(symbols, values))


def _numeric_max_error(lhs: sp.Expr, rhs: sp.Expr,
                       samples: Mapping[sp.Symbol, Sequence[float]]) -> tuple[float, dict, int]:
    """Largest relative error ``|lhs - rhs| / max(1, |rhs|)`` over the sample grid.

    Points where either side is not a finite real number (e.g. a fractional
    power of a negative number) are skipped; the count of points used is returned.
    """
    symbols = list(samples)
    f_lhs = sp.lambdify(symbols, lhs, "numpy")
    f_rhs = sp.lambdify(symbols, rhs, "numpy")
    worst, where, used = 0.0, {}, 0
    with np.errstate(all="ignore"):
        for point in _sample_grid(samples):
            args = [point[s] for s in symbols]
            a, b = complex(f_lhs(*args)), complex(f_rhs(*args))
            if not (np.isfinite(a) and np.isfinite(b) and a.imag == 0 and b.imag == 0):
                continue
            used += 1
            err = abs(a.real - b.real) / max(1.0, abs(b.real))
            if err > worst:
                worst, where = err, {str(s): v for s, v in point.items()}
    return worst, where, used


def compare(lhs: sp.Expr, rhs: sp.Expr, samples: Mapping[sp.Symbol, Sequence[float]],
            rtol: float = 1e-9) -> Check:
    """Check ``lhs == rhs`` at every point of a sample grid, then symbolically.

    A numeric counterexample settles the question (the claim is refuted);
    otherwise sympy must also reduce ``lhs - rhs`` to 0 for the claim to hold.
    """
    err, where, used = _numeric_max_error(lhs, rhs, samples)
    if used == 0:
        return False, "numeric: no sample point gave finite values on both sides"
    if err > rtol:
        return False, f"refuted numerically: relative error {err:.3g} at {where} ({used} points tried)"
    symbolic = symbolically_zero(lhs - rhs)
    detail = (f"numeric: max relative error {err:.3g} <= {rtol:g} over {used} points; sympy: "
              + ("difference simplifies to 0" if symbolic else "could not reduce the difference to 0"))
    return symbolic, detail


@functools.lru_cache(maxsize=256)
def _monte_carlo_check(integrand: sp.Expr, var: sp.Symbol, lower: sp.Expr, upper: sp.Expr,
                       claimed: sp.Expr, k_values: Sequence[float] = _K_SAMPLES,
                       n: int = 200_000, seed: int = 0) -> tuple[bool, str]:
    """Compare a claimed ``E[integrand]`` (var ~ U[lower, upper]) with a seeded Monte-Carlo mean."""
    rng = np.random.default_rng(seed)
    f = sp.lambdify([var, k], integrand, "numpy")
    f_claim = sp.lambdify([k], claimed, "numpy")
    f_lo, f_hi = sp.lambdify([k], lower, "numpy"), sp.lambdify([k], upper, "numpy")
    worst = 0.0
    for kv in k_values:
        samples = f(rng.uniform(float(f_lo(kv)), float(f_hi(kv)), n), kv)
        estimate = float(np.mean(samples))
        std_err = float(np.std(samples)) / np.sqrt(n)
        gap = abs(estimate - float(f_claim(kv))) / (std_err + 1e-12)
        if gap > 6.0:
            return False, f"Monte Carlo at k={kv}: estimate {estimate:.6g}, claim {float(f_claim(kv)):.6g} ({gap:.1f} std errors apart)"
        worst = max(worst, gap)
    return True, f"Monte Carlo ({n} samples per k, k in {list(k_values)}): within {worst:.2f} std errors"


def _verify_expectation(integrand: sp.Expr, var: sp.Symbol, lower: sp.Expr, upper: sp.Expr,
                        derived: sp.Expr, claimed: sp.Expr) -> Check:
    """A seeded Monte-Carlo estimate of ``E[integrand]``, then symbolic ``derived == claimed``.

    A Monte-Carlo mismatch refutes the claim without calling sympy.
    """
    mc_ok, mc_detail = _monte_carlo_check(integrand, var, lower, upper, claimed)
    if not mc_ok:
        return False, f"derived {derived}; claimed {claimed}; refuted by {mc_detail}"
    symbolic = symbolically_zero(derived - claimed)
    return symbolic, (f"derived {derived}; claimed {claimed}; "
                      f"sympy: {'equal' if symbolic else 'not shown equal'}; {mc_detail}")


def definite_integral(integrand: sp.Expr, var: sp.Symbol, lower: sp.Expr, upper: sp.Expr,
                      antiderivative: sp.Expr) -> sp.Expr:
    """``F(upper) - F(lower)`` after confirming ``F' == integrand`` (numerically and with sympy).

    Raises ``ValueError`` if the antiderivative does not check out, so a
    wrong antiderivative can never produce a silently wrong integral.
    """
    holds, detail = compare(sp.diff(antiderivative, var), integrand, _default_samples(integrand, var))
    if not holds:
        raise ValueError(f"{antiderivative} is not an antiderivative of {integrand} in {var}: {detail}")
    return antiderivative.subs(var, upper) - antiderivative.subs(var, lower)


def uniform_mean(integrand: sp.Expr, var: sp.Symbol, lower: sp.Expr, upper: sp.Expr,
                 antiderivative: sp.Expr) -> sp.Expr:
    """``E[integrand]`` for ``var ~ U[lower, upper]``, via :func:`definite_integral`."""
    return definite_integral(integrand, var, lower, upper, antiderivative) / (upper - lower)


# ---------------------------------------------------------------------------
# Appendix A.1: antiderivatives (Eqs. 16-19)
# ---------------------------------------------------------------------------
def sech2_antiderivative(v: sp.Symbol = x) -> sp.Expr:
    """Eq. 17: ``integral sech^2 = tanh`` (printed as ``tanh x(x)``, a typesetting slip)."""
    return sp.tanh(v)


def sech4_antiderivative(v: sp.Symbol = x) -> sp.Expr:
    """Correct ``integral sech^4 = tanh - tanh^3 / 3 = (cosh 2v + 2) tanh(v) sech^2(v) / 3``."""
    return sp.tanh(v) - sp.tanh(v) ** 3 / 3


def sech4_antiderivative_first_line(v: sp.Symbol = x) -> sp.Expr:
    """Eq. 19, first line, with Eq. 17 substituted: ``tanh sech^2 / 3 + 2 tanh / 3``."""
    return sp.tanh(v) * sp.sech(v) ** 2 / 3 + 2 * sp.tanh(v) / 3


def sech4_antiderivative_printed(v: sp.Symbol = x) -> sp.Expr:
    """Eq. 19, second line, as printed: ``(cosh 2v + 2) tanh(v) sinh^2(v) / 3``."""
    return (sp.cosh(2 * v) + 2) * sp.tanh(v) * sp.sinh(v) ** 2 / 3


def sech4_antiderivative_corrected(v: sp.Symbol = x) -> sp.Expr:
    """Eq. 19, second line, corrected: ``(cosh 2v + 2) tanh(v) sech^2(v) / 3``."""
    return (sp.cosh(2 * v) + 2) * sp.tanh(v) * sp.sech(v) ** 2 / 3


def sech_reduction_term_printed(power: sp.Expr = m, v: sp.Symbol = x) -> sp.Expr:
    """Eq. 18 as printed: the boundary term ``sinh(v) sinh^(m-1)(v) / (m-1)``."""
    return sp.sinh(v) * sp.sinh(v) ** (power - 1) / (power - 1)


def sech_reduction_term(power: sp.Expr = m, v: sp.Symbol = x) -> sp.Expr:
    """Eq. 18 corrected: the boundary term ``sech^(m-2)(v) tanh(v) / (m-1)``.

    The reduction formula is
    ``int sech^m = sech^(m-2) tanh / (m-1) + (m-2)/(m-1) int sech^(m-2)``.
    """
    return sp.sech(v) ** (power - 2) * sp.tanh(v) / (power - 1)


def verify_antiderivative(candidate: sp.Expr, integrand: sp.Expr, v: sp.Symbol = x) -> Check:
    """Does ``d candidate / dv == integrand``?  (How every appendix claim is judged.)"""
    return compare(sp.diff(candidate, v), integrand, {v: _X_SAMPLES})


def verify_reduction_formula(boundary_term: sp.Expr, power: sp.Expr = m, v: sp.Symbol = x) -> Check:
    """Check ``int sech^m = B + (m-2)/(m-1) int sech^(m-2)`` by differentiating.

    The identity holds iff ``B' = sech^m - (m-2)/(m-1) sech^(m-2)``.  The symbolic
    check keeps ``m`` free; the numeric one samples m = 2, 2.5, 3, 4, 5, 6.
    """
    target = sp.sech(v) ** power - (power - 2) / (power - 1) * sp.sech(v) ** (power - 2)
    samples: dict[sp.Symbol, Sequence[float]] = {v: _X_SAMPLES}
    if isinstance(power, sp.Symbol):
        samples[power] = (2.0, 2.5, 3.0, 4.0, 5.0, 6.0)
    return compare(sp.diff(boundary_term, v), target, samples)


# ---------------------------------------------------------------------------
# Sec. 3.2: theta_k, G and its slope (Eqs. 6, 9, 10)
# ---------------------------------------------------------------------------
def theta() -> sp.Expr:
    """Eq. 6: ``theta_k(x) = floor(x) + tanh(k d) / (2 tanh(k/2)) + 1/2``, ``d = x - floor(x) - 1/2``."""
    dd = x - sp.floor(x) - HALF
    return sp.floor(x) + sp.tanh(k * dd) / (2 * sp.tanh(k / 2)) + HALF


def theta_on_cell() -> sp.Expr:
    """``theta_k(x) - floor(x)`` as a function of ``d`` (Eq. 6 inside one rounding cell).

    Rises from 0 at ``d = -1/2`` to 1 at ``d = 1/2``; ``floor`` is constant on
    the cell, so derivatives are taken here.
    """
    return sp.tanh(k * d) / (2 * sp.tanh(k / 2)) + HALF


def G() -> sp.Expr:
    """Eq. 9: ``G(z) = tanh(z) / (2 tanh(k/2))``, ``z in [-k/2, k/2]``."""
    return sp.tanh(z) / (2 * sp.tanh(k / 2))


def grad_G_printed() -> sp.Expr:
    """Eq. 10 as printed: ``G'(z) = coth(k/2) sech^2(z) / 2``."""
    return sp.coth(k / 2) * sp.sech(z) ** 2 / 2


def grad_G() -> sp.Expr:
    """``dG/dz`` computed by sympy from Eq. 9."""
    return sp.diff(G(), z)


def verify_eq10(claimed: sp.Expr | None = None) -> Check:
    """Eq. 10: is ``claimed`` (default: the printed form) the derivative of Eq. 9?"""
    claimed = grad_G_printed() if claimed is None else claimed
    return compare(grad_G(), claimed, {k: _K_SAMPLES, z: _X_SAMPLES})


# ---------------------------------------------------------------------------
# Sec. 3.2: moments of G' for z ~ U[-k/2, k/2] (Eqs. 11, 12)
# ---------------------------------------------------------------------------
def mean_grad_G_squared_printed() -> sp.Expr:
    """Eq. 11 as printed: ``E^2[G'(z)] = 1/k^2`` (the *square* of the mean)."""
    return 1 / k ** 2


@functools.lru_cache(maxsize=None)
def mean_grad_G() -> sp.Expr:
    """``E[G'(z)]``, z ~ U[-k/2, k/2], derived: equals ``1/k``.

    G is its own antiderivative, so this is ``(G(k/2) - G(-k/2)) / k``.
    """
    return sp.simplify(uniform_mean(grad_G(), z, -k / 2, k / 2, G()))


def verify_mean_grad_G(claimed: sp.Expr = 1 / k) -> Check:
    """``E[G'(z)] == claimed``?  (True for ``1/k``; the paper's Eq. 11 squares this.)"""
    return _verify_expectation(grad_G(), z, -k / 2, k / 2, mean_grad_G(), claimed)


def verify_eq11(claimed_squared_mean: sp.Expr | None = None) -> Check:
    """Eq. 11: ``E[G'(z)]^2 == claimed`` (default: the printed ``1/k^2``).

    Note that Eq. 11's "< 1" is strict only for ``k > 1``; at the paper's
    smallest allowed value ``k = 1`` the two sides are equal.
    """
    claimed = mean_grad_G_squared_printed() if claimed_squared_mean is None else claimed_squared_mean
    # The Monte-Carlo check estimates the mean; compare it with sqrt(claim).
    mc_ok, mc_detail = _monte_carlo_check(grad_G(), z, -k / 2, k / 2, sp.sqrt(claimed))
    prefix = f"E[G'] = {mean_grad_G()}, so E^2[G'] = {mean_grad_G() ** 2}; claimed {claimed}; "
    if not mc_ok:
        return False, prefix + f"refuted by {mc_detail}"
    symbolic = symbolically_zero(mean_grad_G() ** 2 - claimed)
    return symbolic, prefix + f"sympy: {'equal' if symbolic else 'not shown equal'}; {mc_detail}"


def second_moment_grad_G_printed() -> sp.Expr:
    """Eq. 12 as printed: ``E[|G'(z)|^2] = (cosh k + 2) / (3 k sinh k)``."""
    return (sp.cosh(k) + 2) / (3 * k * sp.sinh(k))


@functools.lru_cache(maxsize=None)
def second_moment_grad_G() -> sp.Expr:
    """``E[G'(z)^2]``, z ~ U[-k/2, k/2], derived with the sech^4 antiderivative."""
    antiderivative = sech4_antiderivative(z) / (4 * sp.tanh(k / 2) ** 2)
    return sp.simplify(uniform_mean(grad_G() ** 2, z, -k / 2, k / 2, antiderivative))


def verify_eq12(claimed: sp.Expr | None = None) -> Check:
    """Eq. 12: ``E[G'(z)^2] == claimed`` (default: the printed form)?"""
    claimed = second_moment_grad_G_printed() if claimed is None else claimed
    return _verify_expectation(grad_G() ** 2, z, -k / 2, k / 2, second_moment_grad_G(), claimed)


# ---------------------------------------------------------------------------
# The chain-rule reading: slope with respect to x
# ---------------------------------------------------------------------------
def slope() -> sp.Expr:
    """``d theta_k / dx`` as a function of ``d`` (``dd/dx = 1`` inside a cell)."""
    return sp.diff(theta_on_cell(), d)


def slope_in_x() -> sp.Expr:
    """``d theta_k / dx`` as a function of ``x`` (for plotting against Eq. 6)."""
    return slope().subs(d, x - sp.floor(x) - HALF)


def verify_chain_rule() -> Check:
    """``d theta_k / dx == k * G'(k d)``: the factor k the paper's Eqs. 9-12 leave out."""
    return compare(slope(), k * grad_G().subs(z, k * d), {k: _K_SAMPLES, d: _D_SAMPLES})


@functools.lru_cache(maxsize=None)
def slope_mean() -> sp.Expr:
    """Mean of ``d theta_k / dx`` over a unit interval of x (d ~ U[-1/2, 1/2]): exactly 1."""
    antiderivative = theta_on_cell()
    return sp.simplify(uniform_mean(slope(), d, -HALF, HALF, antiderivative))


def verify_slope_mean(claimed: sp.Expr = sp.Integer(1)) -> Check:
    """Mean slope over a unit interval equals ``claimed`` (1, the STE's slope)?"""
    return _verify_expectation(slope(), d, -HALF, HALF, slope_mean(), claimed)


def slope_second_moment_expected() -> sp.Expr:
    """``k^2 * Eq. 12 = k (cosh k + 2) / (3 sinh k)``, about ``k/3`` for large k."""
    return k * (sp.cosh(k) + 2) / (3 * sp.sinh(k))


@functools.lru_cache(maxsize=None)
def slope_second_moment() -> sp.Expr:
    """``E[(d theta_k / dx)^2]`` over a unit interval, derived with the sech^4 antiderivative."""
    coefficient = k * sp.coth(k / 2) / 2      # slope = coefficient * sech^2(k d)
    antiderivative = coefficient ** 2 * sech4_antiderivative(k * d) / k
    return sp.simplify(uniform_mean(slope() ** 2, d, -HALF, HALF, antiderivative))


def verify_slope_second_moment(claimed: sp.Expr | None = None) -> Check:
    """``E[(d theta/dx)^2] == claimed`` (default ``k (cosh k + 2) / (3 sinh k)``)?"""
    claimed = slope_second_moment_expected() if claimed is None else claimed
    return _verify_expectation(slope() ** 2, d, -HALF, HALF,
                               slope_second_moment(), claimed)


def slope_variance() -> sp.Expr:
    """Variance of the slope over a unit interval: ``k (cosh k + 2) / (3 sinh k) - 1``."""
    return slope_second_moment_expected() - 1


def verify_slope_asymptotics() -> Check:
    """Second moment of the slope tends to 1 as k -> 0 (STE) and grows like k/3 as k -> oo."""
    at_zero = sp.limit(slope_second_moment_expected(), k, 0)
    ratio_at_inf = sp.limit(slope_second_moment_expected() / k, k, sp.oo)
    holds = at_zero == 1 and ratio_at_inf == sp.Rational(1, 3)
    return holds, f"limit k->0: {at_zero}; limit of (second moment)/k as k->oo: {ratio_at_inf}"


def verify_slope_variance_nonnegative(k_values: Sequence[float] = (1e-3, 0.5, 1, 2, 5, 20, 100)) -> Check:
    """The soft slope's variance is >= 0 (Jensen; 0 only as k -> 0, the STE).

    With the mean fixed at 1, this is what makes the soft quantizer converge
    worse than the STE in Eq. 8: the first-order term is equal, the second is larger.
    """
    f = sp.lambdify([k], slope_variance(), "numpy")
    values = {kv: float(f(kv)) for kv in k_values}
    holds = all(v >= -1e-12 for v in values.values())
    return holds, "variance at k: " + ", ".join(f"{kv:g}: {v:.4g}" for kv, v in values.items())


# ---------------------------------------------------------------------------
# DSQ (Gong et al. 2019)
# ---------------------------------------------------------------------------
def dsq_scale(kk: sp.Expr = k, step: sp.Expr = delta) -> sp.Expr:
    """DSQ's ``s = 1 / tanh(k Delta / 2)``, which makes ``phi`` reach +-1 at the cell edges."""
    return 1 / sp.tanh(kk * step / 2)


def dsq_phi(xx: sp.Expr, centre: sp.Expr, kk: sp.Expr = k, step: sp.Expr = delta) -> sp.Expr:
    """DSQ's ``phi(x) = s tanh(k (x - m_i))`` on the cell with centre ``m_i``."""
    return dsq_scale(kk, step) * sp.tanh(kk * (xx - centre))


def dsq_soft_output(xx: sp.Expr, cell: sp.Expr, lower: sp.Expr = sp.Integer(0),
                    kk: sp.Expr = k, step: sp.Expr = delta) -> sp.Expr:
    """DSQ's soft quantizer on cell ``i``: ``l + Delta (i + (phi(x) + 1) / 2)``.

    The cell is ``[l + i Delta, l + (i+1) Delta)`` with centre
    ``m_i = l + (i + 1/2) Delta``.
    """
    centre = lower + (cell + HALF) * step
    return lower + step * (cell + (dsq_phi(xx, centre, kk, step) + 1) / 2)


def dsq_alpha(kk: sp.Expr = k, step: sp.Expr = delta) -> sp.Expr:
    """DSQ's characteristic variable ``alpha = 1 - tanh(k Delta / 2)``.

    It is the gap between the unscaled ``tanh`` at the cell edge and its
    asymptote 1, i.e. how far the soft quantizer is from the hard round;
    ``s = 1 / (1 - alpha)`` closes the gap.
    """
    return 1 - sp.tanh(kk * step / 2)


def dsq_k_from_alpha(a: sp.Expr = alpha, step: sp.Expr = delta) -> sp.Expr:
    """DSQ's parametrization ``k = log(2/alpha - 1) / Delta``."""
    return sp.log(2 / a - 1) / step


def verify_dsq_equals_theta(cell_shift: sp.Expr = sp.Integer(0)) -> Check:
    """DSQ with ``Delta = 1``, ``l = 0`` and the same k equals theta_k (Eq. 6).

    On the cell ``[i, i+1)``, write ``x = i + 1/2 + d``; then ``floor(x) = i``
    and theta_k = ``i + theta_on_cell(d)``.  ``cell_shift`` offsets DSQ's cell
    index (a non-zero shift gives a deliberately wrong variant for tests).
    """
    i = sp.Symbol("i", integer=True)
    dsq = dsq_soft_output(i + HALF + d, i + cell_shift, sp.Integer(0), k, sp.Integer(1))
    samples = {k: _K_SAMPLES, d: _D_SAMPLES, i: (-2, 0, 3)}
    return compare(dsq, i + theta_on_cell(), samples)


def verify_dsq_general_step() -> Check:
    """For a step Delta: DSQ(x; k, Delta) == l + Delta * theta_{k Delta}((x - l) / Delta)."""
    i = sp.Symbol("i", integer=True)
    lower = sp.Symbol("l", real=True)
    xx = lower + (i + HALF + d) * delta     # a point of cell i, at offset d (in steps)
    dsq = dsq_soft_output(xx, i, lower, k, delta)
    theta_scaled = lower + delta * (i + theta_on_cell().subs(k, k * delta))
    samples = {k: (0.5, 2.0, 6.0), d: _D_SAMPLES, i: (-1, 2), delta: (0.25, 1.0, 3.0), lower: (-1.5, 0.0)}
    return compare(dsq, theta_scaled, samples)


def verify_dsq_alpha(claimed_alpha: sp.Expr | None = None) -> Check:
    """theta_k is DSQ with ``alpha = claimed_alpha`` (default ``1 - tanh(k/2)``)?

    Checks, for ``Delta = 1``: (a) DSQ's ``k = log(2/alpha - 1)`` inverts the
    claim (substituting it gives back ``k``), and (b) DSQ's scale
    ``s = 1/(1 - alpha)`` equals theta_k's ``1/tanh(k/2)``.
    """
    claimed = dsq_alpha(k, sp.Integer(1)) if claimed_alpha is None else claimed_alpha
    k_back = dsq_k_from_alpha(claimed, sp.Integer(1))
    ok_k, detail_k = compare(k_back, k, {k: _K_SAMPLES})
    ok_s, detail_s = compare(1 / (1 - claimed), dsq_scale(k, sp.Integer(1)), {k: _K_SAMPLES})
    return ok_k and ok_s, f"k = log(2/alpha - 1): {detail_k}. s = 1/(1 - alpha): {detail_s}"


# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class EquationCheck:
    """One row of an errata table.

    ``holds`` and ``verdict`` judge ``as_printed``; ``correct_form`` is the
    printed form when that holds, else the corrected form, which has been
    checked too (``correction_holds``).
    """

    equation: str
    as_printed: str
    correct_form: str
    holds: bool
    verdict: str
    detail: str
    correction_holds: bool | None = None


def _row(equation: str, printed: str, check: Check, correct: str = "",
         correct_check: Check | None = None, note: str = "") -> EquationCheck:
    """Build a row from computed checks; the verdict text follows the booleans."""
    holds, detail = check
    if holds:
        verdict, correct_form, correction_holds = "correct as printed", printed, None
    else:
        correction_holds, correct_detail = correct_check if correct_check else (None, "")
        correct_form = correct or "(no correction proposed)"
        verdict = "wrong as printed"
        if correction_holds is not None:
            verdict += "; correction verified" if correction_holds else "; correction NOT verified"
            detail += f" | correction: {correct_detail}"
    if note:
        verdict += f" ({note})"
    return EquationCheck(equation, printed, correct_form, holds, verdict, detail, correction_holds)


def appendix_errata() -> list[EquationCheck]:
    """Appendix A.1, Eqs. 16-19, each judged by differentiating with sympy.

    Verdicts are computed, not stored: every row comes from ``verify_*`` calls
    on the printed claim and, where it fails, on the corrected one.
    """
    v = x
    sech2, sech4 = sp.sech(v) ** 2, sp.sech(v) ** 4
    exp_form = 4 * sp.exp(2 * v) / (sp.exp(2 * v) + 1) ** 2
    return [
        _row("Eq. 16", "sech^2(x) = 4 e^{2x} / (e^{2x} + 1)^2",
             compare(sech2, exp_form, {v: _X_SAMPLES})),
        _row("Eq. 16-17 (substitution)", "int sech^2(x) dx = -2/(e^{2x} + 1) + C",
             verify_antiderivative(-2 / (sp.exp(2 * v) + 1), sech2)),
        _row("Eq. 17", "int sech^2(x) dx = tanh x(x) + C",
             verify_antiderivative(sech2_antiderivative(), sech2),
             note="reading 'tanh x(x)', a typesetting slip, as tanh(x)"),
        _row("Eq. 18", "int sech^m = sinh(x) sinh^{m-1}(x)/(m-1) + (m-2)/(m-1) int sech^{m-2}",
             verify_reduction_formula(sech_reduction_term_printed()),
             "int sech^m = sech^{m-2}(x) tanh(x)/(m-1) + (m-2)/(m-1) int sech^{m-2}",
             verify_reduction_formula(sech_reduction_term())),
        _row("Eq. 19, line 1", "int sech^4 = tanh(x) sech^2(x)/3 + (2/3) int sech^2",
             verify_antiderivative(sech4_antiderivative_first_line(), sech4)),
        _row("Eq. 19, line 2", "int sech^4 = (cosh(2x) + 2) tanh(x) sinh^2(x)/3 + C",
             verify_antiderivative(sech4_antiderivative_printed(), sech4),
             "int sech^4 = (cosh(2x) + 2) tanh(x) sech^2(x)/3 = tanh(x) - tanh^3(x)/3 + C",
             _both(verify_antiderivative(sech4_antiderivative_corrected(), sech4),
                   verify_antiderivative(sech4_antiderivative(), sech4))),
    ]


def _both(first: Check, second: Check) -> Check:
    return first[0] and second[0], f"{first[1]}; {second[1]}"


def _eq11_bound_note() -> str:
    """Eq. 11 claims ``1/k^2 < 1`` while Eq. 6 allows ``k >= 1``: evaluate at k = 1."""
    at_one = sp.simplify((mean_grad_G() ** 2).subs(k, 1))
    note = f"so E[G'] = {mean_grad_G()}"
    if at_one == 1:
        note += "; at k = 1 (allowed by Eq. 6) E^2[G'] = 1, so '< 1' is strict only for k > 1"
    return note


def main_text_checks() -> list[EquationCheck]:
    """Eqs. 10-12 of Sec. 3.2, then this module's derived claims (chain rule, DSQ).

    For the derived rows, "as printed" means "as claimed in this module".
    """
    return [
        _row("Eq. 10", "G'(z) = coth(k/2) sech^2(z)/2", verify_eq10()),
        _row("Eq. 11", "E^2[G'(z)] = 1/k^2 < 1", verify_eq11(), note=_eq11_bound_note()),
        _row("Eq. 12", "E[|G'(z)|^2] = (cosh k + 2)/(3 k sinh k)", verify_eq12()),
        _row("chain rule (derived)", "d theta/dx = k G'(k d)", verify_chain_rule()),
        _row("mean slope in x (derived)", "E_x[d theta/dx] = 1 (= STE)", verify_slope_mean()),
        _row("second moment in x (derived)",
             "E_x[(d theta/dx)^2] = k (cosh k + 2)/(3 sinh k) = k^2 Eq. 12", verify_slope_second_moment()),
        _row("DSQ (derived)", "theta_k = DSQ soft quantizer (Delta = 1, same k)", verify_dsq_equals_theta()),
        _row("DSQ alpha (derived)", "alpha = 1 - tanh(k/2)", verify_dsq_alpha()),
    ]


def errata_markdown(rows: Sequence[EquationCheck] | None = None) -> str:
    """Render rows (default: :func:`appendix_errata`) as a Markdown table."""
    rows = appendix_errata() if rows is None else rows
    lines = ["| equation | as printed | correct form | verdict |", "|---|---|---|---|"]
    for r in rows:
        correct = "(as printed)" if r.correct_form == r.as_printed else f"`{r.correct_form}`"
        lines.append(f"| {r.equation} | `{r.as_printed}` | {correct} | {r.verdict} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# numpy versions (for plots and for cross-checking the torch implementation)
# ---------------------------------------------------------------------------
def to_numpy(expr: sp.Expr, *args: sp.Symbol) -> Callable[..., np.ndarray]:
    """``sympy.lambdify(args, expr, "numpy")``: a vectorised numpy function."""
    return sp.lambdify(list(args), expr, "numpy")


@functools.lru_cache(maxsize=None)
def _numpy_of(name: str) -> Callable[..., np.ndarray]:
    table: dict[str, tuple[sp.Expr, tuple[sp.Symbol, ...]]] = {
        "theta": (theta(), (x, k)),
        "slope": (slope_in_x(), (x, k)),
        "grad_G": (grad_G(), (z, k)),
        "mean_grad_G": (mean_grad_G(), (k,)),
        "second_moment_grad_G": (second_moment_grad_G_printed(), (k,)),
        "slope_second_moment": (slope_second_moment_expected(), (k,)),
    }
    expr, args = table[name]
    return to_numpy(expr, *args)


def theta_numpy(k_value: float) -> Callable[[np.ndarray], np.ndarray]:
    """theta_k (Eq. 6) as a numpy function of x, for a fixed k."""
    f = _numpy_of("theta")
    return lambda xs: f(np.asarray(xs, dtype=float), float(k_value))


def slope_numpy(k_value: float) -> Callable[[np.ndarray], np.ndarray]:
    """``d theta_k / dx`` as a numpy function of x, for a fixed k."""
    f = _numpy_of("slope")
    return lambda xs: f(np.asarray(xs, dtype=float), float(k_value))


def grad_G_numpy(k_value: float) -> Callable[[np.ndarray], np.ndarray]:
    """``G'(z)`` (Eq. 10) as a numpy function of z, for a fixed k."""
    f = _numpy_of("grad_G")
    return lambda zs: f(np.asarray(zs, dtype=float), float(k_value))


def mean_grad_G_numpy(k_values: np.ndarray) -> np.ndarray:
    """``E[G'(z)] = 1/k`` evaluated at an array of k."""
    return _numpy_of("mean_grad_G")(np.asarray(k_values, dtype=float)) * np.ones_like(k_values, dtype=float)


def second_moment_grad_G_numpy(k_values: np.ndarray) -> np.ndarray:
    """Eq. 12, ``(cosh k + 2) / (3 k sinh k)``, at an array of k."""
    return _numpy_of("second_moment_grad_G")(np.asarray(k_values, dtype=float))


def slope_second_moment_numpy(k_values: np.ndarray) -> np.ndarray:
    """``k (cosh k + 2) / (3 sinh k)`` (second moment of d theta/dx) at an array of k."""
    return _numpy_of("slope_second_moment")(np.asarray(k_values, dtype=float))


# ---------------------------------------------------------------------------
# For the worked derivations of notebook 03: identities, labelled steps, check tables
# ---------------------------------------------------------------------------
def half_angle_identities(v: sp.Expr = k) -> dict[sp.Expr, sp.Expr]:
    """``tanh(v/2) = (cosh v - 1) / sinh v`` and ``coth(v/2) = (cosh v + 1) / sinh v``.

    The last step of Eqs. 11-12: the integrals come out in ``tanh(k/2)`` and
    ``coth(k/2)``, the paper prints them in ``cosh k`` and ``sinh k``.  Returned
    as a substitution ``{half-angle form: full-angle form}`` for ``expr.subs``.
    """
    return {sp.tanh(v / 2): (sp.cosh(v) - 1) / sp.sinh(v),
            sp.coth(v / 2): (sp.cosh(v) + 1) / sp.sinh(v)}


def formula_markdown(label: str, expr: sp.Expr, lhs: str | sp.Expr | None = None) -> str:
    """One labelled step of a derivation as Markdown: the label in bold, then ``lhs = expr`` as display math.

    ``lhs`` is LaTeX (a string) or a sympy expression; without it only ``expr`` is shown.
    """
    body = sp.latex(expr)
    if lhs is not None:
        body = f"{lhs if isinstance(lhs, str) else sp.latex(lhs)} = {body}"
    return f"**{label}**\n\n$$ {body} $$"


HIDDEN_IN_TABLES = "(an exercise's answer, not shown)"
"""What :func:`checks_markdown` prints in place of an expression it is asked to hide."""


def checks_markdown(rows: Mapping[str, Check], hide: Sequence[sp.Expr] = ()) -> str:
    """``{claim: (holds, detail)}`` as a Markdown table with the full detail of every check.

    The printed forms of the expressions in ``hide`` (an exercise's answer, say)
    are replaced by :data:`HIDDEN_IN_TABLES`, so that a notebook's outputs never
    state an answer; ``|`` in a detail is escaped so that it stays in its cell.
    """
    forms = sorted({f for e in hide for f in (str(e), sp.sstr(e))}, key=len, reverse=True)
    lines = ["| claim | holds | detail |", "|---|:---:|---|"]
    for claim, (holds, detail) in rows.items():
        for form in forms:
            detail = detail.replace(form, HIDDEN_IN_TABLES)
        detail = detail.replace("|", r"\|")
        lines.append(f"| {claim} | {'yes' if holds else '**no**'} | {detail} |")
    return "\n".join(lines)
