"""Result tables in the paper's layout (Table 1) and the mean +- std over seeds."""
from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np

TABLE_COLUMNS = (("BitOPs (G)", "bitops_g"), ("Rank-1", "rank1"), ("Rank-5", "rank5"),
                 ("Rank-10", "rank10"), ("Rank-20", "rank20"), ("mAP", "mAP"), ("mINP", "mINP"),
                 ("NM", "NM"), ("BG", "BG"), ("CL", "CL"),
                 # Fig. 4's number (experiments.distances): inter-class distances against full precision.
                 ("Dist. corr. with FP", "distance_corr"), ("Dist. change", "distance_change"))
#: Columns printed with three decimals (the rest with two).
FINE_COLUMNS = ("distance_corr", "distance_change")


def row_from(label: str, bits: str, metrics: Mapping[str, float], bitops: float | None) -> dict:
    row = {"method": label, "bits": bits, **{k: v for k, v in metrics.items()}}
    row["bitops_g"] = None if bitops is None else bitops / 1e9
    return row


def _cell(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, tuple):
        mean, std = value
        return f"{mean:.{digits}f} ± {std:.{digits}f}"
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else str(value)


def markdown_table(rows: Sequence[Mapping], columns=TABLE_COLUMNS) -> str:
    """Rows as a markdown table; a column no row has (GREW's Rank-20, CASIA-B's NM/BG/CL) is left out."""
    columns = [(title, key) for title, key in columns if any(key in r for r in rows)]
    head = "| Method | Bit-width | " + " | ".join(c for c, _ in columns) + " |"
    rule = "|---|---|" + "---:|" * len(columns)
    lines = [head, rule]
    for r in rows:
        cells = [_cell(r.get(key), 3 if key in FINE_COLUMNS else 2) for _, key in columns]
        lines.append(f"| {r['method']} | {r['bits']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def aggregate(rows_per_seed: Iterable[Sequence[Mapping]]) -> list[dict]:
    """Rows with the same (method, bits) across seeds -> (mean, std) per numeric column."""
    groups: dict[tuple, list[Mapping]] = {}
    order: list[tuple] = []
    for rows in rows_per_seed:
        for r in rows:
            key = (r["method"], r["bits"])
            if key not in groups:
                order.append(key)
            groups.setdefault(key, []).append(r)
    out = []
    for key in order:
        rs = groups[key]
        agg: dict = {"method": key[0], "bits": key[1], "seeds": len(rs)}
        for name in rs[0]:
            vals = [r.get(name) for r in rs]
            if all(isinstance(v, (int, float)) and v is not None for v in vals) and name != "seeds":
                agg[name] = (float(np.mean(vals)), float(np.std(vals)))
        out.append(agg)
    return out
