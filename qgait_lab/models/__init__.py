"""Models and a small registry so configs can name them."""
from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from .gaitbase import PAPER_CHANNELS, GaitBase, count_parameters
from .gaitpart import GaitPart
from .gaitset import GaitSet

MODELS: dict[str, type[nn.Module]] = {"gaitbase": GaitBase, "gaitset": GaitSet, "gaitpart": GaitPart}


def build_model(name: str, config: str | None = None, **kwargs) -> nn.Module:
    """Build a registered model by name (``"gaitbase"``, ``"gaitset"``, ``"gaitpart"``).

    ``config`` names one of the model's OpenGait configurations (its class's
    ``CONFIGS``: ``"casia-b"``, ``"grew"``, ``"oumvlp"``); ``kwargs`` override it.
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
    return cls(**kwargs)


__all__ = ["MODELS", "build_model", "GaitBase", "GaitPart", "GaitSet", "PAPER_CHANNELS", "count_parameters"]
