"""Timing variants side by side: interleaved rounds and the median (benchmarks and notebook 09).

On a shared machine the load drifts while a measurement runs; calling every
variant once per round, round after round, makes a drift hit all of them
alike, so their ratios stay meaningful even when the absolute times do not.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

__all__ = ["time_interleaved"]


def time_interleaved(runners: dict[str, Callable[[], object]], warmup: int, reps: int,
                     seconds: float) -> tuple[dict[str, float], int]:
    """Median seconds per call of each runner, and the number of timed rounds.

    After ``warmup`` untimed calls each (at least one: the last warm-up round
    is timed, to size the rest), every round calls each runner once, so that
    drift in the machine's load hits all alike.  Rounds: at least ``reps``,
    more (up to 100) while they fit in ``seconds``.
    """
    round_s = 0.0
    for run in runners.values():
        for _ in range(max(warmup, 1)):
            t0 = time.perf_counter()
            run()
        round_s += time.perf_counter() - t0
    rounds = max(reps, min(100, int(seconds / round_s)))
    times: dict[str, list[float]] = {v: [] for v in runners}
    for _ in range(rounds):
        for v, run in runners.items():
            t0 = time.perf_counter()
            run()
            times[v].append(time.perf_counter() - t0)
    return {v: statistics.median(t) for v, t in times.items()}, rounds
