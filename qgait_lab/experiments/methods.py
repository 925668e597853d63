"""The methods a run trains, each a recipe of stages: the paper's algorithm at a glance.

======  =========  =====================================  =========================================
method  quantizer  stage 1 (from the full-precision model)  stage 2 (the fine-tune)
======  =========  =====================================  =========================================
fp      none       -                                      -
lsq     LSQ        STE                                    STE, k fixed, no teacher (equal budget)
dorefa  DoReFa     STE                                    STE, k fixed, no teacher (equal budget)
pact    PACT       STE                                    STE, k fixed, no teacher (equal budget)
qgait   LSQ        STE                                    soft theta_k (Eq. 7), k schedule, teacher
======  =========  =====================================  =========================================

Every method starts from the full-precision stage, which is also the teacher.
A baseline's stage 2 only runs with ``quant.equal_budget`` (the default), so
that QGait's extra iterations are not what makes a difference; QGait's stage 2
takes ``stage2``'s settings as written (soft gradient, GROW, IDD by default,
Sec. 3.3-3.4).  QGait's stage 1 is LSQ's, so the two share it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, get_args

from ..training.config import ExperimentConfig, MethodName, StageConfig

Section = Literal["full_precision", "stage1", "stage2"]


@dataclass(frozen=True)
class StageRecipe:
    """One stage of a method: which config section it takes, and what the method overrides there.

    ``gradient="ste"`` trains with the STE and a fixed k whatever the section
    says; ``teacher="none"`` drops the section's distillation;
    ``only_with_equal_budget`` runs the stage only when ``quant.equal_budget``.
    """

    section: Section
    gradient: Literal["as configured", "ste"] = "as configured"
    teacher: Literal["as configured", "none"] = "as configured"
    only_with_equal_budget: bool = False

    def settings(self, cfg: ExperimentConfig) -> StageConfig:
        stage = cfg.stages()[self.section]
        if self.gradient == "ste":
            stage = dataclasses.replace(stage, gradient="ste", k=dataclasses.replace(stage.k, kind="fixed"))
        if self.teacher == "none":
            stage = dataclasses.replace(stage, distill=dataclasses.replace(stage.distill, kind="none"))
        return stage

    def runs(self, cfg: ExperimentConfig) -> bool:
        stage = cfg.stages()[self.section]
        if self.section == "full_precision":
            return True
        return stage.iterations > 0 and (cfg.quant.equal_budget or not self.only_with_equal_budget)


@dataclass(frozen=True)
class Method:
    """A method: its quantizer (None: full precision) and its stages after the full-precision one."""

    name: str
    title: str
    quantizer: Literal["lsq", "dorefa", "pact"] | None
    stages: tuple[StageRecipe, ...] = ()

    def label(self, bits: int) -> str:
        """The name a result table gives it: ``FP32``, ``LSQ-4``, ``QGait-8``."""
        return "FP32" if self.quantizer is None else f"{self.title}-{bits}"

    def bits_label(self, bits: int) -> str:
        """The bit-width column of a result table: ``32`` or ``w4/a4``."""
        return "32" if self.quantizer is None else f"w{bits}/a{bits}"

    def stage_folder(self, section: Section, bits: int) -> str:
        """The name of a quantized stage's run folder (before its fingerprint): ``qgait-w4a4-stage2``.

        Stage 1 is named by its quantizer, so QGait reuses the LSQ baseline's stage 1."""
        owner = self.quantizer if section == "stage1" else self.name
        return f"{owner}-w{bits}a{bits}-{section}"


STE_FROM_FULL_PRECISION = StageRecipe("stage1")
EQUAL_BUDGET_STE = StageRecipe("stage2", gradient="ste", teacher="none", only_with_equal_budget=True)
SOFT_FINE_TUNE = StageRecipe("stage2")

METHODS: dict[str, Method] = {
    "fp": Method("fp", "FP32", None),
    "lsq": Method("lsq", "LSQ", "lsq", (STE_FROM_FULL_PRECISION, EQUAL_BUDGET_STE)),
    "dorefa": Method("dorefa", "DOREFA", "dorefa", (STE_FROM_FULL_PRECISION, EQUAL_BUDGET_STE)),
    "pact": Method("pact", "PACT", "pact", (STE_FROM_FULL_PRECISION, EQUAL_BUDGET_STE)),
    "qgait": Method("qgait", "QGait", "lsq", (STE_FROM_FULL_PRECISION, SOFT_FINE_TUNE)),
}

assert set(METHODS) == set(get_args(MethodName))

#: The methods whose models have a quantizer (and so an integer form).
QUANTIZED_METHODS: tuple[str, ...] = tuple(name for name, m in METHODS.items() if m.quantizer is not None)
