"""Exercises of notebook 04 (the k-slider explorer): solutions pass, stubs are "not attempted", typical
mistakes fail with feedback that names what is wrong and never the expected value, hints hide the
solution, and every hidden check passes the solution and fails a mistake."""
from __future__ import annotations

import math

import pytest

from exercise_support import (assert_fails_without_revealing, assert_hidden_checks_separate, assert_hints_hide,
                              assert_not_attempted, assert_passes, load_instructor_module)
from qgait_lab.lab import checks
from qgait_lab.lab.exercises import explorer as ex
from qgait_lab.lab.exercises import exercises_of
from qgait_lab.lab.exercises.core import Wrong, choice_digest, get
from qgait_lab.lab.widgets import uniform_meaningful_fraction

SOLUTIONS = load_instructor_module("solutions", "nb04")
HIDDEN = load_instructor_module("hidden", "nb04").HIDDEN


# -- typical mistakes ---------------------------------------------------------------------------
def _r(k, t):
    return 2 * t * math.tanh(k / 2) / k


def fraction_half_width(k, t=0.1):             # forgets the factor 2: counts one side of the threshold
    r = _r(k, t)
    return 0.0 if r > 1 else min(1.0, math.acosh(1 / math.sqrt(r)) / k)


def fraction_no_cutoff(k, t=0.1):              # no case for r > 1: math.acosh raises a domain error
    return min(1.0, 2 * math.acosh(1 / math.sqrt(_r(k, t))) / k)


def fraction_no_clip(k, t=0.1):                # forgets that a share is at most 1
    r = _r(k, t)
    return 0.0 if r > 1 else 2 * math.acosh(1 / math.sqrt(r)) / k


def fraction_without_sqrt(k, t=0.1):           # inverts sech instead of sech²
    r = _r(k, t)
    return 0.0 if r > 1 else min(1.0, 2 * math.acosh(1 / r) / k)


def fraction_stub(k, t=0.1):
    raise NotImplementedError


FRACTION_SECRETS = [uniform_meaningful_fraction(k, t) for k, t in ((6.0, 0.3), (10.0, 0.1), (20.0, 0.3),
                                                                  (50.0, 0.1), (10.0, 1.0))]


def test_the_notebook_has_three_exercises_and_no_lsq_codes():
    assert [e.id for e in exercises_of("04")] == ["4.1", "4.2", "4.3"]
    assert [e.answer for e in exercises_of("04")] == ["meaningful_fraction", "k_half", "step_choice"]
    assert not hasattr(SOLUTIONS, "lsq_codes")                # moved to notebook 02
    for e in exercises_of("04"):
        assert hasattr(SOLUTIONS, e.answer) and HIDDEN.get(e.id)


# -- 4.1 ----------------------------------------------------------------------------------------
def test_meaningful_fraction():
    assert_passes(checks.check_meaningful_fraction, SOLUTIONS.meaningful_fraction)
    assert_not_attempted(checks.check_meaningful_fraction, fraction_stub)
    assert_not_attempted(checks.check_meaningful_fraction, None)
    assert_fails_without_revealing(checks.check_meaningful_fraction, fraction_half_width, FRACTION_SECRETS,
                                   mentions=["k = 2, τ = 0.1", "every input"])
    assert_fails_without_revealing(checks.check_meaningful_fraction, fraction_no_cutoff, FRACTION_SECRETS,
                                   mentions=["ValueError", "k = 1, τ = 2", "peak slope"])
    assert_fails_without_revealing(checks.check_meaningful_fraction, fraction_no_clip, FRACTION_SECRETS,
                                   mentions=["[0, 1]", "k = 1"])
    assert_fails_without_revealing(checks.check_meaningful_fraction, fraction_without_sqrt, FRACTION_SECRETS,
                                   mentions=["too large", "k = 1, τ = 1"])
    assert_fails_without_revealing(checks.check_meaningful_fraction, lambda k, t=0.1: 1.0, FRACTION_SECRETS,
                                   mentions=["no input"])
    assert_hints_hide("4.1", ["acosh(1 / math.sqrt", "2 * threshold", "min(1.0", "/ k"])


def test_meaningful_fraction_feedback_names_a_growing_share():
    def grows_with_tau(k, t=0.1):
        value = SOLUTIONS.meaningful_fraction(k, t)
        return value if value in (0.0, 1.0) else min(1.0, value * (1 + t))

    message = checks.check_meaningful_fraction(grows_with_tau).message
    assert "grows with the threshold" in message or "too large" in message


# -- 4.2 ----------------------------------------------------------------------------------------
def test_k_half():
    assert_passes(checks.check_k_half, SOLUTIONS.k_half)
    assert_passes(checks.check_k_half, round(SOLUTIONS.k_half, 2))
    assert_not_attempted(checks.check_k_half, None)
    secrets = [SOLUTIONS.k_half]
    # Round guesses, and the slider's nearest positions, fail.
    for guess, side in ((10.0, "too small"), (10.5, "too small"), (11.0, "too large")):
        assert_fails_without_revealing(checks.check_k_half, guess, secrets, mentions=[side, f"k = {guess:g}"])
    # 10.7 is the answer to three digits, so only the longer forms of the answer are secrets here.
    assert_fails_without_revealing(checks.check_k_half, 10.7, [f"{SOLUTIONS.k_half:.{d}f}" for d in (2, 3, 4)],
                                   mentions=["too small", "k = 10.7"])
    assert_fails_without_revealing(checks.check_k_half, 35.0, secrets, mentions=["outside"])
    assert "must be a number" in checks.check_k_half("ten").message
    assert_hints_hide("4.2", [f"{SOLUTIONS.k_half:.{d}f}" for d in (1, 2, 3)])


# -- 4.3 ----------------------------------------------------------------------------------------
def test_step_choice():
    assert ex._STEP == choice_digest("4.3", SOLUTIONS.step_choice)
    assert_passes(checks.check_step_slider_choice, SOLUTIONS.step_choice)
    assert_passes(checks.check_step_slider_choice, " B ")
    assert_not_attempted(checks.check_step_slider_choice, None)
    for wrong in ("a", "c", "d"):
        assert_fails_without_revealing(checks.check_step_slider_choice, wrong, [f"option '{SOLUTIONS.step_choice}'"],
                                       mentions=[f"option '{wrong}'"])
    assert "not one of the options" in checks.check_step_slider_choice("e").message
    assert_hints_hide("4.3", ["option b", "'b'", "(b)"])


# -- hidden checks -------------------------------------------------------------------------------
WRONG_FOR_HIDDEN = {"4.1": [fraction_half_width, fraction_without_sqrt], "4.2": [10.5, 11.0],
                    "4.3": ["a", "c", "d"]}


@pytest.mark.parametrize("exercise_id", sorted(HIDDEN))
def test_hidden_checks_pass_the_solution_and_fail_a_mistake(exercise_id):
    answer = getattr(SOLUTIONS, get(exercise_id).answer)
    assert_hidden_checks_separate(HIDDEN[exercise_id], answer, WRONG_FOR_HIDDEN[exercise_id])


def test_hidden_checks_catch_what_the_visible_check_misses():
    def tuned_to_the_visible_cases(k, t=0.1):      # right on the visible grid, a constant elsewhere
        if (float(k), float(t)) in ex.FRACTION_CASES:
            return SOLUTIONS.meaningful_fraction(k, t)
        return 0.5

    assert checks.check_meaningful_fraction(tuned_to_the_visible_cases).passed
    with pytest.raises(Wrong):
        HIDDEN["4.1"][0](tuned_to_the_visible_cases)

    def no_default(k, t):                          # the notebook's signature has threshold=0.1
        return SOLUTIONS.meaningful_fraction(k, t)

    assert checks.check_meaningful_fraction(no_default).passed
    with pytest.raises(Exception):
        HIDDEN["4.1"][1](no_default)
    # The chosen statement is tested on another sequence of data_samples: the true one holds there.
    assert "holds on sequence" in HIDDEN["4.3"][0](SOLUTIONS.step_choice)
    assert "does not hold on sequence" in str(pytest.raises(Wrong, HIDDEN["4.3"][0], "c").value)


# -- the explorer the exercises read (qgait_lab.lab.widgets) -----------------------------------------
@pytest.fixture(scope="module")
def probe():
    from qgait_lab.lab.widgets import FirstLayersProbe, load_sample_sequence

    frames, _ = load_sample_sequence(0)
    return FirstLayersProbe(frames, channels=(16, 32, 64, 128), n_frames=1)


def test_the_shown_channel_is_typical_and_its_picture_matches_its_numbers(probe):
    r = probe.run(4, 1.0, 3.0)
    assert r.clipped_mask is not None and r.clipped_mask.shape == r.quantized.shape
    assert r.clipped_mask.mean() == pytest.approx(r.clipped_shown)
    # The outlined pixels are exactly those at the top level of the quantizer.
    assert r.clipped_mask.any()
    assert r.quantized[r.clipped_mask] == pytest.approx(r.quantized.max())
    # A typical channel: its clipped share (frame 0 only) is close to the share over all channels.
    assert abs(r.clipped_shown - r.clipped) < 0.05
    assert probe.channel == probe.typical_channel()
    from qgait_lab.lab.widgets import FirstLayersProbe

    other = FirstLayersProbe(probe.inputs[:, 0].numpy() * 255, channels=(16, 32, 64, 128), n_frames=1, channel=3)
    assert other.channel == 3 and other.run(4, 1.0, 3.0).channel == 3


def test_explorer_figure_fits_jupyterlab_with_readable_text_and_colour_bars(probe):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    from qgait_lab.lab.widgets import explorer_figure

    for result in (probe.run(2, 0.25, 12.0), None):
        fig = explorer_figure(12.0, result, 20.0)
        width, _ = fig.get_size_inches()
        assert width <= 10.5                        # shown unscaled in a ~1,000-px output area at 100 dpi
        fig.canvas.draw()
        sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_text().strip() and t.get_visible()]
        assert sizes and min(sizes) >= 10, min(sizes)
        images = [ax for ax in fig.axes if ax.images]
        bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
        assert len(bars) == len(images) == (4 if result is not None else 0)
        for ax in fig.axes:
            if ax.lines:                            # every plot has both axes labelled
                assert ax.get_xlabel() and ax.get_ylabel(), ax.get_title()
        plt.close(fig)
