"""Checkpoints load safely and explain why they do not fit."""
import pickle

import pytest
import torch

from qgait_lab.errors import QGaitError
from qgait_lab.models import GaitBase
from qgait_lab.models.checkpoint import (CheckpointError, load_checkpoint, load_model_state,
                                         model_state_of, save_checkpoint)

SMALL = dict(channels=(8, 16, 32, 64))


class Payload:
    def __reduce__(self):
        return (open, ("/tmp/qgait-checkpoint-payload-ran", "w"))


def test_opengait_checkpoint_imports_into_gaitbase(tmp_path):
    src = GaitBase(10, **SMALL)
    # OpenGait saves {'model': state_dict, 'optimizer': ..., 'scheduler': ..., 'iteration': ...}
    torch.save({"model": src.state_dict(), "optimizer": {}, "iteration": 60000}, tmp_path / "og.pt")
    dst = GaitBase(10, **SMALL)
    load_model_state(dst, model_state_of(load_checkpoint(tmp_path / "og.pt")), "og.pt")
    for (k, a), b in zip(src.state_dict().items(), dst.state_dict().values()):
        assert torch.equal(a, b), k


def test_ddp_prefix_is_removed():
    src = GaitBase(10, **SMALL).state_dict()
    state = model_state_of({"model": {f"module.{k}": v for k, v in src.items()}})
    assert set(state) == set(src)


def test_other_class_count_lists_mismatched_keys_and_shapes():
    state = GaitBase(10, **SMALL).state_dict()
    with pytest.raises(CheckpointError) as err:
        load_model_state(GaitBase(74, **SMALL), state, "ckpt.pt")
    msg = str(err.value)
    assert "ckpt.pt" in msg and "BNNecks.fc_bin" in msg and "(16, 256, 10)" in msg and "(16, 256, 74)" in msg


def test_other_architecture_lists_missing_and_unexpected_keys():
    state = GaitBase(10, **SMALL).state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["FCs.fc_bin"]
    with pytest.raises(CheckpointError) as err:
        load_model_state(GaitBase(10, **SMALL), state, "ckpt.pt")
    assert "missing keys (1): FCs.fc_bin" in str(err.value)
    assert "unexpected keys (1): extra.weight" in str(err.value)
    wider = GaitBase(10).state_dict()
    with pytest.raises(CheckpointError, match="Backbone.forward_block.conv1.conv.weight"):
        load_model_state(GaitBase(10, **SMALL), wider, "wide.pt")


def test_checkpoint_with_nans_is_refused(tmp_path):
    state = GaitBase(10, **SMALL).state_dict()
    state["FCs.fc_bin"][0, 0, 0] = float("nan")
    save_checkpoint({"model": state}, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match="NaN or Inf.*FCs.fc_bin"):
        load_model_state(GaitBase(10, **SMALL), model_state_of(load_checkpoint(tmp_path / "nan.pt")),
                         str(tmp_path / "nan.pt"))


def test_code_carrying_checkpoint_is_refused_without_running(tmp_path):
    marker = "/tmp/qgait-checkpoint-payload-ran"
    import os
    if os.path.exists(marker):
        os.remove(marker)
    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump({"model": Payload()}, fh)
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not os.path.exists(marker)


@pytest.mark.parametrize("content", [b"", b"\x80\x04garbage", b"PK\x03\x04truncated"])
def test_truncated_or_corrupt_checkpoint_names_the_file(tmp_path, content):
    (tmp_path / "bad.pt").write_bytes(content)
    with pytest.raises(QGaitError, match="bad.pt"):
        load_checkpoint(tmp_path / "bad.pt")


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
