"""The loss terms of a training step, each reading one named output of the model.

A model's ``training_feat`` (the model contract, :mod:`qgait_lab.models.contract`)
names its loss inputs; each term here reads one of them:

=========  ===============  ==========================================
term       reads            loss
=========  ===============  ==========================================
triplet    ``triplet``      batch-all triplet on the embeddings (OpenGait)
ce         ``softmax``      cross-entropy on the BNNeck logits (OpenGait)
distill    ``softmax``      vanilla KD (Eq. 13) against the teacher's logits
distill    ``triplet``      IDD (Eqs. 14-15) against the teacher's embeddings
                            (``idd``: per part, mean-normalised distances;
                            ``idd_paper``: the equations as printed)
=========  ===============  ==========================================

A model without ``softmax`` (GaitSet, GaitPart) has no cross-entropy term, and
KD cannot distil it (IDD can).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..losses import CrossEntropyLoss, IDDLoss, KDLoss, TripletLoss
from .config import DistillConfig, LossConfig

#: The ``training_feat`` entry each kind of distillation reads.
DISTILLATION_READS = {"kd": "softmax", "idd": "triplet", "idd_paper": "triplet"}


@dataclass(frozen=True)
class LossTerm:
    """One summand of the training loss: logged as ``name``, reading ``training_feat[reads]``."""

    name: str
    reads: str
    loss: nn.Module
    distills: bool = False      # compares with the teacher's output of the same name
    needs_labels: bool = True

    def __call__(self, inputs: Mapping[str, Tensor], labels: Tensor,
                 teacher_inputs: Mapping[str, Tensor] | None = None) -> tuple[Tensor, dict]:
        x = inputs[self.reads]
        if not self.distills:
            return self.loss(x, labels)
        teacher = teacher_inputs[self.reads]
        return self.loss(x, teacher, labels) if self.needs_labels else self.loss(x, teacher)


def supervised_terms(cfg: LossConfig) -> list[LossTerm]:
    """The triplet and cross-entropy terms (OpenGait's GaitBase losses, both weight 1 by default)."""
    return [LossTerm("triplet", "triplet", TripletLoss(margin=cfg.triplet_margin, weight=cfg.triplet_weight)),
            LossTerm("ce", "softmax", CrossEntropyLoss(scale=cfg.ce_scale, label_smoothing=cfg.label_smoothing,
                                                       weight=cfg.ce_weight))]


def distillation_term(d: DistillConfig, cfg: LossConfig) -> LossTerm | None:
    """The stage's distillation term, or None for ``distill.kind = "none"``."""
    if d.kind == "none":
        return None
    if d.kind == "kd":
        return LossTerm("distill", DISTILLATION_READS["kd"],
                        KDLoss(temperature=d.kd_temperature, scale=cfg.ce_scale, weight=d.weight),
                        distills=True, needs_labels=False)
    if d.kind == "idd_paper":
        return LossTerm("distill", DISTILLATION_READS["idd_paper"], IDDLoss.as_printed(weight=d.weight),
                        distills=True)
    return LossTerm("distill", DISTILLATION_READS["idd"],
                    IDDLoss(tau=d.idd_tau, distance=d.idd_distance, normalize=d.idd_normalize, weight=d.weight),
                    distills=True)


def check_inputs(terms: list[LossTerm], inputs: Mapping[str, Tensor], model_name: str,
                 teacher_inputs: Mapping[str, Tensor] | None = None, where: str = "distill") -> None:
    """Fail clearly when a distillation term reads an output the student or teacher lacks."""
    for term in terms:
        if not term.distills:
            continue
        for who, given in (("the model", inputs), ("the teacher", teacher_inputs or {})):
            if term.reads not in given:
                raise ConfigError(
                    f"{where}: {type(term.loss).__name__} distils training_feat[{term.reads!r}], which "
                    f"{who} ({model_name}) does not give (it gives {sorted(given)}); a model without "
                    "logits can be distilled with distill.kind=idd")


def total_loss(terms: list[LossTerm], inputs: Mapping[str, Tensor], labels: Tensor,
               teacher_inputs: Mapping[str, Tensor] | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """The sum of the terms whose input the model gives, and each term's logged value."""
    total: Tensor | None = None
    parts: dict[str, Tensor] = {}
    for term in terms:
        if term.reads not in inputs:
            continue
        value, info = term(inputs, labels, teacher_inputs)
        total = value if total is None else total + value
        parts[term.name] = info["loss"]
        if term.name == "ce":
            parts["accuracy"] = info.get("accuracy", torch.zeros(()))
    return total, parts
