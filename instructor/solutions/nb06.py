"""Reference solutions of notebook 06 (training)."""
from __future__ import annotations

from qgait_lab.quant.schedules import KSchedule

PAPER_FINETUNE = 1000


def grow_for(iterations: int, t: float = 5.0) -> KSchedule:
    """Ex. 6.1: GROW-2 (+0.2 every 100 of 1000 iterations, k from 1 to T) rescaled to ``iterations``."""
    every = max(1, round(100 * iterations / PAPER_FINETUNE))
    return KSchedule("grow", start=1.0, step=0.2, every=every, max=t)


def gait3d_command(nproc: int, root: str, partition: str) -> list[str]:
    """Ex. 6.2: the torchrun launch of QGait-4 on Gait3D with ``nproc`` GPUs."""
    return ["torchrun", f"--nproc_per_node={nproc}", "-m", "qgait_lab.cli", "train",
            "--preset", "gait3d", "--method", "qgait", "--bits", "4",
            "--set", f"data.root={root}", "--set", f"data.partition={partition}"]
