"""``qgait-lab lab release``: the notebooks a lecturer hands out.

The repository's notebooks are already the students' copies (stubs, no
solutions); the release makes that a checked fact and packs what a student
needs:

* every course notebook as ``.ipynb``, outputs and execution counts cleared,
  cells tagged ``instructor`` removed;
* a refusal, naming the notebook and the cell, if a stub cell is missing, a
  check cell is missing, or a cell holds a line of a reference solution;
* ``data_samples/`` (notebooks 01, 02 and 04 read it) and a ``MANIFEST.json``
  listing the exercises of each notebook, which ``lab grade`` also reads.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat

from ..exercises import exercises_of
from .answers import check_calls, read_notebook, stub_cells
from .paths import find_folder

INSTRUCTOR_TAG = "instructor"


def course_notebooks(notebooks_dir: Path) -> list[Path]:
    """The course notebooks ``NN_topic.py`` of a folder, in order (the ``.py`` is the source of truth)."""
    found = sorted(p for p in notebooks_dir.glob("[0-9][0-9]_*.py"))
    if not found:
        raise FileNotFoundError(f"{notebooks_dir} holds no course notebooks (NN_topic.py)")
    return found


def _parse(text: str):
    """``ast.parse``; on CPython 3.11.7's "AST constructor recursion depth mismatch" (a SystemError from a
    recursion counter left out of step in this thread, fixed in later releases), again in a fresh thread."""
    import ast
    import threading

    try:
        return ast.parse(text)
    except SystemError:
        result: list = []
        worker = threading.Thread(target=lambda: result.append(ast.parse(text)))
        worker.start()
        worker.join()
        if not result:
            raise
        return result[0]


def solution_lines(solutions_dir: Path) -> dict[str, set[str]]:
    """Per solutions file, the code lines of its answers (what must never appear in a student's copy).

    Function bodies without their docstrings, and module-level assignments; signatures, imports and
    comments are not answers (a stub repeats the signature).  Lines shorter than 12 characters
    (``return out``) are too common to count.
    """
    import ast

    out = {}
    for path in sorted(solutions_dir.glob("nb*.py")):
        text = path.read_text()
        source = text.splitlines()
        spans = []
        for node in _parse(text).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body[1:] if (node.body and isinstance(node.body[0], ast.Expr)
                                         and isinstance(node.body[0].value, ast.Constant)) else node.body
                spans += [(stmt.lineno, stmt.end_lineno) for stmt in body]
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                spans.append((node.lineno, node.end_lineno))
        lines = set()
        for first, last in spans:
            for line in source[first - 1:last]:
                code = line.strip()
                if len(code) >= 12 and not code.startswith("#"):
                    lines.add(code)
        out[path.stem] = lines
    return out


def audit_notebook(nb, name: str, leaks: dict[str, set[str]] | None = None) -> list[str]:
    """Problems that keep ``nb`` from being handed out (empty: none)."""
    problems = []
    number = name[:2]
    stubs, calls = stub_cells(nb), check_calls(nb)
    for ex in exercises_of(number):
        if ex.id not in stubs:
            problems.append(f"{name}: Exercise {ex.id} has no stub cell ('# Exercise {ex.id}')")
        if ex.checker.__name__ not in calls:
            problems.append(f"{name}: Exercise {ex.id} has no cell calling checks.{ex.checker.__name__}")
    for ex_id in stubs:
        if ex_id.split(".")[0].zfill(2) != number:
            problems.append(f"{name}: stub cell of Exercise {ex_id} belongs to another notebook")
    for source_name, lines in (leaks or {}).items():
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            body = {line.strip() for line in cell.source.splitlines()}
            shared = sorted(body & lines)
            if shared:
                problems.append(f"{name}, cell {i}: holds a line of instructor/solutions/{source_name}.py: "
                                f"{shared[0][:60]!r}")
    return problems


def student_copy(nb):
    """The notebook without instructor cells, outputs or execution counts."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    nb.cells = [c for c in nb.cells if INSTRUCTOR_TAG not in c.get("metadata", {}).get("tags", [])]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.get("metadata", {}).pop("execution", None)
    return nb


def release(out: str | Path, notebooks_dir: str | Path | None = None,
            instructor_dir: str | Path | None = None) -> dict:
    """Write the student release into ``out``; returns the manifest. Refuses (``ValueError``) on any problem.

    Nothing is written unless every notebook passes the audit, and an existing
    non-empty ``out`` is refused rather than overwritten.
    """
    notebooks_dir = find_folder("notebooks", explicit=notebooks_dir)
    instructor = find_folder("instructor", "QGAIT_INSTRUCTOR", instructor_dir)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose a new folder for the release")
    leaks = solution_lines(instructor / "solutions")
    copies, problems, manifest = {}, [], {"notebooks": {}}
    for source in course_notebooks(notebooks_dir):
        nb = student_copy(read_notebook(source))
        problems += audit_notebook(nb, source.stem, leaks)
        copies[source.stem] = nb
        manifest["notebooks"][source.stem] = [
            {"id": ex.id, "title": ex.title, "answer": ex.answer, "points": ex.points}
            for ex in exercises_of(source.stem[:2])]
    if problems:
        raise ValueError("the release was not written:\n  " + "\n  ".join(problems))
    out.mkdir(parents=True, exist_ok=True)
    for stem, nb in copies.items():
        nbformat.write(nb, str(out / f"{stem}.ipynb"))
    try:
        samples = find_folder("data_samples", "QGAIT_DATA_SAMPLES")
        shutil.copytree(samples, out / "data_samples")
    except FileNotFoundError:
        pass
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (out / "README.md").write_text(
        "# QGait lab: student notebooks\n\n"
        "Open them with `jupyter lab` in this folder (the `qgait-lab` package must be installed). Work through "
        "the notebooks in order. Each exercise has a stub cell (`# Exercise N.M`) to complete and a check cell "
        "that tells you whether your answer is right; `checks.hint(\"N.M\")` gives a hint, and a second call "
        "with level 2 gives more. Hand in the `.ipynb` files, saved, with your answers in the stub cells.\n")
    return manifest
