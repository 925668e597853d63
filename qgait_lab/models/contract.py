"""The model contract: what a gait model's forward returns (OpenGait's convention).

``model(sils, seqL)`` returns a dict with two entries:

* ``training_feat``: one named input per loss.  ``"triplet"`` holds
  ``{"embeddings": [n, c, p]}`` (the triplet loss, and IDD, read it);
  ``"softmax"`` holds ``{"logits": [n, classes, p]}`` (cross-entropy, and
  vanilla KD, read it).  A model without a classification head, such as
  GaitSet or GaitPart, gives ``"triplet"`` alone, and so trains without
  cross-entropy or KD.
* ``inference_feat``: ``{"embeddings": [n, c, p]}``, what evaluation
  compares.

Unlike OpenGait the labels are not part of the output: the trainer holds them
and hands them to each loss.  Any module that keeps this contract trains,
quantizes, distils and evaluates with :mod:`qgait_lab.training` unchanged.
"""
from __future__ import annotations

from typing import Mapping

from torch import Tensor

from ..errors import QGaitError

#: The ``training_feat`` names and the tensor each one carries.
TRAINING_INPUTS = {"triplet": "embeddings", "softmax": "logits"}


class ModelContractError(QGaitError, TypeError):
    """A model's forward output does not follow the contract; the message says what is missing."""


def gait_output(embeddings: Tensor, logits: Tensor | None = None,
                inference: Tensor | None = None) -> dict:
    """The contract's dict: ``embeddings`` for the triplet loss, ``logits`` (if any) for
    cross-entropy, and ``inference`` (default: ``embeddings``) for evaluation."""
    training = {"triplet": {"embeddings": embeddings}}
    if logits is not None:
        training["softmax"] = {"logits": logits}
    return {"training_feat": training,
            "inference_feat": {"embeddings": embeddings if inference is None else inference}}


def training_inputs(output: Mapping, model_name: str = "the model") -> dict[str, Tensor]:
    """``{loss input name: tensor}`` of a forward output, e.g. ``{"triplet": emb, "softmax": logits}``.

    Raises :class:`ModelContractError` naming what is missing or unknown.
    """
    feats = _entry(output, "training_feat", model_name)
    out = {}
    for name, value in feats.items():
        if name not in TRAINING_INPUTS:
            raise ModelContractError(f"{model_name}'s training_feat has {name!r}; the losses read "
                                     f"{sorted(TRAINING_INPUTS)}")
        key = TRAINING_INPUTS[name]
        if not isinstance(value, Mapping) or key not in value:
            raise ModelContractError(f"{model_name}'s training_feat[{name!r}] must be a dict with "
                                     f"{key!r}, got {_describe(value)}")
        out[name] = value[key]
    if "triplet" not in out:
        raise ModelContractError(f"{model_name}'s training_feat has no 'triplet' entry: every gait "
                                 "model gives embeddings for the triplet loss")
    return out


def inference_embeddings(output: Mapping, model_name: str = "the model") -> Tensor:
    """The embeddings evaluation compares: ``output["inference_feat"]["embeddings"]``."""
    feat = _entry(output, "inference_feat", model_name)
    if "embeddings" not in feat:
        raise ModelContractError(f"{model_name}'s inference_feat has no 'embeddings' "
                                 f"(it has {sorted(feat)})")
    return feat["embeddings"]


def _entry(output: Mapping, key: str, model_name: str) -> Mapping:
    if not isinstance(output, Mapping) or not isinstance(output.get(key), Mapping):
        raise ModelContractError(
            f"{model_name}'s forward must return a dict with 'training_feat' and 'inference_feat' "
            f"(qgait_lab.models.contract); its {key!r} is {_describe(output.get(key) if isinstance(output, Mapping) else output)}")
    return output[key]


def _describe(value) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, Mapping):
        return f"a dict with keys {sorted(value)}"
    return type(value).__name__ if value is not None else "missing"
