"""This process's place among the processes of a run (one, or several under ``torchrun``).

The core packages read these too (LSQ averages its initial step over ranks,
evaluation gathers features), so they live below :mod:`qgait_lab.training`.
Outside a process group a run is one process: rank 0 of 1.
"""
from __future__ import annotations

import torch


def in_process_group() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def rank() -> int:
    return torch.distributed.get_rank() if in_process_group() else 0


def world_size() -> int:
    return torch.distributed.get_world_size() if in_process_group() else 1


def is_main_process() -> bool:
    return rank() == 0
