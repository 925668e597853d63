"""Widget builders and notebook helpers for the course lab (``notebooks/``).

Everything a notebook needs beyond a plain library call lives here, so that
the notebooks stay thin and this code is tested like the rest of the library:

* :func:`setup_matplotlib`: inline figures, or ``ipympl`` when it is installed;
* :func:`find_data_samples`, :func:`load_sample_sequence`: the silhouettes of
  ``data_samples/`` without generating anything;
* :func:`meaningful_gradient_fraction`, :class:`FirstLayersProbe` and
  :func:`k_explorer`: the k-slider explorer of notebook 04 (theta_k, its slope,
  the moments of Eqs. 11-12 and a real silhouette through GaitBase's first
  layers at the chosen bits);
* :class:`LiveLossPlot`: a trainer callback that redraws the loss curves while
  a stage runs;
* :func:`torchrun_command`, :func:`follow_command`: launch a ``torchrun``
  subprocess and follow its log from a notebook cell.

ipywidgets and IPython are imported lazily, so importing this module costs
nothing outside a notebook.
"""
from __future__ import annotations

import copy
import functools
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from .course.paths import find_folder

__all__ = [
    "setup_matplotlib", "find_data_samples", "load_sample_sequence",
    "meaningful_gradient_fraction", "uniform_meaningful_fraction",
    "ProbeResult", "FirstLayersProbe", "explorer_figure", "k_explorer",
    "LiveLossPlot", "free_port", "torchrun_command", "display_command", "follow_command",
]

MEANINGFUL_SLOPE = 0.1
"""A soft slope counts as a "meaningful" gradient when it is at least 10 % of the STE's slope of 1."""


# ---------------------------------------------------------------------------
# Notebook set-up
# ---------------------------------------------------------------------------
def has_ipympl() -> bool:
    try:
        import ipympl  # noqa: F401
    except ImportError:
        return False
    return True


def setup_matplotlib(prefer_widget: bool = True) -> str:
    """Select the notebook's matplotlib backend: ``widget`` (ipympl) if installed, else ``inline``.

    Returns the backend chosen ("widget", "inline", or "none" outside IPython).
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the notebook stack
        return "none"
    ip = get_ipython()
    if ip is None:
        return "none"
    backend = "widget" if (prefer_widget and has_ipympl()) else "inline"
    ip.run_line_magic("matplotlib", backend)
    plt.rcParams.update(READABLE_FIGURES)
    return backend


READABLE_FIGURES = {"figure.dpi": 100, "savefig.dpi": 100, "font.size": 11, "axes.titlesize": 12,
                    "axes.labelsize": 11, "legend.fontsize": 10, "xtick.labelsize": 10, "ytick.labelsize": 10}
"""Figures at 100 dpi and fonts of at least 10 pt: a figure up to 10 in wide is shown unscaled in
JupyterLab's output area on a 1,280-px window, so its text reads at the size it was drawn."""


def _using_ipympl() -> bool:
    return "ipympl" in plt.get_backend().lower()


# ---------------------------------------------------------------------------
# data_samples/
# ---------------------------------------------------------------------------
def find_data_samples(name: str | None = None) -> Path:
    """The ``data_samples`` folder (or its dataset ``name`` inside), without generating anything.

    Looks at ``$QGAIT_DATA_SAMPLES``, then ``data_samples/`` in the working
    directory and its parents, then next to the installed package (an
    editable install of the repository), as the course tools look for their
    folders (:func:`~qgait_lab.lab.course.paths.find_folder`).  Raises
    ``FileNotFoundError`` naming where it looked.
    """
    folder = find_folder("data_samples", env="QGAIT_DATA_SAMPLES")
    if name is None:
        return folder
    if not (folder / name).is_dir():
        known = ", ".join(sorted(p.name for p in folder.iterdir() if p.is_dir())) or "nothing"
        raise FileNotFoundError(f"{folder / name} not found: {folder} holds {known}")
    return folder / name


def _first_dataset(folder: Path) -> Path:
    if (folder / "partition.json").is_file():
        return folder
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if (sub / "partition.json").is_file():
            return sub
    raise FileNotFoundError(f"{folder}: no dataset with a partition.json inside")


def load_sample_sequence(index: int = 0, root: str | Path | None = None):
    """One sequence of ``data_samples``: ``(uint8 frames [T, 64, 64], SequenceInfo)``."""
    from ..data import GaitDataset

    folder = _first_dataset(Path(root) if root is not None else find_data_samples())
    ds = GaitDataset(folder, split="all")
    if not len(ds):
        raise FileNotFoundError(f"{folder}: no sequences")
    index = index % len(ds)
    return ds.load(index), ds.sequences[index]


# ---------------------------------------------------------------------------
# Meaningful gradients under theta_k
# ---------------------------------------------------------------------------
def meaningful_gradient_fraction(c: torch.Tensor, k: float, lo: float | None = None,
                                 hi: float | None = None, threshold: float = MEANINGFUL_SLOPE) -> float:
    """Fraction of elements whose soft-quantizer gradient is at least ``threshold``.

    ``c`` holds the quantizer's inputs already divided by the step (``v / s``).
    Inside the clip range ``(lo, hi)`` the backward pass multiplies by
    ``theta_k'(c)`` (Eq. 7); outside it the gradient is 0 for the STE and for
    theta_k alike.  With ``k -> 0`` the slope tends to the STE's 1 everywhere.
    """
    from ..quant.functional import soft_round_slope

    c = torch.as_tensor(c, dtype=torch.float64)
    inside = torch.ones_like(c, dtype=torch.bool)
    if lo is not None:
        inside &= c > lo
    if hi is not None:
        inside &= c < hi
    slope = soft_round_slope(c, float(k))
    return float(((slope >= threshold) & inside).double().mean())


def uniform_meaningful_fraction(k: float, threshold: float = MEANINGFUL_SLOPE, samples: int = 50_001) -> float:
    """:func:`meaningful_gradient_fraction` for inputs spread uniformly over a rounding cell (numeric)."""
    c = (torch.arange(samples, dtype=torch.float64) + 0.5) / samples
    return meaningful_gradient_fraction(c, k, threshold=threshold)


@functools.lru_cache(maxsize=8)
def _uniform_fraction_curve(k_max: float, points: int = 60) -> tuple[np.ndarray, np.ndarray]:
    ks = np.linspace(1.0, k_max, points)
    return ks, np.array([uniform_meaningful_fraction(kk, samples=4001) for kk in ks])


# ---------------------------------------------------------------------------
# A silhouette through the first GaitBase layers
# ---------------------------------------------------------------------------
@dataclass
class ProbeResult:
    """What :meth:`FirstLayersProbe.run` measured for one (bits, step scale, k)."""

    bits: int
    step_scale: float
    k: float
    frame: np.ndarray            # the input silhouette [h, w] in [0, 1]
    activation: np.ndarray       # float input of layer1.0.conv1, one channel [h, w]
    quantized: np.ndarray        # the same after its activation quantizer
    channel: int
    step: float                  # the activation quantizer's step
    levels_used: int             # distinct quantized values in the shown channel (frame 0)
    clipped: float               # fraction of activation elements above the top level, all channels and frames
    act_rel_error: float         # ||q(a) - a|| / ||a|| over all channels and frames
    out_rel_error: float         # ||layer1_q - layer1|| / ||layer1||: after conv1, layer1
    input_one: float             # what the input quantizer makes of a foreground pixel (1.0)
    meaningful_soft: float       # fraction of activation elements with theta_k' >= 0.1
    meaningful_ste: float        # fraction inside the clip range (STE gradient 1)
    clipped_shown: float = 0.0   # fraction of the *shown* channel's pixels above the top level
    clipped_mask: np.ndarray | None = None   # [h, w] True where the shown channel is clipped
    shown_rel_error: float = 0.0  # ||q(a) - a|| / ||a|| on the shown channel only


class FirstLayersProbe:
    """A silhouette sequence through GaitBase's stem and ``layer1``, float and fake-quantized.

    The float network is ``conv1 -> bn1 -> relu -> layer1`` of
    ``GaitBase.Backbone.forward_block`` (randomly initialised with ``seed``:
    the point is what quantization does to real activations, not what the
    features mean).  For each bit-width a quantized copy is made with
    :func:`qgait_lab.quant.quantize_model` (LSQ, weights and activations at the
    same bits), its steps initialised by LSQ's rule on the frames; the
    activation steps are then multiplied by ``step_scale``.

    The pictures show one channel of the first activation (``channel``).  By
    default it is a *typical* one: the channel whose clipped share at LSQ's
    initial 4-bit step is closest to the share over all channels (the largest
    spread breaks ties), so that the picture shows what the numbers, which are
    taken over all channels, say.
    """

    def __init__(self, frames: np.ndarray | torch.Tensor, channels: Sequence[int] = (64, 128, 256, 512),
                 n_frames: int = 2, seed: int = 0, channel: int | None = None) -> None:
        from ..data.transforms import build_transform
        from ..models import GaitBase

        sils = torch.as_tensor(np.asarray(frames)).to(torch.float32)
        if sils.dim() != 3:
            raise ValueError(f"frames must be [T, H, W], got {tuple(sils.shape)}")
        pick = np.linspace(0, len(sils) - 1, num=min(n_frames, len(sils))).round().astype(int)
        transform = build_transform([], 0.0, downsample=1, train=False)
        self.inputs = transform(sils[pick], None).unsqueeze(1)          # [n, 1, 64, 44] in [0, 1]
        torch.manual_seed(seed)
        block = GaitBase(num_classes=1, channels=tuple(channels)).Backbone.forward_block
        self.float_net = nn.Sequential(block.conv1, block.bn1, block.relu, block.layer1).eval()
        self._quantized: dict[int, nn.Module] = {}
        self._steps: dict[int, dict[str, torch.Tensor]] = {}
        with torch.no_grad():
            self.activation = self.float_net[:3](self.inputs)               # input of layer1.0.conv1
            self.float_out = self.float_net(self.inputs)
        self.channel = self.typical_channel() if channel is None else int(channel)

    def typical_channel(self, bits: int = 4) -> int:
        """The channel whose clipped share at LSQ's initial step is closest to the share over all channels."""
        a = self.activation
        spread = a.transpose(0, 1).reshape(a.shape[1], -1).std(dim=1)
        quantizer = self.quantized(bits)[3][0].conv1.act_quantizer
        clipped = a / float(quantizer.step.detach()) > quantizer.bounds[1]
        gap = (clipped.double().mean(dim=(0, 2, 3)) - clipped.double().mean()).abs()
        closest = gap <= gap.min() + 1e-12
        return int(torch.argmax(torch.where(closest, spread, torch.full_like(spread, -1.0))))

    def quantized(self, bits: int) -> nn.Module:
        """The LSQ-quantized copy at ``bits`` (built once per bit-width)."""
        from ..quant import initialize_quantizers, quantize_model

        if bits not in self._quantized:
            net = quantize_model(copy.deepcopy(self.float_net), "lsq", bits, bits)
            initialize_quantizers(net, self.inputs)
            self._quantized[bits] = net.eval()
            self._steps[bits] = {n: m.step.detach().clone() for n, m in net.named_modules()
                                 if hasattr(m, "step") and not getattr(m, "is_weight", True)}
        return self._quantized[bits]

    @torch.no_grad()
    def run(self, bits: int, step_scale: float = 1.0, k: float = 3.0) -> ProbeResult:
        from ..quant import set_gradient, set_k

        net = self.quantized(bits)
        for name, module in net.named_modules():
            if name in self._steps[bits]:
                module.step.copy_(self._steps[bits][name] * float(step_scale))
        set_gradient(net, "soft")
        set_k(net, max(1.0, float(k)))
        aq_module = net[3][0].conv1.act_quantizer
        a = self.activation
        aq = aq_module(a)
        out = net(self.inputs)
        step = float(aq_module.step)
        lo, hi = aq_module.bounds
        c = a / step
        input_q = net[0].conv.act_quantizer
        one = float(input_q(torch.ones(1)))
        shown, shown_float = aq[0, self.channel], a[0, self.channel]
        clipped_here = c[0, self.channel] > hi         # exactly the pixels the picture marks
        return ProbeResult(
            bits=bits, step_scale=float(step_scale), k=float(k),
            frame=self.inputs[0, 0].numpy(), activation=shown_float.numpy(),
            quantized=shown.numpy(), channel=self.channel, step=step,
            levels_used=int(torch.unique(shown).numel()),
            clipped=float((c > hi).double().mean()),
            act_rel_error=float((aq - a).norm() / a.norm().clamp_min(1e-12)),
            out_rel_error=float((out - self.float_out).norm() / self.float_out.norm().clamp_min(1e-12)),
            input_one=one,
            meaningful_soft=meaningful_gradient_fraction(c, k, lo, hi),
            meaningful_ste=float(((c > lo) & (c < hi)).double().mean()),
            clipped_shown=float(clipped_here.double().mean()),
            clipped_mask=clipped_here.numpy(),
            shown_rel_error=float((shown - shown_float).norm() / shown_float.norm().clamp_min(1e-12)),
        )


EXPLORER_WIDTH = 10.0
"""Inches: at the default 100 dpi about the width JupyterLab shows (1,000 px), so 10 pt stays 10 pt."""
EXPLORER_FONT = 10.0
"""Points: the smallest text of the explorer (legends, the stats panel, colour bars)."""


def _explorer_figsize(with_probe: bool) -> tuple[float, float]:
    return (EXPLORER_WIDTH, 10.2 if with_probe else 6.6)


def explorer_figure(k: float, probe_result: ProbeResult | None = None, k_max: float = 20.0, fig=None):
    """The explorer's figure: theta_k and its slope, the moments, the meaningful fraction, the probe.

    Three rows, 10 inches wide (no text below 10 pt at the width JupyterLab
    shows).  Top: theta_k against round (Eq. 6), its slope against the STE
    (Eq. 7), and the share of in-range inputs whose soft gradient is still
    >= 0.1.  Middle: the first- and second-order terms of Eq. 8 against k
    (Eqs. 11-12 in z, the paper's reading, and the slope in x) with the current
    k marked, and a panel of numbers.  Bottom (with a probe result): the
    silhouette, the shown channel of the first activation, the same channel
    after the b-bit quantizer with its clipped pixels marked, and the error,
    each with a colour bar.  The numbers panel gives the clipped share both
    over all channels and on the shown channel, so that picture and numbers
    agree.
    """
    from ..quant.functional import soft_round, soft_round_slope

    if fig is None:
        fig = plt.figure(figsize=_explorer_figsize(probe_result is not None))
    else:
        fig.clear()
    font = EXPLORER_FONT
    rows = 3 if probe_result is not None else 2
    outer = fig.add_gridspec(rows, 1, height_ratios=[1.0, 1.0, 1.12][:rows], hspace=0.42)
    top, middle = outer[0].subgridspec(1, 3, wspace=0.32), outer[1].subgridspec(1, 3, wspace=0.32)
    ax_theta, ax_slope, ax_frac = (fig.add_subplot(top[0, i]) for i in range(3))
    ax_m1, ax_m2, ax_text = (fig.add_subplot(middle[0, i]) for i in range(3))

    x = torch.linspace(-1.5, 1.5, 1201, dtype=torch.float64)
    ax_theta.plot(x, torch.round(x), "k--", lw=1, label="round")
    ax_theta.plot(x, soft_round(x, k), label=fr"$\theta_k$, k = {k:g}")
    ax_theta.plot(x, x, color="grey", lw=0.8, ls=":", label="identity (k → 0)")
    ax_theta.set(title=r"$\theta_k(x)$ (Eq. 6)", xlabel="x (in steps)", ylabel=r"$\theta_k(x)$")
    ax_theta.legend(fontsize=font, loc="upper left", handlelength=1.5)
    slope = soft_round_slope(x, k)
    ax_slope.plot(x, slope, label=r"$\partial\theta_k/\partial x$")
    ax_slope.axhline(1.0, color="black", ls="--", lw=1, label="STE: 1")
    ax_slope.axhline(MEANINGFUL_SLOPE, color="tab:red", ls=":", lw=1, label="0.1")
    ax_slope.set(title="its slope (Eq. 7)", xlabel="x (in steps)", ylabel="slope (log scale)", yscale="log",
                 ylim=(1e-4, max(20.0, float(slope.max()) * 1.5)))
    ax_slope.legend(fontsize=font, loc="lower center", ncol=3, handlelength=1.2, columnspacing=0.8)

    ks, fractions = _uniform_fraction_curve(float(k_max))
    uniform_here = uniform_meaningful_fraction(k)
    ax_frac.plot(ks, fractions, label=f"uniform: {uniform_here:.2f}")
    ax_frac.plot([k], [uniform_here], "o", color="tab:blue")
    if probe_result is not None:
        share = probe_result.meaningful_soft / max(probe_result.meaningful_ste, 1e-12)
        ax_frac.plot([k], [share], "s", color="tab:red", label=f"silhouette: {share:.2f}")
    ax_frac.axvline(k, color="grey", lw=0.8, ls=":")
    ax_frac.set(title=r"share with $\theta_k' \geq 0.1$", xlabel="k", ylabel="share of in-range inputs",
                ylim=(0, 1.05))
    ax_frac.legend(fontsize=font, loc="lower left")

    _moment_panels(ax_m1, ax_m2, k, k_max, font)
    for ax in (ax_theta, ax_slope, ax_frac, ax_m1, ax_m2):
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=font)
        ax.xaxis.label.set_size(font)
        ax.yaxis.label.set_size(font)
        ax.title.set_size(font + 1)

    ax_text.axis("off")
    ax_text.text(-0.08, 1.0, _explorer_numbers(k, probe_result), va="top", ha="left", family="monospace",
                 fontsize=font, transform=ax_text.transAxes)
    if probe_result is not None:
        _probe_images(fig, outer[2], probe_result, font)
    fig.subplots_adjust(left=0.075, right=0.925, top=0.955, bottom=0.03)
    return fig


def k_explorer(probe: FirstLayersProbe | None = None, k: float = 3.0, bits: int = 4,
               step_scale: float = 1.0, k_max: float = 20.0):
    """The k-slider explorer: sliders for k, bits and the step, above the figure.

    Built with ``ipywidgets.interactive_output`` and an explicit layout.  With
    the inline backend every change draws a new figure; with ipympl one figure
    is redrawn in place.  Returns the ``VBox``; its ``.controls`` dict holds
    the three sliders (tests and the browser test move them).
    """
    import ipywidgets as W
    from IPython.display import display

    style = {"description_width": "70px"}
    layout = W.Layout(width="340px")
    k_slider = W.FloatSlider(value=k, min=1.0, max=k_max, step=0.5, description="k",
                             continuous_update=False, style=style, layout=layout)
    bits_slider = W.IntSlider(value=bits, min=2, max=8, step=1, description="bits",
                              continuous_update=False, style=style, layout=layout)
    step_slider = W.FloatLogSlider(value=step_scale, base=2, min=-2, max=2, step=0.25,
                                   description="step ×", continuous_update=False, style=style,
                                   layout=layout, readout_format=".2f")
    if probe is None:
        bits_slider.disabled = step_slider.disabled = True
    state: dict = {"fig": None}

    def draw(k, bits, step_scale):
        result = probe.run(bits, step_scale, k) if probe is not None else None
        if _using_ipympl():
            # One figure, redrawn in place. Created with interactive mode off so that
            # ipympl does not also show it at the end of the cell (ipympl's documented pattern).
            if state["fig"] is None:
                with plt.ioff():
                    state["fig"] = plt.figure(figsize=_explorer_figsize(result is not None))
                display(state["fig"].canvas)
            explorer_figure(k, result, k_max, fig=state["fig"])
            state["fig"].canvas.draw_idle()
        else:
            fig = explorer_figure(k, result, k_max)
            plt.show()
            plt.close(fig)

    out = W.interactive_output(draw, {"k": k_slider, "bits": bits_slider, "step_scale": step_slider})
    controls = W.HBox([k_slider, bits_slider, step_slider],
                      layout=W.Layout(flex_flow="row wrap", justify_content="flex-start"))
    box = W.VBox([controls, out], layout=W.Layout(width="100%"))
    box.controls = {"k": k_slider, "bits": bits_slider, "step_scale": step_slider}
    box.output = out
    return box


# ---------------------------------------------------------------------------
# Live loss plot (a trainer callback)
# ---------------------------------------------------------------------------
class LiveLossPlot:
    """A trainer callback that redraws the loss curves of every stage while training runs.

    Pass it in ``Experiment(cfg, callbacks=[plot])``.  Stages are drawn one
    after another along a shared iteration axis (dotted lines mark where a stage
    starts).  The training losses share the top panel; the distillation loss
    (IDD, Eqs. 14-15) and k (the soft quantizer's sharpness, Eq. 6) each get a
    panel of their own below it, with their own labelled y axis, once a stage
    logs them (k only where the backward pass is theta_k', not the STE).
    Redraws at most every ``interval`` seconds (and spends at most about a fifth
    of the time drawing); call :meth:`finish` at the end to leave the final
    picture as a plain figure.  A stage loaded from ``runs/`` sends no records,
    so a fully cached run draws nothing.
    """

    def __init__(self, keys: Sequence[str] = ("loss", "triplet", "ce"), interval: float = 2.0,
                 title: str = "training") -> None:
        import ipywidgets as W
        from IPython.display import display

        self.keys = tuple(keys)
        self.interval = float(interval)
        self.title = title
        self.records: list[dict] = []
        self.evals: list[dict] = []
        self._stage_offsets: dict[str, int] = {}
        self._last_draw = 0.0
        self._draw_seconds = 0.0
        self.output = W.Output()
        display(self.output)

    def _x(self, record: dict) -> int:
        stage = record.get("stage", "")
        if stage not in self._stage_offsets:
            self._stage_offsets[stage] = max((r["x"] for r in self.records), default=0)
        return self._stage_offsets[stage] + int(record.get("iteration", 0))

    def __call__(self, record: dict) -> None:
        kind = record.get("kind")
        if kind == "eval":
            self.evals.append({**record, "x": self._x(record)})
            return
        if kind != "train":
            return
        self.records.append({**record, "x": self._x(record)})
        # Redraw at most every `interval` seconds, and spend at most ~20 % of the time drawing.
        if time.monotonic() - self._last_draw >= max(self.interval, 4 * self._draw_seconds):
            self.draw()

    def figure(self):
        """The losses on top; the distillation loss and k below, each on its own labelled axis."""
        xs = np.array([r["x"] for r in self.records])
        # The trainer logs k = 0 for an STE stage: no k to draw there.
        ks = np.array([r.get("k") or np.nan for r in self.records], dtype=float)
        panels = ["losses"]
        if any("distill" in r for r in self.records):
            panels.append("distill")
        if np.isfinite(ks).any():
            panels.append("k")
        fig, axes = plt.subplots(len(panels), 1, sharex=True, squeeze=False,
                                 figsize=(10, 3.4 + 1.8 * (len(panels) - 1)),
                                 gridspec_kw={"height_ratios": [2] + [1] * (len(panels) - 1)})
        axes = dict(zip(panels, axes[:, 0]))
        ax = axes["losses"]
        for key in self.keys:
            ax.plot(xs, [r.get(key, np.nan) for r in self.records], label=key)
        ax.set(ylabel="loss", title=self.title)
        ax.legend(loc="best")
        if "distill" in axes:
            axes["distill"].plot(xs, [r.get("distill", np.nan) for r in self.records], color="tab:red")
            axes["distill"].set(ylabel="distillation loss")
        if "k" in axes:
            axes["k"].plot(xs, ks, color="tab:purple")
            axes["k"].set(ylabel="k")
        for panel in axes.values():
            for offset in self._stage_offsets.values():
                panel.axvline(offset, color="grey", ls=":", lw=1)
            panel.grid(alpha=0.3)
        for stage, offset in self._stage_offsets.items():
            ax.text(offset, 1.0, f" {stage}", transform=ax.get_xaxis_transform(), va="top")
        axes[panels[-1]].set(xlabel="iteration (stages one after another)")
        fig.tight_layout()
        return fig

    def draw(self) -> None:
        from IPython.display import clear_output, display

        start = time.monotonic()
        fig = self.figure()
        with self.output:
            clear_output(wait=True)
            display(fig)
        plt.close(fig)
        self._last_draw = time.monotonic()
        self._draw_seconds = self._last_draw - start

    def finish(self, run_dirs: Sequence[str | Path] = ()) -> None:
        """Replace the live view by the final figure, shown as a plain output of the cell.

        A static image survives in saved and executed notebooks (papermill, nbconvert), where
        widget views are not rendered.  When nothing was trained (every stage came from
        ``runs/``), the curves are read from the ``metrics.jsonl`` of ``run_dirs`` instead.
        """
        from IPython.display import display

        from ..experiments.figures import loss_curves_figure

        self.output.clear_output()
        if self.records:
            fig = self.figure()
        elif run_dirs:
            fig = loss_curves_figure({f"{self.title} (loaded from runs/)": list(run_dirs)}, keys=self.keys)
        else:
            return
        display(fig)
        plt.close(fig)


# ---------------------------------------------------------------------------
# torchrun from a notebook
# ---------------------------------------------------------------------------
def free_port() -> int:
    """A free TCP port on localhost (for torchrun's rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def torchrun_command(nproc: int, preset: str = "tiny-cpu", method: str = "qgait", bits: int | None = None,
                     overrides: Iterable[str] = (), name: str | None = None,
                     python: str | None = None, master_port: int | None = None) -> list[str]:
    """The command line of a ``torchrun`` launch of ``qgait-lab train``.

    ``python -m torch.distributed.run`` is ``torchrun`` run by this kernel's
    interpreter (so the subprocess sees the same packages).  Each process joins
    the group through :func:`qgait_lab.training.distributed.distributed_session`
    (NCCL on GPUs, gloo on CPUs).
    """
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    cmd = [python or sys.executable, "-m", "torch.distributed.run", "--nnodes=1",
           f"--nproc_per_node={nproc}", f"--master_port={master_port or free_port()}",
           "-m", "qgait_lab.cli", "train", "--preset", preset, "--method", method]
    if bits is not None:
        cmd += ["--bits", str(bits)]
    if name is not None:
        cmd += ["--name", name]
    for item in overrides:
        cmd += ["--set", item]
    return cmd


def display_command(cmd: Sequence[str], wrap: bool = False) -> str:
    """``cmd`` as a user would type it in a shell, with ``python -m torch.distributed.run`` shown as ``torchrun``.

    Each argument is quoted once, and only when the shell needs it: single quotes,
    or double quotes around an argument that holds single quotes (a YAML flow
    mapping such as ``data.synth={views: ['018', '090']}``).  ``wrap`` puts the
    module and each ``--set`` on a line of its own, continued with a backslash.
    """
    parts = list(cmd)
    if len(parts) >= 3 and parts[1:3] == ["-m", "torch.distributed.run"]:
        parts = ["torchrun"] + parts[3:]
    words = [_shell_word(p) for p in parts]
    if not wrap:
        return " ".join(words)
    lines: list[list[str]] = [[]]
    for i, word in enumerate(words):
        starts_module = word == "-m" and i > 0 and parts[i + 1:i + 2] != ["torch.distributed.run"]
        if lines[-1] and (starts_module or word == "--set"):
            lines.append([])
        lines[-1].append(word)
    return " \\\n    ".join(" ".join(line) for line in lines)


def _shell_word(arg: str) -> str:
    """One argument, quoted the way a person would quote it (and still exactly what the shell passes)."""
    if shlex.quote(arg) == arg:
        return arg
    if "'" not in arg:
        return f"'{arg}'"
    if not any(c in arg for c in '"$`\\!'):
        return f'"{arg}"'
    return shlex.quote(arg)


def follow_command(cmd: Sequence[str], log_path: str | Path, env: Mapping[str, str] | None = None,
                   cwd: str | Path | None = None, echo: bool = True, timeout: float | None = None,
                   render: bool = False) -> int:
    """Run ``cmd``, write its combined output to ``log_path`` and show each line as it arrives.

    ``echo`` prints the lines; ``render`` (in a notebook) shows the log instead as
    one rendered view that grows while the command runs: the Markdown tables that
    ``qgait-lab`` prints become tables, every other line stays verbatim.  Returns
    the exit status; the log keeps everything for later.  ``timeout`` (seconds)
    stops the process and returns 124.
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    view = None
    if render:
        from IPython.display import Markdown, display

        view = display(Markdown(f"*running; log: `{log_path}`*"), display_id=True)
    lines: list[str] = []
    last_view = 0.0

    def show(final: bool = False) -> None:
        nonlocal last_view
        if view is not None and (final or time.monotonic() - last_view > 1.0):
            from IPython.display import Markdown

            view.update(Markdown(_log_markdown(lines) or "*(the command printed nothing)*"))
            last_view = time.monotonic()

    start = time.monotonic()
    with open(log_path, "w") as log, subprocess.Popen(
            list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            env=dict(env) if env is not None else None, cwd=cwd) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            log.flush()
            lines.append(line.rstrip("\n"))
            if echo and view is None:
                print(line, end="", flush=True)
            show()
            if timeout is not None and time.monotonic() - start > timeout:
                proc.kill()
                show(final=True)
                print(f"\n[stopped after {timeout:.0f} s; log: {log_path}]")
                return 124
        status = proc.wait()
    show(final=True)
    return status


def _log_markdown(lines: Sequence[str]) -> str:
    """A command's output as Markdown: runs of table rows (``| ... |``) as tables, the rest verbatim."""
    blocks: list[str] = []
    run: list[str] = []
    run_is_table = False
    for line in list(lines) + [None]:      # None: flush the last run
        is_table = line is not None and line.lstrip().startswith("|") and line.rstrip().endswith("|")
        if line is None or (run and is_table != run_is_table):
            if run:
                blocks.append("\n".join(run) if run_is_table else "```text\n" + "\n".join(run) + "\n```")
            run = []
        if line is not None:
            run.append(line)
            run_is_table = is_table
    return "\n\n".join(blocks)


# ---------------------------------------------------------------------------
# Pieces of the k-explorer's figure (explorer_figure)
# ---------------------------------------------------------------------------
def _moment_panels(ax1, ax2, k: float, k_max: float, font: float) -> None:
    """The two terms of Eq. 8 against k: in z (Eqs. 11-12, the paper's reading) and in x (the chain rule)."""
    from . import theory

    ks = np.linspace(1.0, max(k_max, 1.5), 400)
    here = np.array([float(k)])
    ax1.plot(ks, theory.mean_grad_G_numpy(ks) ** 2, label="in z (Eq. 11)")
    ax1.plot(ks, np.ones_like(ks), ls="--", color="black", label="in x = STE")
    ax1.plot(here, theory.mean_grad_G_numpy(here) ** 2, "o", color="tab:blue")
    ax1.set(title="Eq. 8, first-order term", xlabel="k", ylabel=r"$\mathbb{E}^2$[slope]", ylim=(0, 1.1))
    ax2.plot(ks, theory.second_moment_grad_G_numpy(ks), label="in z (Eq. 12)")
    ax2.plot(ks, theory.slope_second_moment_numpy(ks), color="tab:red", label="in x")
    ax2.axhline(1.0, ls="--", color="black", label="STE")
    ax2.plot(here, theory.second_moment_grad_G_numpy(here), "o", color="tab:blue")
    ax2.plot(here, theory.slope_second_moment_numpy(here), "o", color="tab:red")
    ax2.set(title="Eq. 8, second-order term", xlabel="k", ylabel=r"$\mathbb{E}$[slope$^2$] (log)", yscale="log")
    for ax in (ax1, ax2):
        ax.axvline(float(k), color="grey", lw=0.8, ls=":")
        ax.legend(fontsize=font, loc="best", handlelength=1.5)


def _explorer_numbers(k: float, r: ProbeResult | None) -> str:
    """The text of the explorer's numbers panel (at most 30 characters a line)."""
    from . import theory

    here = np.array([float(k)])
    lines = [f"at k = {k:g}:",
             f" E²[∇G], z   {float(theory.mean_grad_G_numpy(here)[0] ** 2):9.3f}",
             f" E[‖∇G‖²], z {float(theory.second_moment_grad_G_numpy(here)[0]):9.3f}",
             f" E[slope²], x{float(theory.slope_second_moment_numpy(here)[0]):9.3f}"]
    if r is None:
        return "\n".join(lines)
    share = r.meaningful_soft / max(r.meaningful_ste, 1e-12)
    return "\n".join([
        f"k = {k:g}, {r.bits} bits, step ×{r.step_scale:.2g}",
        f" error, all ch.  {100 * r.act_rel_error:6.1f} %",
        f" error, ch. {r.channel:<4d} {100 * r.shown_rel_error:6.1f} %",
        f" after layer1    {100 * r.out_rel_error:6.1f} %",
        f" clipped, all ch.{100 * r.clipped:6.1f} %",
        f" clipped, ch. {r.channel:<3d}{100 * r.clipped_shown:6.1f} %",
        f" input 1.0 → {r.input_one:.3f}",
        "gradient reaches",
        f" STE (in range)  {100 * r.meaningful_ste:6.1f} %",
        f" θ_k' ≥ 0.1      {100 * r.meaningful_soft:6.1f} %",
        f"  = {100 * share:.0f} % of the STE's",
    ])


def _probe_images(fig, cell, r: ProbeResult, font: float) -> None:
    """The bottom row: silhouette, float channel, quantized channel (clipped pixels in red), error."""
    grid = cell.subgridspec(1, 4, wspace=0.55)
    vmax = max(float(r.activation.max()), float(r.quantized.max()), 1e-6)
    error = np.abs(r.quantized - r.activation)
    clipped = 100 * r.clipped_shown
    panels = [(r.frame, "input silhouette", "gray", 0.0, 1.0, "pixel value"),
              (r.activation, f"float, channel {r.channel}", "viridis", 0.0, vmax, "activation"),
              (r.quantized, f"{r.bits} bits, {r.levels_used} levels\nred: clipped, {clipped:.1f} %",
               "viridis", 0.0, vmax, "activation"),
              (error, "|quantization\nerror|", "magma", 0.0, max(float(error.max()), 1e-6), "|error|")]
    for i, (img, title, cmap, lo, hi, unit) in enumerate(panels):
        ax = fig.add_subplot(grid[0, i])
        shown = ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi)
        if i == 2 and r.clipped_mask is not None and r.clipped_mask.any():
            # Outline the clipped pixels (those above the top level), so that their values stay visible.
            ax.contour(r.clipped_mask.astype(float), levels=[0.5], colors="red", linewidths=1.2)
        ax.set_title(title, fontsize=font)
        ax.set(xticks=[], yticks=[])
        bar = fig.colorbar(shown, ax=ax, fraction=0.08, pad=0.04)
        bar.ax.tick_params(labelsize=font)
        bar.set_label(unit, fontsize=font)
