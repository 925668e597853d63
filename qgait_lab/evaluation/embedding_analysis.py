"""How quantization moves embeddings: t-SNE maps and inter-class distance changes (paper Fig. 4).

The paper shows by t-SNE that 4-bit embeddings keep their clusters but change
the distances *between* classes, and that IDD limits that change.  Besides the
picture, :func:`interclass_distance_change` puts a number on it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def flatten(features: torch.Tensor | np.ndarray) -> np.ndarray:
    """``[n, c, p]`` part embeddings as ``[n, c*p]`` float64 rows."""
    x = features.detach().cpu().numpy() if torch.is_tensor(features) else np.asarray(features)
    return x.reshape(len(x), -1).astype(np.float64)


def tsne_2d(features: torch.Tensor | np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """A seeded 2-D t-SNE map of the flattened embeddings (scikit-learn)."""
    from sklearn.manifold import TSNE

    x = flatten(features)
    x = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)
    perplexity = min(perplexity, max(2.0, (len(x) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def class_centroid_distances(features, labels) -> tuple[np.ndarray, list]:
    """Euclidean distances between class centroids of L2-normalised embeddings."""
    x = flatten(features)
    x = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)
    labels = np.asarray(labels)
    classes = sorted(set(labels.tolist()))
    centroids = np.stack([x[labels == c].mean(0) for c in classes])
    diff = centroids[:, None, :] - centroids[None, :, :]
    return np.sqrt((diff ** 2).sum(-1)), classes


@dataclass
class DistanceChange:
    """How the inter-class geometry of a model differs from a reference model's.

    ``correlation``: Pearson correlation of the two sets of inter-class centroid
    distances (1 = same geometry up to scale); ``relative_change``: mean
    ``|d_model - d_ref| / d_ref`` after matching the overall scale.
    """

    correlation: float
    relative_change: float


def interclass_distance_change(reference, model, labels) -> DistanceChange:
    d_ref, _ = class_centroid_distances(reference, labels)
    d_mod, _ = class_centroid_distances(model, labels)
    iu = np.triu_indices_from(d_ref, k=1)
    a, b = d_ref[iu], d_mod[iu]
    b_scaled = b * (a.mean() / max(b.mean(), 1e-12))
    corr = float(np.corrcoef(a, b)[0, 1]) if len(a) > 1 else float("nan")
    return DistanceChange(corr, float(np.mean(np.abs(b_scaled - a) / np.maximum(a, 1e-12))))
