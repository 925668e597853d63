"""Rasterise unions of ellipses, many frames at once, one image row at a time.

SynthGait builds its bodies from ellipsoids.  An ellipsoid with shape matrix
``M`` (the set ``(x-c)^T M^{-1} (x-c) <= 1``) projects to an ellipse, under an
orthographic camera (:func:`project_ellipsoids`: shape ``P M P^T``, with ``P``
the two image axes as rows) and under a pinhole camera as well
(:func:`project_ellipsoids_perspective`).  An ellipse meets an image row in at
most one interval, so
a frame is described by one ``[x_left, x_right]`` pair per part and row, and
the union of parts is filled with a difference array and a cumulative sum.
That costs ``O(frames * parts * rows)`` arithmetic plus one pass over the
pixels, instead of testing every pixel against every part.

Coordinates are in pixels: ``x`` grows to the right, ``y`` grows downwards, and
pixel ``(r, c)`` has its centre at ``(c + 0.5, r + 0.5)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Ellipses", "fill_rows", "project_ellipsoids", "project_ellipsoids_perspective", "row_intervals"]


@dataclass
class Ellipses:
    """Ellipses in pixel coordinates, with arrays of shape ``[F, P]``.

    Attributes:
        cx, cy: centres.
        sxx, sxy, syy: shape matrix ``[[sxx, sxy], [sxy, syy]]``; the ellipse is
            ``(p - c)^T S^{-1} (p - c) <= 1``, so ``sqrt(sxx)`` is its half
            width and ``sqrt(syy)`` its half height.
        y_max: optional lower clip: rows whose centre lies below ``y_max``
            (larger ``y``) are not covered; NaN means no clip.
    """

    cx: np.ndarray
    cy: np.ndarray
    sxx: np.ndarray
    sxy: np.ndarray
    syy: np.ndarray
    y_max: np.ndarray | None = None


def project_ellipsoids(centres: np.ndarray, shapes: np.ndarray, axes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Orthographically project 3-D ellipsoids onto the plane spanned by *axes*.

    Args:
        centres: ``[..., 3]`` ellipsoid centres.
        shapes: ``[..., 3, 3]`` symmetric positive-definite shape matrices.
        axes: ``[2, 3]`` orthonormal image axes (right, up) in world coordinates.

    Returns:
        ``(centres2, shapes2)`` with shapes ``[..., 2]`` and ``[..., 2, 2]``.
    """
    centres2 = centres @ axes.T
    shapes2 = axes @ shapes @ axes.T
    return centres2, shapes2


def project_ellipsoids_perspective(
    centres: np.ndarray, shapes: np.ndarray, camera: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Perspective projection of 3-D ellipsoids through a 3 x 4 camera matrix.

    The outline of an ellipsoid seen by a pinhole camera is the conic whose
    *dual* is ``C* = P Q* P^T``, where ``Q*`` is the ellipsoid's dual quadric
    ``[[M - c c^T, -c], [-c^T, -1]]``.  Writing ``C*`` as
    ``lambda * [[S - e e^T, -e], [-e^T, -1]]`` gives the image ellipse's centre
    ``e`` and shape ``S``.  (For an affine camera this reduces to
    :func:`project_ellipsoids`.)  Every ellipsoid must lie in front of the camera.

    Args:
        centres: ``[..., 3]``; shapes: ``[..., 3, 3]``; camera: ``[3, 4]``
            with image ``x = row0 / row2``, ``y = row1 / row2``.

    Returns:
        ``(centres2, shapes2)``, ``[..., 2]`` and ``[..., 2, 2]``.
    """
    c = centres[..., :, None]
    top = shapes - c @ np.swapaxes(c, -1, -2)
    dual = np.empty(centres.shape[:-1] + (4, 4))
    dual[..., :3, :3] = top
    dual[..., :3, 3] = -centres
    dual[..., 3, :3] = -centres
    dual[..., 3, 3] = -1.0
    conic = camera @ dual @ camera.T
    # lam > 0: the ellipsoid does not cross the camera's plane; depth > 0: it is in front.
    lam = -conic[..., 2, 2]
    depth = centres @ camera[2, :3] + camera[2, 3]
    if np.any(lam <= 0) or np.any(depth <= 0):
        raise ValueError("an ellipsoid reaches behind the camera")
    e = -conic[..., :2, 2] / lam[..., None]
    s2 = conic[..., :2, :2] / lam[..., None, None] + e[..., :, None] * e[..., None, :]
    return e, s2


def row_intervals(ell: Ellipses, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Left and right ends of each ellipse on each row, ``[F, P, n_rows]``.

    For a row at offset ``dy`` from the centre the ellipse covers
    ``|dx - (sxy/syy) dy| <= sqrt(det S / syy * (1 - dy^2/syy))``.  Rows the
    ellipse misses get an empty interval (``left > right``).
    """
    y = np.arange(n_rows, dtype=np.float64) + 0.5
    dy = y[None, None, :] - ell.cy[..., None]
    syy = ell.syy[..., None]
    det = (ell.sxx * ell.syy - ell.sxy**2)[..., None]
    reach = 1.0 - dy**2 / syy
    half = np.sqrt(np.clip(det / syy * reach, 0.0, None))
    mid = ell.cx[..., None] + (ell.sxy[..., None] / syy) * dy
    missed = reach < 0
    if ell.y_max is not None:
        missed |= y[None, None, :] > np.where(np.isnan(ell.y_max), np.inf, ell.y_max)[..., None]
    left = np.where(missed, np.inf, mid - half)
    right = np.where(missed, -np.inf, mid + half)
    return left, right


def fill_rows(
    left: np.ndarray,
    right: np.ndarray,
    width: int,
    cut_left: np.ndarray | None = None,
    cut_right: np.ndarray | None = None,
) -> np.ndarray:
    """Union of row intervals as a boolean mask ``[F, R, width]``.

    Args:
        left, right: ``[F, P, R]`` interval ends in pixel coordinates; a pixel
            is covered when its centre lies in ``[left, right]`` of any part.
        cut_left, cut_right: optional ``[F, Q, R]`` intervals removed from the
            union afterwards (holes).
    """
    n_frames, _, n_rows = left.shape
    size = n_frames * n_rows * (width + 1)
    frame = np.arange(n_frames)[:, None, None]
    row = np.arange(n_rows)[None, None, :]
    base = (frame * n_rows + row) * (width + 1)

    def edges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        first, last = np.ceil(lo - 0.5), np.floor(hi - 0.5)
        valid = (first <= last) & (last >= 0) & (first <= width - 1)
        b = np.broadcast_to(base, lo.shape)[valid]
        return b + np.clip(first[valid], 0, width - 1).astype(np.int64), b + np.clip(last[valid], 0, width - 1).astype(np.int64) + 1

    starts, stops = edges(left, right)
    # One difference array: +1/-1 per covering part, +/-HOLE per hole, so that after
    # the running sum a pixel is in the mask iff 0 < value < HOLE.
    hole = 1 << 16
    index, weight = [starts, stops], [np.ones(len(starts)), -np.ones(len(stops))]
    if cut_left is not None and cut_right is not None:
        h_starts, h_stops = edges(cut_left, cut_right)
        index += [h_starts, h_stops]
        weight += [np.full(len(h_starts), float(hole)), np.full(len(h_stops), -float(hole))]
    counts = np.bincount(np.concatenate(index), np.concatenate(weight), minlength=size)
    # Every row's increments sum to zero, so one running sum over the flat array equals
    # a running sum per row (and is much faster).  Sums of +-1 and +-2^16 are exact in float64.
    coverage = np.cumsum(counts).reshape(n_frames, n_rows, width + 1)[:, :, :width]
    return (coverage > 0.5) & (coverage < hole - 0.5)
