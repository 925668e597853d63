"""Training: configs and presets, the stage trainer, checkpoints, devices and DDP, the pipeline."""
from .config import ExperimentConfig, load_config
from .pipeline import Experiment, MethodResult
from .trainer import Trainer, TrainingDivergedError

__all__ = ["ExperimentConfig", "load_config", "Experiment", "MethodResult", "Trainer",
           "TrainingDivergedError"]
