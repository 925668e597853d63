"""Solutions for notebook 06 (BitOPs and the tables)."""
from __future__ import annotations

import torch

from qgait_lab.models import build_model
from qgait_lab.quant import LayerPolicy
from qgait_lab.quant.bitops import bitops_table, gaitbase_inference_layers


def conv_bitops(c_in: int, c_out: int, kernel: int, h_out: int, w_out: int, frames: int,
                w_bits: int, a_bits: int) -> float:
    """BitOPs of one convolution: (b_w/32)(b_a/32) * MACs, MACs = C_in C_out F^2 H_out W_out per frame."""
    macs = c_in * c_out * kernel * kernel * h_out * w_out * frames
    return (w_bits / 32) * (a_bits / 32) * macs


def first_last_bitops_g() -> float:
    """w4a4 GaitBase on 100 frames of 64x44 with the first and last layers in full precision, in G."""
    policy = LayerPolicy(first_layer_bits=(32, 32), last_layer_bits=(32, 32))
    rows = bitops_table(lambda: build_model("gaitbase", num_classes=3000), [torch.zeros(1, 100, 64, 44)], [4],
                        policy=policy, include=gaitbase_inference_layers)
    return rows[0]["bitops"] / 1e9
