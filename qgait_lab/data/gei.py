"""Gait energy image (GEI) and its nearest-neighbour baseline.

The GEI of a sequence (Han and Bhanu, 2006) is the mean of its aligned
silhouettes: one image whose grey levels record how often each pixel was
covered during the walk.  Matching GEIs by Euclidean nearest neighbour is
the classic appearance baseline.  Here it calibrates SynthGait's difficulty
and gives every learned model a floor to beat.

The silhouettes go through GaitBase's test transform first (cut 64 -> 44,
scale to [0, 1]) and, by default, 2 x 2 average pooling (32 x 22), the same
input the laptop preset feeds the network.  A GEI is evaluated as a
one-part embedding ``[n, H * W, 1]``, so :func:`~qgait_lab.evaluation.pairwise_distance`
reduces to the Euclidean distance between flattened GEIs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from qgait_lab.data.dataset import GaitDataset
from qgait_lab.data.transforms import SilCutScale, downsample_2x
from qgait_lab.evaluation import CASIA_B_GALLERY, CASIA_B_PROBES, CasiaBResult, casia_b_protocol

__all__ = ["GEIBaseline", "gei", "gei_baseline", "gei_features"]


def gei(sils: np.ndarray | torch.Tensor, downsample: bool = True) -> np.ndarray:
    """GEI of one sequence of ``uint8`` frames ``[T, 64, 64]``.

    Returns:
        ``float32`` image in [0, 1]: ``[64, 44]``, or ``[32, 22]`` with *downsample*.
    """
    x = SilCutScale()(torch.as_tensor(np.asarray(sils)).to(torch.float32))
    if downsample:
        x = downsample_2x(x)
    return x.mean(0).numpy()


def gei_features(dataset: GaitDataset, downsample: bool = True) -> np.ndarray:
    """GEIs of every item of *dataset* as embeddings ``[n, H * W, 1]``."""
    geis = [gei(dataset.load(i), downsample).reshape(-1) for i in range(len(dataset))]
    return np.stack(geis)[:, :, None]


@dataclass
class GEIBaseline:
    """GEI + nearest neighbour under the CASIA-B protocol."""

    cross_view: CasiaBResult
    same_view: CasiaBResult

    def to_markdown(self) -> str:
        """Both tables, plus a summary line."""
        return f"{self.cross_view.to_markdown()}\n\n{self.same_view.to_markdown()}"

    def summary(self) -> str:
        """One line: cross-view and same-view means per condition."""
        cv = ", ".join(f"{c} {v:.1f}" for c, v in self.cross_view.mean.items())
        sv = ", ".join(f"{c} {v:.1f}" for c, v in self.same_view.mean.items())
        return f"GEI Rank-1 (%) cross-view: {cv}; same-view: {sv}"

    def __str__(self) -> str:
        return self.to_markdown()


def gei_baseline(
    dataset: GaitDataset,
    downsample: bool = True,
    gallery_types: Sequence[str] = CASIA_B_GALLERY,
    probe_types: Mapping[str, Sequence[str]] = CASIA_B_PROBES,
) -> GEIBaseline:
    """Evaluate GEI + Euclidean nearest neighbour on *dataset* (usually the test split).

    ``gallery_types`` and ``probe_types`` default to CASIA-B's protocol; see
    :func:`~qgait_lab.evaluation.casia_b_protocol`.
    """
    feats = gei_features(dataset, downsample)
    args = (feats, dataset.labels, dataset.types, dataset.views)
    kwargs = dict(metric="euc", gallery_types=gallery_types, probe_types=probe_types)
    return GEIBaseline(
        cross_view=casia_b_protocol(*args, exclude_identical_view=True, **kwargs),
        same_view=casia_b_protocol(*args, same_view=True, **kwargs),
    )
