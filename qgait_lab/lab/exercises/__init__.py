"""The graded exercises of the course, one module per notebook (see :mod:`qgait_lab.lab.exercises.core`).

Importing this package registers every exercise in :data:`core.REGISTRY`.
Notebooks use the facade :mod:`qgait_lab.lab.checks`.
"""
from . import core
from .core import REGISTRY, CheckResult, Exercise, exercises_of, hint

# One module per notebook; importing a module registers its exercises.
from . import gait, quantization, soft_round, explorer, ste_vs_soft, training, idd, bitops, deployment  # noqa: E402,F401,E501

__all__ = ["core", "REGISTRY", "CheckResult", "Exercise", "exercises_of", "hint"]
