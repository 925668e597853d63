"""``qgait-lab lab grade``: execute submitted notebooks and grade every exercise.

For each submission the grader

1. executes the notebook top to bottom in fast mode (``QGAIT_FAST=1``) in a
   fresh kernel and a working folder of the student's own, under a time limit
   per notebook and the lost-request watchdog of :mod:`.execute`; a cell that
   raises is recorded and the next cells still run;
2. appends one grading cell that, in the same kernel, runs every exercise's
   checker on the student's answer (the variable the stub defines) and then
   the hidden checks of ``instructor/hidden/nbNN.py``, which the student's
   copy does not contain;
3. scores an exercise as passed when its checker and all its hidden checks pass.

It writes one CSV row per student, notebook and exercise, and one feedback
file per student (``feedback/<student>.md`` next to the CSV) that says what was
wrong and where, in the checkers' words, never the expected value.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from ..exercises import core, exercises_of
from .answers import notebook_number, read_notebook
from .execute import KernelStall, NotebookTimeout, execute_notebook
from .paths import find_folder

GRADE_MIME = "application/vnd.qgait-lab.grade+json"


# ---------------------------------------------------------------------------
# Inside the student's kernel
# ---------------------------------------------------------------------------
class _GradeDisplay:
    def __init__(self, rows: list[dict]):
        self.rows = rows

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {GRADE_MIME: {"rows": self.rows}, "text/plain": json.dumps(self.rows, indent=1)}


def load_hidden(path: str | Path | None) -> dict[str, list]:
    """``HIDDEN`` of an ``instructor/hidden/nbNN.py`` file (empty when there is no such file)."""
    if path is None or not Path(path).is_file():
        return {}
    spec = importlib.util.spec_from_file_location(f"hidden_{Path(path).stem}", str(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(getattr(module, "HIDDEN", {}))


def grade_namespace(number: str, namespace: Mapping, hidden_file: str | None = None) -> list[dict]:
    """Run the visible and the hidden checks of notebook ``number`` on the answers in ``namespace``."""
    hidden = load_hidden(hidden_file)
    rows = []
    for ex in exercises_of(number):
        answer = namespace.get(ex.answer)
        visible = ex.checker(answer)
        row = {"exercise": ex.id, "title": ex.title, "points": ex.points, "visible": visible.status,
               "visible_message": visible.message, "hidden": "not run", "hidden_messages": []}
        if visible.status != "not attempted":
            statuses = []
            for fn in hidden.get(ex.id, []):
                result = core.run_check(ex, fn, answer)
                statuses.append(result.status)
                if result.status != "passed":
                    row["hidden_messages"].append(result.message)
            row["hidden"] = ("passed" if all(s == "passed" for s in statuses) else "failed") if statuses else "none"
        rows.append(row)
    return rows


def grade_in_kernel(number: str, namespace: Mapping, hidden_file: str | None = None) -> _GradeDisplay:
    """What the grading cell displays: the rows of :func:`grade_namespace` under :data:`GRADE_MIME`."""
    return _GradeDisplay(grade_namespace(number, namespace, hidden_file))


# ---------------------------------------------------------------------------
# Outside: the grader
# ---------------------------------------------------------------------------
@dataclass
class NotebookGrade:
    student: str
    notebook: str
    rows: list[dict]
    seconds: float
    note: str = ""
    errors: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        return sum(r["points"] for r in self.rows if _passed(r))

    @property
    def max_score(self) -> float:
        return sum(r["points"] for r in self.rows)


def _passed(row: dict) -> bool:
    return row["visible"] == "passed" and row["hidden"] in ("passed", "none")


def collect_submissions(paths: Iterable[str | Path]) -> list[tuple[str, Path]]:
    """(student, notebook) pairs: a folder is one student's (named after it); a file ``alice__03_x.ipynb``
    is alice's, a file ``alice/03_x.ipynb`` is alice's too."""
    out = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(path.glob("*.ipynb"))
            if not files:
                raise FileNotFoundError(f"{path}: the submission folder holds no .ipynb file")
            out += [(path.name, f) for f in files]
        elif path.is_file():
            if path.suffix != ".ipynb":
                raise ValueError(f"{path}: a submission must be a .ipynb notebook or a folder of them")
            student = path.name.split("__")[0] if "__" in path.name else path.parent.name
            out.append((student, path))
        else:
            raise FileNotFoundError(f"{path}: no such submission file or folder")
    return out


def grading_cell(number: str, hidden_file: Path) -> str:
    return ("from qgait_lab.lab.course.grade import grade_in_kernel as _grade_in_kernel\n"
            f"_grade_in_kernel({number!r}, globals(), {str(hidden_file)!r})")


def grade_notebook(student: str, path: Path, workdir: Path, instructor: Path, env: Mapping[str, str],
                   notebook_timeout: float, cell_timeout: float) -> NotebookGrade:
    import nbformat

    try:
        nb = read_notebook(path)
        number = notebook_number(nb, path.name)
    except ValueError as err:
        return NotebookGrade(student, path.stem, [], 0.0, note=str(err))
    exercises = exercises_of(number)
    blank = [{"exercise": ex.id, "title": ex.title, "points": ex.points, "visible": "not run",
              "visible_message": "", "hidden": "not run", "hidden_messages": []} for ex in exercises]
    nb.cells.append(nbformat.v4.new_code_cell(grading_cell(number, instructor / "hidden" / f"nb{number}.py")))
    try:
        report = execute_notebook(nb, workdir, env=env, cell_timeout=cell_timeout, notebook_timeout=notebook_timeout,
                                  name=f"{student}/{path.name}", raise_on_error=False, allow_errors=True)
    except (KernelStall, NotebookTimeout) as err:
        return NotebookGrade(student, path.stem, blank, notebook_timeout, note=f"not graded: {err}")
    errors = [f"cell {i}: {o.get('ename')}: {o.get('evalue')}" for i, c in enumerate(report.notebook.cells[:-1])
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    last = report.notebook.cells[-1].get("outputs", [])
    rows = next((o["data"][GRADE_MIME]["rows"] for o in last if GRADE_MIME in o.get("data", {})), None)
    if rows is None:
        why = report.error or "the grading cell displayed nothing"
        return NotebookGrade(student, path.stem, blank, report.seconds, note=f"not graded: {why[:500]}",
                             errors=errors)
    return NotebookGrade(student, path.stem, rows, report.seconds, errors=errors)


def feedback_markdown(student: str, grades: list[NotebookGrade]) -> str:
    lines = [f"# Feedback for {student}", ""]
    total = sum(g.score for g in grades)
    most = sum(g.max_score for g in grades)
    lines += [f"**Total: {total:g} of {most:g} points.**", ""]
    for g in grades:
        lines += [f"## {g.notebook}: {g.score:g} / {g.max_score:g}", ""]
        if g.note:
            lines += [f"*{g.note}*", ""]
        for e in g.errors:
            lines.append(f"- A cell raised an error ({e}); the cells after it still ran.")
        for r in g.rows:
            verdict = "passed" if _passed(r) else ("not attempted" if r["visible"] == "not attempted"
                                                   else "not yet")
            lines.append(f"- **Exercise {r['exercise']}** ({r['title']}): {verdict}.")
            if r["visible"] == "failed":
                lines.append(f"  - {r['visible_message']}")
            elif r["visible"] == "passed" and r["hidden"] == "failed":
                lines.append("  - Your answer passes the notebook's check but not the grader's further cases:")
                lines += [f"  - {m}" for m in r["hidden_messages"]]
        lines.append("")
    return "\n".join(lines)


CSV_FIELDS = ["student", "notebook", "exercise", "title", "visible", "hidden", "points", "max_points",
              "notebook_seconds", "note"]


def grade(submissions: Iterable[str | Path], out_csv: str | Path, instructor_dir: str | Path | None = None,
          notebook_timeout: float = 900, cell_timeout: float = 600, env: Mapping[str, str] | None = None,
          progress=print) -> list[NotebookGrade]:
    """Grade every submission; write ``out_csv`` and ``feedback/<student>.md`` beside it."""
    instructor = find_folder("instructor", "QGAIT_INSTRUCTOR", instructor_dir)
    if not (instructor / "hidden").is_dir():
        raise FileNotFoundError(f"{instructor} has no hidden/ folder of hidden checks")
    out_csv = Path(out_csv)
    if out_csv.suffix != ".csv":
        raise ValueError(f"--out {out_csv}: the grades file must end in .csv")
    pairs = collect_submissions(submissions)
    base = out_csv.parent / (out_csv.stem + "-work")
    run_env = {"QGAIT_FAST": "1", "QGAIT_DATA_DIR": str((base / "data").resolve()), "PYTHONWARNINGS": "ignore",
               "OMP_NUM_THREADS": "1", **dict(env or {})}
    try:
        run_env.setdefault("QGAIT_DATA_SAMPLES", str(find_folder("data_samples", "QGAIT_DATA_SAMPLES")))
    except FileNotFoundError:
        pass
    by_student: dict[str, list[NotebookGrade]] = {}
    for student, path in sorted(pairs, key=lambda p: (p[0], p[1].name)):
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", student) or "student"
        g = grade_notebook(student, path, base / safe, instructor, run_env, notebook_timeout, cell_timeout)
        by_student.setdefault(student, []).append(g)
        progress(f"{student}: {path.name}: {g.score:g}/{g.max_score:g} ({g.seconds:.0f} s){' ' + g.note if g.note else ''}")
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_csv.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for student, grades in by_student.items():
            for g in grades:
                for r in g.rows or [{"exercise": "", "title": "", "visible": "", "hidden": "", "points": 0}]:
                    writer.writerow({"student": student, "notebook": g.notebook, "exercise": r["exercise"],
                                     "title": r["title"], "visible": r["visible"], "hidden": r["hidden"],
                                     "points": r["points"] if r.get("exercise") and _passed(r) else 0,
                                     "max_points": r["points"], "notebook_seconds": f"{g.seconds:.1f}",
                                     "note": g.note})
    tmp.replace(out_csv)
    feedback = out_csv.parent / "feedback"
    feedback.mkdir(exist_ok=True)
    for student, grades in by_student.items():
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", student) or "student"
        (feedback / f"{safe}.md").write_text(feedback_markdown(student, grades))
    return [g for grades in by_student.values() for g in grades]
