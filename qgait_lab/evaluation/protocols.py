"""The datasets' evaluation protocols, and the metrics dict the trainer logs (:func:`evaluate_features`).

CASIA-B's cross-view table (OU-MVLP uses it with its own types), CASIA-B's
pooled cross-view retrieval, GREW's real-scene protocol and Gait3D's
probe/gallery ranking.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence

import numpy as np
import torch

from .distances import Metric, _as_parts, pairwise_distance
from .ranking import RankResult, rank_metrics

#: CASIA-B's gallery sequence types.
CASIA_B_GALLERY: tuple[str, ...] = ("nm-01", "nm-02", "nm-03", "nm-04")

#: CASIA-B's probe conditions and their sequence types.
CASIA_B_PROBES: dict[str, tuple[str, ...]] = {
    "NM": ("nm-05", "nm-06"),
    "BG": ("bg-01", "bg-02"),
    "CL": ("cl-01", "cl-02"),
}


@dataclass
class CasiaBResult:
    """Rank-1 (%) of the CASIA-B protocol.

    Attributes:
        mode: ``"cross-view"`` (identical views excluded), ``"same-view"`` or
            ``"all-views"``.
        views: the views present, sorted.
        pair_accuracy: ``{condition: [probe view x gallery view] array}``, NaN
            where a pair is excluded or has no probe.
        per_view: ``{condition: {probe view: Rank-1}}``, the mean over gallery views.
        mean: ``{condition: Rank-1}``, the mean over probe views.
    """

    mode: str
    views: list[str]
    pair_accuracy: dict[str, np.ndarray]
    per_view: dict[str, dict[str, float]] = field(default_factory=dict)
    mean: dict[str, float] = field(default_factory=dict)

    def to_markdown(self, digits: int = 1) -> str:
        """Conditions x probe views, plus the mean, as a markdown table."""
        head = "| " + " | ".join(["cond.", *self.views, "mean"]) + " |"
        rule = "|" + "---|" * (len(self.views) + 2)
        rows = [head, rule]
        for cond, by_view in self.per_view.items():
            cells = [f"{by_view.get(v, float('nan')):.{digits}f}" for v in self.views]
            rows.append("| " + " | ".join([cond, *cells, f"{self.mean[cond]:.{digits}f}"]) + " |")
        return f"CASIA-B protocol, Rank-1 (%), {self.mode}\n\n" + "\n".join(rows)

    def __str__(self) -> str:
        return self.to_markdown()


def casia_b_protocol(
    features: np.ndarray | torch.Tensor,
    labels: Sequence[str] | np.ndarray,
    types: Sequence[str] | np.ndarray,
    views: Sequence[str] | np.ndarray,
    metric: Metric = "euc",
    exclude_identical_view: bool = True,
    same_view: bool = False,
    gallery_types: Sequence[str] = CASIA_B_GALLERY,
    probe_types: Mapping[str, Sequence[str]] = CASIA_B_PROBES,
) -> CasiaBResult:
    """CASIA-B evaluation: Rank-1 per (probe view, gallery view), then averaged.

    For each condition and each pair of views, the probes of that condition
    seen from the probe view are matched against the gallery sequences seen
    from the gallery view; Rank-1 of that pair is computed by
    :func:`rank_metrics`.  The per-probe-view accuracy is the mean over gallery
    views, and the condition's score the mean over probe views.

    Args:
        features: ``[n, c, p]`` embeddings of all test sequences.
        labels, types, views: per-sequence subject id, type (``nm-01``) and view.
        exclude_identical_view: drop pairs whose views are equal (cross-view,
            the standard).  ``False`` keeps them (``"all-views"``).
        same_view: keep *only* identical-view pairs (overrides the above).
        gallery_types, probe_types: the protocol's sequence types.
    """
    labels, types, views = (np.asarray(a).astype(str) for a in (labels, types, views))
    feats = _as_parts(features, "features")
    if not len(labels) == len(types) == len(views) == feats.shape[0]:
        raise ValueError("features, labels, types and views must describe the same sequences")
    view_list = sorted(set(views))
    is_gallery = np.isin(types, list(gallery_types))
    all_probe_types = [t for ts in probe_types.values() for t in ts]
    probe_rows = np.flatnonzero(np.isin(types, all_probe_types))
    gallery_cols = np.flatnonzero(is_gallery)
    # Only probe x gallery distances are needed; row/column positions map back below.
    dist = pairwise_distance(feats[torch.as_tensor(probe_rows)], feats[torch.as_tensor(gallery_cols)], metric)
    row_of = np.full(len(labels), -1)
    row_of[probe_rows] = np.arange(len(probe_rows))
    col_of = np.full(len(labels), -1)
    col_of[gallery_cols] = np.arange(len(gallery_cols))
    mode = "same-view" if same_view else ("cross-view" if exclude_identical_view else "all-views")

    result = CasiaBResult(mode=mode, views=view_list, pair_accuracy={})
    for cond, cond_types in probe_types.items():
        is_probe = np.isin(types, list(cond_types))
        table = np.full((len(view_list), len(view_list)), np.nan)
        for i, pv in enumerate(view_list):
            p_idx = np.flatnonzero(is_probe & (views == pv))
            if len(p_idx) == 0:
                continue
            for j, gv in enumerate(view_list):
                if (same_view and pv != gv) or (not same_view and exclude_identical_view and pv == gv):
                    continue
                g_idx = np.flatnonzero(is_gallery & (views == gv))
                if len(g_idx) == 0:
                    continue
                sub = dist[np.ix_(row_of[p_idx], col_of[g_idx])]
                table[i, j] = rank_metrics(sub, labels[p_idx], labels[g_idx], ks=(1,)).rank[1]
        result.pair_accuracy[cond] = table
        counted = np.isfinite(table)
        sums = np.where(counted, table, 0.0).sum(1)
        n_pairs = counted.sum(1)
        result.per_view[cond] = {v: float(sums[i] / n_pairs[i]) for i, v in enumerate(view_list) if n_pairs[i]}
        scores = list(result.per_view[cond].values())
        result.mean[cond] = float(np.mean(scores)) if scores else float("nan")
    return result


#: OU-MVLP's gallery and probe types (OpenGait's ``single_view_gallery_evaluation``).
OUMVLP_GALLERY: tuple[str, ...] = ("01",)
OUMVLP_PROBES: dict[str, tuple[str, ...]] = {"NM": ("00",)}

#: GREW's labelled gallery and probe types (OpenGait's ``evaluate_real_scene``).
GREW_GALLERY: tuple[str, ...] = ("01",)
GREW_PROBES: tuple[str, ...] = ("02",)


def real_scene_protocol(
    features: np.ndarray | torch.Tensor,
    labels: Sequence[str] | np.ndarray,
    types: Sequence[str] | np.ndarray,
    gallery_types: Sequence[str] = GREW_GALLERY,
    probe_types: Sequence[str] = GREW_PROBES,
    metric: Metric = "euc",
    ks: Sequence[int] = (1, 5, 10, 20),
) -> RankResult:
    """Probes of ``probe_types`` ranked against the gallery of ``gallery_types``, views pooled.

    OpenGait's ``evaluate_real_scene`` (GREW: gallery ``01``, probe ``02``): every
    probe counts, so one whose identity has no gallery sequence is a miss.
    """
    labels, types = (np.asarray(a).astype(str) for a in (labels, types))
    feats = _as_parts(features, "features")
    if not len(labels) == len(types) == feats.shape[0]:
        raise ValueError("features, labels and types must describe the same sequences")
    p_idx = np.flatnonzero(np.isin(types, list(probe_types)))
    g_idx = np.flatnonzero(np.isin(types, list(gallery_types)))
    if len(p_idx) == 0 or len(g_idx) == 0:
        raise ValueError(f"no probe ({list(probe_types)}) or no gallery ({list(gallery_types)}) sequence "
                         "among the test sequences' types")
    dist = pairwise_distance(feats[torch.as_tensor(p_idx)], feats[torch.as_tensor(g_idx)], metric)
    return rank_metrics(dist, labels[p_idx], labels[g_idx], ks=ks, unmatched="miss")


def gait3d_protocol(
    features: np.ndarray | torch.Tensor,
    labels: Sequence[str] | np.ndarray,
    is_probe: Sequence[bool] | np.ndarray,
    metric: Metric = "euc",
    ks: Sequence[int] = (1, 5, 10),
    unmatched: Literal["miss", "exclude"] = "exclude",
) -> RankResult:
    """Gait3D-style evaluation: probes ranked against all gallery sequences.

    Args:
        features: ``[n, c, p]`` embeddings of the test sequences.
        labels: subject ids.
        is_probe: ``True`` for probe sequences, ``False`` for gallery ones.
        unmatched: OpenGait's Gait3D evaluation skips probes without a true
            match (``"exclude"``, the default here).
    """
    feats = _as_parts(features, "features")
    labels = np.asarray(labels)
    is_probe = np.asarray(is_probe, dtype=bool)
    if not len(labels) == len(is_probe) == feats.shape[0]:
        raise ValueError("features, labels and is_probe must describe the same sequences")
    dist = pairwise_distance(feats[torch.as_tensor(is_probe)], feats[torch.as_tensor(~is_probe)], metric)
    return rank_metrics(dist, labels[is_probe], labels[~is_probe], ks=ks, unmatched=unmatched)


def casia_b_retrieval(
    features: np.ndarray | torch.Tensor,
    labels: Sequence[str] | np.ndarray,
    types: Sequence[str] | np.ndarray,
    views: Sequence[str] | np.ndarray,
    metric: Metric = "euc",
    ks: Sequence[int] = (1, 5, 10),
    gallery_types: Sequence[str] = CASIA_B_GALLERY,
    probe_types: Mapping[str, Sequence[str]] = CASIA_B_PROBES,
) -> RankResult:
    """Rank-k, mAP and mINP of all CASIA-B probes (NM, BG, CL) against the gallery, cross-view.

    Each probe is ranked against the gallery sequences (``nm-01..04``) of every
    *other* view, so the scores measure cross-view retrieval like the Rank-1
    table of :func:`casia_b_protocol`, but pooled over probes and with the
    Gait3D-style metrics of the paper's Table 1.
    """
    labels, types, views = (np.asarray(a).astype(str) for a in (labels, types, views))
    feats = _as_parts(features, "features")
    is_gallery = np.isin(types, list(gallery_types))
    is_probe = np.isin(types, [t for ts in probe_types.values() for t in ts])
    totals = {k: 0.0 for k in ks}
    ap_sum = inp_sum = 0.0
    n_probes = n_matched = 0
    for view in sorted(set(views[is_probe])):
        p_idx = np.flatnonzero(is_probe & (views == view))
        g_idx = np.flatnonzero(is_gallery & (views != view))
        if len(g_idx) == 0:
            continue
        dist = pairwise_distance(feats[torch.as_tensor(p_idx)], feats[torch.as_tensor(g_idx)], metric)
        r = rank_metrics(dist, labels[p_idx], labels[g_idx], ks=ks)
        for k in ks:
            totals[k] += r.rank[k] * r.num_probes
        ap_sum += r.mAP * r.num_matched
        inp_sum += r.mINP * r.num_matched
        n_probes += r.num_probes
        n_matched += r.num_matched
    return RankResult(rank={k: totals[k] / max(n_probes, 1) for k in ks},
                      mAP=ap_sum / max(n_matched, 1), mINP=inp_sum / max(n_matched, 1),
                      num_probes=n_probes, num_matched=n_matched)


#: The protocols :func:`evaluate_features` knows (``DatasetLayout.protocol``).
PROTOCOLS: tuple[str, ...] = ("casia-b", "oumvlp", "grew", "gait3d")


def gait3d_probe_mask(dataset) -> np.ndarray:
    """Which test sequences are Gait3D probes: ``"<id>-<type>-<view>"`` listed in ``PROBE_SET``."""
    partition = getattr(dataset, "partition", None)
    probes = set(getattr(partition, "probe_set", ()) or ())
    if not probes:
        where = getattr(dataset, "root", "the dataset")
        raise ValueError(f"{where}: the gait3d protocol needs the partition json's PROBE_SET "
                         "(the probe sequences, \"<id>-<type>-<view>\"), and none was given")
    keys = ["-".join(k) for k in zip(dataset.labels, dataset.types, dataset.views)]
    return np.isin(np.asarray(keys), list(probes))


def evaluate_features(features: torch.Tensor, dataset, protocol: str = "casia-b",
                      metric: Metric = "euc") -> dict[str, float]:
    """A flat dict of metrics (percent) for the embeddings of a test split.

    * ``"casia-b"``: Rank-1 per condition (NM, BG, CL, cross-view, identical views
      excluded) and their mean, plus pooled cross-view Rank-1/5/10, mAP and mINP;
    * ``"oumvlp"``: the same table with OU-MVLP's types (gallery ``01``, probe
      ``00``): ``NM`` and ``mean_rank1``, plus the pooled cross-view metrics;
    * ``"grew"``: gallery ``01`` against probe ``02``: Rank-1/5/10/20, mAP, mINP;
    * ``"gait3d"``: the ``PROBE_SET`` sequences against the other test
      sequences: Rank-1/5/10, mAP, mINP.
    """
    labels, types, views = dataset.labels, dataset.types, dataset.views
    out: dict[str, float] = {}
    if protocol in ("casia-b", "oumvlp"):
        gallery, probes = ((CASIA_B_GALLERY, CASIA_B_PROBES) if protocol == "casia-b"
                           else (OUMVLP_GALLERY, OUMVLP_PROBES))
        table = casia_b_protocol(features, labels, types, views, metric, gallery_types=gallery,
                                 probe_types=probes)
        for cond, value in table.mean.items():
            out[cond] = value
        out["mean_rank1"] = float(np.nanmean(list(table.mean.values())))
        ranked = casia_b_retrieval(features, labels, types, views, metric, gallery_types=gallery,
                                   probe_types=probes)
    elif protocol == "grew":
        ranked = real_scene_protocol(features, labels, types, metric=metric)
    elif protocol == "gait3d":
        ranked = gait3d_protocol(features, labels, gait3d_probe_mask(dataset), metric)
    else:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    for k, value in ranked.rank.items():
        out[f"rank{k}"] = value
    out["mAP"], out["mINP"] = ranked.mAP, ranked.mINP
    return {k: round(float(v), 4) for k, v in out.items()}
