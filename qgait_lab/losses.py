"""The training losses of QGait: triplet, cross-entropy, vanilla KD and IDD.

Tensor conventions follow OpenGait's GaitBase:

* embeddings (before the BNNeck) are ``[n, c, p]``: n samples, c channels
  (256), p horizontal parts (16).  A 2-D ``[n, c]`` tensor is read as one part;
* logits (the BNNeck's cosine logits) are ``[n, num_classes, p]``;
* labels are ``[n]`` integer identities.

Every loss module returns ``(loss, info)``: the scalar loss to back-propagate
(already multiplied by the module's ``weight``, OpenGait's
``loss_term_weight``) and a dict of detached 0-d tensors for logging, whose
``"loss"`` entry is the *unweighted* value (as OpenGait logs it).  The
info values stay tensors so that logging does not force a device sync every
step; call ``float()`` on them when writing logs.

The functional forms (:func:`triplet_loss`, :func:`cross_entropy_loss`,
:func:`kd_loss`, :func:`idd_loss`) return the unweighted loss only.

Half-precision inputs (AMP) are promoted to float32, as OpenGait does; float32
and float64 inputs keep their dtype.

Errors: invalid options raise :class:`~qgait_lab.errors.ConfigError`; badly
shaped inputs raise :class:`LossInputError`; a batch with a single identity
raises :class:`NotEnoughIdentitiesError`.  All three derive from both
:class:`~qgait_lab.errors.QGaitError` and ``ValueError``.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import ConfigError, QGaitError

__all__ = [
    "LossInfo", "LossInputError", "NotEnoughIdentitiesError",
    "part_distances", "triplet_loss", "cross_entropy_loss", "kd_loss", "idd_loss",
    "idd_loss_from_distances",
    "TripletLoss", "CrossEntropyLoss", "KDLoss", "IDDLoss",
]

LossInfo = dict[str, Tensor]
DistanceMode = Literal["per_part", "flat"]
NormalizeMode = Literal["temperature", "mean"]


class LossInputError(QGaitError, ValueError):
    """A loss received tensors of the wrong shape, dtype or label range."""


class NotEnoughIdentitiesError(LossInputError):
    """A metric loss needs samples of at least two identities in the batch."""


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------
def _as_parts(t: Tensor, name: str) -> Tensor:
    """Return ``t`` as ``[n, c, p]`` (``[n, c]`` becomes one part), promoting half precision."""
    if t.dim() == 2:
        t = t.unsqueeze(-1)
    if t.dim() != 3:
        raise LossInputError(f"{name} must be [n, c, p] (or [n, c]); got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        raise LossInputError(f"{name} must be a floating-point tensor; got {t.dtype}")
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    return t


def _check_labels(labels: Tensor, n: int) -> None:
    if labels.dim() != 1 or labels.shape[0] != n:
        raise LossInputError(f"labels must be [n] with n = {n}; got shape {tuple(labels.shape)}")
    if labels.is_floating_point():
        raise LossInputError(f"labels must be integers; got {labels.dtype}")


def _require_identities(labels: Tensor, loss_name: str) -> int:
    """Raise unless the batch holds at least two identities; return their number."""
    found = int(torch.unique(labels).numel())
    if found < 2:
        raise NotEnoughIdentitiesError(
            f"{loss_name} needs samples of at least 2 identities in the batch to form "
            f"different-label pairs; found {found} identity among {labels.numel()} samples. "
            "Use an identity-balanced (P x K) sampler with P >= 2.")
    return found


def _check_positive(value: float, name: str) -> float:
    if not value > 0:
        raise ConfigError(f"{name} must be > 0; got {value}")
    return float(value)


# ---------------------------------------------------------------------------
# Distances
# ---------------------------------------------------------------------------
def part_distances(x: Tensor, y: Tensor | None = None, eps: float = 1e-12) -> Tensor:
    """Euclidean distances per part: ``[n, c, p]`` and ``[m, c, p]`` give ``[p, n, m]``.

    Uses ``|a|^2 + |b|^2 - 2 a.b`` (one batched matmul, as OpenGait does).
    The square root is taken only where the squared distance exceeds ``eps``;
    elsewhere the distance is exactly 0 with zero gradient.  A plain
    ``sqrt(relu(.))`` has an infinite derivative at 0, which turns into NaN
    as soon as two embeddings coincide (always true on the diagonal).
    """
    x = _as_parts(x, "x").permute(2, 0, 1)                      # [p, n, c]
    y = x if y is None else _as_parts(y, "y").permute(2, 0, 1)  # [p, m, c]
    squared = ((x * x).sum(-1, keepdim=True) + (y * y).sum(-1).unsqueeze(1)
               - 2.0 * x @ y.transpose(1, 2))
    if y is x:  # self-distances: exactly 0 rather than a rounding residue of the expansion
        eye = torch.eye(x.shape[1], dtype=torch.bool, device=x.device)
        squared = squared.masked_fill(eye, 0.0)
    positive = squared > eps
    return torch.where(positive, squared.clamp_min(eps).sqrt(), torch.zeros_like(squared))


# ---------------------------------------------------------------------------
# Triplet loss (OpenGait)
# ---------------------------------------------------------------------------
def _triplet(embeddings: Tensor, labels: Tensor, margin: float,
             exclude_self_positive: bool) -> tuple[Tensor, LossInfo]:
    emb = _as_parts(embeddings, "embeddings")
    n = emb.shape[0]
    _check_labels(labels, n)
    _require_identities(labels, "TripletLoss")

    dist = part_distances(emb)                                   # [p, n, n]
    same = labels.unsqueeze(1) == labels.unsqueeze(0)            # [n, n]
    positive = same & ~torch.eye(n, dtype=torch.bool, device=same.device) if exclude_self_positive else same
    valid = positive.unsqueeze(2) & ~same.unsqueeze(1)           # [anchor, positive, negative]
    anchor, pos, neg = valid.nonzero(as_tuple=True)
    if anchor.numel() == 0:
        raise NotEnoughIdentitiesError(
            "TripletLoss with exclude_self_positive=True needs an identity with at least 2 "
            f"samples; every one of the {n} labels is unique")

    hinge = F.relu(dist[:, anchor, pos] - dist[:, anchor, neg] + margin)   # [p, T]
    nonzero = (hinge > 0).sum(-1)                                           # [p]
    per_part = hinge.sum(-1) / nonzero.clamp_min(1)   # mean over the non-zero terms; 0 if none
    loss = per_part.mean()

    off_diagonal = same & ~torch.eye(n, dtype=torch.bool, device=same.device)
    with torch.no_grad():
        info: LossInfo = {
            "loss": loss.detach(),
            "num_triplets": torch.tensor(float(anchor.numel())),
            "num_nonzero": nonzero.float().mean(),
            "nonzero_frac": nonzero.float().mean() / anchor.numel(),
            "mean_ap": dist[:, off_diagonal].mean() if off_diagonal.any() else dist.new_zeros(()),
            "mean_an": dist[:, ~same].mean(),
            "mean_dist": dist.mean(),
        }
    return loss, info


def triplet_loss(embeddings: Tensor, labels: Tensor, margin: float = 0.2,
                 exclude_self_positive: bool = False) -> Tensor:
    """Batch-all triplet loss per part (see :class:`TripletLoss`)."""
    return _triplet(embeddings, labels, margin, exclude_self_positive)[0]


class TripletLoss(nn.Module):
    """Batch-all triplet loss with soft margin per part, as in OpenGait.

    For every part: Euclidean distances between all embeddings, then the hinge
    ``relu(d(a, p) - d(a, n) + margin)`` over every (anchor, positive,
    negative) triplet with ``y_a == y_p != y_n``; the mean over the terms that
    are non-zero (0 when none is), then the mean over parts.  Averaging only
    the active terms keeps the gradient from fading as most triplets become
    easy.

    Like OpenGait, the anchor itself counts as one of its positives
    (``d(a, a) = 0``), so each anchor also contributes ``relu(margin - d(a, n))``.
    Set ``exclude_self_positive=True`` for the textbook definition ``a != p``.

    A batch with a single identity has no negatives.  Rather than silently
    returning 0 (a run that learns nothing), this raises
    :class:`NotEnoughIdentitiesError`, naming the number of identities found.

    Info keys: ``loss``, ``num_triplets`` (T), ``num_nonzero`` (mean over parts
    of the active terms), ``nonzero_frac`` (their fraction of T), ``mean_ap``
    and ``mean_an`` (mean same-label, off-diagonal and different-label
    distance) and ``mean_dist``.
    """

    def __init__(self, margin: float = 0.2, exclude_self_positive: bool = False,
                 weight: float = 1.0) -> None:
        super().__init__()
        if margin < 0:
            raise ConfigError(f"TripletLoss margin must be >= 0; got {margin}")
        self.margin = float(margin)
        self.exclude_self_positive = exclude_self_positive
        self.weight = float(weight)

    def forward(self, embeddings: Tensor, labels: Tensor) -> tuple[Tensor, LossInfo]:
        loss, info = _triplet(embeddings, labels, self.margin, self.exclude_self_positive)
        return self.weight * loss, info

    def extra_repr(self) -> str:
        return f"margin={self.margin}, exclude_self_positive={self.exclude_self_positive}, weight={self.weight}"


# ---------------------------------------------------------------------------
# Cross-entropy on the BNNeck logits (OpenGait)
# ---------------------------------------------------------------------------
def _cross_entropy(logits: Tensor, labels: Tensor, scale: float,
                   label_smoothing: float) -> tuple[Tensor, LossInfo]:
    logits = _as_parts(logits, "logits")
    n, num_classes, p = logits.shape
    _check_labels(labels, n)
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise LossInputError(f"labels must lie in [0, {num_classes}) for {num_classes} classes; "
                             f"got range [{int(labels.min())}, {int(labels.max())}]")
    target = labels.unsqueeze(1).expand(n, p)
    # [n, C, p] with [n, p] targets: the mean over n and p is the mean over parts of per-part means.
    loss = F.cross_entropy(logits * scale, target, label_smoothing=label_smoothing)
    with torch.no_grad():
        info: LossInfo = {
            "loss": loss.detach(),
            "accuracy": (logits.argmax(1) == target).float().mean(),
        }
    return loss, info


def cross_entropy_loss(logits: Tensor, labels: Tensor, scale: float = 16.0,
                       label_smoothing: float = 0.1) -> Tensor:
    """Cross-entropy per part on scaled cosine logits (see :class:`CrossEntropyLoss`)."""
    return _cross_entropy(logits, labels, scale, label_smoothing)[0]


class CrossEntropyLoss(nn.Module):
    """Cross-entropy with label smoothing on the BNNeck's cosine logits, per part (OpenGait).

    The cosine logits lie in [-1, 1]; multiplying by ``scale`` (16) lets the
    softmax become confident.  Each part is an independent classifier with
    the same target; the loss is the mean over samples and parts.

    With smoothing ``eps`` and C classes the per-part loss is
    ``(1 - eps) * (-log q_y) + eps * mean_j(-log q_j)`` (PyTorch's definition).

    Info keys: ``loss`` and ``accuracy`` (argmax per part, averaged over parts
    and samples).
    """

    def __init__(self, scale: float = 16.0, label_smoothing: float = 0.1, weight: float = 1.0) -> None:
        super().__init__()
        self.scale = _check_positive(scale, "CrossEntropyLoss scale")
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1); got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)
        self.weight = float(weight)

    def forward(self, logits: Tensor, labels: Tensor) -> tuple[Tensor, LossInfo]:
        loss, info = _cross_entropy(logits, labels, self.scale, self.label_smoothing)
        return self.weight * loss, info

    def extra_repr(self) -> str:
        return f"scale={self.scale}, label_smoothing={self.label_smoothing}, weight={self.weight}"


# ---------------------------------------------------------------------------
# Vanilla knowledge distillation (Eq. 13)
# ---------------------------------------------------------------------------
def _kd(student_logits: Tensor, teacher_logits: Tensor, temperature: float,
        scale: float) -> tuple[Tensor, LossInfo]:
    student = _as_parts(student_logits, "student_logits")
    teacher = _as_parts(teacher_logits, "teacher_logits").detach()
    if student.shape != teacher.shape:
        raise LossInputError(f"student and teacher logits must have the same shape; got "
                             f"{tuple(student.shape)} and {tuple(teacher.shape)}")
    log_q_student = F.log_softmax(student * (scale / temperature), dim=1)
    log_q_teacher = F.log_softmax(teacher.to(student.dtype) * (scale / temperature), dim=1)
    kl = (log_q_teacher.exp() * (log_q_teacher - log_q_student)).sum(1)   # [n, p]
    loss = kl.mean() * temperature ** 2
    with torch.no_grad():
        info: LossInfo = {
            "loss": loss.detach(),
            "agreement": (student.argmax(1) == teacher.argmax(1)).float().mean(),
        }
    return loss, info


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 4.0,
            scale: float = 16.0) -> Tensor:
    """``T^2 * KL(q_teacher || q_student)`` on tempered softmaxes (see :class:`KDLoss`)."""
    return _kd(student_logits, teacher_logits, temperature, scale)[0]


class KDLoss(nn.Module):
    """Vanilla knowledge distillation (Hinton et al. 2015), Eq. 13 and the KL after it.

    ``q(O)_i = softmax(O / T)_i`` over the classes (Eq. 13), per part; the loss is
    ``KL(q(O_H) || q(O_L)) = sum_i q_H,i log(q_H,i / q_L,i)``, summed over
    classes, averaged over samples and parts, and multiplied by ``T^2``.

    Conventions the paper leaves open:

    * ``T^2``: the gradient of the tempered KL scales like ``1/T^2``; the
      factor keeps its magnitude comparable across temperatures (Hinton's
      convention), so changing T does not silently change the loss weight.
    * ``scale``: the BNNeck logits are cosines in [-1, 1].  They are first
      multiplied by ``scale`` (default 16, as in :class:`CrossEntropyLoss`), so
      that at ``T = 1`` KD matches exactly the class distribution the
      cross-entropy trains.  Use ``scale=1`` for logits that are already raw.
    * The teacher (high-bit model) is detached: no gradient reaches it.

    ``forward(student_logits, teacher_logits)``; info keys ``loss`` and
    ``agreement`` (fraction of per-part argmax predictions that match).
    """

    def __init__(self, temperature: float = 4.0, scale: float = 16.0, weight: float = 1.0) -> None:
        super().__init__()
        self.temperature = _check_positive(temperature, "KDLoss temperature")
        self.scale = _check_positive(scale, "KDLoss scale")
        self.weight = float(weight)

    def forward(self, student_logits: Tensor, teacher_logits: Tensor) -> tuple[Tensor, LossInfo]:
        loss, info = _kd(student_logits, teacher_logits, self.temperature, self.scale)
        return self.weight * loss, info

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, scale={self.scale}, weight={self.weight}"


# ---------------------------------------------------------------------------
# Inter-class Distance-guided Distillation (Eqs. 14-15)
# ---------------------------------------------------------------------------
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
                        normalize: NormalizeMode, eps: float) -> tuple[Tensor, LossInfo]:
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
    loss = kl_per_anchor.mean()                          # mean over anchors r and parts

    with torch.no_grad():
        info: LossInfo = {
            "loss": loss.detach(),
            "student_mean_dist": mean_student.mean(),
            "teacher_mean_dist": mean_teacher.mean(),
            "num_identities": torch.tensor(float(identities)),
        }
    return loss, info


def _idd(student: Tensor, teacher: Tensor, labels: Tensor, tau: float, distance: DistanceMode,
         normalize: NormalizeMode, eps: float) -> tuple[Tensor, LossInfo]:
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
                               tau, normalize, eps)


def idd_loss_from_distances(d_student: Tensor, d_teacher: Tensor, labels: Tensor, tau: float = 1.0,
                            normalize: NormalizeMode = "mean", eps: float = 1e-12) -> Tensor:
    """IDD (Eqs. 14-15) from precomputed ``[P, n, n]`` distance matrices.

    Entries of same-label pairs (and the diagonal) are never read, which makes
    this form convenient for teaching the mask and for testing it.
    """
    return _idd_from_distances(d_student, d_teacher, labels, tau, normalize, eps)[0]


def idd_loss(student: Tensor, teacher: Tensor, labels: Tensor, tau: float = 1.0,
             distance: DistanceMode = "per_part", normalize: NormalizeMode = "mean",
             eps: float = 1e-12) -> Tensor:
    """Inter-class distance-guided distillation (Eqs. 14-15); see :class:`IDDLoss`."""
    return _idd(student, teacher, labels, tau, distance, normalize, eps)[0]


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
    * reduction: Eq. 15 sums over anchors r; this takes the mean over anchors
      (and parts), so the loss does not grow with the batch size.
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
                 normalize: NormalizeMode = "mean", weight: float = 1.0, eps: float = 1e-12) -> None:
        super().__init__()
        self.tau = _check_positive(tau, "IDDLoss tau")
        if distance not in ("per_part", "flat"):
            raise ConfigError(f"IDDLoss distance must be 'per_part' or 'flat'; got {distance!r}")
        if normalize not in ("temperature", "mean"):
            raise ConfigError(f"IDDLoss normalize must be 'temperature' or 'mean'; got {normalize!r}")
        self.distance: DistanceMode = distance
        self.normalize: NormalizeMode = normalize
        self.weight = float(weight)
        self.eps = _check_positive(eps, "IDDLoss eps")

    def forward(self, student: Tensor, teacher: Tensor, labels: Tensor) -> tuple[Tensor, LossInfo]:
        loss, info = _idd(student, teacher, labels, self.tau, self.distance, self.normalize, self.eps)
        return self.weight * loss, info

    def extra_repr(self) -> str:
        return (f"tau={self.tau}, distance={self.distance!r}, normalize={self.normalize!r}, "
                f"weight={self.weight}")
