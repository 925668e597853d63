"""How close the integer model is to the fake-quantized model it came from.

:func:`fake_quant_codes` records the integer codes behind every quantized
activation of the fake-quantized model (each quantizer's output divided by
its step); :func:`compare_codes` sets them beside the integer model's, layer by
layer.  The acceptance bar (issue 14, ``tests/test_deploy.py``): at least
99.99 % of the codes identical, none more than one step apart, embedding
cosine at least 0.9999.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..models.contract import inference_embeddings
from ..models.inference import inference_copy
from .grids import activation_grid, codes_of
from .integer_model import IntegerGaitBase

__all__ = ["CodeAgreement", "reference_copy", "fake_quant_codes", "rounding_margins", "compare_codes",
           "embedding_cosine"]


@dataclass(frozen=True)
class CodeAgreement:
    """Agreement of two sets of codes: overall and for the worst layer."""

    elements: int
    identical: int
    max_step: int
    worst_layer: str
    worst_fraction: float

    @property
    def fraction(self) -> float:
        return self.identical / max(self.elements, 1)

    @property
    def differing(self) -> int:
        return self.elements - self.identical

    def __str__(self) -> str:
        return (f"{100 * self.fraction:.4f} % identical ({self.differing} of {self.elements} differ, "
                f"at most {self.max_step} step); worst layer {self.worst_layer} "
                f"{100 * self.worst_fraction:.4f} %")


class _EmbeddingsOnly(nn.Module):
    """Stands in for the BNNecks (training-only, and float32 by construction) in a float64 copy."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x, x


def reference_copy(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A ``dtype`` copy of ``model`` convolving with the float32 model's fake-quantized weights.

    The weights are baked as training quantized them (``round(w / s)`` in
    float32, the codes :func:`~qgait_lab.deploy.grids.weight_codes` reads);
    quantizing the float weights again in float64 would move any weight within
    float32's rounding of a tie to the other code (one of the 74 k weights of a
    trained LSQ-8 ``layer4.0.conv1`` sat 9e-8 of a step from one): another
    model, not the same arithmetic at a finer precision.  BatchNorm stays, and
    so does every input quantizer.
    """
    copied = inference_copy(model, fold_batchnorm=False).to(dtype)
    copied.BNNecks = _EmbeddingsOnly()
    return copied


@torch.no_grad()
def rounding_margins(model: nn.Module, integer: IntegerGaitBase, sils: Tensor) -> dict[str, Tensor]:
    """``{layer: |frac(x / step) - 1/2|}``: how far, in steps, each value a quantized layer reads lies
    from the boundary between two codes, in a float64 copy of the fake-quantized ``model``.

    Where the integer reference and the float64 model disagree, the first layer that does should do
    so only at near-ties (margins of about 2**-24 or less); ``tests/test_deploy.py`` checks it.
    """
    model, sils = reference_copy(model, torch.float64), sils.double()
    modules = dict(model.named_modules())
    margins: dict[str, Tensor] = {}
    hooks = []
    for layer in integer.layers():
        def hook(_module, inputs, _output, name=layer.name, grid=layer.input_grid):
            v = inputs[0] / grid.scale
            margins[name] = (v - v.floor() - 0.5).abs()
        hooks.append(modules[layer.name].act_quantizer.register_forward_hook(hook))
    model.eval()
    try:
        model(sils)
    finally:
        for h in hooks:
            h.remove()
    return margins


@torch.no_grad()
def fake_quant_codes(model: nn.Module, integer: IntegerGaitBase, sils: Tensor,
                     dtype: torch.dtype = torch.float32) -> tuple[dict[str, Tensor], Tensor]:
    """``({layer: codes}, embeddings)`` of the fake-quantized ``model`` on ``sils`` (eval mode).

    ``dtype=torch.float64`` runs a float64 copy of the model: the same
    arithmetic without float32's rounding, against which the integer
    reference agrees code for code (``tests/test_deploy.py``).
    """
    if dtype != torch.float32:
        model, sils = reference_copy(model, dtype), sils.to(dtype)
    grids = {layer.name: layer.input_grid for layer in integer.layers()}
    modules = dict(model.named_modules())
    found: dict[str, Tensor] = {}
    hooks = []
    for name, grid in grids.items():
        quantizer = modules[name].act_quantizer
        activation_grid(quantizer, name)          # the same checks as the export

        def hook(_module, _inputs, output, name=name, grid=grid):
            found[name] = codes_of(output, grid).to(torch.int64)
        hooks.append(quantizer.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        embeddings = inference_embeddings(model(sils))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return found, embeddings


def compare_codes(a: dict[str, Tensor], b: dict[str, Tensor]) -> CodeAgreement:
    """Element-wise agreement of the codes of the layers both ``a`` and ``b`` hold."""
    elements = identical = max_step = 0
    worst, worst_fraction = "", 1.0
    for name in a:
        x, y = a[name].reshape(-1).to(torch.int64), b[name].reshape(-1).to(torch.int64)
        if x.shape != y.shape:
            raise ValueError(f"layer {name}: {tuple(a[name].shape)} codes against {tuple(b[name].shape)}")
        same = int((x == y).sum())
        elements += x.numel()
        identical += same
        if x.numel():
            max_step = max(max_step, int((x - y).abs().max()))
            fraction = same / x.numel()
            if fraction < worst_fraction or not worst:
                worst, worst_fraction = name, fraction
    return CodeAgreement(elements, identical, max_step, worst, worst_fraction)


def embedding_cosine(a: Tensor, b: Tensor) -> float:
    """The smallest cosine similarity between corresponding flattened embeddings."""
    a, b = a.reshape(a.shape[0], -1).double(), b.reshape(b.shape[0], -1).double()
    return float(torch.nn.functional.cosine_similarity(a, b, dim=1).min())
