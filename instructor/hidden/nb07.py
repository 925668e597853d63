"""Hidden checks of notebook 07, run only by ``qgait-lab lab grade``: cases the visible checkers do not try."""
from __future__ import annotations

import math

import torch

from qgait_lab.lab.exercises import idd
from qgait_lab.lab.exercises.core import Wrong, call, check_choice


# -- 7.1 ----------------------------------------------------------------------
def mask_edge_cases(idd_mask) -> str:
    """One sample, a single identity, all distinct, negative and large label values."""
    for values in ([4], [3, 3, 3], [0, 1, 2, 3], [-1, 10 ** 6, -1, 7, 10 ** 6]):
        idd.mask_on(idd_mask, torch.tensor(values))
    return "edge cases: one sample, one identity, all identities distinct, negative and large labels"


def mask_other_dtypes_and_sizes(idd_mask) -> str:
    """int32 and uint8 labels, and 40 shuffled labels of 5 identities."""
    gen = torch.Generator().manual_seed(7)
    cases = [torch.tensor([2, 0, 2, 1], dtype=torch.int32), torch.tensor([9, 9, 4, 4, 1], dtype=torch.uint8),
             torch.randint(0, 5, (40,), generator=gen)]
    for labels in cases:
        idd.mask_on(idd_mask, labels)
    return "int32 and uint8 labels, and a shuffled batch of 40"


# -- 7.2 ----------------------------------------------------------------------
def _close_to_reference(fn, d_s, d_t, labels, tau, rel: float, what: str) -> None:
    got = idd.loss_value(fn, d_s, d_t, labels, tau)
    want = idd.reference_loss(d_s, d_t, labels, tau)
    if not math.isclose(got, want, rel_tol=rel, abs_tol=rel):
        side = "too large" if got > want else "too small"
        raise Wrong(f"{what} (labels {labels.tolist()}, tau = {tau:g}): your loss {got:.4g} is {side}")


def loss_float32_small_tau(idd_from_distances) -> str:
    """float32 distances and a small temperature, where exp(-d / tau) underflows: log space is needed."""
    gen = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 6, (24,), generator=gen)
    labels[:6] = torch.arange(6)                      # every identity present
    d_s, d_t = idd.distance_pair(24, seed=11, dtype=torch.float32)
    _close_to_reference(idd_from_distances, d_s, d_t, labels, 0.02, 1e-3, "float32, tau = 0.02")
    return "float32 distances of 24 samples at tau = 0.02 (a numerically stable softmax)"


def loss_singletons_and_scale(idd_from_distances) -> str:
    """Identities with a single sample, and a student whose distances are three times larger."""
    labels = torch.tensor([0, 1, 1, 2, 3, 3, 3, 4, 5])
    d_s, d_t = idd.distance_pair(9, seed=5, student_scale=3.0)
    idd.check_properties(idd_from_distances, d_s, d_t, labels, 0.5)
    _close_to_reference(idd_from_distances, d_s, d_t, labels, 0.5, 1e-8, "singleton identities")
    return "identities with one sample, and student distances on another scale"


def loss_gradient(idd_from_distances) -> str:
    """The gradient with respect to the student's distances is the one of Eqs. 14-15."""
    from qgait_lab.losses import idd_loss_from_distances

    labels = torch.tensor([1, 0, 2, 0, 1, 2, 2])
    d_s, d_t = idd.distance_pair(7, seed=9)
    mine = d_s.clone().requires_grad_(True)
    out = call(idd_from_distances, mine, d_t.clone(), labels.clone(), 0.7)
    if not torch.is_tensor(out) or out.grad_fn is None:
        raise Wrong("your loss carries no gradient back to d_student")
    (got,) = torch.autograd.grad(out.sum(), mine)
    ref = d_s.clone().requires_grad_(True)
    (want,) = torch.autograd.grad(idd_loss_from_distances(ref[None], d_t[None], labels, tau=0.7,
                                                          normalize="temperature"), ref)
    if not torch.allclose(got.double(), want, atol=1e-8, rtol=1e-6):
        r, s = map(int, torch.nonzero(~torch.isclose(got.double(), want, atol=1e-8, rtol=1e-6))[0])
        raise Wrong(f"the gradient of your loss with respect to d_student[{r}, {s}] is {float(got[r, s]):.4g}, "
                    "which is not the gradient of Eqs. 14-15 there")
    return "the gradient with respect to the student's distances is right"


# -- 7.3, 7.4 -----------------------------------------------------------------
def kd_spread_regraded(answer) -> str:
    """The choice, graded again from the answer itself (whatever the check cell showed)."""
    return check_choice("7.3", answer, idd.KD_SPREAD_OPTIONS, idd._KD_SPREAD)


def normalize_regraded(answer) -> str:
    """The choice, graded again from the answer itself (whatever the check cell showed)."""
    return check_choice("7.4", answer, idd.NORMALIZE_OPTIONS, idd._NORMALIZE)


HIDDEN = {
    "7.1": [mask_edge_cases, mask_other_dtypes_and_sizes],
    "7.2": [loss_float32_small_tau, loss_singletons_and_scale, loss_gradient],
    "7.3": [kd_spread_regraded],
    "7.4": [normalize_regraded],
}
