"""OpenGait's silhouette pretreatment: raw frames -> aligned 64 x 64 uint8.

Every silhouette the library sees, real or synthetic, passes through
:func:`pretreat_sequence`.  It reproduces, pixel for pixel, what OpenGait's
``datasets/pretreatment.py`` (function ``imgs2pickle``) does to each frame:

1. drop the frame if it is nearly empty (intensity sum <= ``min_sum``; OpenGait's
   10 000 is about 40 fully-on pixels);
2. crop to the rows from the top-most to the bottom-most non-empty row (the
   columns are kept whole);
3. resize to height ``size`` with OpenCV's bicubic ``cv2.INTER_CUBIC``; the new
   width is ``int(size * ratio)`` with ``ratio = width / height`` computed
   first.  For 64, a power of two, the order of the float operations does not
   matter; for other sizes it can: ``int(44 * (15 / 22))`` is 29,
   ``int(44 * 15 / 22)`` is 30.  (A frame so narrow that the width rounds to 0
   is dropped here; OpenGait's ``cv2.resize`` stops with an error on it.)
4. find the x-centre, the first column whose cumulative intensity exceeds half
   the total; **drop the frame when there is none or when it is column 0**
   (OpenGait's ``if not x_center``);
5. take the columns ``centre - size // 2`` up to ``centre + size // 2``; when
   that window reaches column 0 or the right edge (``left <= 0 or right >=
   width``), pad ``size // 2`` zero columns on each side first.

The output is therefore ``size`` rows by ``2 * (size // 2)`` columns: 64 x 64
for OpenGait's default, one column short for an odd ``size``, as in OpenGait.

OpenGait resizes with OpenCV, not Pillow, and the two give different pixels:
Pillow's bicubic filter widens its kernel and low-pass filters when it shrinks
an image, OpenCV's ``INTER_CUBIC`` samples a fixed 4 x 4 neighbourhood.  The
silhouettes a checkpoint of OpenGait was trained on are OpenCV's, so this
module uses OpenCV (``opencv-python-headless``).

GREW is stored already aligned: OpenGait's script, run with ``--dataset GREW``,
keeps every frame as read (no drop, no crop, no resize).  ``align=False`` here
does the same.

:func:`read_frames` reads a folder as OpenGait does: the file names sorted
plainly (lexicographically, ``10.png`` before ``2.png``), files whose name
contains ``gei.png`` (a gait energy image, not a frame) skipped, each image
decoded by OpenCV as grayscale (``cv2.IMREAD_GRAYSCALE``, so a colour image
converts exactly as ``cv2.imread`` converts it).  OpenGait lists ``*.png``
only; :data:`IMAGE_SUFFIXES` adds JPEG and BMP, in any letter case.
:func:`pretreat_tree` applies it all to a folder tree
``FRAMES_ROOT/<id>/<type>/<view>/*.png`` and writes OpenGait's pkl layout.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from qgait_lab.data.opengait import write_sequence
from qgait_lab.errors import DataFormatError

__all__ = [
    "DEFAULT_MIN_SUM",
    "GEI_MARK",
    "IMAGE_SUFFIXES",
    "PretreatReport",
    "aligned_width",
    "frame_paths",
    "pretreat_frame",
    "pretreat_sequence",
    "pretreat_tree",
    "read_frames",
    "read_image",
]

#: Image suffixes read by :func:`read_frames` (OpenGait lists ``*.png`` only).
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp")

#: Files whose name contains this are skipped, as OpenGait's ``pretreat`` does.
GEI_MARK: str = "gei.png"

#: OpenGait's near-empty threshold on the intensity sum of a 0..255 frame.
DEFAULT_MIN_SUM: float = 10_000.0


def aligned_width(size: int) -> int:
    """Width of an aligned frame: the window ``centre - size//2 .. centre + size//2`` (step 5)."""
    return 2 * (size // 2)


def _as_gray_uint8(frames: np.ndarray) -> np.ndarray:
    """``bool`` -> 0/255, integers in 0..255 -> ``uint8``; anything else is refused."""
    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        return frames
    if frames.dtype == np.bool_:
        return frames.astype(np.uint8) * np.uint8(255)
    if frames.dtype.kind not in "iu" or (frames.size and (frames.min() < 0 or frames.max() > 255)):
        raise ValueError(f"frames must be bool or integers in 0..255, got dtype {frames.dtype}")
    return frames.astype(np.uint8)


def _align_rows(img: np.ndarray, size: int) -> np.ndarray | None:
    """Steps 3-5 on a frame already cropped to its non-empty rows; ``None`` drops it."""
    height, width = img.shape
    ratio = width / height  # before the multiplication, as OpenGait computes it
    new_width = int(size * ratio)
    if new_width < 1:  # thinner than 1/size of its height: OpenGait's cv2.resize would raise here
        return None
    resized = cv2.resize(np.ascontiguousarray(img), (new_width, size), interpolation=cv2.INTER_CUBIC)
    col_mass = resized.sum(axis=0, dtype=np.int64).cumsum()
    centre = int(np.searchsorted(col_mass, col_mass[-1] / 2, side="right"))  # first column past half the mass
    if centre == 0 or centre == new_width:  # column 0, or no column at all (all mass washed out)
        return None
    half = size // 2
    left, right = centre - half, centre + half
    if left <= 0 or right >= new_width:
        pad = np.zeros((size, half), dtype=np.uint8)
        resized = np.concatenate([pad, resized, pad], axis=1)
        left, right = left + half, right + half
    return np.ascontiguousarray(resized[:, left:right])


def pretreat_frame(frame: np.ndarray, size: int = 64, min_sum: float = DEFAULT_MIN_SUM) -> np.ndarray | None:
    """Align one silhouette frame; ``None`` when OpenGait would drop it.

    Args:
        frame: 2-D ``bool`` or ``uint8`` (0..255) silhouette of any size.
        size: output height (and width, rounded down to even).
        min_sum: frames whose intensity sum is at most this are dropped.

    Returns:
        ``uint8`` array ``[size, aligned_width(size)]``, or ``None`` for a
        dropped frame (nearly empty, or centred on column 0).
    """
    frame = np.asarray(frame)
    if frame.ndim != 2:
        raise ValueError(f"a frame must be a 2-D array, got shape {frame.shape}")
    out = pretreat_sequence(frame[None], size, min_sum)
    return out[0] if len(out) else None


def pretreat_sequence(
    frames: Iterable[np.ndarray] | np.ndarray, size: int = 64, min_sum: float = DEFAULT_MIN_SUM
) -> np.ndarray:
    """Align every frame of a sequence (steps 1-5 of the module docstring).

    Args:
        frames: an array ``[T, H, W]`` or an iterable of 2-D frames (which may
            differ in size), ``bool`` or integers in 0..255.
        size: output height; the width is :func:`aligned_width` of it.
        min_sum: frames whose intensity sum is at most this are dropped.

    Returns:
        ``uint8`` array ``[T', size, aligned_width(size)]``; ``T'`` counts the
        frames kept and may be 0.
    """
    if size < 2:
        raise ValueError(f"size must be at least 2, got {size}")
    empty = np.zeros((0, size, aligned_width(size)), dtype=np.uint8)
    if not isinstance(frames, np.ndarray):
        frames = list(frames)
        shapes = {np.shape(f) for f in frames}
        if len(shapes) > 1:  # frames of different sizes: one at a time
            kept = [out for f in frames for out in pretreat_sequence(np.asarray(f)[None], size, min_sum)]
            return np.stack(kept) if kept else empty
        frames = np.asarray(frames) if frames else np.zeros((0, 1, 1), dtype=np.uint8)
    if frames.ndim != 3:
        raise ValueError(f"frames must have shape [T, H, W], got {frames.shape}")
    frames = _as_gray_uint8(frames)
    mass = frames.reshape(len(frames), -1).sum(axis=1, dtype=np.int64)
    rows_on = frames.any(axis=2)  # [T, H]
    top = rows_on.argmax(axis=1)
    bottom = frames.shape[1] - rows_on[:, ::-1].argmax(axis=1)
    kept = []
    for t in np.flatnonzero(mass > min_sum):
        out = _align_rows(frames[t, top[t] : bottom[t]], size)
        if out is not None:
            kept.append(out)
    return np.stack(kept) if kept else empty


def frame_paths(folder: str | os.PathLike[str]) -> list[Path]:
    """The image files of *folder* in OpenGait's order: names sorted plainly, GEIs skipped."""
    folder = Path(folder)
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and GEI_MARK not in p.name
    )


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """One image as grayscale ``uint8``, decoded as ``cv2.imread(path, cv2.IMREAD_GRAYSCALE)`` does.

    The bytes are read by numpy and decoded by ``cv2.imdecode``, so paths that
    are not ASCII work too.

    Raises:
        DataFormatError: the file cannot be read or decoded (the error names it).
    """
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read image ({exc})") from None
    try:
        img = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    except cv2.error as exc:
        raise DataFormatError(f"{path}: cannot decode image ({exc})") from None
    if img is None:
        raise DataFormatError(f"{path}: cannot decode image (not a readable PNG, JPEG or BMP)")
    return img


def read_frames(folder: str | os.PathLike[str]) -> list[np.ndarray]:
    """Read the frames of one folder (:func:`frame_paths` order) as grayscale ``uint8`` arrays.

    Raises:
        DataFormatError: an image cannot be decoded (the error names it).
    """
    return [read_image(path) for path in frame_paths(folder)]


@dataclass
class PretreatReport:
    """What :func:`pretreat_tree` did."""

    written: list[Path] = field(default_factory=list)
    frames_in: int = 0
    frames_kept: int = 0
    empty_sequences: list[Path] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{len(self.written)} sequences written, {self.frames_kept}/{self.frames_in} frames kept, "
            f"{len(self.empty_sequences)} sequences skipped (no usable frame)"
        )


def _stack_as_read(frames: list[np.ndarray], folder: Path) -> np.ndarray:
    """The frames unchanged (OpenGait's GREW branch); they must share one size."""
    shapes = sorted({f.shape for f in frames})
    if len(shapes) > 1:
        raise DataFormatError(
            f"{folder}: frames differ in size ({', '.join(f'{h}x{w}' for h, w in shapes)}); "
            "without alignment every frame of a sequence must have the same size"
        )
    return np.stack(frames)


def _pretreat_one(job: tuple[Path, Path, str, str, str, int, float, bool]) -> tuple[Path | None, int, int, Path]:
    folder, output_root, label, seq_type, view, size, min_sum, align = job
    frames = read_frames(folder)
    if align:
        sils = pretreat_sequence(frames, size=size, min_sum=min_sum)
        frame_size: tuple[int, int] | None = (size, aligned_width(size))
    else:
        sils, frame_size = _stack_as_read(frames, folder), None
    if len(sils) == 0:
        return None, len(frames), 0, folder
    path = write_sequence(output_root, label, seq_type, view, sils, frame_size=frame_size)
    return path, len(frames), len(sils), folder


def pretreat_tree(
    input_root: str | os.PathLike[str],
    output_root: str | os.PathLike[str],
    size: int = 64,
    min_sum: float = DEFAULT_MIN_SUM,
    workers: int = 1,
    align: bool = True,
) -> PretreatReport:
    """Convert ``input_root/<id>/<type>/<view>/*.png`` into OpenGait's pkl layout.

    Each view folder becomes ``output_root/<id>/<type>/<view>/<view>.pkl``.
    Sequences whose frames are all dropped are skipped and listed in the
    report; folders without frames are ignored.

    Args:
        size: output height (steps 3-5 of the module docstring).
        min_sum: near-empty threshold (step 1).
        workers: processes to use (1 runs in this process).
        align: ``False`` keeps every frame as read, for GREW (OpenGait's
            ``--dataset GREW``); *size* and *min_sum* are then unused.

    Raises:
        DataFormatError: *input_root* is missing, an image cannot be read, or
            (``align=False``) the frames of a folder differ in size.
    """
    input_root, output_root = Path(input_root), Path(output_root)
    if not input_root.is_dir():
        raise DataFormatError(f"{input_root}: input frames root is not a folder")
    if align and size < 2:
        raise ValueError(f"size must be at least 2, got {size}")
    jobs = []
    for label_dir in sorted(p for p in input_root.iterdir() if p.is_dir()):
        for type_dir in sorted(p for p in label_dir.iterdir() if p.is_dir()):
            for view_dir in sorted(p for p in type_dir.iterdir() if p.is_dir()):
                if frame_paths(view_dir):
                    jobs.append((view_dir, output_root, label_dir.name, type_dir.name, view_dir.name,
                                 size, min_sum, align))

    report = PretreatReport()
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_pretreat_one, jobs, chunksize=max(1, len(jobs) // (4 * workers))))
    else:
        results = [_pretreat_one(job) for job in jobs]
    for path, n_in, n_kept, folder in results:
        report.frames_in += n_in
        report.frames_kept += n_kept
        if path is None:
            report.empty_sequences.append(folder)
        else:
            report.written.append(path)
    return report
