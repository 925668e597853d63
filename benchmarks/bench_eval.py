"""How fast does evaluation embed a test set?  Sequences per second, the old path against the new one.

Embeds the test split of SynthGait written at CASIA-B's size (50 test
identities x 10 sequence types x 11 views = 5 500 sequences, as CASIA-B's
5 485; ``--frames`` per sequence) with ``evaluation.extract_features`` three ways,
interleaved in one process:

* ``as-trained``: the old path: the model as training leaves it
  (``fold=False``), BatchNorm after every convolution, fake-quantized weights
  recomputed at every batch, 16 sequences per batch (``16 x --frames`` frames);
* ``folded``: an inference copy (``models.inference``): BatchNorm folded into
  the convolutions, quantized weights computed once; the same batches;
* ``folded+packed``: the default: the inference copy, with batches filled up
  to the preset's ``data.eval_batch_frames`` frames;

for the full-precision model and for LSQ w4a4 (calibrated on a training batch,
as stage 1 starts).  It prints sequences per second, the ratio of each path to
``as-trained``, and the largest difference from its CASIA-B metrics
(the goal: identical to 1e-6).  The model is the preset's, ``tiny-cpu``'s
quarter-width GaitBase at 32 x 22, briefly trained so its BatchNorm statistics
are its data's.  Absolute rates depend on the machine; the ratio is what to
compare.

    python benchmarks/bench_eval.py                       # CASIA-B's size (generates SynthGait once)
    python benchmarks/bench_eval.py --ids 4 --views 018 090 --reps 1   # a quick look
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

from qgait_lab.data.synth import ALL_VIEWS, SynthConfig
from qgait_lab.evaluation import evaluate_features, extract_features
from qgait_lab.experiments.pipeline import Experiment, dataset_layout, eval_transform, quantize_for
from qgait_lab.training.config import load_config

#: path -> (fold, frames per batch; None: the preset's data.eval_batch_frames)
OLD_BATCH_SEQUENCES = 16


def paths(frames: int, batch_frames: int) -> dict[str, tuple[bool, int]]:
    old = OLD_BATCH_SEQUENCES * frames
    return {"as-trained": (False, old), "folded": (True, old), "folded+packed": (True, batch_frames)}


def models(exp: Experiment) -> dict[str, torch.nn.Module]:
    """The preset's float model, trained briefly, and an LSQ w4a4 copy calibrated on one batch."""
    fp = exp.run("fp").model.eval()
    lsq = quantize_for(exp.cfg, exp.build_model(), "lsq", exp.device)     # as the trainer builds it
    lsq.load_state_dict(fp.state_dict(), strict=False)
    batch = exp.batches(0)
    lsq.train()
    with torch.no_grad():
        lsq(batch.sils, batch.seqL)
    return {"fp32": fp, "lsq-w4a4": lsq.eval()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ids", type=int, default=50, help="test identities (CASIA-B: 50)")
    p.add_argument("--views", nargs="+", default=list(ALL_VIEWS), help="views (CASIA-B's 11)")
    p.add_argument("--frames", type=int, default=SynthConfig.frames, help="frames per sequence")
    p.add_argument("--reps", type=int, default=2, help="timed passes over the test set per path")
    p.add_argument("--batch-frames", type=int, default=None,
                   help="frames per batch of folded+packed (default: the preset's data.eval_batch_frames)")
    p.add_argument("--iterations", type=int, default=30, help="training iterations of the float model")
    args = p.parse_args()
    # Eight training identities: enough for the preset's batch of 8 x 4 sequences.
    synth = {"n_ids": args.ids + 8, "n_train": 8, "frames": args.frames, "views": args.views}
    runs = tempfile.mkdtemp(prefix="bench-eval-")
    cfg = load_config("tiny-cpu", [f"data.synth={synth}", f"full_precision.iterations={args.iterations}",
                                   "runtime.progress=false", "runtime.save_every=0", "quant.bits=4",
                                   f"runtime.runs_dir={runs}", "name=bench-eval"])
    exp = Experiment(cfg)
    test, transform = exp.test_set, eval_transform(cfg)
    batch = args.batch_frames or cfg.data.eval_batch_frames
    ways = paths(args.frames, batch)
    protocol = dataset_layout(cfg).protocol
    print(f"# {len(test)} test sequences of {args.frames} frames, {torch.get_num_threads()} threads, "
          f"old batches {ways['as-trained'][1]} frames, packed {batch} frames")
    print(f"{'model':<10} {'path':<14} {'seq/s':>8} {'ratio':>7} {'max |metric diff|':>18}")
    for name, model in models(exp).items():
        seconds = {path: [] for path in ways}
        metrics = {}
        for _ in range(args.reps):
            for path, (fold, frames) in ways.items():
                start = time.perf_counter()
                feats = extract_features(model, test, transform, exp.device, batch_frames=frames, fold=fold)
                seconds[path].append(time.perf_counter() - start)
                metrics[path] = evaluate_features(feats, test, protocol)
        base = min(seconds["as-trained"])
        for path in ways:
            best = min(seconds[path])
            diff = max(abs(metrics[path][k] - metrics["as-trained"][k]) for k in metrics[path])
            print(f"{name:<10} {path:<14} {len(test) / best:8.1f} {base / best:6.2f}x {diff:18.2e}")


if __name__ == "__main__":
    main()
