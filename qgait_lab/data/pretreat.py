"""OpenGait's silhouette pretreatment: raw frames -> aligned 64 x 64 uint8.

Every silhouette the library sees, real or synthetic, passes through
:func:`pretreat_sequence`.  For each frame it follows OpenGait's
``datasets/pretreatment.py``:

1. drop the frame if it is nearly empty (intensity sum <= ``min_sum``; the
   default 10 000 is about 40 fully-on pixels);
2. crop to the rows between the top-most and bottom-most non-empty rows;
3. resize to height ``size`` keeping the aspect ratio (bicubic);
4. take ``size`` columns centred on the column *median of mass* (the first
   column where the cumulative intensity passes half the total), padding with
   zeros where that window leaves the image.

Step 3 uses Pillow's bicubic filter where OpenGait uses OpenCV's
``INTER_CUBIC``.  Pillow low-pass filters when it shrinks an image, OpenCV does
not, so edges differ by a grey level here and there; the geometry is the same.

:func:`pretreat_tree` applies it to a folder tree of PNG frames
``FRAMES_ROOT/<id>/<type>/<view>/*.png`` and writes OpenGait's pkl layout.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from qgait_lab.data.opengait import write_sequence
from qgait_lab.errors import DataFormatError

__all__ = [
    "IMAGE_SUFFIXES",
    "PretreatReport",
    "pretreat_frame",
    "pretreat_sequence",
    "pretreat_tree",
    "read_frames",
]

#: Image suffixes read by :func:`read_frames`.
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp")

#: OpenGait's near-empty threshold on the intensity sum of a 0..255 frame.
DEFAULT_MIN_SUM: float = 10_000.0


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
    """Steps 3-4 on a frame already cropped to its non-empty rows."""
    height, width = img.shape
    new_width = max(1, int(size * width / height))
    resized = np.asarray(Image.fromarray(img).resize((new_width, size), Image.BICUBIC))
    col_mass = resized.sum(axis=0, dtype=np.int64).cumsum()
    total = int(col_mass[-1])
    if total <= 0:  # the resize can wash out a one-pixel sliver
        return None
    centre = int(np.searchsorted(col_mass, total / 2, side="right"))  # first column past half the mass
    left = centre - size // 2
    lo, hi = max(left, 0), min(left + size, new_width)
    out = np.zeros((size, size), dtype=np.uint8)
    out[:, lo - left : hi - left] = resized[:, lo:hi]
    return out


def pretreat_frame(frame: np.ndarray, size: int = 64, min_sum: float = DEFAULT_MIN_SUM) -> np.ndarray | None:
    """Align one silhouette frame; ``None`` when the frame is nearly empty.

    Args:
        frame: 2-D ``bool`` or ``uint8`` (0..255) silhouette of any size.
        size: output height and width.
        min_sum: frames whose intensity sum is at most this are dropped.

    Returns:
        ``uint8`` array ``[size, size]``, or ``None`` for a dropped frame.
    """
    frame = np.asarray(frame)
    if frame.ndim != 2:
        raise ValueError(f"a frame must be a 2-D array, got shape {frame.shape}")
    out = pretreat_sequence(frame[None], size, min_sum)
    return out[0] if len(out) else None


def pretreat_sequence(
    frames: Iterable[np.ndarray] | np.ndarray, size: int = 64, min_sum: float = DEFAULT_MIN_SUM
) -> np.ndarray:
    """Align every frame of a sequence (steps 1-4 of the module docstring).

    Args:
        frames: an array ``[T, H, W]`` or an iterable of 2-D frames (which may
            differ in size), ``bool`` or integers in 0..255.
        size: output height and width.
        min_sum: frames whose intensity sum is at most this are dropped.

    Returns:
        ``uint8`` array ``[T', size, size]``; ``T'`` counts the frames kept and
        may be 0 when every frame was nearly empty.
    """
    if not isinstance(frames, np.ndarray):
        frames = list(frames)
        shapes = {np.shape(f) for f in frames}
        if len(shapes) > 1:  # frames of different sizes: one at a time
            kept = [out for f in frames for out in pretreat_sequence(np.asarray(f)[None], size, min_sum)]
            return np.stack(kept) if kept else np.zeros((0, size, size), dtype=np.uint8)
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
    if not kept:
        return np.zeros((0, size, size), dtype=np.uint8)
    return np.stack(kept)


def _natural_key(name: str) -> list[object]:
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", name)]


def read_frames(folder: str | os.PathLike[str]) -> list[np.ndarray]:
    """Read the image frames of one folder as grayscale ``uint8`` arrays.

    Files are ordered by natural sort of their names (``2.png`` before
    ``10.png``).  Colour images are converted to grayscale.

    Raises:
        DataFormatError: an image cannot be decoded (the error names it).
    """
    folder = Path(folder)
    paths = sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: _natural_key(p.name),
    )
    frames = []
    for path in paths:
        try:
            with Image.open(path) as im:
                frames.append(np.asarray(im.convert("L")))
        except (OSError, ValueError) as exc:
            raise DataFormatError(f"{path}: cannot decode image ({exc})") from None
    return frames


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


def _pretreat_one(job: tuple[Path, Path, str, str, str, int, float]) -> tuple[Path | None, int, int, Path]:
    folder, output_root, label, seq_type, view, size, min_sum = job
    frames = read_frames(folder)
    sils = pretreat_sequence(frames, size=size, min_sum=min_sum)
    if len(sils) == 0:
        return None, len(frames), 0, folder
    path = write_sequence(output_root, label, seq_type, view, sils, frame_size=(size, size))
    return path, len(frames), len(sils), folder


def pretreat_tree(
    input_root: str | os.PathLike[str],
    output_root: str | os.PathLike[str],
    size: int = 64,
    min_sum: float = DEFAULT_MIN_SUM,
    workers: int = 1,
) -> PretreatReport:
    """Convert ``input_root/<id>/<type>/<view>/*.png`` into OpenGait's pkl layout.

    Each view folder becomes ``output_root/<id>/<type>/<view>/<view>.pkl``.
    Sequences whose frames are all nearly empty are skipped and listed in the
    report; folders without images are ignored.

    Args:
        workers: processes to use (1 runs in this process).

    Raises:
        DataFormatError: *input_root* is missing or an image cannot be read.
    """
    input_root, output_root = Path(input_root), Path(output_root)
    if not input_root.is_dir():
        raise DataFormatError(f"{input_root}: input frames root is not a folder")
    jobs = []
    for label_dir in sorted(p for p in input_root.iterdir() if p.is_dir()):
        for type_dir in sorted(p for p in label_dir.iterdir() if p.is_dir()):
            for view_dir in sorted(p for p in type_dir.iterdir() if p.is_dir()):
                if any(p.suffix.lower() in IMAGE_SUFFIXES for p in view_dir.iterdir()):
                    jobs.append((view_dir, output_root, label_dir.name, type_dir.name, view_dir.name, size, min_sum))

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
