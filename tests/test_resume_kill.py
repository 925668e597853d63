"""Crash safety: a SIGKILLed run resumes to exactly the uninterrupted result; saves are atomic."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from qgait_lab.models.checkpoint import load_checkpoint, save_checkpoint

ARGS = ["train", "--method", "qgait", "--name", "kill",
        "--set", "data.synth={n_ids: 8, n_train: 5, frames: 10, views: ['018', '090']}",
        "--set", "data.batch_p=3", "--set", "data.batch_k=2", "--set", "data.frames=6",
        "--set", "full_precision.iterations=3", "--set", "stage1.iterations=3",
        "--set", "stage2.iterations=8", "--set", "stage2.k.every=2",
        "--set", "runtime.save_every=1", "--set", "runtime.log_every=1",
        "--set", "runtime.progress=false", "--set", "runtime.device=cpu"]


def _cmd(runs: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "qgait_lab.cli", *ARGS, "--set", f"runtime.runs_dir={runs}", *extra]


def _stage2_dir(runs: Path) -> Path | None:
    found = list(runs.glob("kill/qgait-w4a4-stage2-*"))
    return found[0] if found else None


def _records(stage_dir: Path) -> list[dict]:
    out = []
    for line in (stage_dir / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        r.pop("seconds", None)
        out.append(r)
    return out


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
    """The straight run builds its batches in-process; the killed and resumed one in a
    DataLoader worker, so this also checks that workers and a resume leave every batch as it was."""
    workers = ("--set", "data.num_workers=1")
    env = {**os.environ, "QGAIT_DATA_DIR": str(tmp_path / "data"), "OMP_NUM_THREADS": "1"}
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    done = subprocess.run(_cmd(straight), env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]

    proc = subprocess.Popen(_cmd(killed, *workers), env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        stage = _stage2_dir(killed)
        if stage and (stage / "metrics.jsonl").is_file():
            its = [r["iteration"] for r in _records(stage) if r["kind"] == "train"]
            if its and its[-1] >= 3:      # in the middle of the soft fine-tune (k is growing)
                proc.send_signal(signal.SIGKILL)
                killed_at = its[-1]
                break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert killed_at is not None, "the run finished before it could be killed"
    assert not (_stage2_dir(killed) / "result.json").exists()

    resumed = subprocess.run(_cmd(killed, *workers), env=env, cwd=tmp_path, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    a_dir, b_dir = _stage2_dir(straight), _stage2_dir(killed)
    assert _records(a_dir) == _records(b_dir)             # metrics, k schedule included
    a = load_checkpoint(a_dir / "checkpoints" / "last.pt")
    b = load_checkpoint(b_dir / "checkpoints" / "last.pt")
    assert a["iteration"] == b["iteration"] == 8 and a["k"] == b["k"]
    for key, value in a["model"].items():
        if torch.is_tensor(value):
            assert torch.equal(value, b["model"][key]), key
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])


def test_failed_save_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"iteration": 1, "w": torch.ones(3)}, path)

    def disk_full(obj, fh, *args, **kwargs):
        fh.write(b"partial bytes")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint({"iteration": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    state = load_checkpoint(path)
    assert state["iteration"] == 1 and torch.equal(state["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]      # no temp file left behind


def test_two_runs_with_the_same_seed_are_bitwise_equal(tmp_path):
    env = {**os.environ, "QGAIT_DATA_DIR": str(tmp_path / "data"), "OMP_NUM_THREADS": "1"}
    states = []
    for name in ("a", "b"):
        args = [a if a != "qgait" else "fp" for a in ARGS]
        cmd = [sys.executable, "-m", "qgait_lab.cli", *args, "--set", f"runtime.runs_dir={tmp_path / name}"]
        out = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        (ckpt,) = (tmp_path / name).glob("kill/fp-*/checkpoints/last.pt")
        states.append(load_checkpoint(ckpt)["model"])
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
