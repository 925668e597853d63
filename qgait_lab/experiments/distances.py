"""The number behind the paper's Fig. 4: how far quantization moves the inter-class distances.

The paper argues from t-SNE pictures that a 4-bit model keeps its clusters but
moves the distances *between* identities, and that IDD keeps them closer to
full precision's.  :func:`~qgait_lab.evaluation.embedding_analysis.interclass_distance_change`
measures that on every test sequence: the correlation of the identity-centroid
distances with the full-precision model's, and their mean relative change.
Here it is computed for trained results, so that the demo and ``reproduce
--what table3b`` can report it per seed and pair QGait with LSQ.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..evaluation import extract_features
from ..evaluation.embedding_analysis import DistanceChange, interclass_distance_change
from .pipeline import Experiment, MethodResult, eval_transform

#: Table-row keys of the two numbers (``results.TABLE_COLUMNS`` shows them).
CORRELATION, RELATIVE_CHANGE = "distance_corr", "distance_change"


def embed_test_set(exp: Experiment, models: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    """``{name: [n, c, p] embeddings}`` of every test sequence, in the test set's order."""
    transform = eval_transform(exp.cfg)
    return {name: extract_features(model, exp.test_set, transform, exp.device,
                                   batch_frames=exp.cfg.data.eval_batch_frames)
            for name, model in models.items()}


def distance_changes(reference: torch.Tensor, features: dict[str, torch.Tensor],
                     labels) -> dict[str, DistanceChange]:
    """Each model's :class:`DistanceChange` against the ``reference`` (float) model's embeddings."""
    labels = np.asarray(labels)
    return {name: interclass_distance_change(reference, f, labels) for name, f in features.items()}


def result_distance_changes(exp: Experiment, reference: MethodResult,
                            results: dict[str, MethodResult]) -> dict[str, DistanceChange]:
    """``{name: DistanceChange}`` of each of ``results`` against ``reference`` on every test sequence."""
    ref = embed_test_set(exp, {"": reference.model})[""]
    feats = embed_test_set(exp, {name: r.model for name, r in results.items()})
    return distance_changes(ref, feats, exp.test_set.labels)


def with_distance_change(row: dict, change: DistanceChange) -> dict:
    """``row`` with the two numbers added under :data:`CORRELATION` and :data:`RELATIVE_CHANGE`."""
    return {**row, CORRELATION: change.correlation, RELATIVE_CHANGE: change.relative_change}


def distance_table(changes: dict[str, DistanceChange]) -> str:
    lines = ["| model | corr. of inter-class distances with FP | mean relative change |", "|---|---:|---:|"]
    lines += [f"| {name} | {c.correlation:.3f} | {c.relative_change:.3f} |" for name, c in changes.items()]
    return "\n".join(lines)
