"""Every paper preset on a small dataset in its own layout, and each protocol against OpenGait's definition.

The reference functions below are written here from OpenGait's evaluation code
(``opengait/evaluation/evaluator.py``: ``single_view_gallery_evaluation``,
``evaluate_real_scene``, ``evaluate_Gait3D``; ``metric.py``: ``cuda_dist``,
``evaluate_rank``), loop by loop, and share nothing with the library.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from qgait_lab.cli import main
from qgait_lab.data.fixtures import write_layout_sample
from qgait_lab.data.layouts import LAYOUTS, MODEL_INPUT
from qgait_lab.errors import ConfigError, DataFormatError
from qgait_lab.evaluation import (CASIA_B_GALLERY, CASIA_B_PROBES, OUMVLP_GALLERY, OUMVLP_PROBES,
                                  casia_b_protocol, evaluate_features, gait3d_protocol, real_scene_protocol)
from qgait_lab.training.config import load_config
from qgait_lab.experiments.pipeline import Experiment, input_size, load_datasets

SMALL = ["model.arguments.gaitbase.channels=[8,16,32,64]", "data.batch_p=2", "data.batch_k=2", "data.frames=6",
         "data.frames_min=4", "data.frames_max=8", "full_precision.iterations=2",
         "full_precision.optim.milestones=[1]", "runtime.device=cpu", "runtime.compile=off",
         "runtime.progress=false", "runtime.save_every=2", "runtime.log_every=1"]

EXPECTED_METRICS = {
    "casia-b": {"NM", "BG", "CL", "mean_rank1", "rank1", "rank5", "rank10", "mAP", "mINP"},
    "oumvlp": {"NM", "mean_rank1", "rank1", "rank5", "rank10", "mAP", "mINP"},
    "grew": {"rank1", "rank5", "rank10", "rank20", "mAP", "mINP"},
    "gait3d": {"rank1", "rank5", "rank10", "mAP", "mINP"},
}

CASES = [("casia-b", "casia-b", None), ("casia-b-cpu", "casia-b", None), ("oumvlp", "oumvlp", None),
         ("grew", "grew", None), ("gait3d", "gait3d", (64, 64)), ("gait3d", "gait3d", (64, 44))]


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    made = {}

    def get(layout, size):
        key = (layout, size)
        if key not in made:
            made[key] = write_layout_sample(tmp_path_factory.mktemp(layout), layout, stored_size=size)
        return made[key]

    return get


def _config(preset, sample, tmp_path, *extra):
    return load_config(preset, SMALL + [f"data.root={sample.root}", f"data.partition={sample.partition}",
                                        f"runtime.runs_dir={tmp_path / 'runs'}", *extra])


@pytest.mark.parametrize("preset,layout,size", CASES, ids=[f"{p}-{s or 'default'}" for p, _, s in CASES])
def test_each_preset_trains_two_iterations_and_evaluates_with_its_protocol(preset, layout, size, samples,
                                                                           tmp_path):
    sample = samples(layout, size)
    cfg = _config(preset, sample, tmp_path)
    assert cfg.data.layout == layout
    exp = Experiment(cfg)
    batch = exp.batches(0)
    assert tuple(batch.sils.shape[-2:]) == input_size(cfg)
    assert input_size(cfg) == (MODEL_INPUT[0] // cfg.data.downsample, MODEL_INPUT[1] // cfg.data.downsample)
    result = exp.run("fp")
    assert result.stages[-1].iterations == 2
    assert set(result.metrics) == EXPECTED_METRICS[LAYOUTS[layout].protocol]
    assert all(0.0 <= v <= 100.0 for v in result.metrics.values())


@pytest.mark.parametrize("size", [(64, 64), (64, 44)])
def test_gait3d_command_line_trains_at_64x44_from_either_stored_size(size, samples, tmp_path, capsys):
    sample = samples("gait3d", size)
    args = ["train", "--preset", "gait3d", "--method", "fp"]
    for pair in SMALL + [f"data.root={sample.root}", f"data.partition={sample.partition}",
                         f"runtime.runs_dir={tmp_path / 'runs'}", "name=g3d"]:
        args += ["--set", pair]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "64x44" in out
    for name in ("Rank-1", "Rank-5", "Rank-10", "mAP", "mINP"):
        assert name in out
    saved = next((tmp_path / "runs" / "g3d").glob("fp-*/config.yaml")).read_text()
    assert "layout: gait3d" in saved


def test_a_stored_size_the_preset_does_not_accept_names_file_sizes_and_preset(samples, tmp_path):
    sample = samples("gait3d", (64, 44))              # CASIA-B is stored 64x64 only
    cfg = _config("casia-b", sample, tmp_path)
    with pytest.raises(DataFormatError) as err:
        load_datasets(cfg)
    message = str(err.value)
    assert ".pkl" in message and "64x44" in message and "64x64" in message and "'casia-b'" in message


def test_gait3d_layout_needs_the_probe_set(samples, tmp_path):
    sample = samples("gait3d", (64, 64))
    data = json.loads(sample.partition.read_text())
    del data["PROBE_SET"]
    bare = tmp_path / "no-probes.json"
    bare.write_text(json.dumps(data))
    cfg = load_config("gait3d", SMALL + [f"data.root={sample.root}", f"data.partition={bare}"])
    with pytest.raises(DataFormatError, match="PROBE_SET"):
        load_datasets(cfg)


def test_a_real_folder_given_to_synthgait_is_an_error_that_suggests_opengait(tmp_path):
    for key in ("data.root", "data.partition"):
        with pytest.raises(ConfigError, match="data.dataset=opengait"):
            load_config("tiny-cpu", [f"{key}={tmp_path}"])
    with pytest.raises(ConfigError, match="CASIA-B's layout"):
        load_config("tiny-cpu", ["data.layout=gait3d"])


def test_the_budget_is_recorded_and_cannot_be_set_as_a_key():
    assert load_config("tiny-cpu", budget="fast").budget == "fast"
    assert load_config("tiny-cpu", budget="full").budget == "full"
    with pytest.raises(ConfigError, match="budget"):
        load_config("tiny-cpu", ["budget=lab"], budget="full")


# ---------------------------------------------------------------------------
# The protocols against OpenGait's definitions, on random features
# ---------------------------------------------------------------------------
def _og_dist(x, y):
    """OpenGait's ``cuda_dist(metric='euc')``: per-part Euclidean distance, averaged over parts."""
    x, y = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
    dist = torch.zeros(x.shape[0], y.shape[0], dtype=torch.float64)
    for i in range(x.shape[2]):
        a, b = x[:, :, i], y[:, :, i]
        d = (a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None] - 2 * a @ b.T
        dist += torch.sqrt(torch.relu(d))
    return (dist / x.shape[2]).numpy()


def _og_single_view_gallery(feature, label, seq_type, view, probe_seq_dict, gallery_seq):
    view_list = sorted(np.unique(view))
    out = {}
    for type_, probe_seq in probe_seq_dict.items():
        acc = np.zeros((len(view_list), len(view_list))) - 1.0
        for v1, probe_view in enumerate(view_list):
            pmask = np.isin(seq_type, probe_seq) & np.isin(view, probe_view)
            for v2, gallery_view in enumerate(view_list):
                gmask = np.isin(seq_type, gallery_seq) & np.isin(view, [gallery_view])
                dist = _og_dist(feature[pmask], feature[gmask])
                idx = np.argsort(dist, axis=1)[:, :1]
                hits = np.cumsum(label[pmask].reshape(-1, 1) == label[gmask][idx], 1) > 0
                acc[v1, v2] = np.round(np.sum(hits, 0) * 100 / dist.shape[0], 2)[0]
        per_view = np.sum(acc - np.diag(np.diag(acc)), 1) / (acc.shape[1] - 1.0)   # de_diag
        out[type_] = float(np.mean(per_view))
    return out


def _og_evaluate_rank(distmat, p_lbls, g_lbls, max_rank=50):
    indices = np.argsort(distmat, axis=1)
    matches = (g_lbls[indices] == p_lbls[:, None]).astype(np.int32)
    cmcs, aps, inps = [], [], []
    for p in range(distmat.shape[0]):
        raw = matches[p]
        if not raw.any():
            continue
        cmc = raw.cumsum()
        last = np.max(np.where(raw == 1))
        inps.append(cmc[last] / (last + 1.0))
        cmc[cmc > 1] = 1
        cmcs.append(cmc[:max_rank])
        precision = raw.cumsum() / (np.arange(len(raw)) + 1.0)
        aps.append((precision * raw).sum() / raw.sum())
    return np.asarray(cmcs).astype(np.float32).mean(0), np.mean(aps), np.mean(inps)


def _random_set(seed, ids, types, views, dim=8, parts=4, drop=0.1):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(ids, dim, parts))
    rows = [(i, t, v) for i in range(ids) for t in types for v in views if rng.random() > drop]
    feats = np.stack([centres[i] + rng.normal(scale=1.2, size=(dim, parts)) for i, _, _ in rows])
    label = np.array([f"{i:03d}" for i, _, _ in rows])
    return feats.astype(np.float32), label, np.array([t for _, t, _ in rows]), np.array([v for _, _, v in rows])


@pytest.mark.parametrize("dataset", ["casia-b", "oumvlp"])
def test_cross_view_tables_match_opengaits_single_view_gallery_evaluation(dataset):
    if dataset == "casia-b":
        gallery, probes = CASIA_B_GALLERY, CASIA_B_PROBES
        views = ("000", "018", "036", "054")
    else:
        gallery, probes = OUMVLP_GALLERY, OUMVLP_PROBES
        views = ("000", "015", "090", "180", "270")
    types = list(gallery) + [t for ts in probes.values() for t in ts]
    feats, label, seq_type, view = _random_set(1, 30, types, views, drop=0.0)
    ours = casia_b_protocol(feats, label, seq_type, view, gallery_types=gallery, probe_types=probes)
    theirs = _og_single_view_gallery(feats, label, seq_type, view,
                                     {k: list(v) for k, v in probes.items()}, list(gallery))
    assert set(ours.mean) == set(theirs)
    for cond in theirs:      # OpenGait rounds each view pair to 2 decimals before averaging
        assert ours.mean[cond] == pytest.approx(theirs[cond], abs=0.006)
    assert 5 < np.mean(list(theirs.values())) < 95        # neither trivial nor hopeless


def test_grew_protocol_matches_opengaits_evaluate_real_scene():
    feats, label, seq_type, _ = _random_set(2, 40, ("01", "02", "03"), ("a",), drop=0.15)
    ours = real_scene_protocol(feats, label, seq_type)
    pmask, gmask = seq_type == "02", seq_type == "01"
    dist = _og_dist(feats[pmask], feats[gmask])
    idx = np.argsort(dist, axis=1)[:, :20]
    hits = np.cumsum(label[pmask].reshape(-1, 1) == label[gmask][idx], 1) > 0
    acc = np.round(np.sum(hits, 0) * 100 / dist.shape[0], 2)
    assert (~np.isin(label[pmask], label[gmask])).any()      # some probes have no gallery: misses
    for k in (1, 5, 10, 20):
        assert ours.rank[k] == pytest.approx(acc[k - 1], abs=0.006)


def test_gait3d_protocol_matches_opengaits_evaluate_gait3d(tmp_path):
    feats, label, seq_type, view = _random_set(3, 40, ("camid1_videoid1", "camid2_videoid2", "camid3_videoid1"),
                                               ("seq0",), drop=0.2)
    keys = ["-".join(k) for k in zip(label, seq_type, view)]
    rng = np.random.default_rng(4)
    probe_set = [k for k in keys if rng.random() < 0.3]

    class Dataset:       # what evaluate_features reads from a GaitDataset
        labels, types, views = list(label), list(seq_type), list(view)
        partition = type("P", (), {"probe_set": tuple(probe_set)})()
        root = tmp_path

    ours = evaluate_features(torch.as_tensor(feats), Dataset, "gait3d")
    is_probe = np.isin(keys, probe_set)
    cmc, m_ap, m_inp = _og_evaluate_rank(_og_dist(feats[is_probe], feats[~is_probe]), label[is_probe],
                                         label[~is_probe])
    for k in (1, 5, 10):
        assert ours[f"rank{k}"] == pytest.approx(100 * cmc[k - 1], abs=1e-3)
    assert ours["mAP"] == pytest.approx(100 * m_ap, abs=1e-3)
    assert ours["mINP"] == pytest.approx(100 * m_inp, abs=1e-3)
    direct = gait3d_protocol(feats, label, is_probe)
    assert direct.rank[1] == pytest.approx(100 * cmc[0], abs=1e-3)


@pytest.mark.parametrize("preset,expected", [("gait3d", 118.30), ("grew", 141.96), ("oumvlp", 118.30)])
def test_each_paper_preset_counts_the_papers_bitops(preset, expected):
    """Table 1 (Gait3D, 100 frames), Table 2a (GREW, 120 frames), Table 2b (OU-MVLP, 100 frames)."""
    from qgait_lab.experiments.pipeline import build_float_model, model_bitops

    cfg = load_config(preset)
    with torch.device("meta"):
        model = build_float_model(cfg, num_classes=100)
    assert round(model_bitops(model, cfg) / 1e9, 2) == expected
