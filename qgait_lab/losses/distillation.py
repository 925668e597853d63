"""Vanilla knowledge distillation on the BNNeck logits, Eq. 13 of the paper (:class:`KDLoss`)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .inputs import LossInfo, LossInputError, _as_parts, _check_positive


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
