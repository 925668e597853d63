"""Fake quantization: functional pieces, quantizers, layers, model conversion, BitOPs."""
from .convert import (METHODS, LayerPolicy, QuantizerOptions, initialize_quantizers, is_quantized, layer_bits,
                      quantizable_layers, quantize_model, quantizer_penalty, quantizers,
                      set_fused, set_gradient, set_k)
from .functional import (grad_scale, lsq_fake_quant, pact_fake_quant, round_soft_grad, round_ste,
                         round_with, soft_round, soft_round_slope, unit_fake_quant)
from .modules import QConv2d, QLinear, QuantizedLayer
from .quantizers import (DoReFaActQuantizer, DoReFaWeightQuantizer, LSQQuantizer,
                         PACTQuantizer, Quantizer)

__all__ = [
    "METHODS", "LayerPolicy", "QuantizerOptions", "initialize_quantizers", "is_quantized", "layer_bits",
    "quantizable_layers", "quantize_model", "quantizer_penalty", "quantizers", "set_fused",
    "set_gradient", "set_k", "grad_scale", "lsq_fake_quant", "pact_fake_quant", "unit_fake_quant",
    "round_soft_grad", "round_ste", "round_with",
    "soft_round", "soft_round_slope", "QConv2d", "QLinear", "QuantizedLayer",
    "DoReFaActQuantizer", "DoReFaWeightQuantizer", "LSQQuantizer", "PACTQuantizer", "Quantizer",
]
