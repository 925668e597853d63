"""OpenGait's pretreatment, on frames we render ourselves."""

import numpy as np
import pytest
from PIL import Image

from qgait_lab.cli import main as data_cli
from qgait_lab.data.opengait import load_silhouettes
from qgait_lab.data.pretreat import pretreat_frame, pretreat_sequence, pretreat_tree, read_frames
from qgait_lab.data.synth import SynthConfig, render_walk

CONFIG = SynthConfig(n_ids=2, n_train=1, views=("036", "090"), frames=6, seed=3)


def _median_column(img):
    mass = img.sum(axis=0, dtype=np.int64).cumsum()
    return int(np.argmax(mass > mass[-1] / 2))


@pytest.fixture(scope="module")
def raw_walk():
    return render_walk(CONFIG, 0, "nm-01", raw=True)


def test_rendered_frames_are_larger_than_the_format(raw_walk):
    for frames in raw_walk.values():
        assert frames.dtype == bool and frames.shape[0] == 6
        assert frames.shape[1] > 100  # rendered at ~128 px per 1.7 m, then brought to 64


def test_pretreated_frame_spans_the_height_and_is_centred_on_the_median(raw_walk):
    for frames in raw_walk.values():
        for frame in frames:
            out = pretreat_frame(frame)
            assert out.shape == (64, 64) and out.dtype == np.uint8
            rows = np.flatnonzero(out.any(axis=1))
            assert rows[0] == 0 and rows[-1] == 63  # cropped to the body, resized to height 64
            assert _median_column(out) == 32


def test_rectangle_is_resized_keeping_aspect_and_centred():
    frame = np.zeros((300, 200), np.uint8)
    frame[50:150, 40:60] = 255  # 100 rows x 20 columns
    out = pretreat_frame(frame)
    # Rows crop to 100, the full 200-column width scales to 128, the 20-column bar to ~12.8.
    cols = np.flatnonzero(out.max(axis=0) > 128)
    assert 12 <= len(cols) <= 14
    assert _median_column(out) == 32
    assert out[:, cols].min() > 0 and out[0].any() and out[63].any()


def test_near_empty_frames_are_dropped():
    few = np.zeros((100, 100), bool)
    few.flat[:30] = True  # 30 * 255 < 10 000
    enough = np.zeros((100, 100), bool)
    enough[10:20, 10:15] = True  # 50 pixels
    assert pretreat_frame(few) is None
    assert pretreat_frame(enough) is not None
    seq = pretreat_sequence([few, enough, np.zeros((80, 60), np.uint8)])  # mixed sizes are fine
    assert seq.shape == (1, 64, 64)
    assert pretreat_sequence(np.zeros((3, 50, 50), bool)).shape == (0, 64, 64)


def test_frame_type_checks():
    with pytest.raises(ValueError):
        pretreat_frame(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError):
        pretreat_sequence(np.full((1, 10, 10), 300, np.int32))


def _write_pngs(folder, frames, names=None):
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        name = names[i] if names else f"{i + 1:04d}.png"
        Image.fromarray(frame.astype(np.uint8) * 255).save(folder / name)


def test_png_tree_gives_exactly_what_the_generator_writes(tmp_path, raw_walk):
    frames_root, pkl_root = tmp_path / "frames", tmp_path / "pkl"
    for view, frames in raw_walk.items():
        _write_pngs(frames_root / "001" / "nm-01" / view, frames)
    _write_pngs(frames_root / "001" / "nm-02" / "090", np.zeros((3, 40, 30), bool))  # nothing usable
    report = pretreat_tree(frames_root, pkl_root)
    assert len(report.written) == 2 and report.frames_kept == 12 and report.frames_in == 15
    assert report.empty_sequences == [frames_root / "001" / "nm-02" / "090"]
    expected = render_walk(CONFIG, 0, "nm-01")  # the generator's own (pretreated) output
    for view in raw_walk:
        got = load_silhouettes(pkl_root / "001" / "nm-01" / view / f"{view}.pkl")
        np.testing.assert_array_equal(got, expected[view])


def test_pretreat_cli_and_parallel_workers_agree(tmp_path, raw_walk, capsys):
    frames_root = tmp_path / "frames"
    for view, frames in raw_walk.items():
        _write_pngs(frames_root / "007" / "cl-01" / view, frames)
    assert data_cli(["pretreat", "--input", str(frames_root), "--output", str(tmp_path / "a")]) == 0
    assert "2 sequences written" in capsys.readouterr().out
    pretreat_tree(frames_root, tmp_path / "b", workers=2)
    for view in raw_walk:
        rel = f"007/cl-01/{view}/{view}.pkl"
        np.testing.assert_array_equal(load_silhouettes(tmp_path / "a" / rel), load_silhouettes(tmp_path / "b" / rel))


def test_frames_are_read_in_natural_order(tmp_path):
    frames = [np.zeros((20, 20), bool) for _ in range(3)]
    for i, f in enumerate(frames):
        f[: (i + 1) * 5] = True  # 5, 10, 15 rows on
    _write_pngs(tmp_path / "v", frames, names=["2.png", "10.png", "1.png"])
    rows_on = [int(f.any(axis=1).sum()) for f in read_frames(tmp_path / "v")]
    assert rows_on == [15, 5, 10]  # 1.png, 2.png, 10.png
