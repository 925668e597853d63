"""Notebook 01's exercises: the reference solutions pass, stubs are "not attempted", typical mistakes
fail with feedback that names the problem without the expected value, hints hide the solution, and the
hidden checks pass the solutions and fail wrong answers."""
from __future__ import annotations

import numpy as np
import pytest

from exercise_support import (assert_fails_without_revealing, assert_hints_hide, assert_not_attempted,
                              assert_passes, load_instructor_module)
from qgait_lab.lab import checks
from qgait_lab.data.gei import gei
from qgait_lab.lab.exercises import core, gait

SOL = load_instructor_module("solutions", "nb01")
HIDDEN = load_instructor_module("hidden", "nb01")


def stub(*args, **kwargs):
    raise NotImplementedError


# -- typical mistakes ----------------------------------------------------------------------------
def cut_always_ten(frames):                      # the rule for 64 only
    return frames[..., 10:-10]


def cut_to_44(frames):                           # "the network wants 44 columns"
    extra = (frames.shape[-1] - 44) // 2
    return frames[..., extra:frames.shape[-1] - extra]


def cut_negative_slice(frames):                  # frames[..., c:-c] is empty when c = 0
    c = frames.shape[-1] // 64 * 10
    return frames[..., c:-c]


def cut_and_scaled(frames):                      # does Exercise 1.2's step as well
    return SOL.cut_sides(frames) / 255.0


def cut_one_side(frames):                        # the right width, all of it from the left
    c = frames.shape[-1] // 64 * 10
    return frames[..., 2 * c:]


def gei_unscaled(frames):
    return SOL.cut_sides(frames).astype(float).mean(0)


def gei_max(frames):                             # the union of the frames, not their mean
    return SOL.cut_sides(frames).max(0) / 255.0


def gei_uncut(frames):
    return frames.mean(0) / 255.0


def gei_per_frame(frames):
    return SOL.cut_sides(frames) / 255.0


def gei_drops_last_frame(frames):                # off by one frame
    return SOL.gei_of(frames[:-1])


def bnneck_classifier_only(num_classes, parts=16, embed_dim=256):
    return parts * embed_dim * num_classes


def bnneck_with_running_stats(num_classes, parts=16, embed_dim=256):
    return 4 * parts * embed_dim + parts * embed_dim * num_classes


def bnneck_one_part(num_classes, parts=16, embed_dim=256):
    return 2 * embed_dim + embed_dim * num_classes


def rank1_every_pair(dist, probe_labels, probe_views, gallery_labels, gallery_views):
    nearest = np.argmin(dist, axis=1)            # also wrong: pools the whole gallery
    return 100.0 * float(np.mean(gallery_labels[nearest] == probe_labels))


def rank1_identical_views_kept(dist, probe_labels, probe_views, gallery_labels, gallery_views):
    per_view = []
    for pv in np.unique(probe_views):
        rows = np.flatnonzero(probe_views == pv)
        scores = []
        for gv in np.unique(gallery_views):
            cols = np.flatnonzero(gallery_views == gv)
            nearest = cols[np.argmin(dist[np.ix_(rows, cols)], axis=1)]
            scores.append(100.0 * np.mean(gallery_labels[nearest] == probe_labels[rows]))
        per_view.append(np.mean(scores))
    return float(np.mean(per_view))


def rank1_argmax(dist, probe_labels, probe_views, gallery_labels, gallery_views):
    return SOL.casia_b_rank1(-dist, probe_labels, probe_views, gallery_labels, gallery_views)


def rank1_fraction(*args):
    return SOL.casia_b_rank1(*args) / 100.0


def rank1_mean_over_pairs(dist, probe_labels, probe_views, gallery_labels, gallery_views):
    scores = []                                  # one flat mean: right only when every view has a gallery
    for pv in np.unique(probe_views):
        rows = np.flatnonzero(probe_views == pv)
        for gv in np.unique(gallery_views):
            if gv == pv:
                continue
            cols = np.flatnonzero(gallery_views == gv)
            nearest = cols[np.argmin(dist[np.ix_(rows, cols)], axis=1)]
            scores.append(100.0 * np.mean(gallery_labels[nearest] == probe_labels[rows]))
    return float(np.mean(scores))


# -- every exercise: solution, stub, mistakes, hints ----------------------------------------------
CHECKERS = {"1.1": checks.check_cut_sides, "1.2": checks.check_gei, "1.3": checks.check_bnneck_parameters,
            "1.4": checks.check_casia_b_rank1, "1.5": checks.check_floor_reading}


@pytest.mark.parametrize("exercise_id", sorted(CHECKERS))
def test_solution_passes_and_stub_is_not_attempted(exercise_id):
    checker = CHECKERS[exercise_id]
    ex = core.get(exercise_id)
    assert ex.notebook == "01_gait_recognition" and ex.checker is checker
    assert_passes(checker, getattr(SOL, ex.answer))
    assert_not_attempted(checker, None)
    if exercise_id != "1.5":
        assert_not_attempted(checker, stub)


def test_cut_mistakes():
    # The widths the solution keeps (44 and 68 columns) and the counts it cuts never appear.
    secrets = ["keep 44", "keeps 44", "keep 68", "keeps 68", "cut 0 columns", "cut 10 columns", "per side"]
    assert_fails_without_revealing(checks.check_cut_sides, cut_always_ten, secrets, ["(2, 64, 44)", "too many"])
    assert_fails_without_revealing(checks.check_cut_sides, cut_to_44, secrets, ["(2, 64, 88)", "too many"])
    text = assert_fails_without_revealing(checks.check_cut_sides, cut_negative_slice, secrets, ["(2, 64, 44)"])
    assert "you cut 44 columns in all" in text
    assert_fails_without_revealing(checks.check_cut_sides, cut_and_scaled, secrets, ["scaled", "255"])
    assert_fails_without_revealing(checks.check_cut_sides, cut_one_side, secrets, ["left", "right"])


def _gei_secrets(wrong) -> list[float]:
    """The reference GEI values where the wrong answer is wrong (the first few), as numbers."""
    secrets = []
    for _, sils in gait.gei_cases():
        want = gei(sils, downsample=False)
        got = np.asarray(wrong(sils), dtype=float)
        if got.shape == want.shape:
            bad = np.flatnonzero(np.abs(got - want).ravel() > 1e-5)[:3]
            secrets += [float(want.ravel()[i]) for i in bad if 0 < want.ravel()[i] < 1]
    return secrets


def test_gei_mistakes():
    for wrong, mentions in [(gei_unscaled, ["exceed 1", "255"]), (gei_max, ["only the values 0 and 1"]),
                            (gei_uncut, ["stored width", "Exercise 1.1"]), (gei_per_frame, ["per frame"]),
                            (gei_drops_last_frame, ["row", "column", "too"])]:
        assert_fails_without_revealing(checks.check_gei, wrong, _gei_secrets(wrong), mentions)


def test_bnneck_mistakes():
    want_74 = gait.bnneck_parameter_count(74, 16, 256)
    want_3000 = gait.bnneck_parameter_count(3000, 16, 256)
    assert want_74 == 7_305_408 - 6_994_112      # OpenGait's counts with and without K (ARCHITECTURE.md §4)
    secrets = [want_74, want_3000, f"{want_74:,}", f"{want_3000:,}"]
    assert_fails_without_revealing(checks.check_bnneck_parameters, bnneck_classifier_only, secrets,
                                   ["num_classes=74", "weight and bias"])
    assert_fails_without_revealing(checks.check_bnneck_parameters, bnneck_with_running_stats, secrets,
                                   ["running mean", "buffers"])
    assert_fails_without_revealing(checks.check_bnneck_parameters, bnneck_one_part, secrets,
                                   ["num_classes=74", "too small"])
    assert_fails_without_revealing(checks.check_bnneck_parameters, lambda c, parts=16, embed_dim=256: 0.5 + c,
                                   secrets, ["whole number"])


def test_rank1_cases_tell_every_mistake_apart():
    for name in gait._MISTAKE_FEEDBACK:
        assert any(abs(c["mistakes"][name] - c["want"]) > 1e-6 for c in gait.rank1_cases()), name
    assert all(min(c["want"] % 5, 5 - c["want"] % 5) > 0.05 for c in gait.rank1_cases())   # no round values


def test_rank1_mistakes():
    secrets = [c["want"] for c in gait.rank1_cases()]
    assert_fails_without_revealing(checks.check_casia_b_rank1, rank1_identical_views_kept, secrets,
                                   ["case 1", "probe view equals the gallery view"])
    assert_fails_without_revealing(checks.check_casia_b_rank1, rank1_every_pair, secrets,
                                   ["case 1", "whole gallery"])
    assert_fails_without_revealing(checks.check_casia_b_rank1, rank1_argmax, secrets, ["largest distance"])
    assert_fails_without_revealing(checks.check_casia_b_rank1, rank1_fraction, secrets, ["percent"])
    assert_fails_without_revealing(checks.check_casia_b_rank1, lambda *a: 50.0, secrets, ["case 1", "too low"])


def test_floor_reading_mistakes():
    secrets = ["'b'", "(b)", "option b"]
    for wrong in ("a", "c", "d"):
        assert_fails_without_revealing(checks.check_floor_reading, wrong, secrets, [f"'{wrong}'", "not the right"])
    assert_fails_without_revealing(checks.check_floor_reading, "e", ["option b"], ["not one of the options"])
    assert gait.FLOOR_DIGEST == core.choice_digest("1.5", SOL.floor_reading)


def test_hints_hide_the_solutions():
    assert_hints_hide("1.1", ["int(width / 64) * 10", "// 64 * 10", "width / 64", "[..., cut:width - cut]"])
    assert_hints_hide("1.2", ["mean(axis=0)", ".mean(0)", "/ 255.0", "astype(np.float64) / 255"])
    assert_hints_hide("1.3", ["2 * parts * embed_dim", "parts * embed_dim * num_classes", "8192", "311296",
                              "311,296"])
    assert_hints_hide("1.4", ["cols[np.argmin(", "dist[np.ix_(rows, cols)]", "per_probe_view.append"])
    assert_hints_hide("1.5", ["'b'", "(b)", "option b", "floor_reading = "])


# -- hidden checks ----------------------------------------------------------------------------------
WRONG_FOR_HIDDEN = {"1.1": cut_always_ten, "1.2": gei_unscaled, "1.3": bnneck_with_running_stats,
                    "1.4": rank1_mean_over_pairs, "1.5": "a"}


def test_every_exercise_has_a_hidden_check():
    assert set(HIDDEN.HIDDEN) == set(CHECKERS)
    assert all(len(fns) >= 1 for fns in HIDDEN.HIDDEN.values())


@pytest.mark.parametrize("exercise_id", sorted(CHECKERS))
def test_hidden_checks_pass_the_solution_and_fail_a_mistake(exercise_id):
    answer = getattr(SOL, core.get(exercise_id).answer)
    for fn in HIDDEN.HIDDEN[exercise_id]:
        assert isinstance(fn(answer), str)
        with pytest.raises(core.Wrong):
            fn(WRONG_FOR_HIDDEN[exercise_id])


def test_hidden_checks_catch_what_the_visible_checker_lets_through():
    """The flat mean over view pairs passes the notebook's test sets; the uneven hidden ones catch it."""
    assert checks.check_casia_b_rank1(rank1_mean_over_pairs).passed
    with pytest.raises(core.Wrong):
        HIDDEN.rank1_uneven_test_sets(rank1_mean_over_pairs)
