"""4-bit codes packed two to a byte: the memory that 4 bits save.

An int8 container spends 8 bits on a 4-bit code.  Packing puts two codes in
one byte, the first code of each pair in the **low nibble** (bits 0-3) and
the second in the high nibble (bits 4-7); an odd count leaves the last high
nibble 0.  Signed codes (-8..7) are stored as their 4-bit two's complement,
unsigned ones (0..15) as they are, so unpacking needs to know which.

This is a storage format only.  No x86 library has a 4-bit convolution kernel
today (onnxruntime's int4 is ``MatMulNBits``, XNNPACK's is fully connected
only), so a 4-bit model is unpacked into int8 containers to run: 4 bits save
memory and bandwidth here, not time.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import ConfigError

__all__ = ["pack_int4", "unpack_int4", "fits_int4", "packed_bytes", "NIBBLE"]

#: The code ranges a nibble holds: signed (two's complement) and unsigned.
NIBBLE = {True: (-8, 7), False: (0, 15)}


def fits_int4(codes: Tensor, signed: bool = True) -> bool:
    """Whether every code lies in the signed (-8..7) or unsigned (0..15) nibble."""
    lo, hi = NIBBLE[signed]
    return codes.numel() == 0 or (int(codes.min()) >= lo and int(codes.max()) <= hi)


def packed_bytes(numel: int) -> int:
    """Bytes that ``numel`` packed codes take: ``ceil(numel / 2)``."""
    return math.ceil(numel / 2)


def pack_int4(codes: Tensor, signed: bool = True, what: str = "codes") -> tuple[Tensor, torch.Size]:
    """``(packed uint8 [ceil(n / 2)], shape)``: integer ``codes`` two per byte, low nibble first.

    ``signed`` says whether the codes are -8..7 (default) or 0..15; a code
    outside that range raises :class:`~qgait_lab.errors.ConfigError` naming
    ``what``.  :func:`unpack_int4` inverts it exactly.
    """
    if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
        raise ConfigError(f"{what}: pack_int4 packs integer codes, got {codes.dtype}")
    lo, hi = NIBBLE[signed]
    if not fits_int4(codes, signed):
        raise ConfigError(f"{what}: codes {int(codes.min())}..{int(codes.max())} do not fit a "
                          f"{'signed' if signed else 'unsigned'} 4-bit nibble ({lo}..{hi})")
    flat = codes.reshape(-1).to(torch.int16) & 0xF            # two's complement low 4 bits
    if flat.numel() % 2:
        flat = torch.cat([flat, flat.new_zeros(1)])
    pairs = flat.view(-1, 2)
    return (pairs[:, 0] | (pairs[:, 1] << 4)).to(torch.uint8), codes.shape


def unpack_int4(packed: Tensor, shape: torch.Size | tuple[int, ...] | list[int],
                signed: bool = True) -> Tensor:
    """The int8 codes of ``shape`` that :func:`pack_int4` packed into ``packed``."""
    shape = torch.Size(shape)
    if packed.dtype != torch.uint8 or packed.dim() != 1:
        raise ConfigError(f"unpack_int4 expects a 1-d uint8 tensor, got {packed.dtype} {tuple(packed.shape)}")
    if packed.numel() != packed_bytes(shape.numel()):
        raise ConfigError(f"unpack_int4: {packed.numel()} bytes cannot hold {shape.numel()} codes "
                          f"of shape {tuple(shape)} (needs {packed_bytes(shape.numel())})")
    wide = packed.to(torch.int16)
    nibbles = torch.stack([wide & 0xF, wide >> 4], dim=1).reshape(-1)[:shape.numel()]
    if signed:
        nibbles = torch.where(nibbles >= 8, nibbles - 16, nibbles)
    return nibbles.to(torch.int8).reshape(shape)
