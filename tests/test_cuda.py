"""The CUDA path: fake quantization on the GPU, fp16 autocast (AMP) and short training runs.

These run only where a CUDA device is present (CI has none; they are run on a
GPU machine by hand, see benchmarks/README.md).  Everything else in the suite
checks the same code on the CPU.
"""
import json

import pytest
import torch

from qgait_lab.models import GaitBase
from qgait_lab.quant import LSQQuantizer, initialize_quantizers, quantize_model
from qgait_lab.quant.convert import QuantizerOptions
from qgait_lab.models.checkpoint import load_checkpoint
from qgait_lab.experiments.pipeline import Experiment

from test_training import tiny_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("gradient", ["ste", "soft"])
@pytest.mark.parametrize("signed", [True, False])
def test_lsq_on_cuda_matches_cpu(gradient, signed):
    g = torch.Generator().manual_seed(0)
    v = torch.randn(64, 32, 9, 9, generator=g) + (0.0 if signed else 2.0)
    v = v if signed else v.clamp_min(0)
    upstream = torch.randn(v.shape, generator=g)
    results = []
    for device in ("cpu", "cuda"):
        q = LSQQuantizer(4, is_weight=False, signed=signed, gradient=gradient, k=3.0).to(device)
        x = v.to(device).clone().requires_grad_()
        out = q(x)
        out.backward(upstream.to(device))
        results.append((out.cpu(), x.grad.cpu(), q.step.grad.cpu()))
    (out_c, gx_c, gs_c), (out_g, gx_g, gs_g) = results
    # The initial step is a mean, reduced in another order on the GPU (1 ulp apart):
    # values agree to float precision, and codes differ only at rounding boundaries.
    off = (out_c - out_g).abs() > 1e-5 * out_c.abs().clamp_min(1e-3)
    assert off.float().mean() < 1e-4
    assert torch.allclose(gx_c, gx_g, atol=1e-5)
    assert torch.allclose(gs_c, gs_g, rtol=1e-3)


def _quantized_gaitbase(gradient: str) -> torch.nn.Module:
    model = GaitBase(8, channels=(16, 32, 64, 128))
    quantize_model(model, "lsq", 4, 4, options=QuantizerOptions(gradient=gradient, k=3.0))
    return model.cuda()


def _data():
    # Each identity its own silhouette density, so that the identities can be told apart.
    torch.manual_seed(0)
    density = torch.linspace(0.15, 0.85, 8, device="cuda").repeat(2).view(16, 1, 1, 1)
    x = (torch.rand(16, 20, 64, 44, device="cuda") < density).float()
    return x, torch.arange(8, device="cuda").repeat(2)


def _loss(model, x, labels):
    return torch.nn.functional.cross_entropy(16 * model(x)["training_feat"]["softmax"]["logits"].float().mean(-1), labels)


def _trained_float_model() -> torch.nn.Module:
    """QAT starts from a trained model.  From a random initialisation the 4-bit part
    features of such a batch collapse to one code (BatchNorm then sees zero variance)
    and the gradients are 1000x larger than a float model's: a degenerate start."""
    x, labels = _data()
    torch.manual_seed(0)
    model = GaitBase(8, channels=(16, 32, 64, 128)).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(20):
        opt.zero_grad(set_to_none=True)
        _loss(model, x, labels).backward()
        opt.step()
    return model


def _amp_training(model: torch.nn.Module, steps: int = 12):
    """``steps`` AMP iterations; returns (steps the GradScaler skipped, last loss, last grads)."""
    x, labels = _data()
    initialize_quantizers(model, x)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cuda")
    skipped = 0
    for _ in range(steps):
        with torch.autocast("cuda", dtype=torch.float16):
            loss = _loss(model, x, labels)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scale = scaler.get_scale()
        scaler.step(opt)
        scaler.update()
        skipped += scaler.get_scale() < scale       # an inf/NaN gradient halves the scale
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    return skipped, loss, grads


@pytest.mark.parametrize("gradient", ["ste", "soft"])
def test_quantized_gaitbase_trains_under_fp16_autocast(gradient):
    """AMP starts with a loss scale of 2^16 and halves it after every overflow, so a
    few skipped steps are normal; fake quantization must not add to them (the step
    gradient's half-precision sum used to overflow at any useful scale)."""
    start = _trained_float_model().state_dict()
    float_model = GaitBase(8, channels=(16, 32, 64, 128)).cuda()
    float_model.load_state_dict(start)
    float_skipped, _, _ = _amp_training(float_model)
    model = GaitBase(8, channels=(16, 32, 64, 128))
    model.load_state_dict(start)
    quantize_model(model, "lsq", 4, 4, options=QuantizerOptions(gradient=gradient, k=3.0))
    skipped, loss, grads = _amp_training(model.cuda())
    bad = [n for n, g in grads.items() if not torch.isfinite(g).all()]
    assert skipped <= float_skipped + 1, (skipped, float_skipped, bad[:5])
    assert torch.isfinite(loss) and not bad
    steps = [g for n, g in grads.items() if n.endswith(".step")]
    assert steps and sum(float(g.abs().sum()) for g in steps) > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("method", ["lsq", "pact", "dorefa"])
def test_fused_kernels_on_cuda_match_eager(method, dtype):
    """runtime.fuse_quantizers=on compiles the quantizers' arithmetic with Triton on CUDA.
    Under fp16 the compiled kernel computes v / s in float32 before rounding (eager
    rounds it to half first), so a few codes on rounding boundaries differ."""
    from qgait_lab.quant import set_fused

    # Continuous input: a binary silhouette through PACT's first layer (alpha 10, 4 bits)
    # lands exactly on a rounding tie (1 / (10/15) = 1.5), where eager and Triton
    # division can round apart and every later layer then differs.
    torch.manual_seed(0)
    x = torch.rand(6, 20, 64, 44, device="cuda")
    results = []
    for fused in (False, True):
        torch.manual_seed(1)
        model = quantize_model(GaitBase(8, channels=(16, 32, 64, 128)), method, 4, 4,
                               options=QuantizerOptions(gradient="soft", k=2.0)).cuda()
        model = model.to(memory_format=torch.channels_last)
        initialize_quantizers(model, x)
        set_fused(model, fused)
        with torch.autocast("cuda", dtype=torch.float16, enabled=dtype == torch.float16):
            out = model(x)
        loss = out["inference_feat"]["embeddings"].float().pow(2).mean()
        loss.backward()
        grads = torch.cat([p.grad.float().flatten() for p in model.parameters() if p.grad is not None])
        results.append((out["inference_feat"]["embeddings"].detach().float(), grads))
    (emb_e, g_e), (emb_f, g_f) = results
    tol = 2e-2 if dtype == torch.float16 else 1e-5
    assert (emb_f - emb_e).abs().max() <= tol * emb_e.abs().max()
    assert torch.isfinite(g_f).all()
    assert torch.nn.functional.cosine_similarity(g_f, g_e, dim=0) > (0.99 if dtype == torch.float16
                                                                     else 0.999)


def test_activation_quantizer_output_lies_on_its_grid_under_autocast():
    model = _quantized_gaitbase("ste").eval()
    x = (torch.rand(4, 10, 64, 44, device="cuda") > 0.5).float()
    initialize_quantizers(model, x)
    seen = {}

    def hook(module, inputs, output):
        seen[module] = output.detach().float()

    quantizers = [m.act_quantizer for m in model.modules() if isinstance(getattr(m, "act_quantizer", None), LSQQuantizer)]
    handles = [q.register_forward_hook(hook) for q in quantizers]
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
        model(x)
    for h in handles:
        h.remove()
    assert len(seen) == len(quantizers) > 0
    for q, out in seen.items():
        codes = out / q.step.detach().float()
        assert torch.allclose(codes, codes.round(), atol=2e-2), "off the quantization grid"
        assert len(torch.unique(codes.round())) <= 2 ** q.bits


# Long enough for the float model to separate the identities before QAT starts
# (see _trained_float_model) and for the GradScaler to settle its scale.
LONGER = ["full_precision.iterations=40", "stage1.iterations=6", "stage2.iterations=6",
          "runtime.save_every=10", "runtime.log_every=2"]


@pytest.fixture(scope="module")
def gpu_workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("cuda-train")


def _check_run(result):
    for key in ("rank1", "mAP", "NM", "BG", "CL"):
        assert 0.0 <= result.metrics[key] <= 100.0
    for stage in result.stages:
        records = [json.loads(line) for line in (stage.run_dir / "metrics.jsonl").read_text().splitlines()]
        losses = [r["loss"] for r in records if r["kind"] == "train"]
        assert losses and all(torch.isfinite(torch.tensor(losses)))
    # Every stage really updated the weights: a GradScaler that meets an inf/NaN
    # gradient at every step skips them all and training silently stands still.
    states = [load_checkpoint(st.run_dir / "checkpoints" / "last.pt", "cpu")["model"] for st in result.stages]
    for before, after in zip(states, states[1:]):
        conv = "Backbone.forward_block.layer1.0.conv1.weight"
        assert not torch.equal(before[conv], after[conv])
    # A GPU checkpoint loads on a CPU-only machine.
    assert all(t.device.type == "cpu" for t in states[-1].values() if torch.is_tensor(t))
    assert not any(k.startswith("_orig_mod.") for k in states[-1])


@pytest.mark.parametrize("method", ["fp", "lsq", "qgait"])
def test_each_method_trains_on_cuda_with_amp(gpu_workdir, method):
    cfg = tiny_config(gpu_workdir, f"method={method}", "runtime.device=cuda", "runtime.amp=true",
                      "runtime.compile=off", *LONGER)
    _check_run(Experiment(cfg).run())


def test_qgait_trains_compiled_on_cuda(tmp_path):
    """The paper presets' runtime: device auto, AMP on, torch.compile auto (on for CUDA)."""
    cfg = tiny_config(tmp_path, "method=qgait", "runtime.device=auto", "runtime.amp=true",
                      "runtime.compile=auto", *LONGER)
    _check_run(Experiment(cfg).run())


def test_torchrun_uses_nccl_on_the_gpu(tmp_path):
    """One GPU process under torchrun: the NCCL process group, DDP wrapper and rank-0 writing."""
    import os
    import subprocess

    from test_distributed import ARGS, _torchrun

    env = {**os.environ, "QGAIT_DATA_DIR": str(tmp_path / "data")}
    cmd = _torchrun(1) + ["-m", "qgait_lab.cli", *ARGS, "--set", "runtime.device=auto",
                          "--set", f"runtime.runs_dir={tmp_path / 'runs'}"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (metrics,) = (tmp_path / "runs").glob("ddp/fp-*/metrics.jsonl")
    assert sum(json.loads(l)["kind"] == "train" for l in metrics.read_text().splitlines()) == 3
    state = load_checkpoint(next((tmp_path / "runs").glob("ddp/fp-*/checkpoints/last.pt")))
    assert not any(k.startswith("module.") for k in state["model"])
