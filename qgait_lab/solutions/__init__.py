"""Reference solutions to the exercises of the course notebooks (one module per notebook).

The notebooks hold only stubs; a lecturer can show a solution with, e.g.::

    from qgait_lab.solutions import nb01
    checks.check_theta_k(nb01.theta_k)

Each name here matches the stub in the notebook and the checker in
:mod:`qgait_lab.checks` that grades it; ``tests/test_checks.py`` runs every
checker on these solutions (they must pass) and on wrong answers (they must fail).
"""
from . import nb01, nb02, nb03, nb04, nb05, nb06

__all__ = ["nb01", "nb02", "nb03", "nb04", "nb05", "nb06"]
