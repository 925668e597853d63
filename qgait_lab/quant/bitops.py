"""MACs and BitOPs, counted by forward hooks (paper Sec. 4.1).

BitOPs of a layer = ``(b_w / 32) * (b_a / 32) * MACs``, summed over conv and
linear layers (and layers that report their own ``count_macs``) for one
forward pass of the whole sequence.  Each layer's bits are read from the layer
itself while the hook runs, so per-layer policies are followed.

The count runs on the ``meta`` device by default: only shapes flow, so the
full-size GaitBase on 100 frames costs nothing to count.

On GaitBase at 64x44 this gives 1.178 GMAC per frame, 117.81 G for 100 frames.
The paper's 118.30 G is 0.4 % higher; the gap equals BatchNorm counted at four
operations per element, the convention of the ``thop`` profiler.  The paper's
w8a8 and w4a4 figures are 118.30/16 and 118.30/64, i.e. every layer at the same
bits, which is this module's default policy.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from .modules import FULL_PRECISION_BITS, QuantizedLayer


@dataclass
class LayerCost:
    """MACs of one layer for one forward pass, and the bits it runs at."""

    name: str
    kind: str
    macs: int
    w_bits: int
    a_bits: int

    @property
    def bitops(self) -> float:
        return self.macs * (self.w_bits / 32.0) * (self.a_bits / 32.0)


def _layer_macs(module: nn.Module, inputs: tuple, output) -> int | None:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return output.numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    if hasattr(module, "count_macs"):
        return int(module.count_macs(inputs, output))
    return None


def _bits_of(module: nn.Module) -> tuple[int, int]:
    if isinstance(module, QuantizedLayer) and hasattr(module, "weight_quantizer"):
        return module.w_bits, module.a_bits
    return FULL_PRECISION_BITS, FULL_PRECISION_BITS


def count_costs(model: nn.Module, *inputs, meta: bool = True,
                include: Callable[[str, nn.Module], bool] | None = None, **kwargs) -> list[LayerCost]:
    """Run one forward pass and return the cost of every counted layer.

    ``meta=True`` runs a deep copy of the model on the meta device (shapes only).
    ``include(name, module)`` filters layers (default: all that have MACs).
    """
    if meta:
        model = copy.deepcopy(model).to("meta")
        inputs = tuple(x.to("meta") if isinstance(x, Tensor) else x for x in inputs)
    costs: list[LayerCost] = []
    handles = []
    for name, module in model.named_modules():
        if include is not None and not include(name, module):
            continue

        def hook(mod, args, output, name=name):
            macs = _layer_macs(mod, args, output)
            if macs is not None:
                costs.append(LayerCost(name, type(mod).__name__, macs, *_bits_of(mod)))

        handles.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*inputs, **kwargs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return costs


def summarize(costs: Sequence[LayerCost]) -> dict[str, float]:
    return {"macs": float(sum(c.macs for c in costs)),
            "bitops": float(sum(c.bitops for c in costs)),
            "layers": len(costs)}


def gaitbase_inference_layers(name: str, module: nn.Module) -> bool:
    """GaitBase's inference path: everything but the training-only BNNeck head."""
    return not name.startswith("BNNecks")


def costs_as_dicts(costs: Sequence[LayerCost]) -> list[dict]:
    return [dict(asdict(c), bitops=c.bitops) for c in costs]


def bitops_table(build_model: Callable[[], nn.Module], inputs: Sequence[Tensor],
                 bits: Sequence[int], method: str = "lsq", policy=None,
                 include: Callable[[str, nn.Module], bool] | None = None) -> list[dict]:
    """MACs and BitOPs of a model at several uniform bit-widths (32 = full precision).

    ``build_model`` returns a fresh float model; for each bit-width it is
    quantized with ``quantize_model`` (following ``policy``) and counted.
    """
    from .convert import quantize_model  # local: convert imports this package's modules

    rows = []
    for b in bits:
        model = build_model()
        if b != FULL_PRECISION_BITS:
            model = quantize_model(model, method, b, b, policy)
        total = summarize(count_costs(model, *inputs, include=include))
        label = "32 (full precision)" if b == FULL_PRECISION_BITS else f"w{b}a{b}"
        rows.append({"bits": b, "label": label, "macs": total["macs"], "bitops": total["bitops"],
                     "layers": int(total["layers"])})
    return rows


def format_bitops_table(rows: Sequence[dict]) -> str:
    lines = [f"{'bit-width':<22}{'MACs (G)':>12}{'BitOPs (G)':>14}{'layers':>8}"]
    for r in rows:
        lines.append(f"{r['label']:<22}{r['macs'] / 1e9:>12.2f}{r['bitops'] / 1e9:>14.2f}"
                     f"{r['layers']:>8d}")
    return "\n".join(lines)
