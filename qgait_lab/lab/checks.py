"""What a notebook's check cell calls: ``checks.check_theta_k(theta_k)``, ``checks.hint("3.1")``.

Every checker of every exercise is importable from here under its name
(``check_...``), together with :func:`hint` (hints on request, in tiers) and
:func:`exercises` (the list of a notebook's exercises).  The checkers
themselves live in :mod:`qgait_lab.lab.exercises`, one module per notebook;
importing this module in a Jupyter kernel also installs the out-of-order
help of :mod:`qgait_lab.lab.exercises.cell_order`.
"""
from __future__ import annotations

from .exercises import REGISTRY, CheckResult, exercises_of, hint
from .exercises.cell_order import install_name_help

CHECKERS = {ex.checker.__name__: ex.checker for ex in REGISTRY.values() if ex.checker is not None}
globals().update(CHECKERS)


def exercises(notebook: str) -> list[str]:
    """``"Exercise 3.1: implement θ_k"``, ... for one notebook (``"03"``)."""
    return [f"Exercise {ex.id}: {ex.title}" for ex in exercises_of(notebook)]


install_name_help()

__all__ = ["CheckResult", "hint", "exercises", *sorted(CHECKERS)]
