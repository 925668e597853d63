"""OpenGait's batch-all triplet loss, per horizontal part (:class:`TripletLoss`)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .distances import part_distances
from .inputs import LossInfo, NotEnoughIdentitiesError, _as_parts, _check_labels, _require_identities


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
