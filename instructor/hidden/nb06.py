"""Hidden checks of notebook 06, run only by ``qgait-lab lab grade`` (cases the visible checkers do not use)."""
from __future__ import annotations

import shlex

from qgait_lab.lab.exercises import training as ex
from qgait_lab.lab.exercises.core import Wrong, call
from qgait_lab.quant.schedules import KSchedule


def grow_other_lengths(grow_for) -> str:
    """Fine-tunes of 1, 9, 15 (a tenth is exactly 1.5), 105 and 100,000 iterations, and a T that is not whole."""
    for iterations, t in ((1, 5.0), (9, 3.0), (15, 4.0), (105, 2.6), (100_000, 5.0)):
        ex.assert_grow_schedule(grow_for, iterations, t)
    return "right for fine-tunes of 1, 9, 15, 105 and 100,000 iterations and T = 2.6 to 5"


def grow_reaches_the_paper_k(grow_for) -> str:
    """Over its own fine-tune, the rescaled schedule ends where GROW-2 ends after 1,000 paper iterations."""
    paper_last = KSchedule("grow", start=1.0, step=0.2, every=100, max=5.0).k_at(999)
    for iterations in (200, 500, 3000):
        ex.assert_grow_schedule(grow_for, iterations, 5.0)       # a KSchedule with the right fields first
        sched = call(grow_for, iterations, 5.0)
        last = sched.k_at(iterations - 1)
        if abs(last - paper_last) > 1e-9:
            raise Wrong(f"over a {iterations}-iteration fine-tune, grow_for({iterations}, 5) ends at k = {last:g}, "
                        "not where GROW-2 ends after the paper's fine-tune")
    return "ends at the same k as GROW-2 for fine-tunes of 200, 500 and 3,000 iterations"


def command_other_paths(gait3d_command) -> str:
    """One and sixteen GPUs, and paths with spaces (which must survive as one argument each)."""
    for nproc, root, partition in ((1, "/data/gait 3d/pkl", "/data/gait 3d/Gait3D.json"),
                                   (16, "/scratch/u1/G3D", "/scratch/u1/G3D/part.json")):
        ex.assert_torchrun_command(gait3d_command, nproc, root, partition)
    return "right for 1 and 16 GPUs and for dataset paths with spaces"


def command_as_shell_line(gait3d_command) -> str:
    """The command still launches the same run after a round trip through a shell line."""
    def via_shell(nproc, root, partition):
        cmd = call(gait3d_command, nproc, root, partition)
        return shlex.split(cmd if isinstance(cmd, str) else shlex.join(cmd))

    for nproc, root, partition in ex.TORCHRUN_CASES:
        ex.assert_torchrun_command(via_shell, nproc, root, partition)
    return "survives a round trip through a shell line"


HIDDEN = {
    "6.1": [grow_other_lengths, grow_reaches_the_paper_k],
    "6.2": [command_other_paths, command_as_shell_line],
}
