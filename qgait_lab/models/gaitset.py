"""GaitSet (Chao et al., AAAI 2019 / T-PAMI 2021): gait as an unordered set of silhouettes.

The architecture and every parameter name follow OpenGait's ``GaitSet``
(``opengait/modeling/models/gaitset.py``, ``configs/gaitset/*.yaml``), so an
OpenGait checkpoint's ``model`` dict loads with ``strict=True``:

* ``set_block1..3``: a frame-level CNN run on every silhouette (a
  ``SetBlockWrapper``, hence ``set_block*.forward_block.*``).  Each block is two
  bias-free convolutions with LeakyReLU (slope 0.01); the first convolution of
  the network is 5x5, the others 3x3; blocks 1 and 2 end in a 2x2 max-pool.
* set pooling: a max over the frames of each sequence, after every block.
* ``gl_block2``, ``gl_block3``: the "global" branch (multilayer global
  pipeline), copies of blocks 2 and 3 run on the pooled set features; the
  pooled output of the next set block is added to their input/output.
* horizontal pyramid pooling with bins 16, 8, 4, 2, 1 (31 parts) on both the
  set branch and the global branch: 62 parts.
* ``Head``: 62 separate fully connected layers, ``c -> 256``.

The CASIA-B configuration has block widths 32/64/128, GREW and OU-MVLP
64/128/256 (:data:`GaitSet.CONFIGS`).  There is no classification head: OpenGait
trains GaitSet with the triplet loss alone, on ``embeddings``.

BitOPs (paper, Table 1 and 2a): the convolutions and the separate FCs are all
there is to count.  The set pooling, the pyramid and the LeakyReLUs are not
multiply-accumulates and GaitSet has no BatchNorm, so the paper convention of
:mod:`qgait_lab.quant.bitops` is the MAC count here: at 64x44 the frame-level
CNN costs 106.06 MMAC per frame (CASIA-B) or 419.74 MMAC (GREW), the global
branch runs once per sequence (0.078 or 0.311 GMAC), and the Head adds 2.0 or
4.1 MMAC: 10.69 G at 100 frames (Table 1: 10.68 G, 0.06 % less) and 50.68 G at
120 frames with the GREW configuration (Table 2a: 50.68 G).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .contract import gait_output
from .gaitbase import BasicConv2d, HorizontalPoolingPyramid, SeparateFCs, SetBlockWrapper, temporal_max

#: Block widths of OpenGait's ``configs/gaitset/gaitset.yaml`` (CASIA-B).
CASIA_B_CHANNELS = (32, 64, 128)
#: Block widths of ``gaitset_GREW.yaml`` and ``gaitset_OUMVLP.yaml``.
GREW_CHANNELS = (64, 128, 256)
#: The pyramid of every GaitSet config: 16 + 8 + 4 + 2 + 1 = 31 strips per branch.
PYRAMID_BINS = (16, 8, 4, 2, 1)


def set_block(in_channels: int, out_channels: int, first_kernel: int, pool: bool) -> nn.Sequential:
    """Two bias-free convolutions with LeakyReLU, then (if ``pool``) a 2x2 max-pool.

    Module indices 0 and 2 hold the convolutions, as in OpenGait's ``nn.Sequential``.
    """
    layers: list[nn.Module] = [
        BasicConv2d(in_channels, out_channels, first_kernel, 1, first_kernel // 2),
        nn.LeakyReLU(inplace=True),
        BasicConv2d(out_channels, out_channels, 3, 1, 1),
        nn.LeakyReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


class GaitSet(nn.Module):
    """GaitSet with OpenGait's parameter names; see the module docstring.

    ``channels``: the widths of the three set blocks (OpenGait's
    ``in_channels[1:]``); ``in_channels``: silhouette channels; ``embed_dim``:
    the Head's output per part; ``bin_num``: the pyramid levels.
    """

    #: OpenGait's model configurations by dataset, as constructor arguments.
    CONFIGS = {"casia-b": {"channels": CASIA_B_CHANNELS},
               "grew": {"channels": GREW_CHANNELS},
               "oumvlp": {"channels": GREW_CHANNELS}}

    def __init__(self, channels: Sequence[int] = CASIA_B_CHANNELS, in_channels: int = 1,
                 embed_dim: int = 256, bin_num: Sequence[int] = PYRAMID_BINS) -> None:
        super().__init__()
        if len(channels) != 3:
            raise ValueError(f"GaitSet needs 3 block widths, got {tuple(channels)}")
        c1, c2, c3 = channels
        self.config = dict(channels=tuple(channels), in_channels=in_channels, embed_dim=embed_dim,
                           bin_num=tuple(bin_num))
        # Registration order as OpenGait's: the set blocks, the global blocks, the Head.
        self.set_block1 = SetBlockWrapper(set_block(in_channels, c1, 5, pool=True))
        self.set_block2 = SetBlockWrapper(set_block(c1, c2, 3, pool=True))
        self.set_block3 = SetBlockWrapper(set_block(c2, c3, 3, pool=False))
        self.gl_block2 = set_block(c1, c2, 3, pool=True)
        self.gl_block3 = set_block(c2, c3, 3, pool=False)
        self.Head = SeparateFCs(2 * sum(bin_num), c3, embed_dim)
        self.HPP = HorizontalPoolingPyramid(bin_num)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """OpenGait's ``BaseModel.init_parameters``: Xavier-uniform convolutions (the Head is Xavier too)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)

    def forward(self, sils: Tensor, seqL: Sequence[int] | Tensor | None = None) -> dict:
        """Silhouettes ``[n, s, h, w]`` (or packed ``[1, sum(seqL), h, w]``) -> ``embeddings [n, c, 62]``."""
        if sils.dim() != 4:
            raise ValueError(f"GaitSet expects silhouettes [n, frames, h, w], got {tuple(sils.shape)}")
        outs = self.set_block1(sils.unsqueeze(1))                # [n, c1, s, h/2, w/2]
        gl = self.gl_block2(temporal_max(outs, seqL))
        outs = self.set_block2(outs)                             # [n, c2, s, h/4, w/4]
        gl = self.gl_block3(gl + temporal_max(outs, seqL))
        outs = temporal_max(self.set_block3(outs), seqL)         # [n, c3, h/4, w/4]
        gl = gl + outs
        feature = torch.cat([self.HPP(outs), self.HPP(gl)], dim=-1)  # [n, c3, 62]
        return gait_output(self.Head(feature))
