"""IDD as the paper prints it (Eqs. 14-15), against an implementation written from the equations,
and the revision's name IDC accepted for IDD."""
import math

import pytest
import torch

from qgait_lab.losses import IDDLoss
from qgait_lab.training.config import load_config
from qgait_lab.training.objectives import distillation_term


def eqs_14_15_by_hand(high: torch.Tensor, low: torch.Tensor, labels: list[int]) -> float:
    """Eq. 14: q*(r, s) = exp(-d(r, s)) / sum_u exp(-d(r, u)) over Y_s != Y_r, Y_u != Y_r, with d the
    Euclidean distance of the embeddings; Eq. 15: sum over r, s of q_H log(q_H / q_L)."""
    n = len(labels)
    flat_h, flat_l = high.reshape(n, -1).double(), low.reshape(n, -1).double()

    def q(x, r):
        others = [s for s in range(n) if labels[s] != labels[r]]
        weights = {s: math.exp(-float((x[r] - x[s]).norm())) for s in others}
        total = sum(weights.values())
        return {s: w / total for s, w in weights.items()}

    loss = 0.0
    for r in range(n):
        q_h, q_l = q(flat_h, r), q(flat_l, r)
        loss += sum(q_h[s] * math.log(q_h[s] / q_l[s]) for s in q_h)
    return loss


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_idd_as_printed_is_eqs_14_15(seed):
    g = torch.Generator().manual_seed(seed)
    labels = [0, 0, 1, 1, 2, 3]
    # Distances of a few units, so that the unnormalised softmax is neither flat nor one-hot.
    high = torch.randn(6, 4, 3, generator=g, dtype=torch.float64) * 0.6
    low = high + 0.3 * torch.randn(6, 4, 3, generator=g, dtype=torch.float64)
    got, _ = IDDLoss.as_printed()(low, high, torch.tensor(labels))
    assert float(got) == pytest.approx(eqs_14_15_by_hand(high, low, labels), rel=1e-9)


def test_the_printed_sum_is_the_anchors_times_the_default_mean():
    g = torch.Generator().manual_seed(5)
    high = torch.randn(8, 4, 2, generator=g, dtype=torch.float64)
    low = high + 0.2 * torch.randn(8, 4, 2, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    summed, mean = IDDLoss.as_printed(), IDDLoss(tau=1.0, distance="flat", normalize="temperature")
    assert float(summed(low, high, labels)[0]) == pytest.approx(8 * float(mean(low, high, labels)[0]))


def test_idd_paper_and_the_idc_alias_from_the_config():
    cfg = load_config("tiny-cpu", ["stage2.distill.kind=idc"])
    assert cfg.stage2.distill.kind == "idd"
    paper = load_config("tiny-cpu", ["stage2.distill.kind=idc_paper"])
    assert paper.stage2.distill.kind == "idd_paper"
    term = distillation_term(paper.stage2.distill, paper.loss)
    assert term.reads == "triplet" and isinstance(term.loss, IDDLoss)
    assert (term.loss.distance, term.loss.normalize, term.loss.tau, term.loss.reduction) == \
        ("flat", "temperature", 1.0, "sum")
