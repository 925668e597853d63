"""From a fake-quantized model to a real integer model that runs (the paper's Appendix A.3 limitation).

* :mod:`.grids`: the integer grid behind each fake quantizer;
* :mod:`.fixed_point`: requantization by an integer multiplier and a shift;
* :mod:`.integer_model`: a trained GaitBase as weight codes, grids and folded BatchNorm;
* :mod:`.reference`: its integer-only forward pass;
* :mod:`.parity`: how close it stays to the fake-quantized model.
"""
from .fixed_point import FixedPointMultiplier, quantize_multiplier, requantize
from .grids import Grid, activation_grid, weight_codes
from .integer_model import IntegerBlock, IntegerConv, IntegerFC, IntegerGaitBase, build_integer_model
from .parity import (CodeAgreement, compare_codes, embedding_cosine, fake_quant_codes, reference_copy,
                     rounding_margins)
from .reference import IntegerOutputs, integer_forward

__all__ = ["FixedPointMultiplier", "quantize_multiplier", "requantize", "Grid", "activation_grid",
           "weight_codes", "IntegerBlock", "IntegerConv", "IntegerFC", "IntegerGaitBase",
           "build_integer_model", "CodeAgreement", "compare_codes", "embedding_cosine",
           "fake_quant_codes", "reference_copy", "rounding_margins", "IntegerOutputs", "integer_forward"]
