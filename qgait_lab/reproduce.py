"""``qgait-lab reproduce``: the paper's tables and Fig. 5, re-run on SynthGait over several seeds.

* ``table1``: DoReFa, PACT, LSQ and QGait at w4a4 and w8a8 against full precision;
* ``table3a``: the k schedule of the fine-tune, FIXED against GROW-1/2/3 at T = 3 and 5;
* ``table3b``: the ablation baseline, +KD, +IDD, +IDD+FT;
* ``fig5``: loss curves of training from scratch with the soft quantizer at
  k in {1, 3, 5, 10}, with the STE for reference.

Every variant uses the same preset settings; nothing is tuned per method.
The report states plainly where the paper's ordering does or does not hold.
The paper's fine-tune has 1000 iterations (Gait3D); GROW's "every" is
rescaled to this preset's fine-tune length so k ends where the paper's would.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import ConfigError
from .quant.schedules import KSchedule
from .results import aggregate, markdown_table, row_from
from .training.config import ExperimentConfig, load_config
from .training.pipeline import Experiment, MethodResult

WHAT = ("table1", "table3a", "table3b", "fig5")
PAPER_FINETUNE_ITERATIONS = 1000

# Paper Table 3 for the report's side-by-side (Gait3D Rank-1, %).
PAPER_TABLE3A = {"FIXED": (62.72, 62.02), "GROW-1": (64.88, 65.48), "GROW-2": (65.24, 65.89),
                 "GROW-3": (61.15, 58.92)}
PAPER_TABLE3B = {"baseline": 64.80, "+KD": 64.21, "+IDD": 65.64, "+IDD+FT": 66.50}
PAPER_TABLE1_RANK1 = {("FP32", 32): 64.40, ("DOREFA", 4): 60.00, ("PACT", 4): 59.80,
                      ("LSQ", 4): 63.80, ("QGAIT", 4): 64.60, ("DOREFA", 8): 64.30,
                      ("PACT", 8): 63.30, ("LSQ", 8): 64.80, ("QGAIT", 8): 66.50}


@dataclass
class ReproduceReport:
    what: str
    markdown: str
    path: Path
    seconds: float


def _with(cfg: ExperimentConfig, **changes) -> ExperimentConfig:
    return dataclasses.replace(cfg, **changes)


def _stage2(cfg: ExperimentConfig, **changes) -> ExperimentConfig:
    return _with(cfg, stage2=dataclasses.replace(cfg.stage2, **changes))


def _row(r: MethodResult, label: str | None = None) -> dict:
    bits = "32" if r.method == "fp" else f"w{r.bits}/a{r.bits}"
    return row_from(label or r.label, bits, r.metrics, r.bitops)


def _table1(cfg: ExperimentConfig) -> list[dict]:
    rows = [_row(Experiment(cfg).run("fp"))]
    for bits in (4, 8):
        exp = Experiment(_with(cfg, quant=dataclasses.replace(cfg.quant, bits=bits)))
        rows += [_row(exp.run(m)) for m in ("dorefa", "pact", "lsq", "qgait")]
    return rows


def grow_schedules(iterations: int, t: float) -> dict[str, KSchedule]:
    """Table 3a's schedules, with 'every' rescaled from the paper's 1000-iteration fine-tune."""
    scale = max(iterations, 1) / PAPER_FINETUNE_ITERATIONS
    every = lambda n: max(1, round(n * scale))  # noqa: E731
    return {"FIXED": KSchedule("fixed", start=t, max=t),
            "GROW-1": KSchedule("grow", 1.0, 0.1, every(100), t),
            "GROW-2": KSchedule("grow", 1.0, 0.2, every(100), t),
            "GROW-3": KSchedule("grow", 1.0, 1.0, every(1000), t)}


def _table3a(cfg: ExperimentConfig) -> list[dict]:
    rows = []
    for t in (3.0, 5.0):
        for name, sched in grow_schedules(cfg.stage2.iterations, t).items():
            # Stage folders are keyed by their settings, so the variants share FP and stage 1.
            r = Experiment(_stage2(cfg, k=sched)).run("qgait")
            rows.append(_row(r, f"{name} (T={t:g}, {sched.describe()})"))
    return rows


def _table3b(cfg: ExperimentConfig) -> list[dict]:
    def stage1(kind: str) -> ExperimentConfig:
        return _with(cfg, stage1=dataclasses.replace(
            cfg.stage1, distill=dataclasses.replace(cfg.stage1.distill, kind=kind)))

    rows = [_row(Experiment(cfg).run("lsq"), "baseline (STE)"),
            _row(Experiment(stage1("kd")).run("lsq"), "+KD"),
            _row(Experiment(stage1("idd")).run("lsq"), "+IDD"),
            _row(Experiment(stage1("idd")).run("qgait"), "+IDD+FT")]
    return rows


def _fig5(cfg: ExperimentConfig, out: Path) -> list[dict]:
    """Training a 4-bit model from scratch with the soft quantizer at several k."""
    from .viz import loss_curves_figure

    runs = {}
    rows = []
    for label, gradient, k in (("STE", "ste", 1.0), ("k=1", "soft", 1.0), ("k=3", "soft", 3.0),
                               ("k=5", "soft", 5.0), ("k=10", "soft", 10.0)):
        scratch = _with(cfg, name=f"{cfg.name}-scratch",
                        full_precision=dataclasses.replace(cfg.full_precision, iterations=0),
                        stage1=dataclasses.replace(cfg.stage1, optim=cfg.full_precision.optim,
                                                   iterations=cfg.full_precision.iterations,
                                                   gradient=gradient,
                                                   k=KSchedule("fixed", start=k, max=k)),
                        stage2=dataclasses.replace(cfg.stage2, iterations=0),
                        quant=dataclasses.replace(cfg.quant, equal_budget=False))
        r = Experiment(scratch).run("lsq")
        runs[label] = [r.stages[-1].run_dir]
        rows.append(_row(r, f"from scratch, {label}"))
    fig = loss_curves_figure(runs, keys=("loss", "triplet", "ce"))
    fig.savefig(out / "fig5_loss_curves.png", dpi=120)
    return rows


def _ordering_notes(what: str, rows: list[dict]) -> list[str]:
    def r1(label: str):
        for r in rows:
            if r["method"].startswith(label):
                v = r.get("rank1")
                return v[0] if isinstance(v, tuple) else v
        return None

    notes = []
    if what == "table1":
        for bits in ("w4/a4", "w8/a8"):
            scores = {r["method"]: (r["rank1"][0] if isinstance(r["rank1"], tuple) else r["rank1"])
                      for r in rows if r["bits"] == bits}
            best = max(scores, key=scores.get)
            holds = best.startswith("QGAIT")
            notes.append(f"- {bits}: best Rank-1 is {best} ({scores[best]:.2f}). The paper's claim "
                         f"that QGait beats the other quantizers {'holds' if holds else 'does NOT hold'}"
                         f" here.")
    elif what == "table3b":
        order = [r1(x) for x in ("baseline", "+KD", "+IDD", "+IDD+FT")]
        if None not in order:
            notes.append(f"- Paper: +KD < baseline < +IDD < +IDD+FT. Here: baseline {order[0]:.2f}, "
                         f"+KD {order[1]:.2f}, +IDD {order[2]:.2f}, +IDD+FT {order[3]:.2f}; "
                         f"IDD over baseline {'holds' if order[2] > order[0] else 'does NOT hold'}, "
                         f"FT over IDD {'holds' if order[3] > order[2] else 'does NOT hold'}.")
    elif what == "table3a":
        notes.append("- Paper (Gait3D Rank-1, T=3 / T=5): " + ", ".join(
            f"{k} {a:.2f}/{b:.2f}" for k, (a, b) in PAPER_TABLE3A.items()) + ".")
    return notes


def run_reproduce(what: str, seeds: int = 3, preset: str = "tiny-cpu",
                  overrides: Sequence[str] | None = None) -> ReproduceReport:
    if what not in WHAT:
        raise ConfigError(f"--what must be one of {list(WHAT)}, got {what!r}")
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    start = time.perf_counter()
    base = load_config(preset, list(overrides or []), extra={"name": f"reproduce-{what}"})
    out = Path(base.runtime.runs_dir) / f"reproduce-{what}"
    out.mkdir(parents=True, exist_ok=True)
    per_seed = []
    for seed in range(seeds):
        cfg = _with(base, name=f"reproduce-{what}/seed{seed}",
                    runtime=dataclasses.replace(base.runtime, seed=base.runtime.seed + seed))
        if what == "table1":
            per_seed.append(_table1(cfg))
        elif what == "table3a":
            per_seed.append(_table3a(cfg))
        elif what == "table3b":
            per_seed.append(_table3b(cfg))
        else:
            per_seed.append(_fig5(cfg, out))
    rows = aggregate(per_seed)
    table = markdown_table(rows)
    seconds = time.perf_counter() - start
    text = "\n".join([f"# Reproduction: {what} on SynthGait ({seeds} seeds, mean ± std)", "",
                      f"Preset `{preset}`; wall time {seconds / 60:.1f} min.", "", table, "",
                      "## Does the paper's ordering hold?", "", *_ordering_notes(what, rows), ""])
    path = out / "report.md"
    path.write_text(text)
    return ReproduceReport(what, text, path, seconds)
