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
                                    "lsq-detach"]
    assert rows[0][4] == "1.00x" and all(float(r[3]) > 0 for r in rows)


def test_bench_quant_refuses_amp_without_cuda():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_quant.py"), "--amp"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2 and "--amp" in proc.stderr and "--device cuda" in proc.stderr
