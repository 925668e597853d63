"""Widget builders and notebook helpers for the course lab (``notebooks/``).

Everything a notebook needs beyond a plain library call lives here, so that
the notebooks stay thin and this code is tested like the rest of the library:

* :func:`setup_matplotlib`: inline figures, or ``ipympl`` when it is installed;
* :func:`find_data_samples`, :func:`load_sample_sequence`: the silhouettes of
  ``data_samples/`` without generating anything;
* :func:`meaningful_gradient_fraction`, :class:`FirstLayersProbe` and
  :func:`k_explorer`: the k-slider explorer of notebook 02 (theta_k, its slope,
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
import os
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
    return backend


def _using_ipympl() -> bool:
    return "ipympl" in plt.get_backend().lower()


# ---------------------------------------------------------------------------
# data_samples/
# ---------------------------------------------------------------------------
def find_data_samples(name: str | None = None) -> Path:
    """The ``data_samples`` folder (or its dataset ``name`` inside), without generating anything.

    Looks at ``$QGAIT_DATA_SAMPLES``, then ``data_samples/`` in the working
    directory and its parents, then next to the installed package (an
    editable install of the repository).  Raises ``FileNotFoundError`` naming
    every place it looked.
    """
    candidates: list[Path] = []
    env = os.environ.get("QGAIT_DATA_SAMPLES")
    if env:
        candidates.append(Path(env).expanduser())
    cwd = Path.cwd().resolve()
    candidates += [p / "data_samples" for p in (cwd, *cwd.parents)]
    candidates.append(Path(__file__).resolve().parents[1] / "data_samples")
    for folder in candidates:
        if folder.is_dir():
            if name is None:
                return folder
            if (folder / name).is_dir():
                return folder / name
    what = "data_samples" if name is None else f"data_samples/{name}"
    raise FileNotFoundError(f"{what} not found; looked in "
                            + ", ".join(str(c) for c in candidates)
                            + " (set QGAIT_DATA_SAMPLES to the folder)")


def _first_dataset(folder: Path) -> Path:
    if (folder / "partition.json").is_file():
        return folder
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if (sub / "partition.json").is_file():
            return sub
    raise FileNotFoundError(f"{folder}: no dataset with a partition.json inside")


def load_sample_sequence(index: int = 0, root: str | Path | None = None):
    """One sequence of ``data_samples``: ``(uint8 frames [T, 64, 64], SequenceInfo)``."""
    from .data import GaitDataset

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
    from .quant.functional import soft_round_slope

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
    levels_used: int             # distinct quantized values in the shown tensor
    clipped: float               # fraction of activation elements above the top level
    act_rel_error: float         # ||q(a) - a|| / ||a|| over all channels and frames
    out_rel_error: float         # ||layer1_q - layer1|| / ||layer1||: after conv1, layer1
    input_one: float             # what the input quantizer makes of a foreground pixel (1.0)
    meaningful_soft: float       # fraction of activation elements with theta_k' >= 0.1
    meaningful_ste: float        # fraction inside the clip range (STE gradient 1)


class FirstLayersProbe:
    """A silhouette sequence through GaitBase's stem and ``layer1``, float and fake-quantized.

    The float network is ``conv1 -> bn1 -> relu -> layer1`` of
    ``GaitBase.Backbone.forward_block`` (randomly initialised with ``seed``:
    the point is what quantization does to real activations, not what the
    features mean).  For each bit-width a quantized copy is made with
    :func:`qgait_lab.quant.quantize_model` (LSQ, weights and activations at the
    same bits), its steps initialised by LSQ's rule on the frames; the
    activation steps are then multiplied by ``step_scale``.
    """

    def __init__(self, frames: np.ndarray | torch.Tensor, channels: Sequence[int] = (64, 128, 256, 512),
                 n_frames: int = 2, seed: int = 0) -> None:
        from .data.transforms import build_transform
        from .models import GaitBase

        sils = torch.as_tensor(np.asarray(frames)).to(torch.float32)
        if sils.dim() != 3:
            raise ValueError(f"frames must be [T, H, W], got {tuple(sils.shape)}")
        pick = np.linspace(0, len(sils) - 1, num=min(n_frames, len(sils))).round().astype(int)
        transform = build_transform([], 0.0, cut=sils.shape[-1] == 64, downsample=1, train=False)
        self.inputs = transform(sils[pick], None).unsqueeze(1)          # [n, 1, 64, 44] in [0, 1]
        torch.manual_seed(seed)
        block = GaitBase(num_classes=1, channels=tuple(channels)).Backbone.forward_block
        self.float_net = nn.Sequential(block.conv1, block.bn1, block.relu, block.layer1).eval()
        self._quantized: dict[int, nn.Module] = {}
        self._steps: dict[int, dict[str, torch.Tensor]] = {}
        with torch.no_grad():
            self.activation = self.float_net[:3](self.inputs)               # input of layer1.0.conv1
            self.float_out = self.float_net(self.inputs)
        spread = self.activation.transpose(0, 1).reshape(self.activation.shape[1], -1).std(dim=1)
        self.channel = int(torch.argmax(spread))

    def quantized(self, bits: int) -> nn.Module:
        """The LSQ-quantized copy at ``bits`` (built once per bit-width)."""
        from .quant import initialize_quantizers, quantize_model

        if bits not in self._quantized:
            net = quantize_model(copy.deepcopy(self.float_net), "lsq", bits, bits)
            initialize_quantizers(net, self.inputs)
            self._quantized[bits] = net.eval()
            self._steps[bits] = {n: m.step.detach().clone() for n, m in net.named_modules()
                                 if hasattr(m, "step") and not getattr(m, "is_weight", True)}
        return self._quantized[bits]

    @torch.no_grad()
    def run(self, bits: int, step_scale: float = 1.0, k: float = 3.0) -> ProbeResult:
        from .quant import set_gradient, set_k

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
        shown = aq[0, self.channel]
        return ProbeResult(
            bits=bits, step_scale=float(step_scale), k=float(k),
            frame=self.inputs[0, 0].numpy(), activation=a[0, self.channel].numpy(),
            quantized=shown.numpy(), channel=self.channel, step=step,
            levels_used=int(torch.unique(shown).numel()),
            clipped=float((c > hi).double().mean()),
            act_rel_error=float((aq - a).norm() / a.norm().clamp_min(1e-12)),
            out_rel_error=float((out - self.float_out).norm() / self.float_out.norm().clamp_min(1e-12)),
            input_one=one,
            meaningful_soft=meaningful_gradient_fraction(c, k, lo, hi),
            meaningful_ste=float(((c > lo) & (c < hi)).double().mean()),
        )


def _explorer_figsize(with_probe: bool) -> tuple[float, float]:
    return (16.0, 7.2 if with_probe else 3.8)


def explorer_figure(k: float, probe_result: ProbeResult | None = None, k_max: float = 20.0, fig=None):
    """The explorer's figure: theta_k and its slope, the moments, the meaningful fraction, the probe.

    Top row: theta_k against round (Eq. 6), the slope against the STE (Eq. 7),
    the moments of Eqs. 11-12 against k (paper's reading and chain-rule
    reading) with the current k marked, and the fraction of uniformly spread
    inputs whose soft gradient is still >= 0.1.  Bottom row (with a probe
    result): the silhouette, one channel of the first activation, its
    quantized version and the error.
    """
    from .quant.functional import soft_round, soft_round_slope
    from .viz import soft_quantizer_moments_figure

    if fig is None:
        fig = plt.figure(figsize=_explorer_figsize(probe_result is not None))
    else:
        fig.clear()
    rows = 2 if probe_result is not None else 1
    grid = fig.add_gridspec(rows, 5)
    ax_theta, ax_slope = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
    ax_m1, ax_m2, ax_frac = (fig.add_subplot(grid[0, i]) for i in (2, 3, 4))

    x = torch.linspace(-1.5, 1.5, 1201, dtype=torch.float64)
    ax_theta.plot(x, torch.round(x), "k--", lw=1, label="round")
    ax_theta.plot(x, soft_round(x, k), label=fr"$\theta_k$, k={k:g}")
    ax_theta.plot(x, x, color="grey", lw=0.8, ls=":", label="identity (k→0)")
    ax_theta.set(title=r"$\theta_k(x)$ vs round (Eq. 6)", xlabel="x")
    slope = soft_round_slope(x, k)
    ax_slope.plot(x, slope, label=r"$\partial\theta_k/\partial x$")
    ax_slope.axhline(1.0, color="black", ls="--", lw=1, label="STE")
    ax_slope.axhline(MEANINGFUL_SLOPE, color="tab:red", ls=":", lw=1, label="0.1 (meaningful)")
    ax_slope.set(title="slope (Eq. 7)", xlabel="x", yscale="log", ylim=(1e-4, max(20.0, float(slope.max()) * 1.5)))
    for ax in (ax_theta, ax_slope):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)

    soft_quantizer_moments_figure(k_max=k_max, mark_k=k, axes=(ax_m1, ax_m2))
    ks, fractions = _uniform_fraction_curve(float(k_max))
    ax_frac.plot(ks, fractions, label="uniform input")
    ax_frac.plot([k], [uniform_meaningful_fraction(k)], "o", color="tab:blue")
    if probe_result is not None:
        share = probe_result.meaningful_soft / max(probe_result.meaningful_ste, 1e-12)
        ax_frac.plot([k], [share], "s", color="tab:red",
                     label=f"silhouette activations ({probe_result.bits} bit): {share:.2f}")
    ax_frac.axvline(k, color="grey", lw=0.8, ls=":")
    ax_frac.set(title=r"in-range inputs with $\theta_k' \geq 0.1$", xlabel="k", ylim=(0, 1.05))
    ax_frac.grid(alpha=0.3)
    ax_frac.legend(fontsize=7)

    if probe_result is not None:
        r = probe_result
        vmax = max(float(r.activation.max()), float(r.quantized.max()), 1e-6)
        panels = [(r.frame, "input silhouette (64x44)", "gray", 0.0, 1.0),
                  (r.activation, f"float activation (channel {r.channel})", "viridis", 0.0, vmax),
                  (r.quantized, f"{r.bits}-bit: {r.levels_used} levels, step {r.step:.3g}", "viridis", 0.0, vmax),
                  (np.abs(r.quantized - r.activation), "|quantization error|", "magma", None, None)]
        for i, (img, title, cmap, lo, hi) in enumerate(panels):
            ax = fig.add_subplot(grid[1, i])
            ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi)
            ax.set(title=title, xticks=[], yticks=[])
        ax = fig.add_subplot(grid[1, 4])
        ax.axis("off")
        ax.text(-0.05, 1.0, "\n".join([
            f"bits {r.bits}, k {r.k:g}, step x{r.step_scale:.2g}",
            "",
            f"activation error {100 * r.act_rel_error:6.1f} %",
            f"after layer1     {100 * r.out_rel_error:6.1f} %",
            f"clipped (top)    {100 * r.clipped:6.1f} %",
            f"input 1.0 ->     {r.input_one:8.3f}",
            "",
            "elements with a gradient:",
            f"STE (in range)   {100 * r.meaningful_ste:6.1f} %",
            f"soft, slope>=0.1 {100 * r.meaningful_soft:6.1f} %",
            f"  = {100 * r.meaningful_soft / max(r.meaningful_ste, 1e-12):.0f} % of the STE's",
        ]), va="top", family="monospace", fontsize=8.5)
    fig.subplots_adjust(left=0.04, right=0.99, top=0.93, bottom=0.06, wspace=0.35, hspace=0.35)
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
    after another on a shared axis (dotted lines mark where a stage starts);
    the right panel shows k (stage 2's soft quantizer) and the distillation
    loss when present.  Redraws at most every ``interval`` seconds (and spends at
    most about a fifth of the time drawing); call :meth:`finish` at the end to
    leave the final picture as a plain figure.  A stage loaded from ``runs/``
    sends no records, so a fully cached run draws nothing.
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
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [2, 1]})
        xs = [r["x"] for r in self.records]
        for key in self.keys:
            ax.plot(xs, [r.get(key, np.nan) for r in self.records], label=key)
        for stage, offset in self._stage_offsets.items():
            ax.axvline(offset, color="grey", ls=":", lw=1)
            ax.text(offset, 1.0, f" {stage}", transform=ax.get_xaxis_transform(), va="top", fontsize=8)
        ax.set(xlabel="iteration (stages one after another)", ylabel="loss", title=self.title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ks = [r.get("k", 0.0) for r in self.records]
        if any(ks):
            ax2.plot(xs, ks, color="tab:purple", label="k (theta_k)")
        if any("distill" in r for r in self.records):
            ax2.plot(xs, [r.get("distill", np.nan) for r in self.records], color="tab:green",
                     label="distillation loss")
        ax2.set(xlabel="iteration", title="k and distillation")
        ax2.grid(alpha=0.3)
        if ax2.lines:
            ax2.legend(fontsize=8)
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

        from .viz import loss_curves_figure

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


def display_command(cmd: Sequence[str]) -> str:
    """``cmd`` as a shell line, with ``python -m torch.distributed.run`` shown as ``torchrun``."""
    parts = list(cmd)
    if len(parts) >= 3 and parts[1:3] == ["-m", "torch.distributed.run"]:
        parts = ["torchrun"] + parts[3:]
    return shlex.join(parts)


def follow_command(cmd: Sequence[str], log_path: str | Path, env: Mapping[str, str] | None = None,
                   cwd: str | Path | None = None, echo: bool = True, timeout: float | None = None) -> int:
    """Run ``cmd``, write its combined output to ``log_path`` and echo each line as it arrives.

    Returns the exit status; the log keeps everything for later.  ``timeout``
    (seconds) stops the process and returns 124.
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log_path, "w") as log, subprocess.Popen(
            list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            env=dict(env) if env is not None else None, cwd=cwd) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            log.flush()
            if echo:
                print(line, end="", flush=True)
            if timeout is not None and time.monotonic() - start > timeout:
                proc.kill()
                print(f"\n[stopped after {timeout:.0f} s; log: {log_path}]")
                return 124
        return proc.wait()
