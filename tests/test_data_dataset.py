"""GaitDataset over the layout, frame sampling and collation."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from qgait_lab.data.dataset import GaitCollate, GaitDataset, sample_frames
from qgait_lab.data.opengait import Partition, write_sequence
from qgait_lab.data.sampler import PKSampler
from qgait_lab.data.transforms import gaitbase_transform
from qgait_lab.errors import DataFormatError

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples" / "synthgait-mini"


def test_splits_labels_types_views():
    train = GaitDataset(SAMPLES, split="train")
    test = GaitDataset(SAMPLES, split="test")
    every = GaitDataset(SAMPLES, split="all")
    assert (len(train), len(test), len(every)) == (16, 16, 32)
    assert train.label_names == ["001", "002"] and test.label_names == ["003", "004"]
    assert set(test.types) == {"nm-01", "nm-02", "bg-01", "cl-01"} and set(test.views) == {"054", "090"}
    item = test[5]
    assert item.sils.dtype == np.uint8 and item.sils.shape == (12, 64, 64)
    assert test.label_names[item.label] == item.info.label == test.labels[5]
    assert test.num_classes == 2 and sorted(test.indices_by_label()) == [0, 1]
    only = GaitDataset(SAMPLES, split="test", types=["nm-01"], views=["090"])
    assert len(only) == 2 and "GaitDataset" in repr(only)


def test_cache_returns_the_same_array():
    ds = GaitDataset(SAMPLES, split="test", cache=True)
    assert ds.load(0) is ds.load(0)
    assert GaitDataset(SAMPLES, split="test").load(0) is not GaitDataset(SAMPLES, split="test").load(0)


def test_missing_ids_and_partition_handling(tmp_path):
    sils = np.zeros((2, 64, 64), np.uint8)
    sils[:, 10:50, 20:40] = 255
    write_sequence(tmp_path, "001", "nm-01", "090", sils)
    ds = GaitDataset(tmp_path, Partition(("001", "002"), ()), split="train")
    assert len(ds) == 1 and ds.missing_labels == ["002"]
    with pytest.raises(DataFormatError, match="no partition"):
        GaitDataset(tmp_path, split="train")
    assert len(GaitDataset(tmp_path, split="all")) == 1


def test_sample_frames_modes():
    rng = np.random.default_rng(0)
    fixed = sample_frames(40, "fixed", rng, frames=30)
    assert len(fixed) == 30 and len(set(fixed)) == 30  # long enough: no repeats
    short = sample_frames(5, "fixed", rng, frames=30)
    assert len(short) == 30 and set(short) <= set(range(5))
    lengths = {len(sample_frames(100, "unfixed", rng, min_frames=10, max_frames=12)) for _ in range(50)}
    assert lengths == {10, 11, 12}
    assert sample_frames(7, "all", rng).tolist() == list(range(7))
    with pytest.raises(ValueError):
        sample_frames(7, "sometimes", rng)
    with pytest.raises(ValueError):
        sample_frames(0, "all", rng)


def test_fixed_collate_stacks_and_unfixed_packs():
    ds = GaitDataset(SAMPLES, split="train")
    batch = [ds[i] for i in range(4)]
    fixed = GaitCollate("fixed", frames=8, transform=gaitbase_transform(train=False))(batch)
    assert fixed["sils"].shape == (4, 8, 64, 44) and fixed["sils"].dtype == torch.float32
    assert fixed["seqL"].tolist() == [8] * 4 and fixed["packed"] is False
    assert fixed["labels"].tolist() == [ds[i].label for i in range(4)]
    assert fixed["types"] == [ds.types[i] for i in range(4)] and fixed["views"] == [ds.views[i] for i in range(4)]
    unfixed = GaitCollate("unfixed", min_frames=3, max_frames=9, transform=gaitbase_transform(downsample=True))(batch)
    seq_len = unfixed["seqL"]
    assert unfixed["packed"] is True and unfixed["sils"].shape == (1, int(seq_len.sum()), 32, 22)
    assert all(3 <= n <= 9 for n in seq_len.tolist())
    every = GaitCollate("all")(batch[:2])
    assert every["sils"].shape == (1, 24, 64, 64) and every["seqL"].tolist() == [12, 12]
    np.testing.assert_array_equal(every["sils"][0, :12].numpy(), batch[0].sils)  # in order, not rescaled


def test_collate_is_reproducible_per_seed_and_epoch():
    ds = GaitDataset(SAMPLES, split="train")
    batch = [ds[i] for i in range(3)]

    def run(seed, epoch):
        collate = GaitCollate("fixed", frames=5, transform=gaitbase_transform(p=0.5), seed=seed)
        collate.set_epoch(epoch)
        return collate(batch)["sils"]

    assert torch.equal(run(0, 0), run(0, 0))
    assert not torch.equal(run(0, 0), run(0, 1))
    assert not torch.equal(run(0, 0), run(1, 0))


def test_dataloader_with_pk_sampler_and_workers_is_deterministic():
    ds = GaitDataset(SAMPLES, split="all", cache=True)
    sampler = PKSampler(ds.label_index, p=2, k=3, seed=0, batches_per_epoch=4)

    def epoch_batches(workers):
        collate = GaitCollate("fixed", frames=4, transform=gaitbase_transform(downsample=True), seed=0)
        loader = DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=workers,
                            worker_init_fn=collate.worker_init_fn)
        sampler.set_epoch(2)
        collate.set_epoch(2)
        return [(b["labels"].tolist(), b["sils"]) for b in loader]

    a, b = epoch_batches(2), epoch_batches(2)
    assert len(a) == 4
    for (la, sa), (lb, sb) in zip(a, b):
        assert la == lb and torch.equal(sa, sb)
        assert sa.shape == (6, 4, 32, 22)
        assert len(set(la)) == 2 and all(la.count(x) == 3 for x in set(la))
