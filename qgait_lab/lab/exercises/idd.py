"""Exercises of notebook 07 (distillation: KD against IDD, logit variance, t-SNE).

* 7.1 IDD's mask: the pairs (r, s) that Eq. 14 keeps;
* 7.2 the IDD loss (Eqs. 14-15) from two distance matrices;
* 7.3 why vanilla KD ties the student's logit spread to the teacher's (a choice);
* 7.4 why :class:`qgait_lab.losses.IDDLoss` normalises the distances (a choice).

The loss checker first tests the properties Eqs. 14-15 imply (a scalar, a
gradient for the student and none for the teacher, zero for identical models,
no influence of same-label pairs, rows of q that are distributions) and only
then compares values with :func:`qgait_lab.losses.idd_loss_from_distances`,
so that a wrong answer is told which property it breaks.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch

from .core import Wrong, call, check_choice, exercise, fmt

NOTEBOOK = "07_idd_tsne"

LABEL_CASES: tuple[tuple[int, ...], ...] = ((0, 0, 1, 1, 2, 2), (3, 1, 3, 2, 1, 1, 0), (5, 5, 5, 7), (0, 1))
"""The label sets of the visible checks: sorted and unsorted, unequal group sizes, two samples."""


# ---------------------------------------------------------------------------
# 7.1 IDD's mask
# ---------------------------------------------------------------------------
def as_mask(value: Any, labels: torch.Tensor) -> torch.Tensor:
    """The student's mask as a tensor, or :class:`Wrong` about its type, shape or dtype."""
    n = len(labels)
    if value is None:
        raise Wrong("idd_mask returned None: did you forget the return statement?")
    try:
        mask = torch.as_tensor(value)
    except Exception:  # noqa: BLE001 - anything that is not array-like
        raise Wrong(f"idd_mask returned a {type(value).__name__}, not a tensor") from None
    if tuple(mask.shape) != (n, n):
        raise Wrong(f"for {n} labels the mask must have one entry per pair (r, s), shape [{n}, {n}]; "
                    f"yours has shape {list(mask.shape)}")
    if mask.dtype != torch.bool:
        raise Wrong(f"the mask must be boolean (True = the pair enters Eq. 14), but its dtype is {mask.dtype}; "
                    "masked_fill and ~ need a bool tensor")
    return mask


def compare_mask(mask: torch.Tensor, labels: torch.Tensor) -> None:
    """Raise :class:`Wrong` naming the first pair (r, s) whose entry breaks Eq. 14's rule."""
    shown = labels.tolist()
    for r in range(len(labels)):
        if bool(mask[r, r]):
            raise Wrong(f"labels {shown}: entry ({r}, {r}) is True, but an anchor paired with itself has the "
                        "same label as itself, so Eq. 14 leaves it out")
    for r in range(len(labels)):
        for s in range(len(labels)):
            same = bool(labels[r] == labels[s])
            if r != s and same and bool(mask[r, s]):
                raise Wrong(f"labels {shown}: entry ({r}, {s}) is True, but samples {r} and {s} share the label "
                            f"{shown[r]}; Eq. 14 keeps only pairs of different identities")
            if not same and not bool(mask[r, s]):
                raise Wrong(f"labels {shown}: entry ({r}, {s}) is False, but samples {r} and {s} have different "
                            f"labels ({shown[r]} and {shown[s]}); Eq. 14 keeps this pair")


def mask_on(idd_mask: Callable, labels: torch.Tensor) -> None:
    """Run the student's ``idd_mask`` on ``labels`` and check the result (raises :class:`Wrong`)."""
    given = labels.clone()
    mask = as_mask(call(idd_mask, given), labels)
    if not torch.equal(given, labels):
        raise Wrong(f"idd_mask changed its input labels {labels.tolist()} in place; leave them as they are")
    compare_mask(mask, labels)


@exercise("7.1", NOTEBOOK, "IDD's mask", answer="idd_mask", hints=(
    "Eq. 14 asks one yes/no question per pair (r, s): do the labels of r and s differ? The answer for n "
    "labels is an [n, n] table of True/False.",
    "You do not need a loop: compare a column copy of the labels (shape [n, 1]) with a row copy (shape "
    "[1, n]); broadcasting turns the comparison into an [n, n] boolean tensor.",
    "Check your comparison on the diagonal: r = s always has equal labels, so a correct mask is False there "
    "without any extra code. If your diagonal or your same-label blocks come out True, the comparison is "
    "the wrong way round.",
))
def check_idd_mask(idd_mask: Callable) -> str:
    """``idd_mask(labels)``: the boolean [n, n] mask of the pairs that enter Eq. 14."""
    for values in LABEL_CASES:
        mask_on(idd_mask, torch.tensor(values))
    return (f"your mask keeps exactly the different-label pairs for {len(LABEL_CASES)} label sets "
            "(sorted and unsorted labels, groups of unequal size, two samples)")


# ---------------------------------------------------------------------------
# 7.2 The IDD loss from distances (Eqs. 14-15)
# ---------------------------------------------------------------------------
def distance_pair(n: int, seed: int, dtype: torch.dtype = torch.float64, dim: int = 8,
                  student_scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Student and teacher [n, n] Euclidean distance matrices of random embeddings."""
    gen = torch.Generator().manual_seed(seed)
    xs = torch.randn(n, dim, generator=gen, dtype=torch.float64) * student_scale
    xt = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    return torch.cdist(xs, xs).to(dtype), torch.cdist(xt, xt).to(dtype)


def reference_loss(d_student: torch.Tensor, d_teacher: torch.Tensor, labels: torch.Tensor, tau: float,
                   normalize: str = "temperature") -> float:
    """The library's Eqs. 14-15; ``normalize="temperature"`` uses the raw distances, as the exercise does."""
    from ...losses import idd_loss_from_distances

    with torch.no_grad():
        return float(idd_loss_from_distances(d_student.double()[None], d_teacher.double()[None], labels,
                                             tau=tau, normalize=normalize))


def _case(labels: torch.Tensor, tau: float) -> str:
    return f"labels {labels.tolist()}, tau = {tau:g}"


def loss_value(fn: Callable, d_student: torch.Tensor, d_teacher: torch.Tensor, labels: torch.Tensor,
               tau: float) -> float:
    """Call the student's loss on copies of the inputs; its value as a float, or :class:`Wrong`."""
    out = call(fn, d_student.clone(), d_teacher.clone(), labels.clone(), tau)
    where = _case(labels, tau)
    if out is None:
        raise Wrong("idd_from_distances returned None: did you forget the return statement?")
    if torch.is_tensor(out) and out.numel() != 1:
        raise Wrong(f"for {where} your loss has shape {list(out.shape)}; return one number, the mean over "
                    "the anchors")
    try:
        value = float(out.item() if torch.is_tensor(out) else out)
    except (TypeError, ValueError, RuntimeError):
        raise Wrong(f"for {where} your loss is a {type(out).__name__}, not a number or a 0-d tensor") from None
    if math.isnan(value):
        raise Wrong(f"for {where} your loss is NaN. The usual cause: same-label entries have q = 0 and "
                    "log q = -inf, and 0 * (-inf - (-inf)) is NaN, so give the masked entries a contribution of "
                    "exactly 0. Another: exp(-d / tau) underflows to 0 for a small tau (work in log space)")
    if math.isinf(value):
        raise Wrong(f"for {where} your loss is {value}: a masked entry (log q = -inf) reaches the sum")
    return value


def check_gradients(fn: Callable, d_student: torch.Tensor, d_teacher: torch.Tensor, labels: torch.Tensor,
                    tau: float) -> None:
    """The loss must send a finite gradient to the student's distances and none to the teacher's."""
    where = _case(labels, tau)
    d_s = d_student.clone().requires_grad_(True)
    d_t = d_teacher.clone().requires_grad_(True)
    out = call(fn, d_s, d_t, labels.clone(), tau)
    if not torch.is_tensor(out) or out.grad_fn is None:
        raise Wrong(f"for {where} your loss carries no gradient back to d_student (it is a "
                    f"{type(out).__name__} without a graph): compute it with torch operations on the tensors "
                    "you are given, without .item(), .detach() of the student or numpy")
    grad_s, grad_t = torch.autograd.grad(out.sum(), (d_s, d_t), allow_unused=True)
    if grad_t is not None and bool((grad_t != 0).any()):
        raise Wrong(f"for {where} a gradient flows into d_teacher: the teacher is fixed, so keep its "
                    "distances out of the graph (detach them)")
    if grad_s is None or not bool(torch.isfinite(grad_s).all()):
        raise Wrong(f"for {where} the gradient of your loss with respect to d_student is "
                    f"{'missing' if grad_s is None else 'NaN or infinite at some entries'}; masked entries must "
                    "not produce NaN on the way back either")


NEAR, FAR = 0.05, 50.0
"""The values the property checks write into entries that must not matter."""


def _poisoned(d: torch.Tensor, where: torch.Tensor, value: float) -> torch.Tensor:
    out = d.clone()
    out[where] = value
    return out


def _changed(base: float, got: float, reference: float) -> str:
    """'from X to Y', or only 'to Y' when X is the right value (a message never shows that)."""
    if abs(base - reference) <= 1e-8 * max(1.0, abs(reference)):
        return f"to {fmt(got)}"
    return f"from {fmt(base)} to {fmt(got)}"


def check_properties(fn: Callable, d_s: torch.Tensor, d_t: torch.Tensor, labels: torch.Tensor,
                     tau: float) -> float:
    """The properties Eqs. 14-15 imply, one by one; returns the student's loss on the case."""
    where = _case(labels, tau)
    base = loss_value(fn, d_s, d_t, labels, tau)
    tol = 1e-7 * max(1.0, abs(base))
    if base < -1e-9:
        raise Wrong(f"for {where} your loss is negative ({fmt(base)}); a KL divergence is never negative")

    same = loss_value(fn, d_t, d_t, labels, tau)
    if abs(same) > 1e-8:
        raise Wrong(f"with d_student equal to d_teacher ({where}) your loss is {fmt(same)}, but the KL "
                    "divergence of a distribution from itself is 0")

    want = reference_loss(d_s, d_t, labels, tau)
    if abs(base - want) > tol and \
            abs(base - reference_loss(d_s, d_t, labels, tau, normalize="mean")) <= tol:
        raise Wrong(f"for {where} your loss divides each model's distances by their mean, as IDDLoss does by "
                    "default; this exercise asks for Eqs. 14-15 with the raw distances")

    equal = labels.unsqueeze(1) == labels.unsqueeze(0)
    diagonal = torch.eye(len(labels), dtype=torch.bool)
    # Same-label pairs are made very near (they would dominate an unmasked softmax), the diagonal very far.
    poisons = [(equal & ~diagonal, NEAR, "the same label"), (diagonal, FAR, "itself")]
    for who in ("student", "teacher"):
        for mask, value, what in poisons:
            if not mask.any():
                continue
            r, s = map(int, torch.nonzero(mask)[0])
            args = (_poisoned(d_s, mask, value), d_t) if who == "student" else (d_s, _poisoned(d_t, mask, value))
            got = loss_value(fn, *args, labels, tau)
            if abs(got - base) <= tol:
                continue
            if what == "itself":
                raise Wrong(f"the diagonal changes your loss: setting the {who}'s distance of every sample to "
                            f"itself to {value:g} changed it {_changed(base, got, want)} ({where}); an "
                            "anchor is never paired with itself")
            raise Wrong(f"a same-label pair changes your loss: setting the {who}'s distances between samples of "
                        f"the same label (e.g. samples {r} and {s}, both label {int(labels[r])}) to {value:g} "
                        f"changed it {_changed(base, got, want)} ({where}); Eq. 14 uses only pairs of "
                        "different labels")

    shift = torch.arange(len(labels), dtype=d_s.dtype).unsqueeze(1) * 0.7 + 0.3
    for who, args in (("student", (d_s + shift, d_t)), ("teacher", (d_s, d_t + shift))):
        got = loss_value(fn, *args, labels, tau)
        if abs(got - base) > tol:
            raise Wrong(f"the rows of your q do not sum to 1: adding one constant to all the {who}'s distances "
                        f"of an anchor (a different constant per anchor) changed your loss "
                        f"{_changed(base, got, want)} ({where}). Each q(r, .) is a softmax over the "
                        "other identities, and a common shift of its inputs cancels in a softmax")
    return base


def diagnose_value(got: float, d_s: torch.Tensor, d_t: torch.Tensor, labels: torch.Tensor, tau: float) -> None:
    """Compare with the library; on a mismatch, say which reading of Eqs. 14-15 the value matches, if any."""
    want = reference_loss(d_s, d_t, labels, tau)
    if abs(got - want) <= 1e-8 * max(1.0, abs(want)):
        return
    where = _case(labels, tau)
    close = lambda other: abs(got - other) <= 1e-8 * max(1.0, abs(other))  # noqa: E731
    if close(reference_loss(d_t, d_s, labels, tau)):
        raise Wrong(f"for {where} your loss is KL(q_student || q_teacher); Eq. 15 is the divergence from the "
                    "teacher's distribution: the teacher's q weights the log-ratio")
    if close(reference_loss(-d_s, -d_t, labels, tau)):
        raise Wrong(f"for {where} your q gives the largest weight to the farthest sample; Eq. 14 is a "
                    "softmax of the negative distance, so near samples weigh most")
    if tau != 1.0 and close(reference_loss(d_s, d_t, labels, 1.0)):
        raise Wrong(f"your loss does not change with tau (wrong at {where}): divide the distances by tau "
                    "inside both softmaxes")
    if tau != 1.0 and close(reference_loss(d_s, d_t, labels, 1.0 / tau)):
        raise Wrong(f"for {where} your loss multiplies the distances by tau; Eq. 14 with a temperature "
                    "divides them by tau")
    if close(len(labels) * want):
        raise Wrong(f"for {where} your loss is the sum over the anchors; Eq. 15's loss is their mean")
    side = "too large" if got > want else "too small"
    raise Wrong(f"for {where} your loss {fmt(got)} is {side}, although it has every property checked before "
                "(zero for identical models, blind to same-label pairs, rows of q that are distributions)")


@exercise("7.2", NOTEBOOK, "the IDD loss from distances", answer="idd_from_distances", hints=(
    "Work per anchor r (one row of the distance matrices): first build q(r, .) for the teacher and for the "
    "student, then the KL divergence between them, then average over the rows.",
    "q(r, .) is a softmax over s of -d(r, s) / tau that must ignore same-label entries: give those entries "
    "minus infinity before the softmax (your mask from 7.1 says which), and work in log space, where "
    "torch.nn.functional.log_softmax copes with minus infinity.",
    "KL(q_teacher || q_student) = sum over s of q_teacher * (log q_teacher - log q_student). On masked "
    "entries both logs are minus infinity and their difference is NaN: replace the masked logs by 0 before "
    "subtracting. Detach the teacher's distances so that no gradient reaches them.",
))
def check_idd_loss(idd_from_distances: Callable) -> str:
    """``idd_from_distances(d_student, d_teacher, labels, tau)``: Eqs. 14-15 on [n, n] distances."""
    cases = [(torch.tensor(values), tau, seed)
             for seed, values in enumerate(LABEL_CASES) for tau in (1.0, 0.3)]
    labels, tau, seed = cases[0]
    check_gradients(idd_from_distances, *distance_pair(len(labels), seed), labels, tau)
    for labels, tau, seed in cases:
        d_s, d_t = distance_pair(len(labels), seed)
        got = check_properties(idd_from_distances, d_s, d_t, labels, tau)
        diagnose_value(got, d_s, d_t, labels, tau)
    return (f"on {len(cases)} cases (4 label sets, tau = 1 and 0.3) your loss agrees with "
            "qgait_lab.losses.idd_loss_from_distances(..., normalize='temperature'), ignores same-label pairs "
            "and the diagonal, is 0 for identical models, and sends gradients to the student only")


# ---------------------------------------------------------------------------
# 7.3 and 7.4: the two "explain" questions, as choices
# ---------------------------------------------------------------------------
KD_SPREAD_OPTIONS: Sequence[str] = ("a", "b", "c", "d")
_KD_SPREAD = "f826c43793896533"
_KD_SPREAD_FEEDBACK = {
    "a": "equal probabilities do not need equal logits: a softmax does not change when one constant is added "
         "to all the logits of a sample",
    "c": "the KL divergence is not symmetric, and symmetry alone would say nothing about a spread",
    "d": "in Eq. 13 the temperature divides the logits of both models alike; nothing in KD rescales the "
         "student's logits on their own",
}


@exercise("7.3", NOTEBOOK, "why KD ties the logit spread", answer="kd_spread_choice", hints=(
    "Write down what q(O_H) = q(O_L) says for two classes i and j: divide the i-th probability by the j-th.",
    "The normalising sums cancel in that ratio. Take logarithms: what is left is a statement about "
    "differences of logits. Which of the options describes exactly that, and what does a common shift do "
    "to a standard deviation?",
))
def check_kd_spread_choice(answer: Any) -> str:
    """``kd_spread_choice``: the letter of the statement that explains sigma(O_H) = sigma(O_L) at KD's optimum."""
    return check_choice("7.3", answer, KD_SPREAD_OPTIONS, _KD_SPREAD, _KD_SPREAD_FEEDBACK)


NORMALIZE_OPTIONS: Sequence[str] = ("a", "b", "c", "d")
_NORMALIZE = "c6ef989022906a02"
_NORMALIZE_FEEDBACK = {
    "a": "a softmax sums to 1 whatever the scale of its inputs; the scale changes only how sharp it is",
    "b": "the mask of Exercise 7.1 keeps same-label pairs out, with or without normalisation",
    "d": "Eq. 15 compares two distributions, and a softmax turns distances of any size into one",
}


@exercise("7.4", NOTEBOOK, "why IDD normalises its distances", answer="idd_normalize_choice", hints=(
    "What happens to every distance of a model when its embeddings are all multiplied by 1/2? Does the "
    "model recognise identities any worse?",
    "Quantization changes the overall size of the embeddings (the logit variance of Section 3 is one symptom). "
    "Ask which option names a difference between teacher and student that IDD should not punish.",
))
def check_idd_normalize_choice(answer: Any) -> str:
    """``idd_normalize_choice``: the letter of the reason why IDDLoss divides distances by their mean."""
    return check_choice("7.4", answer, NORMALIZE_OPTIONS, _NORMALIZE, _NORMALIZE_FEEDBACK)
