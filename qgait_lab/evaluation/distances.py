"""Probe-to-gallery distances between part-based embeddings ``[n, c, p]`` (:func:`pairwise_distance`).

Euclidean (or cosine) distance per part, averaged over the parts, as OpenGait
evaluates; the Euclidean expansion is the losses' own
(:func:`qgait_lab.losses.distances.squared_part_distances`).
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import torch

from ..losses.distances import squared_norms, squared_part_distances

Metric = Literal["euc", "cos"]


def _as_parts(x: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    t = torch.as_tensor(x).detach().cpu()
    if t.ndim == 2:
        t = t[:, :, None]
    if t.ndim != 3:
        raise ValueError(f"{name} must have shape [n, c, p] (or [n, c]), got {tuple(t.shape)}")
    # float64 stays float64 (exact tests); integers too; other floats compute in float32.
    exact = t.dtype == torch.float64 or not t.is_floating_point()
    return t.to(torch.float64 if exact else torch.float32)


def pairwise_distance(
    probe: np.ndarray | torch.Tensor,
    gallery: np.ndarray | torch.Tensor,
    metric: Metric = "euc",
    chunk_size: int = 1024,
) -> np.ndarray:
    """Part-averaged distances between probe and gallery embeddings.

    Args:
        probe: ``[n, c, p]`` (``c`` channels, ``p`` parts); ``[n, c]`` is read
            as one part.
        gallery: ``[m, c, p]``.
        metric: ``"euc"``: ``mean_p ||probe[i, :, p] - gallery[j, :, p]||``;
            ``"cos"``: ``1 - mean_p cos(probe[i, :, p], gallery[j, :, p])``.
        chunk_size: probes processed at once; memory grows as
            ``chunk_size * m * p``.

    Returns:
        ``float64`` array ``[n, m]``.
    """
    if metric not in get_args(Metric):
        raise ValueError(f"metric must be one of {list(get_args(Metric))}, got {metric!r}")
    x, y = _as_parts(probe, "probe"), _as_parts(gallery, "gallery")
    if x.shape[1:] != y.shape[1:]:
        raise ValueError(f"probe {tuple(x.shape)} and gallery {tuple(y.shape)} differ in channels or parts")
    dtype = torch.promote_types(x.dtype, y.dtype)
    yp = y.to(dtype).permute(2, 0, 1)  # [p, m, c]
    if metric == "cos":
        yp = torch.nn.functional.normalize(yp, dim=2)
    else:
        y_norms = squared_norms(yp)          # once, for every chunk of probes
    out = torch.empty(x.shape[0], y.shape[0], dtype=torch.float64)
    for start in range(0, x.shape[0], chunk_size):
        xp = x[start : start + chunk_size].to(dtype).permute(2, 0, 1)  # [p, b, c]
        if metric == "cos":
            sim = torch.bmm(torch.nn.functional.normalize(xp, dim=2), yp.transpose(1, 2))
            out[start : start + chunk_size] = (1.0 - sim.mean(0)).to(torch.float64)
        else:
            sq = squared_part_distances(xp, yp, y_norms)
            out[start : start + chunk_size] = sq.clamp_min(0.0).sqrt().mean(0).to(torch.float64)
    return out.numpy()
