# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-all
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · Training QGait: full precision → stage 1 (STE) → stage 2 (θ_k + IDD)
#
# *QGait lab, notebook 6 of 9. Paper: Sec. 3.2 (the two-stage strategy), Sec. 3.3 (IDD), Sec. 4.1
# (training settings), Table 3a (the k schedule).*
#
# This notebook trains the paper's method end to end. It scales from a laptop-CPU run of a few minutes on
# SynthGait (the default `tiny-cpu` preset: a quarter-width GaitBase on 32×22 silhouettes) to the
# paper's settings on GPUs: only the **parameters** cell below changes. It is papermill-ready, e.g.
# `papermill 06_training.ipynb out.ipynb -p PRESET gait3d -p DATA_ROOT /data/Gait3D-pkl -p PARTITION /data/Gait3D.json`.
#
# **Learning goals.** After this notebook you can
#
# 1. explain the three stages of QGait and why they come in this order;
# 2. run them with the library, watch the losses live, and find every artefact a run leaves in `runs/`;
# 3. read the evaluation table (Rank-k, mAP, mINP, the CASIA-B NM/BG/CL split, BitOPs);
# 4. rescale the k schedule to a fine-tune of any length;
# 5. write the `torchrun` command of a multi-GPU run, launch one from a notebook and follow its log;
# 6. say which settings change for CASIA-B, OU-MVLP, GREW and Gait3D.
#
# **How to work.** Set the parameters and run all cells. `BUDGET` sets how long each stage trains: the lab
# budget (the default) takes a few minutes on two CPU cores (`notebooks/README.md` has the measured
# times), `"full"` is the preset as written. Finished stages are cached by their settings under
# `runs/<NAME>/`, so rerunning the notebook (or notebooks 05, 07 and 08, which use the same `NAME`) reuses
# them instead of training again; an interrupted stage resumes from its last checkpoint. If you have
# CASIA-B in OpenGait's layout, set `PRESET = "casia-b-cpu"`, `DATA_ROOT` and `PARTITION`: the same
# quarter-width model trains on real silhouettes at 32×22 (its full budget is about 25 minutes of training
# on two cores, see the README). Exercises (✏️)
# are checked by `qgait_lab.lab.checks`; `checks.hint("6.1")` gives a first hint.

# %% tags=["parameters"]
PRESET = "tiny-cpu"        # tiny-cpu (SynthGait, CPU) | casia-b-cpu (real CASIA-B, CPU) | casia-b | gait3d | grew | oumvlp
BUDGET = None  # "fast" | "lab" | "full"; None: fast under QGAIT_FAST=1, else the preset's lab budget
DATA_ROOT = None           # real datasets (casia-b-cpu, the paper presets): the OpenGait-format folder
PARTITION = None           # its partition json (TRAIN_SET / TEST_SET; Gait3D's also has PROBE_SET)
MODEL = "gaitbase"         # gaitbase | gaitset | gaitpart, at the preset's size for it
METHOD = "qgait"           # fp | lsq | dorefa | pact | qgait
BITS = 4                   # weights and activations (the paper: 4 or 8)
FP_ITERATIONS = None       # None: the budget's iterations for each stage
STAGE1_ITERATIONS = None
STAGE2_ITERATIONS = None
DEVICE = "auto"            # auto | cpu | cuda | cuda:1 ...
NAME = "lab"               # runs go to runs/<NAME>/; notebooks 05, 07 and 08 use runs/lab too
OVERRIDES = []             # any other setting, --set style: ["data.batch_p=4", "stage2.k.max=3"]
LAUNCH_TORCHRUN = "auto"   # auto: all GPUs if >= 2, else a small 2-process CPU (gloo) demo; False: only print

# %%
import dataclasses
import os
from pathlib import Path

import torch
from IPython.display import Markdown, display

from qgait_lab.lab import checks
from qgait_lab.lab.course.budget import NOTEBOOK_FAST_OVERRIDES, default_budget, notebook_config
from qgait_lab.data import gei_baseline
from qgait_lab.experiments.demo import result_rows
from qgait_lab.experiments.results import markdown_table
from qgait_lab.experiments.pipeline import Experiment, input_size
from qgait_lab.lab.widgets import (LiveLossPlot, display_command, follow_command, setup_matplotlib, torchrun_command)

setup_matplotlib()
budget = BUDGET or default_budget(PRESET)
overrides = [f"name={NAME}", f"model.name={MODEL}", f"method={METHOD}", f"quant.bits={BITS}",
             f"runtime.device={DEVICE}"]
if DATA_ROOT:
    overrides.append(f"data.root={DATA_ROOT}")
if PARTITION:
    overrides.append(f"data.partition={PARTITION}")
for stage, iterations in (("full_precision", FP_ITERATIONS), ("stage1", STAGE1_ITERATIONS),
                          ("stage2", STAGE2_ITERATIONS)):
    if iterations is not None:
        overrides.append(f"{stage}.iterations={iterations}")
overrides += list(OVERRIDES)
cfg = notebook_config(PRESET, BUDGET, overrides)

display(Markdown(f"""**Configuration** (preset `{PRESET}`, budget `{budget}`)

| | full precision | stage 1 | stage 2 |
|---|---|---|---|
| iterations | {cfg.full_precision.iterations} | {cfg.stage1.iterations} | {cfg.stage2.iterations} |
| optimiser | {cfg.full_precision.optim.name} lr {cfg.full_precision.optim.lr:g}, milestones {cfg.full_precision.optim.milestones} | {cfg.stage1.optim.name} lr {cfg.stage1.optim.lr:g} | {cfg.stage2.optim.name} lr {cfg.stage2.optim.lr:g} |
| quantizer backward | - | {cfg.stage1.gradient} | {cfg.stage2.gradient} (k schedule: section 4) |
| distillation | - | {cfg.stage1.distill.kind} | {cfg.stage2.distill.kind} (tau {cfg.stage2.distill.idd_tau:g}) |

Data: {cfg.data.dataset}, batch P×K = {cfg.data.batch_p}×{cfg.data.batch_k}, {cfg.data.frames} frames ({cfg.data.frames_mode});
model {cfg.model.name} {cfg.model.arguments.get(cfg.model.name, {})}; method **{cfg.method}**, w{cfg.quant.bits}a{cfg.quant.bits};
device `{cfg.runtime.device}`; runs under `{Path(cfg.runtime.runs_dir) / cfg.name}`."""))

# %% [markdown]
# ## 1. Data
#
# `Experiment` loads the train and test splits (generating SynthGait on first use for `tiny-cpu`, or
# reading an OpenGait-format folder for the paper presets) and picks the device. A GEI + 1-nearest-neighbour
# classifier (the gait energy image of notebook 01, no learning at all) gives a floor any trained model
# must beat.

# %%
exp = Experiment(cfg)
print(f"device: {exp.device}")
print(f"train: {len(exp.train_set)} sequences of {exp.train_set.num_classes} subjects; "
      f"test: {len(exp.test_set)} sequences of {exp.test_set.num_classes} subjects")
gei = gei_baseline(exp.test_set, downsample=cfg.data.downsample == 2) if cfg.data.layout == "casia-b" else None
if gei is not None:
    print(gei.summary())

# %% [markdown]
# ## 2. Stage 0: the full-precision teacher
#
# GaitBase trained in float with OpenGait's recipe (SGD, lr 0.1, momentum 0.9, weight decay 5e-4, the
# learning rate divided by 10 at each milestone), triplet loss on the part embeddings plus cross-entropy
# on the BNNeck logits (Eq. 1, notebook 01). It is the starting point of quantization-aware training (LSQ
# practice) and the teacher of stage 2. The plot redraws while it trains; a stage that is already in
# `runs/` is loaded instead.

# %%
plot = LiveLossPlot(title="full precision")
exp.callbacks = [plot]
fp_result = exp.run("fp")
plot.finish(fp_result.run_dirs)
print(f"full precision: Rank-1 {fp_result.metrics.get('rank1', float('nan')):.2f}; "
      f"folder {fp_result.stages[-1].run_dir}")

# %% [markdown]
# ## 3. Stage 1: quantization-aware training with the STE
#
# Every convolution and linear layer gets LSQ fake quantizers for its weights and its input
# (`quantize_model`; the steps start from LSQ's rule 2·mean|v|/√Q_P on a first batch, notebook 02),
# initialised from the full-precision weights, and trained with Adam at lr 1e-4. The round's backward
# pass is the STE: Sec. 3.2 argues (and notebooks 03 and 05 refine) that it converges better than θ_k,
# so it takes the network close to a good solution first. For `METHOD = "qgait"` this stage *is* the LSQ
# baseline's training.

# %%
if cfg.method == "fp":
    print("METHOD is 'fp': nothing to quantize.")
else:
    stage1_only = dataclasses.replace(cfg, stage2=dataclasses.replace(cfg.stage2, iterations=0))
    plot = LiveLossPlot(title=f"stage 1: {cfg.method} w{BITS}a{BITS}, STE")
    stage1_result = Experiment(stage1_only, callbacks=[plot]).run(cfg.method)
    plot.finish(stage1_result.run_dirs[-1:])
    print(f"after stage 1: Rank-1 {stage1_result.metrics.get('rank1', float('nan')):.2f}; "
          f"folder {stage1_result.stages[-1].run_dir}")

# %% [markdown]
# ## 4. Stage 2: the soft fine-tune
#
# For QGait, the backward pass of every round switches to θ_k' (Eq. 7; the forward pass keeps the hard
# round), with k growing during the fine-tune, and the full-precision model distils the relative
# inter-class distances of its embeddings into the quantized one (IDD, Eqs. 14–15, notebook 07). The
# baselines (LSQ, DoReFa, PACT) get the same number of extra iterations, with the STE and without a
# teacher (`quant.equal_budget`), so that QGait's extra updates are not what makes the difference.
#
# The paper's fine-tune on Gait3D runs 1,000 iterations, and its best k schedule, GROW-2 (Table 3a), raises
# k from 1 by 0.2 every 100 iterations up to T = 5. The lab's fine-tune is much shorter.
#
# ### ✏️ Exercise 6.1: rescale GROW-2
#
# Write `grow_for(iterations, t)` returning a `KSchedule` that raises k at the same *relative* pace as
# GROW-2 over a fine-tune of `iterations` iterations (any whole number ≥ 1), up to T = `t`.
#
# `from qgait_lab.quant.schedules import KSchedule`; `KSchedule(kind, start, step, every, max)` has the
# fields
#
# | field | meaning |
# |---|---|
# | `kind` | `"fixed"` (k stays at `start`) or `"grow"` |
# | `start` | the first k; Eq. 6 needs k ≥ 1 |
# | `step` | how much k rises each time |
# | `every` | how many iterations pass between two rises: a whole number **≥ 1** (`KSchedule` raises `ConfigError` otherwise) |
# | `max` | the cap T |
#
# and `schedule.k_at(i)` is k at the (0-based) iteration i: min(max, start + step·⌊i / every⌋).

# %%
# Exercise 6.1
from qgait_lab.quant.schedules import KSchedule  # noqa: E402


def grow_for(iterations: int, t: float = 5.0) -> KSchedule:
    """GROW-2 rescaled to a fine-tune of `iterations` iterations."""
    # YOUR CODE HERE
    raise NotImplementedError

# %%
from qgait_lab.lab import checks
checks.check_grow_schedule(grow_for)

# %% [markdown]
# The presets carry the rescaled schedule, so this run's stage 2 uses it. The lower panels of the plot
# show k climbing and the distillation loss, each on its own axis.

# %%
print(f"stage 2: {cfg.stage2.iterations} iterations, k schedule {cfg.stage2.k.describe()}")
if cfg.method == "fp":
    result = fp_result
else:
    plot = LiveLossPlot(title=f"stage 2: {cfg.method}")
    exp.callbacks = [plot]
    result = exp.run(cfg.method)
    plot.finish(result.run_dirs[-1:])
for stage in result.stages:
    print(f"{stage.stage:>15}: {stage.iterations:6d} iterations, {stage.seconds:7.1f} s, "
          f"Rank-1 {stage.metrics.get('rank1', float('nan')):6.2f}  ->  {stage.run_dir}")

# %% [markdown]
# ## 5. Evaluation
#
# The test identities are never seen in training. With the CASIA-B protocol (the `tiny-cpu` preset's,
# notebook 01), the gallery is nm-01…04 and the probes NM (nm-05/06), BG (bg-01/02) and CL (cl-01/02);
# each probe is compared with the gallery of every *other* view, distances are Euclidean per horizontal
# part, averaged over the 16 parts. Rank-1/5/10, mAP and mINP pool all probes (the paper's Table 1
# columns); NM/BG/CL are the per-condition Rank-1. BitOPs are for one 100-frame sequence at this model's
# width and input size (notebook 08 does the paper-size count).

# %%
rows = result_rows([fp_result] + ([] if result is fp_result else [result]), gei)
display(Markdown(markdown_table(rows)))
if budget == "fast":
    display(Markdown("*Fast mode: a few iterations per stage; the numbers only show that everything runs.*"))

# %% [markdown]
# Everything a run produced is on disk, one folder per stage, named by the stage and a fingerprint of
# its settings: `config.yaml` (the full configuration), `metrics.jsonl` (one JSON record per logged step
# and evaluation), `checkpoints/last.pt` (model, optimiser, scheduler, AMP scaler, iteration, k, RNG
# states), `result.json`.

# %%
for stage in result.stages:
    files = sorted(p.relative_to(stage.run_dir).as_posix() for p in stage.run_dir.rglob("*") if p.is_file())
    print(f"{stage.run_dir}: {', '.join(files)}")

# %% [markdown]
# ## 6. Several GPUs: `torchrun` from a notebook
#
# One process (CPU or one GPU) needs nothing special. For several GPUs, the command-line interface runs
# under `torchrun`: each process joins a process group (NCCL on GPUs, gloo on CPUs), wraps the model in
# DistributedDataParallel (with SyncBatchNorm on GPUs), draws its share of every P×K batch, and only rank 0
# writes files.
#
# ### ✏️ Exercise 6.2: the Gait3D launch
#
# Write `gait3d_command(nproc, root, partition)` returning the command (a list of strings, or one shell
# string) that trains QGait at 4 bits on Gait3D with `nproc` GPUs on one machine, with the dataset folder
# `root` and the partition json `partition`. What you need:
#
# * `torchrun` starts the processes: its option `--nproc_per_node=N` says how many, and what follows is
#   what each process runs; `-m MODULE` runs a Python module, here `qgait_lab.cli`, the module behind the
#   `qgait-lab` command.
# * `qgait-lab train` takes `--preset NAME` (the presets: `qgait_lab.training.config.available_presets()`),
#   `--method` (fp, lsq, dorefa, pact or qgait), `--bits B`, and any number of `--set KEY=VALUE`, one
#   setting each; the dataset folder is the setting `data.root`, the partition json `data.partition`.
# * The checker runs your arguments through `qgait-lab`'s own argument parser and configuration loader.

# %%
# Exercise 6.2
def gait3d_command(nproc: int, root: str, partition: str) -> list[str]:
    """torchrun ... -m qgait_lab.cli train ... for QGait-4 on Gait3D."""
    # YOUR CODE HERE
    raise NotImplementedError

# %%
from qgait_lab.lab import checks
checks.check_torchrun_command(gait3d_command)

# %% [markdown]
# Now a real launch. The cell below builds the command with `qgait_lab.lab.widgets.torchrun_command` and
# launches it on all GPUs when there are at least two. Without GPUs it runs a small demonstration
# instead, two CPU processes with gloo training the full-precision model for three iterations on a small
# SynthGait, and follows its log, so you can see the mechanics. (`torchrun` is started as
# `python -m torch.distributed.run`, the same program, so that it uses this kernel's Python.)

# %%
n_gpus = torch.cuda.device_count()
runs_dir = Path(cfg.runtime.runs_dir)
if n_gpus >= 2:
    run_name = f"{NAME}-ddp"
    ddp_overrides = [o for o in overrides if not o.startswith(("name=", "method=", "quant.bits="))]
    cmd = torchrun_command(n_gpus, PRESET, cfg.method, BITS, ddp_overrides, name=run_name)
    what = f"{cfg.method} on {n_gpus} GPUs (the preset's full budget, or its fast one under QGAIT_FAST=1)"
else:
    run_name = f"{NAME}-ddp-demo"
    smoke = [*NOTEBOOK_FAST_OVERRIDES, "data.batch_p=4", "data.batch_k=2", "full_precision.iterations=3",
             "runtime.device=cpu", "runtime.log_every=1", "runtime.progress=false", f"runtime.runs_dir={runs_dir}"]
    cmd = torchrun_command(2, "tiny-cpu", "fp", None, smoke, name=run_name)
    what = "a 3-iteration demo on 2 CPU processes (gloo)"
log = runs_dir / run_name / "torchrun.log"
display(Markdown(f"**The command**, {what}:\n\n```bash\n{display_command(cmd, wrap=True)}\n```"))

if LAUNCH_TORCHRUN:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    display(Markdown("**Its log**, as it arrives:"))
    status = follow_command(cmd, log, env=env, cwd=os.getcwd(), render=True)
    print(f"exit status {status}; the log is {log}, the run's stages are under {runs_dir / run_name}/")
    assert status == 0, f"torchrun failed; see {log}"
else:
    print("LAUNCH_TORCHRUN is False: command shown, not run.")

# %% [markdown]
# To follow a long run from another notebook or a terminal, read its `metrics.jsonl` (e.g. with
# `qgait_lab.experiments.figures.read_metrics` or `loss_curves_figure`) or `tail -f` the log.
#
# ## 7. The paper's settings, dataset by dataset
#
# The presets carry OpenGait's full-precision recipes and the paper's QAT settings (Sec. 4.1); the
# table is read from them, at their full budget:

# %%
lines = ["| preset | P×K | frames | input | FP iterations (milestones) | stage 1 | stage 2 | k schedule | layout |",
         "|---|---|---|---|---|---|---|---|---|"]
for name in ("tiny-cpu", "casia-b-cpu", "casia-b", "oumvlp", "grew", "gait3d"):
    c = notebook_config(name, "full")
    frames = (f"{c.data.frames} fixed" if c.data.frames_mode == "fixed"
              else f"{c.data.frames_min}-{c.data.frames_max} unfixed")
    size = "x".join(map(str, input_size(c)))   # the model's input: 64x44 after OpenGait's cut, or 32x22
    lines.append(f"| {name} | {c.data.batch_p}×{c.data.batch_k} | {frames} | {size} | "
                 f"{c.full_precision.iterations} ({', '.join(map(str, c.full_precision.optim.milestones))}) | "
                 f"{c.stage1.iterations} | {c.stage2.iterations} | {c.stage2.k.describe()} | {c.data.layout} |")
display(Markdown("\n".join(lines)))

# %% [markdown]
# What each setting is, and what to change per dataset:
#
# * **Data.** The paper presets read OpenGait's pickled layout: set `DATA_ROOT` to the folder made by
#   OpenGait's `pretreatment.py` and `PARTITION` to its partition json (e.g. `CASIA-B.json`,
#   `Gait3D.json`). The preset's `data.layout` says how the dataset is stored and evaluated
#   (`qgait_lab.data.layouts`). CASIA-B and OU-MVLP are stored 64×64 and GREW 64×44; Gait3D is stored
#   64×64 by OpenGait's pretreatment, or 64×44. As in OpenGait, the cut follows the stored width
#   (W // 64 · 10 columns a side), so every dataset reaches the model at 64×44.
# * **Batch (P×K).** P identities × K sequences each. CASIA-B uses 8×16 with 30 frames fixed (a small
#   dataset with many sequences per subject); Gait3D and GREW use 32×4 with 10–50 and 20–40 frames
#   sampled per sequence ("unfixed"); OU-MVLP 32×8 with 30 frames. The paper states 32×4 for Gait3D, GREW
#   and OU-MVLP; OpenGait's OU-MVLP config uses 32×8, which the preset follows.
# * **Full precision.** OpenGait's SGD recipe: 60k iterations (milestones 20k/40k/50k) for CASIA-B and
#   Gait3D, 180k (80k/120k/150k) for GREW, 120k (60k/80k/100k) for OU-MVLP. OpenGait's released
#   checkpoints use the same parameter names as our GaitBase; `qgait-lab eval --checkpoint ...`
#   evaluates one.
# * **Stage 1.** Adam, lr 1e-4 (Sec. 4.1): 60k (Gait3D), 180k (GREW), 120k (OU-MVLP) iterations. The
#   paper gives no CASIA-B count; the preset uses 60k.
# * **Stage 2.** 1k (Gait3D, CASIA-B) or 2k (GREW, OU-MVLP) iterations (Sec. 4.1 says "1K or 2K
#   iterations according to different datasets"), GROW-2 up to T = 5, IDD. Table 3a defines GROW-2 on
#   Gait3D's 1k; for the 2k fine-tunes the presets keep its interval of 100 iterations as the paper states
#   it, so k climbs further there (to 4.8 instead of 2.8) rather than at the same relative pace.
# * **Evaluation.** CASIA-B: the NM/BG/CL cross-view protocol. Gait3D, GREW and OU-MVLP: probe/gallery
#   ranking (Rank-1/5/10, mAP, mINP; the `gait3d` protocol of the presets).
# * **Hardware.** The paper used RTX A6000s. On GPUs, AMP and `torch.compile` are used automatically
#   (`runtime.amp`, `runtime.compile: auto`); the global batch is split across the `torchrun` processes.
#
# ## Summary
#
# * QGait = full precision → LSQ with the STE → a short fine-tune with θ_k' under a growing k (GROW-2,
#   rescaled to the fine-tune's length), distilled from the full-precision model with IDD.
# * Every stage is a folder under `runs/<NAME>/` with its configuration, metrics, checkpoint and result;
#   same settings, same folder, so nothing is trained twice.
# * The same cells scale from the CPU preset to the paper's datasets and to several GPUs.
#
# **Next:** notebook 07 compares vanilla KD with IDD and looks at what quantization does to logits and
# to the geometry of the embeddings.
