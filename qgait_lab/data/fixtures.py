"""Small datasets in each real dataset's own layout, generated from SynthGait walks.

:func:`write_layout_sample` writes a folder that looks, file for file, like a
tiny copy of CASIA-B, OU-MVLP, GREW or Gait3D as OpenGait stores them (the
folder names, the stored frame size, a partition json with the same keys as
OpenGait's, Gait3D's ``PROBE_SET`` included); see :mod:`qgait_lab.data.layouts`
for the facts.  The silhouettes are SynthGait renderings, so a model can learn
something from them.  The tests train and evaluate every paper preset on these
folders, the data benchmark times the input pipeline on them, and a user can
check a set-up on one before pointing it at the real dataset.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qgait_lab.data.layouts import get_layout
from qgait_lab.data.opengait import write_partition, write_sequence
from qgait_lab.data.synth import SynthConfig, render_walk
from qgait_lab.data.transforms import cut_columns

__all__ = ["LayoutSample", "write_layout_sample"]


@dataclass(frozen=True)
class LayoutSample:
    """Where :func:`write_layout_sample` wrote its dataset."""

    root: Path
    partition: Path
    layout: str
    stored_size: tuple[int, int]
    sequences: int


def _sequence_name(rng: np.random.Generator) -> str:
    # GREW names each sequence folder by an 8-character code, e.g. "4XPn5Z28".
    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"))
    return "".join(rng.choice(alphabet, 8))


def _stored(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """SynthGait's 64 x 64 frames as stored at ``size``: 64 x 44 is OpenGait's cut, done in advance."""
    if size == (64, 64):
        return frames
    cut = cut_columns(frames.shape[-1])
    return np.ascontiguousarray(frames[..., cut:frames.shape[-1] - cut])


def write_layout_sample(root: str | os.PathLike[str], layout: str, *, n_train: int = 4, n_test: int = 3,
                        frames: int = 12, stored_size: tuple[int, int] | None = None,
                        seed: int = 0) -> LayoutSample:
    """Write ``n_train + n_test`` subjects in ``layout``'s folder structure under ``root``.

    ``stored_size`` picks one of the layout's accepted sizes (Gait3D: 64 x 64 or
    64 x 44); the default is the first.  Every subject has enough sequences for
    its layout's protocol: CASIA-B's nm/bg/cl types from two views, OU-MVLP's
    ``00``/``01`` from three views, GREW's training ``00`` sequences and test
    gallery ``01``/``02`` (plus a few unlabelled ``probe/03`` sequences, as GREW
    ships them), and Gait3D's camera/video sequences with one probe per test
    subject in ``PROBE_SET``.
    """
    spec = get_layout(layout)
    size = tuple(stored_size) if stored_size is not None else spec.stored_sizes[0]
    if size not in spec.stored_sizes:
        raise ValueError(f"{spec.title} is stored {spec.describe_sizes()}, not {size[0]}x{size[1]}")
    root = Path(root)
    synth = SynthConfig(n_ids=n_train + n_test, n_train=n_train, frames=frames, seed=seed,
                        views=("000", "018", "090", "180"))
    rng = np.random.default_rng([seed, 7])
    written = 0

    def put(label: str, seq_type: str, view: str, sils: np.ndarray) -> None:
        nonlocal written
        write_sequence(root, label, seq_type, view, _stored(sils, size), frame_size=size)
        written += 1

    train_ids: list[str] = []
    test_ids: list[str] = []
    probe_set: list[str] | None = None
    for index in range(n_train + n_test):
        is_train = index < n_train
        if spec.name == "casia-b":
            label = f"{index + 1:03d}"
            for seq_type in ("nm-01", "nm-02", "nm-05", "bg-01", "cl-01"):
                for view, sils in render_walk(synth, index, seq_type, ("018", "090")).items():
                    put(label, seq_type, view, sils)
        elif spec.name == "oumvlp":
            label = f"{index + 1:05d}"
            for seq_type, walk in (("00", "nm-01"), ("01", "nm-02")):
                for view, sils in render_walk(synth, index, walk, ("000", "090", "180")).items():
                    put(label, seq_type, view, sils)
        elif spec.name == "grew":
            label = f"{index + 1:05d}" + ("train" if is_train else "")
            walks = (("00", "nm-01"), ("00", "nm-02"), ("00", "bg-01")) if is_train else \
                    (("01", "nm-01"), ("02", "nm-02"))
            for seq_type, walk in walks:
                sils = render_walk(synth, index, walk, ("090",))["090"]
                put(label, seq_type, _sequence_name(rng), sils)
        elif spec.name == "gait3d":
            label = f"{index + 1:04d}"
            seqs = []
            for number, (walk, camera) in enumerate((("nm-01", "018"), ("nm-02", "090"), ("bg-01", "180"))):
                seq_type = f"camid{int(camera) // 18 + 1}_videoid{number + 1}"
                sils = render_walk(synth, index, walk, (camera,))[camera]
                put(label, seq_type, "seq0", sils)
                seqs.append(f"{label}-{seq_type}-seq0")
            if not is_train:
                probe_set = (probe_set or []) + [seqs[0]]
        else:  # pragma: no cover - every layout has a branch
            raise ValueError(f"no sample writer for layout {layout!r}")
        (train_ids if is_train else test_ids).append(label)
    if spec.name == "grew":
        for index in range(n_train, n_train + n_test):      # unlabelled probes, kept out of the evaluation
            sils = render_walk(synth, index, "bg-01", ("090",))["090"]
            put("probe", "03", _sequence_name(rng), sils)
        test_ids.append("probe")
    partition = write_partition(root / f"{spec.title}.json", train_ids, test_ids, probe_set)
    return LayoutSample(root, partition, spec.name, size, written)
