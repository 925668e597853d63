"""OpenGait's pretreatment, on frames we render ourselves and on hand-made edge cases.

The parity tests run the library against ``_opengait_reference``, written here from the facts of
OpenGait's ``datasets/pretreatment.py`` (``pretreat`` lists the files, ``imgs2pickle`` aligns each
frame), loop by loop and without sharing code with ``qgait_lab.data.pretreat``.
"""

import dataclasses
import shutil
from collections import defaultdict

import cv2
import numpy as np
import pytest
from PIL import Image

import qgait_lab.data.synth as synth
from qgait_lab.cli import main as data_cli
from qgait_lab.data.opengait import load_silhouettes
from qgait_lab.data.pretreat import pretreat_frame, pretreat_sequence, pretreat_tree, read_frames, read_image
from qgait_lab.data.synth import SynthConfig, ensure_synthgait, render_walk
from qgait_lab.errors import DataFormatError

CONFIG = SynthConfig(n_ids=2, n_train=1, views=("036", "090"), frames=6, seed=3)


# --------------------------------------------------------------------------
# An independent reference: OpenGait's algorithm, written out loop by loop
# --------------------------------------------------------------------------


def _opengait_frame(img, img_size, events):
    """One frame of ``imgs2pickle``; appends what happened to *events*, returns the frame or None."""
    total = 0
    for value in img.ravel().tolist():
        total += value
    if total <= 10000:
        events.append("empty")
        return None
    on_rows = [r for r in range(img.shape[0]) if any(img[r])]
    img = img[on_rows[0] : on_rows[-1] + 1, :]
    ratio = img.shape[1] / img.shape[0]
    img = cv2.resize(img, (int(img_size * ratio), img_size), interpolation=cv2.INTER_CUBIC)
    half_total = int(img.astype(np.int64).sum()) / 2
    x_center, running = None, 0
    for col in range(img.shape[1]):
        running += int(img[:, col].astype(np.int64).sum())
        if running > half_total:
            x_center = col
            break
    if not x_center:  # None, or column 0
        events.append("no centre")
        return None
    half_width = img_size // 2
    left, right = x_center - half_width, x_center + half_width
    if left <= 0 or right >= img.shape[1]:
        events.append("padded")
        left, right = left + half_width, right + half_width
        zeros = np.zeros((img.shape[0], half_width))
        img = np.concatenate([zeros, img, zeros], axis=1)
    else:
        events.append("inside")
    return img[:, left:right].astype("uint8")


def _opengait_reference(root, img_size=64, align=True):
    """``{(id, type, view): frames}`` for every sequence OpenGait would write, and the per-frame events."""
    groups = defaultdict(list)
    for path in root.rglob("*.png"):
        if "gei.png" in path.as_posix():
            continue
        *_, sid, seq, view, _ = path.as_posix().split("/")
        groups[(sid, seq, view)].append(path)
    out, events = {}, defaultdict(list)
    for key, paths in groups.items():
        frames = []
        for path in sorted(paths):
            img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if not align:  # OpenGait's dataset == 'GREW'
                frames.append(img.astype("uint8"))
                continue
            frame = _opengait_frame(img, img_size, events[key])
            if frame is not None:
                frames.append(frame)
        if frames:
            out[key] = np.asarray(frames)
    return out, events


# --------------------------------------------------------------------------
# Frames on disk
# --------------------------------------------------------------------------


def _save_png(path, frame):
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = np.asarray(frame)
    Image.fromarray(frame.astype(np.uint8) * 255 if frame.dtype == bool else frame.astype(np.uint8)).save(path)


def _write_pngs(folder, frames, names=None):
    for i, frame in enumerate(frames):
        _save_png(folder / (names[i] if names else f"{i + 1:04d}.png"), frame)


def _body(height=120, width=80, cols=(30, 50), rows=(10, 110), value=255):
    img = np.zeros((height, width), np.uint8)
    img[rows[0] : rows[1], cols[0] : cols[1]] = value
    img[rows[0] : rows[0] + 12, cols[0] - 6 : cols[1] + 6] = value  # shoulders, so it is not a plain bar
    return img


#: (w, h) where int(44 * (w / h)) == 29 but int(44 * w / h) == 30: the order of the float operations matters.
THIN_W, THIN_H, THIN_SIZE = 15, 22, 44


def _edge_cases():
    """``{view: [frames]}`` of hand-made frames, each meant to hit one rule of ``imgs2pickle``."""
    rng = np.random.default_rng(0)
    left = _body(cols=(0, 12), width=90)  # touches the left border: the window starts left of column 0
    right = _body(cols=(78, 90), width=90)  # touches the right border
    centre0 = np.zeros((100, 50), np.uint8)
    centre0[:, 0:2] = 255  # most of the mass in column 0 after the resize
    centre0[40:45, 40:45] = 255
    near_empty = np.zeros((60, 60), np.uint8)
    near_empty.flat[:39] = 255  # 39 * 255 = 9945 <= 10000: dropped
    at_threshold = np.zeros((60, 60), np.uint8)
    at_threshold[20:30, 20:24] = 250  # exactly 10 000: still dropped (<=)
    just_over = at_threshold.copy()
    just_over[20, 20] = 251  # 10 001: kept
    thin = np.zeros((THIN_H + 20, THIN_W), np.uint8)
    thin[10 : 10 + THIN_H, 3:12] = 255  # rows crop to THIN_H, the width stays THIN_W
    grey = (_body() * rng.uniform(0.3, 1.0, (120, 80))).astype(np.uint8)  # anti-aliased grey levels
    return {
        "left": [left, _body(cols=(2, 16), width=90)],
        "right": [right],
        "centre0": [centre0, _body()],
        "empty": [near_empty, at_threshold, just_over],
        "thin": [thin],
        "grey": [grey],
        "wide": [_body(width=240, cols=(110, 130))],  # the window fits inside: no padding
    }


def _colour_frames():
    """An RGB and an RGBA silhouette whose channels differ (grey = OpenCV's weighted sum)."""
    rgb = np.zeros((120, 80, 3), np.uint8)
    rgb[10:110, 30:50] = (200, 40, 90)
    rgb[10:40, 24:56] = (10, 250, 30)
    rgba = np.dstack([rgb[..., ::-1], np.full((120, 80), 128, np.uint8)])
    return rgb, rgba


@pytest.fixture(scope="module")
def raw_walk():
    return render_walk(CONFIG, 0, "nm-01", raw=True)


@pytest.fixture(scope="module")
def frames_root(tmp_path_factory, raw_walk):
    """A FRAMES_ROOT with a rendered walk, the edge cases, a colour folder, odd names and a GEI."""
    root = tmp_path_factory.mktemp("frames")
    for view, frames in raw_walk.items():
        _write_pngs(root / "001" / "nm-01" / view, frames)
    for view, frames in _edge_cases().items():
        _write_pngs(root / "900" / "edge-01" / view, frames)
    rgb, rgba = _colour_frames()
    colour = root / "900" / "colour-01" / "000"
    colour.mkdir(parents=True)
    Image.fromarray(rgb, "RGB").save(colour / "0001.png")
    Image.fromarray(rgba, "RGBA").save(colour / "0002.png")
    order = root / "900" / "order-01" / "000"  # plain sorted order is 1, 10, 2 (not natural order)
    _write_pngs(order, [_body(cols=(10 + 10 * i, 24 + 10 * i)) for i in range(3)], names=["2.png", "10.png", "1.png"])
    _save_png(order / "gei.png", np.full((120, 80), 200, np.uint8))  # a GEI beside the frames: skipped
    _write_pngs(root / "900" / "void-01" / "000", [np.zeros((40, 30), np.uint8)] * 3)  # nothing usable
    return root


def _written(pkl_root):
    return {tuple(p.relative_to(pkl_root).parts[:3]): load_silhouettes(p, frame_size=None)
            for p in pkl_root.rglob("*.pkl")}


# --------------------------------------------------------------------------
# Parity with the reference
# --------------------------------------------------------------------------


@pytest.mark.parametrize("size", [64, THIN_SIZE, 33])
def test_pretreat_tree_is_identical_to_opengaits_algorithm(frames_root, tmp_path, size):
    expected, events = _opengait_reference(frames_root, size)
    pretreat_tree(frames_root, tmp_path / "pkl", size=size)
    got = _written(tmp_path / "pkl")
    assert sorted(got) == sorted(expected)
    for key, frames in expected.items():
        assert got[key].shape == frames.shape, key
        assert np.array_equal(got[key], frames), key
    # Each edge case hit the rule it was made for, so the comparison above covered that rule.
    edge = lambda view: events[("900", "edge-01", view)]  # noqa: E731
    assert edge("left") == ["padded", "padded"] and edge("right") == ["padded"]
    assert edge("centre0")[0] == "no centre" and edge("centre0")[1] != "no centre"
    assert edge("empty")[:2] == ["empty", "empty"] and edge("empty")[2] != "empty"
    assert edge("wide") == ["inside"]
    assert ("900", "void-01", "000") not in got
    assert len(got[("900", "order-01", "000")]) == 3  # the GEI was not read as a frame
    assert got[("900", "colour-01", "000")].shape[0] == 2


def test_thin_frame_width_follows_opengaits_float_order(frames_root, tmp_path):
    assert int(THIN_SIZE * (THIN_W / THIN_H)) != int(THIN_SIZE * THIN_W / THIN_H)  # the case is a real one
    thin = read_frames(frames_root / "900" / "edge-01" / "thin")[0]
    out = pretreat_frame(thin, size=THIN_SIZE)
    expected = _opengait_frame(thin, THIN_SIZE, [])
    assert np.array_equal(out, expected)
    # The window holds the whole resized body: its mass is that of the 29-column resize, not the 30-column one.
    mass = {w: int(cv2.resize(thin[10 : 10 + THIN_H], (w, THIN_SIZE), interpolation=cv2.INTER_CUBIC).sum())
            for w in (29, 30)}
    assert int(out.sum()) == mass[29] != mass[30]


def test_grew_keeps_every_frame_as_read(frames_root, tmp_path):
    root = tmp_path / "grew"
    frames = [np.zeros((64, 44), np.uint8), _body(64, 44, cols=(15, 30), rows=(2, 60))]  # an empty frame too
    _write_pngs(root / "00001" / "00" / "4", frames)
    report = pretreat_tree(root, tmp_path / "pkl", align=False)
    expected, _ = _opengait_reference(root, align=False)
    got = _written(tmp_path / "pkl")
    assert report.frames_kept == report.frames_in == 2
    assert sorted(got) == sorted(expected) == [("00001", "00", "4")]
    assert np.array_equal(got[("00001", "00", "4")], expected[("00001", "00", "4")])
    assert np.array_equal(got[("00001", "00", "4")], np.stack(frames))


def test_grew_refuses_frames_of_different_sizes(tmp_path):
    folder = tmp_path / "grew" / "00001" / "00" / "4"
    _write_pngs(folder, [np.zeros((64, 44), np.uint8), np.zeros((64, 64), np.uint8)])
    with pytest.raises(DataFormatError, match=r"00001/00/4.*64x44, 64x64"):
        pretreat_tree(tmp_path / "grew", tmp_path / "pkl", align=False)


def test_pretreat_cli_no_align_and_workers(frames_root, tmp_path, capsys):
    assert data_cli(["pretreat", "--input", str(frames_root), "--output", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "sequences written" in out and "skipped (no usable frame)" in out and "void-01" in out
    pretreat_tree(frames_root, tmp_path / "b", workers=2)
    a, b = _written(tmp_path / "a"), _written(tmp_path / "b")
    assert sorted(a) == sorted(b)
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    shutil.copytree(frames_root / "900" / "order-01", tmp_path / "c-in" / "900" / "order-01")
    assert data_cli(["pretreat", "--input", str(tmp_path / "c-in"), "--output", str(tmp_path / "c"), "--no-align"]) == 0
    kept = load_silhouettes(tmp_path / "c" / "900" / "order-01" / "000" / "000.pkl", frame_size=None)
    assert kept.shape == (3, 120, 80)  # as read: not cropped, not resized, the GEI left out
    assert data_cli(["pretreat", "--input", str(frames_root), "--output", str(tmp_path / "d"), "--size", "1"]) == 2
    assert "--size must be at least 2" in capsys.readouterr().err and not (tmp_path / "d").exists()


# --------------------------------------------------------------------------
# Reading frames
# --------------------------------------------------------------------------


def test_frames_are_read_in_plain_sorted_order_without_the_gei(frames_root):
    folder = frames_root / "900" / "order-01" / "000"
    first_col = [int(np.flatnonzero(f.any(axis=0))[0]) for f in read_frames(folder)]
    # 1.png, 10.png, 2.png: OpenGait sorts the paths with sorted(); natural order would give [24, 4, 14]
    assert first_col == [24, 14, 4]


def test_colour_images_convert_as_opencvs_imread(frames_root):
    folder = frames_root / "900" / "colour-01" / "000"
    paths = sorted(folder.iterdir())
    with Image.open(paths[0]) as rgb, Image.open(paths[1]) as rgba:
        assert (rgb.mode, rgba.mode) == ("RGB", "RGBA")
    frames = read_frames(folder)
    assert len(frames) == 2
    for got, path in zip(frames, paths):
        # libpng's conversion, which imread uses for PNGs, can differ by one grey level from cv2.cvtColor's
        assert np.array_equal(got, cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))


def test_non_ascii_paths_are_read(tmp_path):
    frame = _body()
    path = tmp_path / "sïlhouettes-步态" / "0001.png"
    _save_png(path, frame)
    assert np.array_equal(read_image(path), frame)


@pytest.mark.parametrize("content", [b"", b"not a png at all"])
def test_undecodable_image_names_the_file(tmp_path, content):
    folder = tmp_path / "frames" / "001" / "nm-01" / "090"
    _write_pngs(folder, [_body()])
    (folder / "0002.png").write_bytes(content)
    with pytest.raises(DataFormatError, match=r"0002\.png: cannot decode"):
        pretreat_tree(tmp_path / "frames", tmp_path / "pkl")


# --------------------------------------------------------------------------
# Properties of the alignment, and SynthGait
# --------------------------------------------------------------------------


def _median_column(img):
    mass = img.sum(axis=0, dtype=np.int64).cumsum()
    return int(np.argmax(mass > mass[-1] / 2))


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


def test_odd_size_gives_one_column_less_as_opengait():
    out = pretreat_frame(_body(), size=33)
    assert out.shape == (33, 32)
    with pytest.raises(ValueError, match="size"):
        pretreat_frame(_body(), size=1)


def test_near_empty_frames_are_dropped():
    few = np.zeros((100, 100), bool)
    few.flat[:39] = True  # 39 * 255 < 10 000
    enough = np.zeros((100, 100), bool)
    enough[10:20, 10:15] = True  # 50 pixels
    assert pretreat_frame(few) is None
    assert pretreat_frame(enough) is not None
    seq = pretreat_sequence([few, enough, np.zeros((80, 60), np.uint8)])  # mixed sizes are fine
    assert seq.shape == (1, 64, 64)
    assert pretreat_sequence(np.zeros((3, 50, 50), bool)).shape == (0, 64, 64)


def test_frame_centred_on_column_zero_is_dropped():
    frame = np.zeros((100, 50), np.uint8)
    frame[:, 0:2] = 255
    assert frame.sum() > 10_000 and pretreat_frame(frame) is None
    frame[:, 20:26] = 255  # more mass to the right: the centre moves off column 0
    assert pretreat_frame(frame) is not None


def test_frame_whose_width_rounds_to_zero_is_dropped():
    frame = np.full((100, 1), 255, np.uint8)  # int(64 * (1 / 100)) == 0: OpenGait's cv2.resize would raise
    assert frame.sum() > 10_000 and pretreat_frame(frame) is None
    frame = np.full((60, 2), 255, np.uint8)  # int(64 * (2 / 60)) == 2 columns, the centre is column 1
    out = pretreat_frame(frame)
    assert out is not None and np.array_equal(out, _opengait_frame(frame, 64, []))


def test_frame_type_checks():
    with pytest.raises(ValueError):
        pretreat_frame(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError):
        pretreat_sequence(np.full((1, 10, 10), 300, np.int32))


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


def test_a_synthgait_cache_from_before_opencv_is_not_reused(tmp_path, monkeypatch):
    config = dataclasses.replace(CONFIG, n_ids=1, types=("nm-01",), views=("090",))
    with monkeypatch.context() as patch:
        patch.setattr(synth, "GENERATOR_VERSION", 2)  # the last version that resized with Pillow
        stale = tmp_path / f"synthgait-{config.cache_key()}"
    stale.mkdir()
    (stale / "synthgait.json").write_text("{}")  # looks complete
    root = ensure_synthgait(config, cache_root=tmp_path, workers=1)
    assert root != stale
    raw = render_walk(config, 0, "nm-01", raw=True)["090"]
    np.testing.assert_array_equal(
        load_silhouettes(root / "001" / "nm-01" / "090" / "090.pkl"),
        np.stack([_opengait_frame(f.astype(np.uint8) * 255, 64, []) for f in raw]),
    )
