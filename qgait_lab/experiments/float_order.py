"""How far results move when only the order of float additions changes (``reproduce --what variation``).

On a CPU a convolution splits its sums over threads and over the vector width
of the kernel oneDNN picks for the processor, and float addition is not
associative: the same seed on another thread count or another CPU gives a
slightly different model after a few hundred iterations, and results then
differ by more than rounding.  Runs are bit-identical only on the same machine
and thread count (``tests/test_resume_kill.py`` checks two runs of one seed bit for bit).

The unit here trains the demo's three models (full precision, LSQ and QGait at
the preset's bits, a teacher of their own) with one seed under each float order
of :func:`float_orders`: all the machine's threads, one thread, and all threads
with oneDNN (and MKL) capped at AVX2 kernels, the ones a CPU without AVX-512
gets.  More seeds under the default order give the spread over seeds to set
beside it.  Each unit runs in a fresh worker process, since the kernel cap is
read once, at a process's first convolution.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..errors import ConfigError
from ..training.config import ExperimentConfig
from .distances import RELATIVE_CHANGE, result_distance_changes, with_distance_change
from .pipeline import Experiment

#: What every report says of its numbers' reproducibility.
REPRODUCIBILITY = ("Runs are bit-identical on the same machine and thread count. Another thread count or "
                   "another CPU's kernels changes the order of float sums and moves results by more than "
                   "rounding: `qgait-lab reproduce --what variation` measures how far (README, "
                   "\"Results on SynthGait\").")

#: The kernel cap's variables: oneDNN's (convolutions) and MKL's (matrix products).
ISA_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


@dataclass(frozen=True)
class FloatOrder:
    """One way of ordering the float sums: ``threads`` and an optional kernel cap (``"AVX2"``)."""

    threads: int
    isa: str | None = None

    @property
    def unit(self) -> str:
        """The unit's name in ``reproduce`` (``threads=2``, ``threads=2,isa=AVX2``)."""
        return f"threads={self.threads}" + (f",isa={self.isa}" if self.isa else "")

    @property
    def title(self) -> str:
        name = f"{self.threads} thread{'s' if self.threads > 1 else ''}"
        return name + (f", {self.isa} kernels" if self.isa else "")

    @classmethod
    def parse(cls, unit: str) -> "FloatOrder":
        fields = dict(part.split("=", 1) for part in unit.split(",") if "=" in part)
        try:
            return cls(int(fields["threads"]), fields.get("isa"))
        except (KeyError, ValueError):
            raise ConfigError(f"float order {unit!r}: expected threads=N[,isa=NAME]") from None


def float_orders(threads: int) -> list[FloatOrder]:
    """The default order (``threads``, the machine's kernels) first, then the ones that vary it."""
    orders = [FloatOrder(threads), FloatOrder(1), FloatOrder(threads, "AVX2")]
    return list(dict.fromkeys(orders))


def variation_units(seed_index: int, threads: int) -> list[str]:
    """Seed 0 under every float order; the other seeds under the default one."""
    orders = float_orders(threads)
    return [o.unit for o in (orders if seed_index == 0 else orders[:1])]


def apply_float_order(order: FloatOrder) -> None:
    """Set this process's thread count and kernel cap.  The cap holds only in a process that has not
    run a convolution or a matrix product yet: oneDNN and MKL read it once, at their first call."""
    if order.isa:
        for name in ISA_VARIABLES:
            os.environ[name] = order.isa
    torch.set_num_threads(order.threads)


def run_float_order_unit(cfg: ExperimentConfig, unit: str) -> list[dict]:
    """The demo's three models under one float order (call it in a fresh process: see the module)."""
    order = FloatOrder.parse(unit)
    apply_float_order(order)
    cfg = dataclasses.replace(cfg, name=f"{cfg.name}/{order.unit.replace(',', '-').replace('=', '')}")
    exp = Experiment(cfg)
    fp, *quantized = [exp.run(m) for m in ("fp", "lsq", "qgait")]
    changes = result_distance_changes(exp, fp, {r.label: r for r in quantized})
    rows = [fp.row()] + [with_distance_change(r.row(), changes[r.label]) for r in quantized]
    return [{**row, "float_order": unit} for row in rows]


def _value(rows: Sequence[dict], method: str, unit: str, metric: str) -> float | None:
    return next((r.get(metric) for r in rows if r["method"] == method and r["float_order"] == unit), None)


METRICS = (("rank1", "Rank-1", 2), ("mAP", "mAP", 2),
           (RELATIVE_CHANGE, "Inter-class distance change from FP (Fig. 4's number)", 3))


def variation_section(per_seed: Sequence[Sequence[dict]], threads: int,
                      metrics: Sequence[tuple[str, str, int]] = METRICS) -> list[str]:
    """The report's tables: seed 0 under each float order, and the spread over seeds beside it."""
    orders = [o for o in float_orders(threads) if any(r["float_order"] == o.unit for r in per_seed[0])]
    default = orders[0].unit
    methods = list(dict.fromkeys(r["method"] for r in per_seed[0]))
    lines = []
    for metric, title, d in metrics:
        lines += [f"### {title}", "",
                  "| model | " + " | ".join(f"seed 0, {o.title}" for o in orders)
                  + " | range over float orders | std over seeds | range over seeds |",
                  "|---|" + "---:|" * (len(orders) + 3)]
        for m in methods:
            if _value(per_seed[0], m, default, metric) is None:
                continue
            by_order = [_value(per_seed[0], m, o.unit, metric) for o in orders]
            by_seed = [v for v in (_value(rows, m, default, metric) for rows in per_seed) if v is not None]
            cells = [f"{v:.{d}f}" if v is not None else "-" for v in by_order]
            known = [v for v in by_order if v is not None]
            spread = f"{max(known) - min(known):.{d}f}" if len(known) > 1 else "-"
            seeds = (f"{np.std(by_seed):.{d}f} ({len(by_seed)} seeds)", f"{max(by_seed) - min(by_seed):.{d}f}") \
                if len(by_seed) > 1 else ("-", "-")
            lines.append(f"| {m} | " + " | ".join(cells) + f" | {spread} | {seeds[0]} | {seeds[1]} |")
        lines.append("")
    quantized = [m for m in methods if not m.startswith("FP")]
    if len(quantized) == 2:
        a, b = quantized[1], quantized[0]
        diffs = [(_value(per_seed[0], a, o.unit, "rank1"), _value(per_seed[0], b, o.unit, "rank1"), o.title)
                 for o in orders]
        lines += [f"{a} − {b} Rank-1 under each float order (seed 0): " + ", ".join(
            f"{x - y:+.2f} ({t})" for x, y, t in diffs if x is not None and y is not None) + ".", ""]
    return lines
