"""GaitBase (Fan et al., OpenGait, CVPR 2023), the paper's model M = F o P o B (Eq. 1).

The architecture and every parameter name match OpenGait's ``Baseline`` model
with the ``ResNet9`` backbone (``configs/gaitbase/*.yaml``), so an OpenGait
checkpoint's ``model`` dict loads without renaming:

* ``Backbone`` (B): ResNet9 run on every frame; ``Backbone.forward_block.*``.
* temporal max pooling and a 16-bin horizontal pyramid, mean + max (P).
* ``FCs`` (F): 16 separate fully connected layers, 512 -> 256 per part.
* ``BNNecks`` (K): BatchNorm1d over the flattened 256x16 features, then cosine
  logits per part, used only by the cross-entropy loss.

Inputs are silhouettes ``[n, s, h, w]`` in [0, 1] (64x44 in the paper).  A batch of
variable-length sequences can be packed along the frame axis as
``[1, sum(seqL), h, w]`` with ``seqL`` giving each length, as OpenGait does.

The output follows the model contract (:mod:`.contract`), as OpenGait's GaitBase:
``training_feat["triplet"]["embeddings"]`` ``[n, 256, p]`` (before the BNNeck: the
triplet loss, and retrieval as ``inference_feat["embeddings"]``) and
``training_feat["softmax"]["logits"]`` ``[n, classes, p]``.
"""
from __future__ import annotations

import contextlib
import math

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..quant.modules import QuantizedLayer
from .contract import gait_output

PAPER_CHANNELS = (64, 128, 256, 512)
PAPER_STRIDES = (1, 2, 2, 1)


class BasicConv2d(nn.Module):
    """A bias-free convolution wrapped under the name ``conv`` (OpenGait's naming)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 padding: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=padding, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class BasicBlock(nn.Module):
    """The two-conv residual block of ResNet-18/34 (torchvision naming)."""

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(channels))

    def conv_batchnorm_pairs(self) -> list[tuple[str, str]]:
        """Each BatchNorm and the convolution it reads (what ``models.inference`` folds)."""
        pairs = [("conv1", "bn1"), ("conv2", "bn2")]
        return pairs + ([("downsample.0", "downsample.1")] if self.downsample is not None else [])

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet9(nn.Module):
    """GaitBase's backbone: a 3x3 stem (no max-pool) and four one-block stages."""

    def __init__(self, channels: Sequence[int] = PAPER_CHANNELS,
                 strides: Sequence[int] = PAPER_STRIDES, in_channels: int = 1) -> None:
        super().__init__()
        if len(channels) != 4 or len(strides) != 4:
            raise ValueError(f"ResNet9 needs 4 channels and 4 strides, got {channels} and {strides}")
        self.conv1 = BasicConv2d(in_channels, channels[0], 3, 1, 1)
        self.bn1 = nn.BatchNorm2d(channels[0])
        self.relu = nn.ReLU(inplace=True)
        previous = channels[0]
        for i, (c, s) in enumerate(zip(channels, strides), start=1):
            setattr(self, f"layer{i}", nn.Sequential(BasicBlock(previous, c, s)))
            previous = c
        self.out_channels = previous

    def conv_batchnorm_pairs(self) -> list[tuple[str, str]]:
        """The stem's BatchNorm and its convolution (the blocks name their own)."""
        return [("conv1.conv", "bn1")]

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class SetBlockWrapper(nn.Module):
    """Apply a 2D network to every frame of ``[n, c, s, h, w]``."""

    def __init__(self, forward_block: nn.Module) -> None:
        super().__init__()
        self.forward_block = forward_block

    def forward(self, x: Tensor) -> Tensor:
        n, c, s, h, w = x.shape
        y = self.forward_block(x.transpose(1, 2).reshape(n * s, c, h, w))
        return y.reshape(n, s, *y.shape[1:]).transpose(1, 2).contiguous()


def per_sequence(fn: Callable[[Tensor], Tensor], x: Tensor,
                 seqL: Sequence[int] | Tensor | None) -> Tensor:
    """Apply ``fn`` to each sequence packed along the frame axis (``dim=2``) of ``x``.

    ``x`` is ``[n, c, s, ...]``; with ``seqL`` it holds one packed batch
    (``n = 1``, ``s = sum(seqL)``) and the results are stacked along ``dim=0``,
    as OpenGait's ``PackSequenceWrapper`` does.  Without ``seqL``, ``fn(x)``.
    """
    if seqL is None:
        return fn(x)
    lengths = [int(t) for t in seqL]
    return torch.cat([fn(part) for part in x.split(lengths, dim=2)], dim=0)


def temporal_max(x: Tensor, seqL: Sequence[int] | Tensor | None) -> Tensor:
    """Max over frames (``dim=2``); with ``seqL``, per packed sequence (set pooling)."""
    return per_sequence(lambda part: part.max(dim=2).values, x, seqL)


class HorizontalPoolingPyramid(nn.Module):
    """Split each map into ``bins`` horizontal strips; pool each by mean + max -> [n, c, p].

    One pyramid level per entry of ``bin_num``, concatenated along the parts:
    GaitBase and GaitPart use ``(16,)``, GaitSet ``(16, 8, 4, 2, 1)`` (31 parts).
    As in OpenGait, a ``[h, w]`` map is flattened and cut into ``bins`` equal runs,
    which are whole rows when ``bins`` divides ``h``.
    """

    def __init__(self, bin_num: Sequence[int] = (16,)) -> None:
        super().__init__()
        self.bin_num = tuple(bin_num)

    def forward(self, x: Tensor) -> Tensor:
        n, c = x.shape[:2]
        cells = math.prod(x.shape[2:])
        if any(cells % bins for bins in self.bin_num):
            raise ValueError(f"a {tuple(x.shape[2:])} feature map does not split into {self.bin_num} "
                             "equal strips: use a taller input or fewer bins")
        features = []
        for bins in self.bin_num:
            z = x.reshape(n, c, bins, -1)
            features.append(z.mean(-1) + z.max(-1).values)
        return torch.cat(features, dim=-1)


class SeparateFCs(QuantizedLayer, nn.Module):
    """One fully connected layer per part: ``[n, c_in, p] -> [n, c_out, p]`` (F in Eq. 1).

    A quantizable layer: ``quantize_model`` attaches quantizers to it like a Linear.
    """

    quant_weight_name = "fc_bin"

    def __init__(self, parts_num: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.fc_bin = nn.Parameter(torch.empty(parts_num, in_channels, out_channels))
        nn.init.xavier_uniform_(self.fc_bin)
        self.attach_quantizers(None, None)

    def forward(self, x: Tensor) -> Tensor:
        x = self.quantized_input(x).permute(2, 0, 1).contiguous()   # [p, n, c_in]
        out = x.matmul(self.quantized_weight(self.fc_bin))    # [p, n, c_out]
        return out.permute(1, 2, 0).contiguous()

    def count_macs(self, inputs: tuple[Tensor, ...], output: Tensor) -> int:
        return output.numel() * self.fc_bin.shape[1]


class SeparateBNNecks(nn.Module):
    """BNNeck (K): BatchNorm over the flattened part features, then cosine logits per part."""

    def __init__(self, parts_num: int, in_channels: int, class_num: int) -> None:
        super().__init__()
        self.fc_bin = nn.Parameter(torch.empty(parts_num, in_channels, class_num))
        nn.init.xavier_uniform_(self.fc_bin)
        self.bn1d = nn.BatchNorm1d(in_channels * parts_num)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        n, c, p = x.shape
        # In float32 even under autocast: F.normalize's eps vanishes in half precision
        # and the gradient of a near-zero vector's direction overflows it.
        no_autocast = (torch.autocast(x.device.type, enabled=False)
                       if x.device.type in ("cpu", "cuda") else contextlib.nullcontext())  # meta: BitOPs
        with no_autocast:
            x = self.bn1d(x.float().reshape(n, c * p)).reshape(n, c, p)   # channel-major flattening
            feature = F.normalize(x.permute(2, 0, 1).contiguous(), dim=-1)   # [p, n, c]
            logits = feature.matmul(F.normalize(self.fc_bin, dim=1))  # [p, n, classes]
        return feature.permute(1, 2, 0).contiguous(), logits.permute(1, 2, 0).contiguous()

    def count_macs(self, inputs: tuple[Tensor, ...], output: tuple[Tensor, Tensor]) -> int:
        return output[1].numel() * self.fc_bin.shape[1]


class GaitBase(nn.Module):
    """GaitBase with OpenGait's parameter names; see the module docstring.

    ``channels`` sets the four stage widths (the paper: 64/128/256/512; the laptop
    preset uses a quarter of that), ``num_classes`` the training identities
    (74 for CASIA-B, 3000 for Gait3D), ``parts`` the pyramid bins and
    ``embed_dim`` the per-part embedding size.
    """

    def __init__(self, num_classes: int = 74, channels: Sequence[int] = PAPER_CHANNELS,
                 strides: Sequence[int] = PAPER_STRIDES, parts: int = 16, embed_dim: int = 256,
                 in_channels: int = 1) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.config = dict(num_classes=num_classes, channels=tuple(channels),
                           strides=tuple(strides), parts=parts, embed_dim=embed_dim,
                           in_channels=in_channels)
        backbone = ResNet9(channels, strides, in_channels)
        self.Backbone = SetBlockWrapper(backbone)
        self.FCs = SeparateFCs(parts, backbone.out_channels, embed_dim)
        self.BNNecks = SeparateBNNecks(parts, embed_dim, num_classes)
        self.HPP = HorizontalPoolingPyramid((parts,))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """OpenGait's initialisation: Xavier-uniform weights, BN weights ~ N(1, 0.02)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.affine:
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, sils: Tensor, seqL: Sequence[int] | Tensor | None = None) -> dict:
        if sils.dim() != 4:
            raise ValueError(f"GaitBase expects silhouettes [n, frames, h, w], got {tuple(sils.shape)}")
        feature_maps = self.Backbone(sils.unsqueeze(1))       # [n, c, s, h, w]
        pooled = temporal_max(feature_maps, seqL)               # [n, c, h, w]
        parts = self.HPP(pooled)                                # [n, c, p]
        embeddings = self.FCs(parts)                            # [n, 256, p]
        _, logits = self.BNNecks(embeddings)
        return gait_output(embeddings, logits)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
