"""How much does fake quantization cost a GaitBase training step?

Times one training step (forward + backward + SGD update) of GaitBase on
silhouette-shaped input for:

* full precision,
* LSQ w4a4 with the straight-through estimator (stage 1 of QGait),
* LSQ w4a4 with the soft theta_k gradient (stage 2 of QGait),
* LSQ w4a4 written "the common way" with detach tricks (a reference),
* ``lsq-ste-fused`` / ``lsq-soft-fused``: the same two LSQ variants with each
  quantizer's arithmetic compiled into one kernel (``runtime.fuse_quantizers``,
  the trainer's default; see ``qgait_lab.quant.kernels``),
* ``...-copy`` (any LSQ variant): each layer saves its fake-quantized input for
  the backward pass instead of recomputing it there from the float input (the
  trainer recomputes; see ``qgait_lab.quant.recompute``),

at two input sizes, in eager mode and under ``torch.compile``.  Every variant
runs in the same process, interleaved, and the script prints the ratios to full
precision measured side by side.  Absolute times depend on the machine; the
ratios are what to compare.

    python benchmarks/bench_quant.py                 # the default grid
    python benchmarks/bench_quant.py --frames 128 --sizes 32x22 --no-compile
    # the paper's full-size GaitBase on a GPU, CASIA-B batch (8 x 16 sequences of 30 frames), AMP:
    python benchmarks/bench_quant.py --device cuda --amp --channels 64 128 256 512 \
        --sizes 64x44 --frames 3840 --seq-len 30 --classes 74
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from qgait_lab.models import GaitBase
from qgait_lab.quant import (LSQQuantizer, QuantizerOptions, initialize_quantizers, quantize_model,
                             set_fused)
from qgait_lab.quant import functional as QF
from qgait_lab.quant.modules import QuantizedLayer
from qgait_lab.training.runtime import to_channels_last


class DetachTrickLSQ(LSQQuantizer):
    """LSQ as most public code writes it: grad_scale + round_ste, autograd records every op."""

    def forward(self, v):
        if not self.initialized:
            self.initialize(v)
        lo, hi = self.bounds
        s = QF.grad_scale(self._step_view(v), self.grad_scale_factor(v))
        return QF.round_ste(torch.clamp(v / s, lo, hi)) * s


def build(variant: str, channels, classes: int, channels_last: bool) -> torch.nn.Module:
    model = GaitBase(classes, channels=channels)
    if channels_last:       # the trainer's layout (runtime.channels_last)
        model = to_channels_last(model)
    if variant == "fp32":
        return model
    gradient = "soft" if variant.startswith("lsq-soft") else "ste"
    quantize_model(model, "lsq", 4, 4, options=QuantizerOptions(gradient=gradient, k=3.0))
    set_fused(model, "-fused" in variant)
    for module in model.modules():
        if isinstance(module, QuantizedLayer):
            module.recompute_input = not variant.endswith("-copy")
    if variant.startswith("lsq-detach"):
        for name, module in list(model.named_modules()):
            for slot in ("weight_quantizer", "act_quantizer"):
                q = getattr(module, slot, None)
                if isinstance(q, LSQQuantizer):
                    ref = DetachTrickLSQ(q.bits, is_weight=q.is_weight, signed=q.signed)
                    setattr(module, slot, ref)
    return model


def make_step(model, compiled: bool, amp: bool):
    """One training step; with ``amp`` the trainer's fp16 autocast and GradScaler (CUDA)."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    fwd = torch.compile(model) if compiled else model
    scaler = torch.amp.GradScaler("cuda", enabled=amp)

    def step(x, y):
        with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            out = fwd(x)
            # Cross-entropy on the BNNeck logits plus a term on the embeddings,
            # so that both heads of the network carry gradient, as in training.
            loss = (F.cross_entropy(16 * out["training_feat"]["softmax"]["logits"].float().mean(-1), y)
                    + out["inference_feat"]["embeddings"].float().pow(2).mean())
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return loss

    return step


def saved_mib(step, model, x, y) -> float:
    """MiB that one step's forward keeps for its backward, parameters excluded.

    Counted with autograd's saved-tensor hooks, each storage once: what a step
    holds at the end of its forward besides the weights, the bulk of its peak
    memory, measured the same way on any device (the CPU allocator keeps no
    high-water mark).
    """
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    held: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            held[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step(x, y)
    return sum(held.values()) / 2 ** 20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=512, help="frames per step (batch x length)")
    p.add_argument("--channels", type=int, nargs=4, default=[16, 32, 64, 128])
    p.add_argument("--sizes", nargs="+", default=["32x22", "64x44"])
    p.add_argument("--reps", type=int, default=7, help="timed steps per variant")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--contiguous", action="store_true",
                   help="NCHW weights instead of the trainer's channels_last layout")
    p.add_argument("--variants", nargs="+", default=["fp32", "lsq-ste", "lsq-soft", "lsq-ste-fused",
                                                     "lsq-soft-fused", "lsq-ste-fused-copy",
                                                     "lsq-soft-fused-copy", "lsq-detach"])
    p.add_argument("--seq-len", type=int, default=16, help="frames per sequence")
    p.add_argument("--classes", type=int, default=16, help="identities in the classifier")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--amp", action="store_true", help="fp16 autocast + GradScaler (CUDA only)")
    args = p.parse_args()
    device = torch.device(args.device)
    if args.amp and device.type != "cuda":
        p.error("--amp: mixed precision is used on CUDA only (pass --device cuda)")
    torch.manual_seed(0)
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"{torch.get_num_threads()} threads")
    print(f"torch {torch.__version__}, {where}, GaitBase channels {args.channels}, "
          f"{args.frames} frames per step ({args.seq_len} per sequence), LSQ w4a4, "
          f"{'NCHW' if args.contiguous else 'channels_last'} layout"
          f"{', fp16 AMP' if args.amp else ''}")

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    modes = [False] if args.no_compile else [False, True]
    results = {}
    for size in args.sizes:
        h, w = (int(v) for v in size.split("x"))
        n = max(args.frames // args.seq_len, 1)
        x = (torch.rand(n, args.frames // n, h, w) > 0.5).float().to(device)
        y = torch.randint(0, args.classes, (n,)).to(device)
        for compiled in modes:
            steps, warm, memory, saved = {}, {}, {}, {}
            for v in args.variants:
                model = build(v, args.channels, args.classes, not args.contiguous).to(device)
                initialize_quantizers(model, x)   # LSQ steps are set eagerly, before compiling
                step = make_step(model, compiled, args.amp)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                t0 = time.perf_counter()
                step(x, y)
                step(x, y)
                sync()
                warm[v] = time.perf_counter() - t0
                memory[v] = (torch.cuda.max_memory_allocated(device) / 2 ** 30
                             if device.type == "cuda" else float("nan"))
                steps[v] = step
                saved[v] = saved_mib(step, model, x, y) if not compiled else float("nan")
            times = {v: [] for v in args.variants}
            for _ in range(args.reps):        # interleave so that drift hits all variants
                for v in args.variants:
                    sync()
                    t0 = time.perf_counter()
                    steps[v](x, y)
                    sync()
                    times[v].append(time.perf_counter() - t0)
            for v in args.variants:
                results[(size, compiled, v)] = (statistics.median(times[v]), warm[v], memory[v], saved[v])
    print(f"\n{'input':<7}{'mode':<9}{'variant':<20}{'step (s)':>10}{'vs fp32':>9}"
          f"{'vs eager':>10}{'warm-up (s)':>13}{'peak GiB':>10}{'saved MiB':>11}{'vs fp32':>9}")
    for (size, compiled, v), (t, warm, mem, kept) in results.items():
        base = results[(size, compiled, "fp32")][0]
        base_kept = results[(size, compiled, "fp32")][3]
        eager = results.get((size, False, v), (t,))[0]
        print(f"{size:<7}{'compile' if compiled else 'eager':<9}{v:<20}{t:>10.3f}{t / base:>8.2f}x"
              f"{eager / t:>9.2f}x{warm:>13.1f}{mem:>10.1f}{kept:>11.1f}{kept / base_kept:>8.2f}x")
    print("\n'vs fp32': step time over full precision in the same mode (goal at 64x44 on the "
          "trainer's path: <= 1.25x STE, <= 1.35x soft).\n'vs eager': how many times faster "
          "than the same variant in eager mode. 'warm-up': first two steps, incl. compilation.\n"
          "'peak GiB': the CUDA allocator's high-water mark of the first steps (nan on a CPU). "
          "'saved MiB': what the forward keeps for the backward, weights excluded (eager only; "
          "goal <= 1.3x fp32)."
          + ("\nWith --amp every variant, 'fp32' (no fake quantization) included, runs under fp16 "
             "autocast." if args.amp else ""))


if __name__ == "__main__":
    main()
