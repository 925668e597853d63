"""Reference solutions of notebook 01 (gait recognition); one name per exercise, as the notebook's stubs."""
import numpy as np


# Exercise 1.1
def cut_sides(frames):
    width = frames.shape[-1]
    cut = int(width / 64) * 10
    return frames[..., cut:width - cut]


# Exercise 1.2
def gei_of(frames):
    return (cut_sides(frames).astype(np.float64) / 255.0).mean(axis=0)


# Exercise 1.3
def bnneck_parameters(num_classes, parts=16, embed_dim=256):
    batchnorm = 2 * parts * embed_dim            # weight and bias per feature of the flattened embedding
    classifiers = parts * embed_dim * num_classes
    return batchnorm + classifiers


# Exercise 1.4
def casia_b_rank1(dist, probe_labels, probe_views, gallery_labels, gallery_views):
    per_probe_view = []
    for pv in np.unique(probe_views):
        rows = np.flatnonzero(probe_views == pv)
        scores = []
        for gv in np.unique(gallery_views):
            if gv == pv:
                continue
            cols = np.flatnonzero(gallery_views == gv)
            nearest = cols[np.argmin(dist[np.ix_(rows, cols)], axis=1)]
            scores.append(100.0 * np.mean(gallery_labels[nearest] == probe_labels[rows]))
        if scores:
            per_probe_view.append(np.mean(scores))
    return float(np.mean(per_probe_view))


# Exercise 1.5
floor_reading = "b"
