"""Shared assertions for the exercise tests (one ``test_exercises_nbNN.py`` per notebook).

Every exercise is tested three ways: the reference solution in
``instructor/solutions/`` passes, an untouched stub reports only "not attempted",
and at least two typical wrong answers fail with feedback that names what is
wrong without containing the expected value.
"""
from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from typing import Any, Iterable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
INSTRUCTOR = REPO / "instructor"


def load_instructor_module(kind: str, notebook: str):
    """``instructor/<kind>/<notebook>.py`` (kind: solutions or hidden) as a module, e.g. ("solutions", "nb03")."""
    path = INSTRUCTOR / kind / f"{notebook}.py"
    name = f"_instructor_{kind}_{notebook}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def number_forms(value: float) -> list[str]:
    """The ways a number could leak into a message: 3 to 6 significant digits, and fixed 1 to 4 decimals."""
    value = float(value)
    forms = {f"{value:.{d}g}" for d in range(3, 7)} | {f"{value:.{d}f}" for d in range(1, 5)}
    # Integers and very short forms ("1", "0.5") are too common in any sentence to be a leak.
    return sorted(f for f in forms if len(f.replace("-", "").replace(".", "").rstrip("0")) >= 3)


def text_of(result) -> str:
    return str(result) + "\n" + result._repr_html_()


def assert_passes(checker, answer) -> None:
    result = checker(answer)
    assert result.status == "passed", f"{checker.__name__} rejects the reference solution: {result}"


def assert_hidden_checks_separate(checks: Iterable[Any], solution: Any, wrongs: Iterable[Any]) -> None:
    """Every hidden check returns its message for ``solution`` and raises ``Wrong`` for each of ``wrongs``."""
    import pytest

    from qgait_lab.lab.exercises.core import Wrong

    wrongs = list(wrongs)
    for check in checks:
        assert isinstance(check(solution), str)
        for wrong in wrongs:
            with pytest.raises(Wrong):
                check(wrong)


def assert_not_attempted(checker, stub: Any = None) -> None:
    result = checker(stub)
    assert result.status == "not attempted", f"{checker.__name__} on a stub: {result}"
    assert result.message == "not attempted" and not result.details


def assert_fails_without_revealing(checker, wrong, secrets: Iterable[Any] = (), mentions: Iterable[str] = ()) -> str:
    """``wrong`` fails; the feedback names each of ``mentions`` and contains none of ``secrets``.

    A secret is a number (all its usual printed forms are searched for) or a
    string (searched for as it is, e.g. the solution's code).
    """
    result = checker(wrong)
    assert result.status == "failed", f"{checker.__name__} accepts a wrong answer: {result}"
    text = text_of(result)
    for secret in secrets:
        forms = number_forms(secret) if isinstance(secret, (int, float, np.floating)) and not isinstance(secret, bool) \
            else [str(secret)]
        for form in forms:
            assert form not in text, f"{checker.__name__}'s feedback reveals {form!r}: {text}"
    for word in mentions:
        assert word.lower() in text.lower(), f"{checker.__name__}'s feedback does not say {word!r}: {text}"
    return text


def assert_hints_hide(exercise_id: str, secrets: Iterable[str]) -> None:
    """No hint tier of the exercise contains any of the solution's code fragments."""
    from qgait_lab.lab.exercises import core

    ex = core.get(exercise_id)
    assert len(ex.hints) >= 2, f"Exercise {exercise_id} needs at least two hint tiers"
    for level in range(1, len(ex.hints) + 1):
        text = str(core.hint(exercise_id, level))
        for secret in secrets:
            assert str(secret) not in text, f"hint {level} of Exercise {exercise_id} gives away {secret!r}"


def isclose(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
