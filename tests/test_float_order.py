"""``reproduce --what variation`` (qgait_lab.experiments.float_order): the float orders, the report
on hand-made rows, and that a kernel cap set in a fresh process changes a convolution's sums."""
import subprocess
import sys
from pathlib import Path

import pytest

from qgait_lab.errors import ConfigError
from qgait_lab.experiments.float_order import FloatOrder, float_orders, variation_section, variation_units


def test_a_float_order_round_trips_through_its_unit_name():
    order = FloatOrder(2, "AVX2")
    assert order.unit == "threads=2,isa=AVX2" and FloatOrder.parse(order.unit) == order
    assert FloatOrder.parse("threads=1") == FloatOrder(1) and FloatOrder(1).title == "1 thread"
    assert FloatOrder(4, "AVX2").title == "4 threads, AVX2 kernels"
    with pytest.raises(ConfigError, match="'isa=AVX2': expected threads=N"):
        FloatOrder.parse("isa=AVX2")


def test_the_default_order_comes_first_and_a_one_core_machine_has_no_duplicate():
    assert float_orders(2) == [FloatOrder(2), FloatOrder(1), FloatOrder(2, "AVX2")]
    assert float_orders(1) == [FloatOrder(1), FloatOrder(1, "AVX2")]
    assert variation_units(0, 2) == ["threads=2", "threads=1", "threads=2,isa=AVX2"]
    assert variation_units(3, 2) == ["threads=2"]


def _rows(unit, fp, lsq, qgait, change=(0.05, 0.04)):
    return [{"method": "FP32", "bits": "32", "rank1": fp, "mAP": fp - 20, "float_order": unit},
            {"method": "LSQ-4", "bits": "w4/a4", "rank1": lsq, "mAP": lsq - 20, "distance_change": change[0],
             "float_order": unit},
            {"method": "QGait-4", "bits": "w4/a4", "rank1": qgait, "mAP": qgait - 20,
             "distance_change": change[1], "float_order": unit}]


def test_the_report_sets_the_float_order_range_beside_the_seed_spread():
    seed0 = (_rows("threads=2", 70.0, 68.0, 69.0) + _rows("threads=1", 68.0, 68.5, 67.0)
             + _rows("threads=2,isa=AVX2", 71.0, 67.0, 69.5, (0.06, 0.03)))
    per_seed = [seed0, _rows("threads=2", 66.0, 66.0, 66.5)]
    text = "\n".join(variation_section(per_seed, threads=2))
    # FP32 Rank-1: 70 / 68 / 71 over the orders (range 3); 70 and 66 over the seeds (std 2, range 4).
    assert "| FP32 | 70.00 | 68.00 | 71.00 | 3.00 | 2.00 (2 seeds) | 4.00 |" in text
    assert "| QGait-4 | 0.040 | 0.040 | 0.030 | 0.010 | 0.000 (2 seeds) | 0.000 |" in text
    assert "FP32 |" not in text.split("Inter-class distance change")[1]     # the float model has none
    assert "QGait-4 − LSQ-4 Rank-1 under each float order (seed 0): +1.00 (2 threads), -1.50 (1 thread), " \
           "+2.50 (2 threads, AVX2 kernels)." in text


PROBE = """
import sys
import torch
from qgait_lab.experiments.float_order import FloatOrder, apply_float_order
apply_float_order(FloatOrder.parse(sys.argv[1]))
g = torch.Generator().manual_seed(0)
x, w = torch.randn(64, 16, 32, 22, generator=g), torch.randn(32, 16, 3, 3, generator=g)
y = torch.nn.functional.conv2d(x, w, padding=1)
torch.save({"y": y, "threads": torch.get_num_threads()}, sys.argv[2])
"""


def _has_avx512() -> bool:
    cpuinfo = Path("/proc/cpuinfo")
    return cpuinfo.is_file() and "avx512f" in cpuinfo.read_text()


@pytest.mark.skipif(not _has_avx512(), reason="the AVX2 cap changes nothing on a CPU without AVX-512")
def test_the_kernel_cap_changes_the_sums_in_a_fresh_process(tmp_path):
    import torch

    out = {}
    for unit in ("threads=1", "threads=1,isa=AVX2"):
        path = tmp_path / f"{unit}.pt"
        subprocess.run([sys.executable, "-c", PROBE, unit, str(path)], check=True)
        out[unit] = torch.load(path)
    a, b = out["threads=1"], out["threads=1,isa=AVX2"]
    assert a["threads"] == b["threads"] == 1
    assert not torch.equal(a["y"], b["y"])                       # another order of the sums ...
    assert torch.allclose(a["y"], b["y"], rtol=1e-5, atol=1e-4)  # ... of the same convolution
