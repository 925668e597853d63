"""Paired comparisons over seeds: the evidence that can separate two methods.

Two methods trained with the same seed from the same parent stage (QGait's
fine-tune and LSQ's equal-budget fine-tune both start from one stage-1
checkpoint) differ by far less noise than either differs across seeds.  So the
comparison is the per-seed difference ``a - b``: its mean, a 95 % Student-t
interval over seeds, and how many seeds put ``a`` ahead.  The verdict follows
the interval: ``a`` is ahead only when the whole interval is above 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from scipy import stats


@dataclass(frozen=True)
class PairedDifference:
    """``a - b`` seed by seed, in ``metric``'s units (Rank-1 points)."""

    a: str
    b: str
    metric: str
    differences: tuple[float, ...]
    mean: float
    low: float          # the 95 % interval; +-inf with a single seed
    high: float
    ahead: int          # seeds where a is better than b
    digits: int = 2     # decimals when described (3 for Fig. 4's distances)
    lower_is_better: bool = False   # a distance change, where less is closer to full precision

    @property
    def seeds(self) -> int:
        return len(self.differences)

    @property
    def verdict(self) -> str:
        above, below = (self.b, self.a) if self.lower_is_better else (self.a, self.b)
        if self.low > 0:
            return f"{above} ahead"
        if self.high < 0:
            return f"{below} ahead"
        return "not separated by these seeds"

    def describe(self) -> str:
        d = self.digits
        interval = (f"95 % interval {self.low:+.{d}f} to {self.high:+.{d}f}" if math.isfinite(self.low)
                    else "no interval from one seed")
        return (f"{self.a} − {self.b} ({self.metric}): {self.mean:+.{d}f}, {interval}; {self.a} ahead in "
                f"{self.ahead} of {self.seeds} seeds: {self.verdict}")


def paired_difference(a: Sequence[float], b: Sequence[float], a_name: str = "a", b_name: str = "b",
                      metric: str = "Rank-1", confidence: float = 0.95, digits: int = 2,
                      lower_is_better: bool = False) -> PairedDifference:
    """The per-seed differences ``a[i] - b[i]`` and their mean's Student-t interval; ``a`` is ahead
    in a seed where the difference is positive (negative with ``lower_is_better``)."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired values need one per seed on both sides; got {len(a)} and {len(b)}")
    diffs = tuple(float(x) - float(y) for x, y in zip(a, b))
    n = len(diffs)
    mean = sum(diffs) / n
    if n == 1:
        low, high = -math.inf, math.inf
    else:
        sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
        low, high = mean - half, mean + half
    ahead = sum(d < 0 if lower_is_better else d > 0 for d in diffs)
    return PairedDifference(a_name, b_name, metric, diffs, mean, low, high, ahead, digits, lower_is_better)


def paired_from_seeds(rows_per_seed: Sequence[Sequence[dict]], a: tuple[str, str], b: tuple[str, str],
                      metric: str = "rank1", title: str = "Rank-1",
                      b_value: float | None = None, digits: int = 2,
                      lower_is_better: bool = False) -> PairedDifference | None:
    """The paired difference of the result rows ``a`` and ``b``, each ``(method label, bits label)``,
    in ``rows_per_seed`` (one list of rows per seed), over the seeds that have both.

    ``b_value``: ``b``'s one value for every seed (a shared teacher, trained once)."""
    def per_seed(key):
        return [next((r.get(metric) for r in rows if (r["method"], r["bits"]) == key), None)
                for rows in rows_per_seed]

    va = per_seed(a)
    vb = [b_value] * len(va) if b_value is not None else per_seed(b)
    pairs = [(x, y) for x, y in zip(va, vb) if isinstance(x, (int, float)) and isinstance(y, (int, float))]
    if not pairs:
        return None
    return paired_difference([x for x, _ in pairs], [y for _, y in pairs], a[0], b[0], title, digits=digits,
                             lower_is_better=lower_is_better)
