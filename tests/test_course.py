"""The instructor's side: the watchdog, `lab release`, `lab grade`, hints and the exercise registry."""
from __future__ import annotations

import asyncio
import csv
import json
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
import pytest

from exercise_support import INSTRUCTOR, REPO, load_instructor_module
from qgait_lab.lab.course.answers import fill_answers, read_notebook, solution_source, stub_cells
from qgait_lab.lab.course.execute import KernelStall, WatchedClient, execute_notebook
from qgait_lab.lab.exercises import REGISTRY, core, exercises_of

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py"))


# ---------------------------------------------------------------------------
# The registry and hints
# ---------------------------------------------------------------------------
def test_every_notebook_has_registered_exercises_with_tiered_hints():
    numbers = {p.stem[:2] for p in NOTEBOOKS}
    assert numbers == {f"{i:02d}" for i in range(1, 10)}
    for number in numbers:
        exs = exercises_of(number)
        assert len(exs) >= 2, f"notebook {number} has {len(exs)} exercises"
        for ex in exs:
            assert ex.id.split(".")[0].zfill(2) == number and len(ex.hints) >= 2, ex
            assert hasattr(load_instructor_module("solutions", f"nb{number}"), ex.answer), \
                f"instructor/solutions/nb{number}.py has no {ex.answer} (Exercise {ex.id})"
            hidden = load_instructor_module("hidden", f"nb{number}").HIDDEN
            assert hidden.get(ex.id), f"Exercise {ex.id} has no hidden check"


def test_hint_tiers_are_shown_one_at_a_time_and_bad_requests_are_explained():
    ex = next(iter(REGISTRY.values()))
    first, second = core.hint(ex.id), core.hint(ex.id, 2)
    assert first.text == ex.hints[0] and second.text == ex.hints[1] and first.text != second.text
    assert f"checks.hint({ex.id!r}, 2)" in str(first)
    assert "last hint" in str(core.hint(ex.id, len(ex.hints)))
    with pytest.raises(ValueError, match=f"hints 1 to {len(ex.hints)}"):
        core.hint(ex.id, len(ex.hints) + 1)
    with pytest.raises(KeyError, match="there is no exercise '9.9'"):
        core.hint("9.9")


def test_a_result_carries_a_machine_readable_verdict_and_no_hint():
    ex = next(iter(REGISTRY.values()))
    bundle = ex.checker(None)._repr_mimebundle_()
    assert bundle[core.CHECK_MIME]["status"] == "not attempted"
    assert bundle[core.CHECK_MIME]["message"] == "not attempted"
    assert "hint" not in bundle["text/plain"].lower()


def test_choices_are_stored_as_digests():
    digest = core.choice_digest("9.1", "b")
    assert core.check_choice("9.1", " B ", ["a", "b", "c"], digest) == "option 'b' is right"
    with pytest.raises(core.Wrong, match="not the right one: too small"):
        core.check_choice("9.1", "a", ["a", "b", "c"], digest, {"a": "too small"})
    with pytest.raises(core.Wrong, match="not one of the options"):
        core.check_choice("9.1", "d", ["a", "b", "c"], digest)


def test_out_of_order_help_names_the_exercise_that_defines_an_answer():
    from qgait_lab.lab.exercises.cell_order import where_defined

    ex = next(iter(REGISTRY.values()))
    assert f"Exercise {ex.id}" in where_defined(ex.answer)
    assert "cells above" in where_defined("some_plot_data")


# ---------------------------------------------------------------------------
# The watchdog
# ---------------------------------------------------------------------------
class _LosesOneRequest(WatchedClient):
    """Simulates ipykernel #1554: the request for cell 1 never reaches the kernel."""

    async def async_execute_cell(self, cell, cell_index, **kwargs):
        if cell_index != 1:
            return await super().async_execute_cell(cell, cell_index, **kwargs)
        real = self.kc.execute
        self.kc.execute = lambda *a, **k: "a-request-that-was-lost"
        try:
            return await super().async_execute_cell(cell, cell_index, **kwargs)
        finally:
            self.kc.execute = real


def test_watchdog_fails_fast_on_a_lost_request_and_names_the_cell(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"),
                                         nbformat.v4.new_code_cell("y = x + 1  # the lost one")])
    start = time.monotonic()
    with pytest.raises(KernelStall, match=r"lost-demo: the kernel never started cell 1 \('y = x \+ 1"):
        execute_notebook(nb, tmp_path, silence_s=3, cell_timeout=300, client_class=_LosesOneRequest,
                         name="lost-demo")
    assert time.monotonic() - start < 60          # not the 300 s cell timeout


def test_watchdog_leaves_a_slow_cell_alone(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time; time.sleep(4); print('done')")])
    report = execute_notebook(nb, tmp_path, silence_s=1, env={"QGAIT_PROBE": "1"})
    assert report.ok and report.notebook.cells[0].outputs[0]["text"] == "done\n"
    assert report.cell_seconds[0] >= 4


class _MissesOneWakeUp(WatchedClient):
    """Simulates pyzmq's missed wake-up: the wait for cell 1's reply sleeps its whole timeout
    although the reply has arrived, then finds it (what pyzmq's poll does at its timeout)."""

    async def async_start_new_kernel_client(self):
        kc = await NotebookClient.async_start_new_kernel_client(self)     # unsliced, then the fault
        real, self.fault_armed = kc.shell_channel.get_msg, False

        async def get_msg(timeout=None):
            if self.fault_armed:
                self.fault_armed = False
                await asyncio.sleep(3600 if timeout is None else timeout)
                return await real(timeout=0)
            return await real(timeout=timeout)

        kc.shell_channel.get_msg = get_msg
        if self.poll_slice_s is not None:
            self._slice_polls(kc)
        return kc

    async def _arm(self, cell, cell_index):
        self.fault_armed = cell_index == 1
        await super()._arm(cell, cell_index)


def _two_cells():
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"),
                                           nbformat.v4.new_code_cell("y = x + 1\nprint(y)")])


def test_a_missed_wake_up_costs_one_poll_slice_not_the_cell_timeout(tmp_path):
    report = execute_notebook(_two_cells(), tmp_path, cell_timeout=300, client_class=_MissesOneWakeUp)
    assert report.ok and report.notebook.cells[1].outputs[0]["text"] == "2\n"
    assert report.cell_seconds[1] < 150          # without slices it is the whole 300 s (next test)


def test_without_slices_a_missed_wake_up_waits_out_the_cell_timeout(tmp_path):
    """The stall as it was seen: the whole cell timeout, after which the run goes on and passes."""
    report = execute_notebook(_two_cells(), tmp_path, cell_timeout=6, poll_slice_s=None,
                              client_class=_MissesOneWakeUp)
    assert report.ok and report.notebook.cells[1].outputs[0]["text"] == "2\n"
    assert report.cell_seconds[1] >= 6


def test_sliced_get_msg_keeps_the_timeout_contract():
    from queue import Empty

    from qgait_lab.lab.course.execute import sliced_get_msg

    calls = []

    async def never(timeout=None):
        calls.append(timeout)
        await asyncio.sleep(timeout)
        raise Empty

    get = sliced_get_msg(never, 0.05)
    start = time.monotonic()
    with pytest.raises(Empty):
        asyncio.run(get(timeout=0.3))
    assert time.monotonic() - start >= 0.3
    assert len(calls) >= 5 and max(calls) <= 0.05

    async def soon(timeout=None):
        return {"msg": "reply"}

    assert asyncio.run(sliced_get_msg(soon, 0.05)(timeout=None)) == {"msg": "reply"}


# ---------------------------------------------------------------------------
# Release
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def handout(tmp_path_factory):
    from qgait_lab.lab.course.release import release

    out = tmp_path_factory.mktemp("handout") / "release"
    manifest = release(out, REPO / "notebooks", INSTRUCTOR)
    return out, manifest


def test_release_writes_clean_student_notebooks(handout):
    out, manifest = handout
    names = sorted(p.stem for p in out.glob("*.ipynb"))
    assert names == [p.stem for p in NOTEBOOKS]
    assert json.loads((out / "MANIFEST.json").read_text()) == manifest
    assert (out / "data_samples").is_dir()
    for path in out.glob("*.ipynb"):
        nb = nbformat.read(str(path), as_version=4)
        assert all(c.outputs == [] for c in nb.cells if c.cell_type == "code")
        ids = [e["id"] for e in manifest["notebooks"][path.stem]]
        assert sorted(stub_cells(nb)) == sorted(ids)


def test_release_refuses_a_notebook_that_holds_a_solution_and_a_used_folder(tmp_path, handout):
    from qgait_lab.lab.course.release import audit_notebook, release, solution_lines

    out, _ = handout
    with pytest.raises(FileExistsError, match="not empty"):
        release(out, REPO / "notebooks", INSTRUCTOR)
    leaks = solution_lines(INSTRUCTOR / "solutions")
    source = NOTEBOOKS[2]                                  # 03: its solutions are code
    nb = read_notebook(source)
    assert audit_notebook(nb, source.stem, leaks) == []
    line = sorted(leaks[f"nb{source.stem[:2]}"])[0]
    ex = exercises_of(source.stem[:2])[0]
    leaked = fill_answers(nb, {ex.id: line})
    problems = audit_notebook(leaked, source.stem, leaks)
    assert problems and "holds a line of instructor/solutions" in problems[0]


# ---------------------------------------------------------------------------
# Grade
# ---------------------------------------------------------------------------
def _solved(path: Path, ids: list[str] | None = None):
    nb = nbformat.read(str(path), as_version=4)
    number = path.stem[:2]
    names = {ex.id: ex.answer for ex in exercises_of(number) if ids is None or ex.id in ids}
    return fill_answers(nb, solution_source(INSTRUCTOR / "solutions" / f"nb{number}.py", names))


@pytest.mark.slow
def test_grade_gives_full_zero_and_partial_marks(handout, tmp_path):
    from qgait_lab.lab.course.grade import grade

    out, manifest = handout
    cheap = ["03_soft_round_derivation", "04_k_slider_explorer"]     # no training: seconds each
    subs = tmp_path / "subs"
    for student in ("reference", "untouched", "mixed"):
        (subs / student).mkdir(parents=True)
    for stem in manifest["notebooks"]:
        nbformat.write(_solved(out / f"{stem}.ipynb"), str(subs / "reference" / f"{stem}.ipynb"))
    partial = {}
    for stem in cheap:
        (subs / "untouched" / f"{stem}.ipynb").write_bytes((out / f"{stem}.ipynb").read_bytes())
        first = manifest["notebooks"][stem][0]["id"]
        partial[stem] = first
        nbformat.write(_solved(out / f"{stem}.ipynb", [first]), str(subs / "mixed" / f"{stem}.ipynb"))
    grades = grade(sorted(subs.iterdir()), tmp_path / "grades.csv", INSTRUCTOR, notebook_timeout=900,
                   progress=lambda line: None)
    by = {(g.student, g.notebook): g for g in grades}
    for stem, exercises in manifest["notebooks"].items():
        g = by[("reference", stem)]
        assert not g.note and g.score == g.max_score == len(exercises), (stem, g.rows, g.note)
    for stem in cheap:
        assert by[("untouched", stem)].score == 0
        assert all(r["visible"] == "not attempted" for r in by[("untouched", stem)].rows)
        mixed = by[("mixed", stem)]
        assert mixed.score == 1 and [r["exercise"] for r in mixed.rows if r["visible"] == "passed"] == [partial[stem]]
    rows = list(csv.DictReader((tmp_path / "grades.csv").open()))
    assert {r["student"] for r in rows} == {"reference", "untouched", "mixed"}
    assert sum(float(r["points"]) for r in rows if r["student"] == "mixed") == len(cheap)
    feedback = (tmp_path / "feedback" / "mixed.md").read_text()
    assert "not attempted" in feedback and f"Total: {len(cheap)} of" in feedback


def test_grade_explains_bad_submissions(tmp_path):
    from qgait_lab.lab.course.grade import collect_submissions, grade

    with pytest.raises(FileNotFoundError, match="no such submission"):
        collect_submissions([tmp_path / "nobody"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no .ipynb"):
        collect_submissions([tmp_path / "empty"])
    broken = tmp_path / "carol__03_soft_round_derivation.ipynb"
    broken.write_text("{ not json")
    assert collect_submissions([broken]) == [("carol", broken)]
    grades = grade([broken], tmp_path / "g.csv", INSTRUCTOR, progress=lambda line: None)
    assert grades[0].score == 0 and "not a readable notebook" in grades[0].note
    with pytest.raises(ValueError, match="must end in .csv"):
        grade([broken], tmp_path / "g.txt", INSTRUCTOR)


# ---------------------------------------------------------------------------
# Budgets
# ---------------------------------------------------------------------------
def test_budgets_are_preset_sections_and_only_qgait_fast_picks_fast(monkeypatch):
    from qgait_lab.lab.course.budget import default_budget, notebook_config
    from qgait_lab.errors import ConfigError
    from qgait_lab.training.config import load_config

    full, lab, fast = (load_config("tiny-cpu", budget=b) for b in ("full", "lab", "fast"))
    assert fast.full_precision.iterations < lab.full_precision.iterations < full.full_precision.iterations
    assert lab.data == full.data                          # the lab budget trains less, on the same data
    assert notebook_config("tiny-cpu", "fast").data.synth["n_ids"] < fast.data.synth["n_ids"]
    with pytest.raises(ConfigError, match="has no 'lab:' section"):
        load_config("casia-b", budget="lab")
    with pytest.raises(ConfigError, match="unknown budget 'tiny'"):
        load_config("tiny-cpu", budget="tiny")
    monkeypatch.delenv("QGAIT_FAST", raising=False)
    monkeypatch.setenv("CI", "true")
    assert load_config("tiny-cpu").full_precision.iterations == full.full_precision.iterations
    assert default_budget("tiny-cpu") == "lab" and default_budget("casia-b") == "full"
    monkeypatch.setenv("QGAIT_FAST", "1")
    assert default_budget("casia-b") == "fast"


def test_cli_budget_flag_reaches_the_config():
    from qgait_lab.cli import _load, build_parser

    args = build_parser().parse_args(["train", "--budget", "lab"])
    assert _load(args).full_precision.iterations == 100


def test_release_audit_survives_cpython_3_11_7s_ast_recursion_bug(monkeypatch):
    import ast

    from qgait_lab.lab.course.release import solution_lines

    real, calls = ast.parse, []

    def first_call_fails(text, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise SystemError("AST constructor recursion depth mismatch (before=123, after=172)")
        return real(text, *args, **kwargs)

    monkeypatch.setattr(ast, "parse", first_call_fails)
    assert solution_lines(INSTRUCTOR / "solutions")["nb03"] and len(calls) > 1
