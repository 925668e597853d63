"""Gait models with OpenGait's names, and a registry so configs can name them.

Every model keeps the model contract (:mod:`.contract`): its forward returns
``training_feat`` (the named loss inputs) and ``inference_feat``.
"""
from __future__ import annotations

import inspect
from typing import Literal, get_args

from torch import nn

from ..errors import ConfigError
from .contract import gait_output, inference_embeddings, training_inputs
from .gaitbase import PAPER_CHANNELS, GaitBase, count_parameters
from .gaitpart import GaitPart
from .gaitset import GaitSet

ModelName = Literal["gaitbase", "gaitset", "gaitpart"]
MODELS: dict[str, type[nn.Module]] = {"gaitbase": GaitBase, "gaitset": GaitSet, "gaitpart": GaitPart}
assert set(MODELS) == set(get_args(ModelName))
#: The OpenGait configurations a model may have (its class's ``CONFIGS``), named after their dataset.
OpenGaitConfigName = Literal["casia-b", "grew", "oumvlp"]
assert all(set(getattr(cls, "CONFIGS", {})) <= set(get_args(OpenGaitConfigName)) for cls in MODELS.values())


def configuration_for(name: str, dataset_layout: str) -> str | None:
    """The OpenGait configuration a model has for a dataset layout (GaitSet on GREW: ``"grew"``), if any."""
    return dataset_layout if dataset_layout in getattr(MODELS[name], "CONFIGS", {}) else None


def build_model(name: str, config: str | None = None, num_classes: int | None = None,
                where: str = "model", **kwargs) -> nn.Module:
    """Build a registered model by name (``"gaitbase"``, ``"gaitset"``, ``"gaitpart"``).

    ``config`` names one of the model's OpenGait configurations (its class's
    ``CONFIGS``: ``"casia-b"``, ``"grew"``, ``"oumvlp"``); ``kwargs`` are
    constructor arguments on top of it.  ``num_classes`` goes to the models that
    have a classification head (GaitBase) and is ignored by the others.
    ``where`` names the config option in error messages.
    """
    try:
        cls = MODELS[name.lower()]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known models: {sorted(MODELS)}") from None
    if config is not None:
        configs = getattr(cls, "CONFIGS", {})
        if config not in configs:
            known = sorted(configs) or "none"
            raise ConfigError(f"model {name!r} has no configuration {config!r}; its configurations: {known}")
        kwargs = {**configs[config], **kwargs}
    accepted = set(inspect.signature(cls).parameters)
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ConfigError(f"{where}: {cls.__name__} has no argument {', '.join(map(repr, unknown))}; it takes "
                          f"{', '.join(sorted(accepted - {'num_classes'}))}")
    if num_classes is not None and "num_classes" in accepted:
        kwargs["num_classes"] = num_classes
    return cls(**kwargs)


__all__ = ["MODELS", "ModelName", "OpenGaitConfigName", "build_model", "configuration_for", "gait_output", "inference_embeddings",
           "training_inputs", "GaitBase", "GaitPart", "GaitSet", "PAPER_CHANNELS", "count_parameters"]
