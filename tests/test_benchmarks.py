"""The benchmark script runs and prints its ratio table (its timings are not checked)."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_quant_prints_a_ratio_for_every_variant():
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_quant.py"), "--frames", "32",
           "--seq-len", "8", "--sizes", "32x22", "--channels", "8", "8", "16", "16",
           "--reps", "1", "--no-compile"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith("32x22")]
    assert [r[2] for r in rows] == ["fp32", "lsq-ste", "lsq-soft", "lsq-ste-fused", "lsq-soft-fused",
                                    "lsq-ste-fused-copy", "lsq-soft-fused-copy", "lsq-detach"]
    assert rows[0][4] == "1.00x" and all(float(r[3]) > 0 for r in rows)
    # 'saved MiB' is a byte count: the recomputed quantized inputs keep less than the saved copies.
    saved = {r[2]: float(r[8]) for r in rows}
    assert rows[0][9] == "1.00x"
    assert saved["lsq-ste-fused"] < saved["lsq-ste-fused-copy"] and saved["lsq-soft-fused"] < saved["lsq-soft-fused-copy"]


def test_bench_quant_refuses_amp_without_cuda():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_quant.py"), "--amp"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2 and "--amp" in proc.stderr and "--device cuda" in proc.stderr


def test_bench_data_prints_a_rate_for_every_preset_and_worker_count():
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_data.py"), "--workers", "0", "1",
           "--batches", "1", "--warmup", "1", "--ids", "3", "--seq-frames", "12",
           "--set", "data.batch_p=2", "--set", "data.batch_k=2", "--set", "data.frames=6"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line.split() for line in proc.stdout.splitlines() if line.split()[:1] in (["casia-b"], ["gait3d"])]
    assert [(r[0], r[1]) for r in rows] == [("casia-b", "0"), ("casia-b", "1"), ("gait3d", "0"), ("gait3d", "1")]
    assert all(float(r[2]) > 0 and float(r[4]) > 0 for r in rows)     # batches/s, CPU s per batch
    summary = [line for line in proc.stdout.splitlines() if line.startswith("# casia-b: per worker")]
    assert len(summary) == 1 and "goal 22.7/s" in summary[0] and "workers at the measured rate" in summary[0]


def test_bench_deploy_prints_every_variant_its_bytes_and_its_profile():
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_deploy.py"), "--cases", "quarter", "--batches", "1",
           "--reps", "1", "--seconds", "0", "--profile-runs", "1", "--threads", "1",
           "--variants", "torch-fp32", "ort-fp32", "ort-w8a8", "ort-w4a4"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith("quarter  32x22")]
    assert [r[3] for r in rows] == ["torch-fp32", "ort-fp32", "ort-w8a8", "ort-w4a4"]
    assert rows[0][5] == "1.00x" and rows[1][6] == "1.00x" and all(float(r[4]) > 0 for r in rows)
    assert "packed int4" in proc.stdout and "QLinearConv" in proc.stdout and "per-node profile" in proc.stdout
    assert "no slower than ort fp32" in proc.stdout


def test_bench_eval_prints_every_path_for_both_models(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_eval.py"), "--ids", "3", "--views", "018", "090",
           "--frames", "12", "--reps", "1", "--iterations", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "QGAIT_DATA_DIR": str(tmp_path / "data")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith(("fp32", "lsq-w4a4"))]
    paths = ["as-trained", "folded", "folded+packed"]
    assert [(r[0], r[1]) for r in rows] == [(m, p) for m in ("fp32", "lsq-w4a4") for p in paths]
    assert all(float(r[2]) > 0 for r in rows) and rows[0][3] == rows[3][3] == "1.00x"
    assert all(float(r[4]) <= 1e-6 for r in rows)       # the folded path's metrics are the model's
