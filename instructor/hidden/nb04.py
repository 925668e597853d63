"""Hidden checks of notebook 04, run only by ``qgait-lab lab grade`` (never shown to students).

* 4.1: other (k, τ) pairs (k between the visible ones and up to 200, thresholds from 0.01 to 5), the
  default threshold, NumPy and integer arguments;
* 4.2: the crossing computed from the closed form, independently of the library's numeric estimate;
* 4.3: the chosen statement tested on the data: another silhouette sequence of ``data_samples``.
"""
from __future__ import annotations

import math

import numpy as np

from qgait_lab.lab.exercises import explorer as ex
from qgait_lab.lab.exercises.core import Wrong, as_number, call, check_choice


# 4.1 ------------------------------------------------------------------------
def fraction_other_cases(fraction) -> str:
    cases = [(k, t) for k in (1.5, 4.0, 7.5, 13.0, 200.0) for t in (0.01, 0.2, 0.5, 5.0)]
    ex.fraction_matches(fraction, cases)
    return f"right for {len(cases)} further pairs (k up to 200, τ from 0.01 to 5)"


def fraction_default_and_argument_types(fraction) -> str:
    from qgait_lab.lab.widgets import uniform_meaningful_fraction

    for args, k, t in (((8.0,), 8.0, 0.1), ((np.float64(5.0), np.float32(0.3)), 5.0, 0.3), ((12, 1), 12.0, 1.0)):
        got = as_number(call(fraction, *args), "meaningful_fraction")
        if abs(got - uniform_meaningful_fraction(k, t)) > ex.FRACTION_TOLERANCE:
            raise Wrong(f"meaningful_fraction{tuple(type(a).__name__ for a in args)} at k = {k:g}, τ = {t:g} "
                        f"gives {got:.4f}, which is off")
    return "right with the default threshold, NumPy scalars and integers"


# 4.2 ------------------------------------------------------------------------
def _closed_form(k: float, t: float = 0.1) -> float:
    r = 2 * t * math.tanh(k / 2) / k
    return 0.0 if r > 1 else min(1.0, 2 * math.acosh(1 / math.sqrt(r)) / k)


def k_half_by_closed_form(value) -> str:
    k = as_number(value, "k_half")
    lo, hi = 1.0, 20.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _closed_form(mid) > 0.5 else (lo, mid)
    if abs(k - lo) > ex.K_TOLERANCE:
        raise Wrong(f"k_half = {k:.4g} is more than {ex.K_TOLERANCE:g} away from the crossing of the closed form")
    return "within 0.01 of the crossing computed from the closed form"


# 4.3 ------------------------------------------------------------------------
STEPS = (0.25, 0.5, 1.0, 2.0, 4.0)


def _claims(runs) -> dict[str, bool]:
    """What each option states, evaluated on probe runs at 4 bits and the steps of ``STEPS``."""
    clipped = [r.clipped for r in runs]
    error = [r.act_rel_error for r in runs]
    return {
        "a": all(e1 < e2 for e1, e2 in zip(error, error[1:])),
        "b": (all(c1 >= c2 for c1, c2 in zip(clipped, clipped[1:])) and clipped[-1] < 1e-3
              and error[0] > error[1] > error[2] > error[3]),
        "c": all(c1 <= c2 for c1, c2 in zip(clipped, clipped[1:])),
        "d": min(range(len(error)), key=error.__getitem__) == STEPS.index(1.0),
    }


def step_choice_on_other_data(answer, sequence: int = 3) -> str:
    """The chosen statement, tested on another silhouette sequence (without data_samples: the key only)."""
    if not isinstance(answer, str) or answer.strip().lower() not in ex.STEP_OPTIONS:
        raise Wrong(f"answer with one of the letters {', '.join(ex.STEP_OPTIONS)}")
    picked = answer.strip().lower()
    try:
        from qgait_lab.lab.widgets import FirstLayersProbe, load_sample_sequence

        frames, _ = load_sample_sequence(sequence)
    except FileNotFoundError:
        check_choice("4.3", answer, ex.STEP_OPTIONS, ex._STEP, {})
        return "the right option (data_samples not found: not tested on other data)"
    probe = FirstLayersProbe(frames, n_frames=2, seed=0)
    claims = _claims([probe.run(4, s, 3.0) for s in STEPS])
    if not claims[picked]:
        raise Wrong(f"the statement of option {picked!r} does not hold on sequence {sequence} of data_samples "
                    "(4 bits, k = 3, step × 0.25 to 4)")
    check_choice("4.3", answer, ex.STEP_OPTIONS, ex._STEP, {})
    return f"the statement of option {picked!r} also holds on sequence {sequence} of data_samples"


HIDDEN = {
    "4.1": [fraction_other_cases, fraction_default_and_argument_types],
    "4.2": [k_half_by_closed_form],
    "4.3": [step_choice_on_other_data],
}
