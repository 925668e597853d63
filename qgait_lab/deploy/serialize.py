"""The integer model on disk: a torch file of plain values, with 4-bit weights packed two per byte.

:func:`save_integer_model` writes an :class:`~qgait_lab.deploy.IntegerGaitBase`
as one ``torch.save`` dict that holds only tensors, ints, floats, strings,
lists and dicts, so :func:`load_integer_model` reads it with
``torch.load(weights_only=True)``: the file cannot run code.  It stores

* the trained weight codes (not the BN-folded ones, whose negated channels
  can leave a 4-bit nibble: a code -8 becomes +8), packed two per byte
  (:mod:`.packing`) when every layer's weights are 4-bit codes, else int8;
* the weight steps, every layer's input grid, the BatchNorm as scale and shift,
  strides and paddings;
* the float model's constructor arguments, the method and the bits.

Folded codes, accumulator scales and biases are recomputed on load by the
same :class:`~qgait_lab.deploy.IntegerConv` properties that computed them
before saving, so a loaded model gives bit-identical :func:`integer_forward`
outputs.  The file is written atomically by the project's checkpoint writer
(:func:`qgait_lab.models.checkpoint.save_checkpoint`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from ..errors import ConfigError, DataFormatError
from ..models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .grids import Grid
from .integer_model import IntegerBlock, IntegerConv, IntegerFC, IntegerGaitBase
from .packing import fits_int4, pack_int4, packed_bytes, unpack_int4

__all__ = ["FORMAT", "FORMAT_VERSION", "save_integer_model", "load_integer_model", "model_bytes",
           "will_pack", "WeightKind"]

FORMAT = "qgait-lab integer model"
FORMAT_VERSION = 1

WeightKind = Literal["fp32", "int8", "int4"]
_PLAIN = (bool, int, float, str, type(None))


# -- sizes -------------------------------------------------------------------

def model_bytes(model: IntegerGaitBase, kind: WeightKind) -> int:
    """Bytes of the model's weights stored as ``fp32``, ``int8`` codes or packed ``int4`` codes.

    Weights only (every convolution and the separate FCs); the steps, grids
    and BatchNorm vectors add a few floats per channel to any of the three.
    """
    counts = [layer.codes.numel() for layer in model.layers()]
    if kind == "fp32":
        return 4 * sum(counts)
    if kind == "int8":
        return sum(counts)
    if kind == "int4":
        return sum(packed_bytes(n) for n in counts)
    raise ConfigError(f"model_bytes: kind must be 'fp32', 'int8' or 'int4', got {kind!r}")


def will_pack(model: IntegerGaitBase) -> bool:
    """Whether every layer's weights are 4-bit codes that a signed nibble holds (-8..7)."""
    return all(layer.w_bits <= 4 and fits_int4(layer.codes) for layer in model.layers())


# -- writing -------------------------------------------------------------------

def _check_packable(model: IntegerGaitBase) -> None:
    for layer in model.layers():
        if not fits_int4(layer.codes):
            lo, hi = int(layer.codes.min()), int(layer.codes.max())
            raise ConfigError(f"pack=True: the weights of {layer.name} ({layer.w_bits}-bit codes {lo}..{hi}) "
                              f"do not fit a 4-bit nibble (-8..7); DoReFa's odd codes need w_bits + 1 bits. "
                              f"Save them as int8 (pack=False)")


def _weights(layer: IntegerConv | IntegerFC, pack: bool) -> dict[str, Any]:
    if not pack:
        return {"codes": layer.codes.to(torch.int8).contiguous().clone()}
    packed, shape = pack_int4(layer.codes, what=f"weights of {layer.name}")
    return {"packed": packed, "shape": list(shape)}


def _grid(grid: Grid) -> dict[str, Any]:
    return {"scale": float(grid.scale), "lo": int(grid.lo), "hi": int(grid.hi)}


def _conv(conv: IntegerConv, pack: bool) -> dict[str, Any]:
    return {"name": conv.name, **_weights(conv, pack), "weight_scale": conv.weight_scale.double().clone(),
            "input_grid": _grid(conv.input_grid), "bn_scale": conv.bn_scale.double().clone(),
            "bn_shift": conv.bn_shift.double().clone(), "stride": int(conv.stride),
            "padding": int(conv.padding), "w_bits": int(conv.w_bits)}


def _fc(fc: IntegerFC, pack: bool) -> dict[str, Any]:
    return {"name": fc.name, **_weights(fc, pack), "weight_scale": fc.weight_scale.double().clone(),
            "input_grid": _grid(fc.input_grid), "w_bits": int(fc.w_bits)}


def _plain(value: Any, where: str) -> Any:
    """``value`` with tuples as lists, refusing anything ``weights_only`` loading would not read back."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, where) for k, v in value.items()}
    raise ConfigError(f"{where}: {type(value).__name__} values cannot be saved in an integer model file")


def save_integer_model(model: IntegerGaitBase, path: str | os.PathLike, *, pack: bool | None = None) -> Path:
    """Write ``model`` to ``path`` (atomically); ``pack=None`` packs 4-bit weights, see :func:`will_pack`."""
    pack = will_pack(model) if pack is None else bool(pack)
    if pack:
        _check_packable(model)
    blocks = []
    for block in model.blocks:
        entry = {"conv1": _conv(block.conv1, pack), "conv2": _conv(block.conv2, pack)}
        if block.downsample is not None:
            entry["downsample"] = _conv(block.downsample, pack)
        blocks.append(entry)
    state = {"format": FORMAT, "version": FORMAT_VERSION, "weights": "int4-packed" if pack else "int8",
             "method": str(model.method), "bits": int(model.bits), "parts": int(model.parts),
             "config": _plain(model.config, "config"), "notes": _plain(model.notes, "notes"),
             "stem": _conv(model.stem, pack), "blocks": blocks, "fc": _fc(model.fc, pack)}
    return save_checkpoint(state, path)


# -- reading -------------------------------------------------------------------

class _Reader:
    """Typed access to the loaded dict; every complaint names the file and the entry."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, message: str) -> DataFormatError:
        return DataFormatError(f"{self.path}: {message}")

    def get(self, entry: dict, key: str, kind: type | tuple[type, ...], where: str) -> Any:
        if not isinstance(entry, dict) or key not in entry:
            raise self.fail(f"not a complete integer model: {where} has no '{key}'")
        value = entry[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(f"{where}.{key} is a {type(value).__name__}, expected {kind}")
        return value

    def tensor(self, entry: dict, key: str, dtype: torch.dtype, where: str, shape=None) -> Tensor:
        value = self.get(entry, key, Tensor, where)
        if value.dtype != dtype or (shape is not None and tuple(value.shape) != tuple(shape)):
            raise self.fail(f"{where}.{key} is {value.dtype} {tuple(value.shape)}, expected {dtype}"
                            + (f" {tuple(shape)}" if shape is not None else ""))
        return value

    def codes(self, entry: dict, where: str) -> Tensor:
        if "packed" in entry:
            shape = self.get(entry, "shape", list, where)
            if not all(isinstance(s, int) and s >= 0 for s in shape):
                raise self.fail(f"{where}.shape {shape} is not a list of sizes")
            packed = self.tensor(entry, "packed", torch.uint8, where)
            try:
                return unpack_int4(packed, shape)
            except ConfigError as err:
                raise self.fail(f"{where}: {err}") from None
        return self.tensor(entry, "codes", torch.int8, where)

    def grid(self, entry: dict, where: str) -> Grid:
        g = self.get(entry, "input_grid", dict, where)
        where = f"{where}.input_grid"
        scale = float(self.get(g, "scale", (int, float), where))
        lo, hi = self.get(g, "lo", int, where), self.get(g, "hi", int, where)
        if not scale > 0 or lo >= hi:
            raise self.fail(f"{where}: step {scale} and codes {lo}..{hi} are not a grid")
        return Grid(scale, lo, hi)

    def weight_scale(self, entry: dict, where: str, channels: int) -> Tensor:
        scale = self.tensor(entry, "weight_scale", torch.float64, where)
        if scale.dim() > 1 or (scale.dim() == 1 and scale.numel() != channels) or not bool((scale > 0).all()):
            raise self.fail(f"{where}.weight_scale must be one positive step or {channels}, "
                            f"got shape {tuple(scale.shape)}")
        return scale

    def conv(self, entry: dict, where: str) -> IntegerConv:
        name = self.get(entry, "name", str, where)
        codes = self.codes(entry, where)
        if codes.dim() != 4:
            raise self.fail(f"{where} ({name}): convolution codes must be [O, C, kh, kw], "
                            f"got {tuple(codes.shape)}")
        o = codes.shape[0]
        return IntegerConv(name, codes, self.weight_scale(entry, where, o), self.grid(entry, where),
                           self.tensor(entry, "bn_scale", torch.float64, where, (o,)),
                           self.tensor(entry, "bn_shift", torch.float64, where, (o,)),
                           stride=self.get(entry, "stride", int, where),
                           padding=self.get(entry, "padding", int, where),
                           w_bits=self.get(entry, "w_bits", int, where))

    def fc(self, entry: dict, where: str) -> IntegerFC:
        name = self.get(entry, "name", str, where)
        codes = self.codes(entry, where)
        if codes.dim() != 3:
            raise self.fail(f"{where} ({name}): FC codes must be [p, c_in, c_out], got {tuple(codes.shape)}")
        return IntegerFC(name, codes, self.weight_scale(entry, where, codes.shape[0]), self.grid(entry, where),
                         w_bits=self.get(entry, "w_bits", int, where))


def load_integer_model(path: str | os.PathLike) -> IntegerGaitBase:
    """Read a file written by :func:`save_integer_model`.

    Raises :class:`~qgait_lab.errors.DataFormatError` naming the file when it is
    missing, truncated or corrupt, is not an integer model (a training
    checkpoint, say), or comes from a newer format version.
    """
    path = Path(path)
    try:
        state = load_checkpoint(path)
    except CheckpointError as err:
        raise DataFormatError(f"{err} (expected an integer model written by qgait-lab export "
                              f"--format torch)") from None
    r = _Reader(path)
    if state.get("format") != FORMAT:
        raise r.fail(f"not a {FORMAT} file (a training checkpoint? `qgait-lab export --format torch` "
                     f"writes one)")
    version = r.get(state, "version", int, "the file")
    if version > FORMAT_VERSION:
        raise r.fail(f"format version {version} is newer than this qgait-lab reads ({FORMAT_VERSION}); "
                     f"upgrade qgait-lab")
    blocks = []
    for i, entry in enumerate(r.get(state, "blocks", list, "the file")):
        where = f"blocks[{i}]"
        down = r.conv(entry["downsample"], f"{where}.downsample") if isinstance(entry, dict) \
            and "downsample" in entry else None
        blocks.append(IntegerBlock(r.conv(r.get(entry, "conv1", dict, where), f"{where}.conv1"),
                                   r.conv(r.get(entry, "conv2", dict, where), f"{where}.conv2"), down))
    return IntegerGaitBase(r.conv(r.get(state, "stem", dict, "the file"), "stem"), blocks,
                           r.fc(r.get(state, "fc", dict, "the file"), "fc"),
                           parts=r.get(state, "parts", int, "the file"),
                           config=r.get(state, "config", dict, "the file"),
                           method=r.get(state, "method", str, "the file"),
                           bits=r.get(state, "bits", int, "the file"),
                           notes=r.get(state, "notes", dict, "the file"))
