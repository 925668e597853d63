"""GEI and its nearest-neighbour baseline."""

from pathlib import Path

import numpy as np
import pytest

from qgait_lab.data.dataset import GaitDataset
from qgait_lab.data.gei import gei, gei_baseline, gei_features

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples" / "synthgait-mini"


def test_gei_is_the_mean_of_cut_scaled_silhouettes():
    sils = np.zeros((4, 64, 64), np.uint8)
    sils[:2, :, 5:7] = 255  # columns 5-6: cut away (10 columns go on each side)
    sils[:, 0:2, 30:32] = 255  # always on
    sils[:1, 2:4, 30:32] = 255  # on in one frame of four
    full = gei(sils, downsample=False)
    assert full.shape == (64, 44) and full.dtype == np.float32
    assert full[0, 20] == 1.0 and full[2, 20] == 0.25 and full.sum() == pytest.approx(4 * 1.0 + 4 * 0.25)
    small = gei(sils)
    assert small.shape == (32, 22)
    assert small[0, 10] == pytest.approx(1.0) and small[1, 10] == pytest.approx(0.25)


def test_gei_baseline_on_the_data_samples():
    ds = GaitDataset(SAMPLES, split="all")
    feats = gei_features(ds)
    assert feats.shape == (32, 32 * 22, 1)
    res = gei_baseline(ds, gallery_types=("nm-01",),
                       probe_types={"NM": ("nm-02",), "BG": ("bg-01",), "CL": ("cl-01",)})
    assert set(res.cross_view.mean) == {"NM", "BG", "CL"}
    assert res.same_view.mode == "same-view" and res.cross_view.mode == "cross-view"
    assert res.same_view.mean["NM"] >= 50  # 4 subjects, same view: mostly right
    assert "GEI Rank-1" in res.summary() and "same-view" in res.to_markdown()
