"""Training batches from DataLoader workers equal the serial ones; the bounded sequence cache."""
import dataclasses
import json
import multiprocessing
import pickle

import numpy as np
import pytest
import torch

from qgait_lab.data.dataset import GaitDataset, SequenceCache
from qgait_lab.data.loader import BatchStream
from qgait_lab.data.opengait import Partition, write_sequence
from qgait_lab.errors import ConfigError, DataFormatError
from qgait_lab.training.config import load_config
from qgait_lab.experiments.pipeline import Experiment, TrainBatches, build_float_model, pin_memory_for
from qgait_lab.training.trainer import Trainer

CPU = torch.device("cpu")
MODES = {  # a fixed and an unfixed (packed) batch, each with augmentation on every sequence
    "fixed": ["data.frames_mode=fixed", "data.frames=6", "data.augment=[rotate, erase]"],
    "unfixed": ["data.frames_mode=unfixed", "data.frames_min=3", "data.frames_max=9",
                "data.augment=[perspective, flip, rotate]"],
}


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    """Six ids x 6 sequences of 8..20 random 64 x 64 blobs, in OpenGait's folder layout."""
    root = tmp_path_factory.mktemp("loader-data")
    rng = np.random.default_rng(0)
    for i in range(6):
        for seq_type in ("nm-01", "nm-02", "bg-01"):
            for view in ("000", "090"):
                frames = int(rng.integers(8, 21))
                sils = np.zeros((frames, 64, 64), np.uint8)
                for t in range(frames):
                    top, left = rng.integers(0, 20), rng.integers(10, 30)
                    sils[t, top:top + 40, left:left + 18 + i] = 255
                write_sequence(root, f"{i:03d}", seq_type, view, sils)
    return root


def train_set(root, cache=False) -> GaitDataset:
    return GaitDataset(root, Partition(tuple(f"{i:03d}" for i in range(6)), ()), "train", cache=cache)


def batches_for(root, mode, *extra) -> TrainBatches:
    cfg = load_config("tiny-cpu", ["data.batch_p=3", "data.batch_k=3", "data.augment_prob=0.5",
                                   *MODES[mode], *extra])
    return TrainBatches(cfg, train_set(root), CPU)


def assert_same(a, b):
    assert torch.equal(a.sils, b.sils) and torch.equal(a.labels, b.labels) and a.seqL == b.seqL


# -- workers build exactly the serial batches ---------------------------------------------

@pytest.mark.parametrize("mode", sorted(MODES))
def test_two_workers_give_the_serial_batches_from_the_start_and_from_a_resume(dataset_root, mode):
    serial = batches_for(dataset_root, mode)
    parallel = batches_for(dataset_root, mode, "data.num_workers=2")
    expected = {i: serial(i) for i in range(7)}
    assert not torch.equal(expected[0].sils, expected[1].sils)     # the iterations do differ
    if mode == "unfixed":
        assert expected[0].seqL is not None and expected[0].sils.shape[0] == 1
    for start in (0, 4):                        # a fresh stage, and one resumed at iteration 4
        with parallel.stream(start, 7) as stream:
            assert stream.num_workers == 2
            for i in range(start, 7):
                assert_same(stream(i), expected[i])


def test_requests_out_of_order_and_past_the_end_still_get_their_batch(dataset_root):
    serial = batches_for(dataset_root, "fixed")
    with batches_for(dataset_root, "fixed", "data.num_workers=2").stream(0, 6) as stream:
        for i in (0, 1, 4, 5, 2, 3, 7):         # a jump ahead, a jump back, one past the end
            assert_same(stream(i), serial(i))


def test_batches_survive_pickling_for_spawned_workers(dataset_root):
    batches = batches_for(dataset_root, "unfixed")
    assert_same(pickle.loads(pickle.dumps(batches))(3), batches(3))


def _threads(iteration: int) -> torch.Tensor:
    return torch.tensor([iteration, torch.get_num_threads()])


def test_workers_use_one_thread_each_and_stop_with_the_stream():
    before = set(multiprocessing.active_children())
    with BatchStream(_threads, 0, 4, num_workers=2) as stream:
        got = [stream(i).tolist() for i in range(4)]
        assert len(set(multiprocessing.active_children()) - before) == 2
    assert got == [[0, 1], [1, 1], [2, 1], [3, 1]]
    assert set(multiprocessing.active_children()) - before == set()


def _broken(iteration: int) -> torch.Tensor:
    if iteration == 2:
        raise DataFormatError("/data/001/nm-01/090/090.pkl: truncated pickle")
    return torch.tensor(iteration)


def test_an_error_in_a_worker_reaches_the_training_process_with_its_type_and_file():
    with BatchStream(_broken, 0, 4, num_workers=2) as stream:
        assert int(stream(0)) == 0 and int(stream(1)) == 1
        with pytest.raises(DataFormatError, match="090.pkl: truncated pickle"):
            stream(2)


def test_a_stage_resumed_past_its_end_starts_no_worker():
    before = set(multiprocessing.active_children())
    with BatchStream(_threads, 5, 3, num_workers=2) as stream:
        assert len(stream.sampler) == 0 and stream(5).tolist()[0] == 5
        assert set(multiprocessing.active_children()) == before


def test_streaming_with_workers_leaves_the_global_torch_rng_alone():
    """The trainer checkpoints torch's RNG state; a resumed run must find it as a straight run does."""
    torch.manual_seed(3)
    state = torch.get_rng_state()
    with BatchStream(_threads, 0, 4, num_workers=2) as stream:
        stream(0), stream(2), stream(3)         # a restart makes a second DataLoader iterator
    assert torch.equal(torch.get_rng_state(), state)


def test_zero_workers_start_no_process():
    before = set(multiprocessing.active_children())
    with BatchStream(_threads, 0, 3, num_workers=0) as stream:
        assert stream(2).tolist()[0] == 2
        assert set(multiprocessing.active_children()) == before


def test_loader_settings_are_checked_and_pin_memory_follows_the_device():
    assert pin_memory_for("auto", torch.device("cuda")) and not pin_memory_for("auto", CPU)
    assert pin_memory_for("on", CPU) and not pin_memory_for("off", torch.device("cuda"))
    assert load_config("tiny-cpu", ["data.pin_memory=off"]).data.pin_memory == "off"   # YAML boolean
    for bad, message in (("data.pin_memory=sometimes", "data.pin_memory must be one of"),
                         ("data.num_workers=-1", "data.num_workers must be >= 0"),
                         ("data.prefetch_factor=0", "data.prefetch_factor must be >= 1"),
                         ("data.cache=-5", "data.cache must be >= 0")):
        with pytest.raises(ConfigError, match=message):
            load_config("tiny-cpu", [bad])


# -- the bounded cache ----------------------------------------------------------------------

def test_sequence_cache_keeps_at_most_its_bound_and_evicts_the_least_recently_used():
    arrays = {k: np.full((k + 1, 10), k, np.uint8) for k in range(6)}      # 10, 20, ... 60 bytes
    cache = SequenceCache(max_bytes=100)
    for k in (0, 1, 2, 3):                      # 10 + 20 + 30 + 40 = 100: all fit
        cache.put(k, arrays[k])
    assert cache.keys() == [0, 1, 2, 3] and cache.nbytes == 100
    assert cache.get(0) is arrays[0]            # a use: 0 becomes the most recent
    cache.put(4, arrays[4])                     # 50 more bytes: 1 (20) and 2 (30) go, 0 stays
    assert cache.keys() == [3, 0, 4] and cache.nbytes == 100 and 1 not in cache
    assert cache.get(1) is None
    cache.put(5, np.zeros(101, np.uint8))       # larger than the bound: not kept, nothing evicted
    assert cache.keys() == [3, 0, 4]
    cache.put(3, arrays[0])                     # a key put again counts once
    assert cache.nbytes == 70 and cache.keys() == [0, 4, 3]
    with pytest.raises(ValueError):
        SequenceCache(max_bytes=0)


def test_dataset_cache_is_bounded_and_changes_no_result(dataset_root):
    plain = train_set(dataset_root)
    sizes = [plain.load(i).nbytes for i in range(len(plain))]
    bound = sum(sizes) // 3
    bounded = train_set(dataset_root, cache=bound)
    rng = np.random.default_rng(1)
    for index in rng.integers(0, len(plain), size=80).tolist():
        a, b = plain.load(index), bounded.load(index)
        assert np.array_equal(a, b)
        assert bounded.cache.nbytes <= bound
    assert 0 < len(bounded.cache) < len(plain)          # it held some, not all
    assert bounded.load(index) is bounded.load(index)    # the last one is a hit
    assert train_set(dataset_root, cache=0).cache is None and plain.cache is None
    assert len(train_set(dataset_root, cache=True).cache) == 0
    with pytest.raises(ValueError, match="cache must be"):
        train_set(dataset_root, cache=-1)


# -- a short training run with workers equals one without -----------------------------------

def _fit(cfg, exp, run_dir, iterations):
    """Train full precision for ``iterations`` (resuming from run_dir); the model and its losses."""
    stage = dataclasses.replace(cfg.full_precision, iterations=iterations)
    torch.manual_seed(0)
    model = build_float_model(cfg, exp.num_classes)
    Trainer(stage, model, run_dir, CPU, loss=cfg.loss, runtime=cfg.runtime, name="full_precision").fit(exp.batches)
    losses = [(r["iteration"], r["loss"], r["triplet"], r["ce"])
              for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())]
    return model, losses


def test_training_with_workers_and_a_resume_equals_training_without(tmp_path, monkeypatch):
    monkeypatch.setenv("QGAIT_DATA_DIR", str(tmp_path / "synth"))
    exps = {w: Experiment(load_config("tiny-cpu", [f"data.num_workers={w}", "runtime.log_every=1",
                                                   "runtime.save_every=1",
                                                   f"runtime.runs_dir={tmp_path / 'runs'}"]))
            for w in (0, 2)}
    assert exps[2].batches.num_workers == 2
    straight, expected = _fit(exps[0].cfg, exps[0], tmp_path / "serial", 4)
    _fit(exps[2].cfg, exps[2], tmp_path / "workers", 2)             # stops after iteration 2 ...
    resumed, losses = _fit(exps[2].cfg, exps[2], tmp_path / "workers", 4)   # ... resumes at 2
    assert [r[0] for r in expected] == [1, 2, 3, 4] and losses == expected
    for (key, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), key
    # Loading settings are not part of a stage's fingerprint, so finished stages are reused.
    assert exps[0]._base == exps[2]._base
