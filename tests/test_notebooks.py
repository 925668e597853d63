"""The course notebooks: pairing, structure, exercises, and a fast-mode run of all nine.

* every ``notebooks/NN_topic.py`` (the source of truth) has its ``.ipynb`` pair, in sync and without
  outputs (jupytext's own comparison);
* each opens with learning goals, holds at least two graded exercises laid out as stub cell + check
  cell, imports the library and defines no classes (thin notebooks);
* all nine execute top to bottom in fast mode (``QGAIT_FAST=1``), in order, in one temporary working
  directory (``runs/`` and the SynthGait cache stay out of the repository), through the lost-request
  watchdog of :mod:`qgait_lab.lab.course.execute`; every check reports "not attempted", and no output holds a
  line or a value of the reference solutions;
* every check cell run on its own, in a fresh kernel, either works or says which cells to run first;
* the widget and figure helpers of ``qgait_lab.lab.widgets`` / ``qgait_lab.lab.figures`` behave.
"""
from __future__ import annotations

import ast
import json
import os
import re
import sys
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pytest
import sympy as sp
import torch
from jupytext.compare import compare_notebooks

from exercise_support import INSTRUCTOR, load_instructor_module, number_forms
from qgait_lab.lab.course.answers import check_calls, stub_cells
from qgait_lab.lab.course.execute import execute_notebook
from qgait_lab.lab.course.release import audit_notebook, solution_lines
from qgait_lab.lab.exercises import exercises_of

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
EXPECTED = ["01_gait_recognition", "02_quantization_basics", "03_soft_round_derivation",
            "04_k_slider_explorer", "05_ste_vs_soft", "06_training", "07_idd_tsne", "08_bitops_and_tables",
            "09_fake_to_integer"]
TRAINING = EXPECTED[4:]
SOURCES = [NOTEBOOK_DIR / f"{name}.py" for name in EXPECTED]
CELL_TIMEOUT = 600          # seconds per cell; fast mode needs far less
SILENCE = 60                # a kernel that has not started a cell after this long lost the request
CHECK_CALL = re.compile(r"checks\.(check_\w+)\(")


def _code(path: Path) -> list[str]:
    return [c.source for c in jupytext.read(path).cells if c.cell_type == "code"]


# ---------------------------------------------------------------------------
# Pairing and structure
# ---------------------------------------------------------------------------
def test_the_nine_notebooks_are_there():
    found = sorted(p.stem for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))
    assert found == EXPECTED
    assert (NOTEBOOK_DIR / "jupytext.toml").is_file()
    assert 'formats = "ipynb,py:percent"' in (NOTEBOOK_DIR / "jupytext.toml").read_text()


@pytest.mark.parametrize("source", SOURCES, ids=EXPECTED)
def test_ipynb_is_paired_in_sync_and_has_no_outputs(source):
    ipynb = source.with_suffix(".ipynb")
    assert ipynb.is_file(), f"{ipynb.name} is missing: run `jupytext --sync notebooks/{source.name}`"
    stored = nbformat.read(ipynb, as_version=4)
    nbformat.validate(stored)
    for i, cell in enumerate(stored.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{ipynb.name}, cell {i} has outputs: clear them before committing"
            assert cell.execution_count is None, f"{ipynb.name}, cell {i} has an execution count"
    assert stored.metadata["kernelspec"]["name"] == "python3"
    assert stored.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    # jupytext's own comparison: the same cells, sources and tags (raises on the first difference).
    try:
        compare_notebooks(jupytext.read(ipynb), jupytext.read(source), fmt="py:percent")
    except Exception as err:  # noqa: BLE001 - report jupytext's message with the fix
        pytest.fail(f"{ipynb.name} is out of sync with {source.name} "
                    f"(run `jupytext --sync notebooks/{source.name}`): {err}")


@pytest.mark.parametrize("source", SOURCES, ids=EXPECTED)
def test_notebook_structure(source):
    nb = jupytext.read(source)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and "Learning goals" in first.source, \
        "the notebook must open with its learning goals"
    assert first.source.lstrip().startswith(f"# {source.stem[:2]} ·")
    assert f"notebook {int(source.stem[:2])} of {len(EXPECTED)}" in first.source
    code = "\n".join(_code(source))
    assert "from qgait_lab" in code
    tree = ast.parse(jupytext.writes(nb, fmt="py:percent"))
    classes = [n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    assert not classes, f"notebooks stay thin: move {classes} into the library"


@pytest.mark.parametrize("source", SOURCES, ids=EXPECTED)
def test_every_exercise_is_a_stub_cell_and_a_self_contained_check_cell(source):
    nb = jupytext.read(source)
    number = source.stem[:2]
    exercises = exercises_of(number)
    assert len(exercises) >= 2, f"{source.name} has {len(exercises)} graded exercises; need 2"
    assert audit_notebook(nb, source.stem, solution_lines(INSTRUCTOR / "solutions")) == []
    stubs, calls = stub_cells(nb), check_calls(nb)
    assert sorted(stubs) == sorted(ex.id for ex in exercises), "a stub cell without a registered exercise"
    for ex in exercises:
        stub = nb.cells[stubs[ex.id]].source
        assert "# YOUR CODE HERE" in stub or "# YOUR ANSWER" in stub, f"Exercise {ex.id}: no stub marker"
        check = nb.cells[calls[ex.checker.__name__]].source
        assert calls[ex.checker.__name__] > stubs[ex.id], f"Exercise {ex.id}: the check comes before the stub"
        assert "from qgait_lab.lab import checks" in check, f"Exercise {ex.id}: the check cell must import checks"
        assert f"checks.{ex.checker.__name__}({ex.answer})" in check
    for name in CHECK_CALL.findall("\n".join(_code(source))):
        assert name in {ex.checker.__name__ for ex in exercises}, f"{source.name} calls another notebook's {name}"


def test_training_notebooks_have_a_papermill_parameters_cell():
    for name in TRAINING:
        cells = jupytext.read(NOTEBOOK_DIR / f"{name}.py").cells
        tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{name}: one cell tagged 'parameters'"
        assert re.search(r"^BUDGET = None", tagged[0].source, re.M), f"{name}: BUDGET in the parameters cell"
        assert "notebook_config(" in "\n".join(_code(NOTEBOOK_DIR / f"{name}.py"))
    params = [c for c in jupytext.read(NOTEBOOK_DIR / "06_training.py").cells
              if "parameters" in c.metadata.get("tags", [])][0].source
    for name in ("PRESET", "DATA_ROOT", "METHOD", "BITS", "ITERATIONS", "DEVICE"):
        assert re.search(rf"^\w*{name}\w*\s*=", params, re.M), f"06_training's parameters cell lacks {name}"
    assert re.search(r'^PRESET = "tiny-cpu"', params, re.M)


# ---------------------------------------------------------------------------
# Execution in fast mode
# ---------------------------------------------------------------------------
def _kernel_env(work: Path) -> dict:
    # One thread per kernel: on a small shared CI machine, OpenMP thread pools that oversubscribe
    # the cores make t-SNE and the convolutions many times slower, not faster.
    return {"QGAIT_FAST": "1", "QGAIT_DATA_DIR": str(work / "data"),
            "QGAIT_DATA_SAMPLES": str(REPO / "data_samples"), "PYTHONWARNINGS": "ignore",
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def lab_dir(tmp_path_factory):
    """One working directory for all nine (later notebooks reuse earlier runs)."""
    work = tmp_path_factory.mktemp("lab")
    timings: dict[str, float] = {}
    before = set(NOTEBOOK_DIR.rglob("*"))
    yield work, timings
    assert set(NOTEBOOK_DIR.rglob("*")) <= before, "executing the notebooks wrote into notebooks/"
    if timings:
        print("\nnotebook run times (fast mode): " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
              + f"; total {sum(timings.values()):.0f} s")
        record = os.environ.get("QGAIT_NOTEBOOK_TIMES")
        if record:                       # the closing note's per-notebook times come from here
            with open(record, "a") as f:
                f.write(json.dumps(timings) + "\n")


def _outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if "text" in out:
                parts.append(str(out["text"]))
            for key, value in out.get("data", {}).items():
                if key.startswith("text/") or key.endswith("json"):
                    parts.append(value if isinstance(value, str) else json.dumps(value))
    return "\n".join(parts)


def _solution_values(number: str) -> list[str]:
    """The printed forms of the reference answers that are values (numbers, sympy expressions)."""
    module = load_instructor_module("solutions", f"nb{number}")
    forms = []
    for ex in exercises_of(number):
        value = getattr(module, ex.answer)
        if isinstance(value, bool) or callable(value) or isinstance(value, str):
            continue
        if isinstance(value, (int, float)):
            forms += number_forms(value)
        elif isinstance(value, sp.Basic):
            forms += [f for f in {sp.sstr(value), str(value), sp.latex(value)} if len(f) >= 6]
    return forms


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES, ids=EXPECTED)
def test_notebook_runs_in_fast_mode_and_shows_no_solution(source, lab_dir):
    work, timings = lab_dir
    report = execute_notebook(source.with_suffix(".ipynb"), work, env=_kernel_env(work), cell_timeout=CELL_TIMEOUT,
                              silence_s=SILENCE)
    timings[source.stem] = report.seconds
    nb = report.notebook
    nbformat.write(nb, work / f"{source.stem}.executed.ipynb")     # for inspection after a failure
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", f"{source.stem}: a cell raised {out.get('ename')}"
    from qgait_lab.lab.exercises.core import CHECK_MIME

    shown = [out["data"][CHECK_MIME] for cell in nb.cells for out in cell.get("outputs", [])
             if CHECK_MIME in out.get("data", {})]
    assert sorted(r["exercise"] for r in shown) == sorted(ex.id for ex in exercises_of(source.stem[:2]))
    assert all(r["status"] == "not attempted" for r in shown), "the stubs must report 'not attempted'"
    text = _outputs_text(nb)
    for line in solution_lines(INSTRUCTOR / "solutions")[f"nb{source.stem[:2]}"]:
        assert line not in text, f"{source.stem}: an output shows the solution line {line!r}"
    for form in _solution_values(source.stem[:2]):
        assert form not in text, f"{source.stem}: an output shows the reference answer {form!r}"


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES, ids=EXPECTED)
def test_check_cells_run_alone_say_what_to_run_first(source, tmp_path):
    """Each check cell in a fresh kernel, without the cells above it: it works or names what to run."""
    nb = nbformat.read(str(source.with_suffix(".ipynb")), as_version=4)
    calls = check_calls(nb)
    alone = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(nb.cells[i].source)
                                            for i in sorted(set(calls.values()))])
    report = execute_notebook(alone, tmp_path, env=_kernel_env(tmp_path), silence_s=SILENCE, allow_errors=True)
    for cell in report.notebook.cells:
        errors = [o for o in cell.outputs if o.get("output_type") == "error"]
        said = "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
        if errors:
            assert errors[0]["ename"] == "NameError", errors[0]
            assert "This cell needs cells that have not run yet" in said and "Exercise" in said, said


@pytest.mark.slow
def test_notebook_05_runs_the_from_scratch_reading_when_asked(lab_dir):
    """The parameters cell's other Fig. 5 reading, injected the way papermill does."""
    work, _ = lab_dir
    nb = jupytext.read(NOTEBOOK_DIR / "05_ste_vs_soft.ipynb")
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", []))
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell('FIG5_START = "scratch"'))
    nb = execute_notebook(nb, work, env=_kernel_env(work), cell_timeout=CELL_TIMEOUT, silence_s=SILENCE,
                          name="05_ste_vs_soft (scratch)").notebook
    shown = "\n".join(out.get("data", {}).get("text/markdown", "") for c in nb.cells
                       for out in c.get("outputs", []))
    assert "k = 10" in shown or "k=10" in shown, "the from-scratch report was not displayed"
    assert (work / "runs" / "reproduce-fig5" / "fig5_loss_curves.png").is_file()


# ---------------------------------------------------------------------------
# The helpers the notebooks rely on
# ---------------------------------------------------------------------------
def test_find_and_load_data_samples(monkeypatch, tmp_path):
    from qgait_lab.lab.widgets import find_data_samples, load_sample_sequence

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QGAIT_DATA_SAMPLES", raising=False)
    assert find_data_samples().resolve() == (REPO / "data_samples").resolve()
    frames, info = load_sample_sequence(0)
    assert frames.dtype == np.uint8 and frames.ndim == 3 and frames.shape[1:] == (64, 64)
    assert info.label
    monkeypatch.setenv("QGAIT_DATA_SAMPLES", str(tmp_path / "nowhere"))      # ignored: not a folder
    assert find_data_samples().resolve() == (REPO / "data_samples").resolve()
    with pytest.raises(FileNotFoundError, match="no-such-dataset"):
        find_data_samples("no-such-dataset")


def test_meaningful_fraction_limits():
    from qgait_lab.lab.widgets import meaningful_gradient_fraction, uniform_meaningful_fraction

    assert uniform_meaningful_fraction(1.0) == 1.0           # the slope at k=1 never falls below 0.85
    assert uniform_meaningful_fraction(3.0) == 1.0           # minimum 0.30 >= 0.1
    assert 0.5 < uniform_meaningful_fraction(10.0) < 0.56
    assert uniform_meaningful_fraction(20.0, threshold=100.0) == 0.0
    c = torch.tensor([-1.0, 0.0, 0.5, 2.5, 20.0])
    # Outside (lo, hi) there is no gradient at all, whatever k.
    assert meaningful_gradient_fraction(c, 1.0, lo=0, hi=15) == pytest.approx(2 / 5)


def test_first_layers_probe_reacts_to_bits_and_step():
    from qgait_lab.lab.widgets import FirstLayersProbe, load_sample_sequence

    frames, _ = load_sample_sequence(0)
    probe = FirstLayersProbe(frames, channels=(16, 32, 64, 128), n_frames=1)
    coarse, fine = probe.run(2, 1.0, 3.0), probe.run(8, 1.0, 3.0)
    assert fine.act_rel_error < coarse.act_rel_error
    assert coarse.levels_used <= 4 and fine.levels_used > 4
    small, large = probe.run(4, 0.25, 3.0), probe.run(4, 4.0, 3.0)
    assert small.clipped > large.clipped
    assert small.step == pytest.approx(large.step / 16, rel=1e-5)
    sharp, mild = probe.run(4, 1.0, 20.0), probe.run(4, 1.0, 3.0)
    assert sharp.meaningful_soft < sharp.meaningful_ste
    assert mild.meaningful_soft == pytest.approx(mild.meaningful_ste)     # k = 3: every in-range slope >= 0.3


def test_k_explorer_builds_sliders_and_draws(monkeypatch):
    import matplotlib
    import matplotlib.pyplot as plt

    from qgait_lab.lab import widgets
    from qgait_lab.lab.widgets import FirstLayersProbe, k_explorer, load_sample_sequence

    matplotlib.use("Agg")
    drawn = []
    real = widgets.explorer_figure

    def spy(k, result, k_max, fig=None):
        drawn.append((k, None if result is None else result.bits))
        return real(k, result, k_max, fig)

    monkeypatch.setattr(widgets, "explorer_figure", spy)
    monkeypatch.setattr(plt, "show", lambda *a, **kw: None)
    frames, _ = load_sample_sequence(0)
    box = k_explorer(FirstLayersProbe(frames, channels=(16, 32, 64, 128), n_frames=1), k=3.0, bits=4)
    assert set(box.controls) == {"k", "bits", "step_scale"}
    assert drawn[-1] == (3.0, 4)
    box.controls["k"].value = 6.0
    assert drawn[-1] == (6.0, 4)
    box.controls["bits"].value = 8
    assert drawn[-1] == (6.0, 8)
    plt.close("all")


def test_live_loss_plot_tracks_stages(monkeypatch):
    import matplotlib
    import matplotlib.pyplot as plt

    from qgait_lab.lab.widgets import LiveLossPlot

    matplotlib.use("Agg")
    plot = LiveLossPlot(interval=1e9)
    for stage, n in (("full_precision", 5), ("stage2", 3)):
        for i in range(1, n + 1):
            plot({"stage": stage, "kind": "train", "iteration": i, "loss": 1.0 / i, "triplet": 0.5, "ce": 0.5,
                  "k": 1.0 + 0.2 * i if stage == "stage2" else 0.0, **({"distill": 0.1} if stage == "stage2" else {})})
        plot({"stage": stage, "kind": "eval", "iteration": n, "rank1": 50.0})
    assert [r["x"] for r in plot.records] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert plot._stage_offsets == {"full_precision": 0, "stage2": 5}
    fig = plot.figure()
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "distillation loss", "k"]
    assert [len(ax.lines) for ax in fig.axes] == [3 + 2, 1 + 2, 1 + 2]     # data lines + 2 stage markers per panel
    plt.close(fig)


def test_torchrun_command_and_follow(tmp_path):
    from qgait_lab.lab.widgets import display_command, follow_command, torchrun_command

    cmd = torchrun_command(2, "tiny-cpu", "fp", None, ["runtime.device=cpu"], name="x", master_port=1234)
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nproc_per_node=2" in cmd and "--master_port=1234" in cmd
    assert cmd[cmd.index("qgait_lab.cli") + 1:] == ["train", "--preset", "tiny-cpu", "--method", "fp",
                                                     "--name", "x", "--set", "runtime.device=cpu"]
    assert display_command(cmd).startswith("torchrun --nnodes=1 --nproc_per_node=2")
    with pytest.raises(ValueError):
        torchrun_command(0)
    log = tmp_path / "logs" / "run.log"
    status = follow_command([sys.executable, "-c", "print('one'); print('two'); raise SystemExit(3)"], log,
                            echo=False)
    assert status == 3 and log.read_text().splitlines() == ["one", "two"]


def test_quantizer_response_matches_the_stes_derivatives():
    from qgait_lab.quant import LSQQuantizer, PACTQuantizer
    from qgait_lab.lab.figures import quantizer_response

    x = torch.linspace(-1, 5, 601)
    q = LSQQuantizer(2, is_weight=False, signed=False)
    q(x)
    with torch.no_grad():
        q.step.fill_(1.0)
    r = quantizer_response(q, x)
    inside = (r["x"] > 0) & (r["x"] < 3)
    assert np.allclose(r["d/dx"][inside], 1.0) and np.allclose(r["d/dx"][r["x"] > 3.01], 0.0)
    mid = inside & (np.abs(r["x"] - np.floor(r["x"]) - 0.5) > 0.02)
    assert np.allclose(r["d/dstep"][mid], np.round(r["x"][mid]) - r["x"][mid], atol=1e-5)
    assert np.allclose(r["d/dstep"][r["x"] > 3.01], 3.0)
    r = quantizer_response(PACTQuantizer(2, alpha_init=2.0), x)
    assert np.array_equal(r["d/dalpha"], (r["x"] >= 2.0).astype(np.float32))


def test_notebook_figures_draw():
    import matplotlib
    import matplotlib.pyplot as plt

    from qgait_lab.models import build_model
    from qgait_lab.quant.bitops import count_costs, gaitbase_inference_layers
    from qgait_lab.lab.figures import (accuracy_per_bitop_figure, bitops_per_layer_figure,
                                       histogram_figure, interclass_distance_figure,
                                       soft_quantizer_moments_figure)

    matplotlib.use("Agg")
    fig = soft_quantizer_moments_figure(k_max=8, mark_k=3)
    assert len(fig.axes) == 2
    gen = torch.Generator().manual_seed(0)
    labels = np.repeat(np.arange(5), 4)
    ref = torch.randn(20, 8, 2, generator=gen)
    interclass_distance_figure(ref, {"same": ref.clone(), "noisy": ref + 0.3 * torch.randn(20, 8, 2, generator=gen)},
                               labels)
    histogram_figure({"a": np.random.default_rng(0).normal(size=100)})
    costs = count_costs(build_model("gaitbase", num_classes=10, channels=(8, 16, 32, 64)),
                        torch.zeros(1, 4, 32, 22), include=gaitbase_inference_layers)
    bitops_per_layer_figure({"fp": costs})
    accuracy_per_bitop_figure({"x": [{"method": "a", "bitops_g": 2.0, "rank1": 50.0},
                                     {"method": "b", "bitops_g": None, "rank1": 40.0}]})
    plt.close("all")
