"""Two CPU processes under torchrun (gloo) train like one process."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ARGS = ["train", "--method", "fp", "--name", "ddp",
        "--set", "data.synth={n_ids: 8, n_train: 5, frames: 10, views: ['018', '090']}",
        "--set", "data.batch_p=4", "--set", "data.batch_k=2", "--set", "data.frames=6",
        "--set", "full_precision.iterations=3", "--set", "runtime.log_every=1",
        "--set", "runtime.device=cpu", "--set", "runtime.progress=false"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(n: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={n}",
            f"--master_port={_free_port()}"]


def _run(cmd, cwd, env):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    data = tmp_path_factory.mktemp("ddp-data")
    return {**os.environ, "QGAIT_DATA_DIR": str(data), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_two_process_gradients_equal_single_process(tmp_path, env):
    """The DDP plumbing is exact: same batch, same frames, global-batch losses, summed gradients.

    BatchNorm is the one thing two CPU processes cannot share (SyncBatchNorm
    needs GPUs), so the single-process reference normalises each half of the
    batch separately, like the two processes do.
    """
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    _run([sys.executable, str(HERE / "ddp_gradient_probe.py"), str(one)], tmp_path, env)
    _run(_torchrun(2) + [str(HERE / "ddp_gradient_probe.py"), str(two)], tmp_path, env)
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
    for name, grad in a["grads"].items():
        assert b["grads"][name] == pytest.approx(grad, rel=1e-4, abs=1e-6), name


@pytest.mark.slow
def test_two_process_training_run_matches_single_process(tmp_path, env):
    """Also with a DataLoader worker in each process: those losses equal the workerless ones exactly."""
    single, double, workers = tmp_path / "single", tmp_path / "double", tmp_path / "workers"
    _run([sys.executable, "-m", "qgait_lab.cli", *ARGS, "--set", f"runtime.runs_dir={single}"],
         tmp_path, env)
    _run(_torchrun(2) + ["-m", "qgait_lab.cli", *ARGS, "--set", f"runtime.runs_dir={double}"],
         tmp_path, env)
    _run(_torchrun(2) + ["-m", "qgait_lab.cli", *ARGS, "--set", f"runtime.runs_dir={workers}",
                         "--set", "data.num_workers=1"], tmp_path, env)

    def losses(runs: Path) -> list[float]:
        (metrics,) = runs.glob("ddp/fp-*/metrics.jsonl")   # only rank 0 writes
        return [r["loss"] for r in map(json.loads, metrics.read_text().splitlines())
                if r["kind"] == "train"]

    one, two = losses(single), losses(double)
    assert len(one) == len(two) == 3
    # Stated tolerance: the first loss agrees to 3 %; the only difference is the
    # per-process BatchNorm statistics (checked exactly by the test above), and
    # with two sequences per identity per process they move the loss by ~1 %.
    # Later iterations drift further apart through those statistics, so they
    # are not compared.
    assert two[0] == pytest.approx(one[0], rel=0.03)
    assert losses(workers) == two
    assert len(list(double.glob("ddp/fp-*/checkpoints/last.pt"))) == 1
