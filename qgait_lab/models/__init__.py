"""Models and a small registry so configs can name them."""
from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from .gaitbase import PAPER_CHANNELS, GaitBase, count_parameters

MODELS: dict[str, type[nn.Module]] = {"gaitbase": GaitBase}


def build_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model by name (``"gaitbase"``)."""
    try:
        cls = MODELS[name.lower()]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known models: {sorted(MODELS)}") from None
    return cls(**kwargs)


__all__ = ["MODELS", "build_model", "GaitBase", "PAPER_CHANNELS", "count_parameters"]
