"""Checkpoints: atomic saves, safe loads, and clear errors on mismatches.

A checkpoint is a plain dict of tensors and Python primitives, written to a
temporary file in the same folder, flushed to disk and renamed over the old
one, so an interrupted or failed save leaves the previous checkpoint intact.
Loading always uses ``torch.load(weights_only=True)``: a checkpoint cannot run
code.  OpenGait checkpoints (a dict whose ``model`` entry holds GaitBase's
state dict) load the same way.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..errors import QGaitError


class CheckpointError(QGaitError, ValueError):
    """A checkpoint cannot be read or does not fit the model; the message says why."""


def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically (temp file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(dict(state), fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint with ``weights_only=True``; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or unsafe files
        raise CheckpointError(f"{path}: cannot be read as a safe checkpoint "
                              f"(truncated, corrupt, or holds code objects): {err}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a dict, found {type(state).__name__}")
    return state


def model_state_of(checkpoint: Mapping[str, Any]) -> Mapping[str, Any]:
    """The model's state dict inside a checkpoint (ours or OpenGait's: key ``model``)."""
    if "model" in checkpoint and isinstance(checkpoint["model"], Mapping):
        state = checkpoint["model"]
    else:
        state = checkpoint
    if any(k.startswith("module.") for k in state):   # saved from a DDP wrapper
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def check_finite(state: Mapping[str, Any], source: str) -> None:
    bad = [k for k, v in state.items()
           if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{source}: {len(bad)} tensors hold NaN or Inf, e.g. {bad[:3]}")


def load_model_state(model: nn.Module, state: Mapping[str, Any], source: str = "checkpoint",
                     strict: bool = True) -> None:
    """Load ``state`` into ``model``, listing every missing, unexpected or mis-shaped key."""
    check_finite(state, source)
    own = model.state_dict()
    shape_errors = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                    for k, v in state.items()
                    if k in own and torch.is_tensor(v) and v.shape != own[k].shape]
    missing = sorted(set(own) - set(state)) if strict else []
    unexpected = sorted(set(state) - set(own)) if strict else []
    if shape_errors or missing or unexpected:
        lines = [f"{source} does not fit the model (another architecture or class count?)"]
        if shape_errors:
            lines.append("  mismatched shapes:\n    " + "\n    ".join(shape_errors))
        if missing:
            lines.append(f"  missing keys ({len(missing)}): " + ", ".join(missing[:10]))
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): " + ", ".join(unexpected[:10]))
        raise CheckpointError("\n".join(lines))
    model.load_state_dict(state, strict=strict)
