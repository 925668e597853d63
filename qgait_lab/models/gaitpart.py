"""GaitPart (Fan et al., CVPR 2020): part-based features with micro-motion capture.

The architecture and every parameter name follow OpenGait's ``GaitPart``
(``opengait/modeling/models/gaitpart.py``, its ``Plain`` backbone in
``opengait/modeling/backbones/plain.py``, ``FocalConv2d`` in
``opengait/modeling/modules.py`` and ``configs/gaitpart/*.yaml``), so an
OpenGait checkpoint's ``model`` dict loads with ``strict=True``:

* ``Backbone`` (frame-level part representation, FPFE): OpenGait's ``Plain``
  network run on every frame, ``Backbone.forward_block.feature.<i>.conv.weight``.
  It is written in OpenGait's layer language: ``"BC-32"`` a 3x3 bias-free
  convolution to 32 channels (5x5 when first), ``"FC-64-2"`` a focal
  convolution whose input is cut into ``2**2`` horizontal strips convolved
  separately, ``"M"`` a 2x2 max-pool; LeakyReLU (slope 0.01) after every
  convolution.
* ``HPP``: 16 horizontal strips per frame, mean + max: ``[n, c, s, 16]``.
* ``TFA`` (temporal feature aggregator, ``TFA.pooling_func.*``): per part, two
  micro-motion template builders.  Each scores the frames with a small 1D
  convolution stack over time (``c -> c/4 -> c``; kernels 3,1 and 3,3) and a
  sigmoid, weighs a local avg + max pooling of the part's features over 3 or
  5 frames with those scores; the two are summed and max-pooled over the
  frames of each sequence.
* ``Head``: 16 separate fully connected layers.

The CASIA-B configuration ends at 128 channels with a 128-wide Head, the GREW
and OU-MVLP one at 256 with a 256-wide Head (:data:`GaitPart.CONFIGS`).  There
is no classification head: OpenGait trains GaitPart with the triplet loss
alone, on ``embeddings``.  The submodules are registered in the order they run
(Backbone, HPP, TFA, Head; OpenGait registers the Head second), so that the
Head is the last quantizable layer for :class:`~qgait_lab.quant.LayerPolicy`;
the order does not change the state-dict names.

BitOPs (paper, Table 1 and 2a): the 2D and the temporal 1D convolutions and the
Head, all as multiply-accumulates; GaitPart has no BatchNorm.  At 64x44 the
backbone costs 106.06 MMAC per frame (CASIA-B) or 261.78 MMAC (GREW), the TFA
0.66 or 2.62 MMAC per frame: 10.67 G at 100 frames (Table 1: 10.67 G) and
31.73 G at 120 frames with the GREW configuration (Table 2a: 31.68 G, 0.15 %
less).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..quant.modules import QuantizedLayer
from .contract import gait_output
from .gaitbase import BasicConv2d, HorizontalPoolingPyramid, SeparateFCs, SetBlockWrapper, per_sequence

#: The backbone of OpenGait's ``configs/gaitpart/gaitpart.yaml`` (CASIA-B).
CASIA_B_LAYERS = ("BC-32", "BC-32", "M", "FC-64-2", "FC-64-2", "M", "FC-128-3", "FC-128-3")
#: The backbone of ``gaitpart_GREW.yaml`` and ``gaitpart_OUMVLP.yaml``.
GREW_LAYERS = ("BC-32", "BC-32", "M", "BC-64", "BC-64", "M",
               "FC-128-3", "FC-128-3", "FC-256-3", "FC-256-3")


class QuantizableConv1d(QuantizedLayer, nn.Conv1d):
    """``nn.Conv1d`` with quantizer slots, so that ``quantize_model`` fake-quantizes it.

    ``quantize_model`` swaps only ``Conv2d`` and ``Linear`` layers; a
    :class:`~qgait_lab.quant.modules.QuantizedLayer` gets its quantizers attached
    in place instead.  Until then (both slots ``None``) it is a plain Conv1d.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.attach_quantizers(None, None)

    def forward(self, x: Tensor) -> Tensor:
        xq = self.quantized_input(x)
        w = self.quantized_weight(self.weight)
        with self.input_kept_as_float(x, xq):
            return self._conv_forward(xq, w, self.bias)


class BasicConv1d(nn.Module):
    """A bias-free 1D convolution under the name ``conv`` (OpenGait's naming)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0) -> None:
        super().__init__()
        self.conv = QuantizableConv1d(in_channels, out_channels, kernel_size, padding=padding, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class FocalConv2d(nn.Module):
    """GaitPart's focal convolution: one convolution applied to each of
    ``2**halving`` horizontal strips of the input separately, so that its receptive
    field stays inside a strip; ``halving = 0`` is a plain convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 padding: int, halving: int) -> None:
        super().__init__()
        self.halving = halving
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=padding, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.halving == 0:
            return self.conv(x)
        strip = x.shape[2] // 2 ** self.halving
        return torch.cat([self.conv(part) for part in x.split(strip, dim=2)], dim=2)


def _conv_layer(spec: str, in_channels: int, first: bool) -> tuple[nn.Module, int]:
    """One ``"BC-<c>"`` or ``"FC-<c>-<halving>"`` entry -> (layer, its output channels)."""
    fields = spec.split("-")
    kernel, padding = (5, 2) if first else (3, 1)
    try:
        if fields[0] == "BC" and len(fields) == 2:
            out = int(fields[1])
            return BasicConv2d(in_channels, out, kernel, 1, padding), out
        if fields[0] == "FC" and len(fields) == 3:
            out = int(fields[1])
            return FocalConv2d(in_channels, out, kernel, 1, padding, halving=int(fields[2])), out
    except ValueError:
        pass
    raise ConfigError(f"GaitPart backbone layer {spec!r} is not 'BC-<channels>', "
                      "'FC-<channels>-<halving>' or 'M'")


class Plain(nn.Module):
    """OpenGait's ``Plain`` backbone: convolutions and max-pools from a layer list, under ``feature``."""

    def __init__(self, layers_cfg: Sequence[str], in_channels: int = 1) -> None:
        super().__init__()
        if not layers_cfg or layers_cfg[0] == "M":
            raise ConfigError(f"GaitPart backbone must start with a convolution, got {list(layers_cfg)}")
        layers: list[nn.Module] = []
        channels = in_channels
        for i, spec in enumerate(layers_cfg):
            if spec == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                continue
            conv, channels = _conv_layer(spec, channels, first=i == 0)
            layers += [conv, nn.LeakyReLU(inplace=True)]
        self.feature = nn.Sequential(*layers)
        self.out_channels = channels

    def forward(self, x: Tensor) -> Tensor:
        return self.feature(x)


class TemporalFeatureAggregator(nn.Module):
    """GaitPart's TFA: two micro-motion template builders per part, then a max over time.

    ``[n, c, s, p] -> [n, c, p]``.  For part ``j`` and builder ``r``:
    ``template = (avgpool_r + maxpool_r)(x_j) * sigmoid(conv_r(x_j))`` over the
    frames, with windows of 3 and 5 frames; the output is
    ``max_t (template_1 + template_2)`` (OpenGait's ``TemporalFeatureAggregator``).
    """

    def __init__(self, in_channels: int, squeeze: int = 4, parts_num: int = 16) -> None:
        super().__init__()
        hidden = in_channels // squeeze
        self.parts_num = parts_num
        self.conv1d3x1 = nn.ModuleList(nn.Sequential(
            BasicConv1d(in_channels, hidden, 3, padding=1), nn.LeakyReLU(inplace=True),
            BasicConv1d(hidden, in_channels, 1)) for _ in range(parts_num))
        self.avg_pool3x1 = nn.AvgPool1d(3, stride=1, padding=1)
        self.max_pool3x1 = nn.MaxPool1d(3, stride=1, padding=1)
        self.conv1d3x3 = nn.ModuleList(nn.Sequential(
            BasicConv1d(in_channels, hidden, 3, padding=1), nn.LeakyReLU(inplace=True),
            BasicConv1d(hidden, in_channels, 3, padding=1)) for _ in range(parts_num))
        self.avg_pool3x3 = nn.AvgPool1d(5, stride=1, padding=2)
        self.max_pool3x3 = nn.MaxPool1d(5, stride=1, padding=2)

    def forward(self, x: Tensor) -> Tensor:
        n, c, s, p = x.shape
        if p != self.parts_num:
            raise ValueError(f"TFA was built for {self.parts_num} parts, got {p}")
        parts = x.permute(3, 0, 1, 2).contiguous()    # [p, n, c, s]
        flat = parts.view(p * n, c, s)

        def template(convs: nn.ModuleList, avg: nn.Module, peak: nn.Module) -> Tensor:
            scores = torch.stack([conv(part) for conv, part in zip(convs, parts)]).sigmoid()
            return (avg(flat) + peak(flat)).view(p, n, c, s) * scores

        short = template(self.conv1d3x1, self.avg_pool3x1, self.max_pool3x1)
        long = template(self.conv1d3x3, self.avg_pool3x3, self.max_pool3x3)
        return (short + long).max(dim=-1).values.permute(1, 2, 0).contiguous()   # [n, c, p]


class PackSequenceWrapper(nn.Module):
    """Run ``pooling_func`` on each sequence packed along the frame axis (OpenGait's name and semantics)."""

    def __init__(self, pooling_func: nn.Module) -> None:
        super().__init__()
        self.pooling_func = pooling_func

    def forward(self, x: Tensor, seqL: Sequence[int] | Tensor | None = None) -> Tensor:
        return per_sequence(self.pooling_func, x, seqL)


class GaitPart(nn.Module):
    """GaitPart with OpenGait's parameter names; see the module docstring.

    ``layers``: the backbone in OpenGait's layer language; ``in_channels``:
    silhouette channels; ``embed_dim``: the Head's output per part; ``parts``:
    the horizontal strips.
    """

    #: OpenGait's model configurations by dataset, as constructor arguments.
    CONFIGS = {"casia-b": {"layers": CASIA_B_LAYERS, "embed_dim": 128},
               "grew": {"layers": GREW_LAYERS, "embed_dim": 256},
               "oumvlp": {"layers": GREW_LAYERS, "embed_dim": 256}}

    def __init__(self, layers: Sequence[str] = CASIA_B_LAYERS, in_channels: int = 1,
                 embed_dim: int = 128, parts: int = 16) -> None:
        super().__init__()
        self.config = dict(layers=tuple(layers), in_channels=in_channels, embed_dim=embed_dim, parts=parts)
        backbone = Plain(layers, in_channels)
        self.Backbone = SetBlockWrapper(backbone)
        self.HPP = SetBlockWrapper(HorizontalPoolingPyramid((parts,)))
        self.TFA = PackSequenceWrapper(TemporalFeatureAggregator(backbone.out_channels, parts_num=parts))
        self.Head = SeparateFCs(parts, backbone.out_channels, embed_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """OpenGait's ``BaseModel.init_parameters``: Xavier-uniform 1D and 2D convolutions."""
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                nn.init.xavier_uniform_(m.weight)

    def forward(self, sils: Tensor, seqL: Sequence[int] | Tensor | None = None) -> dict:
        """Silhouettes ``[n, s, h, w]`` (or packed ``[1, sum(seqL), h, w]``) -> ``embeddings [n, c, 16]``."""
        if sils.dim() != 4:
            raise ValueError(f"GaitPart expects silhouettes [n, frames, h, w], got {tuple(sils.shape)}")
        maps = self.Backbone(sils.unsqueeze(1))   # [n, c, s, h, w]
        parts = self.HPP(maps)                    # [n, c, s, p]
        pooled = self.TFA(parts, seqL)            # [n, c, p]
        return gait_output(self.Head(pooled))
