"""Ellipsoid projection and row-interval rasterisation against brute force."""

import numpy as np
import pytest

from qgait_lab.data.raster import (
    Ellipses,
    fill_rows,
    project_ellipsoids,
    project_ellipsoids_perspective,
    row_intervals,
)
from qgait_lab.data.render import Camera, render_silhouettes


def _random_spd(rng, n):
    a = rng.normal(size=(n, 3, 3))
    return a @ a.transpose(0, 2, 1) + 0.1 * np.eye(3)


def test_perspective_projection_reduces_to_orthographic_for_an_affine_camera():
    rng = np.random.default_rng(0)
    centres, shapes = rng.normal(size=(6, 3)), _random_spd(rng, 6)
    axes = np.array([[0.0, 1.0, 0.0], [0.6, 0.0, 0.8]])
    affine = np.zeros((3, 4))
    affine[:2, :3] = axes
    affine[2, 3] = 1.0
    e1, s1 = project_ellipsoids_perspective(centres, shapes, affine)
    e2, s2 = project_ellipsoids(centres, shapes, axes)
    np.testing.assert_allclose(e1, e2, atol=1e-12)
    np.testing.assert_allclose(s1, s2, atol=1e-12)


def test_perspective_outline_touches_the_projected_surface():
    rng = np.random.default_rng(1)
    centre = np.array([0.3, -0.2, 5.0])
    shape = np.diag([0.5, 0.2, 0.3]) ** 2
    pinhole = np.hstack([np.eye(3), np.zeros((3, 1))])
    e, s = project_ellipsoids_perspective(centre[None], shape[None], pinhole)
    u = rng.normal(size=(100_000, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    surface = centre + u * np.sqrt(np.diag(shape))
    image = surface[:, :2] / surface[:, 2:]
    d = image - e[0]
    q = np.einsum("ni,ij,nj->n", d, np.linalg.inv(s[0]), d)
    assert q.max() == pytest.approx(1.0, abs=1e-3)  # inside, and the outline is reached
    with pytest.raises(ValueError, match="behind"):
        project_ellipsoids_perspective(-centre[None], shape[None], pinhole)


def test_row_fill_matches_pixel_tests():
    rng = np.random.default_rng(2)
    f, p, h, w = 3, 4, 40, 50
    rx, ry, tilt = rng.uniform(2, 12, (f, p)), rng.uniform(2, 12, (f, p)), rng.uniform(0, np.pi, (f, p))
    c, s = np.cos(tilt), np.sin(tilt)
    ell = Ellipses(cx=rng.uniform(0, w, (f, p)), cy=rng.uniform(0, h, (f, p)),
                   sxx=(rx * c) ** 2 + (ry * s) ** 2, sxy=(rx**2 - ry**2) * c * s, syy=(rx * s) ** 2 + (ry * c) ** 2,
                   y_max=np.where(rng.random((f, p)) < 0.5, rng.uniform(0, h, (f, p)), np.nan))
    holes = Ellipses(cx=rng.uniform(0, w, (f, 1)), cy=rng.uniform(0, h, (f, 1)),
                     sxx=np.full((f, 1), 16.0), sxy=np.zeros((f, 1)), syy=np.full((f, 1), 9.0))
    mask = fill_rows(*row_intervals(ell, h), w, *row_intervals(holes, h))

    ys, xs = np.mgrid[0:h, 0:w] + 0.5

    def inside(e, i, j):
        det = e.sxx[i, j] * e.syy[i, j] - e.sxy[i, j] ** 2
        dx, dy = xs - e.cx[i, j], ys - e.cy[i, j]
        q = (e.syy[i, j] * dx**2 - 2 * e.sxy[i, j] * dx * dy + e.sxx[i, j] * dy**2) / det
        keep = q <= 1
        if e.y_max is not None and not np.isnan(e.y_max[i, j]):
            keep &= ys <= e.y_max[i, j]
        return keep

    for i in range(f):
        expected = np.zeros((h, w), bool)
        for j in range(p):
            expected |= inside(ell, i, j)
        expected &= ~inside(holes, i, 0)
        # Pixel centres exactly on an outline may go either way; allow a handful.
        assert (mask[i] != expected).sum() <= 2


def test_render_needs_an_rng_for_noise():
    centres = np.array([[[0.0, 0.0, 0.9]]])
    shapes = np.diag([0.1, 0.2, 0.8])[None, None] ** 2
    clean = render_silhouettes(centres, shapes, np.full((1, 1), np.nan), Camera(90.0), render_height=64)
    assert clean.dtype == bool and clean.any()
    with pytest.raises(ValueError, match="rng"):
        render_silhouettes(centres, shapes, np.full((1, 1), np.nan), Camera(90.0), noise=0.5)
