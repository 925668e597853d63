"""The machinery behind every graded exercise of the course notebooks.

An exercise is registered once, with its identifier (``"3.2"``: notebook 3,
exercise 2), the name of the notebook variable that holds the answer, and its
hints in tiers.  Its *checker* runs the student's answer on several cases and
returns a :class:`CheckResult`.  Three rules keep the feedback honest:

1. an untouched stub (``None``, ``...`` or a function that still raises
   ``NotImplementedError``) reports only "not attempted";
2. a wrong answer is told *what* is wrong and *where*, in the student's own
   terms (the input x, the property violated, the student's own value), and
   never the expected value; checkers raise :class:`Wrong` for that;
3. hints are shown only on request, one tier at a time, with
   :func:`hint` (``checks.hint("3.2")``, then ``checks.hint("3.2", 2)``), and no
   tier spells out the solution.

The reference solutions and the hidden checks are not part of this package:
they live in the repository's ``instructor/`` folder (see
:mod:`qgait_lab.lab.course`).
"""
from __future__ import annotations

import functools
import hashlib
import html
import math
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

CHECK_MIME = "application/vnd.qgait-lab.check+json"
"""The MIME type under which a displayed :class:`CheckResult` carries its verdict (read by the grader)."""

NOT_ATTEMPTED = "not attempted"


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------
@dataclass
class CheckResult:
    """The verdict of one checker.

    ``status`` is ``"passed"``, ``"failed"`` or ``"not attempted"``; ``details``
    are (label, text) rows shown in a table under the message.
    """

    exercise: str
    title: str
    status: str
    message: str
    details: list[tuple[str, str]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def __bool__(self) -> bool:
        return self.passed

    def to_json(self) -> dict:
        return {"exercise": self.exercise, "title": self.title, "status": self.status,
                "message": self.message, "details": [list(row) for row in self.details]}

    def __str__(self) -> str:
        mark = {"passed": "PASS", "failed": "NOT YET"}.get(self.status, "NOT ATTEMPTED")
        text = f"[{mark}] Exercise {self.exercise} ({self.title}): {self.message}"
        for label, value in self.details:
            text += f"\n  {label}: {value}"
        if self.status == "failed":
            text += f"\n  Need a nudge? checks.hint({self.exercise!r})"
        return text

    __repr__ = __str__

    def _repr_html_(self) -> str:
        colour, mark = {"passed": ("#1a7f37", "&#10004; passed"),
                        "failed": ("#b35900", "&#10008; not yet")}.get(self.status, ("#57606a", "&#9711; not attempted"))
        rows = "".join(f"<tr><th style='text-align:left;padding-right:1em;vertical-align:top'>{html.escape(a)}</th>"
                       f"<td style='text-align:left'>{html.escape(b)}</td></tr>" for a, b in self.details)
        table = f"<table style='margin-top:4px'>{rows}</table>" if rows else ""
        nudge = (f"<br><small>Need a nudge? <code>checks.hint({self.exercise!r})</code></small>"
                 if self.status == "failed" else "")
        return (f"<div class='qgait-check' style='border-left:4px solid {colour};padding:4px 10px;margin:4px 0'>"
                f"<b style='color:{colour}'>{mark}</b> Exercise {html.escape(self.exercise)} "
                f"({html.escape(self.title)}): {html.escape(self.message)}{table}{nudge}</div>")

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/plain": str(self), "text/html": self._repr_html_(), CHECK_MIME: self.to_json()}


class Wrong(AssertionError):
    """Raised by a checker: the answer is wrong; the message says what and where, never the expected value."""


class NotAttempted(Exception):
    """Raised by :func:`call` when the student's function still raises ``NotImplementedError``."""


# ---------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Exercise:
    """One graded exercise: where it is, which variable holds the answer, and its hints (tier 1 first)."""

    id: str
    notebook: str
    title: str
    answer: str
    hints: tuple[str, ...]
    checker: Callable[..., CheckResult] | None = None
    points: float = 1.0


REGISTRY: dict[str, Exercise] = {}
"""Every exercise of the course, by identifier (filled when the ``qgait_lab.lab.exercises`` modules load)."""


def exercise(id: str, notebook: str, title: str, answer: str, hints: Sequence[str],
             points: float = 1.0) -> Callable:
    """Register a checker: ``fn(answer) -> str`` (a success message) that raises :class:`Wrong`."""
    if not hints:
        raise ValueError(f"exercise {id} needs at least one hint")

    def wrap(fn: Callable[..., str]) -> Callable[..., CheckResult]:
        @functools.wraps(fn)
        def check(value: Any = None, *args, **kwargs) -> CheckResult:
            return run_check(REGISTRY[id], fn, value, *args, **kwargs)

        if id in REGISTRY and REGISTRY[id].checker is not None and REGISTRY[id].checker.__name__ != fn.__name__:
            raise ValueError(f"exercise {id} is registered twice ({REGISTRY[id].checker.__name__}, {fn.__name__})")
        REGISTRY[id] = Exercise(id, notebook, title, answer, tuple(hints), check, points)
        check.exercise = id  # type: ignore[attr-defined]
        check.raw = fn  # type: ignore[attr-defined]
        return check

    return wrap


def run_check(ex: Exercise, fn: Callable[..., str], value: Any, *args, **kwargs) -> CheckResult:
    """Run ``fn`` on ``value`` and turn what happens into a :class:`CheckResult` (never raises for the answer)."""
    if value is None or value is Ellipsis:
        return CheckResult(ex.id, ex.title, NOT_ATTEMPTED, "not attempted")
    try:
        message = fn(value, *args, **kwargs)
    except NotAttempted:
        return CheckResult(ex.id, ex.title, NOT_ATTEMPTED, "not attempted")
    except Wrong as err:
        return CheckResult(ex.id, ex.title, "failed", str(err) or "not right yet")
    except Exception as err:  # noqa: BLE001 - the student's code may raise anything
        return CheckResult(ex.id, ex.title, "failed", raised_message(err))
    return CheckResult(ex.id, ex.title, "passed", message or "correct")


def raised_message(err: BaseException) -> str:
    """'your code raised ...' with the line of the student's code where it happened."""
    frames = traceback.extract_tb(err.__traceback__)
    # The innermost frame outside this package is the student's.
    theirs = [f for f in frames if "qgait_lab" not in f.filename.replace("\\", "/")] or frames
    where = theirs[-1] if theirs else None
    at = f" (line {where.lineno} of {where.name})" if where else ""
    return f"your code raised {type(err).__name__}: {err}{at}"


def get(exercise_id: str) -> Exercise:
    try:
        return REGISTRY[str(exercise_id)]
    except KeyError:
        known = ", ".join(sorted(REGISTRY, key=_id_key))
        raise KeyError(f"there is no exercise {exercise_id!r}; the exercises are {known}") from None


def _id_key(exercise_id: str) -> tuple[int, ...]:
    return tuple(int(p) for p in exercise_id.split("."))


def exercises_of(notebook: str) -> list[Exercise]:
    """The exercises of one notebook (``"03"`` or ``"03_soft_round_derivation"``), in order."""
    number = notebook[:2]
    return sorted((e for e in REGISTRY.values() if e.notebook[:2] == number), key=lambda e: _id_key(e.id))


# ---------------------------------------------------------------------------
# Hints on request
# ---------------------------------------------------------------------------
@dataclass
class Hint:
    exercise: str
    level: int
    total: int
    text: str

    def __str__(self) -> str:
        more = (f"  (more: checks.hint({self.exercise!r}, {self.level + 1}))" if self.level < self.total
                else "  (this is the last hint)")
        return f"Hint {self.level} of {self.total} for Exercise {self.exercise}: {self.text}{more}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        more = (f"More: <code>checks.hint({self.exercise!r}, {self.level + 1})</code>" if self.level < self.total
                else "This is the last hint.")
        return (f"<div style='border-left:4px solid #0969da;padding:4px 10px;margin:4px 0'>"
                f"<b>Hint {self.level} of {self.total}</b> for Exercise {html.escape(self.exercise)}: "
                f"{html.escape(self.text)}<br><small>{more}</small></div>")


def hint(exercise_id: str, level: int = 1) -> Hint:
    """The hint of tier ``level`` (1 = a nudge; later tiers say more, none gives the solution)."""
    ex = get(exercise_id)
    if not 1 <= int(level) <= len(ex.hints):
        raise ValueError(f"Exercise {ex.id} has hints 1 to {len(ex.hints)}, not {level}")
    return Hint(ex.id, int(level), len(ex.hints), ex.hints[int(level) - 1])


# ---------------------------------------------------------------------------
# Helpers for checkers: calling the answer, and saying where it is wrong
# ---------------------------------------------------------------------------
def call(fn: Callable, *args, **kwargs):
    """Call the student's function; a stub that still raises ``NotImplementedError`` is "not attempted"."""
    if not callable(fn):
        raise Wrong(f"the answer should be a function, but it is a {type(fn).__name__}")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise NotAttempted() from None


def as_array(value: Any, what: str) -> np.ndarray:
    """The answer as a float64 numpy array, or :class:`Wrong` saying what it was instead."""
    if value is None:
        raise Wrong(f"{what} returned None: did you forget the return statement?")
    try:
        if torch.is_tensor(value):
            value = value.detach().cpu().double().numpy()
        return np.asarray(value, dtype=np.float64)
    except Exception:  # noqa: BLE001
        raise Wrong(f"{what} returned a {type(value).__name__}, not an array or a tensor") from None


def as_number(value: Any, what: str = "the answer") -> float:
    try:
        if torch.is_tensor(value):
            value = value.item()
        out = float(value)
    except (TypeError, ValueError, RuntimeError):
        raise Wrong(f"{what} must be a number, but it is {type(value).__name__} {value!r:.60}") from None
    if not math.isfinite(out):
        raise Wrong(f"{what} is {out}, not a finite number")
    return out


def fmt(value: float) -> str:
    return f"{value:.4g}"


def compare_on_grid(got: Any, want: Any, where: np.ndarray | Sequence[str], what: str,
                    atol: float = 1e-6, rtol: float = 1e-6, describe: Callable[[int], str] | None = None) -> None:
    """Raise :class:`Wrong` if ``got`` differs from ``want``, naming the inputs where it does.

    ``where`` gives, for every element, the input the student knows (an x value,
    or a label such as ``"x = 0.25"``); the message names the first wrong inputs,
    the student's values there, and whether they are too large or too small,
    never the expected value.  ``describe(i)`` may add what is special about
    element ``i`` (an integer, a clipped input, ...).
    """
    got = as_array(got, what)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise Wrong(f"{what} has shape {tuple(got.shape)}, but the input has shape {tuple(want.shape)}: "
                    "return one value per input element")
    if not np.isfinite(got).all():
        bad = int(np.flatnonzero(~np.isfinite(got.ravel()))[0])
        raise Wrong(f"{what} is NaN or infinite at {_where(where, bad)}")
    err = np.abs(got - want)
    bad = np.flatnonzero((err > atol + rtol * np.abs(want)).ravel())
    if bad.size:
        first = bad[:3]
        parts = []
        for i in first:
            side = "too large" if got.ravel()[i] > want.ravel()[i] else "too small"
            extra = f", {describe(int(i))}" if describe else ""
            parts.append(f"at {_where(where, int(i))} your value {fmt(got.ravel()[i])} is {side}{extra}")
        raise Wrong(f"{what} is wrong at {bad.size} of {want.size} inputs; " + "; ".join(parts))


def _where(where, i: int) -> str:
    w = np.asarray(where, dtype=object).ravel()[i] if len(np.asarray(where, dtype=object).ravel()) else i
    return w if isinstance(w, str) else f"x = {float(w):.4g}"


def sympy_in(answer: Any, symbol, what: str = "the answer"):
    """``answer`` as a sympy expression whose only free symbol is ``symbol`` (any symbol of that name counts)."""
    import sympy as sp

    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        answer = sp.nsimplify(answer)
    if isinstance(answer, str):
        try:
            answer = sp.sympify(answer, locals={symbol.name: symbol})
        except (sp.SympifyError, TypeError, SyntaxError):
            raise Wrong(f"{what} is a string sympy cannot read: {answer!r:.80}") from None
    if not isinstance(answer, sp.Basic):
        raise Wrong(f"{what} must be a sympy expression in {symbol.name}, but it is a {type(answer).__name__}")
    expr = answer.subs({s: symbol for s in answer.free_symbols if s.name == symbol.name})
    extra = sorted(str(s) for s in expr.free_symbols - {symbol})
    if extra:
        raise Wrong(f"{what} may depend on {symbol.name} only, but it contains {', '.join(extra)}")
    return expr


def compare_in_k(expr, want, symbol, what: str, points: Iterable[float] = (1.0, 1.5, 2.0, 3.0, 5.0, 8.0),
                 properties: Sequence[tuple[str, Callable]] = ()) -> str:
    """Compare two expressions in one symbol numerically at ``points``, then symbolically.

    On a mismatch the message gives the student's value at the first point where
    it is off, and the first of ``properties`` (``(description, test(expr))``) the
    answer violates; ``test`` returns True when the property holds.
    """
    import sympy as sp

    for prop, test in properties:
        try:
            ok = bool(test(expr))
        except Exception:  # noqa: BLE001 - a property the answer cannot even be tested on is violated
            ok = False
        if not ok:
            raise Wrong(f"{what} = {sp.sstr(expr)} does not have the property: {prop}")
    f_got = sp.lambdify(symbol, expr, "mpmath")
    f_want = sp.lambdify(symbol, want, "mpmath")
    for p in points:
        try:
            g = complex(f_got(p))
        except Exception:  # noqa: BLE001
            raise Wrong(f"{what} = {sp.sstr(expr)} cannot be evaluated at {symbol.name} = {p:g}") from None
        w = complex(f_want(p))
        if abs(g - w) > 1e-9 * max(1.0, abs(w)):
            side = "too large" if g.real > w.real else "too small"
            raise Wrong(f"{what} = {sp.sstr(expr)} is {side} at {symbol.name} = {p:g} (your value {g.real:.5g})")
    if sp.simplify(sp.expand_trig(sp.simplify(expr - want))) != 0 and not _numerically_zero(expr - want, symbol):
        raise Wrong(f"{what} agrees at a few values of {symbol.name} but is not the same expression")
    return sp.sstr(sp.simplify(expr))


def _numerically_zero(expr, symbol) -> bool:
    import sympy as sp

    f = sp.lambdify(symbol, expr, "mpmath")
    return all(abs(complex(f(p))) < 1e-12 for p in (0.7, 1.3, 2.9, 4.1, 6.6, 9.2, 12.5))


def choice_digest(exercise_id: str, option: str) -> str:
    """A short digest of one option, so that the correct choice is not stored in plain text."""
    return hashlib.sha256(f"qgait-lab:{exercise_id}:{str(option).strip().lower()}".encode()).hexdigest()[:16]


def check_choice(exercise_id: str, answer: Any, options: Sequence[str], correct_digest: str,
                 feedback: dict[str, str] | None = None) -> str:
    """A multiple-choice answer: one of ``options``; ``feedback`` maps a wrong option to why it is wrong."""
    if not isinstance(answer, str):
        raise Wrong(f"answer with one of the letters {', '.join(repr(o) for o in options)} (a string)")
    picked = answer.strip().lower()
    if picked not in [o.lower() for o in options]:
        raise Wrong(f"{answer!r} is not one of the options {', '.join(repr(o) for o in options)}")
    if choice_digest(exercise_id, picked) != correct_digest:
        why = (feedback or {}).get(picked, "")
        raise Wrong(f"option {picked!r} is not the right one" + (f": {why}" if why else ""))
    return f"option {picked!r} is right"
