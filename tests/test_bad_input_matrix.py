"""The bad-input matrix: every case gets a clear error naming the file or option.

Each row: (case, trigger, expected error type, fragments the message must hold).
The README's troubleshooting section mirrors this table.  Cases that need a
process or a long run live beside their module and are cross-referenced:
disk full during a save (test_resume_kill.py), a SIGKILL mid-run
(test_resume_kill.py), a NaN loss (test_training.py).
"""
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from qgait_lab.data.dataset import GaitCollate, GaitDataset
from qgait_lab.data.opengait import Partition, load_silhouettes, write_sequence
from qgait_lab.data.sampler import PKSampler
from qgait_lab.errors import ConfigError, DataFormatError, QGaitError, UnsafePickleError
from qgait_lab.losses import IDDLoss, NotEnoughIdentitiesError, TripletLoss
from qgait_lab.models import GaitBase
from qgait_lab.quant import LSQQuantizer
from qgait_lab.models.checkpoint import CheckpointError, load_model_state
from qgait_lab.training.config import load_config

MARKER = Path("/tmp/qgait-matrix-payload-ran")
SMALL = dict(channels=(8, 16, 32, 64))


class _Evil:
    def __reduce__(self):
        return (open, (str(MARKER), "w"))


def _pkl(tmp, obj, name="seq.pkl", raw=None):
    path = tmp / name
    path.write_bytes(raw if raw is not None else pickle.dumps(obj, protocol=4))
    return path


def _sils(t=3):
    s = np.zeros((t, 64, 64), np.uint8)
    s[:, 10:50, 20:40] = 255
    return s


def malicious_pickle(tmp):
    load_silhouettes(_pkl(tmp, _Evil()))


def truncated_pkl(tmp):
    load_silhouettes(_pkl(tmp, None, raw=pickle.dumps(_sils(), protocol=4)[:200]))


def wrong_dtype(tmp):
    load_silhouettes(_pkl(tmp, _sils().astype(np.float32)))


def wrong_ndim(tmp):
    load_silhouettes(_pkl(tmp, _sils()[0]))


def wrong_frame_size(tmp):
    load_silhouettes(_pkl(tmp, _sils()[:, :, :44]))


def empty_sequence(tmp):
    load_silhouettes(_pkl(tmp, np.zeros((0, 64, 64), np.uint8)))


def all_zero_sequence(tmp):
    load_silhouettes(_pkl(tmp, np.zeros((5, 64, 64), np.uint8)))


def out_of_range(tmp):
    load_silhouettes(_pkl(tmp, _sils().astype(np.int16) * 2))


def unreadable_file(tmp):
    (tmp / "seq.pkl").mkdir()          # a folder where a file should be (root ignores chmod)
    load_silhouettes(tmp / "seq.pkl")


def partition_names_missing_ids(tmp):
    from qgait_lab.experiments.pipeline import load_datasets
    for label in ("001", "002"):
        write_sequence(tmp, label, "nm-01", "090", _sils())
    (tmp / "partition.json").write_text('{"TRAIN_SET": ["001", "003"], "TEST_SET": ["002"]}')
    cfg = load_config("tiny-cpu", ["data.dataset=opengait", f"data.root={tmp}",
                                   f"data.partition={tmp / 'partition.json'}"])
    load_datasets(cfg)


def one_identity_triplet(tmp):
    TripletLoss()(torch.randn(4, 8, 2), torch.zeros(4, dtype=torch.long))


def one_identity_idd(tmp):
    IDDLoss()(torch.randn(4, 8, 2), torch.randn(4, 8, 2), torch.zeros(4, dtype=torch.long))


def checkpoint_with_nans(tmp):
    state = GaitBase(5, **SMALL).state_dict()
    state["BNNecks.fc_bin"].fill_(float("nan"))
    load_model_state(GaitBase(5, **SMALL), state, "nan.pt")


def checkpoint_other_class_count(tmp):
    load_model_state(GaitBase(74, **SMALL), GaitBase(5, **SMALL).state_dict(), "other.pt")


def bits_zero(tmp):
    LSQQuantizer(0, is_weight=True)


def bits_33(tmp):
    load_config("tiny-cpu", ["quant.bits=33"])


def bits_not_integer(tmp):
    LSQQuantizer(4.5, is_weight=True)


def k_below_one(tmp):
    load_config("tiny-cpu", ["stage2.k.start=0.5"])


def unknown_preset(tmp):
    load_config("casia_b")


def unknown_config_key(tmp):
    load_config("tiny-cpu", ["runtime.seeed=3"])


MATRIX = [
    ("pickle that would run code", malicious_pickle, UnsafePickleError, ["seq.pkl", "refused"]),
    ("truncated pkl", truncated_pkl, DataFormatError, ["seq.pkl", "truncated"]),
    ("wrong dtype", wrong_dtype, DataFormatError, ["seq.pkl", "float32"]),
    ("wrong ndim", wrong_ndim, DataFormatError, ["seq.pkl", "3 dimensions"]),
    ("wrong frame size", wrong_frame_size, DataFormatError, ["seq.pkl", "frame size 64x44"]),
    ("empty sequence", empty_sequence, DataFormatError, ["seq.pkl", "empty sequence"]),
    ("all-zero sequence", all_zero_sequence, DataFormatError, ["seq.pkl", "frames are empty"]),
    ("values outside 0..255", out_of_range, DataFormatError, ["seq.pkl", "outside 0..255"]),
    ("unreadable file", unreadable_file, DataFormatError, ["seq.pkl"]),
    ("partition naming missing ids", partition_names_missing_ids, DataFormatError,
     ["partition.json", "003", "allow_missing_ids"]),
    ("one identity in a batch (triplet)", one_identity_triplet, NotEnoughIdentitiesError,
     ["identit"]),
    ("one identity in a batch (IDD)", one_identity_idd, NotEnoughIdentitiesError, ["identit"]),
    ("checkpoint with NaNs", checkpoint_with_nans, CheckpointError, ["nan.pt", "NaN"]),
    ("checkpoint of another class count", checkpoint_other_class_count, CheckpointError,
     ["other.pt", "BNNecks.fc_bin", "(16, 256, 5)", "(16, 256, 74)"]),
    ("bits = 0", bits_zero, ConfigError, ["bits", "0"]),
    ("bits = 33", bits_33, ConfigError, ["quant.bits", "33"]),
    ("bits not an integer", bits_not_integer, ConfigError, ["bits", "4.5"]),
    ("soft quantizer with k < 1", k_below_one, ConfigError, ["k must be", "0.5"]),
    ("unknown preset", unknown_preset, ConfigError, ["casia_b", "did you mean 'casia-b'"]),
    ("unknown config key", unknown_config_key, ConfigError, ["runtime.seeed", "did you mean 'seed'"]),
]


@pytest.mark.parametrize("case,trigger,error,fragments", MATRIX, ids=[m[0] for m in MATRIX])
def test_bad_input_gets_a_clear_error(tmp_path, case, trigger, error, fragments):
    MARKER.unlink(missing_ok=True)
    with pytest.raises(error) as info:
        trigger(tmp_path)
    assert isinstance(info.value, QGaitError)
    for fragment in fragments:
        assert fragment in str(info.value), (case, str(info.value))
    assert not MARKER.exists(), "a pickle payload ran"


def test_id_with_fewer_sequences_than_k_is_sampled_with_replacement():
    labels = np.array([0, 0, 0, 1, 2, 2, 2, 2])     # id 1 has one sequence, K = 3
    batch = next(iter(PKSampler(labels, p=3, k=3, seed=0)))
    assert len(batch) == 9
    by_id = {int(labels[i]) for i in batch}
    assert by_id == {0, 1, 2} and batch.count(3) == 3     # the lone sequence, three times


def test_nothing_written_is_lost_when_a_sequence_write_fails(tmp_path):
    write_sequence(tmp_path, "001", "nm-01", "090", _sils())
    before = (tmp_path / "001" / "nm-01" / "090" / "090.pkl").read_bytes()
    with pytest.raises(QGaitError):
        write_sequence(tmp_path, "001", "nm-01", "090", np.zeros((0, 64, 64), np.uint8))
    assert (tmp_path / "001" / "nm-01" / "090" / "090.pkl").read_bytes() == before
