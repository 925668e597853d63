"""The one-command demo: SynthGait -> full precision, LSQ-4 and QGait-4 -> a Table-1 report.

``qgait-lab demo`` (and ``make demo``) runs :func:`run_demo` with the
``tiny-cpu`` preset: it generates (or reuses) SynthGait, trains the
full-precision teacher, the LSQ-4 baseline and QGait-4 (STE stage, then the
soft GROW fine-tune with IDD), evaluates them with the CASIA-B protocol,
writes figures and a markdown report to ``runs/demo/``, and ends by exporting
QGait-4 as an integer ONNX model (``runs/demo/qgait4.onnx``) and evaluating
it with onnxruntime beside the fake-quantized model.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..data.gei import gei_baseline
from ..evaluation.embedding_analysis import tsne_2d
from .float_order import REPRODUCIBILITY
from .distances import distance_changes, distance_table, embed_test_set
from .results import markdown_table
from ..training.config import ExperimentConfig, load_config
from .pipeline import Experiment, MethodResult, input_size
from ..training.runtime import fast_mode
from ..training.trainer import Callback


@dataclass
class Deployed:
    """The demo's QGait model exported to ONNX and evaluated by onnxruntime, beside its fake-quantized self."""

    label: str
    path: Path
    fake_quantized: dict
    onnxruntime: dict
    summary: str

    def line(self) -> str:
        f, o = self.fake_quantized, self.onnxruntime
        return (f"{self.label} Rank-1: fake-quantized {f['rank1']:.2f}, onnxruntime {o['rank1']:.2f} "
                f"(mAP {f['mAP']:.2f} / {o['mAP']:.2f}); {self.path}")


@dataclass
class DemoReport:
    table: str
    results: list[MethodResult]
    report_path: Path
    figures: list[Path]
    seconds: float
    deployed: Deployed | None = None


def result_rows(results: Sequence[MethodResult], gei=None) -> list[dict]:
    """Table rows of trained methods (and, optionally, the GEI baseline first)."""
    rows = []
    if gei is not None:
        rows.append({"method": "GEI + 1-NN", "bits": "-", **gei.cross_view.mean})
    rows.extend(r.row() for r in results)
    return rows


def write_figures(exp: Experiment, results: Sequence[MethodResult], out: Path) -> tuple[list[Path], str]:
    from .figures import loss_curves_figure, theta_k_figure, tsne_figure

    figures = []
    fig = theta_k_figure()
    figures.append(out / "theta_k.png")
    fig.savefig(figures[-1], dpi=120)
    runs = {r.label: r.run_dirs for r in results}
    fig = loss_curves_figure(runs, keys=("loss", "triplet", "ce"))
    figures.append(out / "loss_curves.png")
    fig.savefig(figures[-1], dpi=120)
    # t-SNE of test embeddings: full precision, 4-bit without IDD, 4-bit with IDD (Fig. 4), on 12
    # identities for a readable picture; the distances below use every test sequence.
    test = exp.test_set
    feats = embed_test_set(exp, {r.label: r.model for r in results})
    labels = np.asarray(test.labels)
    keep = np.isin(np.asarray(test.types), ["nm-05", "nm-06", "bg-01", "cl-01"])
    keep &= np.isin(labels, sorted(set(labels[keep].tolist()))[:12])
    names = {"fp": "full precision", "lsq": "4-bit (LSQ, no IDD)", "qgait": "4-bit + IDD (QGait)"}
    panels = {names.get(r.method, r.label): tsne_2d(feats[r.label][keep], seed=exp.cfg.runtime.seed)
              for r in results}
    fig = tsne_figure(panels, labels[keep], "t-SNE of test embeddings (12 identities, NM/BG/CL)")
    figures.append(out / "tsne.png")
    fig.savefig(figures[-1], dpi=120)
    ref = next(r for r in results if r.method == "fp")
    changes = distance_changes(feats[ref.label], {r.label: feats[r.label] for r in results if r is not ref},
                               labels)
    return figures, distance_table(changes) + _paired_distance_line(results, changes)


def _paired_distance_line(results: Sequence[MethodResult], changes: dict) -> str:
    """QGait − LSQ at the same bits: the one seed's paired difference (both fine-tune one stage-1 model)."""
    by_method = {r.method: r.label for r in results}
    if "qgait" not in by_method or "lsq" not in by_method:
        return ""
    q, l = changes[by_method["qgait"]], changes[by_method["lsq"]]
    return (f"\n\n{by_method['qgait']} − {by_method['lsq']} (one seed, paired: both fine-tune the same "
            f"stage-1 model): correlation {q.correlation - l.correlation:+.3f}, mean relative change "
            f"{q.relative_change - l.relative_change:+.3f} (the paper's Fig. 4 argument expects a higher "
            "correlation and a smaller change). `qgait-lab reproduce --what table3b` gives it over seeds.")


def deploy(exp: Experiment, result: MethodResult, out: Path) -> Deployed:
    """Export ``result``'s model to ``out/<method><bits>.onnx`` and evaluate it with onnxruntime alone."""
    from .export import export_model, format_export_report
    from .onnx_eval import evaluate_onnx

    path = out / f"{result.method}{result.bits}.onnx"
    report = export_model(result.model, exp.cfg, result.method, path, "onnx", source=f"the demo's {result.label}",
                          test=exp.test_set)
    metrics = evaluate_onnx(exp.cfg, path, test=exp.test_set)
    return Deployed(result.label, path, result.metrics, metrics, format_export_report(report))


def run_demo(preset: str = "tiny-cpu", overrides: list[str] | None = None,
             callbacks: Iterable[Callback] = (), budget: str | None = None) -> DemoReport:
    start = time.perf_counter()
    cfg: ExperimentConfig = load_config(preset, overrides, extra={"name": "demo"}, budget=budget)
    exp = Experiment(cfg, callbacks)
    out = exp.root
    out.mkdir(parents=True, exist_ok=True)
    gei = gei_baseline(exp.test_set, downsample=True)
    results = [exp.run(m) for m in ("fp", "lsq", "qgait")]
    table = markdown_table(result_rows(results, gei))
    figures, distances = write_figures(exp, results, out)
    deployed = deploy(exp, next(r for r in results if r.method == "qgait"), out)
    seconds = time.perf_counter() - start
    report = out / "report.md"
    report.write_text(_report_text(preset, cfg, table, distances, results, seconds, figures, deployed))
    return DemoReport(table, results, report, figures, seconds, deployed)


def _deployed_text(d: Deployed) -> list[str]:
    keys = ("rank1", "mAP", "mINP", "NM", "BG", "CL")
    return [
        f"## {d.label} deployed: an integer model run by onnxruntime", "",
        f"Exported as `qgait-lab export` does it (the QDQ graph `{d.path.name}`) and scored as "
        f"`qgait-lab eval --onnx {d.path}` scores it: with onnxruntime alone, no PyTorch model built.", "",
        "| model | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys),
        f"| {d.label} fake-quantized (PyTorch) | " + " | ".join(f"{d.fake_quantized[k]:.2f}" for k in keys) + " |",
        f"| {d.label} integer (onnxruntime) | " + " | ".join(f"{d.onnxruntime[k]:.2f}" for k in keys) + " |",
        "", "```", d.summary, "```", ""]


def _report_text(preset, cfg, table, distances, results, seconds, figures, deployed=None) -> str:
    mode = "fast mode (QGAIT_FAST=1: tiny budgets, numbers are not meaningful)" if fast_mode() \
        else "default mode"
    stage_lines, seen = [], set()
    for r in results:
        for s in r.stages:
            if s.run_dir in seen:       # shared stages (the teacher, LSQ's stage 1) once
                continue
            seen.add(s.run_dir)
            stage_lines.append(f"| {r.label} | {s.stage} | {s.iterations} | {s.seconds:.0f} | "
                               f"`{s.run_dir}` |")
    return "\n".join([
        "# qgait-lab demo report", "",
        f"Preset `{preset}`, {mode}; wall time {seconds / 60:.1f} min. {REPRODUCIBILITY}",
        f"Data: {cfg.data.dataset}, input {'x'.join(map(str, input_size(cfg)))}, model {cfg.model.name} "
        f"{cfg.model.arguments.get(cfg.model.name, {})}.", "",
        "## Results (CASIA-B protocol on the test identities, cross-view)", "",
        "BitOPs are for one 100-frame sequence at this input size and width (paper Sec. 4.1). "
        "Rank-k/mAP/mINP pool every NM/BG/CL probe against the gallery of the other views; "
        "NM/BG/CL are the mean Rank-1 over view pairs.", "",
        table, "",
        "## Inter-class distances against full precision (the number behind Fig. 4)", "",
        distances, "",
        *(_deployed_text(deployed) if deployed is not None else []),
        "## Stages", "",
        "| model | stage | iterations | seconds | folder |", "|---|---|---:|---:|---|",
        *stage_lines, "",
        "## Figures", "",
        *[f"![{p.stem}]({p.name})" for p in figures], "",
    ])
