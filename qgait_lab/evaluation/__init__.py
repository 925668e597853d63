"""Gait recognition evaluation, as OpenGait does it.

* :func:`pairwise_distance`: probe-to-gallery distances between part-based
  embeddings ``[n, c, p]``: Euclidean (or cosine) distance *per part*, averaged
  over the ``p`` parts, never on the flattened vector.
* :func:`rank_metrics`: Rank-k accuracy, mAP and mINP from a distance matrix.
* :func:`casia_b_protocol`: CASIA-B's cross-view table (gallery ``nm-01..04``;
  probes NM ``nm-05/06``, BG ``bg-01/02``, CL ``cl-01/02``), with a same-view
  variant.
  OU-MVLP uses the same table with its own types (:data:`OUMVLP_GALLERY`, :data:`OUMVLP_PROBES`).
* :func:`gait3d_protocol`: probe/gallery ranking for Gait3D-style datasets.
* :func:`real_scene_protocol`: one gallery type against one probe type, all views
  pooled (GREW's labelled evaluation, OpenGait's ``evaluate_real_scene``).

Which protocol a dataset uses is recorded in :mod:`qgait_lab.data.layouts`.

Conventions:

* Ties in distance are broken by gallery order (a stable sort), so results are
  deterministic.
* A probe whose identity has no sequence in the gallery can never be
  recognised: for Rank-k it counts as a miss (closed-set identification; this
  is what OpenGait's CASIA-B evaluation does when a sequence is missing).  mAP
  and mINP are undefined for it and average over the probes that do have a
  true match; :class:`RankResult` reports both counts.  Pass
  ``unmatched="exclude"`` to drop such probes from Rank-k too (OpenGait's
  Gait3D evaluation).

* :func:`eval_sequence`: one test sequence as every evaluation reads it.
* :func:`extract_features`: a model's embeddings of every sequence of a
  dataset, all frames in order, variable-length sequences packed in batches
  (and gathered across ranks under ``torch.distributed``).
* :func:`evaluate_features`: the flat metrics dict the trainer logs.
"""

from __future__ import annotations

from .distances import Metric, pairwise_distance  # noqa: F401  (the metric option's type)
from .features import eval_sequence, extract_features
from .protocols import (
    CASIA_B_GALLERY,
    CASIA_B_PROBES,
    GREW_GALLERY,
    GREW_PROBES,
    OUMVLP_GALLERY,
    OUMVLP_PROBES,
    PROTOCOLS,
    CasiaBResult,
    casia_b_protocol,
    casia_b_retrieval,
    evaluate_features,
    gait3d_probe_mask,
    gait3d_protocol,
    real_scene_protocol,
)
from .ranking import RankResult, rank_metrics

__all__ = [
    "CASIA_B_GALLERY",
    "CASIA_B_PROBES",
    "CasiaBResult",
    "RankResult",
    "casia_b_protocol",
    "casia_b_retrieval",
    "evaluate_features",
    "extract_features",
    "gait3d_probe_mask",
    "gait3d_protocol",
    "GREW_GALLERY",
    "GREW_PROBES",
    "OUMVLP_GALLERY",
    "OUMVLP_PROBES",
    "PROTOCOLS",
    "real_scene_protocol",
    "pairwise_distance",
    "rank_metrics",
    "eval_sequence",
]
