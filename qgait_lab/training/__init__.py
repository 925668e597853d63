"""Training: configs and presets, the stage trainer and its loss terms, devices and DDP."""
from .config import ExperimentConfig, load_config
from .trainer import Trainer, TrainingDivergedError

__all__ = ["ExperimentConfig", "load_config", "Trainer", "TrainingDivergedError"]
