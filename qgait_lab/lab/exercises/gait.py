"""Exercises of notebook 01 (gait recognition): the width cut, the GEI, the BNNeck's parameters,
CASIA-B's Rank-1, and what the GEI floor says.

Every checker compares the student's answer with the library (the transform of
:mod:`qgait_lab.data.transforms`, the GEI of :mod:`qgait_lab.data.gei`, the
modules of :mod:`qgait_lab.models.gaitbase`, the protocol of
:mod:`qgait_lab.evaluation`) on cases built here, and names the case where the
answer goes wrong, never the expected value.  The ``*_cases`` and ``verify_*``
functions are shared with the hidden checks of ``instructor/hidden/nb01.py``,
which run them on other cases.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from . import core
from .core import Wrong, exercise

NOTEBOOK = "01_gait_recognition"


# ---------------------------------------------------------------------------
# Exercise 1.1: the width cut
# ---------------------------------------------------------------------------
def column_coded_frames(frames: int, height: int, width: int) -> np.ndarray:
    """``uint8 [frames, height, width]`` whose pixel value tells its column (and, from 256 on, repeats)."""
    cols = (np.arange(width) % 251 + 1).astype(np.uint8)       # 1..251: no column is 0, so a zeroed one shows
    out = np.broadcast_to(cols, (frames, height, width)).copy()
    out[:, ::7, :] = 0                                          # some empty rows, as in a silhouette
    return out


CUT_CASES: tuple[tuple[int, int, int], ...] = ((3, 64, 64), (2, 64, 44), (2, 64, 88), (2, 64, 128),
                                               (2, 64, 100), (2, 64, 192))
"""(frames, height, width) of the frames the visible checker of Exercise 1.1 cuts."""


def verify_cut(cut_sides: Callable, cases: Sequence[tuple[int, int, int]]) -> str:
    """Compare ``cut_sides(frames)`` with the library's cut (``SilCutScale`` without the scaling)."""
    from qgait_lab.data.transforms import SilCutScale

    for t, h, w in cases:
        frames = column_coded_frames(t, h, w)
        want = SilCutScale(divisor=1.0)(torch.as_tensor(frames)).numpy()
        got = core.as_array(core.call(cut_sides, frames.copy()), "cut_sides")
        where = f"stored frames of shape {(t, h, w)}"
        if got.ndim != 3 or got.shape[:2] != (t, h):
            raise Wrong(f"for {where} your output has shape {tuple(got.shape)}: keep every frame and every "
                        "row, and cut columns only")
        kept = got.shape[2]
        if kept != want.shape[2]:
            side = "too many" if kept < want.shape[2] else "too few"
            raise Wrong(f"for {where} you cut {w - kept} columns in all, {side}: the number cut from each "
                        f"side follows from the stored width {w} (OpenGait's rule)")
        if got.max() <= 1.0 < want.max():
            raise Wrong(f"for {where} your values are scaled (largest {core.fmt(got.max())}): return the stored "
                        "values; dividing by 255 is the transform's second step")
        row = got[0, 1]                     # a non-empty row: each value names its stored column
        first = int(np.flatnonzero(frames[0, 1] == row[0])[0]) if (frames[0, 1] == row[0]).any() else -1
        if first < 0 or not np.array_equal(row, frames[0, 1, first:first + kept]):
            raise Wrong(f"for {where} the columns you keep are not a block of neighbouring stored columns "
                        "in their order")
        if not np.array_equal(got, want):
            left, right = first, w - kept - first
            if left != right:
                raise Wrong(f"for {where} you cut {left} columns on the left and {right} on the right: cut "
                            "the same number from each side")
            t0, r0, c0 = (int(i[0]) for i in np.nonzero(got != want))
            raise Wrong(f"for {where} your output differs from the stored pixel at frame {t0}, row {r0}, "
                        f"column {c0} of your output (your value {core.fmt(got[t0, r0, c0])})")
    widths = ", ".join(str(w) for _, _, w in cases)
    return f"right for stored widths {widths}"


@exercise("1.1", NOTEBOOK, "the width cut", answer="cut_sides", hints=(
    "Work from frames.shape[-1], the stored width, never from the number 64 itself.",
    "Try your function on frames stored 44 wide, where nothing is cut: what does a slice that ends at -0 "
    "return in Python?",
    "Slice the last axis only, with the same count at both ends, and leave the values unchanged.",
))
def check_cut_sides(cut_sides: Callable) -> str:
    return verify_cut(cut_sides, CUT_CASES)


# ---------------------------------------------------------------------------
# Exercise 1.2: the gait energy image
# ---------------------------------------------------------------------------
def walker_frames(frames: int, width: int = 64, seed: int = 0, height: int = 64) -> np.ndarray:
    """A crude walking silhouette, ``uint8 [frames, height, width]`` in {0, 255}: a torso and two swinging legs."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    centre = width / 2 + rng.uniform(-2, 2)
    out = np.zeros((frames, height, width), dtype=np.uint8)
    for t in range(frames):
        swing = 0.35 * np.sin(2 * np.pi * t / max(frames, 2) + rng.uniform(0, 0.3))
        body = (np.abs(cols - centre) < 0.1 * height) & (rows > 0.08 * height) & (rows < 0.55 * height)
        head = (rows - 0.06 * height) ** 2 + (cols - centre) ** 2 < (0.06 * height) ** 2
        legs = np.zeros_like(body)
        for sign in (1, -1):
            x_leg = centre + sign * swing * (rows - 0.55 * height)
            legs |= (np.abs(cols - x_leg) < 0.04 * height) & (rows >= 0.55 * height)
        sil = body | head | legs
        noise = rng.random((height, width)) < 0.01
        out[t] = np.where(sil ^ noise, 255, 0)
    return out


def gei_cases() -> list[tuple[str, np.ndarray]]:
    """The sequences of the visible checker of Exercise 1.2 (a walker of 8 and of 15 frames, one of data_samples)."""
    cases = [("an 8-frame walker", walker_frames(8, seed=1)), ("a 15-frame walker", walker_frames(15, seed=2))]
    try:
        from qgait_lab.lab.widgets import load_sample_sequence

        sils, info = load_sample_sequence(3)
        cases.append((f"data_samples {info.label}/{info.type}/{info.view}", sils))
    except (FileNotFoundError, OSError):    # an installed package without data_samples: walkers only
        cases.append(("a 12-frame walker", walker_frames(12, seed=3)))
    return cases


def verify_gei(gei_of: Callable, cases: Sequence[tuple[str, np.ndarray]]) -> str:
    """Compare ``gei_of(frames)`` with :func:`qgait_lab.data.gei.gei` (no downsampling) on each case."""
    from qgait_lab.data.gei import gei

    for name, sils in cases:
        want = gei(sils, downsample=False).astype(np.float64)
        got = core.as_array(core.call(gei_of, sils.copy()), "gei_of")
        where = f"for {name} (frames of shape {tuple(sils.shape)})"
        if got.shape != want.shape:
            if got.ndim == 3:
                raise Wrong(f"{where} your GEI has shape {tuple(got.shape)}, one image per frame: average "
                            "over the frames")
            if got.ndim == 2 and got.shape[1] == sils.shape[2] != want.shape[1]:
                raise Wrong(f"{where} your GEI is {got.shape[1]} columns wide, the stored width: the GEI "
                            "averages the frames the network sees, after the cut of Exercise 1.1")
            raise Wrong(f"{where} your GEI has shape {tuple(got.shape)}: it should be one image of the "
                        "cut frame's size")
        if not np.isfinite(got).all():
            raise Wrong(f"{where} your GEI holds NaN or infinite values")
        if got.max() > 1.0 + 1e-6:
            raise Wrong(f"{where} your values exceed 1 (largest {core.fmt(got.max())}): did you divide by 255, "
                        "and average (not sum) over the frames?")
        if got.min() < -1e-6:
            raise Wrong(f"{where} your GEI has negative values (smallest {core.fmt(got.min())}): a GEI is a "
                        "mean of silhouettes, which are never negative")
        grey = (want > 1e-6) & (want < 1 - 1e-6)
        if grey.any() and not ((got > 1e-6) & (got < 1 - 1e-6)).any():
            raise Wrong(f"{where} your GEI holds only the values 0 and 1, but pixels covered in some frames "
                        "only must be grey (strictly between 0 and 1)")
        rows, cols = np.mgrid[0:want.shape[0], 0:want.shape[1]]
        labels = np.array([f"row {r}, column {c}" for r, c in zip(rows.ravel(), cols.ravel())], dtype=object)
        core.compare_on_grid(got, want, labels.reshape(want.shape), f"your GEI {where}", atol=1e-5, rtol=1e-5)
    return f"right on {len(cases)} sequences"


@exercise("1.2", NOTEBOOK, "the gait energy image", answer="gei_of", hints=(
    "Write down the two steps of the network's input transform first; the GEI starts from what they return.",
    "A GEI has one value per pixel of the cut frame: which axis of the [T, H, W] array do you reduce, "
    "and with which statistic (not the sum, not the maximum)?",
    "Convert to float before dividing, and reuse your cut_sides from Exercise 1.1.",
))
def check_gei(gei_of: Callable) -> str:
    return verify_gei(gei_of, gei_cases())


# ---------------------------------------------------------------------------
# Exercise 1.3: the parameters of the BNNeck K
# ---------------------------------------------------------------------------
BNNECK_CASES: tuple[tuple[int, int, int], ...] = ((74, 16, 256), (3000, 16, 256), (1, 16, 256), (10, 4, 32),
                                                  (5, 1, 8))
"""(num_classes, parts, embed_dim) of the visible checker of Exercise 1.3."""


def bnneck_parameter_count(num_classes: int, parts: int, embed_dim: int) -> int:
    """The parameters of the library's ``SeparateBNNecks`` (built on the meta device: no memory)."""
    from qgait_lab.models.gaitbase import SeparateBNNecks, count_parameters

    with torch.device("meta"):
        return count_parameters(SeparateBNNecks(parts, embed_dim, num_classes))


def verify_bnneck(bnneck_parameters: Callable, cases: Sequence[tuple[int, int, int]]) -> str:
    for classes, parts, dim in cases:
        raw = core.call(bnneck_parameters, classes, parts=parts, embed_dim=dim)
        got = core.as_number(raw, "bnneck_parameters")
        where = f"for num_classes={classes}, parts={parts}, embed_dim={dim}"
        if got != int(got):
            raise Wrong(f"{where} your count {core.fmt(got)} is not a whole number")
        want = bnneck_parameter_count(classes, parts, dim)
        if got == want:
            continue
        bn = parts * dim                        # BatchNorm1d's features: the flattened embedding
        if got == want + 2 * bn:
            raise Wrong(f"{where} your count is too large: BatchNorm's running mean and variance are buffers, "
                        "not parameters (no gradient changes them)")
        if got == want - 2 * bn:
            raise Wrong(f"{where} your count is too small: you left out BatchNorm's learnable weight and bias")
        if got == want - bn:
            raise Wrong(f"{where} your count is too small: BatchNorm learns two numbers per feature")
        side = "too large" if got > want else "too small"
        raise Wrong(f"{where} your count {int(got):,} is {side}")
    return f"right for {len(cases)} shapes of K"


@exercise("1.3", NOTEBOOK, "the parameters of the BNNeck K", answer="bnneck_parameters", hints=(
    "K has two pieces: the BatchNorm over the flattened embedding, and the classifier weights of each part. "
    "Count each piece separately.",
    "How many features does the BatchNorm see (the embedding X is [embed_dim, parts] per sequence), and how "
    "many learnable numbers does BatchNorm keep per feature? Running statistics are not learned.",
    "The classifier of each part maps embed_dim numbers to num_classes cosine logits, without a bias.",
))
def check_bnneck_parameters(bnneck_parameters: Callable) -> str:
    return verify_bnneck(bnneck_parameters, BNNECK_CASES)


# ---------------------------------------------------------------------------
# Exercise 1.4: CASIA-B's Rank-1 from a distance matrix
# ---------------------------------------------------------------------------
def protocol_case(subjects: int, views: Sequence, probes_per_view: int, gallery_per_view: int,
                  view_strength: float, seed: int, noise: float = 2.0, absent: Sequence[tuple[int, object]] = (),
                  gallery_views: Sequence | None = None) -> dict:
    """A small CASIA-B-like test set of part embeddings, with its distances and the library's Rank-1.

    Each embedding is ``identity + view_strength * view + noise`` (``[16, 4]``:
    16 channels, 4 parts).  ``absent`` drops the gallery sequences of some
    (subject index, view) pairs; ``gallery_views`` restricts the gallery's views.
    Returns the student's inputs (``dist``, labels and views of probes and
    gallery) and the reference (``want``, from ``casia_b_protocol``), plus the
    values a few typical mistakes give (``mistakes``).
    """
    from qgait_lab.evaluation import casia_b_protocol, pairwise_distance, rank_metrics

    rng = np.random.default_rng(seed)
    identity = rng.normal(size=(subjects, 16, 4))
    view_vec = {v: rng.normal(size=(16, 4)) for v in views}
    g_views = list(views if gallery_views is None else gallery_views)
    feats, labels, types, seq_views, probe = [], [], [], [], []
    label_names = [f"{i + 1:03d}" if isinstance(views[0], str) else i + 1 for i in range(subjects)]
    for s in range(subjects):
        for v in views:
            for k in range(probes_per_view):
                feats.append(identity[s] + view_strength * view_vec[v] + noise * rng.normal(size=(16, 4)))
                labels.append(label_names[s]), types.append(f"nm-{5 + k:02d}"), seq_views.append(v)
                probe.append(True)
            if v not in g_views or (s, v) in set(absent):
                continue
            for k in range(gallery_per_view):
                feats.append(identity[s] + view_strength * view_vec[v] + noise * rng.normal(size=(16, 4)))
                labels.append(label_names[s]), types.append(f"nm-{1 + k:02d}"), seq_views.append(v)
                probe.append(False)
    feats = np.stack(feats)
    types_a, is_probe = np.asarray(types), np.asarray(probe)
    protocol = dict(gallery_types=tuple(f"nm-{1 + k:02d}" for k in range(gallery_per_view)),
                    probe_types={"NM": tuple(f"nm-{5 + k:02d}" for k in range(probes_per_view))})
    str_labels, str_views = np.asarray(labels).astype(str), np.asarray(seq_views).astype(str)
    want = casia_b_protocol(feats, str_labels, types_a, str_views, **protocol).mean["NM"]
    every_pair = casia_b_protocol(feats, str_labels, types_a, str_views, exclude_identical_view=False,
                                  **protocol).mean["NM"]
    dist = pairwise_distance(feats[is_probe], feats[~is_probe])
    lab, vw = np.asarray(labels, dtype=object), np.asarray(seq_views, dtype=object)
    p_lab, g_lab, p_view, g_view = lab[is_probe], lab[~is_probe], vw[is_probe], vw[~is_probe]
    whole = rank_metrics(dist, p_lab.astype(str), g_lab.astype(str), ks=(1,)).rank[1]
    other_views = np.where(p_view[:, None] == g_view[None, :], np.inf, dist)
    pooled = rank_metrics(other_views, p_lab.astype(str), g_lab.astype(str), ks=(1,)).rank[1]
    farthest = _farthest_rank1(dist, p_lab, p_view, g_lab, g_view)
    return {"dist": dist, "probe_labels": _typed(p_lab), "probe_views": _typed(p_view),
            "gallery_labels": _typed(g_lab), "gallery_views": _typed(g_view), "want": want,
            "mistakes": {"every pair": every_pair, "whole gallery": whole, "pooled": pooled,
                         "farthest": farthest},
            "describe": f"{subjects} subjects, views {', '.join(str(v) for v in views)}"}


def _typed(values: np.ndarray) -> np.ndarray:
    """Strings as a str array, integers as an int array (what a student's code receives)."""
    return np.asarray(values.tolist())


def _farthest_rank1(dist, p_lab, p_view, g_lab, g_view) -> float:
    """The protocol's Rank-1 when the *largest* distance is taken as the match (a sign mistake)."""
    from qgait_lab.evaluation import rank_metrics

    per_view = []
    for pv in sorted(set(p_view.tolist())):
        scores = []
        for gv in sorted(set(g_view.tolist())):
            if pv == gv:
                continue
            rows, cols = np.flatnonzero(p_view == pv), np.flatnonzero(g_view == gv)
            sub = -dist[np.ix_(rows, cols)]
            scores.append(rank_metrics(sub, p_lab[rows].astype(str), g_lab[cols].astype(str), ks=(1,)).rank[1])
        if scores:
            per_view.append(np.mean(scores))
    return float(np.mean(per_view))


def rank1_cases() -> list[dict]:
    """The visible checker's cases: views that matter a lot, a little, and a larger set."""
    return [protocol_case(4, ("000", "090", "180"), 2, 2, view_strength=3.0, seed=11, noise=1.5),
            protocol_case(6, ("036", "072", "108", "144"), 2, 2, view_strength=2.0, seed=12, noise=1.5),
            protocol_case(6, ("018", "090"), 2, 3, view_strength=2.5, seed=13, noise=1.5)]


_MISTAKE_FEEDBACK = {
    "every pair": "counting the pairs whose probe view equals the gallery view; the protocol drops them",
    "whole gallery": "ranking each probe against the whole gallery at once; the protocol scores each "
                     "(probe view, gallery view) pair on its own",
    "pooled": "ranking each probe against the gallery of all other views at once; the protocol scores each "
              "(probe view, gallery view) pair on its own, then averages",
    "farthest": "taking the gallery sequence with the largest distance as the match; a distance is small "
                "for similar walks",
}


def verify_rank1(casia_b_rank1: Callable, cases: Sequence[dict]) -> str:
    for i, case in enumerate(cases, start=1):
        args = [case[k].copy() for k in ("dist", "probe_labels", "probe_views", "gallery_labels", "gallery_views")]
        got = core.as_number(core.call(casia_b_rank1, *args), "casia_b_rank1")
        want = case["want"]
        where = f"on case {i} ({case['describe']})"
        if abs(got - want) <= 1e-6:
            continue
        if 0.0 <= got <= 1.0 and abs(100.0 * got - want) <= 1e-6:
            raise Wrong(f"{where} your value {core.fmt(got)} is a fraction: report Rank-1 in percent (0 to 100)")
        for name, value in case["mistakes"].items():
            if abs(value - want) > 1e-6 and abs(got - value) <= 1e-6:
                raise Wrong(f"{where} your Rank-1 ({core.fmt(got)} %) is what one gets by {_MISTAKE_FEEDBACK[name]}")
        side = "too high" if got > want else "too low"
        raise Wrong(f"{where} your Rank-1 of {core.fmt(got)} % is {side}")
    return f"right on {len(cases)} test sets"


@exercise("1.4", NOTEBOOK, "CASIA-B Rank-1 with the identical-view rule", answer="casia_b_rank1", hints=(
    "Loop over the probe views, and inside over the gallery views; skip the pair when the two views are "
    "equal. Each pair only looks at its own block of the distance matrix.",
    "Inside one block, a probe is a hit when the gallery column with the smallest distance has the probe's "
    "label (np.argmin along the gallery axis). The pair's Rank-1 is the share of hits, in percent.",
    "Average the pairs' scores over the gallery views for each probe view first, then average those "
    "per-view scores; a gallery view with no sequences gives no pair.",
))
def check_casia_b_rank1(casia_b_rank1: Callable) -> str:
    return verify_rank1(casia_b_rank1, rank1_cases())


# ---------------------------------------------------------------------------
# Exercise 1.5: what the GEI floor says
# ---------------------------------------------------------------------------
FLOOR_OPTIONS = ("a", "b", "c", "d")
FLOOR_DIGEST = "93569b6c691ff866"
"""``core.choice_digest("1.5", <the right option>)``."""

FLOOR_FEEDBACK = {
    "a": "same-view probes are other walks (nm-05/06 against nm-01..04), with their own jitter and noise; "
         "nothing is copied",
    "c": "the same GEI function and the same distance serve every pair; only the views of the pair change",
    "d": "a longer walk gives a smoother mean image, but it is still the picture of a silhouette from one camera",
}


@exercise("1.5", NOTEBOOK, "what the GEI floor tells you", answer="floor_reading", hints=(
    "Look at what a GEI is: pixels, averaged over time, as one camera saw them.",
    "Imagine one person's GEI from the side and from the front: how similar are the two images, compared "
    "with two people's GEIs from the side?",
))
def check_floor_reading(floor_reading) -> str:
    return core.check_choice("1.5", floor_reading, FLOOR_OPTIONS, FLOOR_DIGEST, FLOOR_FEEDBACK)
