"""MACs and BitOPs, counted by forward hooks (paper Sec. 4.1).

BitOPs of a layer = ``(b_w / 32) * (b_a / 32) * ops``, summed over one forward
pass of the whole sequence.  Each layer's bits are read from the layer itself
while the hook runs, so per-layer policies are followed.

What counts as an operation is a *convention* (:data:`CONVENTIONS`):

* ``"paper"``: the multiply-accumulates (MACs) of convolution and
  linear layers (and of layers that report their own ``count_macs``), **plus 4
  operations per output element of every BatchNorm**.  Four is the count of the
  ``thop`` profiler (``thop/vision/basic_hooks.py``, ``count_normalization``: 2
  per element for ``(x - mean) / std``, doubled for the affine scale and shift).
  A BatchNorm is folded into the layer that ran just before it, as it is at
  inference, and runs at that layer's bits.
* ``"conv-linear"`` (this module's default): the MACs only, the formula the
  paper writes in Sec. 4.1 and the one the course derives BitOPs from.

On GaitBase at 64x44, inference path (the training-only BNNeck head left out),
the paper convention reproduces the paper to two decimals: 118.30 G BitOPs at
100 frames (Table 1, Gait3D) and 141.96 G at 120 frames (Table 2a, GREW).  The
convolution-and-linear count gives 117.81 G and 141.38 G (1.178 GMAC per frame):
the BatchNorms add 0.122 G of output elements per 100 frames, times 4.  Because
a BatchNorm takes the bits of its convolution, the paper's w8a8 and w4a4 rows
are exactly 118.30/16 and 118.30/64, as with every layer at the same bits (this
module's default policy).  The classifier of the BNNeck head, if counted, would
add 0.01 G at 3000 classes and break the two-decimal match.

GaitSet and GaitPart (OpenGait's models, :mod:`qgait_lab.models.gaitset` and
:mod:`~qgait_lab.models.gaitpart`) have no BatchNorm, so both conventions count
their MACs alone: every 2D convolution on every frame, GaitPart's focal
convolutions once per strip, GaitPart's temporal 1D convolutions (counted like
any ``Conv1d``: output elements x input channels x kernel) and each separate-FC
head; max pooling, set pooling, the pyramid and the activations are not
counted.  At 64x44 this gives GaitSet 10.69 G at 100 frames (Table 1: 10.68 G)
and 50.68 G at 120 frames in its GREW configuration (Table 2a: 50.68 G), and
GaitPart 10.67 G (Table 1: 10.67 G) and 31.73 G (Table 2a: 31.68 G).  Without
the temporal convolutions GaitPart would count 10.61 G and 31.41 G.

The count runs on the ``meta`` device by default: only shapes flow, so the
full-size GaitBase on 100 frames costs nothing to count.
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .modules import FULL_PRECISION_BITS, QuantizedLayer


@dataclass(frozen=True)
class Convention:
    """What one BitOPs count includes.

    Attributes:
        name: the key in :data:`CONVENTIONS`.
        batchnorm_ops: operations per BatchNorm output element (0: not counted).
        description: one line for reports.
    """

    name: str
    batchnorm_ops: int
    description: str


CONVENTIONS: dict[str, Convention] = {
    "paper": Convention("paper", 4, "conv and linear MACs plus BatchNorm at 4 ops per output element, "
                                    "at the bits of the layer before it (reproduces Tables 1-2)"),
    "conv-linear": Convention("conv-linear", 0, "conv and linear MACs only (BatchNorm not counted)"),
}

#: The convention of :func:`count_costs` and :func:`bitops_table` unless one is given: Sec. 4.1's formula.
DEFAULT_CONVENTION = "conv-linear"

#: The convention of the paper's tables: what ``qgait-lab bitops`` and the result tables print.
PAPER_CONVENTION = "paper"


def get_convention(name: str) -> Convention:
    """The :class:`Convention` called *name*; a :class:`~qgait_lab.errors.ConfigError` lists the choices."""
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise ConfigError(f"BitOPs convention {name!r} is unknown; choose one of {sorted(CONVENTIONS)}") from None


@dataclass
class LayerCost:
    """The cost of one layer for one forward pass, and the bits it runs at.

    Attributes:
        macs: its multiply-accumulates.
        bn_ops: operations of the BatchNorm folded into it (``"paper"``
            convention), else 0.
    """

    name: str
    kind: str
    macs: int
    w_bits: int
    a_bits: int
    bn_ops: int = 0

    @property
    def ops(self) -> int:
        return self.macs + self.bn_ops

    @property
    def bitops(self) -> float:
        return self.ops * (self.w_bits / 32.0) * (self.a_bits / 32.0)


def _layer_macs(module: nn.Module, inputs: tuple, output) -> int | None:
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)
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
                include: Callable[[str, nn.Module], bool] | None = None,
                convention: str = DEFAULT_CONVENTION, **kwargs) -> list[LayerCost]:
    """Run one forward pass and return the cost of every counted layer.

    ``meta=True`` runs a deep copy of the model on the meta device (shapes only).
    ``include(name, module)`` filters layers (default: all that have MACs).
    ``convention`` names an entry of :data:`CONVENTIONS`.  Under ``"paper"`` a
    BatchNorm is added to the entry of the MAC layer that ran last before it;
    one with no such entry (nothing ran before it, or that layer is filtered
    out) gets an entry of its own, at 32 bits.  A layer that runs several
    times in the pass (GaitPart's focal convolutions, once per strip) has one
    entry, the sum of its runs.  Other keyword arguments go to the model.
    """
    per_element = get_convention(convention).batchnorm_ops
    if meta:
        model = copy.deepcopy(model).to("meta")
        inputs = tuple(x.to("meta") if isinstance(x, Tensor) else x for x in inputs)
    costs: list[LayerCost] = []
    entries: dict[str, LayerCost] = {}  # a layer run several times in one pass keeps one entry
    last: list[LayerCost | None] = [None]  # the entry of the MAC layer that ran last, if it is counted
    handles = []
    for name, module in model.named_modules():
        counted = include is None or include(name, module)
        is_bn = isinstance(module, nn.modules.batchnorm._BatchNorm)

        def hook(mod, args, output, name=name, counted=counted, is_bn=is_bn):
            if is_bn:
                if counted and per_element:
                    ops = per_element * output.numel()
                    if last[0] is not None:
                        last[0].bn_ops += ops
                    else:
                        costs.append(LayerCost(name, type(mod).__name__, 0, FULL_PRECISION_BITS,
                                               FULL_PRECISION_BITS, ops))
                return
            macs = _layer_macs(mod, args, output)
            if macs is None:
                return
            if not counted:
                last[0] = None
                return
            if name not in entries:
                entries[name] = LayerCost(name, type(mod).__name__, 0, *_bits_of(mod))
                costs.append(entries[name])
            entries[name].macs += macs
            last[0] = entries[name]

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
    """Totals: ``macs`` (multiply-accumulates), ``ops`` (MACs plus BatchNorm operations), ``bitops``, ``layers``."""
    return {"macs": float(sum(c.macs for c in costs)),
            "ops": float(sum(c.ops for c in costs)),
            "bitops": float(sum(c.bitops for c in costs)),
            "layers": len(costs)}


def gaitbase_inference_layers(name: str, module: nn.Module) -> bool:
    """GaitBase's inference path: everything but the training-only BNNeck head."""
    return not name.startswith("BNNecks")


def costs_as_dicts(costs: Sequence[LayerCost]) -> list[dict]:
    return [dict(asdict(c), ops=c.ops, bitops=c.bitops) for c in costs]


def bitops_table(build_model: Callable[[], nn.Module], inputs: Sequence[Tensor],
                 bits: Sequence[int], method: str = "lsq", policy=None,
                 include: Callable[[str, nn.Module], bool] | None = None,
                 convention: str = DEFAULT_CONVENTION) -> list[dict]:
    """MACs and BitOPs of a model at several uniform bit-widths (32 = full precision).

    ``build_model`` returns a fresh float model; for each bit-width it is
    quantized with ``quantize_model`` (following ``policy``) and counted under
    ``convention`` (see :data:`CONVENTIONS`).
    """
    from .convert import quantize_model  # local: convert imports this package's modules

    get_convention(convention)  # an unknown name fails before any model is built
    rows = []
    for b in bits:
        model = build_model()
        if b != FULL_PRECISION_BITS:
            model = quantize_model(model, method, b, b, policy)
        total = summarize(count_costs(model, *inputs, include=include, convention=convention))
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
