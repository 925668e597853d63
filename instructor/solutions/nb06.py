"""Reference solutions of notebook 06 (training)."""
from __future__ import annotations

from qgait_lab.quant.schedules import KSchedule, paper_grow


def grow_for(iterations: int, t: float = 5.0) -> KSchedule:
    """Ex. 6.1: GROW-2 (+0.2 every 100 of 1000 iterations, k from 1 to T) rescaled to ``iterations``."""
    return paper_grow(0.2, 100, iterations, t)


def gait3d_command(nproc: int, root: str, partition: str) -> list[str]:
    """Ex. 6.2: the torchrun launch of QGait-4 on Gait3D with ``nproc`` GPUs."""
    return ["torchrun", f"--nproc_per_node={nproc}", "-m", "qgait_lab.cli", "train",
            "--preset", "gait3d", "--method", "qgait", "--bits", "4",
            "--set", f"data.root={root}", "--set", f"data.partition={partition}"]
