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

from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence

import numpy as np
import torch

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

Metric = Literal["euc", "cos"]

#: CASIA-B's gallery sequence types.
CASIA_B_GALLERY: tuple[str, ...] = ("nm-01", "nm-02", "nm-03", "nm-04")

#: CASIA-B's probe conditions and their sequence types.
CASIA_B_PROBES: dict[str, tuple[str, ...]] = {
    "NM": ("nm-05", "nm-06"),
    "BG": ("bg-01", "bg-02"),
    "CL": ("cl-01", "cl-02"),
}


# --------------------------------------------------------------------------
# Distances
# --------------------------------------------------------------------------


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
    if metric not in ("euc", "cos"):
        raise ValueError(f"metric must be 'euc' or 'cos', got {metric!r}")
    x, y = _as_parts(probe, "probe"), _as_parts(gallery, "gallery")
    if x.shape[1:] != y.shape[1:]:
        raise ValueError(f"probe {tuple(x.shape)} and gallery {tuple(y.shape)} differ in channels or parts")
    dtype = torch.promote_types(x.dtype, y.dtype)
    yp = y.to(dtype).permute(2, 0, 1)  # [p, m, c]
    if metric == "cos":
        yp = torch.nn.functional.normalize(yp, dim=2)
    else:
        y_sq = (yp**2).sum(2)  # [p, m]
    out = torch.empty(x.shape[0], y.shape[0], dtype=torch.float64)
    for start in range(0, x.shape[0], chunk_size):
        xp = x[start : start + chunk_size].to(dtype).permute(2, 0, 1)  # [p, b, c]
        if metric == "cos":
            sim = torch.bmm(torch.nn.functional.normalize(xp, dim=2), yp.transpose(1, 2))
            out[start : start + chunk_size] = (1.0 - sim.mean(0)).to(torch.float64)
        else:
            sq = (xp**2).sum(2)[:, :, None] + y_sq[:, None, :] - 2.0 * torch.bmm(xp, yp.transpose(1, 2))
            out[start : start + chunk_size] = sq.clamp_min(0.0).sqrt().mean(0).to(torch.float64)
    return out.numpy()


# --------------------------------------------------------------------------
# Ranking metrics
# --------------------------------------------------------------------------


@dataclass
class RankResult:
    """Rank-k accuracies, mAP and mINP, all in percent.

    Attributes:
        rank: ``{k: Rank-k %}``.
        mAP, mINP: means over the probes with at least one true match.
        num_probes: probes evaluated for Rank-k.
        num_matched: probes with a true match in the gallery (mAP/mINP).
    """

    rank: dict[int, float]
    mAP: float
    mINP: float
    num_probes: int
    num_matched: int

    def to_markdown(self) -> str:
        """A one-row markdown table."""
        ks = sorted(self.rank)
        head = "| " + " | ".join([f"Rank-{k}" for k in ks] + ["mAP", "mINP"]) + " |"
        rule = "|" + "---|" * (len(ks) + 2)
        row = "| " + " | ".join(f"{v:.2f}" for v in [*(self.rank[k] for k in ks), self.mAP, self.mINP]) + " |"
        return "\n".join([head, rule, row])

    def __str__(self) -> str:
        return self.to_markdown()


def rank_metrics(
    dist: np.ndarray,
    probe_labels: Sequence | np.ndarray,
    gallery_labels: Sequence | np.ndarray,
    ks: Sequence[int] = (1, 5, 10),
    unmatched: Literal["miss", "exclude"] = "miss",
) -> RankResult:
    """Rank-k, mAP and mINP for a probe x gallery distance matrix.

    For one probe, rank the gallery by increasing distance; let ``rel_j`` be 1
    when the ``j``-th item shares the probe's label and ``R`` the number of
    such items.  Then

    * Rank-k hit: some ``rel_j = 1`` with ``j <= k``;
    * ``AP = (1/R) * sum_j rel_j * precision@j``;
    * ``INP = R / (position of the last true match)``.

    All three are averaged over probes and multiplied by 100.  See the module
    docstring for probes without a true match (*unmatched*).
    """
    dist = np.asarray(dist, dtype=np.float64)
    p_lab, g_lab = np.asarray(probe_labels), np.asarray(gallery_labels)
    if dist.shape != (len(p_lab), len(g_lab)):
        raise ValueError(f"dist has shape {dist.shape}, labels give ({len(p_lab)}, {len(g_lab)})")
    if unmatched not in ("miss", "exclude"):
        raise ValueError(f"unmatched must be 'miss' or 'exclude', got {unmatched!r}")
    ks = tuple(int(k) for k in ks)
    if dist.shape[0] == 0:
        return RankResult({k: float("nan") for k in ks}, float("nan"), float("nan"), 0, 0)

    order = np.argsort(dist, axis=1, kind="stable")
    rel = g_lab[order] == p_lab[:, None]  # [n, m]
    n_rel = rel.sum(1)
    matched = n_rel > 0
    positions = np.arange(1, rel.shape[1] + 1)
    first_hit = np.where(matched, rel.argmax(1) + 1, np.iinfo(np.int64).max)

    denom = matched if unmatched == "exclude" else np.ones_like(matched)
    rank = {k: 100.0 * float((first_hit[denom] <= k).mean()) if denom.any() else float("nan") for k in ks}

    if matched.any():
        r = rel[matched]
        precision = np.cumsum(r, 1) / positions
        ap = (precision * r).sum(1) / r.sum(1)
        last_hit = r.shape[1] - np.argmax(r[:, ::-1], 1)
        inp = r.sum(1) / last_hit
        m_ap, m_inp = 100.0 * float(ap.mean()), 100.0 * float(inp.mean())
    else:
        m_ap = m_inp = float("nan")
    return RankResult(rank, m_ap, m_inp, int(denom.sum()), int(matched.sum()))


# --------------------------------------------------------------------------
# Protocols
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# Feature extraction and the evaluation of a trained model
# --------------------------------------------------------------------------


def _dist_info() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def eval_sequence(dataset, index: int, transform=None, max_frames: int | None = 720) -> torch.Tensor:
    """Sequence ``index`` of ``dataset`` as evaluation reads it: ``[frames, h, w]`` float32.

    All its frames in order (OpenGait's ``all_ordered``), at most ``max_frames``
    (its ``frames_all_limit``), through the test-time ``transform`` (without
    one, the stored 0..255 values are scaled to [0, 1]).
    """
    sils = torch.from_numpy(np.ascontiguousarray(dataset.load(index))).to(torch.float32)
    if max_frames is not None:
        sils = sils[:max_frames]
    return transform(sils, None) if transform is not None else sils / 255.0


@torch.no_grad()
def extract_features(
    model: torch.nn.Module,
    dataset,
    transform=None,
    device: torch.device | str = "cpu",
    batch_sequences: int = 16,
    max_frames: int | None = 720,
    amp: bool = True,
    progress: bool = False,
) -> torch.Tensor:
    """Embeddings ``[n, c, p]`` of every sequence of ``dataset``, in dataset order.

    Sequences keep all their frames, in order (OpenGait's ``all_ordered``; at
    most ``max_frames`` of them, its ``frames_all_limit``) and are packed along
    the frame axis, ``batch_sequences`` at a time, with their lengths in
    ``seqL``: variable-length sequences are batched without padding, and
    nothing limits a device to one sequence per batch.

    Under ``torch.distributed`` each rank embeds every ``world_size``-th
    sequence and the shares are gathered, so every rank returns the full,
    ordered tensor.  ``progress`` shows a bar over this rank's sequences.
    """
    device = torch.device(device)
    rank, world = _dist_info()
    mine = list(range(rank, len(dataset), world))
    was_training = model.training
    model.eval()
    chunks: list[torch.Tensor] = []
    from tqdm.auto import tqdm

    bar = tqdm(total=len(mine), desc="embedding test sequences", unit="seq", leave=False,
               disable=not progress, dynamic_ncols=True)
    try:
        for start in range(0, len(mine), batch_sequences):
            seqs = [eval_sequence(dataset, index, transform, max_frames)
                    for index in mine[start:start + batch_sequences]]
            packed = torch.cat(seqs, 0)[None].to(device)
            seq_len = [len(s) for s in seqs]
            use_amp = amp and device.type == "cuda"
            with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
                out = model(packed, seq_len)
            chunks.append(out["embeddings"].float().cpu())
            bar.update(len(seqs))
    finally:
        bar.close()
        model.train(was_training)
    feats = torch.cat(chunks, 0) if chunks else torch.empty(0)
    if world == 1:
        return feats
    gathered: list = [None] * world
    torch.distributed.all_gather_object(gathered, (mine, feats))
    order = np.concatenate([np.asarray(idx, dtype=np.int64) for idx, _ in gathered])
    stacked = torch.cat([f for _, f in gathered if f.numel()], 0)
    out = torch.empty_like(stacked)
    out[torch.as_tensor(order)] = stacked
    return out


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
