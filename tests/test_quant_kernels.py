"""Fused fake-quantization kernels (quant.kernels): the same values and gradients as eager.

The fused path compiles each quantizer's arithmetic with torch.compile; the
eager path runs the same functions op by op.  Forward values must match
exactly (the same IEEE operations); gradients may differ only by the order of
the float additions in the step's (or alpha's) sum.
"""
import warnings

import pytest
import torch

from qgait_lab.models import GaitBase
from qgait_lab.quant import kernels as K
from qgait_lab.quant import quantize_model, set_fused, set_k
from qgait_lab.quant import functional as QF
from qgait_lab.quant.convert import quantizers


def _both(fn, *tensors):
    """Run ``fn`` eagerly and fused on copies of ``tensors``; return (outputs, grads) of each."""
    results = []
    for fused in (False, True):
        leaves = [t.detach().clone().requires_grad_(t.requires_grad) for t in tensors]
        out = fn(fused, *leaves)
        upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(3)).to(out)
        (out * upstream).sum().backward()
        results.append((out.detach(), [t.grad for t in leaves if t.requires_grad]))
    return results


def _activation(shape, channels_last=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * 2.0
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


@pytest.mark.parametrize("gradient,soft_forward", [("ste", False), ("soft", False), ("soft", True)])
@pytest.mark.parametrize("shape,channels_last,per_channel", [
    ((6, 5, 7, 3), True, False),       # an activation in the trainer's NHWC layout
    ((8, 3, 3, 3), False, True),       # a conv weight with a step per output channel
    ((8, 3, 3, 3), True, True),
    ((4, 33), False, False),           # a linear layer's input
])
def test_lsq_fused_matches_eager(gradient, soft_forward, shape, channels_last, per_channel):
    v = _activation(shape, channels_last).requires_grad_()
    step = (torch.rand(shape[0], 1, *([1] * (len(shape) - 2))) * 0.3 + 0.2 if per_channel
            else torch.tensor(0.37)).requires_grad_()
    fn = lambda fused, v, s: QF.lsq_fake_quant(v, s, -8, 7, 0.05, gradient, 2.5,  # noqa: E731
                                               soft_forward, fused=fused)
    (out_e, (gv_e, gs_e)), (out_f, (gv_f, gs_f)) = _both(fn, v, step)
    if soft_forward:   # tanh: vectorised in the fused kernel, within a few ulp
        torch.testing.assert_close(out_f, out_e, rtol=1e-5, atol=1e-6)
    else:
        assert torch.equal(out_f, out_e)
    assert out_f.stride() == out_e.stride()            # the layout is kept
    torch.testing.assert_close(gv_f, gv_e, rtol=1e-5, atol=1e-6)
    assert gs_f.shape == step.shape
    torch.testing.assert_close(gs_f, gs_e, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("gradient", ["ste", "soft"])
def test_unit_and_pact_fused_match_eager(gradient):
    x = _activation((5, 4, 6, 3), channels_last=True).requires_grad_()
    (out_e, (g_e,)), (out_f, (g_f,)) = _both(
        lambda fused, x: QF.unit_fake_quant(x * 0.4, 4, gradient, 3.0, fused=fused), x)
    assert torch.equal(out_f, out_e)
    torch.testing.assert_close(g_f, g_e, rtol=1e-5, atol=1e-6)

    alpha = torch.tensor(1.7, requires_grad=True)
    (out_e, (gx_e, ga_e)), (out_f, (gx_f, ga_f)) = _both(
        lambda fused, x, a: QF.pact_fake_quant(x, a, 4, gradient, 3.0, fused=fused), x, alpha)
    assert torch.equal(out_f, out_e)
    torch.testing.assert_close(gx_f, gx_e, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ga_f, ga_e, rtol=1e-4, atol=1e-5)
    assert ga_e.item() != 0.0            # some inputs do lie above alpha


def test_one_compiled_kernel_serves_every_layer_shape_and_bit_width():
    """Viewed flat, activations of every layout and weights of every shape share a kernel,
    and 4- and 8-bit bounds arrive as tensors: no recompilation per layer."""
    torch._dynamo.reset()
    K._compiled.clear()
    torch._dynamo.utils.counters.clear()
    s = torch.tensor(0.3)
    for shape, cl in (((6, 5, 7, 3), True), ((6, 1, 7, 3), True), ((9, 4, 3, 3), False),
                      ((2, 16, 1, 1), True), ((3, 11, 5, 5), True)):
        for lo, hi in ((-8, 7), (0, 255)):
            x = _activation(shape, cl)
            K.run(K.lsq_forward, True, x, s, K.scalar(lo, x), K.scalar(hi, x))
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1


def test_a_model_with_fused_quantizers_trains_like_the_eager_one():
    torch.manual_seed(0)
    x = (torch.rand(2, 6, 32, 22) > 0.5).float()
    losses = []
    for fused in (False, True):
        torch.manual_seed(1)
        # NCHW: the layouts the flat views handle are covered above, and channels_last
        # convolutions with few channels crash some PyTorch CPU builds (runtime.to_channels_last).
        model = quantize_model(GaitBase(5, channels=(8, 8, 16, 16)), "lsq", 4, 4)
        model.eval()
        model(x)                          # LSQ initialisation
        model.train()
        set_fused(model, fused)
        set_k(model, 2.0)
        assert all(q.fused is fused for q in quantizers(model))
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        run = []
        for _ in range(3):
            out = model(x)
            loss = out["training_feat"]["softmax"]["logits"].float().pow(2).mean() + out["inference_feat"]["embeddings"].float().pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            run.append(loss.item())
        losses.append(run)
    assert losses[0][0] == pytest.approx(losses[1][0], rel=1e-6)
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    assert losses[1][-1] != losses[1][0]       # the fused model really trained


def test_a_kernel_that_cannot_compile_falls_back_to_eager_with_a_warning(monkeypatch):
    def broken_compile(fn, **kwargs):
        def raise_(*args):
            raise RuntimeError("no C++ compiler found")
        return raise_

    def my_kernel(x):
        return x * 2

    monkeypatch.setattr(torch, "compile", broken_compile)
    with pytest.warns(RuntimeWarning, match="my_kernel could not be compiled.*no C\\+\\+ compiler"):
        out = K.run(my_kernel, True, torch.ones(3))
    assert torch.equal(out, torch.full((3,), 2.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # warned once, then eager silently
        assert torch.equal(K.run(my_kernel, True, torch.ones(2)), torch.full((2,), 2.0))
    assert my_kernel in K._failed


def test_runtime_option_decides_where_quantizers_are_fused():
    from qgait_lab.errors import ConfigError
    from qgait_lab.training.config import load_config
    from qgait_lab.experiments.pipeline import quantize_for
    from qgait_lab.training.runtime import fuse_quantizers

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert fuse_quantizers("auto", cpu) and not fuse_quantizers("auto", cuda)
    assert fuse_quantizers("on", cuda) and not fuse_quantizers("off", cpu)
    cfg = load_config("tiny-cpu", ["runtime.fuse_quantizers=off"])
    model = quantize_for(cfg, GaitBase(5, channels=(8, 8, 16, 16)), "pact", cpu)
    assert not any(q.fused for q in quantizers(model))
    model = quantize_for(load_config("tiny-cpu"), GaitBase(5, channels=(8, 8, 16, 16)), "pact", cpu)
    assert all(q.fused for q in quantizers(model))
    with pytest.raises(ConfigError, match="runtime.fuse_quantizers"):
        load_config("tiny-cpu", ["runtime.fuse_quantizers=sometimes"])


def test_fused_outputs_keep_the_inputs_strides_size_one_dimensions_included():
    # A [c, 1, k, k] stem weight in channels_last differs from NCHW only in the stride of its size-1
    # dimension; the convolution reads that stride to pick its output layout.  A fused quantizer that
    # returned other strides made a channels_last model's quantized stem write NCHW, and every later
    # layer of the block then mixed layouts (a copy and slow adds in each step).
    w = torch.randn(16, 1, 3, 3).to(memory_format=torch.channels_last)
    s, lo, hi = torch.tensor(0.1), K.scalar(-8, w), K.scalar(7, w)
    out = K.run(K.lsq_forward, True, w, s, lo, hi)
    assert out.stride() == w.stride()
    torch.testing.assert_close(out, K.lsq_forward(w, s, lo, hi), rtol=0, atol=0)


def test_a_channels_last_quantized_gaitbase_keeps_every_activation_channels_last():
    from qgait_lab.training.runtime import to_channels_last

    model = to_channels_last(GaitBase(num_classes=4, channels=(16, 16, 32, 32), embed_dim=8))
    set_fused(quantize_model(model, "lsq", 4, 4), True)
    layouts = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(lambda mod, inp, out: layouts.append(
                out.is_contiguous(memory_format=torch.channels_last)))
    model(torch.rand(2, 4, 32, 22).round())
    assert layouts and all(layouts), layouts
