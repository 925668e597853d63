"""Figures of the course notebooks (matplotlib only); the figures of results are in
:mod:`qgait_lab.experiments.figures`.

Every function takes data and returns a ``matplotlib.figure.Figure``; saving
and showing are left to the caller.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch



def soft_quantizer_moments_figure(k_max: float = 10.0, mark_k: float | None = None, axes=None):
    """The paper's Fig. 3(b)(c) and the chain-rule reading, side by side.

    Left: the first-order term of Eq. 8, ``E^2[G'(z)] = 1/k^2`` (Eq. 11, the
    paper's reading in z), against the mean slope in x, ``E[d theta/dx] = 1``
    (the STE's).  Right: the second-order term, ``E[G'(z)^2]`` (Eq. 12), against
    ``E[(d theta/dx)^2] = k^2 Eq. 12``.  Curves come from the sympy expressions
    of :mod:`qgait_lab.lab.theory`.  ``mark_k`` draws a marker at the current k;
    ``axes`` (two Axes) draws into an existing figure.
    """
    from . import theory

    ks = np.linspace(1.0, max(k_max, 1.5), 400)
    own_figure = axes is None
    if own_figure:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    else:
        fig = axes[0].figure
    ax1, ax2 = axes
    mean_z = theory.mean_grad_G_numpy(ks)
    second_z = theory.second_moment_grad_G_numpy(ks)
    second_x = theory.slope_second_moment_numpy(ks)
    ax1.plot(ks, mean_z ** 2, label=r"$\mathbb{E}^2[\nabla G(z)] = 1/k^2$ (Eq. 11)")
    ax1.plot(ks, np.ones_like(ks), ls="--", color="black", label=r"$\mathbb{E}^2[\partial\theta_k/\partial x] = 1$ (= STE)")
    ax2.plot(ks, second_z, label=r"$\mathbb{E}[\|\nabla G(z)\|^2]$ (Eq. 12)")
    ax2.plot(ks, second_x, color="tab:red", label=r"$\mathbb{E}[(\partial\theta_k/\partial x)^2] = k^2\cdot$Eq. 12")
    ax2.axhline(1.0, ls="--", color="black", label="STE: 1")
    if mark_k is not None:
        mk = np.array([float(mark_k)])
        ax1.plot(mk, theory.mean_grad_G_numpy(mk) ** 2, "o", color="tab:blue")
        ax2.plot(mk, theory.second_moment_grad_G_numpy(mk), "o", color="tab:blue")
        ax2.plot(mk, theory.slope_second_moment_numpy(mk), "o", color="tab:red")
        for ax in (ax1, ax2):
            ax.axvline(float(mark_k), color="grey", lw=0.8, ls=":")
    ax1.set(title="first-order term of Eq. 8 (Fig. 3b)", xlabel="k", ylim=(0, 1.1))
    ax2.set(title="second-order term of Eq. 8 (Fig. 3c)", xlabel="k", yscale="log")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=10)
    if own_figure:
        fig.tight_layout()
    return fig


def quantizer_response(quantizer: torch.nn.Module, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Forward values and per-element derivatives of a fake quantizer over a 1-D sweep ``x``.

    Returns ``{"x", "forward", "d/dx", "d/d<param>"...}``.  Derivatives are taken
    by autograd through the quantizer itself (a Jacobian, so each element's
    derivative is exact); parameter derivatives are per element, i.e. the
    contribution of each input value to the parameter's gradient.  LSQ's step
    derivative is divided by LSQ's gradient scale ``g`` so that the curve is
    ``d v_hat / d s`` itself.
    """
    from torch.autograd.functional import jacobian
    from torch.func import functional_call

    x = x.detach().clone()
    with torch.no_grad():
        quantizer(x)          # data-driven quantizers (LSQ) initialise on their first call
    params = {n: p.detach().clone() for n, p in quantizer.named_parameters()}
    buffers = {n: b for n, b in quantizer.named_buffers()}

    def run(inp, prm):
        return functional_call(quantizer, {**prm, **buffers}, (inp,))

    with torch.no_grad():
        forward = run(x, params)
    xg = x.clone().requires_grad_(True)
    out = run(xg, params)
    (grad_x,) = torch.autograd.grad(out.sum(), xg)   # elementwise quantizer: the Jacobian's diagonal
    result = {"x": x.numpy(), "forward": forward.detach().numpy(), "d/dx": grad_x.numpy()}
    for name in params:
        jac = jacobian(lambda p, name=name: run(x, {**params, name: p}), params[name])
        jac = jac.reshape(len(x), -1).sum(-1)
        scale = 1.0
        if hasattr(quantizer, "grad_scale_factor") and name == "step":
            scale = float(quantizer.grad_scale_factor(x))
        result[f"d/d{name}"] = (jac / scale).detach().numpy()
    return result


def interclass_distance_figure(reference, models: Mapping[str, object], labels, reference_name: str = "full precision"):
    """Inter-class centroid distances of each model against the reference's (Fig. 4's dashed lines).

    Each point is one pair of identities; a model that keeps the reference's
    inter-class geometry puts every point on the diagonal.  Distances are
    rescaled to the reference's mean, so only the *relative* geometry counts.
    """
    from ..evaluation.embedding_analysis import class_centroid_distances, interclass_distance_change

    d_ref, _ = class_centroid_distances(reference, labels)
    iu = np.triu_indices_from(d_ref, k=1)
    a = d_ref[iu]
    side = min(4.6, 10.0 / len(models))
    fig, axes = plt.subplots(1, len(models), figsize=(side * len(models), side + 0.6), squeeze=False)
    for ax, (name, feats) in zip(axes[0], models.items()):
        d, _ = class_centroid_distances(feats, labels)
        b = d[iu] * (a.mean() / max(d[iu].mean(), 1e-12))
        change = interclass_distance_change(reference, feats, labels)
        ax.scatter(a, b, s=8, alpha=0.6)
        lim = (0, max(a.max(), b.max()) * 1.05)
        ax.plot(lim, lim, color="black", lw=0.8, ls="--")
        ax.set(xlim=lim, ylim=lim, xlabel=f"distance, {reference_name}", ylabel=f"distance, {name} (rescaled)",
               title=f"{name}\ncorr {change.correlation:.3f}, mean rel. change {change.relative_change:.3f}")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def histogram_figure(values: Mapping[str, np.ndarray], xlabel: str = "", title: str = "", bins: int = 80):
    """Overlaid density histograms, one per label; the legend gives each one's variance (``np.var``, float64)."""
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    for name, v in values.items():
        v = np.asarray(v, dtype=np.float64).ravel()
        ax.hist(v, bins=bins, density=True, histtype="step", lw=1.5,
                label=f"{name} (var {v.var():.4g})")
    ax.set(xlabel=xlabel, ylabel="density", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=10)
    fig.tight_layout()
    return fig


def bitops_per_layer_figure(costs_by_label: Mapping[str, Sequence], top: int | None = None):
    """BitOPs per layer (bars, one group per layer), from ``quant.bitops.count_costs`` results."""
    labels = list(costs_by_label)
    first = list(costs_by_label[labels[0]])
    names = [c.name for c in first]
    if top is not None:
        order = np.argsort([-c.macs for c in first])[:top]
        names = [names[i] for i in sorted(order)]
    # Horizontal bars: the layer names stay horizontal and readable at 10 pt.
    fig, ax = plt.subplots(figsize=(10.0, max(3.5, 0.28 * len(names) * len(labels) + 1.2)))
    height = 0.8 / len(labels)
    ys = np.arange(len(names))
    for i, label in enumerate(labels):
        lookup = {c.name: c.bitops for c in costs_by_label[label]}
        ax.barh(ys + i * height, [lookup.get(n, 0.0) / 1e9 for n in names], height, label=label)
    ax.set_yticks(ys + 0.4 - height / 2, [n.replace("Backbone.forward_block.", "") for n in names], fontsize=10)
    ax.invert_yaxis()
    ax.set(xlabel="BitOPs (G), log scale", xscale="log", title="where the BitOPs go (one sequence)")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=10)
    fig.tight_layout()
    return fig


def accuracy_per_bitop_figure(panels: Mapping[str, Sequence[Mapping]], metric: str = "rank1"):
    """Fig. 1a: accuracy divided by BitOPs (G), one bar per model, one panel per source.

    ``panels`` maps a panel title to rows with ``method``, ``bitops_g`` and
    ``metric`` (percent).  Rows without BitOPs are skipped.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(min(10.0, 5.0 * len(panels)), 4.4), squeeze=False)
    for ax, (title, rows) in zip(axes[0], panels.items()):
        rows = [r for r in rows if r.get("bitops_g") and r.get(metric) is not None]
        names = [str(r["method"]) for r in rows]
        values = [float(r[metric]) / float(r["bitops_g"]) for r in rows]
        ax.bar(range(len(rows)), values, color="tab:blue")
        ax.set_xticks(range(len(rows)), names, rotation=45, ha="right", fontsize=10)
        ax.set(yscale="log", ylabel=f"{metric} / BitOPs (G)", title=title)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# Notebook 01: silhouettes, the input transform, the GEI and the CASIA-B table
# ---------------------------------------------------------------------------
def silhouettes_figure(images: Sequence[np.ndarray], titles: Sequence[str], suptitle: str = "",
                       vmin: float = 0.0, vmax: float | None = None, cmap: str = "gray",
                       colorbar_label: str = "pixel value", width: float = 10.0):
    """A row of images (frames, GEIs, frame differences) on one colour scale, with one colour bar.

    ``vmax`` defaults to 255 when every image is ``uint8`` (stored silhouettes)
    and to 1 otherwise (the network's input, a GEI).
    """
    images = [np.asarray(im) for im in images]
    if vmax is None:
        vmax = 255.0 if all(im.dtype == np.uint8 for im in images) else 1.0
    h, w = images[0].shape[-2:]
    panel = width / (len(images) + 0.6)
    fig, axes = plt.subplots(1, len(images), figsize=(width, panel * h / w + 1.2), squeeze=False,
                             layout="constrained")
    for ax, im, title in zip(axes[0], images, titles):
        shown = ax.imshow(im, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("column", fontsize=10)
        ax.set_xticks([0, im.shape[-1] - 1])
        ax.set_yticks([0, im.shape[-2] - 1])
        ax.tick_params(labelsize=10)
    axes[0][0].set_ylabel("row", fontsize=10)
    bar = fig.colorbar(shown, ax=axes[0].tolist(), shrink=0.9)
    bar.set_label(colorbar_label, fontsize=10)
    bar.ax.tick_params(labelsize=10)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    return fig


def input_transform_figure(frame: np.ndarray):
    """A stored frame with the columns OpenGait's cut removes shaded, next to the network's input (Sec. 4.1)."""
    from ..data.transforms import SilCutScale, cut_columns

    frame = np.asarray(frame)
    h, w = frame.shape
    cut = cut_columns(w)
    model_input = SilCutScale()(torch.as_tensor(frame, dtype=torch.float32)[None])[0].numpy()
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.5, 4.4), layout="constrained",
                                      width_ratios=[w, model_input.shape[1]])
    shown = left.imshow(frame, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    for lo, hi in ((-0.5, cut - 0.5), (w - cut - 0.5, w - 0.5)):
        left.axvspan(lo, hi, color="tab:red", alpha=0.35, lw=0)
    left.set_title(f"stored {h} × {w} (uint8)\nred: {cut} columns cut on each side", fontsize=10)
    fig.colorbar(shown, ax=left, shrink=0.85).set_label("stored value", fontsize=10)
    shown = right.imshow(model_input, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    right.set_title(f"network input {model_input.shape[0]} × {model_input.shape[1]}\n(value / 255)",
                    fontsize=10)
    fig.colorbar(shown, ax=right, shrink=0.85).set_label("input value", fontsize=10)
    for ax in (left, right):
        ax.set_xlabel("column", fontsize=10)
        ax.set_ylabel("row", fontsize=10)
        ax.tick_params(labelsize=10)
    return fig


def cross_view_figure(result, title: str = ""):
    """Rank-1 of every (probe view, gallery view) pair of a CASIA-B table, one heat map per condition.

    ``result`` is a :class:`~qgait_lab.evaluation.CasiaBResult`; pairs the
    protocol does not count (identical views in the cross-view table) are grey.
    """
    conditions = list(result.pair_accuracy)
    views = list(result.views)
    fig, axes = plt.subplots(1, len(conditions), figsize=(min(10.0, 3.2 * len(conditions) + 1.0), 3.9),
                             squeeze=False, layout="constrained")
    for ax, cond in zip(axes[0], conditions):
        table = np.asarray(result.pair_accuracy[cond], dtype=float)
        ax.set_facecolor("lightgrey")
        shown = ax.imshow(np.ma.masked_invalid(table), cmap="viridis", vmin=0, vmax=100)
        if len(views) <= 6:
            for i in range(len(views)):
                for j in range(len(views)):
                    if np.isfinite(table[i, j]):
                        ax.text(j, i, f"{table[i, j]:.0f}", ha="center", va="center", fontsize=10,
                                color="white" if table[i, j] < 60 else "black")
        ticks = range(len(views))
        ax.set_xticks(ticks, views, fontsize=10, rotation=90 if len(views) > 6 else 0)
        ax.set_yticks(ticks, views, fontsize=10)
        ax.set_xlabel("gallery view (degrees)", fontsize=10)
        ax.set_ylabel("probe view (degrees)", fontsize=10)
        ax.set_title(f"{cond}: mean {result.mean.get(cond, float('nan')):.1f} %", fontsize=10)
    bar = fig.colorbar(shown, ax=axes[0].tolist(), shrink=0.9)
    bar.set_label("Rank-1 (%)", fontsize=10)
    bar.ax.tick_params(labelsize=10)
    fig.suptitle(title or f"CASIA-B protocol, {result.mode} (grey: pair not counted)", fontsize=11)
    return fig


# ---------------------------------------------------------------------------
# Notebook 02: uniform quantization (Eqs. 2-4), the step trade-off, quantizers' forward and backward
# ---------------------------------------------------------------------------
def uniform_quantization_figure(x, x_hat, step: float, bounds: tuple[int, int], title: str = ""):
    """Eqs. 2-3 on a sweep of inputs: the staircase ``x_hat(x)`` (left) and the error ``x_hat - x`` (right).

    ``bounds`` is the integer clip range ``(r1, r2)``.  Shaded: the inputs the
    clamp clips (``x / v`` outside ``[r1, r2]``); dashed: ``+-v/2``, the largest
    rounding error inside the range.
    """
    x, x_hat = np.asarray(x, dtype=float), np.asarray(x_hat, dtype=float)
    r1, r2 = bounds
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax in (ax1, ax2):
        if x.min() < r1 * step:
            ax.axvspan(x.min(), r1 * step, color="tab:red", alpha=0.1, lw=0, label="clipped")
        if x.max() > r2 * step:
            ax.axvspan(r2 * step, x.max(), color="tab:red", alpha=0.1, lw=0,
                       label=None if x.min() < r1 * step else "clipped")
        ax.grid(alpha=0.3)
    ax1.plot(x, x, color="grey", lw=1, ls=":", label="identity")
    ax1.plot(x, x_hat, color="tab:blue", label=r"$\hat x = \bar x\, v$ (Eq. 3)")
    ax1.set(xlabel="input x", ylabel=r"quantized value $\hat x$", title="forward: a staircase of step v")
    ax2.plot(x, x_hat - x, color="tab:blue", label=r"$\hat x - x$")
    for sign in (1, -1):
        ax2.axhline(sign * step / 2, color="black", lw=1, ls="--", label=r"$\pm v/2$" if sign > 0 else None)
    ax2.set(xlabel="input x", ylabel=r"error $\hat x - x$", title="quantization error")
    for ax in (ax1, ax2):
        ax.legend(fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def quantization_error_parts(v, steps, bits: int, signed: bool) -> dict[str, np.ndarray]:
    """Mean squared error of Eqs. 2-3 over the values ``v`` at each step, split by where it arises.

    ``rounding``: the elements inside the clip range (each at most ``(v/2)^2``);
    ``clipping``: the elements the clamp cuts off.  Both are means over *all*
    elements, so ``total = rounding + clipping``.
    """
    from ..quant.functional import lsq_bounds

    lo, hi = lsq_bounds(bits, signed)
    v = torch.as_tensor(v, dtype=torch.float64).reshape(-1)
    steps = np.asarray(steps, dtype=float)
    rounding, clipping = np.empty(len(steps)), np.empty(len(steps))
    for i, s in enumerate(steps):
        c = v / s
        err = (s * torch.round(torch.clamp(c, lo, hi)) - v) ** 2
        inside = (c >= lo) & (c <= hi)
        rounding[i] = float(torch.where(inside, err, 0.0).mean())
        clipping[i] = float(torch.where(inside, 0.0, err).mean())
    return {"step": steps, "rounding": rounding, "clipping": clipping, "total": rounding + clipping}


def step_tradeoff_figure(panels: Mapping[str, Mapping[str, np.ndarray]],
                         marks: Mapping[str, Mapping[str, float]] | None = None):
    """Rounding against clipping error as the step grows, one panel per tensor (from :func:`quantization_error_parts`).

    ``marks`` maps a panel title to ``{label: step}``, drawn as vertical lines.
    """
    marks = marks or {}
    fig, axes = plt.subplots(1, len(panels), figsize=(min(10.0, 5.0 * len(panels)), 3.9), squeeze=False)
    styles = ("--", "-.", ":")
    for ax, (name, parts) in zip(axes[0], panels.items()):
        ax.plot(parts["step"], parts["total"], color="black", lw=2, label="total")
        ax.plot(parts["step"], parts["rounding"], color="tab:blue", label="rounding (inside the range)")
        ax.plot(parts["step"], parts["clipping"], color="tab:red", label="clipping (outside)")
        for (label, s), ls in zip(marks.get(name, {}).items(), styles):
            ax.axvline(s, color="grey", lw=1.2, ls=ls, label=f"{label}: {s:.3g}")
        ax.set(xscale="log", yscale="log", xlabel="step v", ylabel="mean squared error", title=name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=10)
    fig.tight_layout()
    return fig


_DERIVATIVE_LABELS = {"d/dx": r"$\partial$ out / $\partial$ input", "d/dstep": r"$\partial$ out / $\partial$ step",
                      "d/dalpha": r"$\partial$ out / $\partial\alpha$"}


def forward_backward_figure(responses: Mapping[str, Mapping[str, np.ndarray]], keys: Sequence[str] | None = None,
                            title: str = ""):
    """Forward (top row) and derivatives (bottom row) of quantizers, one column each, at most 10 inches wide.

    ``responses`` come from :func:`quantizer_response`; ``keys`` chooses the
    derivatives drawn (default: all of them, e.g. ``("d/dx",)`` for the STE only).
    """
    n = len(responses)
    fig, axes = plt.subplots(2, n, figsize=(min(10.0, 4.0 * n + 1.0), 6.4), squeeze=False)
    for col, (name, r) in enumerate(responses.items()):
        top, bottom = axes[0, col], axes[1, col]
        top.plot(r["x"], r["x"], color="grey", lw=1, ls=":", label="identity")
        top.plot(r["x"], r["forward"], color="tab:blue", label="forward")
        top.set(title=name, xlabel="input", ylabel="output")
        chosen = [k for k in r if k.startswith("d/")] if keys is None else [k for k in keys if k in r]
        for key in chosen:
            bottom.plot(r["x"], r[key], label=_DERIVATIVE_LABELS.get(key, key.replace("d/d", "d out / d ")))
        bottom.set(xlabel="input", ylabel="derivative", title="backward")
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
