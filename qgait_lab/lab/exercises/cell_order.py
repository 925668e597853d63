"""Out-of-order cells: turn a bare ``NameError`` into a sentence that says which cells to run first.

A student who opens a notebook and runs an exercise's check cell before the
cells above it gets ``NameError: name 'theta_k' is not defined``.  Importing
:mod:`qgait_lab.lab.checks` (which every check cell does) installs an IPython
handler that adds what to do: the exercise whose cell defines the name, when
it is an exercise's answer, or "run the cells above this one" otherwise.
Outside IPython nothing is installed.
"""
from __future__ import annotations

import re

from .core import REGISTRY

_NAME = re.compile(r"name '(\w+)' is not defined")


def where_defined(name: str) -> str:
    """Where a notebook defines ``name``, in words a student can act on."""
    for ex in REGISTRY.values():
        if ex.answer == name:
            return (f"`{name}` is the answer of Exercise {ex.id} ({ex.title}) in notebook {ex.notebook}: "
                    f"run that exercise's cell (the one marked '# Exercise {ex.id}') first, and the cells above it")
    if name == "checks":
        return "`checks` comes from `from qgait_lab.lab import checks`: run the notebook's first code cell"
    return (f"`{name}` is defined by an earlier cell of this notebook: run the cells above this one in order "
            "(Run > Run All Above Selected Cell), then this one again")


def _handler(shell, etype, value, tb, tb_offset=None):
    shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
    match = _NAME.search(str(value))
    if match:
        print(f"\nThis cell needs cells that have not run yet. {where_defined(match.group(1))}.")
    return None


def install_name_help() -> bool:
    """Install the NameError explanation in the running IPython kernel (once); False outside IPython."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    if getattr(shell, "_qgait_name_help", False):
        return True
    shell.set_custom_exc((NameError,), _handler)
    shell._qgait_name_help = True
    return True
