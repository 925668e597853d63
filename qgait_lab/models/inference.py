"""A model prepared for inference: BatchNorm folded into its convolutions, fake-quantized weights baked.

In eval mode a BatchNorm is a fixed affine map per channel, ``y = s x + t`` with
``s = gamma / sigma`` and ``t = beta - s mu``; after a convolution ``W`` it is
the convolution ``s W`` with bias ``t`` (Jacob et al. 2018, Sec. 3.2).  A
fake-quantized layer's weights do not change either, so ``Q(W)`` can be
computed once instead of at every batch.  :func:`inference_copy` does this on a
copy and leaves each layer's *input* quantizer in place.

Baking the weights changes no value.  Folding does change float rounding: a
float model's embeddings move by about 1e-7 relative, but in a quantized model
the next layer's input quantizer turns some of those tiny moves into a whole
step (a value that sat on a rounding boundary), and the flips spread: LSQ-4's
embeddings moved by 1e-3 relative, enough to change a Rank-1 by a few probes.
So by default a model with activation quantizers keeps its BatchNorms and only
has its weights baked, and computes exactly what the model computes
(``tests/test_inference.py``).  Training outputs of the copy (the BNNeck
logits) are those of the model too; the copy is for embeddings, in eval mode
only.

A model says which BatchNorm reads which convolution's output by a
``conv_batchnorm_pairs()`` method on any of its modules, returning
``(conv name, batchnorm name)`` pairs relative to that module (GaitBase's
ResNet-9 and its blocks do; GaitSet and GaitPart have no BatchNorm).
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from ..quant.modules import QuantizedLayer


def batchnorm_affine(bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """BatchNorm (eval mode) as ``(gamma / sigma, beta - gamma mu / sigma)`` in float64."""
    sigma = (bn.running_var.double() + bn.eps).sqrt()
    gamma = bn.weight.double() if bn.affine else torch.ones_like(sigma)
    beta = bn.bias.double() if bn.affine else torch.zeros_like(sigma)
    scale = gamma / sigma
    return scale.detach(), (beta - scale * bn.running_mean.double()).detach()


def _effective_weight(layer: nn.Module) -> Tensor:
    name = getattr(layer, "quant_weight_name", "weight")
    weight = getattr(layer, name)
    if isinstance(layer, QuantizedLayer):
        weight = layer.quantized_weight(weight)
    return weight.detach()


def _bake_weights(layer: nn.Module) -> None:
    """``Q(W)`` once, in place of ``W``; the layer then skips its weight quantizer.

    The quantizer's output is kept as it is, strides included: it is the very
    tensor the model convolves with.
    """
    if isinstance(layer, QuantizedLayer) and layer.weight_quantizer is not None:
        getattr(layer, layer.quant_weight_name).data = _effective_weight(layer)
        layer.weight_quantizer = None


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """``bn(conv(x))`` as one convolution with a bias (``conv`` changed in place)."""
    if bn.track_running_stats is False or bn.running_mean is None:
        raise ValueError("a BatchNorm without running statistics cannot be folded")
    scale, shift = batchnorm_affine(bn)
    effective = _effective_weight(conv)
    weight = effective.double() * scale.view(-1, *([1] * (conv.weight.dim() - 1)))
    bias = shift if conv.bias is None else shift + scale * conv.bias.double()
    if isinstance(conv, QuantizedLayer):
        conv.weight_quantizer = None
    conv.weight = nn.Parameter(_like(weight, effective), requires_grad=False)
    conv.bias = nn.Parameter(bias.to(conv.weight.dtype), requires_grad=False)


def _like(new: Tensor, old: Tensor) -> Tensor:
    """``new`` in ``old``'s dtype and exact strides (NHWC weights stay NHWC, size-1 dimensions included:
    the convolution reads them to choose its output's layout, and with it its arithmetic)."""
    return torch.empty_strided(old.shape, old.stride(), dtype=old.dtype, device=old.device).copy_(new)


def _has_activation_quantizers(model: nn.Module) -> bool:
    return any(getattr(m, "act_quantizer", None) is not None for m in model.modules())


@torch.no_grad()
def inference_copy(model: nn.Module, fold_batchnorm: bool | None = None) -> nn.Module:
    """An eval-mode copy of ``model`` with quantized weights baked and, in a float model, BatchNorm folded.

    ``fold_batchnorm``: ``None`` (default) folds only when ``model`` has no
    activation quantizers, the case where folding moves embeddings by float
    rounding alone (see the module); ``True`` folds in any model.
    """
    model = copy.deepcopy(model).eval()
    if fold_batchnorm is None:
        fold_batchnorm = not _has_activation_quantizers(model)
    modules = dict(model.named_modules()) if fold_batchnorm else {}
    for prefix, owner in list(modules.items()):
        pairs = getattr(owner, "conv_batchnorm_pairs", None)
        if pairs is None:
            continue
        for conv_name, bn_name in pairs():
            full = f"{prefix}.{conv_name}" if prefix else conv_name
            bn_full = f"{prefix}.{bn_name}" if prefix else bn_name
            _fold(modules[full], modules[bn_full])
            parent, _, leaf = bn_full.rpartition(".")
            setattr(modules[parent] if parent else model, leaf, nn.Identity())
    for m in model.modules():
        _bake_weights(m)
    for p in model.parameters():
        p.requires_grad_(False)
    return model
