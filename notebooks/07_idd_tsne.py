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
# # 07 · Distillation: vanilla KD against IDD, logit variance, and t-SNE
#
# *QGait lab, notebook 7 of 9. Paper: Sec. 3.3 (Eqs. 13–15), Fig. 4, Table 3b.*
#
# A 4-bit model clusters the samples of each identity as well as the full-precision model does, but the
# paper observes that the *distances between identities* change (Fig. 4), and that this, not the
# within-class scatter, costs accuracy. Vanilla knowledge distillation (KD) would make the student copy
# the teacher's class probabilities, and with them the teacher's logit scale, which quantization
# naturally shrinks. IDD instead transfers the teacher's *relative* distances to the samples of other
# identities. This notebook measures each claim on our own models. (The paper's revision, arXiv v2,
# calls IDD "Inter-class Distance-guided Calibration", IDC; the library accepts `idc` for `idd`.)
#
# **Learning goals.** After this notebook you can
#
# 1. state KD (Eq. 13 and the KL after it) and IDD (Eqs. 14–15), and explain the paper's argument about
#    KD and the spread of the logits (Exercise 7.3);
# 2. implement IDD's mask and loss (Exercises 7.1 and 7.2);
# 3. measure the variance of the logits before and after quantization and compare it with the paper's
#    0.1033 → 0.05273;
# 4. compare a soft fine-tune without distillation, with KD and with IDD;
# 5. draw Fig. 4 (t-SNE of full precision, 4-bit without IDD, 4-bit with IDD) and quantify the change of
#    inter-class distances instead of only looking at it;
# 6. say why our IDD normalises the distances, and check it (Exercise 7.4).
#
# **How to work.** Run all cells. Exercises (✏️) are checked by `qgait_lab.lab.checks`; `checks.hint("7.1")`
# gives a first hint, `checks.hint("7.1", 2)` the next. Run notebook 06 first with the same `NAME` if
# you can: its runs are reused here. Otherwise this notebook trains what it needs, on the lab budget by
# default (a few minutes on two CPU cores; `notebooks/README.md` has the measured times).

# %% tags=["parameters"]
PRESET = "tiny-cpu"        # see notebook 06 for the paper presets
NAME = "lab"               # runs/<NAME>/: the same name as notebook 06 reuses its stages
BUDGET = None  # "fast" | "lab" | "full"; None: fast under QGAIT_FAST=1, else the preset's lab budget
MODEL = "gaitbase"         # gaitbase | gaitset | gaitpart (KD needs logits: GaitBase's)
BITS = 4
DEVICE = "auto"
OVERRIDES = []             # --set style, e.g. ["quant.per_channel=true"]
TSNE_IDENTITIES = 12       # identities shown in the t-SNE panels

# %%
import numpy as np
import torch
from IPython.display import Markdown, display

from qgait_lab.lab import checks
from qgait_lab.lab.course.budget import default_budget, notebook_config
from qgait_lab.evaluation.embedding_analysis import interclass_distance_change, tsne_2d
from qgait_lab.evaluation import extract_features
from qgait_lab.losses import IDDLoss
from qgait_lab.experiments.results import markdown_table
from qgait_lab.experiments.pipeline import Experiment, eval_transform
from qgait_lab.experiments.figures import tsne_figure
from qgait_lab.lab.figures import histogram_figure, interclass_distance_figure
from qgait_lab.lab.widgets import setup_matplotlib

setup_matplotlib()
budget = BUDGET or default_budget(PRESET)
overrides = [f"name={NAME}", f"model.name={MODEL}", f"quant.bits={BITS}",
             f"runtime.device={DEVICE}"] + list(OVERRIDES)
cfg = notebook_config(PRESET, budget, overrides)
print(f"preset {PRESET}, budget {budget!r}; runs under runs/{cfg.name}; "
      f"stage 2: {cfg.stage2.iterations} iterations, k {cfg.stage2.k.describe()}")

# %% [markdown]
# ## 1. KD and IDD in one page
#
# **Vanilla KD.** With logits O and temperature 𝒯, the class probabilities are
#
# $$q(O)^{(i)} = \frac{\exp(O^{(i)}/𝒯)}{\sum_m \exp(O^{(m)}/𝒯)}, \tag{13}$$
#
# and the loss is $\mathrm{KL}(q(O_H)\,\|\,q(O_L)) = \sum_i q(O_H)^{(i)} \log\bigl(q(O_H)^{(i)}/q(O_L)^{(i)}\bigr)$,
# for the high-bit teacher $O_H$ and the low-bit student $O_L$. The paper argues that a well-trained KD
# student reaches $q(O_H) = q(O_L)$ for every sample, and that this forces **σ(O_H) = σ(O_L)**: the
# student's logits must spread exactly as much as the teacher's (Exercise 7.3, in Section 3, asks why).
#
# **IDD.** For an anchor r in a batch, Eq. 14 turns the distances to the samples s of *other* identities
# into a distribution:
#
# $$q^*(\mathcal X^{(r)}, \mathcal X^{(s)}) = \frac{\exp(-d(\mathcal X^{(r)}, \mathcal X^{(s)}))}{\sum_u \exp(-d(\mathcal X^{(r)}, \mathcal X^{(u)}))},
# \qquad Y_r \ne Y_s,\ Y_r \ne Y_u, \tag{14}$$
#
# and Eq. 15 is the KL divergence from the teacher's to the student's $q^*$, averaged over the anchors.
# Same-identity pairs are excluded: IDD does not care how tight a cluster is, only how the clusters sit
# relative to each other. The paper leaves three choices open; `qgait_lab.losses.IDDLoss` makes them
# explicit: distances per horizontal part (as OpenGait measures them), a temperature τ, and a
# normalisation of each model's distances (Exercise 7.4 asks why).
#
# ### ✏️ Exercise 7.1: IDD's mask
#
# Eq. 14 keeps only the pairs (r, s) whose labels differ (which also removes r = s). Write
# `idd_mask(labels)`: `labels` is an integer tensor of shape [n] (any integer dtype, labels in any order);
# return a **boolean** tensor of shape [n, n] whose entry (r, s) is True when the pair enters Eq. 14.
# Do not change `labels`.

# %%
# Exercise 7.1
def idd_mask(labels: torch.Tensor) -> torch.Tensor:
    """mask[r, s] is True when the pair (r, s) enters Eq. 14."""
    # YOUR CODE HERE
    raise NotImplementedError

# %%
from qgait_lab.lab import checks
checks.check_idd_mask(idd_mask)

# %% [markdown]
# ### ✏️ Exercise 7.2: the IDD loss from distances
#
# Write `idd_from_distances(d_student, d_teacher, labels, tau)`: one part's distance matrices
# `d_student` and `d_teacher` (float tensors of shape [n, n], entry (r, s) = d(𝒳⁽ʳ⁾, 𝒳⁽ˢ⁾)), the [n]
# integer `labels` and a temperature `tau` > 0. Compute Eqs. 14–15 with the **raw** distances divided by
# τ: for each anchor r, $q(r, \cdot)$ over the samples of other identities for both models, the KL
# divergence from the teacher's $q$ to the student's, and the mean over the anchors. Return a 0-d torch
# tensor that back-propagates into `d_student` and not into `d_teacher` (the teacher is fixed). You may
# call your `idd_mask` and `torch.nn.functional`. The checker compares with
# `qgait_lab.losses.idd_loss_from_distances(..., normalize="temperature")` and tests the properties
# Eqs. 14–15 imply (for example, that changing a same-label distance changes nothing).

# %%
# Exercise 7.2
def idd_from_distances(d_student: torch.Tensor, d_teacher: torch.Tensor, labels: torch.Tensor,
                       tau: float = 1.0) -> torch.Tensor:
    """Eqs. 14-15 on [n, n] distance matrices (mean over anchors)."""
    # YOUR CODE HERE
    raise NotImplementedError

# %%
from qgait_lab.lab import checks
checks.check_idd_loss(idd_from_distances)

# %% [markdown]
# ## 2. The models
#
# Full precision; LSQ-4 (STE only, the baseline); and three QGait-4 variants that share stage 1 and
# differ only in stage 2's distillation: none (soft fine-tune only), vanilla KD, IDD. (The paper's
# Table 3b adds KD and IDD to the LSQ training itself; `qgait-lab reproduce --what table3b` runs that
# variant.)

# %%
exp = Experiment(cfg)
results = {"full precision": exp.run("fp"), f"LSQ-{BITS} (STE)": exp.run("lsq")}
for kind, label in (("none", f"QGait-{BITS}, FT only"), ("kd", f"QGait-{BITS}, FT + KD"),
                    ("idd", f"QGait-{BITS}, FT + IDD")):
    variant = notebook_config(PRESET, budget, overrides + [f"stage2.distill.kind={kind}"])
    results[label] = Experiment(variant).run("qgait")

rows = [r.row(label) for label, r in results.items()]
display(Markdown(markdown_table(rows)))

# %% [markdown]
# ## 3. The variance of the logits
#
# Section 1 stated the paper's claim: at KD's optimum the student's logits spread exactly as much as the
# teacher's. Before measuring the spreads, work out why.
#
# ### ✏️ Exercise 7.3: why KD ties the logit spread
#
# Which statement explains why $q(O_H) = q(O_L)$ forces $\sigma(O_H) = \sigma(O_L)$? Assign the letter
# (a string: `"a"`, `"b"`, `"c"` or `"d"`) to `kd_spread_choice`.
#
# * **(a)** The temperature 𝒯 divides both models' logits alike, so equal probabilities need equal
#   logits, and equal logits have equal spreads.
# * **(b)** Equal probabilities give equal ratios $q^{(i)}/q^{(j)}$ for every pair of classes, so every
#   logit difference $O^{(i)} - O^{(j)}$ agrees; the logits then differ by one constant per sample, which
#   leaves the spread unchanged.
# * **(c)** The KL divergence is symmetric in its two arguments, so at its minimum the teacher's and the
#   student's logit variances can swap roles and must therefore be equal.
# * **(d)** Quantization shrinks the student's logits, and at KD's optimum the temperature 𝒯 rescales
#   them until their spread matches the teacher's.

# %%
# Exercise 7.3
kd_spread_choice = None  # YOUR ANSWER: "a", "b", "c" or "d"

# %%
from qgait_lab.lab import checks
checks.check_kd_spread_choice(kd_spread_choice)

# %% [markdown]
# **The argument.** Dividing the $i$-th probability by the $j$-th cancels the sums of Eq. 13:
# $\exp(O_H^{(i)}/𝒯) / \exp(O_H^{(j)}/𝒯) = \exp(O_L^{(i)}/𝒯) / \exp(O_L^{(j)}/𝒯)$, so every logit difference
# agrees, and the two logit vectors differ by one constant per sample, which changes no spread. Quantization
# shrinks the spread of the logits; a KD student is pushed to undo exactly that, spending capacity on
# numerical differences that quantization necessarily introduces.
#
# **Measuring it.** The paper reports that "the variance of logits decreases from 0.1033 to 0.05273 after quantization"
# without saying exactly over what. GaitBase's logits are cosine similarities between the BNNeck
# features and the class weights, in [−1, 1]; we take the variance over every logit of every test
# sequence, class and part, computed from the models' own BNNecks on the test embeddings. Each variance
# is computed once (the population variance in float64) and printed with four significant digits, in
# the table and in the histogram's legend alike.

# %%
transform = eval_transform(cfg)
test = exp.test_set
labels = np.asarray(test.labels)
features = {name: extract_features(r.model, test, transform, exp.device,
                                   batch_frames=cfg.data.eval_batch_frames)
            for name, r in results.items()}


@torch.no_grad()
def logits_of(model, embeddings):
    model.eval()
    return model.BNNecks(embeddings.to(exp.device))[1].double().cpu().numpy().ravel()


logits = {name: logits_of(r.model, features[name]) for name, r in results.items()}
variance = {name: float(values.var()) for name, values in logits.items()}   # the legend's np.var, too
lines = ["| model | logit variance | ratio to full precision |", "|---|---:|---:|",
         f"| paper: full precision → quantized | 0.1033 → 0.05273 | {0.05273 / 0.1033:.3f} |"]
for name, value in variance.items():
    lines.append(f"| {name} | {value:.4g} | {value / variance['full precision']:.3f} |")
display(Markdown("\n".join(lines)))
histogram_figure(logits, xlabel="cosine logit", title="logits on the test set (all sequences, classes, parts)");

# %% [markdown]
# Read the ratios against the paper's and against the argument of Exercise 7.3: a KD student should keep a
# larger logit variance than the fine-tune without distillation (closer to the teacher's), an IDD student
# need not. Whether the *absolute* numbers resemble the paper's depends on the number of classes and on
# how far training has gone; the ratio is the comparable quantity. On the fast budget the models are
# barely trained and the numbers mean nothing.
#
# ## 4. Fig. 4: t-SNE, and the inter-class distances in numbers
#
# t-SNE of the test embeddings (L2-normalised, flattened over parts) for full precision, 4-bit without IDD
# and 4-bit with IDD, coloured by identity. A t-SNE picture is suggestive, not evidence: it preserves
# neighbourhoods, not distances. So we also measure, for each model, the distances between identity
# centroids and compare them with full precision's: the correlation (1 = the same geometry up to scale)
# and the mean relative change after matching the overall scale.

# %%
keep = np.isin(labels, sorted(set(labels.tolist()))[:TSNE_IDENTITIES])
shown = {"full precision": "full precision", f"LSQ-{BITS} (STE)": f"{BITS}-bit without IDD",
         f"QGait-{BITS}, FT + IDD": f"{BITS}-bit with IDD"}
panels = {title: tsne_2d(features[name][keep], seed=cfg.runtime.seed) for name, title in shown.items()}
tsne_figure(panels, labels[keep], f"t-SNE of test embeddings ({int(keep.sum())} sequences, "
                                  f"{len(set(labels[keep].tolist()))} identities)");

# %%
reference = features["full precision"]
lines = ["| model | correlation of inter-class distances with FP | mean relative change |", "|---|---:|---:|"]
changes = {}
for name in results:
    if name == "full precision":
        continue
    changes[name] = interclass_distance_change(reference, features[name], labels)
    lines.append(f"| {name} | {changes[name].correlation:.4f} | {changes[name].relative_change:.4f} |")
display(Markdown("\n".join(lines)))
interclass_distance_figure(reference, {title: features[name] for name, title in shown.items()
                                       if name != "full precision"}, labels);

# %% [markdown]
# Each dot is one pair of test identities. On the diagonal, the quantized model keeps full precision's
# relative inter-class distance; off it, the pair moved closer or further apart. The paper's claim is
# that the 4-bit model without IDD scatters more than the one with IDD; the correlation and the mean
# relative change above say whether that holds here, and by how much.
#
# ## 5. Why normalise the distances?
#
# `IDDLoss(normalize="mean")`, the library's default, divides each model's distance matrix (per part) by
# its own mean distance over different-label pairs before Eq. 14; `normalize="temperature"` uses the raw
# distances divided by τ, as Eq. 14 reads (and as your Exercise 7.2 does).
#
# ### ✏️ Exercise 7.4: why IDD normalises its distances
#
# Why does the library normalise by default? Assign the letter (a string) to `idd_normalize_choice`.
#
# * **(a)** Without normalisation the softmax of Eq. 14 would not sum to 1 over the other identities,
#   so $q^*$ would not be a distribution.
# * **(b)** Without normalisation the same-label pairs, whose distances are the smallest, would dominate
#   the softmax and leak into the loss.
# * **(c)** Raw distances carry each model's overall embedding scale, which quantization changes: IDD
#   would then punish the student's scale instead of the relative geometry between identities.
# * **(d)** The KL divergence of Eq. 15 is defined only for distances between 0 and 1, so they must be
#   rescaled into that range.

# %%
# Exercise 7.4
idd_normalize_choice = None  # YOUR ANSWER: "a", "b", "c" or "d"

# %%
from qgait_lab.lab import checks
checks.check_idd_normalize_choice(idd_normalize_choice)

# %% [markdown]
# **Measured on our embeddings.** Scale the student's embeddings by ½ and compare the two variants of the
# loss: the mean-normalised one does not move, the raw one does, although halving every embedding
# changes no ranking and no nearest neighbour.

# %%
student, teacher = features[f"LSQ-{BITS} (STE)"], features["full precision"]
label_ids = torch.as_tensor(np.unique(labels, return_inverse=True)[1])
for normalize in ("mean", "temperature"):
    loss = IDDLoss(tau=cfg.stage2.distill.idd_tau, normalize=normalize)
    a = float(loss(student, teacher, label_ids)[0])
    b = float(loss(0.5 * student, teacher, label_ids)[0])
    print(f"normalize={normalize:11s}: IDD {a:.5f}; with the student scaled by 1/2: {b:.5f}")
    if normalize == "mean":
        assert abs(a - b) <= 1e-4 * max(1.0, abs(a)), "mean-normalised IDD must ignore the student's scale"

# %% [markdown]
# ## Summary
#
# * KD's optimum ties the student's logit spread to the teacher's; quantization shrinks that spread, so
#   KD fights quantization itself. Measure the variances above before you believe it.
# * IDD transfers the teacher's relative distances to other identities: a masked softmax per anchor over
#   the other identities (Eq. 14) and a KL divergence from teacher to student (Eq. 15), per part and
#   (here) independent of the embeddings' scale.
# * "The inter-class distances change" is a measurable statement: correlation and relative change of
#   the centroid distances against full precision.
#
# **Next:** notebook 08 counts BitOPs and puts accuracy per BitOP next to the paper's Fig. 1a.
