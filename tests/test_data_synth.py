"""SynthGait: layout, determinism, caching, atomic writes, covariates and difficulty."""

import dataclasses
import json

import numpy as np
import pytest

import qgait_lab.data.synth as synth
from qgait_lab.data.body import Identity
from qgait_lab.data.dataset import GaitDataset
from qgait_lab.data.gei import gei_baseline
from qgait_lab.data.opengait import load_silhouettes, read_partition, scan_layout
from qgait_lab.data.synth import (SynthConfig, ensure_synthgait, generate_synthgait, render_walk,
                                  sequence_types)
from qgait_lab.errors import QGaitError
from qgait_lab.evaluation import casia_b_protocol

TINY = SynthConfig(n_ids=3, n_train=2, views=("018", "090"), frames=6, seed=11)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return generate_synthgait(tmp_path_factory.mktemp("synth") / "tiny", TINY, workers=1)


def test_identity_has_many_body_and_gait_parameters():
    numeric = [f.name for f in dataclasses.fields(Identity) if f.type in ("float", float)]
    assert len(numeric) >= 20
    for name in ("cadence", "hip_amplitude", "arm_swing", "knee_amplitude", "torso_lean", "bounce", "asymmetry"):
        assert name in numeric


def test_layout_shapes_dtype_and_partition(tiny_root):
    infos = scan_layout(tiny_root)
    assert len(infos) == 3 * 10 * 2
    assert {i.type for i in infos} == set(sequence_types()) == set(TINY.all_types())
    assert {i.view for i in infos} == {"018", "090"}
    for info in infos:
        assert info.path == tiny_root / info.label / info.type / info.view / f"{info.view}.pkl"
        sils = load_silhouettes(info.path)
        assert sils.dtype == np.uint8 and sils.shape == (6, 64, 64)
        assert sils.max() == 255 and sils[:, 0].any() and sils[:, -1].any()  # pretreated: full height
    part = read_partition(tiny_root / "partition.json")
    assert part.train == ("001", "002") and part.test == ("003",)
    meta = json.loads((tiny_root / "synthgait.json").read_text())
    assert meta["sequences"] == 60 and meta["frames"] == 360 and meta["cache_key"] == TINY.cache_key()


def test_output_is_byte_identical_for_a_seed_whatever_the_workers(tiny_root, tmp_path):
    again = generate_synthgait(tmp_path / "again", TINY, workers=2)
    files = sorted(p.relative_to(tiny_root) for p in tiny_root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (tiny_root / rel).read_bytes() == (again / rel).read_bytes(), rel
    other = render_walk(dataclasses.replace(TINY, seed=12), 0, "nm-01")
    assert not np.array_equal(other["090"], load_silhouettes(tiny_root / "001" / "nm-01" / "090" / "090.pkl"))


def test_views_of_one_walk_share_the_gait_but_walks_differ():
    views = render_walk(TINY, 0, "nm-01", views=("090", "090"))
    assert len(views) == 1  # a dict keyed by view
    a = render_walk(TINY, 0, "nm-01")["090"]
    b = render_walk(TINY, 0, "nm-02")["090"]
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_covariates_change_the_silhouette():
    area = {t: render_walk(TINY, 1, t, views=("090",))["090"].mean() for t in ("nm-01", "bg-01", "cl-01")}
    assert area["cl-01"] > 1.1 * area["nm-01"]  # the coat widens the body
    assert area["bg-01"] != area["nm-01"]


def test_generation_refuses_to_overwrite_and_is_atomic(tmp_path, monkeypatch):
    out = tmp_path / "ds"
    out.mkdir()
    with pytest.raises(QGaitError, match="already exists"):
        generate_synthgait(out, TINY)
    out.rmdir()

    calls = {"n": 0}
    real = synth._generate_subject

    def flaky(args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("interrupted")
        return real(args)

    monkeypatch.setattr(synth, "_generate_subject", flaky)
    with pytest.raises(RuntimeError, match="interrupted"):
        generate_synthgait(out, TINY, workers=1)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no half dataset, no temporary folder


def test_ensure_synthgait_generates_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QGAIT_DATA_DIR", str(tmp_path / "cache"))
    assert synth.synthgait_cache_root() == tmp_path / "cache"
    config = dataclasses.replace(TINY, n_ids=2, n_train=1, views=("090",), types=("nm-01", "cl-01"))
    root = ensure_synthgait(config, workers=1)
    assert root == tmp_path / "cache" / f"synthgait-{config.cache_key()}"
    assert len(scan_layout(root)) == 4

    def must_not_run(*args, **kwargs):
        raise AssertionError("regenerated a cached dataset")

    monkeypatch.setattr(synth, "generate_synthgait", must_not_run)
    assert ensure_synthgait(config) == root
    assert config.cache_key() != dataclasses.replace(config, noise=0.0).cache_key()


def test_config_validation():
    with pytest.raises(ValueError, match="view"):
        SynthConfig(views=("045",))
    with pytest.raises(ValueError, match="n_train"):
        SynthConfig(n_ids=3, n_train=4)
    with pytest.raises(ValueError, match="types"):
        SynthConfig(types=("nm-07",))
    assert SynthConfig(n_ids=1000, n_train=1).labels()[-1] == "1000"


def test_synth_cli_writes_a_dataset(tmp_path, capsys):
    from qgait_lab.cli import main

    out = tmp_path / "cli"
    code = main(["synth", "--out", str(out), "--ids", "2", "--train-ids", "1", "--views", "090",
                 "--types", "nm-01,bg-01", "--frames", "4", "--quiet"])
    assert code == 0 and "SynthGait ready" in capsys.readouterr().out
    assert len(scan_layout(out)) == 4
    assert main(["synth", "--out", str(out), "--ids", "2", "--quiet"]) == 2  # exists: a clean error


@pytest.fixture(scope="module")
def difficulty_set(tmp_path_factory):
    config = SynthConfig(n_ids=12, n_train=0, views=("054", "090", "126"), frames=16, seed=0)
    root = generate_synthgait(tmp_path_factory.mktemp("difficulty") / "ds", config, workers=2)
    return GaitDataset(root, split="test", cache=True)


@pytest.fixture(scope="module")
def difficulty_gei(difficulty_set):
    return gei_baseline(difficulty_set)


def test_gei_difficulty_ordering(difficulty_gei):
    cross, same = difficulty_gei.cross_view.mean, difficulty_gei.same_view.mean
    assert same["NM"] >= 60  # same view, same clothes: easy
    assert cross["NM"] <= same["NM"] - 20  # cross-view: much harder
    assert cross["CL"] < cross["NM"] and same["CL"] < same["NM"]  # the coat hurts
    assert same["BG"] < same["NM"]
    assert all(v < 100 for v in [*cross.values(), *same.values()])


def test_one_global_number_does_not_identify_people(difficulty_set, difficulty_gei):
    """Nearest neighbour on the mean silhouette width (or area) is weak even in the same view."""
    ds = difficulty_set
    width = np.array([(ds.load(i) > 127).any(axis=1).sum(axis=1).mean() for i in range(len(ds))])
    area = np.array([ds.load(i).mean() for i in range(len(ds))])
    gei_same = difficulty_gei.same_view.mean["NM"]
    for scalar in (width, area):
        same = casia_b_protocol(scalar[:, None, None], ds.labels, ds.types, ds.views, same_view=True)
        assert same.mean["NM"] <= 35
        assert same.mean["NM"] < gei_same / 2
