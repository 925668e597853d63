"""The P x K sampler: contract, short identities, determinism, rank shares."""

from collections import Counter

import numpy as np
import pytest

from qgait_lab.data.sampler import PKSampler

# 6 identities; "e" has 2 sequences and "f" only 1 (fewer than K = 3).
LABELS = ["a"] * 5 + ["b"] * 4 + ["c"] * 6 + ["d"] * 3 + ["e"] * 2 + ["f"] * 1


def test_every_batch_has_p_identities_times_k_sequences():
    sampler = PKSampler(LABELS, p=4, k=3, seed=0, batches_per_epoch=25)
    labels = np.asarray(LABELS)
    assert len(sampler) == 25
    for batch in sampler:
        assert len(batch) == 12
        groups = [labels[batch[i : i + 3]] for i in range(0, 12, 3)]
        assert all(len(set(g)) == 1 for g in groups)  # k consecutive indices per identity
        assert len({g[0] for g in groups}) == 4  # p distinct identities
        for g, idx in zip(groups, (batch[i : i + 3] for i in range(0, 12, 3))):
            if Counter(LABELS)[g[0]] >= 3:
                assert len(set(idx)) == 3  # enough sequences: drawn without replacement


def test_identities_with_fewer_than_k_sequences_are_sampled_with_replacement():
    sampler = PKSampler(LABELS, p=6, k=3, seed=1)
    batch = next(iter(sampler))
    labels = np.asarray(LABELS)
    f_idx = [i for i in batch if labels[i] == "f"]
    e_idx = [i for i in batch if labels[i] == "e"]
    assert f_idx == [LABELS.index("f")] * 3
    assert len(e_idx) == 3 and set(e_idx) <= {18, 19}


def test_deterministic_per_seed_and_epoch():
    a = PKSampler(LABELS, p=3, k=2, seed=7, batches_per_epoch=5)
    b = PKSampler(LABELS, p=3, k=2, seed=7, batches_per_epoch=5)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(PKSampler(LABELS, p=3, k=2, seed=8, batches_per_epoch=5)) != first


def test_rank_shares_are_disjoint_and_cover_the_global_batch():
    world = 2
    samplers = [PKSampler(LABELS, p=4, k=2, seed=3, batches_per_epoch=4, rank=r, world_size=world) for r in range(world)]
    labels = np.asarray(LABELS)
    reference = PKSampler(LABELS, p=4, k=2, seed=3, batches_per_epoch=4)
    for shares, full in zip(zip(*samplers), reference):
        assert all(len(s) == 4 for s in shares)
        assert sum(shares, []) == full
        ids = [set(labels[s]) for s in shares]
        assert not ids[0] & ids[1]  # no identity on two ranks


def test_default_length_and_argument_checks():
    assert len(PKSampler(LABELS, p=2, k=2)) == 3  # 6 identities // 2
    with pytest.raises(ValueError, match="only 6"):
        PKSampler(LABELS, p=7, k=2)
    with pytest.raises(ValueError, match="divisible"):
        PKSampler(LABELS, p=3, k=2, world_size=2)
    with pytest.raises(ValueError, match="rank"):
        PKSampler(LABELS, p=2, k=2, rank=2, world_size=2)
    with pytest.raises(ValueError):
        PKSampler(LABELS, p=0, k=2)
