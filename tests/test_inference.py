"""models.inference: BatchNorm folded and quantized weights baked compute the model's embeddings."""
import pytest
import torch

from qgait_lab.models import GaitBase
from qgait_lab.models.contract import inference_embeddings
from qgait_lab.models.inference import inference_copy
from qgait_lab.quant import quantize_model
from qgait_lab.training.config import load_config
from qgait_lab.experiments.pipeline import build_float_model
from qgait_lab.training.runtime import to_channels_last


def _with_statistics(model, sils, seq_len):
    """BatchNorms with running statistics and affine parameters far from the initial ones."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    model.train()
    with torch.no_grad():
        model(sils, seq_len)           # initialises LSQ's steps from data
    return model.eval()


def _sils(frames=24):
    g = torch.Generator().manual_seed(0)
    return (torch.rand(1, frames, 32, 22, generator=g) > 0.5).float(), [10, 14]


@pytest.mark.parametrize("method", [None, "lsq", "pact", "dorefa"])
def test_the_inference_copy_gives_the_models_embeddings(method):
    sils, seq_len = _sils()
    model = to_channels_last(GaitBase(num_classes=5, channels=(16, 32, 64, 128), embed_dim=32))
    if method:
        model = quantize_model(model, method, 8, 8)
    model = _with_statistics(model, sils, seq_len)
    copy = inference_copy(model)
    # BatchNorm is folded in the float model only; every weight quantizer is baked.
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in copy.modules()) == bool(method)
    assert all(getattr(m, "weight_quantizer", None) is None for m in copy.modules())
    assert any(getattr(m, "act_quantizer", None) is not None for m in copy.modules()) == bool(method)
    with torch.no_grad():
        expected = inference_embeddings(model(sils, seq_len))
        got = inference_embeddings(copy(sils, seq_len))
    assert expected.shape == got.shape
    if method is None:
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    else:
        assert torch.equal(got, expected)          # baking Q(W) changes no value
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())     # the original is kept


@pytest.mark.parametrize("method", ["lsq", "pact", "dorefa"])
def test_a_quantized_model_folded_on_request_stays_close_to_the_model(method):
    """Folding a quantized model is available, but not the default: codes may flip at boundaries."""
    sils, seq_len = _sils()
    model = quantize_model(GaitBase(num_classes=5, channels=(16, 32, 64, 128), embed_dim=32), method, 8, 8)
    model = _with_statistics(model, sils, seq_len)
    folded = inference_copy(model, fold_batchnorm=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        expected = inference_embeddings(model(sils, seq_len))
        got = inference_embeddings(folded(sils, seq_len))
    # The same function up to codes flipped at rounding boundaries (2026-12-02: relative error
    # 0, 1.1e-3, 2.2e-3 for LSQ, PACT and DoReFa): close as a whole, not to float rounding.
    error = float((got - expected).norm() / expected.norm())
    assert error < 1e-2, error


def test_a_model_without_batchnorm_only_bakes_its_weights():
    sils, seq_len = _sils(16)
    cfg = load_config("tiny-cpu", ["model.name=gaitpart"])
    model = quantize_model(build_float_model(cfg, 5), "lsq", 4, 4)
    model = _with_statistics(model, sils, [8, 8])
    folded = inference_copy(model)
    with torch.no_grad():
        torch.testing.assert_close(inference_embeddings(folded(sils, [8, 8])),
                                   inference_embeddings(model(sils, [8, 8])))
