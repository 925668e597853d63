"""Distances, ranking metrics and the CASIA-B / Gait3D protocols, checked by hand."""

import numpy as np
import pytest
import torch

from qgait_lab.evaluation import (
    CasiaBResult,
    casia_b_protocol,
    gait3d_protocol,
    pairwise_distance,
    rank_metrics,
)


# --------------------------------------------------------------------- distances


def _brute_force(x, y, metric):
    n, _, p = x.shape
    out = np.zeros((n, y.shape[0]))
    for i in range(n):
        for j in range(y.shape[0]):
            per_part = []
            for k in range(p):
                a, b = x[i, :, k], y[j, :, k]
                if metric == "euc":
                    per_part.append(np.linalg.norm(a - b))
                else:
                    per_part.append(1 - a @ b / np.linalg.norm(a) / np.linalg.norm(b))
            out[i, j] = np.mean(per_part)
    return out


@pytest.mark.parametrize("metric", ["euc", "cos"])
def test_pairwise_distance_matches_per_part_definition(metric):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 5, 3)), rng.normal(size=(4, 5, 3))
    np.testing.assert_allclose(pairwise_distance(x, y, metric), _brute_force(x, y, metric), atol=1e-10)


def test_pairwise_distance_averages_parts_not_flattened():
    x = np.array([[[3.0, 0.0], [0.0, 4.0]]])  # one probe, c = 2, p = 2
    y = np.zeros((1, 2, 2))
    # part 0 = (3, 0), part 1 = (0, 4): mean of norms is 3.5; flattened norm would be 5.
    assert pairwise_distance(x, y)[0, 0] == pytest.approx(3.5)


def test_pairwise_distance_chunking_and_tensor_input_agree():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(11, 8, 4)), rng.normal(size=(6, 8, 4))
    full = pairwise_distance(x, y, chunk_size=1024)
    np.testing.assert_allclose(pairwise_distance(x, y, chunk_size=3), full, atol=1e-12)
    as_tensor = pairwise_distance(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
    np.testing.assert_allclose(as_tensor, full, rtol=1e-5, atol=1e-5)
    assert full.shape == (11, 6) and full.dtype == np.float64


def test_pairwise_distance_2d_input_is_one_part_and_shapes_are_checked():
    x, y = np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]])
    assert pairwise_distance(x, y)[0, 0] == pytest.approx(5.0)
    with pytest.raises(ValueError, match="differ"):
        pairwise_distance(np.zeros((2, 3, 4)), np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match="metric"):
        pairwise_distance(x, y, metric="l1")


# ----------------------------------------------------------------------- ranking

# Hand-worked example (see the comments for each probe's ranked gallery).
GALLERY = np.array(["a", "b", "a", "c", "b"])
DIST = np.array(
    [
        [0.5, 0.1, 0.3, 0.9, 0.2],  # probe a: order b b a a c -> rel 0 0 1 1 0
        [0.4, 0.6, 0.1, 0.2, 0.3],  # probe b: order a c b a b -> rel 0 0 1 0 1
        [0.3, 0.2, 0.5, 0.1, 0.4],  # probe c: order c ...     -> rel 1 0 0 0 0
    ]
)
PROBES = np.array(["a", "b", "c"])


def test_rank_metrics_hand_computed():
    r = rank_metrics(DIST, PROBES, GALLERY, ks=(1, 2, 3, 5))
    ap = [(1 / 3 + 2 / 4) / 2, (1 / 3 + 2 / 5) / 2, 1.0]
    inp = [2 / 4, 2 / 5, 1 / 1]
    assert r.rank == pytest.approx({1: 100 / 3, 2: 100 / 3, 3: 100.0, 5: 100.0})
    assert r.mAP == pytest.approx(100 * np.mean(ap))
    assert r.mINP == pytest.approx(100 * np.mean(inp))
    assert (r.num_probes, r.num_matched) == (3, 3)


def test_probe_without_true_match_counts_as_miss_or_is_excluded():
    dist = np.vstack([DIST, [0.1, 0.2, 0.3, 0.4, 0.5]])
    probes = np.append(PROBES, "z")
    miss = rank_metrics(dist, probes, GALLERY, ks=(1, 5))
    assert miss.rank == pytest.approx({1: 25.0, 5: 75.0})
    assert miss.mAP == pytest.approx(rank_metrics(DIST, PROBES, GALLERY).mAP)  # mAP only over matched probes
    assert (miss.num_probes, miss.num_matched) == (4, 3)
    excl = rank_metrics(dist, probes, GALLERY, ks=(1, 5), unmatched="exclude")
    assert excl.rank == pytest.approx({1: 100 / 3, 5: 100.0})
    assert excl.num_probes == 3


def test_ties_are_broken_by_gallery_order():
    r = rank_metrics(np.ones((1, 3)), ["a"], ["b", "a", "a"], ks=(1, 2))
    assert r.rank == {1: 0.0, 2: 100.0}


def test_rank_result_markdown():
    text = rank_metrics(DIST, PROBES, GALLERY).to_markdown()
    assert "Rank-1" in text and "mAP" in text and "33.33" in text


# --------------------------------------------------------------------- CASIA-B


def _casia_toy():
    """Two subjects, views 000/090, one-number features.

    Gallery (nm-01): A@000 = 0, A@090 = 10, B@000 = 1, B@090 = 11.
    NM probes (nm-05): A@000 = 0.1, B@000 = 0.9, A@090 = 10.2, B@090 = 11.2.
    CL probes (cl-01): everyone looks like B@000 / A@090.
    """
    rows = [
        ("A", "nm-01", "000", 0.0), ("A", "nm-01", "090", 10.0),
        ("B", "nm-01", "000", 1.0), ("B", "nm-01", "090", 11.0),
        ("A", "nm-05", "000", 0.1), ("B", "nm-05", "000", 0.9),
        ("A", "nm-05", "090", 10.2), ("B", "nm-05", "090", 11.2),
        ("A", "cl-01", "000", 1.0), ("B", "cl-01", "000", 1.0),
        ("A", "cl-01", "090", 10.0), ("B", "cl-01", "090", 10.0),
    ]
    labels, types, views, f = zip(*rows)
    return np.array(f)[:, None, None], labels, types, views


def test_casia_b_cross_view_hand_computed():
    feats, labels, types, views = _casia_toy()
    res = casia_b_protocol(feats, labels, types, views)
    assert isinstance(res, CasiaBResult) and res.mode == "cross-view"
    # NM, probe 000 vs gallery 090: A 0.1 -> {A: 9.9, B: 10.9} right; B 0.9 -> {A: 9.1, B: 10.1} wrong.
    # NM, probe 090 vs gallery 000: A 10.2 -> {A: 10.2, B: 9.2} wrong; B 11.2 -> {A: 11.2, B: 10.2} right.
    assert res.per_view["NM"] == pytest.approx({"000": 50.0, "090": 50.0})
    assert res.mean["NM"] == pytest.approx(50.0)
    assert np.isnan(res.pair_accuracy["NM"][0, 0]) and np.isnan(res.pair_accuracy["NM"][1, 1])
    # CL, probe 000 (value 1) vs gallery 090 {A: 10, B: 11}: A nearer, so only A is right -> 50 %.
    # CL, probe 090 (value 10) vs gallery 000 {A: 0, B: 1}: B nearer -> 50 %.
    assert res.mean["CL"] == pytest.approx(50.0)
    assert "BG" not in res.per_view or not res.per_view["BG"]  # no BG probes in the toy set
    assert "NM" in res.to_markdown() and "cross-view" in str(res)


def test_casia_b_same_view_and_all_views():
    feats, labels, types, views = _casia_toy()
    same = casia_b_protocol(feats, labels, types, views, same_view=True)
    assert same.mode == "same-view"
    assert same.mean["NM"] == pytest.approx(100.0)  # every NM probe is nearest to itself in its own view
    # CL same view: 000 probes (1.0) -> B@000 (1.0) exactly: A wrong, B right; 090 (10.0) -> A: A right, B wrong.
    assert same.mean["CL"] == pytest.approx(50.0)
    both = casia_b_protocol(feats, labels, types, views, exclude_identical_view=False)
    assert both.mode == "all-views"
    assert both.mean["NM"] == pytest.approx(75.0)  # mean of the 100 % and 50 % pairs


def test_casia_b_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        casia_b_protocol(np.zeros((3, 2, 1)), ["a"] * 3, ["nm-01"] * 2, ["000"] * 3)


# ---------------------------------------------------------------------- Gait3D


def test_gait3d_protocol_ranks_probes_against_the_gallery():
    # Gallery: A at 0, B at 10, A at 20 (ordered as given). Probes: A at 1, B at 19.
    feats = np.array([0.0, 10.0, 20.0, 1.0, 19.0])[:, None, None]
    labels = ["A", "B", "A", "A", "B"]
    is_probe = [False, False, False, True, True]
    r = gait3d_protocol(feats, labels, is_probe, ks=(1, 2))
    # probe A@1: order A(1) B(9) A(19) -> rel 1 0 1: AP (1 + 2/3)/2, INP 2/3, rank-1 hit
    # probe B@19: order A(1) B(9) A(19) -> rel 0 1 0: AP 1/2, INP 1/2, rank-2 hit
    assert r.rank == pytest.approx({1: 50.0, 2: 100.0})
    assert r.mAP == pytest.approx(100 * ((1 + 2 / 3) / 2 + 0.5) / 2)
    assert r.mINP == pytest.approx(100 * (2 / 3 + 1 / 2) / 2)


# -- packed batches of test sequences ----------------------------------------------

def test_frame_batches_fill_each_batch_up_to_the_frame_budget_in_order():
    from qgait_lab.evaluation.features import frame_batches

    seqs = [torch.zeros(n) for n in (30, 50, 20, 100, 10, 10)]
    batches = [[len(s) for s in b] for b in frame_batches(iter(seqs), 80)]
    # 30+50 fills the first; 100 is longer than the budget and goes alone.
    assert batches == [[30, 50], [20], [100], [10, 10]]
    assert [len(b) for b in frame_batches(iter(seqs), 1)] == [1] * 6
    with pytest.raises(ValueError, match="batch_frames"):
        list(frame_batches(iter(seqs), 0))


class _VariableLengths:
    """A test split of sequences of 7 to 40 frames: ``len`` and ``load`` are all evaluation reads."""

    def __init__(self, n=9, size=(32, 22)):
        rng = np.random.default_rng(0)
        self.data = [(rng.random((int(rng.integers(7, 41)), *size)) > 0.6).astype(np.uint8) * 255
                     for _ in range(n)]

    def __len__(self):
        return len(self.data)

    def load(self, index):
        return self.data[index]


@pytest.mark.parametrize("fold", [False, True])
def test_embeddings_do_not_depend_on_how_sequences_are_batched(fold):
    from qgait_lab.evaluation import extract_features
    from qgait_lab.models import GaitBase

    torch.manual_seed(0)
    model = GaitBase(num_classes=5, channels=(8, 8, 16, 16), embed_dim=16).eval()
    data = _VariableLengths()
    one_each = extract_features(model, data, batch_frames=1, fold=fold)
    packed = extract_features(model, data, batch_frames=100, fold=fold)
    assert one_each.shape == (len(data), *one_each.shape[1:])
    torch.testing.assert_close(packed, one_each, rtol=1e-5, atol=1e-5)
