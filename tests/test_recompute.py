"""Quantized inputs recomputed in the backward pass (quant.recompute): same gradients, less memory."""

import pytest
import torch

from qgait_lab.models import GaitBase
from qgait_lab.models.contract import inference_embeddings
from qgait_lab.quant import QuantizerOptions, quantize_model, set_fused
from qgait_lab.quant.modules import QuantizedLayer


def _model(method, gradient, fused, recompute):
    torch.manual_seed(0)
    model = GaitBase(num_classes=5, channels=(8, 16, 16, 32), embed_dim=16)
    quantize_model(model, method, 4, 4, options=QuantizerOptions(gradient=gradient, k=3.0))
    set_fused(model, fused)
    for m in model.modules():
        if isinstance(m, QuantizedLayer):
            m.recompute_input = recompute
    return model


def _sils():
    g = torch.Generator().manual_seed(1)
    return (torch.rand(2, 6, 32, 22, generator=g) > 0.5).float()


def _initialised(model):
    with torch.no_grad():                  # LSQ's steps from the batch
        model(_sils())
    return model


def _step(model, held=None):
    """Loss and backward on fixed silhouettes; ``held`` collects the saved tensors' storages."""
    sils = _sils()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pack(t):
        if held is not None and t.untyped_storage().data_ptr() not in params:
            held[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(sils)
        logits = out["training_feat"]["softmax"]["logits"]
        loss = torch.nn.functional.cross_entropy(logits.mean(-1), torch.tensor([1, 3])) \
            + inference_embeddings(out).pow(2).mean()
    loss.backward()
    return loss.detach()


@pytest.mark.parametrize("method,gradient,fused", [
    ("lsq", "ste", False), ("lsq", "soft", False), ("lsq", "ste", True), ("lsq", "soft", True),
    ("pact", "ste", False), ("dorefa", "soft", False)])
def test_recomputing_the_quantized_input_changes_no_value_and_no_gradient(method, gradient, fused):
    kept, recomputed = (_initialised(_model(method, gradient, fused, r)) for r in (False, True))
    assert torch.equal(_step(kept), _step(recomputed))
    grads = {n: p.grad for n, p in kept.named_parameters() if p.grad is not None}
    assert len(grads) > 10
    for name, p in recomputed.named_parameters():
        if name in grads:
            assert torch.equal(p.grad, grads[name]), name


def test_the_backward_keeps_one_activation_less_per_quantized_layer():
    kept_bytes, recomputed_bytes = [], []
    for recompute, out in ((False, kept_bytes), (True, recomputed_bytes)):
        model = _initialised(_model("lsq", "ste", False, recompute))
        held = {}
        _step(model, held)
        out.append(sum(held.values()))
    # Every quantized convolution's input (12 of them, the first is the 6 x 32 x 22 silhouettes)
    # is no longer saved twice.
    assert recomputed_bytes[0] < 0.8 * kept_bytes[0], (recomputed_bytes, kept_bytes)


def test_nothing_changes_without_gradients():
    model = _initialised(_model("lsq", "ste", False, True)).eval()
    with torch.no_grad():
        a = inference_embeddings(model(_sils()))
    for m in model.modules():
        if isinstance(m, QuantizedLayer):
            m.recompute_input = False
    with torch.no_grad():
        b = inference_embeddings(model(_sils()))
    assert torch.equal(a, b)
