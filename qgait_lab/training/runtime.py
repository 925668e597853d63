"""Where training runs: device choice, AMP, torch.compile, progress bars and process ranks.

Nothing here needs a GPU or a process group: a single CPU process is the
default, one GPU works without ``torchrun``, and several GPUs (or CPU
processes with gloo) use ``torchrun`` + DDP.
"""
from __future__ import annotations

import contextlib
import os
import random
import warnings

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..ranks import is_main_process


def fast_mode() -> bool:
    """``QGAIT_FAST=1`` shrinks every budget for tests. No other variable (not ``CI``) does."""
    return os.environ.get("QGAIT_FAST", "") not in ("", "0", "false", "False")


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def select_device(name: str = "auto") -> torch.device:
    """``auto``: this rank's GPU under torchrun, else the first GPU, else the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"runtime.device {name!r} is not a device name: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"runtime.device is {name!r} but no CUDA device is available")
    return device


def autocast(device: torch.device, enabled: bool):
    """Mixed precision on CUDA only (bfloat16 is not faster on most CPUs)."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def make_grad_scaler(enabled: bool) -> torch.amp.GradScaler:
    return torch.amp.GradScaler("cuda", enabled=enabled)


def maybe_compile(model: nn.Module, mode: str, device: torch.device) -> nn.Module:
    """``torch.compile`` when asked ("on"), or on CUDA for "auto"; eager if compiling fails."""
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return model
    try:
        return torch.compile(model)
    except Exception as err:  # pragma: no cover - depends on the toolchain
        warnings.warn(f"torch.compile unavailable ({err}); running eagerly")
        return model


def fuse_quantizers(mode: str, device: torch.device) -> bool:
    """Whether to compile the quantizers' arithmetic (quant.kernels) for ``runtime.fuse_quantizers``.

    "auto" fuses on the CPU, where it cut a tiny-cpu LSQ step from 1.53x to 1.18x
    the float step (benchmarks/README.md).  On CUDA the paper presets compile the
    whole model instead, and fused theta_k' kernels measured slower than eager
    under AMP on an H200, so "auto" leaves CUDA eager; "on" forces fusing.
    """
    return mode == "on" or (mode == "auto" and device.type == "cpu")


#: Strided convolutions with at most this many input channels stay NCHW (see :func:`to_channels_last`).
UNSAFE_NHWC_CHANNELS = 8


def to_channels_last(model: nn.Module) -> nn.Module:
    """Move convolution weights to the NHWC layout, unless PyTorch's CPU kernels would crash.

    PyTorch 2.13's CPU backward of a strided 1x1 convolution in channels_last
    with 1 to 8 input channels corrupts the heap (found with a 4-channel
    GaitBase whose stride-2 shortcut crashed the process; an 8-channel one
    crashed ``make test`` once).  Probed with glibc's heap checks
    (``MALLOC_CHECK_=3``) over 1-32 input channels, 1 and 2 threads: 1-8 crash,
    9 and more do not, and 3x3 kernels do not.  Such narrow models gain nothing
    from NHWC, so they keep the default layout, with a warning, on every device
    (the model is built before it is moved).
    """
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and max(m.stride) > 1 and m.in_channels <= UNSAFE_NHWC_CHANNELS:
            warnings.warn(f"runtime.channels_last: keeping the NCHW layout because {name} is a strided "
                          f"convolution with {m.in_channels} input channels, which PyTorch's CPU "
                          f"channels_last kernels mishandle; use more than {UNSAFE_NHWC_CHANNELS} "
                          "channels for NHWC", stacklevel=2)
            return model
    return model.to(memory_format=torch.channels_last)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def progress(total: int, initial: int = 0, desc: str = "", enabled: bool = True):
    """A ``tqdm.auto`` bar (a widget in notebooks) on the main process; a no-op elsewhere."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, leave=False,
                disable=not (enabled and is_main_process()), dynamic_ncols=True)
