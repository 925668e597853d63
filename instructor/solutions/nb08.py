"""Reference solutions of notebook 08 (BitOPs, Tables 1-2 and accuracy per BitOP)."""
from __future__ import annotations

import torch

from qgait_lab.models import build_model
from qgait_lab.quant import LayerPolicy, quantize_model
from qgait_lab.quant.bitops import bitops_table, count_costs, gaitbase_inference_layers


# Exercise 8.1
def conv_bitops(c_in: int, c_out: int, kernel: int, h_out: int, w_out: int, frames: int,
                w_bits: int, a_bits: int) -> float:
    """BitOPs of one convolution: (b_w/32)(b_a/32) * MACs, MACs = C_in C_out F^2 H_out W_out per frame."""
    macs = c_in * c_out * kernel * kernel * h_out * w_out * frames
    return (w_bits / 32) * (a_bits / 32) * macs


def _gaitbase() -> torch.nn.Module:
    return build_model("gaitbase", num_classes=3000)


_FRAMES = torch.zeros(1, 100, 64, 44)

# Exercise 8.2: w4a4 GaitBase on 100 frames of 64x44, first and last layers in full precision, in G.
_policy = LayerPolicy(first_layer_bits=(32, 32), last_layer_bits=(32, 32))
first_last_bitops = bitops_table(_gaitbase, [_FRAMES], [4], policy=_policy,
                                 include=gaitbase_inference_layers)[0]["bitops"] / 1e9

# Exercise 8.3: both layers gain the same factor per MAC, so the first layer's part of the increase is its
# share of the two layers' MACs.
_costs = count_costs(quantize_model(_gaitbase(), "lsq", 4, 4, _policy), _FRAMES, include=gaitbase_inference_layers)
first_layer_share = 100 * _costs[0].macs / (_costs[0].macs + _costs[-1].macs)
