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
# # 04 · Training QGait: full precision → stage 1 (STE) → stage 2 (θ_k + IDD)
#
# *QGait lab, notebook 4 of 6. Paper: Sec. 3.2 (the two-stage strategy), Sec. 3.3 (IDD), Sec. 4.1
# (training settings), Table 3a (the k schedule).*
#
# This notebook trains the paper's method end to end. It scales from a laptop-CPU run of a few minutes on
# SynthGait (the default `tiny-cpu` preset: a quarter-width GaitBase on 32×22 silhouettes) to the
# paper's settings on GPUs: only the **parameters** cell below changes. It is papermill-ready, e.g.
# `papermill 04_training.ipynb out.ipynb -p PRESET gait3d -p DATA_ROOT /data/Gait3D-pkl -p PARTITION /data/Gait3D.json`.
#
# **Learning goals.** After this notebook you can
#
# 1. explain the three stages of QGait and why they come in this order;
# 2. run them with the library, watch the losses live, and find every artefact a run leaves in `runs/`;
# 3. read the evaluation table (Rank-k, mAP, mINP, the CASIA-B NM/BG/CL split, BitOPs);
# 4. launch a multi-process run through `torchrun` from a notebook and follow its log;
# 5. say which settings change for CASIA-B, OU-MVLP, GREW and Gait3D, and rescale the k schedule to a
#    fine-tune of any length.
#
# **How to work.** Set the parameters and run all cells. Finished stages are cached by their settings
# under `runs/<NAME>/`, so rerunning the notebook (or notebooks 05 and 06, which use the same `NAME`)
# reuses them instead of training again; an interrupted stage resumes from its last checkpoint.

# %%
from qgait_lab.training.runtime import fast_mode

# %% tags=["parameters"]
PRESET = "tiny-cpu"        # tiny-cpu (SynthGait, CPU) | casia-b | gait3d | grew | oumvlp
DATA_ROOT = None           # paper presets: the OpenGait-format dataset folder; tiny-cpu: where SynthGait is cached
PARTITION = None           # paper presets: the partition json (TRAIN_SET / TEST_SET)
METHOD = "qgait"           # fp | lsq | dorefa | pact | qgait
BITS = 4                   # weights and activations (the paper: 4 or 8)
FP_ITERATIONS = None       # None: the preset's budget for each stage
STAGE1_ITERATIONS = None
STAGE2_ITERATIONS = None
DEVICE = "auto"            # auto | cpu | cuda | cuda:1 ...
NAME = "lab"               # runs go to runs/<NAME>/; notebooks 05 and 06 reuse runs/lab
OVERRIDES = []             # any other setting, --set style: ["data.batch_p=4", "stage2.k.max=3"]
LAUNCH_TORCHRUN = "auto"   # auto: all GPUs if >= 2, else a small 2-process CPU (gloo) demo; False: only print
FAST = fast_mode()         # QGAIT_FAST=1 (or CI): smoke-test budgets; numbers are then meaningless

# %%
import dataclasses
import os
from pathlib import Path

import torch
import yaml
from IPython.display import Markdown, display

from qgait_lab import checks
from qgait_lab.data import gei_baseline
from qgait_lab.demo import result_rows
from qgait_lab.results import markdown_table
from qgait_lab.training.config import PRESET_DIR, config_from_dict, load_config
from qgait_lab.training.pipeline import Experiment
from qgait_lab.widgets import LiveLossPlot, display_command, follow_command, setup_matplotlib, torchrun_command

setup_matplotlib()
# In fast mode the lab notebooks share one smaller SynthGait, so that all six run in a few minutes.
LAB_FAST_OVERRIDES = ["data.synth={n_ids: 7, n_train: 4, frames: 6, views: ['018', '090']}", "data.frames=4"]

overrides = list(LAB_FAST_OVERRIDES if FAST and PRESET == "tiny-cpu" else [])
overrides += [f"name={NAME}", f"method={METHOD}", f"quant.bits={BITS}", f"runtime.device={DEVICE}"]
if DATA_ROOT:
    overrides.append(f"data.root={DATA_ROOT}")
if PARTITION:
    overrides.append(f"data.partition={PARTITION}")
for stage, iterations in (("full_precision", FP_ITERATIONS), ("stage1", STAGE1_ITERATIONS),
                          ("stage2", STAGE2_ITERATIONS)):
    if iterations is not None:
        overrides.append(f"{stage}.iterations={iterations}")
overrides += list(OVERRIDES)
cfg = load_config(PRESET, overrides)

display(Markdown(f"""**Configuration** (preset `{PRESET}`{', fast mode' if FAST else ''})

| | full precision | stage 1 | stage 2 |
|---|---|---|---|
| iterations | {cfg.full_precision.iterations} | {cfg.stage1.iterations} | {cfg.stage2.iterations} |
| optimiser | {cfg.full_precision.optim.name} lr {cfg.full_precision.optim.lr:g}, milestones {cfg.full_precision.optim.milestones} | {cfg.stage1.optim.name} lr {cfg.stage1.optim.lr:g} | {cfg.stage2.optim.name} lr {cfg.stage2.optim.lr:g} |
| quantizer backward | - | {cfg.stage1.gradient} | {cfg.stage2.gradient}, k: {cfg.stage2.k.describe()} |
| distillation | - | {cfg.stage1.distill.kind} | {cfg.stage2.distill.kind} (tau {cfg.stage2.distill.idd_tau:g}) |

Data: {cfg.data.dataset}, batch P×K = {cfg.data.batch_p}×{cfg.data.batch_k}, {cfg.data.frames} frames ({cfg.data.frames_mode});
model GaitBase, channels {cfg.model.channels}; method **{cfg.method}**, w{cfg.quant.bits}a{cfg.quant.bits};
device `{cfg.runtime.device}`; runs under `{Path(cfg.runtime.runs_dir) / cfg.name}`."""))

# %% [markdown]
# ## 1. Data
#
# `Experiment` loads the train and test splits (generating SynthGait on first use for `tiny-cpu`, or
# reading an OpenGait-format folder for the paper presets) and picks the device. A GEI + 1-nearest-neighbour
# classifier (the gait energy image, no learning at all) gives a floor any trained model must beat.

# %%
exp = Experiment(cfg)
print(f"device: {exp.device}")
print(f"train: {len(exp.train_set)} sequences of {exp.train_set.num_classes} subjects; "
      f"test: {len(exp.test_set)} sequences of {exp.test_set.num_classes} subjects")
gei = gei_baseline(exp.test_set, downsample=cfg.data.downsample == 2) if cfg.data.protocol == "casia-b" else None
if gei is not None:
    print(gei.summary())

# %% [markdown]
# ## 2. Stage 0: the full-precision teacher
#
# GaitBase trained in float with OpenGait's recipe (SGD, lr 0.1, momentum 0.9, weight decay 5e-4, the
# learning rate divided by 10 at each milestone), triplet loss on the part embeddings plus cross-entropy
# on the BNNeck logits. It is the starting point of quantization-aware training (LSQ practice) and the
# teacher of stage 2. The plot redraws while it trains; a stage that is already in `runs/` is loaded
# instead.

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
# (`quantize_model`; the steps start from LSQ's rule 2·mean|v|/√Q_P on a first batch), initialised from
# the full-precision weights, and trained with Adam at lr 1e-4. The round's backward pass is the STE:
# Sec. 3.2 argues (and notebook 01 refines) that it converges better than θ_k, so it takes the network
# close to a good solution first. For `METHOD = "qgait"` this stage *is* the LSQ baseline's training.

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
# round), with k growing from 1 by 0.2 every *every* iterations up to T (GROW-2, Table 3a), and the
# full-precision model distils the relative inter-class distances of its embeddings into the quantized one
# (IDD, Eqs. 14–15, notebook 05). The right panel shows k climbing and the distillation loss.
#
# The baselines (LSQ, DoReFa, PACT) get the same number of extra iterations, with the STE and without a
# teacher (`quant.equal_budget`), so that QGait's extra updates are not what makes the difference.

# %%
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
# The test identities are never seen in training. With the CASIA-B protocol (the `tiny-cpu` preset's),
# the gallery is nm-01…04 and the probes NM (nm-05/06), BG (bg-01/02) and CL (cl-01/02); each probe is
# compared with the gallery of every *other* view, distances are Euclidean per horizontal part, averaged
# over the 16 parts. Rank-1/5/10, mAP and mINP pool all probes (the paper's Table 1 columns); NM/BG/CL
# are the per-condition Rank-1. BitOPs are for one 100-frame sequence at this model's width and input
# size (notebook 06 does the paper-size count).

# %%
rows = result_rows([fp_result] + ([] if result is fp_result else [result]), gei)
display(Markdown(markdown_table(rows)))
if FAST:
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
# writes files. The cell below builds the command; it launches it on all GPUs when there are at least
# two. Without GPUs it runs a small demonstration instead, two CPU processes with gloo training the
# full-precision model for three iterations, and follows its log, so you can see the mechanics.

# %%
n_gpus = torch.cuda.device_count()
runs_dir = Path(cfg.runtime.runs_dir)
if n_gpus >= 2:
    ddp_overrides = [o for o in overrides if not o.startswith(("name=", "method=", "quant.bits="))]
    cmd = torchrun_command(n_gpus, PRESET, cfg.method, BITS, ddp_overrides, name=f"{NAME}-ddp")
    what = f"{cfg.method} on {n_gpus} GPUs"
else:
    smoke = LAB_FAST_OVERRIDES + ["data.batch_p=4", "data.batch_k=2",
                                  "full_precision.iterations=3", "runtime.device=cpu", "runtime.log_every=1",
                                  "runtime.progress=false", f"runtime.runs_dir={runs_dir}"]
    cmd = torchrun_command(2, "tiny-cpu", "fp", None, smoke, name=f"{NAME}-ddp-demo")
    what = "a 3-iteration demo on 2 CPU processes (gloo)"
print(f"{what}:\n\n  {display_command(cmd)}\n")
print("on a 4-GPU machine with Gait3D the same cell would run:\n\n  "
      + display_command(torchrun_command(4, "gait3d", "qgait", 4, ["data.root=/data/Gait3D-pkl",
                                                                    "data.partition=/data/Gait3D.json"],
                                         master_port=29500)) + "\n")

if LAUNCH_TORCHRUN:
    log = runs_dir / f"{NAME}-ddp" / "torchrun.log"
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    status = follow_command(cmd, log, env=env, cwd=os.getcwd())
    print(f"\nexit status {status}; full log: {log}")
    assert status == 0, f"torchrun failed; see {log}"
else:
    print("LAUNCH_TORCHRUN is False: command shown, not run.")

# %% [markdown]
# To follow a long run from another notebook or a terminal, read its `metrics.jsonl` (e.g. with
# `qgait_lab.viz.read_metrics` or `loss_curves_figure`) or `tail -f` the log.
#
# ## 7. The paper's settings, dataset by dataset
#
# The presets carry OpenGait's full-precision recipes and the paper's QAT settings (Sec. 4.1); the
# table is read from them (not from fast mode):

# %%
def preset_without_fast(name: str):
    values = yaml.safe_load((PRESET_DIR / f"{name}.yaml").read_text())
    values.pop("fast", None)
    return config_from_dict(values)


lines = ["| preset | P×K | frames | input | FP iterations (milestones) | stage 1 | stage 2 | k schedule | protocol |",
         "|---|---|---|---|---|---|---|---|---|"]
for name in ("tiny-cpu", "casia-b", "oumvlp", "grew", "gait3d"):
    c = preset_without_fast(name)
    frames = (f"{c.data.frames} fixed" if c.data.frames_mode == "fixed"
              else f"{c.data.frames_min}-{c.data.frames_max} unfixed")
    size = f"{64 // c.data.downsample}x{44 // c.data.downsample}"   # Gait3D is stored 64x44, the others cut to it
    lines.append(f"| {name} | {c.data.batch_p}×{c.data.batch_k} | {frames} | {size} | "
                 f"{c.full_precision.iterations} ({', '.join(map(str, c.full_precision.optim.milestones))}) | "
                 f"{c.stage1.iterations} | {c.stage2.iterations} | {c.stage2.k.describe()} | {c.data.protocol} |")
display(Markdown("\n".join(lines)))

# %% [markdown]
# What each setting is, and what to change per dataset:
#
# * **Data.** The paper presets read OpenGait's pickled layout: set `DATA_ROOT` to the folder made by
#   OpenGait's `pretreatment.py` and `PARTITION` to its partition json (e.g. `CASIA-B.json`,
#   `Gait3D.json`). Frames are 64×64 for CASIA-B, OU-MVLP and GREW, cut to 64×44 by the transform; Gait3D
#   stores 64×44 already (`cut_width: false`).
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
#   iterations according to different datasets"), GROW-2 up to T = 5, IDD.
# * **Evaluation.** CASIA-B: the NM/BG/CL cross-view protocol. Gait3D, GREW and OU-MVLP: probe/gallery
#   ranking (Rank-1/5/10, mAP, mINP; the `gait3d` protocol of the presets).
# * **Hardware.** The paper used RTX A6000s. On GPUs, AMP and `torch.compile` are used automatically
#   (`runtime.amp`, `runtime.compile: auto`); the global batch is split across the `torchrun` processes.
#
# ### ✏️ Exercise 4.1: rescale GROW-2
#
# The lab's fine-tune is much shorter than the paper's 1,000 iterations. Write `grow_for(iterations, t)`
# returning a `qgait_lab.quant.schedules.KSchedule` that raises k from 1 by 0.2 at the same *relative*
# pace as GROW-2 (every 100 of 1,000 iterations), up to T = `t`.

# %%
from qgait_lab.quant.schedules import KSchedule  # noqa: E402


def grow_for(iterations: int, t: float = 5.0) -> KSchedule:
    """GROW-2 rescaled to a fine-tune of `iterations` iterations."""
    # YOUR CODE HERE
    raise NotImplementedError


checks.check_grow_schedule(grow_for)

# %% [markdown]
# ### ✏️ Exercise 4.2: the Gait3D launch
#
# Write `gait3d_command(nproc, root, partition)` returning the argument list (a list of strings) that
# trains QGait at 4 bits on Gait3D with `nproc` GPUs on one machine. The checker runs your arguments
# through `qgait-lab`'s own argument parser and configuration loader.

# %%
def gait3d_command(nproc: int, root: str, partition: str) -> list[str]:
    """torchrun ... -m qgait_lab.cli train ... for QGait-4 on Gait3D."""
    # YOUR CODE HERE
    raise NotImplementedError


checks.check_torchrun_command(gait3d_command)

# %% [markdown]
# ## Summary
#
# * QGait = full precision → LSQ with the STE → a short fine-tune with θ_k' under a growing k, distilled
#   from the full-precision model with IDD.
# * Every stage is a folder under `runs/<NAME>/` with its configuration, metrics, checkpoint and result;
#   same settings, same folder, so nothing is trained twice.
# * The same cells scale from the CPU preset to the paper's datasets and to several GPUs.
#
# **Next:** notebook 05 compares vanilla KD with IDD and looks at what quantization does to logits and
# to the geometry of the embeddings.
