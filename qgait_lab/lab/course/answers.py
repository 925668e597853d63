"""Where a notebook keeps its exercises: the stub cells, the check cells, and filling in answers.

An exercise's stub cell starts with the line ``# Exercise N.M`` (see
``instructor/README.md``); its check cell calls ``checks.check_...``.  The
grader and the tests find them here, and :func:`fill_answers` replaces stub
cells, e.g. with the reference solutions to make the instructor's solved copy.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Mapping

import nbformat

STUB_LINE = re.compile(r"^#\s*Exercise\s+(\d+\.\d+)\s*$")
CHECK_CALL = re.compile(r"checks\.(check_\w+)\(")


def stub_cells(nb) -> dict[str, int]:
    """Exercise id -> index of its stub cell."""
    found: dict[str, int] = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        match = STUB_LINE.match(cell.source.strip().splitlines()[0])
        if match:
            if match.group(1) in found:
                raise ValueError(f"Exercise {match.group(1)} has two stub cells ({found[match.group(1)]} and {i})")
            found[match.group(1)] = i
    return found


def check_calls(nb) -> dict[str, int]:
    """Checker name -> index of the cell that calls it."""
    return {name: i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
            for name in CHECK_CALL.findall(cell.source)}


def notebook_number(nb, filename: str | None = None) -> str:
    """The two-digit number of a course notebook, from its file name (``03_...``) or its stub cells."""
    if filename:
        match = re.search(r"(?<!\d)(\d\d)_[A-Za-z]", Path(filename).name)
        if match:
            return match.group(1)
    ids = list(stub_cells(nb))
    if ids:
        return f"{int(ids[0].split('.')[0]):02d}"
    raise ValueError(f"{filename or 'the notebook'}: cannot tell which course notebook this is "
                     "(no NN_ prefix in its name and no '# Exercise N.M' stub cells)")


def fill_answers(nb, answers: Mapping[str, str]):
    """A copy of ``nb`` whose stub cells for the given exercise ids hold the given source instead."""
    out = copy.deepcopy(nb)
    stubs = stub_cells(out)
    for exercise_id, source in answers.items():
        if exercise_id not in stubs:
            raise KeyError(f"the notebook has no stub cell for Exercise {exercise_id}")
        out.cells[stubs[exercise_id]].source = f"# Exercise {exercise_id}\n{source}"
    return out


def solution_source(solutions_file: Path, names: Mapping[str, str]) -> dict[str, str]:
    """Stub replacements that load the reference answers from ``solutions_file`` (exercise id -> cell source)."""
    module = f"reference_{solutions_file.stem}"
    out = {}
    for exercise_id, name in names.items():
        out[exercise_id] = (
            "import importlib.util as _util\n"
            f"_spec = _util.spec_from_file_location({module!r}, {str(solutions_file)!r})\n"
            "_reference = _util.module_from_spec(_spec)\n"
            "_spec.loader.exec_module(_reference)\n"
            f"{name} = _reference.{name}\n")
    return out


def read_notebook(path: str | Path):
    """A course notebook from its ``.ipynb`` or its jupytext ``.py``."""
    path = Path(path)
    if path.suffix == ".py":
        import jupytext

        return jupytext.read(path)
    try:
        return nbformat.read(str(path), as_version=4)
    except Exception as err:  # noqa: BLE001 - report which file is broken
        raise ValueError(f"{path}: not a readable notebook ({type(err).__name__}: {err})") from None
