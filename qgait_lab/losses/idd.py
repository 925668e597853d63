"""Inter-class Distance-guided Distillation, Eqs. 14-15 of the paper (:class:`IDDLoss`).

Distances come from :func:`~.distances.part_distances`; the functional form
:func:`idd_loss_from_distances` takes precomputed distance matrices.
"""
from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .distances import part_distances
from .inputs import LossInfo, LossInputError, _as_parts, _check_labels, _check_positive, _require_identities

DistanceMode = Literal["per_part", "flat"]
NormalizeMode = Literal["temperature", "mean"]
ReductionMode = Literal["mean", "sum"]


def _mean_other_label_distance(dist: Tensor, other: Tensor, eps: float) -> Tensor:
    """Mean distance over different-label pairs, per part: ``[P, n, n] -> [P, 1, 1]``."""
    total = torch.where(other, dist, torch.zeros_like(dist)).sum(dim=(1, 2), keepdim=True)
    return (total / other.sum()).clamp_min(eps)


def _masked_log_softmax(dist: Tensor, other: Tensor, tau: float) -> Tensor:
    """Eq. 14 in log space: ``log softmax_s(-d(r, s) / tau)`` over different-label s only.

    Same-label entries (the anchor itself included) are set to ``-inf``
    before the softmax, so they get probability 0 and no gradient.
    """
    return F.log_softmax((-dist / tau).masked_fill(~other, float("-inf")), dim=-1)


def _idd_from_distances(d_student: Tensor, d_teacher: Tensor, labels: Tensor, tau: float,
                        normalize: NormalizeMode, eps: float,
                        reduction: ReductionMode = "mean") -> tuple[Tensor, LossInfo]:
    """Eqs. 14-15 on ``[P, n, n]`` distance matrices (P parts, or 1 when flattened)."""
    n = d_student.shape[-1]
    if d_student.dim() != 3 or d_student.shape[1] != n or d_teacher.shape != d_student.shape:
        raise LossInputError(f"distance matrices must both be [P, n, n]; got {tuple(d_student.shape)} "
                             f"(student) and {tuple(d_teacher.shape)} (teacher)")
    _check_labels(labels, n)
    identities = _require_identities(labels, "IDDLoss")
    d_teacher = d_teacher.detach()

    other = labels.unsqueeze(1) != labels.unsqueeze(0)                        # [n, n], diagonal False
    mean_student = _mean_other_label_distance(d_student, other, eps)
    mean_teacher = _mean_other_label_distance(d_teacher, other, eps)
    if normalize == "mean":
        d_student, d_teacher = d_student / mean_student, d_teacher / mean_teacher

    log_q_student = _masked_log_softmax(d_student, other, tau)
    log_q_teacher = _masked_log_softmax(d_teacher, other, tau)
    q_teacher = log_q_teacher.exp()                      # exactly 0 on masked entries
    # -inf - (-inf) is NaN: zero the masked logs (their weight q_teacher is 0 anyway).
    log_ratio = log_q_teacher.masked_fill(~other, 0.0) - log_q_student.masked_fill(~other, 0.0)
    kl_per_anchor = (q_teacher * log_ratio).sum(-1)      # [P, n]: Eq. 15's inner sum over s
    # Over anchors r (and parts): the mean, or Eq. 15's sum.
    loss = kl_per_anchor.mean() if reduction == "mean" else kl_per_anchor.sum()

    with torch.no_grad():
        info: LossInfo = {
            "loss": loss.detach(),
            "student_mean_dist": mean_student.mean(),
            "teacher_mean_dist": mean_teacher.mean(),
            "num_identities": torch.tensor(float(identities)),
        }
    return loss, info


def _idd(student: Tensor, teacher: Tensor, labels: Tensor, tau: float, distance: DistanceMode,
         normalize: NormalizeMode, eps: float, reduction: ReductionMode = "mean") -> tuple[Tensor, LossInfo]:
    student = _as_parts(student, "student embeddings")
    teacher = _as_parts(teacher, "teacher embeddings").detach().to(student.dtype)
    n = student.shape[0]
    if teacher.shape[0] != n:
        raise LossInputError(f"student and teacher must embed the same samples; got "
                             f"{n} and {teacher.shape[0]}")
    if distance == "per_part" and teacher.shape[2] != student.shape[2]:
        raise LossInputError(f"distance='per_part' needs the same number of parts; got "
                             f"{student.shape[2]} (student) and {teacher.shape[2]} (teacher)")
    _check_labels(labels, n)
    _require_identities(labels, "IDDLoss")   # before any work, with the clearest message
    if distance == "flat":
        student, teacher = student.reshape(n, -1, 1), teacher.reshape(n, -1, 1)
    return _idd_from_distances(part_distances(student), part_distances(teacher), labels,
                               tau, normalize, eps, reduction)


def idd_loss_from_distances(d_student: Tensor, d_teacher: Tensor, labels: Tensor, tau: float = 1.0,
                            normalize: NormalizeMode = "mean", eps: float = 1e-12) -> Tensor:
    """IDD (Eqs. 14-15) from precomputed ``[P, n, n]`` distance matrices.

    Entries of same-label pairs (and the diagonal) are never read, which makes
    this form convenient for teaching the mask and for testing it.
    """
    return _idd_from_distances(d_student, d_teacher, labels, tau, normalize, eps)[0]


def idd_loss(student: Tensor, teacher: Tensor, labels: Tensor, tau: float = 1.0,
             distance: DistanceMode = "per_part", normalize: NormalizeMode = "mean",
             eps: float = 1e-12, reduction: ReductionMode = "mean") -> Tensor:
    """Inter-class distance-guided distillation (Eqs. 14-15); see :class:`IDDLoss`."""
    return _idd(student, teacher, labels, tau, distance, normalize, eps, reduction)[0]


class IDDLoss(nn.Module):
    """Inter-class Distance-guided Distillation (IDD), Eqs. 14-15 of the paper.

    For each anchor r, Eq. 14 turns the distances to the samples s of *other*
    identities into a distribution

        ``q*(r, s) = exp(-d(X_r, X_s) / tau) / sum_u exp(-d(X_r, X_u) / tau)``,
        with ``Y_s != Y_r`` and ``Y_u != Y_r``,

    for the high-bit teacher (``q_H``) and the low-bit student (``q_L``), and
    Eq. 15 is ``KL(q_H || q_L) = sum_s q_H log(q_H / q_L)``.  Same-label
    entries, the anchor included, are masked with ``-inf`` before the softmax.
    The teacher is detached.

    Choices the paper leaves open (configurable, defaults in brackets):

    * ``distance`` [``"per_part"``]: Euclidean distance per horizontal part,
      one softmax and one KL per part, averaged over parts (how OpenGait
      measures distance for the triplet loss and for evaluation); or
      ``"flat"``: one distance over the flattened ``c * p`` vector.
    * ``normalize`` [``"mean"``]: raw Euclidean distances are not scale
      invariant, and full-precision and 4-bit embeddings differ in scale (the
      paper itself reports the logit variance halving after quantization).
      With raw distances the KL would punish the student for its overall
      scale rather than for the *relative* inter-class geometry that IDD is
      meant to transfer, and the sharpness of each softmax would depend on the
      embedding norm.  ``"mean"`` divides each model's distance matrix (per
      part) by its own mean different-label distance, which makes the loss
      invariant to a global scale of either embedding.  ``"temperature"`` uses
      the raw distances divided by ``tau`` only: with ``tau = 1`` this is Eq. 14
      read literally.
    * ``tau`` [1.0]: the softmax temperature, applied in both modes.  Eq. 14
      has none (``tau = 1``).  With ``normalize="mean"`` the distances are
      around 1, so smaller ``tau`` (e.g. 0.1) gives sharper distributions.
    * ``reduction`` [``"mean"``]: Eq. 15 sums over anchors r (``"sum"``); the
      mean over anchors (and parts) keeps the loss from growing with the batch size.

    :meth:`as_printed` is Eqs. 14-15 read literally: flattened embeddings, raw
    distances, ``tau = 1`` and the sum (``distill.kind: idd_paper``).
    * ``weight`` [1.0]: the paper gives no weight for the IDD term.

    The teacher and student may have different channel counts (distances are
    compared, not features); with ``"per_part"`` they need the same number of
    parts.  Distances are computed with :func:`part_distances`, whose gradient
    stays finite when two embeddings coincide.

    Needs samples of at least two identities: otherwise no anchor has a
    different-label sample, and :class:`NotEnoughIdentitiesError` is raised
    with the number of identities found.

    ``forward(student, teacher, labels)``; info keys ``loss``,
    ``student_mean_dist`` and ``teacher_mean_dist`` (mean different-label
    distance before normalisation: their ratio shows the scale gap) and
    ``num_identities``.
    """

    def __init__(self, tau: float = 1.0, distance: DistanceMode = "per_part",
                 normalize: NormalizeMode = "mean", weight: float = 1.0, eps: float = 1e-12,
                 reduction: ReductionMode = "mean") -> None:
        super().__init__()
        self.tau = _check_positive(tau, "IDDLoss tau")
        for option, value, mode in (("distance", distance, DistanceMode), ("normalize", normalize, NormalizeMode),
                                    ("reduction", reduction, ReductionMode)):
            if value not in get_args(mode):
                raise ConfigError(f"IDDLoss {option} must be one of {list(get_args(mode))}; got {value!r}")
        self.distance: DistanceMode = distance
        self.normalize: NormalizeMode = normalize
        self.reduction: ReductionMode = reduction
        self.weight = float(weight)
        self.eps = _check_positive(eps, "IDDLoss eps")

    @classmethod
    def as_printed(cls, weight: float = 1.0) -> "IDDLoss":
        """Eqs. 14-15 as the paper prints them: ``d`` the Euclidean distance of the whole
        embeddings, no normalisation, no temperature, and the KL summed over r and s."""
        return cls(tau=1.0, distance="flat", normalize="temperature", reduction="sum", weight=weight)

    def forward(self, student: Tensor, teacher: Tensor, labels: Tensor) -> tuple[Tensor, LossInfo]:
        loss, info = _idd(student, teacher, labels, self.tau, self.distance, self.normalize, self.eps,
                          self.reduction)
        return self.weight * loss, info

    def extra_repr(self) -> str:
        return (f"tau={self.tau}, distance={self.distance!r}, normalize={self.normalize!r}, "
                f"reduction={self.reduction!r}, weight={self.weight}")
