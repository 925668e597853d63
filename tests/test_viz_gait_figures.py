"""The figures of notebook 01 (qgait_lab.lab.figures): silhouettes, the input transform, the CASIA-B view pairs."""
from __future__ import annotations

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from qgait_lab.evaluation import casia_b_protocol  # noqa: E402
from qgait_lab.lab.figures import cross_view_figure, input_transform_figure, silhouettes_figure  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def frames(width=64, t=3):
    out = np.zeros((t, 64, width), dtype=np.uint8)
    out[:, 10:50, width // 2 - 5:width // 2 + 5] = 255
    return out


def test_silhouettes_figure_has_one_colour_bar_and_labelled_axes():
    fig = silhouettes_figure(frames(), ["a", "b", "c"], "title")
    images, bar = fig.axes[:3], fig.axes[3]
    assert len(fig.axes) == 4 and fig.get_size_inches()[0] <= 10
    assert images[0].get_ylabel() == "row" and all(ax.get_xlabel() == "column" for ax in images)
    assert images[0].images[0].get_clim() == (0.0, 255.0)            # uint8: the stored scale
    assert bar.get_ylabel() == "pixel value"
    fig = silhouettes_figure([np.full((64, 44), 0.5)], ["gei"], colorbar_label="share")
    assert fig.axes[0].images[0].get_clim() == (0.0, 1.0)            # floats: the network's scale
    fig = silhouettes_figure([np.zeros((64, 44))], ["d"], vmin=-1, vmax=1, cmap="coolwarm")
    assert fig.axes[0].images[0].get_clim() == (-1.0, 1.0)


@pytest.mark.parametrize("width, kept", [(64, 44), (44, 44), (128, 88)])
def test_input_transform_figure_shows_the_cut(width, kept):
    fig = input_transform_figure(frames(width)[0])
    stored, net = fig.axes[:2]
    assert len(fig.axes) == 4                                         # and a colour bar each
    assert stored.images[0].get_array().shape == (64, width)
    assert net.images[0].get_array().shape == (64, kept)
    assert net.images[0].get_array().max() == pytest.approx(1.0)
    assert f"{(width - kept) // 2} columns cut" in stored.get_title()
    assert all(ax.get_xlabel() == "column" and ax.get_ylabel() == "row" for ax in (stored, net))


def test_cross_view_figure_blanks_the_dropped_pairs():
    rng = np.random.default_rng(0)
    labels = np.repeat(["001", "002", "003"], 6)
    types = np.tile(["nm-01", "nm-05", "bg-01", "cl-01", "nm-01", "nm-05"], 3)
    views = np.tile(["000", "000", "000", "000", "090", "090"], 3)
    views[np.arange(18) % 6 == 2] = "090"
    result = casia_b_protocol(rng.normal(size=(18, 8, 2)), labels, types, views,
                              gallery_types=("nm-01",), probe_types={"NM": ("nm-05",), "BG": ("bg-01",),
                                                                     "CL": ("cl-01",)})
    fig = cross_view_figure(result)
    assert fig.get_size_inches()[0] <= 10
    heat = fig.axes[:3]
    for ax, cond in zip(heat, result.pair_accuracy):
        finite = int(np.isfinite(result.pair_accuracy[cond]).sum())
        assert len(ax.texts) == finite                                  # a number on every counted pair only
        assert ax.get_xlabel().startswith("gallery view") and ax.get_ylabel().startswith("probe view")
        assert cond in ax.get_title()
    assert fig.axes[3].get_ylabel() == "Rank-1 (%)"
