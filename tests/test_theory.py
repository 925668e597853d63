"""The paper's equations as sympy expressions (qgait_lab.lab.theory).

Every check is run twice: on the correct claim (must hold) and on a
deliberately wrong variant (must fail), so that a check that always says
True cannot pass unnoticed.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import sympy as sp

from qgait_lab.lab import theory as th
from qgait_lab.lab.theory import k


# ---------------------------------------------------------------------------
# Eqs. 10-12
# ---------------------------------------------------------------------------
def test_eq10_derivative_of_G():
    assert th.verify_eq10()[0]
    assert not th.verify_eq10(sp.coth(k / 2) * sp.sech(th.z) ** 2)[0]      # factor 1/2 dropped


def test_eq11_mean_slope_of_G_is_one_over_k():
    assert th.mean_grad_G() == 1 / k
    assert th.verify_mean_grad_G(1 / k)[0]
    assert not th.verify_mean_grad_G(1 / k ** 2)[0]                      # the square is Eq. 11's E^2
    assert th.verify_eq11()[0]                                          # E^2 = 1/k^2 as printed
    assert not th.verify_eq11(1 / k)[0]


def test_eq12_second_moment_of_G():
    holds, detail = th.verify_eq12()
    assert holds, detail
    assert "Monte Carlo" in detail and "sympy: equal" in detail
    assert not th.verify_eq12((sp.cosh(k) + 1) / (3 * k * sp.sinh(k)))[0]


def test_definite_integral_refuses_a_wrong_antiderivative():
    with pytest.raises(ValueError, match="not an antiderivative"):
        th.definite_integral(sp.sech(th.x) ** 4, th.x, 0, 1, th.sech4_antiderivative_printed())


# ---------------------------------------------------------------------------
# chain rule: slope with respect to x
# ---------------------------------------------------------------------------
def test_chain_rule_factor_k():
    assert th.verify_chain_rule()[0]
    assert th.symbolically_zero(th.slope() - k * th.grad_G().subs(th.z, k * th.d))
    assert not th.symbolically_zero(th.slope() - th.grad_G().subs(th.z, k * th.d))


def test_mean_slope_over_a_unit_interval_is_one():
    assert th.slope_mean() == 1
    assert th.verify_slope_mean()[0]
    assert not th.verify_slope_mean(1 / k)[0]                # the z-space mean is not the x-space one


def test_second_moment_of_slope_is_k_squared_times_eq12():
    assert th.verify_slope_second_moment()[0]
    assert th.symbolically_zero(th.slope_second_moment_expected() - k ** 2 * th.second_moment_grad_G_printed())
    assert not th.verify_slope_second_moment(th.second_moment_grad_G_printed())[0]   # k^2 forgotten


def test_slope_asymptotics_and_variance():
    holds, detail = th.verify_slope_asymptotics()
    assert holds, detail
    assert th.verify_slope_variance_nonnegative()[0]
    large = th.slope_second_moment_numpy(np.array([50.0, 100.0]))
    np.testing.assert_allclose(large / np.array([50.0, 100.0]), 1 / 3, rtol=1e-12)


# ---------------------------------------------------------------------------
# Appendix A.1
# ---------------------------------------------------------------------------
def test_antiderivatives_by_differentiation():
    x = th.x
    assert th.verify_antiderivative(th.sech2_antiderivative(), sp.sech(x) ** 2)[0]
    assert th.verify_antiderivative(th.sech4_antiderivative(), sp.sech(x) ** 4)[0]
    assert th.verify_antiderivative(th.sech4_antiderivative_corrected(), sp.sech(x) ** 4)[0]
    assert th.verify_antiderivative(th.sech4_antiderivative_first_line(), sp.sech(x) ** 4)[0]
    assert not th.verify_antiderivative(th.sech4_antiderivative_printed(), sp.sech(x) ** 4)[0]


def test_reduction_formula():
    assert th.verify_reduction_formula(th.sech_reduction_term())[0]
    assert not th.verify_reduction_formula(th.sech_reduction_term_printed())[0]
    assert th.verify_reduction_formula(th.sech_reduction_term(4), 4)[0]
    assert not th.verify_reduction_formula(th.sech_reduction_term(4), 6)[0]


def test_appendix_errata_table():
    rows = {r.equation: r for r in th.appendix_errata()}
    wrong = {name for name, r in rows.items() if not r.holds}
    assert wrong == {"Eq. 18", "Eq. 19, line 2"}
    for name in wrong:
        assert rows[name].correction_holds is True
        assert rows[name].correct_form != rows[name].as_printed
        assert "wrong as printed" in rows[name].verdict
    assert "sech^2(x)/3" in rows["Eq. 19, line 2"].correct_form
    table = th.errata_markdown()
    assert table.count("\n") == len(rows) + 1


def test_main_text_checks_all_hold():
    rows = th.main_text_checks()
    assert all(r.holds for r in rows), [r for r in rows if not r.holds]
    eq11 = next(r for r in rows if r.equation == "Eq. 11")
    assert "strict only for k > 1" in eq11.verdict


# ---------------------------------------------------------------------------
# DSQ
# ---------------------------------------------------------------------------
def test_dsq_equals_theta_on_unit_step():
    assert th.verify_dsq_equals_theta()[0]
    assert not th.verify_dsq_equals_theta(cell_shift=sp.Integer(1))[0]
    assert th.verify_dsq_general_step()[0]


def test_dsq_alpha():
    assert th.verify_dsq_alpha()[0]
    assert not th.verify_dsq_alpha(sp.tanh(k / 2))[0]
    assert not th.verify_dsq_alpha(1 - sp.tanh(k))[0]


# ---------------------------------------------------------------------------
# numpy functions
# ---------------------------------------------------------------------------
def test_theta_numpy_basic_properties():
    xs = np.linspace(-3.0, 3.0, 601)
    theta = th.theta_numpy(3.0)(xs)
    integers = np.arange(-3.0, 4.0)
    np.testing.assert_allclose(th.theta_numpy(3.0)(integers), integers, atol=1e-12)
    assert np.all(np.diff(theta) > 0)
    far_from_midpoints = xs[np.abs(xs - np.floor(xs) - 0.5) > 0.3]   # theta_k -> round there
    np.testing.assert_allclose(th.theta_numpy(60.0)(far_from_midpoints), np.round(far_from_midpoints), atol=1e-6)


def test_slope_numpy_matches_finite_differences_and_averages_to_one():
    kv, h = 4.0, 1e-6
    xs = np.linspace(-1.9, 1.9, 77) + 0.013    # off the integers, where theta'' jumps
    theta = th.theta_numpy(kv)
    numeric = (theta(xs + h) - theta(xs - h)) / (2 * h)
    np.testing.assert_allclose(th.slope_numpy(kv)(xs), numeric, rtol=1e-6)
    grid = (np.arange(20000) + 0.5) / 20000                # midpoint rule on [0, 1)
    assert np.mean(th.slope_numpy(kv)(grid)) == pytest.approx(1.0, abs=1e-8)


def test_moment_numpy_functions():
    ks = np.array([1.0, 2.0, 5.0])
    np.testing.assert_allclose(th.mean_grad_G_numpy(ks), 1 / ks)
    np.testing.assert_allclose(th.second_moment_grad_G_numpy(ks), (np.cosh(ks) + 2) / (3 * ks * np.sinh(ks)))
    np.testing.assert_allclose(th.slope_second_moment_numpy(ks), ks ** 2 * th.second_moment_grad_G_numpy(ks))
    zs = np.linspace(-1.0, 1.0, 5)
    np.testing.assert_allclose(th.grad_G_numpy(2.0)(zs), 0.5 / np.tanh(1.0) / np.cosh(zs) ** 2)


_HAS_FUNCTIONAL = importlib.util.find_spec("qgait_lab.quant.functional") is not None


@pytest.mark.skipif(not _HAS_FUNCTIONAL, reason="qgait_lab.quant.functional (torch soft_round) not present yet")
def test_numpy_expressions_match_torch_soft_round():
    import torch

    from qgait_lab.quant.functional import soft_round, soft_round_slope

    xs = np.linspace(-2.7, 3.3, 241)
    xt = torch.tensor(xs, dtype=torch.float64)
    for kv in (1.0, 2.5, 7.0):
        np.testing.assert_allclose(soft_round(xt, kv).numpy(), th.theta_numpy(kv)(xs), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(soft_round_slope(xt, kv).numpy(), th.slope_numpy(kv)(xs), rtol=1e-12)


# ---------------------------------------------------------------------------
# Helpers of notebook 03's worked derivations
# ---------------------------------------------------------------------------
def test_half_angle_identities_hold_and_turn_eq12_into_the_printed_form():
    identities = th.half_angle_identities()
    assert set(identities) == {sp.tanh(k / 2), sp.coth(k / 2)}
    for half, full in identities.items():
        assert th.compare(half, full, {k: (0.3, 1.0, 2.5, 7.0)})[0]
    assert not th.compare(sp.tanh(k / 2), (sp.cosh(k) + 1) / sp.sinh(k), {k: (0.3, 1.0)})[0]   # swapped
    # Eq. 12 after the bounds, (coth(k/2) - tanh(k/2)/3) / (2k), becomes the printed form.
    mean = (sp.coth(k / 2) - sp.tanh(k / 2) / 3) / (2 * k)
    assert sp.together(mean.subs(identities)) == th.second_moment_grad_G_printed()


def test_formula_markdown_labels_the_formula():
    text = th.formula_markdown("Eq. 10 as printed", th.grad_G_printed(), r"\nabla G(z)")
    assert text.startswith("**Eq. 10 as printed**") and r"\nabla G(z) = " in text
    assert sp.latex(th.grad_G_printed()) in text and text.count("$$") == 2
    assert "=" not in th.formula_markdown("only the expression", th.G()).split("$$")[1]


def test_checks_markdown_keeps_every_detail_and_hides_what_it_is_told():
    rows = {"Eq. 12": th.verify_eq12(), "second moment in x": th.verify_slope_second_moment(),
            "a refuted claim": th.verify_eq12(1 / k)}
    table = th.checks_markdown(rows)
    lines = table.splitlines()
    assert len(lines) == 2 + len(rows) and all(line.count(" | ") >= 2 for line in lines[2:])
    assert rows["Eq. 12"][1].replace("|", r"\|") in table                 # the whole detail, not cut
    assert "| a refuted claim | **no** |" in table
    answer = th.slope_second_moment_expected()
    assert str(answer) in table
    hidden = th.checks_markdown(rows, hide=[answer, th.slope_second_moment()])
    assert str(answer) not in hidden and str(th.slope_second_moment()) not in hidden
    assert th.HIDDEN_IN_TABLES in hidden
    piped = th.checks_markdown({"x": (True, "a | b")})
    assert r"a \| b" in piped
