"""A map-style dataset over OpenGait's layout, plus frame sampling and collation.

:class:`GaitDataset` lists the sequences of one split (``train``, ``test`` or
``all``) and loads them through the safe reader of
:mod:`~qgait_lab.data.opengait`.  Items are :class:`GaitSample` tuples of raw
``uint8`` frames, the integer class index and the :class:`SequenceInfo`.

:class:`GaitCollate` turns a list of samples into a batch: it picks frames
(OpenGait's *fixed*, *unfixed* and *all* sampling), applies a sequence
transform, and stacks or packs the result:

* ``"fixed"``: ``frames`` frames per sequence, drawn without order (with
  replacement only when the sequence is shorter), stacked to ``[B, T, H, W]``;
* ``"unfixed"``: each sequence gets a length uniform in ``min..max`` and the
  sequences are packed along time to ``[1, sum T, H, W]``;
* ``"all"``: every frame, in order, packed (the test setting).

The batch also holds ``seqL`` (the frame count of each sequence, a
``LongTensor [B]``) and ``packed`` (whether ``sils`` is packed); a model splits
a packed tensor with ``torch.split(sils, seqL.tolist(), dim=1)``.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Literal, NamedTuple, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from qgait_lab.data.opengait import (FRAME_SIZE, Partition, SequenceInfo, load_silhouettes, read_partition,
                                     scan_layout)
from qgait_lab.data.transforms import SequenceTransform
from qgait_lab.errors import DataFormatError

__all__ = ["FrameSampling", "GaitCollate", "GaitDataset", "GaitSample", "SequenceCache", "sample_frames"]

Split = Literal["train", "test", "all"]
FrameSampling = Literal["fixed", "unfixed", "all"]


class GaitSample(NamedTuple):
    """One dataset item."""

    sils: np.ndarray  # uint8 [T, H, W]
    label: int  # index into GaitDataset.label_names
    info: SequenceInfo


class SequenceCache:
    """Loaded sequences kept in memory, least recently used first out, bounded in bytes.

    Args:
        max_bytes: the most bytes of arrays held (``arr.nbytes`` summed), or
            ``None`` for no bound.  A single array larger than the bound is
            not kept.

    :meth:`get` counts as a use: it moves the entry to the most recent end.
    :meth:`put` evicts from the least recent end until the new entry fits.
    """

    def __init__(self, max_bytes: int | None = None) -> None:
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1 or None, got {max_bytes}")
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._items: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: int) -> bool:
        return key in self._items

    def keys(self) -> list[int]:
        """The keys held, least recently used first."""
        return list(self._items)

    def get(self, key: int) -> np.ndarray | None:
        array = self._items.get(key)
        if array is not None:
            self._items.move_to_end(key)
        return array

    def put(self, key: int, array: np.ndarray) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self.nbytes -= old.nbytes
        if self.max_bytes is not None:
            if array.nbytes > self.max_bytes:
                return
            while self.nbytes + array.nbytes > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self.nbytes -= evicted.nbytes
        self._items[key] = array
        self.nbytes += array.nbytes

    def __repr__(self) -> str:
        bound = "unbounded" if self.max_bytes is None else f"max_bytes={self.max_bytes}"
        return f"SequenceCache({len(self)} sequences, {self.nbytes} bytes, {bound})"


def _make_cache(cache: bool | int) -> SequenceCache | None:
    if isinstance(cache, bool):
        return SequenceCache() if cache else None
    if not isinstance(cache, (int, np.integer)) or cache < 0:
        raise ValueError(f"cache must be True, False or a number of bytes >= 0, got {cache!r}")
    return SequenceCache(int(cache)) if cache else None


class GaitDataset(Dataset):
    """The sequences of one split of an OpenGait-layout dataset.

    Args:
        root: dataset root (``root/<id>/<type>/<view>/*.pkl``).
        partition: a :class:`Partition`, a path to a partition json, or
            ``None`` to use ``root/partition.json`` when it exists.
        split: ``"train"``, ``"test"`` or ``"all"`` (every id in the
            partition, or every id found when there is no partition).
        cache: keep loaded arrays in memory.  ``False`` (or 0): never;
            ``True``: every sequence loaded (unbounded, like OpenGait's
            ``data_cfg.cache`` in opengait/data/dataset.py, which loads the
            whole split up front); an int ``n > 0``: a least-recently-used
            cache of at most ``n`` bytes of frames (:class:`SequenceCache`).
            The cache is per process: each DataLoader worker holds its own
            copy of the dataset and fills its own cache, so ``w`` workers
            may together hold ``w`` times the bound.
        frame_size: required ``(H, W)`` of the stored frames, ``None`` for any.
        types, views: keep only these sequence types / views.

    Attributes:
        sequences: the :class:`SequenceInfo` of every item, sorted.
        label_names: sorted subject ids; ``label`` of an item indexes it.
        labels, types, views: per-item subject id, type and view (strings).
        label_index: per-item class index, ``int64`` array.
        missing_labels: partition ids with no sequence on disk.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        partition: Partition | str | os.PathLike[str] | None = None,
        split: Split = "train",
        *,
        cache: bool | int = False,
        frame_size: tuple[int, int] | None = FRAME_SIZE,
        types: Sequence[str] | None = None,
        views: Sequence[str] | None = None,
    ) -> None:
        self.root = Path(root)
        if partition is None and (self.root / "partition.json").is_file():
            partition = self.root / "partition.json"
        if partition is not None and not isinstance(partition, Partition):
            partition = read_partition(partition)
        self.partition: Partition | None = partition
        if partition is None:
            if split != "all":
                raise DataFormatError(f"{self.root}: no partition json given or found, so only split='all' is possible")
            wanted = None
        else:
            wanted = partition.split(split)
        self.split = split
        seqs = scan_layout(self.root, wanted)
        if types is not None:
            seqs = [s for s in seqs if s.type in set(types)]
        if views is not None:
            seqs = [s for s in seqs if s.view in set(views)]
        self.sequences: list[SequenceInfo] = seqs
        self.label_names: list[str] = sorted({s.label for s in seqs})
        self.missing_labels: list[str] = sorted(set(wanted) - set(self.label_names)) if wanted is not None else []
        lookup = {name: i for i, name in enumerate(self.label_names)}
        self.labels = [s.label for s in seqs]
        self.types = [s.type for s in seqs]
        self.views = [s.view for s in seqs]
        self.label_index = np.array([lookup[s.label] for s in seqs], dtype=np.int64)
        self.frame_size = frame_size
        self.cache: SequenceCache | None = _make_cache(cache)

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def num_classes(self) -> int:
        """Number of distinct subjects."""
        return len(self.label_names)

    def load(self, index: int) -> np.ndarray:
        """The ``uint8`` frames ``[T, H, W]`` of item *index*."""
        if self.cache is not None:
            cached = self.cache.get(index)
            if cached is not None:
                return cached
        sils = load_silhouettes(self.sequences[index].path, self.frame_size)
        if self.cache is not None:
            self.cache.put(index, sils)
        return sils

    def __getitem__(self, index: int) -> GaitSample:
        return GaitSample(self.load(index), int(self.label_index[index]), self.sequences[index])

    def indices_by_label(self) -> dict[int, list[int]]:
        """Item indices grouped by class index."""
        groups: dict[int, list[int]] = {}
        for i, label in enumerate(self.label_index.tolist()):
            groups.setdefault(label, []).append(i)
        return groups

    def __repr__(self) -> str:
        return (
            f"GaitDataset(root={str(self.root)!r}, split={self.split!r}, sequences={len(self)}, "
            f"subjects={self.num_classes})"
        )


def sample_frames(
    n_available: int,
    mode: FrameSampling,
    rng: np.random.Generator,
    frames: int = 30,
    min_frames: int = 10,
    max_frames: int = 50,
) -> np.ndarray:
    """Indices of the frames to take from a sequence of *n_available* frames.

    ``"fixed"`` draws ``frames`` indices, ``"unfixed"`` a length uniform in
    ``min_frames..max_frames``; both draw without replacement when the
    sequence is long enough and with replacement otherwise, in random order.
    ``"all"`` returns ``0 .. n_available - 1``.
    """
    if n_available < 1:
        raise ValueError("cannot sample frames from an empty sequence")
    if mode == "all":
        return np.arange(n_available)
    if mode == "fixed":
        count = frames
    elif mode == "unfixed":
        if not 1 <= min_frames <= max_frames:
            raise ValueError(f"need 1 <= min_frames <= max_frames, got {min_frames}, {max_frames}")
        count = int(rng.integers(min_frames, max_frames + 1))
    else:
        raise ValueError(f"unknown frame sampling {mode!r}; expected 'fixed', 'unfixed' or 'all'")
    return rng.choice(n_available, size=count, replace=n_available < count)


class GaitCollate:
    """Collate :class:`GaitSample` lists into training or test batches.

    Args:
        mode: frame sampling, see the module docstring.
        frames: frames per sequence for ``"fixed"``.
        min_frames, max_frames: length range for ``"unfixed"``.
        transform: applied to each sequence (float ``[T, H, W]``, 0..255 in);
            ``None`` only converts to float.
        seed: base seed of the frame and augmentation draws.

    Randomness: the generator is reset from ``(seed, epoch)`` by
    :meth:`set_epoch` and, inside DataLoader workers, from
    ``(seed, epoch, worker)`` by :meth:`worker_init_fn`; pass both to get
    reproducible batches with any number of workers::

        collate = GaitCollate("fixed", transform=gaitbase_transform())
        loader = DataLoader(ds, batch_sampler=sampler, collate_fn=collate,
                            worker_init_fn=collate.worker_init_fn)
        for epoch in ...: sampler.set_epoch(epoch); collate.set_epoch(epoch); ...

    Returns (per call) a dict with ``sils`` (float32), ``seqL`` (int64
    ``[B]``), ``packed`` (bool), ``labels`` (int64 ``[B]``), and the lists
    ``label_names``, ``types``, ``views``.
    """

    def __init__(
        self,
        mode: FrameSampling = "fixed",
        frames: int = 30,
        min_frames: int = 10,
        max_frames: int = 50,
        transform: SequenceTransform | None = None,
        seed: int = 0,
    ) -> None:
        if mode not in ("fixed", "unfixed", "all"):
            raise ValueError(f"unknown frame sampling {mode!r}; expected 'fixed', 'unfixed' or 'all'")
        self.mode = mode
        self.frames, self.min_frames, self.max_frames = frames, min_frames, max_frames
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self.rng = np.random.default_rng([seed, 0])

    def set_epoch(self, epoch: int) -> None:
        """Restart the random stream for *epoch*."""
        self.epoch = epoch
        self.rng = np.random.default_rng([self.seed, epoch])

    def worker_init_fn(self, worker_id: int) -> None:
        """Give DataLoader worker *worker_id* its own stream (see the class docstring)."""
        # The worker holds the same copy of this object as its collate_fn, so resetting self suffices.
        self.rng = np.random.default_rng([self.seed, self.epoch, worker_id + 1])

    def __call__(self, batch: Sequence[GaitSample]) -> dict[str, Any]:
        seqs = []
        for sample in batch:
            idx = sample_frames(len(sample.sils), self.mode, self.rng, self.frames, self.min_frames, self.max_frames)
            sils = torch.from_numpy(np.ascontiguousarray(sample.sils[idx])).to(torch.float32)
            if self.transform is not None:
                sils = self.transform(sils, self.rng)
            seqs.append(sils)
        seq_len = torch.tensor([len(s) for s in seqs], dtype=torch.int64)
        packed = self.mode != "fixed"
        sils = torch.cat(seqs, 0)[None] if packed else torch.stack(seqs, 0)
        return {
            "sils": sils,
            "seqL": seq_len,
            "packed": packed,
            "labels": torch.tensor([s.label for s in batch], dtype=torch.int64),
            "label_names": [s.info.label for s in batch],
            "types": [s.info.type for s in batch],
            "views": [s.info.view for s in batch],
        }
