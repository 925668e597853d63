"""OpenGait's cross-entropy on the BNNeck's cosine logits, per part (:class:`CrossEntropyLoss`)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .inputs import LossInfo, LossInputError, _as_parts, _check_labels, _check_positive


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
