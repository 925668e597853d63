"""Exercises of notebook 06 (training QGait: full precision, stage 1, stage 2, torchrun).

* 6.1 ``grow_for``: the paper's GROW-2 k schedule (Table 3a) rescaled to a
  fine-tune of any length, as a :class:`~qgait_lab.quant.schedules.KSchedule`;
* 6.2 ``gait3d_command``: the ``torchrun`` command that trains QGait-4 on Gait3D
  with several GPUs (Sec. 4.1).

The checkers say which field of the schedule or which part of the command is
wrong, for which arguments, never the expected value: the command is run
through ``qgait-lab``'s own argument parser and configuration loader.
"""
from __future__ import annotations

import math
import os
import shlex
import subprocess
import sys
from typing import Any, Callable, Sequence

import yaml

from ...quant.schedules import PAPER_FINETUNE_ITERATIONS
from .core import Wrong, call, exercise

NOTEBOOK = "06_training"

PAPER_EVERY = 100
"""GROW-2: k rises every 100 iterations (Table 3a)."""


# ---------------------------------------------------------------------------
# 6.1 GROW-2 rescaled
# ---------------------------------------------------------------------------
def allowed_every(iterations: int) -> set[int]:
    """The intervals that keep GROW-2's pace relative to the fine-tune: 100/1000 of it, rounded either way."""
    exact = PAPER_EVERY * iterations / PAPER_FINETUNE_ITERATIONS
    return {max(1, math.floor(exact)), max(1, math.ceil(exact))}


def assert_grow_schedule(grow_for: Callable, iterations: int, t: float) -> None:
    """Raise Wrong, naming the call and the field, where ``grow_for(iterations, t)`` is not GROW-2 rescaled."""
    from ...errors import ConfigError
    from ...quant.schedules import KSchedule

    where = f"grow_for({iterations}, {t:g})"
    try:
        got = call(grow_for, iterations, t)
    except ConfigError as err:
        raise Wrong(f"{where} raised ConfigError: {err}. KSchedule checks its fields when it is built: "
                    "every must be a whole number >= 1, even for a very short fine-tune") from None
    if not isinstance(got, KSchedule):
        raise Wrong(f"{where} returned a {type(got).__name__}, not a qgait_lab.quant.schedules.KSchedule")
    if got.kind != "grow":
        raise Wrong(f"{where}.kind is {got.kind!r}: GROW-2 raises k during the fine-tune, and only one of the "
                    "two kinds does that")
    if not math.isclose(float(got.start), 1.0):
        raise Wrong(f"{where}.start is {got.start:g}: the schedule must begin where the task says GROW-2 begins")
    if not math.isclose(float(got.step), 0.2):
        raise Wrong(f"{where}.step is {got.step:g}: rescaling to a shorter fine-tune changes how often k rises, "
                    "not by how much it rises each time")
    if not math.isclose(float(got.max), t):
        raise Wrong(f"{where}.max is {got.max:g}: the cap must be the T passed to grow_for")
    every = got.every
    if isinstance(every, bool) or not isinstance(every, (int, float)) or float(every) != int(every):
        raise Wrong(f"{where}.every is {every!r}: an interval in iterations must be a whole number")
    if int(every) not in allowed_every(iterations):
        pace = "often" if every < min(allowed_every(iterations)) else "rarely"
        raise Wrong(f"{where}.every is {int(every)}: k then rises every {int(every)} of the {iterations} "
                    f"iterations, too {pace} compared with GROW-2's pace in the paper's fine-tune")


GROW_CASES = [(iterations, t) for iterations in (3, 60, 250, 1000, 1234, 2000) for t in (3.0, 5.0)]


@exercise("6.1", NOTEBOOK, "rescale GROW-2", answer="grow_for",
          hints=("Keep everything of GROW-2 that does not depend on the fine-tune's length, and scale the one "
                 "field that is counted in iterations.",
                 "In the paper, k rises once every tenth of the fine-tune. Keep that fraction for a fine-tune of "
                 "`iterations` iterations, and turn the result into a whole number of iterations that KSchedule "
                 "accepts (every >= 1) for the shortest fine-tunes too.",
                 "Try your function by hand on the paper's own fine-tune, grow_for(1000, 5.0), which must give "
                 "back GROW-2 unchanged, and on a very short one, grow_for(3, 5.0), which must not raise; then "
                 "print schedule.k_at(i) for a few i to see k climb."))
def check_grow_schedule(grow_for: Callable) -> str:
    """``grow_for(iterations, t)``: GROW-2 rescaled to a fine-tune of ``iterations`` iterations."""
    for iterations, t in GROW_CASES:
        assert_grow_schedule(grow_for, iterations, t)
    return "GROW-2 rescaled correctly for fine-tunes of 3 to 2000 iterations, T = 3 and 5"


# ---------------------------------------------------------------------------
# 6.2 The Gait3D launch
# ---------------------------------------------------------------------------
def _as_list(cmd: Any) -> list[str]:
    if isinstance(cmd, str):
        cmd = shlex.split(cmd)
    if not isinstance(cmd, (list, tuple)) or not cmd or not all(isinstance(c, str) for c in cmd):
        raise Wrong("return the command as a list of strings (or as one shell string)")
    return list(cmd)


def _option(cmd: Sequence[str], *flags: str) -> str | None:
    """The value given to the first of ``flags`` in ``cmd`` (``--flag value`` or ``--flag=value``)."""
    for i, arg in enumerate(cmd):
        for flag in flags:
            if arg == flag:
                return cmd[i + 1] if i + 1 < len(cmd) else None
            if arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
    return None


def _dry_run(args_list: list[str], where: str):
    """The configuration ``qgait-lab <args_list> --dry-run`` prints, as the CLI itself resolves it."""
    from ...training.config import config_from_dict

    env = {k: v for k, v in os.environ.items() if k != "QGAIT_FAST"}   # the preset as written
    done = subprocess.run([sys.executable, "-m", "qgait_lab.cli", *args_list, "--dry-run"], env=env,
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        why = done.stderr.strip().splitlines()
        raise Wrong(f"qgait-lab does not accept the arguments {shlex.join(args_list)!r} of {where}: "
                    f"{why[-1].split('error: ', 1)[-1] if why else 'it exits with ' + str(done.returncode)}")
    return config_from_dict(yaml.safe_load(done.stdout))


def assert_torchrun_command(command: Callable, nproc: int, root: str, partition: str) -> None:
    """Raise Wrong, naming the call and the part of the command, where it does not launch QGait-4 on Gait3D."""
    where = f"gait3d_command({nproc}, {root!r}, {partition!r})"
    cmd = _as_list(call(command, nproc, root, partition))
    if not (cmd[0].endswith("torchrun") or "torch.distributed.run" in cmd):
        raise Wrong(f"{where} starts with {cmd[0]!r}: a multi-GPU launch starts with torchrun "
                    "(or python -m torch.distributed.run)")
    value = _option(cmd, "--nproc_per_node", "--nproc-per-node")
    if value != str(nproc):
        raise Wrong(f"{where} starts {value or 'no'} processes per node (--nproc_per_node): the launch must use "
                    f"all the GPUs the call asks for")
    if "qgait_lab.cli" not in cmd or cmd[cmd.index("qgait_lab.cli") - 1] != "-m":
        raise Wrong(f"{where} does not run the module qgait_lab.cli: torchrun runs a module given after -m")
    args_list = cmd[cmd.index("qgait_lab.cli") + 1:]
    if not args_list or args_list[0] != "train":
        raise Wrong(f"{where} runs the subcommand {args_list[0] if args_list else 'none'!r}: it must train")
    preset = _option(args_list, "--preset") or "tiny-cpu"     # the CLI's default
    if preset != "gait3d":
        raise Wrong(f"{where} uses the preset {preset!r}: it does not carry Gait3D's settings")
    cfg = _dry_run(args_list, where)
    if cfg.data.root != root:
        raise Wrong(f"{where} trains on data.root = {cfg.data.root!r}: the dataset folder must be the root "
                    "argument of the call")
    if cfg.data.partition != partition:
        raise Wrong(f"{where} trains with data.partition = {cfg.data.partition!r}: the partition json must be "
                    "the partition argument of the call")
    if cfg.method != "qgait":
        raise Wrong(f"{where} trains the method {cfg.method!r}, not the paper's own method")
    if cfg.quant.bits != 4:
        raise Wrong(f"{where} trains at {cfg.quant.bits} bits, not at the bit-width QGait-4 names")


TORCHRUN_CASES = [(4, "/data/Gait3D-pkl", "/data/Gait3D.json"), (8, "/mnt/g3d", "/mnt/g3d.json")]


@exercise("6.2", NOTEBOOK, "the Gait3D launch", answer="gait3d_command",
          hints=("Two programs meet in the command: torchrun, with its own options before the module, and "
                 "qgait-lab's train subcommand, with its options after it. Which options belong to which?",
                 "Start from `qgait-lab train --help` (or run it with `!` in a cell): it lists the preset, "
                 "method and bits options and how --set passes one KEY=VALUE setting. torchrun needs to know "
                 "how many processes to start on this machine.",
                 "The checker runs your arguments after -m qgait_lab.cli with --dry-run added, which prints "
                 "the configuration they would train; do the same in a cell (!python -m qgait_lab.cli train "
                 "... --dry-run) and read data.root, data.partition, method and quant.bits."))
def check_torchrun_command(gait3d_command: Callable) -> str:
    """``gait3d_command(nproc, root, partition)``: the argument list that trains QGait-4 on Gait3D."""
    for nproc, root, partition in TORCHRUN_CASES:
        assert_torchrun_command(gait3d_command, nproc, root, partition)
    return "a valid torchrun launch of QGait-4 on Gait3D: the CLI and the configuration loader accept it"
