"""From a config to trained models: data, models, stages and the methods that chain them.

The methods (``ExperimentConfig.method``) are recipes of stages, one table in
:mod:`qgait_lab.experiments.methods`: full precision (the teacher), the LSQ,
DoReFa and PACT baselines, and QGait (an STE stage, then the soft fine-tune with
a growing k, distilled from the teacher).  The model is any module that keeps the
model contract (:mod:`qgait_lab.models.contract`), named by ``model.name`` or
given as ``Experiment(cfg, model_factory=...)``.

Each stage writes ``runs/<name>/<label>-<fingerprint>/`` (``fp-...``,
``lsq-w4a4-stage1-...``, ``qgait-w4a4-stage2-...``), where the fingerprint hashes
every setting that affects the stage and its parent's fingerprint.  A finished
stage with the same fingerprint is reused, an interrupted one resumes from its
last checkpoint, and variants that differ only in a later stage share the earlier
ones: QGait's stage 1 is the LSQ baseline's stage 1, so it is trained once.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from ..data.dataset import GaitCollate, GaitDataset
from ..data.layouts import MODEL_INPUT, DatasetLayout, get_layout
from ..data.loader import BatchStream, cat_for_transfer
from ..data.opengait import load_silhouettes
from ..data.sampler import PKSampler
from ..data.synth import SynthConfig, ensure_synthgait
from ..data.transforms import build_transform
from ..errors import ConfigError, DataFormatError
from ..evaluation import evaluate_features, extract_features
from ..models import build_model, configuration_for
from ..models.checkpoint import CheckpointError, load_checkpoint, load_model_state, model_state_of
from ..quant import LayerPolicy, QuantizerOptions, initialize_quantizers, quantize_model, set_fused
from ..quant.bitops import PAPER_CONVENTION, count_costs, gaitbase_inference_layers, summarize
from ..ranks import is_main_process, rank, world_size
from ..training.config import FAST_MODE_NOTICE, ExperimentConfig, StageConfig, save_config
from ..training.distributed import wrap_for_training
from ..training.runtime import fuse_quantizers, maybe_compile, seed_everything, select_device, to_channels_last
from ..training.trainer import Callback, StageResult, Trainer
from .methods import METHODS, Method
from .results import row_from



# -- data ----------------------------------------------------------------------

#: DataConfig keys that decide how batches are loaded, not what they hold (kept out of fingerprints).
LOADER_KEYS = ("num_workers", "pin_memory", "prefetch_factor", "cache")

@dataclass
class Batch:
    sils: torch.Tensor
    labels: torch.Tensor
    seqL: list[int] | None

    def to(self, device: torch.device) -> "Batch":
        return Batch(self.sils.to(device, non_blocking=True), self.labels.to(device), self.seqL)

    def pin_memory(self) -> "Batch":
        """Page-locked copies (the DataLoader's ``pin_memory`` calls this), for non-blocking copies to CUDA."""
        return Batch(self.sils.pin_memory(), self.labels.pin_memory(), self.seqL)


def dataset_root(cfg: ExperimentConfig) -> tuple[Path, Path | None]:
    """The dataset folder and partition json, generating SynthGait if needed."""
    d = cfg.data
    if d.dataset == "synthgait":
        try:
            synth = SynthConfig(**{k: tuple(v) if isinstance(v, list) else v
                                   for k, v in d.synth.items()})
        except (TypeError, ValueError) as err:
            raise ConfigError(f"data.synth: {err}") from None
        root = ensure_synthgait(synth, cache_root=d.synth_dir, progress=cfg.runtime.progress)
        return root, root / "partition.json"
    if not d.root:
        raise ConfigError("data.root must name an OpenGait-format dataset folder when data.dataset "
                          "is 'opengait' (e.g. --set data.root=/data/CASIA-B-pkl)")
    root = Path(d.root).expanduser()
    if not root.is_dir():
        raise ConfigError(f"data.root {str(root)!r} is not a folder")
    partition = Path(d.partition).expanduser() if d.partition else None
    if partition is not None and not partition.is_file():
        raise ConfigError(f"data.partition {str(partition)!r} is not a file")
    return root, partition


def dataset_layout(cfg: ExperimentConfig) -> DatasetLayout:
    """The stored sizes, partition keys and protocol of the config's dataset (:mod:`..data.layouts`)."""
    return get_layout(cfg.data.layout)


def _check_layout(cfg: ExperimentConfig, ds: GaitDataset, partition: Path | None) -> None:
    """Fail before training when the files or the partition do not match the layout."""
    layout = dataset_layout(cfg)
    if ds.partition is not None:
        missing = [k for k in layout.partition_keys if k not in ds.partition.keys]
        if missing:
            raise DataFormatError(f"{partition or ds.root}: the {layout.title} layout (data.layout="
                                  f"{layout.name}) needs the partition key(s) {', '.join(missing)}")
    if len(ds):
        first = ds.sequences[0].path
        size = tuple(load_silhouettes(first, frame_size=None).shape[1:])
        if not layout.check_stored_size(size):
            raise DataFormatError(
                f"{first}: frames are stored {size[0]}x{size[1]}, but preset {cfg.name!r} reads "
                f"{layout.title} (data.layout={layout.name}), stored {layout.describe_sizes()}; pick the "
                f"preset or data.layout of this dataset")


def load_datasets(cfg: ExperimentConfig) -> tuple[GaitDataset, GaitDataset]:
    # Under torchrun, rank 0 generates SynthGait (if needed) while the others wait.
    several = world_size() > 1
    if several and not is_main_process():
        torch.distributed.barrier()
    root, partition = dataset_root(cfg)
    if several and is_main_process():
        torch.distributed.barrier()
    sizes = dataset_layout(cfg).stored_sizes
    cache = cfg.data.cache * 2 ** 20    # data.cache MB per process (each loader worker has its own)
    train = GaitDataset(root, partition, "train", cache=cache, frame_size=sizes)
    test = GaitDataset(root, partition, "test", cache=cache, frame_size=sizes)
    for split, ds in (("train", train), ("test", test)):
        if len(ds) == 0:
            raise ConfigError(f"{root}: the {split} split has no sequences")
        if ds.missing_labels and not cfg.data.allow_missing_ids:
            shown = ", ".join(ds.missing_labels[:10])
            raise DataFormatError(
                f"{partition or root}: the {split} split names {len(ds.missing_labels)} ids with no "
                f"sequence under {root} ({shown}{', ...' if len(ds.missing_labels) > 10 else ''}); "
                "fix the partition, or --set data.allow_missing_ids=true to train without them")
        _check_layout(cfg, ds, partition)
    return train, test


class TrainBatches:
    """``batches(iteration)``: the batch of an iteration, a pure function of (seed, iteration).

    Under DDP every rank draws the same global P x K batch and keeps a disjoint
    share of its identities.  Frame sampling and augmentation of each sequence
    are seeded by (seed, iteration, position in the global batch), so a
    2-process run sees exactly the frames of the 1-process run.

    ``batches.stream(start, end)`` gives the same batches built ahead by
    ``data.num_workers`` DataLoader workers (:class:`~qgait_lab.data.loader.BatchStream`);
    the trainer uses it for the iterations of a stage.  The rank and world size
    are read here, once, because worker processes have no process group.
    """

    def __init__(self, cfg: ExperimentConfig, dataset: GaitDataset,
                 device: torch.device | None = None) -> None:
        d = cfg.data
        if d.batch_p > dataset.num_classes:
            raise ConfigError(f"data.batch_p={d.batch_p} identities per batch, but the training "
                              f"split has only {dataset.num_classes}")
        if d.batch_p % world_size():
            raise ConfigError(f"data.batch_p={d.batch_p} must be divisible by the "
                              f"{world_size()} processes")
        self.dataset = dataset
        self.seed = cfg.runtime.seed
        self.rank = rank()
        self.sampler = PKSampler(dataset.label_index, d.batch_p, d.batch_k, seed=self.seed,
                                 batches_per_epoch=1, rank=self.rank, world_size=world_size())
        self.num_workers, self.prefetch_factor = d.num_workers, d.prefetch_factor
        self.pin_memory = pin_memory_for(d.pin_memory, device or select_device(cfg.runtime.device))
        self.collate = GaitCollate(d.frames_mode, d.frames, d.frames_min, d.frames_max,
                                   transform=build_transform(d.augment, d.augment_prob, d.downsample, train=True))

    def __call__(self, iteration: int) -> Batch:
        self.sampler.set_epoch(iteration)
        indices = next(iter(self.sampler))
        offset = self.rank * len(indices)
        parts = []
        for j, index in enumerate(indices):
            self.collate.rng = np.random.default_rng([self.seed, iteration, offset + j])
            parts.append(self.collate([self.dataset[index]]))
        labels = torch.cat([p["labels"] for p in parts])
        packed = parts[0]["packed"]
        # In a DataLoader worker the frames are concatenated straight into shared memory.
        sils = cat_for_transfer([p["sils"] for p in parts], dim=1 if packed else 0)
        seq_len = torch.cat([p["seqL"] for p in parts]).tolist() if packed else None
        return Batch(sils, labels, seq_len)

    def stream(self, start: int, end: int) -> BatchStream[Batch]:
        """The batches of iterations ``start .. end - 1``, built ahead by the config's workers."""
        return BatchStream(self, start, end, num_workers=self.num_workers,
                           pin_memory=self.pin_memory, prefetch_factor=self.prefetch_factor)


def pin_memory_for(setting: str, device: torch.device) -> bool:
    """``data.pin_memory``: "on", "off", or "auto" (on when training on CUDA)."""
    return setting == "on" or (setting == "auto" and device.type == "cuda")


def run_banner(cfg: ExperimentConfig) -> str:
    """The first line a run prints: what it trains on, at what size and budget (and loudly, fast mode)."""
    layout = dataset_layout(cfg)
    data = "SynthGait (generated)" if cfg.data.dataset == "synthgait" else f"{layout.title} at {cfg.data.root}"
    h, w = input_size(cfg)
    line = f"{cfg.name}: {cfg.model.name}, method {cfg.method}, {data}, model input {h}x{w}, budget {cfg.budget}"
    if cfg.budget == "fast":
        line = f"{FAST_MODE_NOTICE} {line}"
    return line


def eval_transform(cfg: ExperimentConfig):
    """The test-time transform: OpenGait's cut and scale, and the config's downsampling."""
    return build_transform([], 0.0, cfg.data.downsample, train=False)


def make_evaluator(cfg: ExperimentConfig, test: GaitDataset, device: torch.device
                   ) -> Callable[[nn.Module], dict]:
    transform = eval_transform(cfg)
    protocol = dataset_layout(cfg).protocol

    def evaluate(model: nn.Module) -> dict:
        feats = extract_features(model, test, transform, device,
                                 batch_frames=cfg.data.eval_batch_frames,
                                 progress=cfg.runtime.progress and is_main_process())
        return evaluate_features(feats, test, protocol) if is_main_process() else {}

    return evaluate


# -- models --------------------------------------------------------------------

#: ``model_factory(num_classes)``: a float model that keeps the model contract.
ModelFactory = Callable[[int], nn.Module]


def build_float_model(cfg: ExperimentConfig, num_classes: int,
                      factory: ModelFactory | None = None) -> nn.Module:
    """The config's float model (or ``factory``'s).  With ``runtime.channels_last`` its
    convolution weights use the NHWC layout, which oneDNN (CPU) and cuDNN run faster,
    and which spares fake-quantized layers a layout conversion per call."""
    if factory is not None:
        model = factory(num_classes)
    else:
        m = cfg.model
        config = m.opengait_config or configuration_for(m.name, cfg.data.layout)
        model = build_model(m.name, config=config, num_classes=num_classes,
                            where=f"model.arguments.{m.name}", **m.arguments.get(m.name, {}))
    if cfg.runtime.channels_last:
        model = to_channels_last(model)
    return model


def quantize_for(cfg: ExperimentConfig, model: nn.Module, method: str,
                 device: torch.device | None = None) -> nn.Module:
    """Fake-quantize ``model`` in place with ``method``'s quantizer at ``quant.bits``."""
    quantizer = METHODS[method].quantizer
    if quantizer is None:
        raise ConfigError(f"method {method!r} trains a float model; it has no quantizer")
    q = cfg.quant
    fl = lambda b: None if b is None else (b, b)  # noqa: E731
    policy = LayerPolicy(first_layer_bits=fl(q.first_layer_bits), last_layer_bits=fl(q.last_layer_bits),
                         skip=tuple(q.skip))
    options = QuantizerOptions(per_channel=q.per_channel, pact_alpha_init=q.pact_alpha_init,
                               pact_alpha_l2=q.pact_alpha_l2)
    model = quantize_model(model, quantizer, q.bits, q.bits, policy, options)
    device = device if device is not None else select_device(cfg.runtime.device)
    set_fused(model, fuse_quantizers(cfg.runtime.fuse_quantizers, device))
    return model


def input_size(cfg: ExperimentConfig) -> tuple[int, int]:
    """The model's input (H, W): 64 x 44 after OpenGait's cut for every layout, then the downsampling."""
    return MODEL_INPUT[0] // cfg.data.downsample, MODEL_INPUT[1] // cfg.data.downsample


def model_bitops(model: nn.Module, cfg: ExperimentConfig, frames: int | None = None) -> float:
    """BitOPs of one sequence, as the paper's tables count them (BatchNorm included, ``quant.bitops``).

    ``frames`` defaults to the paper's frame count for the dataset (Sec. 4.1: 100, GREW 120).
    """
    frames = frames if frames is not None else dataset_layout(cfg).bitops_frames
    h, w = input_size(cfg)
    return summarize(count_costs(model, torch.zeros(1, frames, h, w), include=gaitbase_inference_layers,
                                 convention=PAPER_CONVENTION))["bitops"]


# -- stages and methods ----------------------------------------------------------

def _fingerprint(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class MethodResult:
    method: str
    bits: int
    metrics: dict
    bitops: float
    stages: list[StageResult] = field(default_factory=list)
    model: nn.Module | None = None

    @property
    def label(self) -> str:
        """``FP32``, ``LSQ-4``, ``QGait-8``: the method as a result table names it."""
        return METHODS[self.method].label(self.bits)

    @property
    def bits_label(self) -> str:
        """``32`` or ``w4/a4``: the bit-width column of a result table."""
        return METHODS[self.method].bits_label(self.bits)

    def row(self, label: str | None = None) -> dict:
        """This result as a row of :func:`~qgait_lab.experiments.results.markdown_table` (named ``label`` if given)."""
        return row_from(label or self.label, self.bits_label, self.metrics, self.bitops)

    @property
    def run_dirs(self) -> list[Path]:
        return [s.run_dir for s in self.stages]


class Experiment:
    """Shared state of the runs of one config: data, device, the teacher; runs methods."""

    def __init__(self, cfg: ExperimentConfig, callbacks: Iterable[Callback] = (),
                 model_factory: ModelFactory | None = None) -> None:
        self.cfg = cfg
        self.callbacks = list(callbacks)
        self.model_factory = model_factory
        self.device = select_device(cfg.runtime.device)
        self.train_set, self.test_set = load_datasets(cfg)
        self.batches = TrainBatches(cfg, self.train_set, self.device)
        self.evaluate = make_evaluator(cfg, self.test_set, self.device)
        self.root = Path(cfg.runtime.runs_dir) / cfg.name
        # How batches are loaded does not change them, so those keys stay out of the fingerprints.
        data = {k: v for k, v in dataclasses.asdict(cfg.data).items() if k not in LOADER_KEYS}
        model = (dataclasses.asdict(cfg.model) if model_factory is None else
                 {"factory": f"{model_factory.__module__}.{model_factory.__qualname__}"})
        self._base = {"data": data, "model": model, "loss": dataclasses.asdict(cfg.loss),
                      "seed": cfg.runtime.seed}

    @property
    def num_classes(self) -> int:
        return self.train_set.num_classes

    def _run_stage(self, stage_name: str, stage: StageConfig, model: nn.Module, label: str,
                   parent: str, teacher: nn.Module | None = None, extra: dict | None = None,
                   evaluate: bool = True) -> tuple[StageResult, str]:
        """Train one stage in ``runs/<name>/<label>-<fingerprint>/``, or reuse a finished one."""
        if stage.checkpoint:
            return self._load_stage(stage_name, stage, model, label, evaluate)
        settings = dataclasses.asdict(stage)
        del settings["checkpoint"]      # None here; left out so older runs keep their fingerprints
        fingerprint = _fingerprint({**self._base, "stage": settings,
                                    "parent": parent, **(extra or {})})
        run_dir = self.root / f"{label}-{fingerprint[:8]}"
        done = run_dir / "result.json"
        if done.is_file():
            info = json.loads(done.read_text())
            if info.get("fingerprint") == fingerprint:   # finished with the same settings
                state = load_checkpoint(run_dir / "checkpoints" / "last.pt", self.device)
                load_model_state(model, model_state_of(state), str(run_dir))
                if evaluate and not info["metrics"]:    # trained as an intermediate stage
                    info["metrics"] = self.evaluate(model)
                    if is_main_process():
                        done.write_text(json.dumps(info, indent=1))
                return StageResult(stage_name, run_dir, run_dir / "checkpoints" / "last.pt",
                                   info["metrics"], info["iterations"], info["seconds"]), fingerprint
        if is_main_process():
            run_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.cfg, run_dir / "config.yaml")
        seed_everything(self.cfg.runtime.seed)
        train_model = maybe_compile(wrap_for_training(model, self.device), self.cfg.runtime.compile,
                                    self.device)
        trainer = Trainer(stage, train_model, run_dir, self.device, loss=self.cfg.loss,
                          runtime=self.cfg.runtime, name=stage_name, teacher=teacher,
                          callbacks=self.callbacks)
        result = trainer.fit(self.batches, self.evaluate if evaluate else None)
        if is_main_process():
            done.write_text(json.dumps({"fingerprint": fingerprint, "metrics": result.metrics,
                                        "iterations": result.iterations,
                                        "seconds": round(result.seconds, 2)}, indent=1))
        return result, fingerprint

    def _load_stage(self, stage_name: str, stage: StageConfig, model: nn.Module, label: str,
                    evaluate: bool) -> tuple[StageResult, str]:
        """A stage given as a trained model (``<stage>.checkpoint``): loaded, not trained.

        Its fingerprint is the file's content hash, so the stages trained on top of it
        are reused exactly while the file stays the same.  Its evaluation is kept in
        ``runs/<name>/<label>-loaded-<hash>/result.json``.
        """
        path = Path(stage.checkpoint).expanduser()
        option = f"{stage_name}.checkpoint"
        try:
            state = load_checkpoint(path, self.device)
            load_model_state(model, model_state_of(state), f"{option} {path}")
        except CheckpointError as err:
            raise ConfigError(f"{option}: {err}") from None
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        # The data and model settings too: they decide what its cached evaluation measured.
        fingerprint = _fingerprint({"data": self._base["data"], "model": self._base["model"],
                                    "checkpoint": digest})
        run_dir = self.root / f"{label}-loaded-{fingerprint[:8]}"
        done = run_dir / "result.json"
        info = json.loads(done.read_text()) if done.is_file() else {}
        metrics = info.get("metrics", {}) if info.get("fingerprint") == fingerprint else {}
        if evaluate and not metrics:
            metrics = self.evaluate(model)
            if is_main_process():
                run_dir.mkdir(parents=True, exist_ok=True)
                done.write_text(json.dumps({"fingerprint": fingerprint, "checkpoint": str(path),
                                            "metrics": metrics, "iterations": 0, "seconds": 0.0},
                                           indent=1))
        return StageResult(stage_name, run_dir, path, metrics, 0, 0.0), fingerprint

    def build_model(self) -> nn.Module:
        """A fresh float model of this experiment, on its device."""
        return build_float_model(self.cfg, self.num_classes, self.model_factory).to(self.device)

    def full_precision(self, evaluate: bool = True) -> tuple[nn.Module, StageResult, str]:
        torch.manual_seed(self.cfg.runtime.seed)
        model = self.build_model()
        result, fp = self._run_stage("full_precision", self.cfg.full_precision, model, "fp",
                                     parent="", evaluate=evaluate)
        return model, result, fp

    def run(self, method: str | None = None) -> MethodResult:
        """Train (or reuse) every stage of ``method``'s recipe and return its final evaluation."""
        cfg = self.cfg
        recipe: Method = METHODS[method or cfg.method]
        # A trained teacher is evaluated with its training; a loaded one only when asked for.
        teacher, fp_result, parent = self.full_precision(
            evaluate=recipe.quantizer is None or not cfg.full_precision.checkpoint)
        if recipe.quantizer is None:
            return MethodResult(recipe.name, 32, fp_result.metrics, model_bitops(teacher, cfg),
                                [fp_result], teacher)
        bits = cfg.quant.bits
        model = self.build_model()
        model.load_state_dict(teacher.state_dict())
        quantize_for(cfg, model, recipe.name, self.device)
        first = self.batches(0).to(self.device)
        initialize_quantizers(model, first.sils, first.seqL)
        quant_info = {"quant": dataclasses.asdict(cfg.quant), "method": recipe.quantizer}
        todo = [stage for stage in recipe.stages if stage.runs(cfg)]
        stages = [fp_result]
        for i, stage in enumerate(todo):
            settings = stage.settings(cfg)
            last = i == len(todo) - 1
            result, parent = self._run_stage(
                stage.section, settings, model, recipe.stage_folder(stage.section, bits), parent=parent,
                teacher=teacher if settings.distill.kind != "none" else None, extra=quant_info,
                evaluate=last or cfg.runtime.eval_stage1)
            stages.append(result)
        return MethodResult(recipe.name, bits, stages[-1].metrics, model_bitops(model, cfg), stages, model)


def evaluate_checkpoint(cfg: ExperimentConfig, checkpoint: str | Path, method: str = "fp") -> dict:
    """Load a checkpoint (ours or OpenGait's) into the config's model and evaluate it."""
    device = select_device(cfg.runtime.device)
    train, test = load_datasets(cfg)
    model = build_float_model(cfg, train.num_classes)
    if METHODS[method].quantizer is not None:
        quantize_for(cfg, model, method, device)
    state = load_checkpoint(checkpoint, device)
    load_model_state(model, model_state_of(state), str(checkpoint))
    return make_evaluator(cfg, test, device)(model.to(device))
