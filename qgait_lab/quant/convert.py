"""Turn any float ``nn.Module`` into a fake-quantized one.

``quantize_model`` swaps every ``nn.Conv2d`` and ``nn.Linear`` (and every layer
built on :class:`~qgait_lab.quant.modules.QuantizedLayer`) for its quantized
version, in place, keeping parameter names so float checkpoints still load.
A :class:`LayerPolicy` decides per layer: the first and last layers may get
their own bits (LSQ keeps them at 8; the paper's BitOPs imply the same bits
everywhere, which is the default), and layers matching ``skip`` stay float.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Iterator, Literal, get_args

import torch
from torch import nn

from ..errors import ConfigError
from .modules import FULL_PRECISION_BITS, QConv2d, QLinear, QuantizedLayer
from .quantizers import (GRADIENT_MODES, DoReFaActQuantizer, DoReFaWeightQuantizer,
                         LSQQuantizer, PACTQuantizer, Quantizer, validate_bits, validate_k)

QuantizerName = Literal["lsq", "dorefa", "pact"]
METHODS: tuple[str, ...] = get_args(QuantizerName)


@dataclass
class QuantizerOptions:
    """Settings shared by all quantizers of a model.

    ``gradient``: "ste" (stage 1) or "soft" (theta_k, stage 2); ``k``: theta_k's
    sharpness; ``per_channel``: LSQ weight steps per output channel (LSQ's paper
    uses per-tensor); ``pact_alpha_init`` / ``pact_alpha_l2``: PACT's clip start
    and its L2 weight.
    """

    gradient: str = "ste"
    k: float = 1.0
    per_channel: bool = False
    pact_alpha_init: float = 10.0
    pact_alpha_l2: float = 2e-4

    def __post_init__(self) -> None:
        if self.gradient not in GRADIENT_MODES:
            raise ConfigError(f"quant gradient must be one of {GRADIENT_MODES}, got {self.gradient!r}")
        validate_k(self.k)


@dataclass
class LayerPolicy:
    """Which bits each layer gets.

    ``first_layer_bits`` / ``last_layer_bits``: ``(w_bits, a_bits)`` for the first
    and last quantizable layer in module order, or ``None`` for "same as the
    rest".  32 means "leave this part in full precision".  ``skip``: glob
    patterns of module names that stay float.  ``overrides``: exact names to
    ``(w_bits, a_bits)``.
    """

    first_layer_bits: tuple[int, int] | None = None
    last_layer_bits: tuple[int, int] | None = None
    skip: tuple[str, ...] = ()
    overrides: dict[str, tuple[int, int]] = field(default_factory=dict)

    def bits_for(self, name: str, index: int, count: int, default: tuple[int, int]) -> tuple[int, int]:
        if name in self.overrides:
            return tuple(self.overrides[name])  # type: ignore[return-value]
        if index == 0 and self.first_layer_bits is not None:
            return tuple(self.first_layer_bits)  # type: ignore[return-value]
        if index == count - 1 and self.last_layer_bits is not None:
            return tuple(self.last_layer_bits)  # type: ignore[return-value]
        return default

    def skips(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.skip)


def _check_bits(bits: object, what: str) -> int:
    if bits == FULL_PRECISION_BITS:
        return FULL_PRECISION_BITS
    return validate_bits(bits, what)


def make_weight_quantizer(method: str, bits: int, channels: int,
                          options: QuantizerOptions) -> Quantizer | None:
    if bits == FULL_PRECISION_BITS:
        return None
    common = dict(gradient=options.gradient, k=options.k)
    if method == "lsq":
        return LSQQuantizer(bits, is_weight=True, signed=True,
                            channels=channels if options.per_channel else None, **common)
    # PACT quantizes weights the DoReFa way, as in the PACT paper.
    return DoReFaWeightQuantizer(bits, **common)


def make_act_quantizer(method: str, bits: int, options: QuantizerOptions) -> Quantizer | None:
    if bits == FULL_PRECISION_BITS:
        return None
    common = dict(gradient=options.gradient, k=options.k)
    if method == "lsq":
        return LSQQuantizer(bits, is_weight=False, signed=None, **common)
    if method == "pact":
        return PACTQuantizer(bits, alpha_init=options.pact_alpha_init,
                             alpha_l2=options.pact_alpha_l2, **common)
    return DoReFaActQuantizer(bits, **common)


def _is_candidate(module: nn.Module) -> bool:
    return isinstance(module, (nn.Conv2d, nn.Linear, QuantizedLayer))


def quantizable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Conv, linear and QuantizedLayer modules in module order."""
    return [(name, m) for name, m in model.named_modules() if name and _is_candidate(m)]


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def quantize_model(model: nn.Module, method: str = "lsq", w_bits: int = 4, a_bits: int = 4,
                   policy: LayerPolicy | None = None,
                   options: QuantizerOptions | None = None) -> nn.Module:
    """Fake-quantize the conv and linear layers of ``model`` in place and return it.

    Works on any ``nn.Module``.  ``method`` is "lsq", "dorefa" or "pact" (PACT
    clips activations and quantizes weights like DoReFa).  Parameter names are
    unchanged; each quantized layer gains ``weight_quantizer`` and
    ``act_quantizer`` children.
    """
    if method not in METHODS:
        raise ConfigError(f"quantization method must be one of {METHODS}, got {method!r}")
    default = (_check_bits(w_bits, "w_bits"), _check_bits(a_bits, "a_bits"))
    policy = policy or LayerPolicy()
    options = options or QuantizerOptions()
    layers = [(n, m) for n, m in quantizable_layers(model) if not policy.skips(n)]
    if any(isinstance(m, (QConv2d, QLinear)) for _, m in layers):
        raise ConfigError("model is already quantized; build a fresh float model first")
    for index, (name, module) in enumerate(layers):
        wb, ab = policy.bits_for(name, index, len(layers), default)
        wb, ab = _check_bits(wb, f"w_bits of {name}"), _check_bits(ab, f"a_bits of {name}")
        weight = getattr(module, getattr(module, "quant_weight_name", "weight"))
        wq = make_weight_quantizer(method, wb, weight.shape[0], options)
        aq = make_act_quantizer(method, ab, options)
        if isinstance(wq, nn.Module):
            wq.to(weight.device)
        if isinstance(aq, nn.Module):
            aq.to(weight.device)
        if isinstance(module, QuantizedLayer):
            module.attach_quantizers(wq, aq)
        elif isinstance(module, nn.Conv2d):
            _replace(model, name, QConv2d.from_float(module, wq, aq))
        else:
            _replace(model, name, QLinear.from_float(module, wq, aq))
    return model


def quantizers(model: nn.Module) -> Iterator[Quantizer]:
    """Every quantizer inside ``model``."""
    return (m for m in model.modules() if isinstance(m, Quantizer))


def set_k(model: nn.Module, k: float) -> int:
    """Set theta_k's k on every quantizer of ``model``; returns how many were set."""
    validate_k(k)
    count = 0
    for q in quantizers(model):
        q.set_k(k)
        count += 1
    return count


def set_gradient(model: nn.Module, gradient: str) -> int:
    """Switch every quantizer between "ste" (stage 1) and "soft" (stage 2)."""
    count = 0
    for q in quantizers(model):
        q.set_gradient(gradient)
        count += 1
    return count


def set_fused(model: nn.Module, fused: bool) -> int:
    """Run every quantizer's arithmetic as compiled, fused kernels (``True``) or eagerly.

    Fusing changes only the speed (see :mod:`qgait_lab.quant.kernels`); the
    values agree with the eager ones up to float summation order.
    """
    count = 0
    for q in quantizers(model):
        q.fused = bool(fused)
        count += 1
    return count


def quantizer_penalty(model: nn.Module) -> torch.Tensor | float:
    """Sum of the quantizers' regularisation terms (PACT's L2 on alpha)."""
    return sum((q.penalty() for q in quantizers(model)), 0.0)


def layer_bits(model: nn.Module) -> dict[str, tuple[int, int]]:
    """``{layer name: (w_bits, a_bits)}`` for every conv/linear/quantizable layer."""
    out = {}
    for name, m in quantizable_layers(model):
        if isinstance(m, QuantizedLayer) and hasattr(m, "weight_quantizer"):
            out[name] = (m.w_bits, m.a_bits)
        else:
            out[name] = (FULL_PRECISION_BITS, FULL_PRECISION_BITS)
    return out


def is_quantized(model: nn.Module) -> bool:
    return any(True for _ in quantizers(model))


@torch.no_grad()
def initialize_quantizers(model: nn.Module, *inputs, **kwargs) -> None:
    """Run one forward pass in eval mode so that data-driven quantizers (LSQ) set their steps.

    Call it before ``torch.compile``: initialisation reads values back from the
    tensors, which would otherwise break the compiled graph on the first step.
    """
    was_training = model.training
    model.eval()
    try:
        model(*inputs, **kwargs)
    finally:
        model.train(was_training)
