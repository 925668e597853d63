"""``qgait-lab reproduce``: the paper's tables and Fig. 5, re-run on SynthGait over several seeds.

* ``table1``: DoReFa, PACT, LSQ and QGait at w4a4 and w8a8 against full precision;
* ``table3a``: the k schedule of the fine-tune, FIXED against GROW-1/2/3 at T = 3 and 5;
* ``table3b``: the ablation baseline, +KD, +IDD, +IDD+FT, and +IDD as printed
  (Eqs. 14-15 literally, ``distill.kind: idd_paper``) beside our normalised IDD;
* ``table4``: QGait on other models: GaitSet, GaitPart and GaitBase at full
  precision, w4a4 and w8a8 (CASIA-B protocol, NM/BG/CL Rank-1), each model at
  the preset's size for it (``model.arguments``) and trained with the same
  recipe and iterations;
* ``fig5``: loss curves of training from scratch with the soft quantizer at
  k in {1, 3, 5, 10}, with the STE for reference;
* ``variation``: the demo's three models with one seed at 1 thread, all
  threads, and AVX2 kernels (:mod:`.float_order`), beside the spread over seeds:
  how far results move when only the order of float sums changes.

Every variant uses the same preset settings; nothing is tuned per method.
The report states plainly where the paper's ordering does or does not hold.
The paper's fine-tune has 1000 iterations (Gait3D); GROW's "every" is
rescaled to this preset's fine-tune length so k ends where the paper's would.

By default every seed quantizes one full-precision teacher, trained once
before the seeds start (``teacher="shared"``), as the paper quantizes one
pretrained GaitBase; the ± is then the spread of quantization-aware training.
``teacher="per-seed"`` trains a teacher per seed, so the ± includes the
teacher's spread too, at the cost of two more full-precision trainings.

Work is split into units (for Table 1: DoReFa, PACT and LSQ + QGait at each
bit-width, after the seed's own teacher when teachers are per seed) that
``jobs`` worker processes run side by side.  On a CPU that pays: a small
GaitBase keeps one core busier than it keeps two, so two one-thread processes
train about 1.4x as many iterations per second as one two-thread process.  A
unit's results do not depend on which worker ran it, except for float
summation order across thread counts.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from ..errors import ConfigError
from ..quant.schedules import KSchedule, paper_grow
from .float_order import REPRODUCIBILITY, run_float_order_unit, variation_section, variation_units
from .distances import CORRELATION, RELATIVE_CHANGE, result_distance_changes, with_distance_change
from .results import aggregate, markdown_table
from .statistics import paired_from_seeds
from ..training.config import ExperimentConfig, load_config
from ..training.runtime import usable_cores
from .pipeline import Experiment, MethodResult, dataset_root

WHAT = ("table1", "table3a", "table3b", "table4", "fig5", "variation")
#: Table 4's models, in the paper's order (GaitBase, the paper's main model, last).
TABLE4_MODELS = ("gaitset", "gaitpart", "gaitbase")
TEACHERS = ("shared", "per-seed")

# Paper Table 3 for the report's side-by-side (Gait3D Rank-1, %).
PAPER_TABLE3A = {"FIXED": (62.72, 62.02), "GROW-1": (64.88, 65.48), "GROW-2": (65.24, 65.89),
                 "GROW-3": (61.15, 58.92)}
PAPER_TABLE3B = {"baseline": 64.80, "+KD": 64.21, "+IDD": 65.64, "+IDD+FT": 66.50}
# Paper Table 4 (CASIA-B Rank-1 NM / BG / CL, %); the paper has no GaitBase row there (its DyGait is not
# in OpenGait's model zoo as a CASIA-B config we ship).
PAPER_TABLE4 = {("gaitset", 32): (95.79, 89.58, 73.62), ("gaitset", 4): (95.12, 88.65, 72.33),
                ("gaitset", 8): (95.73, 89.44, 73.58), ("gaitpart", 32): (96.14, 90.69, 78.73),
                ("gaitpart", 4): (95.89, 89.99, 78.01), ("gaitpart", 8): (96.15, 90.77, 78.92)}
PAPER_TABLE1_RANK1 = {("FP32", 32): 64.40, ("DOREFA", 4): 60.00, ("PACT", 4): 59.80,
                      ("LSQ", 4): 63.80, ("QGait", 4): 64.60, ("DOREFA", 8): 64.30,
                      ("PACT", 8): 63.30, ("LSQ", 8): 64.80, ("QGait", 8): 66.50}


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


MODEL_TITLES = {"gaitset": "GaitSet", "gaitpart": "GaitPart", "gaitbase": "GaitBase"}


def _table4_unit(cfg: ExperimentConfig, unit: str, teachers: dict[str, str] | None) -> list[dict]:
    """``<model>`` (its full-precision row) or ``<model>@<bits>`` (QGait at those bits)."""
    model, _, bits = unit.partition("@")
    cfg = _with(cfg, model=dataclasses.replace(cfg.model, name=model))
    if teachers:
        cfg = _with(cfg, full_precision=dataclasses.replace(cfg.full_precision, checkpoint=teachers[model]))
    if bits:
        cfg = _with(cfg, quant=dataclasses.replace(cfg.quant, bits=int(bits)))
    r = Experiment(cfg).run("qgait" if bits else "fp")
    return [r.row(f"{MODEL_TITLES[model]} {r.label}")]


def _table4_notes(rows: list[dict]) -> list[str]:
    """Per model: QGait-4 and QGait-8 against full precision, beside the paper's gaps."""
    def cell(row, key):
        v = row.get(key)
        return v if isinstance(v, tuple) else (v, 0.0)

    notes = []
    for model in TABLE4_MODELS:
        mine = {r["bits"]: r for r in rows if r["method"].startswith(MODEL_TITLES[model] + " ")}
        if "32" not in mine:
            continue
        parts = []
        for bits, name in (("w4/a4", 4), ("w8/a8", 8)):
            if bits not in mine:
                continue
            gaps = []
            for i, key in enumerate(("NM", "BG", "CL")):
                (q, spread), (f, _) = cell(mine[bits], key), cell(mine["32"], key)
                paper = PAPER_TABLE4.get((model, name)), PAPER_TABLE4.get((model, 32))
                shown = f"{key} {q - f:+.2f} ± {spread:.2f}"
                if None not in paper:
                    shown += f" (paper {paper[0][i] - paper[1][i]:+.2f})"
                gaps.append(shown)
            parts.append(f"{name}-bit minus FP32: " + ", ".join(gaps))
        notes.append(f"- {MODEL_TITLES[model]}: " + "; ".join(parts) + ".")
    notes.append("- The paper: QGait stays close to full precision on every model, with the 4-bit lightweight "
                 "models a little below it (GaitSet and GaitPart lose 0.2-1.3 points at 4 bits, less than "
                 "0.2 at 8 bits). A gap within its ± does not separate the quantized model from full precision "
                 "on these seeds.")
    return notes


def _table4_order(rows: list[dict]) -> list[dict]:
    """Table 4's rows grouped by model (FP32, then 4 and 8 bits), as the paper lists them."""
    def key(row):
        model = next(i for i, m in enumerate(TABLE4_MODELS) if row["method"].startswith(MODEL_TITLES[m] + " "))
        return model, {"32": 0, "w4/a4": 1, "w8/a8": 2}.get(row["bits"], 3)
    return sorted(rows, key=key)


def _table1_unit(cfg: ExperimentConfig, unit: str) -> list[dict]:
    """``fp``, or ``method[+method]@bits``: methods that share stages run in one unit."""
    if unit == "fp":
        return [Experiment(cfg).run("fp").row()]
    methods, bits = unit.split("@")
    exp = Experiment(_with(cfg, quant=dataclasses.replace(cfg.quant, bits=int(bits))))
    return [exp.run(m).row() for m in methods.split("+")]


def grow_schedules(iterations: int, t: float) -> dict[str, KSchedule]:
    """Table 3a's schedules, at the paper's pace relative to a fine-tune of ``iterations``."""
    return {"FIXED": KSchedule("fixed", start=t, max=t),
            "GROW-1": paper_grow(0.1, 100, iterations, t),
            "GROW-2": paper_grow(0.2, 100, iterations, t),
            "GROW-3": paper_grow(1.0, 1000, iterations, t)}


def _table3a(cfg: ExperimentConfig) -> list[dict]:
    rows = []
    for t in (3.0, 5.0):
        for name, sched in grow_schedules(cfg.stage2.iterations, t).items():
            # Stage folders are keyed by their settings, so the variants share FP and stage 1.
            r = Experiment(_stage2(cfg, k=sched)).run("qgait")
            rows.append(r.row(f"{name} (T={t:g}, {sched.describe()})"))
    return rows


def _table3b(cfg: ExperimentConfig) -> list[dict]:
    def stage1(kind: str) -> ExperimentConfig:
        return _with(cfg, stage1=dataclasses.replace(
            cfg.stage1, distill=dataclasses.replace(cfg.stage1.distill, kind=kind)))

    results = {"baseline (STE)": Experiment(cfg).run("lsq"),
               "+KD": Experiment(stage1("kd")).run("lsq"),
               "+IDD": Experiment(stage1("idd")).run("lsq"),
               "+IDD+FT": Experiment(stage1("idd")).run("qgait"),
               # Eqs. 14-15 as printed (raw flattened distances, tau 1, the sum), beside our normalised IDD.
               "+IDD as printed": Experiment(stage1("idd_paper")).run("lsq")}
    # Fig. 4's number for each row: its inter-class distances against the teacher's.
    exp = Experiment(cfg)
    changes = result_distance_changes(exp, exp.run("fp"), results)
    return [with_distance_change(r.row(name), changes[name]) for name, r in results.items()]


def _fig5(cfg: ExperimentConfig, out: Path) -> list[dict]:
    """Training a 4-bit model from scratch with the soft quantizer at several k."""
    from .figures import loss_curves_figure

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
        rows.append(r.row(f"from scratch, {label}"))
    fig = loss_curves_figure(runs, keys=("loss", "triplet", "ce"))
    fig.savefig(out / "fig5_loss_curves.png", dpi=120)
    return rows


def paired_comparisons(what: str, per_seed: list[list[dict]], shared: list[dict] = ()) -> list:
    """The comparisons of ``what`` whose two sides share a parent stage in every seed, paired by seed.

    Table 1: QGait against each baseline at the same bits (all quantize one teacher with the seed's
    batches; QGait and LSQ share stage 1 too).  Table 3a: each GROW schedule against FIXED at the
    same T.  Table 3b: each variant against the STE baseline, IDD against KD, the fine-tune
    against its stage 1 and IDD as printed against the normalised IDD.
    Table 4: each model's QGait against its full-precision teacher (``shared`` rows, trained once,
    or the seed's own).
    """
    def key(row):
        return row["method"], row["bits"]

    labels = [key(r) for r in (per_seed[0] if per_seed else [])]
    out = []
    if what == "table1":
        for bits in ("w4/a4", "w8/a8"):
            qgait = [k for k in labels if k[1] == bits and k[0].startswith("QGait")]
            for q in qgait:
                for other in (k for k in labels if k[1] == bits and k != q):
                    out.append(paired_from_seeds(per_seed, q, other))
    elif what == "table3b":
        base = next((k for k in labels if k[0].startswith("baseline")), None)
        by_name = {k[0]: k for k in labels}
        # Each variant against the baseline, then the variants against each other where they share
        # more: IDD against KD (one teacher, one start), the fine-tune against its own stage 1, and
        # the equation as printed against the normalised IDD.
        against = [(k, base) for k in labels if base and k != base]
        against += [(by_name[a], by_name[b]) for a, b in (("+IDD", "+KD"), ("+IDD+FT", "+IDD"),
                                                           ("+IDD as printed", "+IDD"))
                    if a in by_name and b in by_name]
        for metric, title, digits, lower in (("rank1", "Rank-1", 2, False),
                                             (CORRELATION, "distance corr. with FP", 3, False),
                                             (RELATIVE_CHANGE, "distance change from FP", 3, True)):
            out += [paired_from_seeds(per_seed, a, b, metric, title, digits=digits, lower_is_better=lower)
                    for a, b in against]
    elif what == "table3a":
        # Every schedule fine-tunes the same stage-1 model of its seed: each GROW against FIXED at its T.
        def t_of(label: str) -> str:          # rows are labelled "NAME (T=t, schedule)"
            return label.partition("(T=")[2].partition(",")[0]

        fixed = {t_of(k[0]): k for k in labels if k[0].startswith("FIXED ")}
        out += [paired_from_seeds(per_seed, k, fixed[t_of(k[0])]) for k in labels
                if not k[0].startswith("FIXED ") and t_of(k[0]) in fixed]
    elif what == "table4":
        teachers = {r["method"].split(" ")[0]: r for r in shared}
        for k in labels:
            title = k[0].split(" ")[0]
            fp = teachers.get(title) or next((r for r in per_seed[0] if r["method"].startswith(title + " ")
                                              and r["bits"] == "32"), None)
            if fp is None or k[1] == "32":
                continue
            for metric in ("NM", "BG", "CL"):
                shared_value = fp.get(metric) if fp in shared else None
                out.append(paired_from_seeds(per_seed, k, key(fp), metric, metric, b_value=shared_value))
    return [p for p in out if p is not None]


def _paired_section(pairs: list) -> list[str]:
    if not pairs:
        return []
    return ["## Paired by seed", "",
            "Each line compares two runs of the same seed from the same parent stage: the mean of the "
            "per-seed differences, its 95 % Student-t interval over seeds, and the verdict that interval "
            "gives (ahead only when the whole interval is on one side of 0).", "",
            *[f"- {p.describe()}" for p in pairs], ""]


def _ordering_notes(what: str, rows: list[dict], pairs: Sequence = ()) -> list[str]:
    """The report's verdicts; with ``pairs`` (:func:`paired_comparisons`) Table 1's verdict follows
    the paired interval of QGait against the runner-up rather than the unpaired spreads."""
    def r1(label: str):
        for r in rows:
            if r["method"].startswith(label):
                v = r.get("rank1")
                return v[0] if isinstance(v, tuple) else v
        return None

    notes = []
    if what == "table1":
        for bits in ("w4/a4", "w8/a8"):
            cells = {r["method"]: r["rank1"] if isinstance(r["rank1"], tuple) else (r["rank1"], 0.0)
                     for r in rows if r["bits"] == bits}
            if not cells:
                continue
            ranked = sorted(cells, key=lambda m: -cells[m][0])
            best, second = ranked[0], ranked[1] if len(ranked) > 1 else None
            holds = best.lower().startswith("qgait")
            line = f"- {bits}: best Rank-1 is {best} ({cells[best][0]:.2f})"
            close = False
            if second is not None:
                margin = cells[best][0] - cells[second][0]
                close = margin < max(cells[best][1], cells[second][1])
                line += f", {margin:.2f} ahead of {second}"
                if close:
                    line += ", less than their spread over seeds, so these seeds do not separate the two"
            paired = next((p for p in pairs if {p.a, p.b} == {best, second}), None)
            if paired is not None:
                close = paired.low <= 0 <= paired.high
                line += (f"; paired by seed {paired.a} − {paired.b} is {paired.mean:+.2f} (95 % interval "
                         f"{paired.low:+.2f} to {paired.high:+.2f}), "
                         + ("which does not separate them" if close else "which separates them"))
            verdict = ("holds here" + (", but only in the mean" if close else "") if holds
                       else "does NOT hold here")
            notes.append(f"{line}. The paper's claim that QGait beats the other quantizers {verdict}.")
    elif what == "table4":
        notes += _table4_notes(rows)
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


def units(what: str, shared_teacher: bool = False, seed_index: int = 0,
          threads: int = 1) -> tuple[list[str], list[str]]:
    """Seed ``seed_index``'s work: (units to run first, units that may then run side by side).

    With a shared teacher, Table 1's full-precision model is trained before any
    seed starts, so a seed has only its quantized units.  ``variation`` runs
    seed 0 under every float order of ``threads`` and the others under the first."""
    if what == "variation":
        return [], variation_units(seed_index, threads)
    if what == "table1":
        quantized = [f"{methods}@{bits}" for bits in (4, 8)
                     for methods in ("dorefa", "pact", "lsq+qgait")]
        return ([] if shared_teacher else ["fp"]), quantized
    if what == "table4":
        teachers = [] if shared_teacher else list(TABLE4_MODELS)
        return teachers, [f"{model}@{bits}" for model in TABLE4_MODELS for bits in (4, 8)]
    return [what], []


def run_unit(cfg: ExperimentConfig, what: str, unit: str, out: Path,
             teachers: dict[str, str] | None = None) -> list[dict]:
    """The table rows of one unit of one seed (also what a worker process runs).

    ``teachers``: Table 4's shared full-precision checkpoint of each model."""
    if what == "table4":
        return _table4_unit(cfg, unit, teachers)
    if what == "table1":
        return _table1_unit(cfg, unit)
    if what == "table3a":
        return _table3a(cfg)
    if what == "table3b":
        return _table3b(cfg)
    if what == "variation":
        return run_float_order_unit(cfg, unit)
    return _fig5(cfg, out)


def resolve_jobs(jobs: int | str, device: str = "auto") -> int:
    """``auto``: one process per core on a CPU (at most 4), a single process with a GPU."""
    if jobs == "auto":
        if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
            return 1
        return min(4, usable_cores())
    try:
        n = int(str(jobs))    # refuses 1.5 and 'two'
    except (TypeError, ValueError):
        raise ConfigError(f"--jobs must be a whole number >= 1 or 'auto', got {jobs!r}") from None
    if n < 1:
        raise ConfigError(f"--jobs must be a whole number >= 1 or 'auto', got {jobs!r}")
    return n


def _longest_first(work: list[tuple[int, str]]) -> list[tuple[int, str]]:
    # Units that train several methods first, so that the last minutes are not
    # one long unit running beside an idle worker.
    return sorted(work, key=lambda w: -w[1].count("+"))


def _run_seeds(configs: list[ExperimentConfig], what: str, out: Path, jobs: int, report: bool,
               work: list[tuple[list[str], list[str]]], teachers: dict[str, str] | None = None,
               fresh_processes: bool = False) -> list[list[dict]]:
    """Every unit of every seed, in ``jobs`` worker processes; rows per seed in unit order.

    ``work[i]``: seed ``i``'s units, as :func:`units` gives them.  ``fresh_processes``: every unit
    in a new worker, even with one job (a float-order unit needs a process no convolution ran in)."""
    done: dict[tuple[int, str], list[dict]] = {}
    if jobs <= 1 and not fresh_processes:
        for i, cfg in enumerate(configs):
            for unit in work[i][0] + work[i][1]:
                done[(i, unit)] = run_unit(cfg, what, unit, out, teachers)
    else:
        # Each worker gets an equal share of this process's threads.
        threads = max(1, torch.get_num_threads() // jobs)
        quiet = [_with(c, runtime=dataclasses.replace(c.runtime, progress=False)) for c in configs]
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=torch.set_num_threads, initargs=(threads,),
                                 max_tasks_per_child=1 if fresh_processes else None) as pool:
            started = time.perf_counter()
            start = [(i, u) for i in range(len(configs)) for u in (work[i][0] or work[i][1])]
            pending = {pool.submit(run_unit, quiet[i], what, u, out, teachers): (i, u)
                       for i, u in _longest_first(start)}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    i, unit = pending.pop(future)
                    try:
                        done[(i, unit)] = future.result()
                    except BaseException:
                        pool.shutdown(wait=False, cancel_futures=True)
                        raise
                    if report:
                        print(f"reproduce {what}: seed {i} {unit} done "
                              f"({(time.perf_counter() - started) / 60:.1f} min)", flush=True)
                    first, then = work[i]
                    if unit in first and all((i, u) in done for u in first):
                        for _, u in _longest_first([(i, u) for u in then]):
                            pending[pool.submit(run_unit, quiet[i], what, u, out, teachers)] = (i, u)
    return [[row for u in work[i][0] + work[i][1] for row in done[(i, u)]] for i in range(len(configs))]


def _teacher_note(fp: MethodResult | None, source: str, per_model: bool = False) -> list[str]:
    if fp is None:
        return ["Each seed trains its own full-precision teacher (`--teacher per-seed`), so "
                "± includes the teacher's seed-to-seed spread.", ""]
    if per_model:
        return [f"Every seed fine-tunes one full-precision teacher per model ({source}; its row, without ±), "
                "as the paper quantizes one pretrained model: ± is the spread of quantization-aware training "
                "alone (`--teacher per-seed` trains one per seed).", ""]
    return [f"Every seed fine-tunes one full-precision teacher ({source}; Rank-1 "
            f"{fp.metrics.get('rank1', float('nan')):.2f}), as the paper quantizes one pretrained "
            "model: ± is the spread of quantization-aware training alone and leaves out the "
            "teacher's own seed-to-seed spread (`--teacher per-seed` trains one per seed).", ""]


def run_reproduce(what: str, seeds: int = 3, preset: str = "tiny-cpu",
                  overrides: Sequence[str] | None = None, jobs: int | str = "auto",
                  teacher: str = "shared", budget: str | None = None) -> ReproduceReport:
    """Run ``what`` over ``seeds`` seeds and write ``runs/reproduce-<what>/report.md``.

    ``teacher="shared"`` trains the full-precision model once (in this process,
    with all its threads) and every seed quantizes it, as the paper quantizes one
    pretrained GaitBase; ``"per-seed"`` trains a teacher per seed.  Fig. 5 trains
    from scratch and has no teacher.
    """
    if what not in WHAT:
        raise ConfigError(f"--what must be one of {list(WHAT)}, got {what!r}")
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    if teacher not in TEACHERS:
        raise ConfigError(f"--teacher must be one of {list(TEACHERS)}, got {teacher!r}")
    start = time.perf_counter()
    base = load_config(preset, list(overrides or []), extra={"name": f"reproduce-{what}"}, budget=budget)
    # Fig. 5 trains from scratch; the float-order runs train a teacher under each order.
    shared = teacher == "shared" and what not in ("fig5", "variation")
    threads = torch.get_num_threads()
    work = [units(what, shared, i, threads) for i in range(seeds)]
    # No more workers than units that can run at once: a single unit is faster
    # in this process, with all its threads, than in a one-thread worker.
    jobs = min(resolve_jobs(jobs, base.runtime.device), sum(len(f) or len(t) for f, t in work))
    out = Path(base.runtime.runs_dir) / f"reproduce-{what}"
    out.mkdir(parents=True, exist_ok=True)
    dataset_root(base)    # generate SynthGait once, before any worker needs it
    fp = None
    source = (f"`{base.full_precision.checkpoint}`" if base.full_precision.checkpoint
              else f"trained once with seed {base.runtime.seed}")
    teachers: dict[str, str] | None = None
    teacher_rows: list[dict] = []
    if shared and what == "table4":
        # One teacher per model, each trained once; its row has no ±.
        teachers = {}
        for model in TABLE4_MODELS:
            fp = Experiment(_with(base, name=f"reproduce-{what}/teacher-{model}",
                                  model=dataclasses.replace(base.model, name=model))).run("fp")
            teachers[model] = str(fp.stages[0].checkpoint)
            teacher_rows.append(fp.row(f"{MODEL_TITLES[model]} {fp.label}"))
    elif shared:
        fp = Experiment(_with(base, name=f"reproduce-{what}/teacher")).run("fp")
        base = _with(base, full_precision=dataclasses.replace(
            base.full_precision, checkpoint=str(fp.stages[0].checkpoint)))
    configs = [_with(base, name=f"reproduce-{what}/seed{seed}",
                     runtime=dataclasses.replace(base.runtime, seed=base.runtime.seed + seed))
               for seed in range(seeds)]
    per_seed = _run_seeds(configs, what, out, jobs, base.runtime.progress, work, teachers,
                          fresh_processes=what == "variation")
    if what == "variation":
        seconds = time.perf_counter() - start
        text = "\n".join([f"# Float order against seeds: the demo's models on SynthGait ({seeds} seeds)", "",
                          f"Preset `{preset}`; wall time {seconds / 60:.1f} min with {jobs} worker "
                          f"process{'es' if jobs > 1 else ''}, each unit in a fresh one.", "",
                          "Seed 0 is trained under each float order (a teacher of its own each time); the "
                          "other seeds under the first. Runs are bit-identical on the same machine and thread "
                          "count; the first table's range is how far a result moves when only the order of "
                          "float sums changes, to set beside the spread over seeds.", "",
                          *variation_section(per_seed, threads)])
        path = out / "report.md"
        path.write_text(text)
        return ReproduceReport(what, text, path, seconds)
    rows = aggregate(per_seed)
    if fp is not None and what == "table1":
        rows.insert(0, fp.row())      # one model: its numbers have no ±
    if what == "table4":
        rows = _table4_order(teacher_rows + rows)
    table = markdown_table(rows)
    pairs = paired_comparisons(what, per_seed, teacher_rows)
    seconds = time.perf_counter() - start
    text = "\n".join([f"# Reproduction: {what} on SynthGait ({seeds} seeds, mean ± std)", "",
                      f"Preset `{preset}`; wall time {seconds / 60:.1f} min with {jobs} "
                      f"worker process{'es' if jobs > 1 else ''}. {REPRODUCIBILITY}", "",
                      *(_teacher_note(fp, source, per_model=what == "table4") if what != "fig5" else []),
                      table, "",
                      "## Does the paper's ordering hold?", "", *_ordering_notes(what, rows, pairs), "",
                      *_paired_section(pairs)])
    path = out / "report.md"
    path.write_text(text)
    return ReproduceReport(what, text, path, seconds)
