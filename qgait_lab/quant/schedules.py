"""Schedules for the soft quantizer's k during the fine-tuning stage (paper Sec. 4.3, Table 3a).

* FIXED: k stays at ``start``.
* GROW(step, every, T): k starts at ``start`` (1, the smallest k Eq. 6 allows)
  and rises by ``step`` every ``every`` iterations until it reaches ``max`` = T.
  The paper's best, GROW-2, is 0.2 per 100 iterations up to T = 5.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

from ..errors import ConfigError
from .quantizers import validate_k

ScheduleKind = Literal["fixed", "grow"]
SCHEDULE_KINDS: tuple[str, ...] = get_args(ScheduleKind)


@dataclass
class KSchedule:
    kind: ScheduleKind = "grow"
    start: float = 1.0
    step: float = 0.2
    every: int = 100
    max: float = 5.0

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULE_KINDS:
            raise ConfigError(f"k schedule kind must be one of {SCHEDULE_KINDS}, got {self.kind!r}")
        validate_k(self.start)
        validate_k(self.max)
        if self.kind == "grow":
            if self.every < 1:
                raise ConfigError(f"k schedule 'every' must be >= 1 iteration, got {self.every}")
            if self.step < 0 or not math.isfinite(self.step):
                raise ConfigError(f"k schedule 'step' must be a finite number >= 0, got {self.step}")
            if self.max < self.start:
                raise ConfigError(f"k schedule 'max' ({self.max}) is below 'start' ({self.start})")

    def k_at(self, iteration: int) -> float:
        """k to use at (0-based) ``iteration`` of the fine-tuning stage."""
        if self.kind == "fixed":
            return self.start
        return min(self.max, self.start + self.step * (iteration // self.every))

    def describe(self) -> str:
        if self.kind == "fixed":
            return f"FIXED(k={self.start:g})"
        return f"GROW(+{self.step:g} every {self.every} it, {self.start:g} -> T={self.max:g})"


#: Iterations of the paper's soft fine-tune on Gait3D (Sec. 4.1), over which Table 3a's schedules are defined.
PAPER_FINETUNE_ITERATIONS = 1000


def paper_grow(step: float, paper_every: int, iterations: int, t: float) -> KSchedule:
    """A GROW schedule of Table 3a at the paper's pace, for a fine-tune of ``iterations``.

    The paper raises k from 1 by ``step`` every ``paper_every`` of its 1000 iterations,
    up to T (GROW-2: +0.2 every 100).  A shorter fine-tune keeps the step and the
    pace relative to its length: ``every = round(paper_every * iterations / 1000)``,
    at least 1.
    """
    every = max(1, round(paper_every * iterations / PAPER_FINETUNE_ITERATIONS))
    return KSchedule("grow", start=1.0, step=step, every=every, max=t)
