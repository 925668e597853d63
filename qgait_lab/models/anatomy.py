"""GaitBase taken apart along Eq. 1: the shape after each part and the parameters it holds.

The paper writes the model as ``X = M(S) = F ∘ P ∘ B(S)`` (Eq. 1) and the
logits as ``O = K(X)``:

* ``B``, the backbone (ResNet9), runs on every frame on its own;
* ``P`` pools: a max over the frames (temporal pooling), then a 16-bin
  horizontal pyramid (mean + max over each strip of rows);
* ``F``, the separate fully connected layers, maps each part 512 -> 256;
* ``K``, the BNNeck, turns the embedding into per-part logits for the
  cross-entropy loss (training only: retrieval uses ``X``).

:func:`gaitbase_parts` runs one forward pass with hooks on the modules that
implement these parts and reports the shape each one produces, so a notebook
can show where the frame axis disappears and where the parameters sit.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .gaitbase import count_parameters

__all__ = ["PartShape", "gaitbase_parts", "parameters_without_bnneck", "parts_table"]


@dataclass(frozen=True)
class PartShape:
    """One step of Eq. 1.

    Attributes:
        symbol: the paper's letter (``"S"`` for the input, then ``"B"``, ``"P"``, ``"F"``, ``"K"``).
        name: what the step does.
        module: the attribute of :class:`~qgait_lab.models.gaitbase.GaitBase` that does it
            (``""`` for the input and for the temporal max, which is a function).
        shape: the shape of what the step produces.
        parameters: the learnable parameters of the step (0 for pooling).
        per_frame: whether the step runs once per frame (only ``B``).
    """

    symbol: str
    name: str
    module: str
    shape: tuple[int, ...]
    parameters: int
    per_frame: bool = False


def gaitbase_parts(model: nn.Module, sils: torch.Tensor) -> list[PartShape]:
    """The shape after each part of Eq. 1 for one forward pass of ``model`` on ``sils``.

    Args:
        model: a :class:`~qgait_lab.models.gaitbase.GaitBase` (any widths, quantized or not).
        sils: model input ``[n, T, H, W]`` in [0, 1], or one sequence ``[T, H, W]``.

    The pass runs in eval mode without gradients (BatchNorm's batch statistics
    would need more than one sequence) and restores the model's mode.
    """
    if sils.dim() == 3:
        sils = sils[None]
    seen: dict[str, object] = {}

    def keep(name: str, what: str):
        def hook(module, inputs, output):
            seen[name] = inputs[0] if what == "input" else output
        return hook

    hooks = [model.Backbone.forward_block.register_forward_hook(keep("B", "output")),
             model.HPP.register_forward_hook(keep("P_time", "input")),
             model.HPP.register_forward_hook(keep("P_parts", "output")),
             model.FCs.register_forward_hook(keep("F", "output")),
             model.BNNecks.register_forward_hook(keep("K", "output"))]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(sils.to(next(model.parameters()).device, torch.float32))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    bins = model.HPP.bin_num[0]
    shape = lambda key: tuple(int(s) for s in seen[key].shape)  # noqa: E731
    return [
        PartShape("S", "input silhouettes (sequences, frames, rows, columns)", "", tuple(sils.shape), 0),
        PartShape("B", "backbone ResNet9, every frame on its own (sequences × frames, channels, rows, columns)",
                  "Backbone", shape("B"), count_parameters(model.Backbone), per_frame=True),
        PartShape("P", "temporal max over the frames (sequences, channels, rows, columns)", "", shape("P_time"), 0),
        PartShape("P", f"horizontal pyramid, {bins} strips, mean + max (sequences, channels, parts)", "HPP",
                  shape("P_parts"), count_parameters(model.HPP)),
        PartShape("F", "separate FCs, one per part: the embedding X (sequences, channels, parts)", "FCs",
                  shape("F"), count_parameters(model.FCs)),
        PartShape("K", "BNNeck: BatchNorm, then cosine logits O per part (sequences, classes, parts)", "BNNecks",
                  tuple(int(s) for s in seen["K"][1].shape), count_parameters(model.BNNecks)),
    ]


def parameters_without_bnneck(model: nn.Module) -> int:
    """Parameters used at inference: everything but the BNNeck ``K`` (retrieval uses ``X``, Eq. 1)."""
    return count_parameters(model) - count_parameters(model.BNNecks)


def parts_table(parts: list[PartShape], parameters: bool = True) -> str:
    """A markdown table of :func:`gaitbase_parts` (with or without the parameter column)."""
    head = "| part | what it does | output shape |" + (" parameters |" if parameters else "")
    rule = "|---|---|---|" + ("---:|" if parameters else "")
    rows = [head, rule]
    for p in parts:
        shape = " × ".join(str(s) for s in p.shape)
        row = f"| {p.symbol} | {p.name} | {shape} |"
        rows.append(row + (f" {p.parameters:,} |" if parameters else ""))
    if parameters:
        rows.append(f"| | total | | {sum(p.parameters for p in parts):,} |")
    return "\n".join(rows)
