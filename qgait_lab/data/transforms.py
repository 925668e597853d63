"""GaitBase's silhouette transforms, applied to one whole sequence at a time.

A transform takes a float tensor ``[T, H, W]`` and a ``numpy`` generator and
returns a tensor ``[T, H', W']``.  Random transforms draw their parameters
once per sequence (every frame of a walk gets the same flip, angle, erased
box, warp), as OpenGait does, and take all randomness from the generator they
are given: there is no global random state.

* :class:`SilCutScale` (OpenGait's ``BaseSilCuttingTransform``): drop
  ``W // 64 * 10`` columns on each side (64 -> 44) and divide by 255.
* :class:`Downsample2x`: 2 x 2 average pooling (64 x 44 -> 32 x 22), the
  laptop preset's input.
* :class:`RandomHorizontalFlip`, :class:`RandomRotate`,
  :class:`RandomErasing`, :class:`RandomPerspective`: augmentations, each
  applied with its own probability ``p``.

Shape and binariness: every transform except the two resizing ones returns
the shape it was given.  Flip and erasing keep the set of values (erasing
writes 0).  Rotation and perspective resample bilinearly with zero padding,
so they return convex combinations of input values: a 0/1 input stays in
[0, 1], interior and background pixels stay exactly 1 and 0, and only a
one-pixel rim along edges takes intermediate values (as with OpenCV's warps in
OpenGait).  Average pooling likewise produces grey only on edges.
"""

from __future__ import annotations

import math
from typing import Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "Compose",
    "Downsample2x",
    "RandomErasing",
    "RandomHorizontalFlip",
    "RandomPerspective",
    "RandomRotate",
    "SequenceTransform",
    "SilCutScale",
    "cut_columns",
    "downsample_2x",
    "gaitbase_transform",
]


class SequenceTransform(Protocol):
    """``transform(sils [T, H, W] float, rng) -> [T, H', W'] float``."""

    def __call__(self, sils: torch.Tensor, rng: np.random.Generator) -> torch.Tensor: ...


# --------------------------------------------------------------------------
# Deterministic transforms
# --------------------------------------------------------------------------


def cut_columns(width: int) -> int:
    """Columns OpenGait cuts from each side of a frame ``width`` wide (10 per 64)."""
    return width // 64 * 10


def downsample_2x(sils: torch.Tensor) -> torch.Tensor:
    """Average 2 x 2 blocks of ``[..., H, W]`` (odd trailing rows/columns dropped)."""
    lead = sils.shape[:-2]
    flat = sils.reshape(-1, 1, *sils.shape[-2:])
    return F.avg_pool2d(flat, 2).reshape(*lead, sils.shape[-2] // 2, sils.shape[-1] // 2)


class SilCutScale:
    """Cut ``W // 64 * 10`` columns from each side and divide by ``divisor``."""

    def __init__(self, divisor: float = 255.0, cutting: int | None = None) -> None:
        self.divisor = divisor
        self.cutting = cutting

    def __call__(self, sils: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        cut = cut_columns(sils.shape[-1]) if self.cutting is None else self.cutting
        out = sils[..., cut : sils.shape[-1] - cut] if cut > 0 else sils
        return out / self.divisor

    def __repr__(self) -> str:
        return f"SilCutScale(divisor={self.divisor}, cutting={self.cutting})"


class Downsample2x:
    """2 x 2 average pooling: 64 x 44 -> 32 x 22."""

    def __call__(self, sils: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        return downsample_2x(sils)

    def __repr__(self) -> str:
        return "Downsample2x()"


# --------------------------------------------------------------------------
# Random augmentations
# --------------------------------------------------------------------------


class _Random:
    """Base: apply ``_apply`` with probability ``p``."""

    def __init__(self, p: float) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.p = p

    def __call__(self, sils: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        if self.p > 0 and rng.random() < self.p:
            return self._apply(sils, rng)
        return sils

    def _apply(self, sils: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in vars(self).items() if k != "p")
        return f"{type(self).__name__}(p={self.p}{', ' + extra if extra else ''})"


class RandomHorizontalFlip(_Random):
    """Mirror the sequence left-right."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__(p)

    def _apply(self, sils: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        return torch.flip(sils, dims=(-1,))


def _warp(sils: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Bilinear resampling of ``[T, H, W]`` at normalised coordinates ``[H, W, 2]``."""
    t = sils.shape[0]
    out = F.grid_sample(
        sils[:, None].to(torch.float32),
        grid[None].expand(t, -1, -1, -1).to(torch.float32),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )
    return out[:, 0].to(sils.dtype)


def _pixel_grid(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64) + 0.5, torch.arange(w, dtype=torch.float64) + 0.5, indexing="ij")
    return xs, ys


def _to_normalised(xs: torch.Tensor, ys: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return torch.stack([2 * xs / w - 1, 2 * ys / h - 1], dim=-1)


class RandomRotate(_Random):
    """Rotate about the frame centre by an angle uniform in ``[-degrees, degrees]``."""

    def __init__(self, p: float = 0.5, degrees: float = 10.0) -> None:
        super().__init__(p)
        self.degrees = degrees

    def _apply(self, sils: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        h, w = sils.shape[-2:]
        angle = math.radians(rng.uniform(-self.degrees, self.degrees))
        xs, ys = _pixel_grid(h, w)
        cx, cy = w / 2, h / 2
        c, s = math.cos(angle), math.sin(angle)
        # Inverse map: each output pixel samples the input at the rotated-back position.
        src_x = c * (xs - cx) + s * (ys - cy) + cx
        src_y = -s * (xs - cx) + c * (ys - cy) + cy
        return _warp(sils, _to_normalised(src_x, src_y, h, w))


class RandomPerspective(_Random):
    """Perspective jitter: stretch a random quadrilateral onto the frame.

    As in OpenGait, each corner of the source quadrilateral is moved inwards
    horizontally by up to ``margin`` pixels (default: the ``W // 64 * 10``
    columns that :class:`SilCutScale` removes), and the quadrilateral is
    mapped onto the whole frame.
    """

    def __init__(self, p: float = 0.5, margin: int | None = None) -> None:
        super().__init__(p)
        self.margin = margin

    def _apply(self, sils: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        h, w = sils.shape[-2:]
        margin = cut_columns(w) if self.margin is None else self.margin
        if margin <= 0:
            return sils
        dx = rng.integers(0, margin, size=4).astype(np.float64)
        # source corners TL, TR, BL, BR (pixel edges); destinations are the frame corners.
        src = np.array([[dx[0], 0], [w - dx[1], 0], [dx[2], h], [w - dx[3], h]])
        dst = np.array([[0, 0], [w, 0], [0, h], [w, h]], dtype=np.float64)
        homography = _homography(dst, src)  # maps output pixels to input pixels
        xs, ys = _pixel_grid(h, w)
        pts = torch.stack([xs, ys, torch.ones_like(xs)], -1) @ torch.as_tensor(homography).T
        src_x, src_y = pts[..., 0] / pts[..., 2], pts[..., 1] / pts[..., 2]
        return _warp(sils, _to_normalised(src_x, src_y, h, w))


def _homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3 x 3 homography mapping four *src* points onto four *dst* points."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    h = np.linalg.solve(np.array(rows), np.array(rhs))
    return np.append(h, 1.0).reshape(3, 3)


class RandomErasing(_Random):
    """Set one random rectangle of every frame to 0.

    The box covers a fraction ``U(area)`` of the frame with aspect ratio
    (height / width) log-uniform in ``ratio``; OpenGait's defaults.
    """

    def __init__(
        self, p: float = 0.5, area: tuple[float, float] = (0.05, 0.2), ratio: tuple[float, float] = (0.3, 1 / 0.3)
    ) -> None:
        super().__init__(p)
        self.area = area
        self.ratio = ratio

    def _apply(self, sils: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        h, w = sils.shape[-2:]
        for _ in range(100):
            target = rng.uniform(*self.area) * h * w
            aspect = math.exp(rng.uniform(math.log(self.ratio[0]), math.log(self.ratio[1])))
            bh, bw = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
            if 0 < bh < h and 0 < bw < w:
                top, left = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
                out = sils.clone()
                out[..., top : top + bh, left : left + bw] = 0
                return out
        return sils


class Compose:
    """Apply transforms in order, sharing one generator."""

    def __init__(self, transforms: Sequence[SequenceTransform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sils: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        for transform in self.transforms:
            sils = transform(sils, rng)
        return sils

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


def gaitbase_transform(train: bool = True, downsample: bool = False, p: float = 0.2, erasing: bool = False) -> Compose:
    """GaitBase's transform pipeline (OpenGait's ``gaitbase_da`` configs).

    Training: perspective jitter, cut and scale, horizontal flip, rotation,
    each random step with probability *p* (0.2 in OpenGait), and optionally
    random erasing (the Gait3D config).  Testing: cut and scale only.
    ``downsample=True`` appends 2 x 2 average pooling (32 x 22 input).
    """
    augment = ["perspective", "flip", "rotate"] + (["erase"] if erasing else [])
    return build_transform(augment, p, downsample=2 if downsample else 1, train=train)


#: Augmentation names a config may list, in the order they are applied.
AUGMENTATIONS: tuple[str, ...] = ("perspective", "flip", "rotate", "erase")


def build_transform(
    augment: Sequence[str] = (), p: float = 0.2, downsample: int = 1, train: bool = True
) -> Compose:
    """The transform a config describes: OpenGait's order, any subset of the augmentations.

    Perspective jitter acts on the stored frame (before the cut), then cut and
    scale (the cut follows the stored width, as OpenGait's: 64 x 64 frames lose
    10 columns a side, frames stored 64 x 44 none), then flip, rotation and
    erasing, each with probability *p*, then optional 2 x 2 downsampling.
    ``train=False`` drops the augmentations.
    """
    unknown = [a for a in augment if a not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown augmentation(s) {unknown}; choose from {list(AUGMENTATIONS)}")
    if downsample not in (1, 2):
        raise ValueError(f"downsample must be 1 or 2, got {downsample}")
    wanted = set(augment) if train else set()
    steps: list[SequenceTransform] = []
    if "perspective" in wanted:
        steps.append(RandomPerspective(p))
    steps.append(SilCutScale())
    if "flip" in wanted:
        steps.append(RandomHorizontalFlip(p))
    if "rotate" in wanted:
        steps.append(RandomRotate(p))
    if "erase" in wanted:
        steps.append(RandomErasing(p))
    if downsample == 2:
        steps.append(Downsample2x())
    return Compose(steps)
