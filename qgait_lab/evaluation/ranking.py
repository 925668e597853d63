"""Rank-k accuracy, mAP and mINP from a probe x gallery distance matrix (:func:`rank_metrics`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np


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
