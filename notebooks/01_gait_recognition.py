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
# # 01 · Gait recognition: silhouettes, GaitBase and the evaluation protocol
#
# *QGait lab, notebook 1 of 9. Paper: Sec. 3.1 (Eq. 1) and Sec. 4.1; OpenGait's data and evaluation
# conventions.*
#
# QGait compresses a gait recognition network to 4 or 8 bits. Before any quantization, this notebook
# sets up what is being compressed: the task, the data the network reads, the network itself
# (GaitBase), how it is scored, and the score that a network has to beat to be worth its cost.
#
# **Learning goals.** After this notebook you can
#
# 1. say what gait recognition is, why its input is a sequence of binary silhouettes, and why that
#    makes quantization harder than for RGB images (the paper's motivation);
# 2. read a dataset in OpenGait's layout `root/<id>/<type>/<view>/<file>.pkl`, with CASIA-B's
#    conditions (nm, bg, cl) and views;
# 3. apply the network's input transform (the width cut and the scaling) for any stored width;
# 4. compute a gait energy image (GEI);
# 5. take GaitBase apart along Eq. 1, X = F∘P∘B(S) and O = K(X): the shape after each part and the
#    parameters each part holds;
# 6. compute CASIA-B's cross-view Rank-1 from a distance matrix;
# 7. run the GEI nearest-neighbour floor and say what it tells you.
#
# **How to work.** Run the cells from top to bottom. Exercises are marked ✏️. Each has a cell for your
# answer, marked `# Exercise 1.N`, and a check cell that grades it. The check says *what* is wrong and
# *where*, never the answer. `checks.hint("1.N")` gives a first nudge; `checks.hint("1.N", 2)` says more.

# %%
import numpy as np
import torch
from IPython.display import Markdown, display

from qgait_lab.lab.course.budget import notebook_config
from qgait_lab.data import GaitDataset, gei, gei_baseline, load_silhouettes, read_partition, scan_layout
from qgait_lab.data.transforms import SilCutScale, cut_columns
from qgait_lab.evaluation import CASIA_B_GALLERY, CASIA_B_PROBES, pairwise_distance
from qgait_lab.models import build_model, count_parameters
from qgait_lab.models.anatomy import gaitbase_parts, parameters_without_bnneck, parts_table
from qgait_lab.experiments.pipeline import dataset_root
from qgait_lab.training.runtime import fast_mode
from qgait_lab.lab.figures import cross_view_figure, input_transform_figure, silhouettes_figure
from qgait_lab.lab.widgets import find_data_samples, load_sample_sequence, setup_matplotlib

setup_matplotlib();

# %% [markdown]
# ## 1 · The task: who is walking?
#
# Gait recognition identifies a person by the way they walk, from a camera that may be far away, at
# low resolution, with the face hidden or turned away. The *appearance-based* methods, GaitBase among
# them, do not look at the colour image. A segmentation step turns each video frame into a **binary
# silhouette**: 1 where the person is, 0 elsewhere. The network sees only a sequence of these
# silhouettes, `T` frames of `H × W` pixels (the paper's S ∈ ℝ^{T×1×H×W}, Sec. 3.1).
#
# Why binary?
#
# * **Privacy.** A silhouette carries no face, skin, hair or clothing colour.
# * **Invariance.** A change of lighting or of clothing colour does not change the silhouette, so the
#   network has to learn from shape and motion, the things that make a walk someone's own.
#
# That choice is also why QGait exists. In an RGB image, a small area that changes from 0 to 1 is a
# small change of colour. In a silhouette the same change means that a leg or an arm has moved: it is
# a **change of posture**. A quantized network rounds every activation to a few levels. The
# straight-through estimator (STE), the usual training rule, is blind to what rounding loses below one
# step (the paper's introduction and Sec. 3.2). A posture change of a few pixels can then fade out of
# the network's intermediate layers. Notebooks 02 to 05 make this precise; here we look at the data.
#
# ### The OpenGait layout
#
# Gait datasets are distributed in OpenGait's layout: one folder per subject id, one per sequence
# *type*, one per camera *view*, and in it one `.pkl` file holding the whole sequence as a `uint8`
# array `T × H × W`. CASIA-B, the classic indoor dataset, records each of its 124 subjects in
# 10 sequences from 11 views (0° to 180° in 18° steps):
#
# | type | condition | sequences |
# |---|---|---|
# | `nm-01` … `nm-06` | normal walking | 6 |
# | `bg-01`, `bg-02` | carrying a bag | 2 |
# | `cl-01`, `cl-02` | wearing a coat | 2 |
#
# A `partition.json` next to the subject folders names the ids of the training set (`TRAIN_SET`) and of
# the test set (`TEST_SET`); the two share no person. The repository ships a tiny dataset in this
# layout, `data_samples/synthgait-mini`, made by the project's generator SynthGait (4 subjects,
# 4 sequence types, 2 views, 12 frames each). The library's safe reader lists it:

# %%
root = find_data_samples("synthgait-mini")
sequences = scan_layout(root)
partition = read_partition(root / "partition.json")
rows = [f"| {s.label} | {s.type} | {s.condition} | {s.view} | `{s.path.relative_to(root)}` |"
        for s in sequences[:6]]
display(Markdown("**The first sequences of `data_samples/synthgait-mini`:**\n\n"
                 "| id | type | condition | view | file |\n|---|---|---|---|---|\n" + "\n".join(rows)))
print(f"{len(sequences)} sequences of {len({s.label for s in sequences})} subjects; "
      f"types {sorted({s.type for s in sequences})}, views {sorted({s.view for s in sequences})}")
print(f"partition.json: TRAIN_SET {list(partition.train)}, TEST_SET {list(partition.test)}")

# %% [markdown]
# One sequence, as stored: a `uint8` array with values 0 (background) to 255 (person). The stored frames
# are *almost* binary. The pretreatment crops each frame to the person and resizes it to a height of 64
# with bicubic interpolation, which leaves grey values along the edges.

# %%
frames, info = load_sample_sequence(6)
print(f"{info.label}/{info.type}/{info.view}: shape {frames.shape} (frames, rows, columns), dtype {frames.dtype}")
print(f"pixels at 0: {(frames == 0).mean():.1%}, at 255: {(frames == 255).mean():.1%}, "
      f"grey (edges of the resized silhouette): {((frames > 0) & (frames < 255)).mean():.1%}")
silhouettes_figure(frames[::2], [f"frame {t}" for t in range(0, len(frames), 2)],
                   f"subject {info.label}, {info.type}, view {info.view}: every second frame",
                   colorbar_label="stored value (0..255)");

# %% [markdown]
# The same subject from the same camera, under the three conditions, and from the two views of the
# sample. A bag or a coat changes the outline; a change of view changes it even more.

# %%
same_person = {s.type: s for s in sequences if s.label == info.label and s.view == "090"}
other_view = next(s for s in sequences if s.label == info.label and s.type == "nm-01" and s.view == "054")
shown = [same_person["nm-01"], same_person["bg-01"], same_person["cl-01"], other_view]
silhouettes_figure([load_silhouettes(s.path)[0] for s in shown],
                   [f"{s.type}, view {s.view}" for s in shown],
                   f"subject {info.label}, first frame of four sequences", colorbar_label="stored value (0..255)");

# %% [markdown]
# Where is the identity? Much of it is in the **motion**. The difference of two consecutive frames shows
# the pixels that switch on (red) or off (blue) as the legs and arms swing: these 0 ↔ 1 changes are
# the signal a quantized network must not lose.

# %%
change = (frames[1:].astype(np.float32) - frames[:-1].astype(np.float32)) / 255.0
flipped = (np.abs(change) > 0.5).sum(axis=(1, 2))
print(f"pixels that flip between consecutive frames: {flipped.min()} to {flipped.max()} "
      f"(the silhouette covers about {(frames > 127).sum(axis=(1, 2)).mean():.0f} pixels)")
silhouettes_figure(change[:4], [f"frame {t + 1} − frame {t}" for t in range(4)],
                   "consecutive frames: what changes", vmin=-1.0, vmax=1.0, cmap="coolwarm",
                   colorbar_label="change (−1 off, +1 on)");

# %% [markdown]
# ## 2 · The input transform
#
# GaitBase does not read the stored 64 × 64 frame directly. OpenGait's test transform
# (`BaseSilCuttingTransform`) does two things, in this order (paper Sec. 4.1: "the size of each frame
# is set to 64 × 44"):
#
# 1. **cut** `int(W / 64) · 10` columns from *each* side, where `W` is the *stored* width. The
#    pretreatment centres the person, so the outer columns are nearly empty. A frame stored 64 wide
#    loses 10 columns on each side and becomes 64 × 44. Some distributed copies are stored 64 × 44
#    already, and GREW's frames are not resized at all: the same rule handles every width, which is
#    why it is written in terms of `W` and not as "keep 44 columns";
# 2. **scale**: divide by 255, so the network sees values in [0, 1].
#
# ### ✏️ Exercise 1.1: the width cut
#
# Write `cut_sides(frames)`. It takes a stored sequence, a `uint8` numpy array of shape `[T, H, W]`
# (any `T`, `H` and `W`), and returns the frames with OpenGait's cut applied: shape `[T, H, W']`, the
# same number of columns removed from each side, the kept columns in their order, and the values
# unchanged (no scaling yet). The checker tries several stored widths.

# %%
# Exercise 1.1
def cut_sides(frames):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
from qgait_lab.lab import checks
checks.check_cut_sides(cut_sides)

# %% [markdown]
# The library's transform is `SilCutScale` (`qgait_lab/data/transforms.py`); `cut_columns(W)` gives the
# number of columns it cuts from each side. Below, the stored frame with the cut columns in red, and
# what the network receives.

# %%
display(Markdown("**Columns cut from each side, by stored width** (`cut_columns`):\n\n"
                 "| stored width | 44 | 64 | 88 | 128 |\n|---|---|---|---|---|\n"
                 f"| cut per side | {' | '.join(str(cut_columns(w)) for w in (44, 64, 88, 128))} |"))
model_input = SilCutScale()(torch.from_numpy(frames).float())
print(f"stored {tuple(frames.shape)} {frames.dtype} -> network input {tuple(model_input.shape)} "
      f"{model_input.dtype}, values in [{model_input.min():.0f}, {model_input.max():.0f}]")
input_transform_figure(frames[0]);

# %% [markdown]
# ## 3 · The gait energy image
#
# The oldest useful gait feature needs no training at all. The **gait energy image** (GEI; Han and
# Bhanu, 2006) is the mean of a sequence's silhouettes, taken after the network's input transform.
# Each pixel of the GEI says in what share of the frames that pixel was covered: 1 for the torso,
# which is always there, grey where the legs and arms swing, 0 for the background. One image thus
# records both the body's shape and its motion.
#
# ### ✏️ Exercise 1.2: the gait energy image
#
# Write `gei_of(frames)`. It takes a stored sequence (`uint8`, `[T, H, W]`, values 0..255) and returns
# its GEI: a float array of shape `[H, W']` (the size of one cut frame) with values in [0, 1]. No
# downsampling. You may reuse `cut_sides` from Exercise 1.1; run that cell first.

# %%
# Exercise 1.2
def gei_of(frames):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
from qgait_lab.lab import checks
checks.check_gei(gei_of)

# %% [markdown]
# The library's GEI is `gei(frames, downsample=False)` in `qgait_lab/data/gei.py`. With
# `downsample=True`, its default, it also averages 2 × 2 blocks (32 × 22, the input of the laptop
# preset that the later notebooks train). Here are a few frames and the GEI of the whole sequence, then
# the GEIs of one subject under the three conditions.

# %%
energy = gei(frames, downsample=False)
silhouettes_figure([*SilCutScale()(torch.from_numpy(frames[:9:4]).float()).numpy(), energy],
                   ["frame 0", "frame 4", "frame 8", f"GEI of all {len(frames)} frames"],
                   f"subject {info.label}, {info.type}, view {info.view}: network input and GEI",
                   colorbar_label="input value / share of frames covered");
silhouettes_figure([gei(load_silhouettes(s.path), downsample=False) for s in shown],
                   [f"GEI {s.type}, view {s.view}" for s in shown],
                   f"subject {info.label}: GEIs under three conditions and a second view",
                   colorbar_label="share of frames covered");

# %% [markdown]
# ## 4 · GaitBase, Eq. 1
#
# The paper compresses GaitBase (Fan et al., OpenGait, CVPR 2023). Sec. 3.1 writes it as
#
# $$\mathcal{X} = \mathcal{M}(S) = \mathcal{F} \circ \mathcal{P} \circ \mathcal{B}(S), \qquad
#   \mathcal{O} = \mathcal{K}(\mathcal{X}) \qquad (1)$$
#
# * **B**, the backbone: a ResNet9 (a 3 × 3 stem and four residual stages of 64, 128, 256 and 512
#   channels, strides 1, 2, 2, 1). It runs on **every frame on its own**.
# * **P**, pooling, in two steps: a **max over the frames** (temporal pooling: the sequence is treated as
#   a set, so order and length do not matter), then a **horizontal pyramid** that cuts each feature map
#   into 16 horizontal strips and pools each strip by mean + max: one 512-vector per body part, from
#   head to feet.
# * **F**, separate fully connected layers: **one 512 → 256 matrix per part**, 16 of them. Their output
#   is the embedding X, 256 × 16 numbers per sequence, and it is what retrieval compares.
# * **K**, the BNNeck: a BatchNorm1d over the flattened 256 · 16 embedding, then, for each part, cosine
#   logits against one weight vector per training identity (no bias). The logits O serve only the
#   cross-entropy loss during training; at test time K is dropped.
#
# The library builds it with OpenGait's parameter names, so real OpenGait checkpoints load. CASIA-B
# trains on 74 identities. We push our sample sequence, after the input transform, through an untrained
# GaitBase and record the shape after each part:

# %%
model = build_model("gaitbase", num_classes=74)
parts = gaitbase_parts(model, model_input[None])
display(Markdown("**Eq. 1, part by part** (one sequence of "
                 f"{model_input.shape[0]} frames; `gaitbase_parts`):\n\n" + parts_table(parts, parameters=False)))

# %% [markdown]
# Read the table from top to bottom. B keeps the frames apart: its first dimension is sequences ×
# frames, so its cost grows with the number of frames. The temporal max removes the frame axis, and
# everything after it runs once per sequence. The pyramid turns rows into 16 parts, and F maps each part
# to 256 numbers.
#
# ### ✏️ Exercise 1.3: the parameters of the BNNeck K
#
# Write `bnneck_parameters(num_classes, parts=16, embed_dim=256)`, the number of learnable parameters of
# K as described above, as an integer: a `BatchNorm1d` over the `embed_dim · parts` features of the
# flattened embedding (with its learnable affine weight and bias), and one bias-free classifier per
# part that maps `embed_dim` numbers to `num_classes` logits. The checker compares with the library's
# `SeparateBNNecks` for several numbers of classes, parts and embedding sizes.

# %%
# Exercise 1.3
def bnneck_parameters(num_classes, parts=16, embed_dim=256):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
from qgait_lab.lab import checks
checks.check_bnneck_parameters(bnneck_parameters)

# %% [markdown]
# The same table with each part's parameters. Most sit in the backbone, which also does almost all of
# the computation: it runs once per frame. K depends on the number of training identities: a model
# for Gait3D (3,000 identities) carries a much larger K than one for CASIA-B, but K is not part of
# the model that is deployed.

# %%
display(Markdown("**Parameters per part** (`gaitbase_parts`, `count_parameters`):\n\n" + parts_table(parts)))
print(f"GaitBase with {model.config['num_classes']} classes: {count_parameters(model):,} parameters; "
      f"without the BNNeck (what inference uses): {parameters_without_bnneck(model):,}")

# %% [markdown]
# ## 5 · The CASIA-B protocol
#
# Recognition is **retrieval**: the test subjects never appear in training. Each test sequence is
# embedded (X, 256 × 16), and a *probe* sequence is matched against a *gallery* of sequences with
# known identity. The probe counts as recognised (a **Rank-1** hit) when the nearest gallery sequence
# is the same person.
#
# * **Distance.** OpenGait compares two embeddings part by part: the Euclidean distance of each of the
#   16 part vectors, **averaged over the parts**, d(a, b) = (1/16) Σ_p ‖a[:, p] − b[:, p]‖. This is
#   not the Euclidean distance of the flattened 4096-vector (`pairwise_distance` in
#   `qgait_lab/evaluation/distances.py`):

# %%
a, b = torch.randn(2, 256, 16)
print(f"part-averaged distance {pairwise_distance(a[None], b[None])[0, 0]:.3f}; "
      f"distance of the flattened vectors {torch.dist(a.flatten(), b.flatten()).item():.3f}")

# %% [markdown]
# * **Gallery and probes.** The gallery holds each test subject's `nm-01` … `nm-04`. The probes are
#   split into three conditions: **NM** (`nm-05`, `nm-06`), **BG** (`bg-01`, `bg-02`) and
#   **CL** (`cl-01`, `cl-02`). The library names them `CASIA_B_GALLERY` and `CASIA_B_PROBES`.
# * **View pairs.** For every pair (probe view, gallery view), the probes seen from the probe view are
#   matched against the gallery sequences seen from the gallery view *only*, and that pair gets its own
#   Rank-1. Pairs with **identical views are dropped**: the protocol measures cross-view recognition,
#   the hard case.
# * **Averages.** For each probe view, average the Rank-1 of its pairs over the gallery views; then
#   average over the probe views. That is the condition's score. (With every view present each probe
#   view has the same number of pairs, but real data can lack a view.)

# %%
print("gallery:", CASIA_B_GALLERY)
print("probes: ", CASIA_B_PROBES)

# %% [markdown]
# ### ✏️ Exercise 1.4: CASIA-B Rank-1 with the identical-view rule
#
# Write `casia_b_rank1(dist, probe_labels, probe_views, gallery_labels, gallery_views)` for **one**
# condition. Its inputs:
#
# * `dist`: a numpy array `[n_probe, n_gallery]` of part-averaged distances (small = similar);
# * `probe_labels`, `probe_views`: numpy arrays of length `n_probe` (subject ids and views, strings or
#   integers);
# * `gallery_labels`, `gallery_views`: numpy arrays of length `n_gallery`.
#
# Return the condition's Rank-1 **in percent** (0 to 100), as a float: Rank-1 for each
# (probe view, gallery view) pair with different views, averaged over the gallery views for each probe
# view, then over the probe views. A gallery view without sequences gives no pair. The checker builds
# small test sets (a few subjects and views) whose embeddings depend strongly on the view, as real ones do.

# %%
# Exercise 1.4
def casia_b_rank1(dist, probe_labels, probe_views, gallery_labels, gallery_views):
    # YOUR CODE HERE
    raise NotImplementedError


# %%
from qgait_lab.lab import checks
checks.check_casia_b_rank1(casia_b_rank1)

# %% [markdown]
# The library's version is `casia_b_protocol(features, labels, types, views)` in
# `qgait_lab/evaluation/protocols.py`. It takes the embeddings of the whole test set, computes the distances
# itself and returns all three conditions, with the Rank-1 of every view pair in `pair_accuracy`.
# `exclude_identical_view=False` keeps the identical-view pairs, and `same_view=True` keeps only them.
#
# ## 6 · The GEI floor
#
# Before training any network, run the simplest matcher there is. Take each sequence's GEI (at
# 32 × 22, the resolution the laptop preset trains at) as its embedding, one "part" of 704 pixels, and
# match probes to the gallery by Euclidean nearest neighbour under the same protocol. This is
# `gei_baseline` in `qgait_lab/data/gei.py`; the demo's results table prints it as its first row.
#
# We run it on **SynthGait**, the project's generated dataset in CASIA-B's layout: articulated
# synthetic walkers with their own proportions and gait, a bag and a coat, segmentation noise, and
# the same pretreatment as real frames (`qgait_lab/data/synth.py`). It is generated on first use into
# `$QGAIT_DATA_DIR` (default `~/.cache/qgait-lab`), the very dataset the training notebooks use. The
# default, 50 subjects (20 for testing) in 5 views, takes a minute or two to generate on two cores,
# once. In fast mode (`QGAIT_FAST=1`) it is a tiny one, and its numbers mean nothing.

# %%
cfg = notebook_config("tiny-cpu")
data_root, partition_file = dataset_root(cfg)
test_set = GaitDataset(data_root, partition_file, "test")
print(f"{'fast mode: a tiny SynthGait, the numbers are meaningless' if fast_mode() else 'SynthGait'}: "
      f"{len(test_set)} test sequences of {test_set.num_classes} subjects, views {sorted(set(test_set.views))}; "
      f"chance level {100 / test_set.num_classes:.1f} %")
floor = gei_baseline(test_set)
display(Markdown("**The GEI floor** (`gei_baseline`):\n\n" + floor.to_markdown()))
cross_view_figure(floor.cross_view,
                  "GEI + nearest neighbour: Rank-1 of each view pair (grey: identical views, dropped)");

# %% [markdown]
# ### ✏️ Exercise 1.5: what the GEI floor tells you
#
# The same GEI matcher scores far higher when probe and gallery come from the same view (the second
# table) than across views (the first table and the figure). Which explanation is right? Answer with
# one letter, as a string.
#
# * **(a)** In SynthGait the same-view probes are copies of gallery sequences, so they match trivially.
# * **(b)** A GEI is a picture of the silhouette as one camera saw it. From the same view a person's GEI
#   resembles their own gallery GEIs. From another view, the silhouette's outline changes more than it
#   differs between two people, so pixel matching finds the view rather than the person. Matching
#   across views needs features that stay the same when the view changes, and that is what a network
#   has to learn.
# * **(c)** `gei_baseline` computes the GEIs of cross-view probes wrongly.
# * **(d)** The sequences are too short: with more frames per sequence the gap would close.

# %%
# Exercise 1.5
floor_reading = None  # YOUR ANSWER: "a", "b", "c" or "d"

# %%
from qgait_lab.lab import checks
checks.check_floor_reading(floor_reading)

# %% [markdown]
# **What the floor means for the rest of the course.** A GEI matches pixels, so it does well when the
# camera does not move, and cross-view recognition is where a learned model earns its place. The
# cross-view Rank-1 of the GEI floor is therefore the bar for every model of this course: a network
# that costs giga-BitOPs per sequence (notebook 08 counts them) and does not beat a parameter-free mean
# image has learned nothing worth its cost. This holds for a quantized network in particular. If
# 4-bit training pushes a model down to the floor, the quantization has erased what the network had
# learned beyond pixels. (In the default-mode figure, the best cross-view pairs are the views
# symmetric about 90°, 054/126 and 018/162: a walker that is nearly left-right symmetric casts nearly
# the same silhouette from both, and pixels match when the outlines match.)
#
# The models trained in notebooks 05 to 08 are compared against this bar (run
# without `QGAIT_FAST` for the real one; `qgait_lab/data/synth.py` documents how SynthGait was
# calibrated against it):

# %%
bar = ", ".join(f"{cond} {value:.1f} %" for cond, value in floor.cross_view.mean.items())
print(f"the cross-view Rank-1 a network has to beat on this SynthGait: {bar} "
      f"(chance {100 / test_set.num_classes:.1f} %)")

# %% [markdown]
# **Next:** notebook 02 quantizes: the quantizer of Eqs. 2–4, the straight-through estimator, and the
# three baselines of the paper (LSQ, DoReFa and PACT).
