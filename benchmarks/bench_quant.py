"""How much does fake quantization cost a GaitBase training step?

Times one training step (forward + backward + SGD update) of GaitBase on
silhouette-shaped input for:

* full precision,
* LSQ w4a4 with the straight-through estimator (stage 1 of QGait),
* LSQ w4a4 with the soft theta_k gradient (stage 2 of QGait),
* LSQ w4a4 written "the common way" with detach tricks (a reference),

at two input sizes, in eager mode and under ``torch.compile``.  Every variant
runs in the same process, interleaved, and the script prints the ratios to full
precision measured side by side.  Absolute times depend on the machine; the
ratios are what to compare.

    python benchmarks/bench_quant.py                 # the default grid
    python benchmarks/bench_quant.py --frames 128 --sizes 32x22 --no-compile
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from qgait_lab.models import GaitBase
from qgait_lab.quant import LSQQuantizer, QuantizerOptions, initialize_quantizers, quantize_model
from qgait_lab.quant import functional as QF


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
        model = model.to(memory_format=torch.channels_last)
    if variant == "fp32":
        return model
    gradient = "soft" if variant == "lsq-soft" else "ste"
    quantize_model(model, "lsq", 4, 4, options=QuantizerOptions(gradient=gradient, k=3.0))
    if variant == "lsq-detach":
        for name, module in list(model.named_modules()):
            for slot in ("weight_quantizer", "act_quantizer"):
                q = getattr(module, slot, None)
                if isinstance(q, LSQQuantizer):
                    ref = DetachTrickLSQ(q.bits, is_weight=q.is_weight, signed=q.signed)
                    setattr(module, slot, ref)
    return model


def make_step(model, compiled: bool):
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    fwd = torch.compile(model) if compiled else model

    def step(x, y):
        out = fwd(x)
        # Cross-entropy on the BNNeck logits plus a term on the embeddings,
        # so that both heads of the network carry gradient, as in training.
        loss = F.cross_entropy(16 * out["logits"].mean(-1), y) + out["embeddings"].pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=512, help="frames per step (batch x length)")
    p.add_argument("--channels", type=int, nargs=4, default=[16, 32, 64, 128])
    p.add_argument("--sizes", nargs="+", default=["32x22", "64x44"])
    p.add_argument("--reps", type=int, default=7, help="timed steps per variant")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--contiguous", action="store_true",
                   help="NCHW weights instead of the trainer's channels_last layout")
    p.add_argument("--variants", nargs="+", default=["fp32", "lsq-ste", "lsq-soft", "lsq-detach"])
    args = p.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, GaitBase channels "
          f"{args.channels}, {args.frames} frames per step, LSQ w4a4, "
          f"{'NCHW' if args.contiguous else 'channels_last'} layout")
    modes = [False] if args.no_compile else [False, True]
    results = {}
    for size in args.sizes:
        h, w = (int(v) for v in size.split("x"))
        n = max(args.frames // 16, 1)
        x = (torch.rand(n, args.frames // n, h, w) > 0.5).float()
        y = torch.randint(0, 16, (n,))
        for compiled in modes:
            steps, warm = {}, {}
            for v in args.variants:
                model = build(v, args.channels, 16, not args.contiguous)
                initialize_quantizers(model, x)   # LSQ steps are set eagerly, before compiling
                step = make_step(model, compiled)
                t0 = time.perf_counter()
                step(x, y)
                step(x, y)
                warm[v] = time.perf_counter() - t0
                steps[v] = step
            times = {v: [] for v in args.variants}
            for _ in range(args.reps):        # interleave so that drift hits all variants
                for v in args.variants:
                    t0 = time.perf_counter()
                    steps[v](x, y)
                    times[v].append(time.perf_counter() - t0)
            for v in args.variants:
                results[(size, compiled, v)] = (statistics.median(times[v]), warm[v])
    print(f"\n{'input':<7}{'mode':<9}{'variant':<12}{'step (s)':>10}{'vs fp32':>9}"
          f"{'vs eager':>10}{'warm-up (s)':>13}")
    for (size, compiled, v), (t, warm) in results.items():
        base = results[(size, compiled, "fp32")][0]
        eager = results.get((size, False, v), (t,))[0]
        print(f"{size:<7}{'compile' if compiled else 'eager':<9}{v:<12}{t:>10.3f}{t / base:>8.2f}x"
              f"{eager / t:>9.2f}x{warm:>13.1f}")
    print("\n'vs fp32': step time over full precision in the same mode (goal at 64x44 on the "
          "trainer's path: <= 1.25x STE, <= 1.35x soft).\n'vs eager': how many times faster "
          "than the same variant in eager mode. 'warm-up': first two steps, incl. compilation.")


if __name__ == "__main__":
    main()
