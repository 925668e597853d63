"""Experiment configuration: dataclasses, loaded from YAML presets with overrides.

Every setting lives here with its default; presets (``qgait_lab/presets/*.yaml``)
change some of them, and ``--set section.key=value`` changes one more.  Unknown
keys and presets are refused with the closest known name suggested.

The defaults are OpenGait's GaitBase settings and the paper's QAT settings
(Sec. 4.1): SGD 0.1 with MultiStepLR for full precision; Adam 1e-4 for QAT;
a 1k-iteration soft fine-tune with GROW(0.2 / 100 it, T = 5) and IDD.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Union, get_args, get_origin, get_type_hints

import yaml

from ..data.layouts import LayoutName
from ..errors import ConfigError
from ..losses import DistanceMode, NormalizeMode
from ..models import ModelName, OpenGaitConfigName
from ..quant.quantizers import GradientMode
from ..quant.schedules import KSchedule
from .runtime import fast_mode

PRESET_DIR = Path(__file__).resolve().parent.parent / "presets"

#: The methods (qgait_lab.experiments.methods holds their recipes).
MethodName = Literal["fp", "lsq", "dorefa", "pact", "qgait"]
Budget = Literal["full", "lab", "fast"]
Switch = Literal["off", "on", "auto"]


@dataclass
class DataConfig:
    """Where the sequences come from and how batches are drawn (ARCHITECTURE.md §2, §4)."""

    dataset: Literal["synthgait", "opengait"] = "synthgait"   # generated here, or a real OpenGait root
    # How the dataset is stored and evaluated: casia-b, oumvlp, grew or gait3d (data.layouts: the
    # stored frame sizes, the partition keys, the protocol). SynthGait has CASIA-B's layout.
    layout: LayoutName = "casia-b"
    root: str | None = None             # the OpenGait-format dataset folder (dataset "opengait")
    partition: str | None = None        # its partition json (TRAIN_SET / TEST_SET, Gait3D: PROBE_SET)
    allow_missing_ids: bool = False     # partition ids with no sequence on disk: error unless True
    synth: dict = field(default_factory=dict)   # SynthGait generator options (see data.synth)
    synth_dir: str | None = None        # where SynthGait is cached; None: $QGAIT_DATA_DIR or ~/.cache/qgait-lab
    downsample: Literal[1, 2] = 1       # 1: 64x44 (the paper); 2: 32x22 (the laptop preset)
    batch_p: int = 8                    # identities per batch
    batch_k: int = 16                   # sequences per identity
    frames: int = 30                    # frames per training sequence
    frames_mode: Literal["fixed", "unfixed"] = "fixed"   # "unfixed": frames_min..frames_max
    frames_min: int = 10
    frames_max: int = 50
    augment: list = field(default_factory=list)  # any of flip, rotate, erase, perspective
    augment_prob: float = 0.2           # probability of each augmentation
    eval_batch_frames: int = 1024       # frames per evaluation batch (whole sequences, packed)
    # Loading (qgait_lab.data.loader): none of these changes a batch, only how fast it comes.
    num_workers: int = 0                # DataLoader worker processes building batches; 0: in the training process
    pin_memory: Literal["auto", "on", "off"] = "auto"   # "auto": on when training on CUDA
    prefetch_factor: int = 2            # batches each worker builds ahead
    # Frames kept in memory, in MB per process: an LRU, so a split larger than the bound keeps its
    # most recently used sequences, and 0 turns it off.  Every worker has its own, so loading may
    # hold (num_workers + 1) x cache.  1024 holds SynthGait and small real splits entirely.
    cache: int = 1024


@dataclass
class ModelConfig:
    """The network (:mod:`qgait_lab.models`): any model that keeps the model contract.

    ``arguments`` holds constructor arguments per model name, so that one preset
    sizes every model it can train and ``name`` (``--model``) picks one; what a
    model is not given comes from its OpenGait configuration for the dataset
    (``opengait_config``, by default the one named after ``data.layout`` where the
    model has it) or from its constructor's defaults (the paper's GaitBase).
    """

    name: ModelName = "gaitbase"
    arguments: dict = field(default_factory=dict)   # e.g. {gaitbase: {channels: [16, 32, 64, 128]}}
    opengait_config: OpenGaitConfigName | None = None


@dataclass
class OptimConfig:
    name: Literal["sgd", "adam"] = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: list = field(default_factory=list)   # MultiStepLR; empty: constant lr
    gamma: float = 0.1


@dataclass
class LossConfig:
    """Triplet + cross-entropy, both weight 1 (OpenGait)."""

    triplet_margin: float = 0.2
    triplet_weight: float = 1.0
    ce_weight: float = 1.0
    ce_scale: float = 16.0
    label_smoothing: float = 0.1


#: The paper's revision (arXiv v2) renames IDD "Inter-class Distance-guided Calibration" (IDC).
DISTILL_ALIASES = {"idc": "idd", "idc_paper": "idd_paper"}


@dataclass
class DistillConfig:
    """Distillation from the full-precision teacher: none, vanilla KD (Eq. 13) or IDD (Eqs. 14-15).

    ``idd`` uses the options below (per-part distances, each model's divided by its mean);
    ``idd_paper`` is Eqs. 14-15 as printed (``IDDLoss.as_printed``).  ``idc`` and
    ``idc_paper``, the revision's name, are accepted for them.
    """

    kind: Literal["none", "kd", "idd", "idd_paper"] = "none"
    weight: float = 1.0
    kd_temperature: float = 4.0
    # IDD compares mean-normalised distances (around 1); tau 0.1 gives softmax
    # logits spread over ~10 units, chosen a priori, not tuned.
    idd_tau: float = 0.1
    idd_distance: DistanceMode = "per_part"
    idd_normalize: NormalizeMode = "mean"


@dataclass
class StageConfig:
    """One training stage: how long, with what optimiser, gradient rule, k and distillation."""

    iterations: int = 1000
    optim: OptimConfig = field(default_factory=OptimConfig)
    gradient: GradientMode = "ste"      # quantizer backward: the STE, or "soft" (theta_k)
    k: KSchedule = field(default_factory=lambda: KSchedule(kind="fixed"))
    distill: DistillConfig = field(default_factory=DistillConfig)
    # A model this stage already trained (ours, or OpenGait's for full_precision): it is
    # loaded instead of trained and ``iterations`` is not used.  The paper quantizes
    # OpenGait's pretrained GaitBase this way.
    checkpoint: str | None = None


def _qat_optim() -> OptimConfig:
    return OptimConfig(name="adam", lr=1e-4, weight_decay=0.0)


@dataclass
class QuantConfig:
    bits: int = 4                       # weights and activations (paper: 4 or 8)
    first_layer_bits: int | None = None  # None: same as the rest (the paper's BitOPs)
    last_layer_bits: int | None = None
    skip: list = field(default_factory=list)   # glob patterns of layers kept float
    per_channel: bool = False
    pact_alpha_init: float = 10.0
    pact_alpha_l2: float = 2e-4
    # Baselines also get the fine-tune stage's iterations (with STE, no teacher),
    # so that QGait's extra iterations are not what makes a difference.
    equal_budget: bool = True


@dataclass
class RuntimeConfig:
    seed: int = 0
    device: str = "auto"                # "auto", "cpu", "cuda", "cuda:1", ...
    amp: bool = True                    # mixed precision, used on CUDA only
    compile: Switch = "off"             # "auto": on for CUDA; YAML's on/off work too
    channels_last: bool = True          # NHWC convolutions (faster on CPU and GPU)
    fuse_quantizers: Switch = "auto"    # "auto" (on for CPU): each quantizer's
                                        # arithmetic as one compiled kernel (quant.kernels)
    eval_every: int = 0                 # 0: only at the end of a stage
    eval_stage1: bool = False           # also evaluate stage 1 when a fine-tune follows it
    log_every: int = 10
    save_every: int = 200
    runs_dir: str = "runs"
    nan_policy: Literal["stop", "skip"] = "stop"   # "stop" keeps the last good checkpoint
    progress: bool = True


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    method: MethodName = "qgait"
    budget: Budget = "full"             # which budget load_config applied ("fast": a smoke test)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    quant: QuantConfig = field(default_factory=QuantConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    full_precision: StageConfig = field(default_factory=lambda: StageConfig(
        iterations=60000, optim=OptimConfig(milestones=[20000, 40000, 50000])))
    stage1: StageConfig = field(default_factory=lambda: StageConfig(
        iterations=60000, optim=_qat_optim()))
    stage2: StageConfig = field(default_factory=lambda: StageConfig(
        iterations=1000, optim=_qat_optim(), gradient="soft", k=KSchedule(),
        distill=DistillConfig(kind="idd")))

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        # YAML reads on/off as booleans.
        for section, key in (("runtime", "compile"), ("runtime", "fuse_quantizers"), ("data", "pin_memory")):
            value = getattr(getattr(self, section), key)
            if isinstance(value, bool):
                setattr(getattr(self, section), key, "on" if value else "off")
        for stage in self.stages().values():
            stage.distill.kind = DISTILL_ALIASES.get(stage.distill.kind, stage.distill.kind)
        check_choices(self)
        if self.data.dataset == "synthgait":
            given = [k for k in ("root", "partition") if getattr(self.data, k)]
            if given:
                raise ConfigError(
                    f"data.{given[0]} is set ({getattr(self.data, given[0])!r}), but data.dataset is "
                    "'synthgait', which is generated here and has no folder or partition to read: for a real "
                    "dataset add --set data.dataset=opengait (or use its preset, e.g. --preset casia-b-cpu); "
                    "to move SynthGait's cache use data.synth_dir")
            if self.data.layout != "casia-b":
                raise ConfigError(f"data.layout is {self.data.layout!r}, but SynthGait has CASIA-B's layout; "
                                  "use data.layout=casia-b, or data.dataset=opengait for a real dataset")
        for name, stage in self.stages().items():
            if stage.iterations < 0:
                raise ConfigError(f"{name}.iterations must be >= 0, got {stage.iterations}")
            if stage.checkpoint is not None and (not isinstance(stage.checkpoint, str)
                                                 or not stage.checkpoint):
                raise ConfigError(f"{name}.checkpoint must be a file path, got {stage.checkpoint!r}")
        for key in ("batch_p", "batch_k", "frames"):
            if getattr(self.data, key) < 1:
                raise ConfigError(f"data.{key} must be >= 1, got {getattr(self.data, key)}")
        for key, least in (("num_workers", 0), ("prefetch_factor", 1), ("cache", 0)):
            if getattr(self.data, key) < least:
                raise ConfigError(f"data.{key} must be >= {least}, got {getattr(self.data, key)}")
        for name, arguments in self.model.arguments.items():
            if not isinstance(arguments, Mapping):
                raise ConfigError(f"model.arguments.{name} must be a mapping of constructor arguments, "
                                  f"got {arguments!r}")
        from ..quant.quantizers import validate_bits
        validate_bits(self.quant.bits, "quant.bits")

    def stages(self) -> dict[str, StageConfig]:
        """The three stage sections by name: full precision, QAT stage 1, the fine-tune."""
        return {"full_precision": self.full_precision, "stage1": self.stage1, "stage2": self.stage2}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def choices_of(hint: Any) -> tuple | None:
    """The values a ``Literal`` type (or ``Literal[...] | None``) allows; None for other types."""
    if get_origin(hint) is Literal:
        return get_args(hint)
    if get_origin(hint) in (Union, types.UnionType):
        allowed = [choices_of(arg) for arg in get_args(hint)]
        if any(a is not None for a in allowed):
            return tuple(v for arg, a in zip(get_args(hint), allowed)
                         for v in (a if a is not None else ((None,) if arg is type(None) else ())))
    return None


def check_choices(obj: Any, where: str = "") -> None:
    """Refuse every field of dataclass ``obj`` (and of its sections) whose value its ``Literal`` type
    does not allow, naming the option: the types are the one list of choices."""
    hints = get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, path = getattr(obj, f.name), f"{where}.{f.name}" if where else f.name
        if dataclasses.is_dataclass(value):
            check_choices(value, path)
            continue
        allowed = choices_of(hints[f.name])
        if allowed is not None and (value not in allowed or isinstance(value, bool) != any(
                isinstance(a, bool) for a in allowed if a == value)):
            shown = [a for a in allowed if a is not None]
            raise ConfigError(f"{path} must be one of {shown}{' or null' if None in allowed else ''}, "
                              f"got {value!r}")


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; known: {sorted(options)}"


def _build(cls: type, values: Mapping[str, Any], where: str, base: Any = None):
    """Build dataclass ``cls`` from a mapping on top of ``base`` (its defaults).

    Nested sections start from the *parent's* default for that field, so a
    preset that sets only ``stage2.iterations`` keeps stage 2's other defaults
    (soft gradient, GROW, IDD) rather than a bare StageConfig's.  Unknown keys
    are refused with the closest known name.
    """
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where or 'config'} must be a mapping, got {values!r}")
    base = base if base is not None else cls()
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            raise ConfigError(f"unknown config key {path!r}{_suggest(str(key), names)}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, path, getattr(base, key))
        else:
            kwargs[key] = _coerce(value, hint, path)
    try:
        return dataclasses.replace(base, **kwargs)
    except TypeError as err:
        raise ConfigError(f"{where or 'config'}: {err}") from None


def _coerce(value: Any, hint: Any, path: str) -> Any:
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, bool, str, list, dict) and not isinstance(value, hint):
        raise ConfigError(f"config key {path!r} expects {hint.__name__}, got {value!r}")
    return value


def config_from_dict(values: Mapping[str, Any]) -> ExperimentConfig:
    return _build(ExperimentConfig, values, "")


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a preset must be a mapping of sections")
    return data


def _deep_update(base: dict, update: Mapping) -> dict:
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value
    return base


def parse_overrides(pairs: list[str] | None) -> dict:
    """``["a.b=1", "c=x"]`` -> nested dict; values are parsed as YAML scalars/lists."""
    out: dict = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw)
    return out


BUDGETS: tuple[str, ...] = get_args(Budget)

#: What a run on the ``fast`` budget says first, so that nobody mistakes it for a real run.
FAST_MODE_NOTICE = "FAST MODE (QGAIT_FAST=1 or --budget fast): smoke-test iterations, not a real run."
"""A preset's budgets: ``full`` (the preset as written), ``lab`` (its ``lab:`` section: a course lab
session, minutes per notebook on a laptop) and ``fast`` (its ``fast:`` section: a smoke test)."""


def load_config(preset: str | Path = "tiny-cpu", overrides: list[str] | None = None,
                extra: Mapping[str, Any] | None = None, budget: str | None = None) -> ExperimentConfig:
    """Load a preset by name (or a YAML path), then apply ``extra`` and ``--set`` overrides.

    ``budget`` picks one of :data:`BUDGETS`; by default ``fast`` when ``QGAIT_FAST=1``
    is set (tests and CI run every preset on a smoke-test budget), else ``full``.
    The preset's ``fast:`` or ``lab:`` section is applied before the overrides.
    """
    path = Path(preset)
    if path.suffix not in (".yaml", ".yml"):
        names = available_presets()
        if str(preset) not in names:
            raise ConfigError(f"unknown preset {str(preset)!r}{_suggest(str(preset), names)}")
        path = PRESET_DIR / f"{preset}.yaml"
    elif not path.is_file():
        raise ConfigError(f"preset file {str(path)!r} does not exist")
    values = _read_yaml(path)
    sections = {name: values.pop(name, None) for name in ("fast", "lab")}
    budget = budget or ("fast" if fast_mode() else "full")
    if budget not in BUDGETS:
        raise ConfigError(f"unknown budget {budget!r}; choose one of {', '.join(BUDGETS)}")
    if budget != "full":
        # A preset without a fast: section is its own smoke test; a missing lab: section is an error.
        if sections[budget] is None and budget == "lab":
            raise ConfigError(f"preset {str(preset)!r} ({path}) has no '{budget}:' section, so it has no "
                              f"{budget} budget; use budget 'full'")
        _deep_update(values, sections[budget] or {})
    _deep_update(values, dict(extra or {}))
    _deep_update(values, parse_overrides(overrides))
    if values.get("budget", budget) != budget:
        raise ConfigError(f"budget is chosen with load_config(budget=...) or --budget, not set as a key "
                          f"(got {values['budget']!r})")
    values["budget"] = budget
    return config_from_dict(values)


def save_config(cfg: ExperimentConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
