"""Exercises of notebook 07 (IDD and t-SNE): the solutions pass, stubs are "not attempted", typical
mistakes fail with feedback that names what is wrong and hides the answer, hints hide the solution, and
every hidden check passes the solution and fails a mistake."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from exercise_support import (assert_fails_without_revealing, assert_hints_hide, assert_not_attempted,
                              assert_passes, load_instructor_module, text_of)
from qgait_lab.lab import checks
from qgait_lab.lab.exercises import idd
from qgait_lab.lab.exercises.core import choice_digest

SOL = load_instructor_module("solutions", "nb07")
HIDDEN = load_instructor_module("hidden", "nb07").HIDDEN

MASK_CODE = ["labels[:, None] != labels[None, :]", "unsqueeze(1) !=", "unsqueeze(0) !=", "!= labels"]
LOSS_CODE = ["masked_fill(~", "log_softmax((-", "-d_student / tau", "masked_fill(~other, 0.0)"]


def stub(*args, **kwargs):
    raise NotImplementedError


# -- typical mistakes ----------------------------------------------------------------------------------
def mask_same_label(labels):                      # the comparison the wrong way round
    return labels.unsqueeze(1) == labels.unsqueeze(0)


def mask_only_self(labels):                       # drops the anchor itself but keeps the positives
    return ~torch.eye(len(labels), dtype=torch.bool)


def mask_as_integers(labels):                     # right pairs, but 0/1 integers
    return (labels.unsqueeze(1) != labels.unsqueeze(0)).long()


def mask_transposed_shape(labels):                # [n] instead of [n, n]
    return labels != labels[0]


def _log_q(d, other, tau):
    return F.log_softmax((-d / tau).masked_fill(~other, float("-inf")), dim=-1)


def loss_without_mask(d_s, d_t, labels, tau=1.0):           # every pair enters the softmax
    log_s, log_t = F.log_softmax(-d_s / tau, dim=-1), F.log_softmax(-d_t.detach() / tau, dim=-1)
    return (log_t.exp() * (log_t - log_s)).sum(-1).mean()


def loss_nan_on_masked(d_s, d_t, labels, tau=1.0):          # -inf - (-inf) left in the sum
    other = labels.unsqueeze(1) != labels.unsqueeze(0)
    log_s, log_t = _log_q(d_s, other, tau), _log_q(d_t.detach(), other, tau)
    return (log_t.exp() * (log_t - log_s)).sum(-1).mean()


def loss_reversed(d_s, d_t, labels, tau=1.0):               # KL(student || teacher)
    other = labels.unsqueeze(1) != labels.unsqueeze(0)
    log_s, log_t = _log_q(d_s, other, tau), _log_q(d_t.detach(), other, tau)
    ratio = log_s.masked_fill(~other, 0.0) - log_t.masked_fill(~other, 0.0)
    return (log_s.exp() * ratio).sum(-1).mean()


def loss_unnormalised(d_s, d_t, labels, tau=1.0):           # q = exp(-d / tau), no softmax
    other = labels.unsqueeze(1) != labels.unsqueeze(0)
    q_s = torch.where(other, torch.exp(-d_s / tau), torch.zeros_like(d_s))
    q_t = torch.where(other, torch.exp(-d_t.detach() / tau), torch.zeros_like(d_t))
    ratio = torch.where(other, torch.log(q_t.clamp_min(1e-300)) - torch.log(q_s.clamp_min(1e-300)), 0 * d_s)
    return (q_t * ratio).sum(-1).mean()


def loss_ignores_tau(d_s, d_t, labels, tau=1.0):
    return SOL.idd_from_distances(d_s, d_t, labels, 1.0)


def loss_summed(d_s, d_t, labels, tau=1.0):
    return SOL.idd_from_distances(d_s, d_t, labels, tau) * len(labels)


def loss_teacher_not_detached(d_s, d_t, labels, tau=1.0):
    other = labels.unsqueeze(1) != labels.unsqueeze(0)
    log_s, log_t = _log_q(d_s, other, tau), _log_q(d_t, other, tau)
    ratio = log_t.masked_fill(~other, 0.0) - log_s.masked_fill(~other, 0.0)
    return (log_t.exp() * ratio).sum(-1).mean()


def loss_as_float(d_s, d_t, labels, tau=1.0):
    return float(SOL.idd_from_distances(d_s, d_t, labels, tau).detach())


def loss_positive_distance(d_s, d_t, labels, tau=1.0):      # softmax of +d / tau
    return SOL.idd_from_distances(-d_s, -d_t, labels, tau)


def _visible_losses() -> list[float]:
    values = []
    for seed, labels in enumerate(idd.LABEL_CASES):
        labels = torch.tensor(labels)
        d_s, d_t = idd.distance_pair(len(labels), seed)
        values += [idd.reference_loss(d_s, d_t, labels, tau) for tau in (1.0, 0.3)]
    return [v for v in values if abs(v) > 1e-6]


# -- 7.1 ------------------------------------------------------------------------------------------------
def test_7_1_solution_passes_and_stub_is_not_attempted():
    assert_passes(checks.check_idd_mask, SOL.idd_mask)
    assert_not_attempted(checks.check_idd_mask, stub)
    assert_not_attempted(checks.check_idd_mask, None)


@pytest.mark.parametrize("wrong, mentions", [
    (mask_same_label, ["(0, 0)", "itself"]),
    (mask_only_self, ["share the label", "different identities"]),
    (mask_as_integers, ["boolean", "int64"]),
    (mask_transposed_shape, ["shape", "[6, 6]"]),
])
def test_7_1_mistakes_are_named_without_the_solution(wrong, mentions):
    assert_fails_without_revealing(checks.check_idd_mask, wrong, secrets=MASK_CODE, mentions=mentions)


def test_7_1_a_mask_that_drops_a_different_label_pair_is_told_which():
    def drops_one(labels):
        mask = SOL.idd_mask(labels)
        mask[0, -1] = False
        return mask

    text = assert_fails_without_revealing(checks.check_idd_mask, drops_one, secrets=MASK_CODE,
                                          mentions=["is False", "different labels", "keeps this pair"])
    assert "(0, 5)" in text


def test_7_1_hints_do_not_give_the_code():
    assert_hints_hide("7.1", MASK_CODE + ["unsqueeze", "[:, None]", "None]"])


# -- 7.2 ------------------------------------------------------------------------------------------------
def test_7_2_solution_passes_and_stub_is_not_attempted():
    assert_passes(checks.check_idd_loss, SOL.idd_from_distances)
    assert_not_attempted(checks.check_idd_loss, stub)
    assert_not_attempted(checks.check_idd_loss, None)


@pytest.mark.parametrize("wrong, mentions", [
    (loss_without_mask, ["same-label pair changes your loss"]),
    (loss_nan_on_masked, ["NaN", "contribution of exactly 0"]),
    (loss_unnormalised, ["rows of your q do not sum to 1"]),
    (loss_reversed, ["KL(q_student || q_teacher)"]),
    (loss_ignores_tau, ["does not change with tau", "tau = 0.3"]),
    (loss_summed, ["sum over the anchors"]),
    (loss_teacher_not_detached, ["gradient flows into d_teacher"]),
    (loss_as_float, ["no gradient"]),
    (loss_positive_distance, ["farthest sample"]),
])
def test_7_2_mistakes_name_the_property_without_the_value(wrong, mentions):
    assert_fails_without_revealing(checks.check_idd_loss, wrong, secrets=_visible_losses() + LOSS_CODE,
                                   mentions=mentions)


def test_7_2_a_mean_normalised_loss_is_told_to_use_raw_distances():
    from qgait_lab.losses import idd_loss_from_distances

    def library_default(d_s, d_t, labels, tau=1.0):
        return idd_loss_from_distances(d_s[None], d_t[None], labels, tau=tau)      # normalize="mean"

    assert_fails_without_revealing(checks.check_idd_loss, library_default, secrets=_visible_losses(),
                                   mentions=["raw distances"])


def test_7_2_code_that_raises_is_reported_with_its_line():
    def broken(d_s, d_t, labels, tau=1.0):
        return d_s.no_such_method()

    result = checks.check_idd_loss(broken)
    assert result.status == "failed" and "AttributeError" in result.message and "line" in result.message


def test_7_2_hints_do_not_give_the_code():
    assert_hints_hide("7.2", LOSS_CODE)


# -- 7.3, 7.4 (choices) ---------------------------------------------------------------------------------
@pytest.mark.parametrize("exercise, checker, answer", [
    ("7.3", checks.check_kd_spread_choice, SOL.kd_spread_choice),
    ("7.4", checks.check_idd_normalize_choice, SOL.idd_normalize_choice),
])
def test_choices_grade_the_right_option_only(exercise, checker, answer):
    assert_passes(checker, answer)
    assert_passes(checker, f" {answer.upper()} ")
    assert_not_attempted(checker, None)
    wrong = [o for o in "abcd" if o != answer]
    for option in wrong:
        text = assert_fails_without_revealing(checker, option, secrets=[f"option {answer!r}"],
                                              mentions=[f"option {option!r} is not the right one"])
        assert "expected" not in text.lower()
    assert_fails_without_revealing(checker, "e", mentions=["not one of the options"])
    assert_fails_without_revealing(checker, 2, mentions=["letters"])
    assert_hints_hide(exercise, [f"'{answer}'", f'"{answer}"', f"option {answer}"])


def test_choices_are_stored_as_digests_only():
    from pathlib import Path

    source = Path(idd.__file__).read_text()
    assert idd._KD_SPREAD == choice_digest("7.3", SOL.kd_spread_choice)
    assert idd._NORMALIZE == choice_digest("7.4", SOL.idd_normalize_choice)
    assert "kd_spread_choice = " not in source and "idd_normalize_choice = " not in source


# -- hidden checks --------------------------------------------------------------------------------------
WRONG_FOR_HIDDEN = {
    "7.1": [mask_only_self, mask_same_label],
    "7.2": [loss_without_mask, loss_summed],
    "7.3": ["a"],
    "7.4": ["b"],
}


def _naive_exp_loss(d_s, d_t, labels, tau=1.0):         # right formula, but exp() underflows at small tau
    other = labels.unsqueeze(1) != labels.unsqueeze(0)
    e_s = torch.exp(-d_s / tau) * other
    e_t = torch.exp(-d_t.detach() / tau) * other
    q_s, q_t = e_s / e_s.sum(-1, keepdim=True), e_t / e_t.sum(-1, keepdim=True)
    one = torch.ones_like(q_s)
    ratio = torch.log(torch.where(other, q_t, one)) - torch.log(torch.where(other, q_s, one))
    return (q_t * ratio).sum(-1).mean()


@pytest.mark.parametrize("exercise", sorted(WRONG_FOR_HIDDEN))
def test_hidden_checks_pass_the_solution_and_fail_a_mistake(exercise):
    from qgait_lab.lab.exercises.core import Wrong

    answer = {"7.1": SOL.idd_mask, "7.2": SOL.idd_from_distances, "7.3": SOL.kd_spread_choice,
              "7.4": SOL.idd_normalize_choice}[exercise]
    assert HIDDEN[exercise], f"Exercise {exercise} has no hidden check"
    for check in HIDDEN[exercise]:
        assert isinstance(check(answer), str)
        failed = 0
        for wrong in WRONG_FOR_HIDDEN[exercise]:
            try:
                check(wrong)
            except Wrong:
                failed += 1
        assert failed, f"hidden check {check.__name__} accepts every mistake"


def test_hidden_stability_check_catches_a_naive_softmax():
    from qgait_lab.lab.exercises.core import Wrong

    assert checks.check_idd_loss(_naive_exp_loss).passed      # fine on the visible cases
    with pytest.raises(Wrong, match="NaN|too"):
        HIDDEN["7.2"][0](_naive_exp_loss)


def test_hidden_edge_cases_catch_a_mask_that_forgets_single_samples():
    from qgait_lab.lab.exercises.core import Wrong

    def loops_from_one(labels):                       # a loop that skips the first sample
        n = len(labels)
        mask = torch.zeros(n, n, dtype=torch.bool)
        for r in range(1, n):
            for s in range(1, n):
                mask[r, s] = bool(labels[r] != labels[s])
        return mask

    with pytest.raises(Wrong):
        HIDDEN["7.1"][0](loops_from_one)
    assert "entry (0," in text_of(checks.check_idd_mask(loops_from_one))


def test_7_2_a_loss_right_on_the_plain_case_does_not_see_its_value_in_the_feedback():
    def right_until_poisoned(d_s, d_t, labels, tau=1.0):      # reads same-label entries, but only when tiny
        same = (labels.unsqueeze(1) == labels.unsqueeze(0)) & ~torch.eye(len(labels), dtype=torch.bool)
        return SOL.idd_from_distances(d_s, d_t, labels, tau) + (d_s[same] < 0.1).any().double()

    text = assert_fails_without_revealing(checks.check_idd_loss, right_until_poisoned,
                                          secrets=_visible_losses(), mentions=["same-label pair"])
    assert "changed it to" in text
