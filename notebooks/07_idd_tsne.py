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
# # 05 · Distillation: vanilla KD against IDD, logit variance, and t-SNE
#
# *QGait lab, notebook 5 of 6. Paper: Sec. 3.3 (Eqs. 13–15), Fig. 4, Table 3b.*
#
# A 4-bit model clusters the samples of each identity as well as the full-precision model does, but the
# paper observes that the *distances between identities* change (Fig. 4), and that this, not the
# within-class scatter, costs accuracy. Vanilla knowledge distillation (KD) would make the student copy
# the teacher's class probabilities, and with them the teacher's logit scale, which quantization
# naturally shrinks. IDD instead transfers the teacher's *relative* distances to the samples of other
# identities. This notebook measures each claim on our own models.
#
# **Learning goals.** After this notebook you can
#
# 1. state KD (Eq. 13 and the KL after it) and IDD (Eqs. 14–15), and explain the argument that KD
#    forces σ(O_H) = σ(O_L);
# 2. measure the variance of the logits before and after quantization and compare it with the paper's
#    0.1033 → 0.05273;
# 3. compare a soft fine-tune without distillation, with KD and with IDD;
# 4. draw Fig. 4 (t-SNE of full precision, 4-bit without IDD, 4-bit with IDD) and quantify the change of
#    inter-class distances instead of only looking at it;
# 5. implement IDD's mask and loss.
#
# **How to work.** Run notebook 04 first with the same `NAME` if you can: its runs are reused here.
# Otherwise this notebook trains what it needs (about 10 minutes on a laptop CPU with `tiny-cpu`, well
# under a minute in fast mode).

# %%
from qgait_lab.training.runtime import fast_mode

# %% tags=["parameters"]
PRESET = "tiny-cpu"        # see notebook 04 for the paper presets
NAME = "lab"               # runs/<NAME>/: the same name as notebook 04 reuses its stages
BITS = 4
DEVICE = "auto"
OVERRIDES = []             # --set style, e.g. ["data.root=/data/CASIA-B-pkl"]
TSNE_IDENTITIES = 12       # identities shown in the t-SNE panels
FAST = fast_mode()         # QGAIT_FAST=1 (or CI): smoke-test budgets; numbers are then meaningless

# %%
import numpy as np
import torch
from IPython.display import Markdown, display

from qgait_lab import checks
from qgait_lab.data.transforms import build_transform
from qgait_lab.embedding_analysis import interclass_distance_change, tsne_2d
from qgait_lab.evaluation import extract_features
from qgait_lab.losses import IDDLoss
from qgait_lab.results import markdown_table, row_from
from qgait_lab.training.config import load_config
from qgait_lab.training.pipeline import Experiment
from qgait_lab.viz import histogram_figure, interclass_distance_figure, tsne_figure
from qgait_lab.widgets import setup_matplotlib

setup_matplotlib()
# In fast mode the lab notebooks share one smaller SynthGait, so that all six run in a few minutes.
LAB_FAST_OVERRIDES = ["data.synth={n_ids: 7, n_train: 4, frames: 6, views: ['018', '090']}", "data.frames=4"]
overrides = list(LAB_FAST_OVERRIDES if FAST and PRESET == "tiny-cpu" else [])
overrides += [f"name={NAME}", f"quant.bits={BITS}", f"runtime.device={DEVICE}"] + list(OVERRIDES)
cfg = load_config(PRESET, overrides)
print(f"preset {PRESET}{' (fast mode)' if FAST else ''}; runs under runs/{cfg.name}; "
      f"stage 2: {cfg.stage2.iterations} iterations, k {cfg.stage2.k.describe()}")

# %% [markdown]
# ## 1. KD and IDD in one page
#
# **Vanilla KD.** With logits O and temperature 𝒯, $q(O)^{(i)} = \exp(O^{(i)}/𝒯)/\sum_m \exp(O^{(m)}/𝒯)$
# (Eq. 13) and the loss is $\mathrm{KL}(q(O_H)\,\|\,q(O_L))$. At its minimum the two distributions agree, so
# for every pair of classes $O_H^{(i)} - O_H^{(j)} = O_L^{(i)} - O_L^{(j)}$: the logits agree up to a
# constant per sample, and in particular **σ(O_H) = σ(O_L)**. Quantization shrinks the spread of the
# logits; a KD student is pushed to undo exactly that, spending capacity on numerical differences that
# quantization necessarily introduces.
#
# **IDD.** For an anchor r in a batch, Eq. 14 turns the distances to the samples s of *other* identities
# into a distribution:
#
# $$q^*(\mathcal X^{(r)}, \mathcal X^{(s)}) = \frac{\exp(-d(\mathcal X^{(r)}, \mathcal X^{(s)}))}{\sum_u \exp(-d(\mathcal X^{(r)}, \mathcal X^{(u)}))},
# \qquad Y_r \ne Y_s,\ Y_r \ne Y_u, \tag{14}$$
#
# and Eq. 15 is the KL divergence from the teacher's to the student's $q^*$. Same-identity pairs are
# excluded: IDD does not care how tight a cluster is, only how the clusters sit relative to each other.
# The paper leaves three choices open; `qgait_lab.losses.IDDLoss` makes them explicit: distances per
# horizontal part (as OpenGait measures them), a temperature τ, and a normalisation of each model's
# distances by their mean, so that the loss ignores the overall scale of either embedding.
#
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
    variant = load_config(PRESET, overrides + [f"stage2.distill.kind={kind}"])
    results[label] = Experiment(variant).run("qgait")

rows = [row_from(label, "32" if r.method == "fp" else f"w{r.bits}/a{r.bits}", r.metrics, r.bitops)
        for label, r in results.items()]
display(Markdown(markdown_table(rows)))

# %% [markdown]
# ## 3. The variance of the logits
#
# The paper reports that "the variance of logits decreases from 0.1033 to 0.05273 after quantization"
# without saying exactly over what. GaitBase's logits are cosine similarities between the BNNeck
# features and the class weights, in [−1, 1]; we take the variance over every logit of every test
# sequence, class and part, computed from the models' own BNNecks on the test embeddings.

# %%
transform = build_transform([], 0.0, cfg.data.cut_width, cfg.data.downsample, train=False)
test = exp.test_set
labels = np.asarray(test.labels)
features = {name: extract_features(r.model, test, transform, exp.device,
                                   batch_sequences=cfg.data.eval_batch_sequences)
            for name, r in results.items()}


@torch.no_grad()
def logits_of(model, embeddings):
    model.eval()
    return model.BNNecks(embeddings.to(exp.device))[1].float().cpu()


logits = {name: logits_of(r.model, features[name]) for name, r in results.items()}
var_fp = float(logits["full precision"].var())
lines = ["| model | logit variance | ratio to full precision |", "|---|---:|---:|",
         "| paper: full precision → quantized | 0.1033 → 0.05273 | 0.510 |"]
for name, value in logits.items():
    lines.append(f"| {name} | {float(value.var()):.5f} | {float(value.var()) / var_fp:.3f} |")
display(Markdown("\n".join(lines)))
histogram_figure({name: v.numpy() for name, v in logits.items()}, xlabel="cosine logit",
                 title="logits on the test set (all sequences, classes, parts)");

# %% [markdown]
# Compare the ratios with the paper's 0.51 and with the KD argument: a KD student should have a larger
# logit variance than the fine-tune without distillation (closer to the teacher's), an IDD student need
# not. Whether the *absolute* numbers resemble the paper's depends on the number of classes and on how
# far training has gone; the ratio is the comparable quantity. In fast mode the models are barely
# trained and the numbers mean nothing.
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
# **Why normalise the distances?** Full-precision and 4-bit embeddings differ in overall scale. With raw
# distances (Eq. 14 read literally), IDD would penalise the student for its scale rather than for its
# geometry. Measured on our embeddings: scale the student's embeddings by ½ and compare the two variants
# of the loss.

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
# ### ✏️ Exercise 5.1: IDD's mask
#
# Eq. 14 keeps only the pairs (r, s) whose labels differ (which also removes r = s). Write
# `idd_mask(labels)` returning a boolean [n, n] tensor.

# %%
def idd_mask(labels: torch.Tensor) -> torch.Tensor:
    """mask[r, s] is True when labels[r] != labels[s]."""
    # YOUR CODE HERE
    raise NotImplementedError


checks.check_idd_mask(idd_mask)

# %% [markdown]
# ### ✏️ Exercise 5.2: the IDD loss from distances
#
# Given one part's distance matrices d_student and d_teacher ([n, n]), labels and a temperature τ,
# compute Eqs. 14–15 with raw distances: for each anchor, the masked softmax of −d/τ over the other
# identities for both models, the KL divergence from teacher to student, and the mean over anchors. Set the
# masked entries to −inf *before* the softmax and keep the teacher out of the gradient. The checker
# compares with `qgait_lab.losses.idd_loss_from_distances(..., normalize="temperature")` and makes sure
# that changing a same-label distance changes nothing.

# %%
def idd_from_distances(d_student: torch.Tensor, d_teacher: torch.Tensor, labels: torch.Tensor,
                       tau: float = 1.0) -> torch.Tensor:
    """Eqs. 14-15 on [n, n] distance matrices (mean over anchors)."""
    # YOUR CODE HERE
    raise NotImplementedError


checks.check_idd_loss(idd_from_distances)

# %% [markdown]
# ## Summary
#
# * KD's optimum ties the student's logit spread to the teacher's; quantization shrinks that spread, so
#   KD fights quantization itself. Measure the variances above before you believe it.
# * IDD transfers the teacher's relative distances to other identities, per part and (here) independent of
#   the embeddings' scale.
# * "The inter-class distances change" is a measurable statement: correlation and relative change of
#   the centroid distances against full precision.
#
# **Next:** notebook 06 counts BitOPs and puts accuracy per BitOP next to the paper's Fig. 1a.
