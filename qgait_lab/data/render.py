"""Camera projection and segmentation noise for SynthGait.

:func:`render_silhouettes` takes the ellipsoids of :func:`~qgait_lab.data.body.pose_ellipsoids`,
looks at them from a CASIA-B-style view, and returns raw binary frames at
``render_height`` pixels per 1.7 m of body height (larger than the 64-pixel
format; :mod:`~qgait_lab.data.pretreat` brings them down).

Views follow CASIA-B: ``0`` degrees is the walker coming towards the camera,
``90`` a side view (walking to the right of the image), ``180`` walking away.
The camera is a pinhole a few metres from the middle of the path, at about
hip height, so the walker's distance and the perspective change during the
walk; the perspective is what makes opposite views (``018`` and ``162``) more
than mirror images of each other.  Ellipsoids project exactly (see
:func:`~qgait_lab.data.raster.project_ellipsoids_perspective`).

Segmentation noise imitates background subtraction, at a rate ``noise``
(0 = clean, 1 = heavy) that scales every component:

* boundary jitter: each row's left and right edges move by a smooth random
  amount (sd ``0.8 * noise`` px at 100 px body height);
* holes: about ``2 * noise`` small holes per frame inside the body's box;
* blobs: about ``noise`` small blobs per frame stuck to the outline;
* shadow: with probability ``0.5 * noise`` the walk has a flat shadow at the feet;
* camouflage: with probability ``0.3 * noise`` the walk has a band of rows where
  clothing matched the background and the silhouette is eroded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qgait_lab.data.raster import Ellipses, fill_rows, project_ellipsoids_perspective, row_intervals

__all__ = ["Camera", "render_silhouettes"]

_DEG = np.pi / 180.0


@dataclass(frozen=True)
class Camera:
    """A pinhole camera aimed at the middle of the walking path.

    Attributes:
        view: CASIA-B view angle in degrees (0 front, 90 side, 180 back).
        distance: horizontal distance from the path centre, metres.
        height: height of the camera, metres.
        target_height: height of the point it is aimed at, metres.
        heading: extra walking-direction offset in degrees (the walker never
            follows the floor marks exactly).
    """

    view: float
    distance: float = 4.5
    height: float = 1.0
    target_height: float = 0.9
    heading: float = 0.0

    def matrix(self) -> np.ndarray:
        """The ``[3, 4]`` camera matrix (focal length ``distance``, so 1 m at
        the path centre spans about one image unit)."""
        a = -(self.view + self.heading) * _DEG
        centre = np.array([self.distance * np.cos(a), self.distance * np.sin(a), self.height])
        forward = np.array([0.0, 0.0, self.target_height]) - centre
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        up = np.cross(right, forward)
        rot = np.stack([right * self.distance, up * self.distance, forward])
        return np.concatenate([rot, -(rot @ centre)[:, None]], axis=1)


def _smooth_noise(rng: np.random.Generator, n_frames: int, n_rows: int, sd: float, knot_every: int = 6) -> np.ndarray:
    """Row-correlated noise ``[F, R]``: Gaussian knots, linearly interpolated."""
    n_knots = n_rows // knot_every + 2
    knots = rng.normal(0.0, sd, size=(n_frames, n_knots))
    pos = np.arange(n_rows) / knot_every
    lo = np.floor(pos).astype(int)
    frac = pos - lo
    return knots[:, lo] * (1 - frac) + knots[:, lo + 1] * frac


def _random_ellipses(rng: np.random.Generator, counts: np.ndarray, cx, cy, r_lo: float, r_hi: float) -> Ellipses:
    """Up to ``counts.max()`` axis-free ellipses per frame; absent ones are empty."""
    n_frames, n_max = len(counts), max(int(counts.max()), 1)
    present = np.arange(n_max)[None, :] < counts[:, None]
    rx = rng.uniform(r_lo, r_hi, size=(n_frames, n_max))
    ry = rng.uniform(r_lo, r_hi, size=(n_frames, n_max))
    tilt = rng.uniform(0, np.pi, size=(n_frames, n_max))
    c, s = np.cos(tilt), np.sin(tilt)
    sxx = (rx * c) ** 2 + (ry * s) ** 2
    syy = (rx * s) ** 2 + (ry * c) ** 2
    sxy = (rx**2 - ry**2) * c * s
    tiny = 1e-6
    return Ellipses(
        cx=np.where(present, cx, -1e6),
        cy=np.where(present, cy, -1e6),
        sxx=np.where(present, sxx, tiny),
        sxy=np.where(present, sxy, 0.0),
        syy=np.where(present, syy, tiny),
    )


def render_silhouettes(
    centres: np.ndarray,
    shapes: np.ndarray,
    clip_z: np.ndarray,
    camera: Camera,
    render_height: int = 128,
    noise: float = 0.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Binary frames ``[T, R, W]`` of a posed body seen by *camera*.

    Args:
        centres, shapes, clip_z: ellipsoids from :func:`~qgait_lab.data.body.pose_ellipsoids`.
        render_height: pixels per 1.7 m (a 1.7 m walker is this many pixels tall).
        noise: segmentation-noise rate (see the module docstring); needs *rng*.
        rng: the generator for the noise.

    Returns:
        ``bool`` array; the canvas is just large enough for the walker plus a
        margin for the noise.
    """
    if noise > 0 and rng is None:
        raise ValueError("noise > 0 needs an explicit rng")
    matrix = camera.matrix()
    scale = render_height / 1.7  # pixels per image unit: a 1.7 m walker at the path centre
    unit = render_height / 100.0  # noise sizes are given for a 100-pixel walker
    c2, s2 = project_ellipsoids_perspective(centres, shapes, matrix)
    u, v = c2[..., 0], c2[..., 1]
    half_u, half_v = np.sqrt(s2[..., 0, 0]), np.sqrt(s2[..., 1, 1])
    margin_x = int(np.ceil(0.12 * render_height)) if noise > 0 else 3
    margin_y = 3
    # The canvas follows the walker: each frame is framed by its own bounding box
    # (pretreatment re-centres anyway), so the canvas is only as big as one pose.
    u_min = (u - half_u).min(axis=1, keepdims=True)
    v_max = (v + half_v).max(axis=1, keepdims=True)
    width = int(np.ceil(((u + half_u).max(axis=1, keepdims=True) - u_min).max() * scale)) + 2 * margin_x
    n_rows = int(np.ceil((v_max - (v - half_v).min(axis=1, keepdims=True)).max() * scale)) + 2 * margin_y

    clip_point = np.concatenate([centres[..., :2], clip_z[..., None], np.ones_like(clip_z)[..., None]], axis=-1)
    projected = clip_point @ matrix.T
    v_clip = np.where(np.isnan(clip_z), np.nan, projected[..., 1] / projected[..., 2])
    body = Ellipses(
        cx=(u - u_min) * scale + margin_x,
        cy=(v_max - v) * scale + margin_y,
        sxx=s2[..., 0, 0] * scale**2,
        sxy=-s2[..., 0, 1] * scale**2,  # image y points down, so the cross term flips
        syy=s2[..., 1, 1] * scale**2,
        y_max=(v_max - v_clip) * scale + margin_y,
    )
    n_frames = centres.shape[0]
    if noise <= 0:
        return fill_rows(*row_intervals(body, n_rows), width)

    assert rng is not None
    # Box of the body in each frame, for placing holes, blobs and the shadow.
    x0 = (body.cx - np.sqrt(body.sxx)).min(1)
    x1 = (body.cx + np.sqrt(body.sxx)).max(1)
    y0 = (body.cy - np.sqrt(body.syy)).min(1)
    y1 = (body.cy + np.sqrt(body.syy)).max(1)

    left, right = row_intervals(body, n_rows)
    left = left - _smooth_noise(rng, n_frames, n_rows, 0.8 * noise * unit)[:, None, :]
    right = right + _smooth_noise(rng, n_frames, n_rows, 0.8 * noise * unit)[:, None, :]

    if rng.random() < 0.3 * noise:  # camouflage band, fixed on the body for the whole walk
        top = rng.uniform(0.15, 0.8)
        depth = rng.uniform(0.05, 0.15)
        erode = rng.uniform(0.5, 2.5) * unit
        rows = np.arange(n_rows)[None, :] + 0.5
        rel = (rows - y0[:, None]) / (y1 - y0)[:, None]
        band = ((rel >= top) & (rel <= top + depth))[:, None, :]
        left = np.where(band, left + erode, left)
        right = np.where(band, right - erode, right)

    extra: list[Ellipses] = []
    # Blobs stuck to the outline: pick a row inside the body, sit on its left or right end.
    n_blobs = rng.poisson(1.0 * noise, size=n_frames)
    if n_blobs.any():
        k = max(int(n_blobs.max()), 1)
        rows = np.clip(rng.uniform(y0[:, None], y1[:, None], size=(n_frames, k)).astype(int), 0, n_rows - 1)
        frame_idx = np.arange(n_frames)[:, None]
        row_left = np.where(np.isfinite(left), left, np.inf).min(1)[frame_idx, rows]
        row_right = np.where(np.isfinite(right), right, -np.inf).max(1)[frame_idx, rows]
        on_right = rng.random((n_frames, k)) < 0.5
        edge = np.where(on_right, row_right, row_left)
        edge = np.where(np.isfinite(edge), edge, 0.5 * (x0 + x1)[:, None])
        extra.append(_random_ellipses(rng, n_blobs, edge, rows + 0.5, 1.5 * unit, 5.0 * unit))
    if rng.random() < 0.5 * noise:  # a shadow on the floor, for the whole walk
        length = rng.uniform(0.05, 0.18) * render_height
        side = rng.choice((-1.0, 1.0))
        cx = 0.5 * (x0 + x1) + side * rng.uniform(0.2, 0.8) * length
        cy = y1 - rng.uniform(0.5, 1.5) * unit
        ry = rng.uniform(1.0, 2.5) * unit
        extra.append(
            Ellipses(cx=cx[:, None], cy=cy[:, None], sxx=np.full((n_frames, 1), length**2),
                     sxy=np.zeros((n_frames, 1)), syy=np.full((n_frames, 1), ry**2))
        )
    for blobs in extra:
        l2, r2 = row_intervals(blobs, n_rows)
        left, right = np.concatenate([left, l2], 1), np.concatenate([right, r2], 1)
    n_holes = rng.poisson(2.0 * noise, size=n_frames)
    if not n_holes.any():
        return fill_rows(left, right, width)
    k = max(int(n_holes.max()), 1)
    hx = rng.uniform(x0[:, None], x1[:, None], size=(n_frames, k))
    hy = rng.uniform(y0[:, None], y1[:, None], size=(n_frames, k))
    holes = _random_ellipses(rng, n_holes, hx, hy, 1.0 * unit, 3.5 * unit)
    return fill_rows(left, right, width, *row_intervals(holes, n_rows))
