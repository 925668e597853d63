"""The exercises of notebook 06 (training): solutions pass, stubs are "not attempted", typical mistakes
fail without the expected value, hints hide the solution, hidden checks discriminate; and the torchrun
helpers the notebook prints its launch with."""
from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from exercise_support import (assert_fails_without_revealing, assert_hints_hide, assert_not_attempted,
                              assert_passes, load_instructor_module)
from qgait_lab.lab import checks
from qgait_lab.lab.exercises import core
from qgait_lab.lab.exercises import training as ex
from qgait_lab.quant.schedules import KSchedule

SOL = load_instructor_module("solutions", "nb06")
HIDDEN = load_instructor_module("hidden", "nb06").HIDDEN


def stub(*args, **kwargs):
    raise NotImplementedError


# -- typical mistakes -----------------------------------------------------------
def grow_unscaled(iterations, t=5.0):                  # the paper's interval, whatever the length
    return KSchedule("grow", 1.0, 0.2, 100, t)


def grow_without_floor(iterations, t=5.0):             # a tenth of 3 iterations is 0 after int()
    return KSchedule("grow", 1.0, 0.2, int(iterations / 10), t)


def grow_inverted(iterations, t=5.0):                  # scales the wrong way round
    return KSchedule("grow", 1.0, 0.2, max(1, round(100 * 1000 / iterations)), t)


def grow_step_scaled(iterations, t=5.0):               # rescales the increment instead of the interval
    return KSchedule("grow", 1.0, 0.2 * 1000 / iterations, 100, t)


def grow_fixed_max(iterations, t=5.0):                 # ignores T
    return SOL.grow_for(iterations, 5.0)


def grow_fixed_kind(iterations, t=5.0):
    return KSchedule("fixed", 1.0, 0.2, max(1, round(iterations / 10)), t)


def command_without_partition(nproc, root, partition):
    return ["torchrun", f"--nproc_per_node={nproc}", "-m", "qgait_lab.cli", "train", "--preset", "gait3d",
            "--method", "qgait", "--bits", "4", "--set", f"data.root={root}"]


def command_two_gpus(nproc, root, partition):          # the demo's process count
    return SOL.gait3d_command(2, root, partition)


def command_lsq(nproc, root, partition):               # the stage-1 baseline instead of QGait
    return [a.replace("qgait", "lsq") if a == "qgait" else a for a in SOL.gait3d_command(nproc, root, partition)]


def command_eight_bits(nproc, root, partition):
    cmd = SOL.gait3d_command(nproc, root, partition)
    return cmd[:cmd.index("--bits") + 1] + ["8"] + cmd[cmd.index("--bits") + 2:]


def command_tiny_preset(nproc, root, partition):
    return [("tiny-cpu" if a == "gait3d" else a) for a in SOL.gait3d_command(nproc, root, partition)]


def command_one_set(nproc, root, partition):           # both settings after one --set (argparse rejects it)
    return ["torchrun", f"--nproc_per_node={nproc}", "-m", "qgait_lab.cli", "train", "--preset", "gait3d",
            "--method", "qgait", "--bits", "4", "--set", f"data.root={root}", f"data.partition={partition}"]


def command_python_script(nproc, root, partition):     # forgets -m
    cmd = SOL.gait3d_command(nproc, root, partition)
    cmd.remove("-m")
    return cmd


# -- 6.1 ----------------------------------------------------------------------------
def test_6_1_solution_passes_and_stub_is_not_attempted():
    assert_passes(checks.check_grow_schedule, SOL.grow_for)
    assert_not_attempted(checks.check_grow_schedule, stub)
    assert_not_attempted(checks.check_grow_schedule, None)


def test_6_1_accepts_either_rounding():
    import math

    assert_passes(checks.check_grow_schedule,
                  lambda n, t=5.0: KSchedule("grow", 1.0, 0.2, max(1, math.ceil(n / 10)), t))
    assert_passes(checks.check_grow_schedule,
                  lambda n, t=5.0: KSchedule("grow", 1.0, 0.2, max(1, n // 10), t))


@pytest.mark.parametrize("wrong, mentions", [
    (grow_unscaled, ["every", "grow_for(3, 3)", "rarely"]),
    (grow_without_floor, ["grow_for(3, 3)", "every", ">= 1"]),
    (grow_inverted, ["every", "rarely"]),
    (grow_step_scaled, ["step", "how often"]),
    (grow_fixed_max, ["max", "T passed"]),
    (grow_fixed_kind, ["kind", "'fixed'"]),
])
def test_6_1_mistakes_fail_without_revealing(wrong, mentions):
    text = assert_fails_without_revealing(checks.check_grow_schedule, wrong, mentions=mentions)
    # The interval the named call needs must not be in the feedback.
    call = text.split("grow_for(")[1].split(")")[0]
    n = int(call.split(",")[0])
    for every in ex.allowed_every(n):
        assert f"every is {every}:" not in text and f"should be {every}" not in text
    assert "expected" not in text


def test_6_1_feedback_of_a_fractional_interval():
    text = str(checks.check_grow_schedule(lambda n, t=5.0: KSchedule("grow", 1.0, 0.2, n / 10 + 0.5, t)))
    assert "whole number" in text


def test_6_1_hints_hide_the_solution():
    assert_hints_hide("6.1", ["max(1, round(", "100 * iterations / 1000", "iterations / 10", "every=every"])


# -- 6.2 ----------------------------------------------------------------------------
def test_6_2_solution_passes_and_stub_is_not_attempted():
    assert_passes(checks.check_torchrun_command, SOL.gait3d_command)
    assert_passes(checks.check_torchrun_command, lambda n, r, p: shlex.join(SOL.gait3d_command(n, r, p)))
    assert_not_attempted(checks.check_torchrun_command, stub)
    assert_not_attempted(checks.check_torchrun_command, None)


# (mistake, what the feedback must say, what it must not say: the missing part of the command)
MISTAKES_6_2 = [
    (command_without_partition, ["data.partition", "None"], ["--set data.partition", "data.partition=/"]),
    (command_two_gpus, ["--nproc_per_node", "2 processes"], ["--nproc_per_node=4", "4 processes"]),
    (command_lsq, ["'lsq'"], ["--method qgait", "'qgait'"]),
    (command_eight_bits, ["8 bits"], ["--bits 4", "4 bits"]),
    (command_tiny_preset, ["'tiny-cpu'"], ["--preset gait3d", "'gait3d'"]),
    (command_one_set, ["does not accept", "unrecognized arguments"], ["--set data.partition"]),
    (command_python_script, ["-m"], ["-m qgait_lab.cli"]),
]


@pytest.mark.parametrize("wrong, mentions, missing", MISTAKES_6_2, ids=[m[0].__name__ for m in MISTAKES_6_2])
def test_6_2_mistakes_fail_without_revealing(wrong, mentions, missing):
    solution_line = shlex.join(SOL.gait3d_command(4, "/data/Gait3D-pkl", "/data/Gait3D.json"))
    text = assert_fails_without_revealing(checks.check_torchrun_command, wrong, mentions=mentions,
                                          secrets=[*missing, "should be", "expected", solution_line])
    assert "not attempted" not in text


def test_6_2_hints_do_not_give_the_command():
    line = shlex.join(SOL.gait3d_command(4, "ROOT", "PARTITION"))
    assert_hints_hide("6.2", [line, "--preset gait3d", "--method qgait", "--bits 4", "data.root=",
                              "data.partition=", "nproc_per_node="])


# -- hidden checks --------------------------------------------------------------------
def test_hidden_checks_cover_every_exercise():
    assert set(HIDDEN) == {e.id for e in core.exercises_of("06")}


@pytest.mark.parametrize("exercise_id, wrong", [
    ("6.1", grow_unscaled), ("6.1", grow_fixed_max),
    ("6.2", command_without_partition), ("6.2", command_two_gpus),
])
def test_hidden_checks_pass_the_solution_and_fail_a_mistake(exercise_id, wrong):
    solution = getattr(SOL, core.get(exercise_id).answer)
    for fn in HIDDEN[exercise_id]:
        assert isinstance(fn(solution), str)
    statuses = [core.run_check(core.get(exercise_id), fn, wrong).status for fn in HIDDEN[exercise_id]]
    assert "failed" in statuses


def test_hidden_command_check_catches_a_command_that_breaks_on_spaces():
    def joined(nproc, root, partition):                   # a shell string with the paths unquoted
        return " ".join(SOL.gait3d_command(nproc, root, partition))

    assert checks.check_torchrun_command(joined).passed  # the visible paths have no spaces
    statuses = [core.run_check(core.get("6.2"), fn, joined).status for fn in HIDDEN["6.2"]]
    assert "failed" in statuses


def test_hidden_grow_check_catches_a_cutoff_at_2000():
    def capped(iterations, t=5.0):                        # right up to 2000 iterations, then stuck at 200
        return SOL.grow_for(min(iterations, 2000), t)

    assert checks.check_grow_schedule(capped).passed
    assert core.run_check(core.get("6.1"), HIDDEN["6.1"][0], capped).status == "failed"


# -- the notebook's torchrun printout ---------------------------------------------------
def test_display_command_quotes_once_and_round_trips_through_the_shell():
    from qgait_lab.lab.course.budget import NOTEBOOK_FAST_OVERRIDES
    from qgait_lab.lab.widgets import display_command, torchrun_command

    cmd = torchrun_command(2, "tiny-cpu", "fp", None, [*NOTEBOOK_FAST_OVERRIDES, "a=b c", "x=$HOME"],
                           name="lab-ddp-demo", master_port=1234)
    line = display_command(cmd)
    assert "'\"'\"'" not in line                            # no shell-quoting soup
    assert "--set \"data.synth={n_ids: 7" in line and "['018', '090']}\"" in line
    wrapped = display_command(cmd, wrap=True)
    assert wrapped.startswith("torchrun --nnodes=1 --nproc_per_node=2 --master_port=1234 \\\n")
    assert wrapped.count("\n") == len([a for a in cmd if a == "--set"]) + 1
    for shown in (line, wrapped):
        # What bash itself reads from the printed line (the continuation lines included).
        words = subprocess.run(["bash", "-c", "f() { for a in \"$@\"; do printf '%s\\n' \"$a\"; done; }; f "
                                + shown.split(" ", 1)[1]], capture_output=True, text=True, check=True)
        assert words.stdout.splitlines() == cmd[3:]


def test_log_is_rendered_as_tables_and_verbatim_lines():
    from qgait_lab.lab.widgets import _log_markdown

    text = _log_markdown(["starting", "| a | b |", "|---|---|", "| 1 | 2 |", "checkpoint: runs/x/last.pt"])
    assert text == ("```text\nstarting\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
                    "```text\ncheckpoint: runs/x/last.pt\n```")
    assert _log_markdown([]) == ""


def test_follow_command_renders_into_one_display(monkeypatch, tmp_path):
    import IPython.display as D

    shown = []

    class Handle:
        def update(self, obj):
            shown.append(obj.data)

    monkeypatch.setattr(D, "display", lambda obj, display_id=False: (shown.append(obj.data), Handle())[1])
    from qgait_lab.lab.widgets import follow_command

    status = follow_command([sys.executable, "-c", "print('| a |'); print('|---|'); print('| 1 |')"],
                            tmp_path / "log.txt", render=True)
    assert status == 0 and shown[-1] == "| a |\n|---|\n| 1 |"
    assert (tmp_path / "log.txt").read_text().splitlines() == ["| a |", "|---|", "| 1 |"]
