"""Losses against small hand-computed cases (qgait_lab.losses)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from qgait_lab.errors import ConfigError, QGaitError
from qgait_lab.losses import (
    CrossEntropyLoss,
    IDDLoss,
    KDLoss,
    LossInputError,
    NotEnoughIdentitiesError,
    TripletLoss,
    idd_loss,
    idd_loss_from_distances,
    part_distances,
    triplet_loss,
)

DTYPE = torch.float64


def points_1d(values: list[float]) -> torch.Tensor:
    """Scalars as embeddings [n, c=1, p=1]."""
    return torch.tensor(values, dtype=DTYPE).view(-1, 1, 1)


# ---------------------------------------------------------------------------
# distances
# ---------------------------------------------------------------------------
def test_part_distances_match_cdist_per_part():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 7, 3, generator=g, dtype=DTYPE)
    dist = part_distances(x)
    assert dist.shape == (3, 5, 5)
    for p in range(3):
        torch.testing.assert_close(dist[p], torch.cdist(x[:, :, p], x[:, :, p]))
    assert torch.all(dist.diagonal(dim1=1, dim2=2) == 0)


def test_part_distances_gradient_is_finite_when_points_coincide():
    x = torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.0, 0.0]], dtype=DTYPE, requires_grad=True)
    part_distances(x).sum().backward()
    assert torch.isfinite(x.grad).all()


# ---------------------------------------------------------------------------
# triplet
# ---------------------------------------------------------------------------
# Points 0, 1 (label 0) and 3, 5 (label 1): d01=1, d02=3, d03=5, d12=2, d13=4, d23=2.
LINE = [0.0, 1.0, 3.0, 5.0]
LINE_LABELS = torch.tensor([0, 0, 1, 1])


def test_triplet_1d_opengait_semantics_by_hand():
    # margin 3.5, anchor counted as its own positive (OpenGait).  d_ap - d_an + m per anchor:
    #   a=0: pos d 0,1; neg d 3,5 -> 0.5, -1.5, 1.5, -0.5 -> active 0.5, 1.5
    #   a=1: pos 0,1; neg 2,4      -> 1.5, -0.5, 2.5, 0.5 -> 1.5, 2.5, 0.5
    #   a=2: pos 0,2; neg 3,2      -> 0.5, 1.5, 2.5, 3.5  -> all four
    #   a=3: pos 0,2; neg 5,4      -> -1.5, -0.5, 0.5, 1.5 -> 0.5, 1.5
    # 11 active terms summing to 16.5.
    loss, info = TripletLoss(margin=3.5)(points_1d(LINE), LINE_LABELS)
    assert loss.item() == pytest.approx(16.5 / 11)
    assert info["num_triplets"].item() == 16
    assert info["num_nonzero"].item() == 11
    assert info["nonzero_frac"].item() == pytest.approx(11 / 16)
    assert info["mean_ap"].item() == pytest.approx((1 + 2) / 2)        # off-diagonal same-label
    assert info["mean_an"].item() == pytest.approx((3 + 5 + 2 + 4) / 4)


def test_triplet_1d_excluding_self_positive_by_hand():
    # Only a != p: a=0: 1.5 | a=1: 2.5, 0.5 | a=2: 2.5, 3.5 | a=3: 0.5, 1.5 -> 12.5 over 7.
    loss = triplet_loss(points_1d(LINE), LINE_LABELS, margin=3.5, exclude_self_positive=True)
    assert loss.item() == pytest.approx(12.5 / 7)


def test_triplet_averages_parts_and_handles_zero_distances():
    # Part 0: a 3-4-5 rectangle, label 0 on the short side.  Every anchor has positives at
    # distance 0 and 3 and negatives at 4 and 5; with margin 2 the only active term is
    # 3 - 4 + 2 = 1, so part 0 gives 1.  Part 1: all points coincide, every hinge equals
    # the margin, so part 1 gives 2.  Mean over parts: 1.5.
    part0 = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [3.0, 4.0]], dtype=DTYPE)
    emb = torch.stack([part0, torch.zeros_like(part0)], dim=-1).requires_grad_(True)   # [4, 2, 2]
    loss = triplet_loss(emb, torch.tensor([0, 0, 1, 1]), margin=2.0)
    assert loss.item() == pytest.approx(1.5)
    loss.backward()
    assert torch.isfinite(emb.grad).all()


def test_triplet_is_zero_when_classes_are_far_apart():
    loss, info = TripletLoss(margin=0.2)(points_1d([0.0, 0.1, 10.0, 10.1]), LINE_LABELS)
    assert loss.item() == 0.0
    assert info["num_nonzero"].item() == 0


def _opengait_triplet(embeddings: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """OpenGait's TripletLoss.forward, restated (needs a P x K balanced batch)."""
    emb = embeddings.permute(2, 0, 1)
    x2 = (emb ** 2).sum(-1).unsqueeze(2)
    dist = torch.sqrt(F.relu(x2 + x2.transpose(1, 2) - 2 * emb @ emb.transpose(1, 2)))
    matches = labels.unsqueeze(1) == labels.unsqueeze(0)
    p, n, _ = dist.shape
    ap = dist[:, matches].view(p, n, -1, 1)
    an = dist[:, ~matches].view(p, n, 1, -1)
    loss = F.relu(ap - an + margin).view(p, -1)
    num = (loss != 0).sum(-1).float()
    avg = loss.sum(-1) / (num + 1e-9)
    avg[num == 0] = 0
    return avg.mean()


def test_triplet_matches_opengait_reference_on_a_balanced_batch():
    g = torch.Generator().manual_seed(1)
    emb = torch.randn(12, 6, 4, generator=g, dtype=DTYPE)
    labels = torch.arange(4).repeat_interleave(3)            # P=4 identities x K=3
    expected = _opengait_triplet(emb, labels, 0.2)
    assert triplet_loss(emb, labels, margin=0.2).item() == pytest.approx(expected.item(), rel=1e-9)


def test_triplet_rejects_a_single_identity():
    with pytest.raises(NotEnoughIdentitiesError, match="found 1 identity") as err:
        TripletLoss()(points_1d([0.0, 1.0, 2.0]), torch.tensor([7, 7, 7]))
    assert isinstance(err.value, QGaitError) and isinstance(err.value, ValueError)


def test_triplet_rejects_bad_shapes():
    with pytest.raises(LossInputError, match="labels"):
        triplet_loss(points_1d(LINE), torch.tensor([0, 1]))
    with pytest.raises(LossInputError, match=r"\[n, c, p\]"):
        triplet_loss(torch.zeros(4), LINE_LABELS)


# ---------------------------------------------------------------------------
# cross-entropy
# ---------------------------------------------------------------------------
def test_cross_entropy_with_smoothing_matches_manual_formula():
    g = torch.Generator().manual_seed(2)
    n, num_classes, parts, scale, eps = 3, 5, 2, 16.0, 0.1
    logits = torch.rand(n, num_classes, parts, generator=g, dtype=DTYPE) * 2 - 1   # cosines
    labels = torch.tensor([4, 0, 2])
    total, correct = 0.0, 0
    for i in range(n):
        for p in range(parts):
            z = [scale * logits[i, j, p].item() for j in range(num_classes)]
            log_norm = math.log(sum(math.exp(v) for v in z))
            nll = [log_norm - v for v in z]                                  # -log q_j
            total += (1 - eps) * nll[labels[i]] + eps * sum(nll) / num_classes
            correct += int(max(range(num_classes), key=lambda j: z[j]) == labels[i])
    loss, info = CrossEntropyLoss(scale=scale, label_smoothing=eps)(logits, labels)
    assert loss.item() == pytest.approx(total / (n * parts), rel=1e-10)
    assert info["accuracy"].item() == pytest.approx(correct / (n * parts))


def test_cross_entropy_rejects_out_of_range_labels():
    with pytest.raises(LossInputError, match=r"\[0, 5\)"):
        CrossEntropyLoss()(torch.zeros(2, 5, 3), torch.tensor([0, 5]))


# ---------------------------------------------------------------------------
# KD
# ---------------------------------------------------------------------------
def test_kd_matches_manual_kl_and_t_squared_convention():
    student = torch.tensor([[1.0, 0.0, -1.0]], dtype=DTYPE).view(1, 3, 1)
    teacher = torch.tensor([[0.5, 0.5, 0.0]], dtype=DTYPE).view(1, 3, 1)
    temperature = 2.0

    def softmax(v):
        e = [math.exp(a / temperature) for a in v]
        return [a / sum(e) for a in e]

    q_s, q_t = softmax([1.0, 0.0, -1.0]), softmax([0.5, 0.5, 0.0])
    kl = sum(t * math.log(t / s) for t, s in zip(q_t, q_s))
    loss, _ = KDLoss(temperature=temperature, scale=1.0)(student, teacher)
    assert loss.item() == pytest.approx(kl * temperature ** 2, rel=1e-12)


def test_kd_is_zero_for_identical_logits_and_leaves_the_teacher_alone():
    g = torch.Generator().manual_seed(3)
    teacher = torch.randn(4, 6, 2, generator=g, dtype=DTYPE, requires_grad=True)
    student = teacher.detach().clone().requires_grad_(True)
    loss, info = KDLoss(temperature=4.0)(student, teacher)
    assert abs(loss.item()) < 1e-12
    assert info["agreement"].item() == 1.0
    (loss + KDLoss()(student * 0.5, teacher)[0]).backward()
    assert teacher.grad is None
    assert student.grad is not None


def test_kd_rejects_non_positive_temperature():
    with pytest.raises(ConfigError):
        KDLoss(temperature=0.0)


# ---------------------------------------------------------------------------
# IDD
# ---------------------------------------------------------------------------
def _manual_idd(d_student, d_teacher, labels, tau):
    """Eqs. 14-15 with Python loops on one [n, n] distance matrix, mean over anchors."""
    n = len(labels)
    total = 0.0
    for r in range(n):
        others = [s for s in range(n) if labels[s] != labels[r]]
        w_s = [math.exp(-d_student[r][s] / tau) for s in others]
        w_t = [math.exp(-d_teacher[r][s] / tau) for s in others]
        q_s = [w / sum(w_s) for w in w_s]
        q_t = [w / sum(w_t) for w in w_t]
        total += sum(t * math.log(t / s) for t, s in zip(q_t, q_s))
    return total / n


def _dist_list(values):
    return [[abs(a - b) for b in values] for a in values]


IDD_LABELS = [0, 0, 1, 2]


def test_idd_temperature_mode_matches_manual_computation():
    teacher, student = [0.0, 0.5, 2.0, 3.0], [0.0, 0.2, 1.0, 2.5]
    expected = _manual_idd(_dist_list(student), _dist_list(teacher), IDD_LABELS, tau=0.5)
    loss = idd_loss(points_1d(student), points_1d(teacher), torch.tensor(IDD_LABELS),
                    tau=0.5, normalize="temperature")
    assert loss.item() == pytest.approx(expected, rel=1e-10)


def test_idd_mean_mode_divides_by_each_models_mean_other_label_distance():
    teacher, student = [0.0, 0.5, 2.0, 3.0], [0.0, 0.2, 1.0, 2.5]
    pairs = [(r, s) for r in range(4) for s in range(4) if IDD_LABELS[r] != IDD_LABELS[s]]

    def normalised(values):
        d = _dist_list(values)
        mean = sum(d[r][s] for r, s in pairs) / len(pairs)
        return [[v / mean for v in row] for row in d]

    expected = _manual_idd(normalised(student), normalised(teacher), IDD_LABELS, tau=0.3)
    loss = idd_loss(points_1d(student), points_1d(teacher), torch.tensor(IDD_LABELS),
                    tau=0.3, normalize="mean")
    assert loss.item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("normalize", ["temperature", "mean"])
def test_idd_ignores_same_label_distances(normalize):
    g = torch.Generator().manual_seed(4)
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    d_student = torch.rand(2, 6, 6, generator=g, dtype=DTYPE) * 3
    d_teacher = torch.rand(2, 6, 6, generator=g, dtype=DTYPE) * 3
    same = labels.unsqueeze(1) == labels.unsqueeze(0)            # includes the diagonal
    base = idd_loss_from_distances(d_student, d_teacher, labels, normalize=normalize)
    changed_student = torch.where(same, d_student * 7 + 100, d_student)
    changed_teacher = torch.where(same, torch.full_like(d_teacher, float("nan")), d_teacher)
    changed = idd_loss_from_distances(changed_student, changed_teacher, labels, normalize=normalize)
    assert torch.isfinite(changed)
    assert changed.item() == pytest.approx(base.item(), rel=1e-12)
    # ...whereas a different-label distance does matter.
    other_changed = d_student.clone()
    other_changed[:, 0, 3] += 1.0
    moved = idd_loss_from_distances(other_changed, d_teacher, labels, normalize=normalize)
    assert moved.item() != pytest.approx(base.item(), rel=1e-6)


@pytest.mark.parametrize("distance", ["per_part", "flat"])
def test_idd_is_zero_for_identical_models_and_positive_otherwise(distance):
    g = torch.Generator().manual_seed(5)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    teacher = torch.randn(6, 8, 3, generator=g, dtype=DTYPE)
    idd = IDDLoss(distance=distance)
    loss, _ = idd(teacher.clone(), teacher, labels)
    assert abs(loss.item()) < 1e-12
    student = teacher + 0.5 * torch.randn(6, 8, 3, generator=g, dtype=DTYPE)
    assert idd(student, teacher, labels)[0].item() > 1e-6


@pytest.mark.parametrize("distance", ["per_part", "flat"])
def test_idd_mean_normalisation_is_invariant_to_a_global_student_scale(distance):
    g = torch.Generator().manual_seed(6)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3])
    teacher = torch.randn(7, 8, 4, generator=g, dtype=DTYPE)
    student = teacher + 0.3 * torch.randn(7, 8, 4, generator=g, dtype=DTYPE)
    mean_mode = IDDLoss(tau=0.5, distance=distance, normalize="mean")
    base, base_info = mean_mode(student, teacher, labels)
    scaled, scaled_info = mean_mode(3.7 * student, teacher, labels)
    assert scaled.item() == pytest.approx(base.item(), rel=1e-9)
    assert scaled_info["student_mean_dist"].item() == pytest.approx(3.7 * base_info["student_mean_dist"].item())
    # Raw distances are not scale invariant: that is why "mean" exists.
    raw = IDDLoss(tau=0.5, distance=distance, normalize="temperature")
    assert raw(3.7 * student, teacher, labels)[0].item() != pytest.approx(raw(student, teacher, labels)[0].item(), rel=1e-3)


@pytest.mark.parametrize("normalize", ["temperature", "mean"])
def test_idd_gradient_is_finite_at_zero_distance(normalize):
    # Samples 0 and 2 (different labels) coincide, samples 0 and 1 (same label) coincide.
    student = torch.tensor([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [0.0, -1.0]], dtype=DTYPE)
    student = student.unsqueeze(-1).requires_grad_(True)
    teacher = torch.tensor([[0.0, 0.0], [0.1, 0.0], [1.0, 1.0], [2.0, 0.0]], dtype=DTYPE).unsqueeze(-1)
    loss, _ = IDDLoss(normalize=normalize)(student, teacher, torch.tensor([0, 0, 1, 2]))
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(student.grad).all()


def test_idd_all_embeddings_equal_is_finite():
    student = torch.ones(4, 3, 2, dtype=DTYPE, requires_grad=True)
    teacher = torch.randn(4, 3, 2, generator=torch.Generator().manual_seed(7), dtype=DTYPE)
    loss = idd_loss(student, teacher, torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()


def test_idd_teacher_is_detached_and_may_have_other_channel_count():
    g = torch.Generator().manual_seed(8)
    teacher = torch.randn(4, 10, 2, generator=g, dtype=DTYPE, requires_grad=True)
    student = torch.randn(4, 3, 2, generator=g, dtype=DTYPE, requires_grad=True)
    loss, _ = IDDLoss()(student, teacher, torch.tensor([0, 0, 1, 1]))
    loss.backward()
    assert teacher.grad is None
    assert student.grad is not None and torch.isfinite(student.grad).all()


def test_idd_per_part_and_flat_coincide_for_one_part():
    g = torch.Generator().manual_seed(9)
    teacher = torch.randn(5, 4, 1, generator=g, dtype=DTYPE)
    student = torch.randn(5, 4, 1, generator=g, dtype=DTYPE)
    labels = torch.tensor([0, 0, 1, 2, 2])
    per_part = idd_loss(student, teacher, labels, distance="per_part")
    flat = idd_loss(student, teacher, labels, distance="flat")
    assert per_part.item() == pytest.approx(flat.item(), rel=1e-12)


def test_idd_single_identity_error_names_the_count():
    emb = torch.randn(3, 4, 2)
    with pytest.raises(NotEnoughIdentitiesError, match="at least 2 identities.*found 1 identity") as err:
        IDDLoss()(emb, emb, torch.tensor([5, 5, 5]))
    assert isinstance(err.value, QGaitError) and isinstance(err.value, ValueError)


def test_idd_rejects_bad_options_and_mismatched_batches():
    with pytest.raises(ConfigError):
        IDDLoss(distance="cosine")
    with pytest.raises(ConfigError):
        IDDLoss(normalize="zscore")
    with pytest.raises(LossInputError, match="same samples"):
        IDDLoss()(torch.randn(4, 3, 2), torch.randn(5, 3, 2), torch.tensor([0, 0, 1, 1]))


def test_half_precision_inputs_are_promoted():
    emb = torch.randn(4, 3, 2, generator=torch.Generator().manual_seed(10)).to(torch.bfloat16)
    loss, _ = TripletLoss()(emb, torch.tensor([0, 0, 1, 1]))
    assert loss.dtype == torch.float32


def test_weight_scales_the_returned_loss():
    emb = points_1d(LINE)
    plain = TripletLoss(margin=3.5)(emb, LINE_LABELS)[0]
    weighted, info = TripletLoss(margin=3.5, weight=0.25)(emb, LINE_LABELS)
    assert weighted.item() == pytest.approx(0.25 * plain.item())
    assert info["loss"].item() == pytest.approx(plain.item())
