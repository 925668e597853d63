"""Several processes through ``torchrun``: process-group set-up and the DDP wrapper.

One process (CPU or one GPU) needs none of this.  Under ``torchrun`` the
environment names each process's rank; the backend is NCCL for GPUs and gloo
for CPU processes, so a 2-process CPU run works on a laptop.  Only rank 0
writes files; batches are shared out by :class:`~.pipeline.TrainBatches`;
evaluation gathers every rank's share (``evaluation.extract_features``).
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch
from torch import nn

from ..ranks import in_process_group, is_main_process, rank, world_size


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@contextlib.contextmanager
def distributed_session(device: str = "auto") -> Iterator[bool]:
    """Join the process group when launched by torchrun; yields whether this is rank 0."""
    created = False
    if launched_by_torchrun() and not in_process_group():
        use_cuda = torch.cuda.is_available() and device != "cpu"
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
        created = True
    try:
        yield is_main_process()
    finally:
        if created:
            torch.distributed.destroy_process_group()


def wrap_for_training(model: nn.Module, device: torch.device, sync_bn: bool = True) -> nn.Module:
    """DDP-wrap ``model`` when several processes train it; unchanged otherwise.

    On GPUs BatchNorm becomes SyncBatchNorm (OpenGait's ``sync_BN: true``) so
    statistics are computed over the global batch.
    """
    if world_size() == 1:
        return model
    if sync_bn and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def gather_across_ranks(t: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``t`` along dim 0, keeping this rank's part differentiable.

    The triplet loss, the BNNeck cross-entropy and IDD then see the global P x K
    batch, as in a single process: the other ranks' parts are constants here,
    and their own backward passes cover them.  Every rank must pass a tensor of
    the same shape (the P x K sampler guarantees it).
    """
    if world_size() == 1:
        return t
    parts = [torch.empty_like(t) for _ in range(world_size())]
    torch.distributed.all_gather(parts, t.detach().contiguous())
    parts[rank()] = t
    return torch.cat(parts, 0)
