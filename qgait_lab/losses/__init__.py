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

from .cross_entropy import CrossEntropyLoss, cross_entropy_loss
from .distances import part_distances
from .distillation import KDLoss, kd_loss
from .idd import IDDLoss, idd_loss, idd_loss_from_distances
from .idd import DistanceMode, NormalizeMode  # noqa: F401  (option types, read by training.config)
from .inputs import LossInfo, LossInputError, NotEnoughIdentitiesError
from .triplet import TripletLoss, triplet_loss

__all__ = [
    "LossInfo", "LossInputError", "NotEnoughIdentitiesError",
    "part_distances", "triplet_loss", "cross_entropy_loss", "kd_loss", "idd_loss",
    "idd_loss_from_distances",
    "TripletLoss", "CrossEntropyLoss", "KDLoss", "IDDLoss",
]
