"""Figures of results: the demo's and the reports' (matplotlib only; the notebooks use them too).

Every function takes data and returns a ``matplotlib.figure.Figure``; saving
and showing are left to the caller.  The course's own figures are in
:mod:`qgait_lab.lab.figures`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..quant.functional import soft_round, soft_round_slope


def theta_k_figure(ks: Sequence[float] = (1, 3, 5, 10), x_range: tuple[float, float] = (-1.5, 1.5)):
    """theta_k against round (Eq. 6, the paper's Fig. 3a) and its slope (Eq. 7)."""
    x = torch.linspace(*x_range, 1201, dtype=torch.float64)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax1.plot(x, torch.round(x), color="black", lw=1, ls="--", label="round")
    for k in ks:
        ax1.plot(x, soft_round(x, k), label=f"k = {k:g}")
        ax2.plot(x, soft_round_slope(x, k), label=f"k = {k:g}")
    ax2.axhline(1.0, color="black", lw=1, ls="--", label="STE")
    ax1.set(title=r"$\theta_k(x)$ (Eq. 6)", xlabel="x")
    ax2.set(title=r"$\partial\theta_k/\partial x$ (Eq. 7): mean 1 on every unit interval",
            xlabel="x", yscale="log")
    for ax in (ax1, ax2):
        ax.legend(fontsize=10)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a ``metrics.jsonl`` file."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def loss_curves_figure(runs: Mapping[str, Sequence[str | Path]], keys: Sequence[str] = ("loss",)):
    """Training curves: ``runs`` maps a label to its stage folders (concatenated in order)."""
    fig, axes = plt.subplots(1, len(keys), figsize=(min(10.0, 5.0 * len(keys)), 3.8), squeeze=False)
    for label, dirs in runs.items():
        offset = 0
        xs: dict[str, list] = {k: [] for k in keys}
        ys: dict[str, list] = {k: [] for k in keys}
        for d in dirs:
            records = [r for r in read_metrics(Path(d) / "metrics.jsonl") if r.get("kind") == "train"]
            for r in records:
                for k in keys:
                    if k in r:
                        xs[k].append(offset + r["iteration"])
                        ys[k].append(r[k])
            offset += records[-1]["iteration"] if records else 0
        for ax, k in zip(axes[0], keys):
            ax.plot(xs[k], ys[k], label=label)
    for ax, k in zip(axes[0], keys):
        ax.set(xlabel="iteration (stages concatenated)", ylabel=k, title=k)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=10)
    fig.tight_layout()
    return fig


def tsne_figure(panels: Mapping[str, np.ndarray], labels: np.ndarray, title: str = ""):
    """Scatter plots of 2-D embeddings, one panel per model, coloured by identity."""
    side = min(4.2, 10.0 / len(panels))
    fig, axes = plt.subplots(1, len(panels), figsize=(side * len(panels), side + 0.4), squeeze=False)
    uniq = {v: i for i, v in enumerate(sorted(set(labels.tolist())))}
    colours = np.array([uniq[v] for v in labels.tolist()])
    for ax, (name, xy) in zip(axes[0], panels.items()):
        ax.scatter(xy[:, 0], xy[:, 1], c=colours, cmap="tab20", s=9)
        ax.set(title=name, xticks=[], yticks=[])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
