"""How much a course notebook trains: ``fast`` (tests), ``lab`` (a lab session) or ``full``.

The budgets are sections of the presets (see :data:`qgait_lab.training.config.BUDGETS`).
In fast mode the training notebooks also share one smaller SynthGait, so that the
whole course runs in a few minutes in the test suite.
"""
from __future__ import annotations

from typing import Sequence

from ...training.config import ExperimentConfig, _read_yaml, available_presets, load_config, PRESET_DIR
from ...training.runtime import fast_mode

NOTEBOOK_FAST_OVERRIDES = ("data.synth={n_ids: 7, n_train: 4, frames: 6, views: ['018', '090']}", "data.frames=4")
"""Fast mode, preset ``tiny-cpu``: one SynthGait small enough for every training notebook of the test run."""


def has_budget(preset: str, budget: str) -> bool:
    if budget == "full":
        return True
    return preset in available_presets() and budget in _read_yaml(PRESET_DIR / f"{preset}.yaml")


def default_budget(preset: str = "tiny-cpu") -> str:
    """``fast`` under ``QGAIT_FAST=1``; else ``lab`` when the preset has a lab budget; else ``full``."""
    if fast_mode():
        return "fast"
    return "lab" if has_budget(preset, "lab") else "full"


def notebook_config(preset: str = "tiny-cpu", budget: str | None = None, overrides: Sequence[str] = (),
                    extra: dict | None = None) -> ExperimentConfig:
    """The configuration a course notebook trains with."""
    budget = budget or default_budget(preset)
    shared = list(NOTEBOOK_FAST_OVERRIDES) if budget == "fast" and preset == "tiny-cpu" else []
    return load_config(preset, shared + list(overrides), extra=extra, budget=budget)
