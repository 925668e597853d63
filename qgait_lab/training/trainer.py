"""One training stage: the loop shared by full precision, QAT stage 1 and the soft fine-tune.

The paper's method is three of these in a row (see :mod:`.pipeline`):

1. full precision (SGD + MultiStepLR), which also gives the teacher;
2. stage 1: quantization-aware training with the STE (Adam 1e-4), from the
   full-precision weights;
3. stage 2: a short fine-tune with the soft quantizer theta_k (Eq. 7) whose k
   follows a schedule (FIXED or GROW), optionally distilled from the teacher
   with vanilla KD (Eq. 13) or IDD (Eqs. 14-15).

Batches are a pure function of (seed, iteration), so a resumed run sees exactly
the batches an uninterrupted run would.  A checkpoint holds the model,
optimizer, scheduler, AMP scaler, iteration, k and RNG states.
"""
from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import torch
from torch import nn

from ..errors import QGaitError
from ..models.contract import training_inputs
from ..quant.convert import is_quantized, quantizer_penalty, set_gradient, set_k
from ..models.checkpoint import load_checkpoint, save_checkpoint
from .config import LossConfig, RuntimeConfig, StageConfig
from .distributed import gather_across_ranks
from .objectives import check_inputs, distillation_term, supervised_terms, total_loss
from ..ranks import is_main_process, world_size
from .runtime import autocast, make_grad_scaler, progress


class TrainingDivergedError(QGaitError, RuntimeError):
    """The loss became NaN or Inf; the message names the iteration."""


class Batch(Protocol):
    sils: torch.Tensor
    labels: torch.Tensor
    seqL: list[int] | None


BatchFn = Callable[[int], Any]      # iteration -> Batch
EvalFn = Callable[[nn.Module], dict]
Callback = Callable[[dict], None]


@dataclass
class StageResult:
    stage: str
    run_dir: Path
    checkpoint: Path
    metrics: dict = field(default_factory=dict)
    iterations: int = 0
    seconds: float = 0.0


def build_optimizer(stage: StageConfig, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    o = stage.optim
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    return torch.optim.Adam(params, lr=o.lr, betas=(o.momentum, 0.999), weight_decay=o.weight_decay)


def build_scheduler(stage: StageConfig, opt: torch.optim.Optimizer):
    return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(stage.optim.milestones),
                                                gamma=stage.optim.gamma)


class Trainer:
    """Runs one stage, writing ``run_dir/{metrics.jsonl, checkpoints/}``.

    ``stage`` says how long, with which optimiser, gradient rule, k schedule and
    distillation; ``loss`` weighs the triplet and cross-entropy terms;
    ``runtime`` says how to log, save and evaluate.  ``model`` is any module
    that keeps the model contract (:mod:`qgait_lab.models.contract`): the
    loss terms read its named outputs (:mod:`.objectives`), so the trainer
    knows no particular model.  ``name`` labels the logs and checkpoints.

    ``batch_fn(iteration)`` returns the batch of that iteration; when it also
    has ``batch_fn.stream(start, end)`` (``TrainBatches``), a stage takes its
    batches from that context manager instead, which builds them ahead in
    DataLoader workers and stops them when the stage ends;
    ``evaluate(model)`` returns a flat dict of metrics.  ``callbacks`` receive
    every logged record (a dict with ``kind`` "train" or "eval"): the notebooks
    use them for live plots.
    """

    def __init__(self, stage: StageConfig, model: nn.Module, run_dir: Path, device: torch.device, *,
                 loss: LossConfig, runtime: RuntimeConfig, name: str = "stage",
                 teacher: nn.Module | None = None, callbacks: Iterable[Callback] = ()) -> None:
        self.stage = stage
        self.stage_name = name
        self.runtime = runtime
        self.model = model
        self.teacher = teacher
        self.run_dir = Path(run_dir)
        self.device = device
        self.callbacks = list(callbacks)
        self.quantized = is_quantized(self.unwrapped)
        self.terms = supervised_terms(loss)
        distill = distillation_term(stage.distill, loss)
        if distill is not None:
            if teacher is None:
                raise QGaitError(f"{name}.distill.kind={stage.distill.kind!r} needs a teacher model")
            self.terms.append(distill)
        self._checked = False
        if self.quantized:
            set_gradient(self.unwrapped, self.stage.gradient)
        self.optimizer = build_optimizer(self.stage, model.parameters())
        self.scheduler = build_scheduler(self.stage, self.optimizer)
        self.amp = runtime.amp and device.type == "cuda"
        self.scaler = make_grad_scaler(self.amp)
        self.iteration = 0
        self.skipped = 0

    @property
    def unwrapped(self) -> nn.Module:
        """The model without its torch.compile and DDP wrappers (for saving and evaluating)."""
        model = getattr(self.model, "_orig_mod", self.model)
        return getattr(model, "module", model)

    # -- checkpoints -------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoints" / "last.pt"

    def state(self) -> dict:
        return {
            "model": self.unwrapped.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "iteration": self.iteration,
            "k": self.current_k(),
            "skipped": self.skipped,
            "stage": self.stage_name,
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        }

    def save(self) -> None:
        if is_main_process():
            save_checkpoint(self.state(), self.checkpoint_path)

    def resume(self) -> bool:
        """Continue from ``checkpoints/last.pt`` if it exists; returns whether it did."""
        if not self.checkpoint_path.is_file():
            return False
        state = load_checkpoint(self.checkpoint_path, map_location=self.device)
        self.unwrapped.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.iteration = int(state["iteration"])
        self.skipped = int(state.get("skipped", 0))
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if state["rng"]["cuda"]:
            torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
        self._truncate_metrics(self.iteration)
        return True

    def _truncate_metrics(self, iteration: int) -> None:
        """Drop log lines written after the checkpoint, so a resumed log has no duplicates."""
        path = self.run_dir / "metrics.jsonl"
        if not path.is_file() or not is_main_process():
            return
        keep = [line for line in path.read_text().splitlines()
                if line.strip() and json.loads(line).get("iteration", 0) <= iteration]
        path.write_text("".join(line + "\n" for line in keep))

    # -- logging -------------------------------------------------------------
    def current_k(self) -> float:
        return float(self.stage.k.k_at(self.iteration)) if self.stage.gradient == "soft" else 0.0

    def log(self, record: dict) -> None:
        record = {"stage": self.stage_name, **record}
        if is_main_process():
            with open(self.run_dir / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(record) + "\n")
        for cb in self.callbacks:
            cb(record)

    # -- the loop --------------------------------------------------------------
    def losses(self, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        # Only the networks run under autocast; the losses take float32 (a half-precision
        # distance matmul or a zero-norm gradient overflows and stalls the GradScaler).
        name = type(self.unwrapped).__name__
        with autocast(self.device, self.amp):
            out = training_inputs(self.model(batch.sils, batch.seqL), name)
            t_out = None
            if self.teacher is not None and any(term.distills for term in self.terms):
                with torch.no_grad():
                    t_out = training_inputs(self.teacher(batch.sils, batch.seqL), "the teacher")
        if not self._checked:
            check_inputs(self.terms, out, name, t_out, where=f"{self.stage_name}.distill.kind")
            self._checked = True
        # Under DDP the losses see the global batch (gather_across_ranks is a
        # no-op in one process).
        inputs = {key: gather_across_ranks(value).float() for key, value in out.items()}
        teacher_inputs = (None if t_out is None else
                          {key: gather_across_ranks(value).float() for key, value in t_out.items()})
        labels = gather_across_ranks(batch.labels)
        total, parts = total_loss(self.terms, inputs, labels, teacher_inputs)
        if self.quantized:
            penalty = quantizer_penalty(self.unwrapped)
            if torch.is_tensor(penalty):
                total = total + penalty
        return total, parts

    def fit(self, batch_fn: BatchFn, evaluate: EvalFn | None = None, resume: bool = True) -> StageResult:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            self.resume()
        if self.teacher is not None:
            self.teacher.eval()
        rt = self.runtime
        total_its = self.stage.iterations
        start = time.perf_counter()
        bar = progress(total=total_its, initial=self.iteration, desc=self.stage_name,
                       enabled=rt.progress)
        self.model.train()
        # The stage's batches, built ahead by DataLoader workers when batch_fn can stream them
        # (TrainBatches.stream); they end with the stage.
        stream = getattr(batch_fn, "stream", None)
        batches = stream(self.iteration, total_its) if stream else contextlib.nullcontext(batch_fn)
        with batches as next_batch:
            while self.iteration < total_its:
                k_used, lr_used = self.current_k(), self.optimizer.param_groups[0]["lr"]
                if self.quantized and self.stage.gradient == "soft":
                    set_k(self.unwrapped, k_used)
                batch = next_batch(self.iteration).to(self.device)
                loss, parts = self.losses(batch)
                if not torch.isfinite(loss.detach()):
                    self._handle_non_finite(loss)
                    self.iteration += 1
                    bar.update(1)
                    continue
                self.optimizer.zero_grad(set_to_none=True)
                # DDP averages gradients over ranks; each rank's loss already covers the
                # global batch through its own samples, so scale back to the sum.
                self.scaler.scale(loss * world_size()).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.scheduler.step()
                self.iteration += 1
                bar.update(1)
                if self.iteration % rt.log_every == 0 or self.iteration == total_its:
                    record = {"kind": "train", "iteration": self.iteration, "loss": float(loss.detach()),
                              **{k: float(v) for k, v in parts.items()},
                              "lr": lr_used, "k": k_used,
                              "seconds": round(time.perf_counter() - start, 3)}
                    self.log(record)
                    bar.set_postfix(loss=f"{record['loss']:.3f}")
                if evaluate and rt.eval_every and self.iteration % rt.eval_every == 0 \
                        and self.iteration < total_its:
                    self.log({"kind": "eval", "iteration": self.iteration, **evaluate(self.unwrapped)})
                    self.model.train()
                if rt.save_every and self.iteration % rt.save_every == 0:
                    self.save()
        bar.close()
        self.save()
        metrics = {}
        if evaluate is not None:
            metrics = evaluate(self.unwrapped)
            self.log({"kind": "eval", "iteration": self.iteration, **metrics})
        return StageResult(self.stage_name, self.run_dir, self.checkpoint_path, metrics,
                           self.iteration, time.perf_counter() - start)

    def _handle_non_finite(self, loss: torch.Tensor) -> None:
        if self.runtime.nan_policy == "skip":
            self.skipped += 1
            self.optimizer.zero_grad(set_to_none=True)
            self.log({"kind": "skip", "iteration": self.iteration + 1, "loss": float(loss.detach())})
            return
        kept = self.checkpoint_path if self.checkpoint_path.is_file() else None
        raise TrainingDivergedError(
            f"{self.stage_name}: loss became {float(loss.detach())} at iteration {self.iteration + 1}; "
            f"training stopped. " + (f"The last good checkpoint is kept at {kept}."
                                     if kept else "No checkpoint had been written yet.")
            + " Set runtime.nan_policy=skip to skip such steps instead.")
