"""Paired comparisons over seeds (qgait_lab.experiments.statistics) on hand-made numbers."""
import math

import pytest

from qgait_lab.experiments.reproduce import paired_comparisons
from qgait_lab.experiments.statistics import paired_difference, paired_from_seeds


def test_the_t_interval_of_three_differences():
    # Differences 1, 2, 3: mean 2, sample sd 1, t(0.975, 2) = 4.302653 -> half width 4.302653 / sqrt(3).
    p = paired_difference([11.0, 12.0, 13.0], [10.0, 10.0, 10.0], "A", "B")
    half = 4.302653 / math.sqrt(3)
    assert p.differences == (1.0, 2.0, 3.0) and p.mean == pytest.approx(2.0)
    assert (p.low, p.high) == (pytest.approx(2 - half, abs=1e-5), pytest.approx(2 + half, abs=1e-5))
    assert p.ahead == 3 and p.verdict == "not separated by these seeds"   # the interval reaches below 0


def test_the_verdict_follows_the_interval_not_the_unpaired_spread():
    # Each column spreads over 4 points across seeds, but A is 0.5 ahead in every seed.
    a, b = [60.5, 64.5, 62.5, 58.5], [60.0, 64.0, 62.0, 58.0]
    p = paired_difference(a, b, "A", "B")
    assert p.low > 0 and p.verdict == "A ahead" and p.ahead == 4
    assert paired_difference(b, a, "B", "A").verdict == "A ahead"
    assert "A ahead in 4 of 4 seeds" in p.describe()


def test_one_seed_has_no_interval_and_uneven_sides_are_refused():
    p = paired_difference([1.0], [0.0])
    assert math.isinf(p.low) and p.verdict == "not separated by these seeds"
    assert "no interval from one seed" in p.describe()
    with pytest.raises(ValueError, match="one per seed on both sides"):
        paired_difference([1.0, 2.0], [1.0])


def _rows(q4, l4, p4):
    return [{"method": "QGait-4", "bits": "w4/a4", "rank1": q4}, {"method": "LSQ-4", "bits": "w4/a4", "rank1": l4},
            {"method": "PACT-4", "bits": "w4/a4", "rank1": p4}]


def test_table1_pairs_qgait_with_each_baseline_at_its_bits():
    per_seed = [_rows(68.0, 67.0, 69.0), _rows(69.0, 68.5, 69.5), _rows(67.5, 66.0, 68.0)]
    pairs = paired_comparisons("table1", per_seed)
    assert [(p.a, p.b) for p in pairs] == [("QGait-4", "LSQ-4"), ("QGait-4", "PACT-4")]
    lsq = pairs[0]
    assert lsq.differences == (1.0, 0.5, 1.5) and lsq.ahead == 3
    assert paired_from_seeds(per_seed, ("QGait-4", "w4/a4"), ("PACT-4", "w4/a4")).mean == pytest.approx(-2 / 3)


def test_table4_pairs_each_quantized_model_with_its_shared_teacher():
    teacher = [{"method": "GaitSet FP32", "bits": "32", "NM": 80.0, "BG": 70.0, "CL": 50.0}]
    per_seed = [[{"method": "GaitSet QGait-4", "bits": "w4/a4", "NM": 79.0 + s, "BG": 69.0, "CL": 51.0}]
                for s in range(3)]
    pairs = paired_comparisons("table4", per_seed, teacher)
    assert [(p.a, p.b, p.metric) for p in pairs] == [("GaitSet QGait-4", "GaitSet FP32", m) for m in ("NM", "BG", "CL")]
    assert pairs[0].differences == (-1.0, 0.0, 1.0) and pairs[1].verdict == "GaitSet FP32 ahead"


def test_a_lower_is_better_metric_turns_the_verdict_and_the_count():
    # QGait's distances moved less than LSQ's in every seed: QGait is ahead on a change metric.
    p = paired_difference([0.030, 0.031, 0.029], [0.050, 0.052, 0.049], "QGait", "LSQ",
                          "distance change", digits=3, lower_is_better=True)
    assert p.high < 0 and p.verdict == "QGait ahead" and p.ahead == 3
    assert "QGait − LSQ (distance change): -0.020" in p.describe()


def test_table3b_pairs_each_variant_with_the_baseline_on_rank1_and_the_distances():
    def rows(base, ft, change):
        return [{"method": "baseline (STE)", "bits": "w4/a4", "rank1": base, "distance_corr": 0.90,
                 "distance_change": 0.05},
                {"method": "+IDD+FT", "bits": "w4/a4", "rank1": ft, "distance_corr": 0.95,
                 "distance_change": change}]

    pairs = paired_comparisons("table3b", [rows(60.0, 61.0, 0.06), rows(62.0, 62.5, 0.07)])
    assert [(p.a, p.b, p.metric) for p in pairs] == [
        ("+IDD+FT", "baseline (STE)", "Rank-1"), ("+IDD+FT", "baseline (STE)", "distance corr. with FP"),
        ("+IDD+FT", "baseline (STE)", "distance change from FP")]
    change = pairs[2]
    assert change.differences == (pytest.approx(0.01), pytest.approx(0.02)) and change.ahead == 0


def test_table3b_also_pairs_the_variants_that_share_more_than_the_baseline():
    def rows(seed):
        names = ["baseline (STE)", "+KD", "+IDD", "+IDD+FT", "+IDD as printed"]
        return [{"method": n, "bits": "w4/a4", "rank1": 60.0 + i + seed, "distance_corr": 0.9,
                 "distance_change": 0.05} for i, n in enumerate(names)]

    pairs = [(p.a, p.b) for p in paired_comparisons("table3b", [rows(0), rows(1)]) if p.metric == "Rank-1"]
    assert pairs == [("+KD", "baseline (STE)"), ("+IDD", "baseline (STE)"), ("+IDD+FT", "baseline (STE)"),
                     ("+IDD as printed", "baseline (STE)"), ("+IDD", "+KD"), ("+IDD+FT", "+IDD"),
                     ("+IDD as printed", "+IDD")]


def test_table3a_pairs_each_grow_schedule_with_fixed_at_the_same_t():
    def rows(shift):
        return [{"method": f"{name} (T={t}, schedule)", "bits": "w4/a4", "rank1": 60.0 + shift + i}
                for t in (3, 5) for i, name in enumerate(["FIXED", "GROW-1", "GROW-2"])]

    pairs = paired_comparisons("table3a", [rows(0.0), rows(0.5)])
    assert [(p.a, p.b) for p in pairs] == [
        ("GROW-1 (T=3, schedule)", "FIXED (T=3, schedule)"), ("GROW-2 (T=3, schedule)", "FIXED (T=3, schedule)"),
        ("GROW-1 (T=5, schedule)", "FIXED (T=5, schedule)"), ("GROW-2 (T=5, schedule)", "FIXED (T=5, schedule)")]
    assert pairs[1].differences == (2.0, 2.0)
