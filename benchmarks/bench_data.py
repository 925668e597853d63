"""Can the input pipeline keep a GPU busy?  Training batches per second against DataLoader workers.

Builds the training batches of a preset exactly as the trainer does
(``TrainBatches`` through ``BatchStream``, ``data.num_workers`` worker
processes) and prints batches per second for each number of workers:

* ``casia-b``: 8 x 16 sequences x 30 frames (``fixed``), rotate + erase;
* ``gait3d``: 32 x 4 sequences of 10..50 frames (``unfixed``, packed),
  perspective + flip + rotate.

By default each preset reads a dataset generated here into a temporary folder,
in its dataset's layout (OpenGait's pkl files, written with
``qgait_lab.data.opengait.write_sequence``):

* CASIA-B: ``root/<id>/<type>/<view>/<view>.pkl``, types nm-01..06, bg-01/02,
  cl-01/02, the 11 views 000..180, ``--seq-frames`` (80) frames per sequence;
* Gait3D: ``root/<id>/camid<c>_videoid<v>/seq<n>/seq<n>.pkl``, 6 sequences per
  id of 40..120 frames (for ``--seq-frames`` 80),

both stored 64 x 64, as OpenGait's pretreatment writes them (its Gait3D README
names the folder ``Gait3D-sils-64-64-pkl``); the transform cuts them to 64 x 44.
The silhouettes are simple generated blobs (head, torso and two swinging legs,
binary 0/255), not SynthGait renderings: no step of the pipeline depends on
what the pixels show, only on the frame size and count, and blobs take seconds
to write.  ``--root`` (with ``--partition`` and one ``--preset``) measures a
real folder instead.

The goal (benchmarks/README.md): at least 22 batches/s of the ``casia-b``
batch, twice the H200's full-size GaitBase step rate (1 / 0.088 s), on a
16-core machine.  The script prints, for each number of workers, the batches
per second, the rate per worker, the CPU seconds a batch costs (in the
workers, and in the training process receiving it) and the rate of one
dedicated core that follows from it; then the projection to 16 cores: 15
workers (one core left to the training process) at the per-worker rate
measured here and at the dedicated-core rate.  Both assume linear scaling; on a
shared machine the measured rate is the pessimistic one.

    python benchmarks/bench_data.py                          # both presets, 0, 1, 2 workers
    python benchmarks/bench_data.py --preset casia-b --workers 0 1 2 4 --batches 40
    python benchmarks/bench_data.py --preset casia-b --root /data/CASIA-B-pkl \\
        --partition /data/CASIA-B.json
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from qgait_lab.data.dataset import GaitDataset
from qgait_lab.data.opengait import write_partition, write_sequence
from qgait_lab.training.config import load_config
from qgait_lab.experiments.pipeline import TrainBatches

H200_STEP_S = 0.088     # full-size GaitBase, CASIA-B batch, fp16 AMP, compiled (benchmarks/README.md)
GOAL = 2 / H200_STEP_S  # batches per second: twice the GPU's step rate
CORES = 16

CASIA_TYPES = [f"nm-{i:02d}" for i in range(1, 7)] + ["bg-01", "bg-02", "cl-01", "cl-02"]
CASIA_VIEWS = [f"{a:03d}" for a in range(0, 181, 18)]


def blob_walk(rng: np.random.Generator, frames: int, height: int = 64, width: int = 64) -> np.ndarray:
    """A binary walking blob ``uint8 [frames, height, width]``: head, torso, two swinging legs.

    Centred and scaled to the frame's height, as OpenGait's pretreatment stores a silhouette.
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cx = width / 2 + rng.uniform(-1.5, 1.5)
    period = rng.uniform(22, 30)
    phase = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.arange(frames) / period
    swing = rng.uniform(0.25, 0.45) * np.sin(phase)                 # leg angle, radians
    head = (xx - cx) ** 2 + (yy - 0.09 * height) ** 2 < (0.08 * height) ** 2
    torso = ((xx - cx) / (0.12 * width)) ** 2 + ((yy - 0.35 * height) / (0.2 * height)) ** 2 < 1
    hip = np.array([cx, 0.52 * height])
    length, thick = 0.46 * height, 0.055 * width
    mask = np.broadcast_to(head | torso, (frames, height, width)).copy()
    for sign in (1, -1):    # each leg: the points within `thick` of the hip-foot segment
        dx = (length * np.sin(sign * swing))[:, None, None]
        dy = (length * np.cos(swing))[:, None, None]
        s = np.clip(((xx - hip[0]) * dx + (yy - hip[1]) * dy) / (dx * dx + dy * dy), 0, 1)
        mask |= (xx - hip[0] - s * dx) ** 2 + (yy - hip[1] - s * dy) ** 2 < thick ** 2
    return mask.astype(np.uint8) * np.uint8(255)


class WalkPool:
    """A few generated walks; each sequence written is a random window of one (fast to generate)."""

    def __init__(self, rng: np.random.Generator, longest: int, height: int, width: int, size: int = 16):
        self.rng = rng
        self.walks = [blob_walk(rng, 2 * longest, height, width) for _ in range(size)]

    def sequence(self, frames: int) -> np.ndarray:
        walk = self.walks[int(self.rng.integers(len(self.walks)))]
        start = int(self.rng.integers(0, len(walk) - frames + 1))
        return walk[start:start + frames]


def make_casia_b(root: Path, ids: int, frames: int, seed: int = 0) -> tuple[Path, Path]:
    """A CASIA-B-layout folder: every id has the 10 types x 11 views, frames stored 64 x 64."""
    pool = WalkPool(np.random.default_rng(seed), frames, 64, 64)
    labels = [f"{i + 1:03d}" for i in range(ids)]
    for label in labels:
        for seq_type in CASIA_TYPES:
            for view in CASIA_VIEWS:
                write_sequence(root, label, seq_type, view, pool.sequence(frames), frame_size=(64, 64))
    return root, write_partition(root / "partition.json", labels, [])


def make_gait3d(root: Path, ids: int, frames: int, seed: int = 0) -> tuple[Path, Path]:
    """A Gait3D-layout folder: each id has 6 sequences ``camid<c>_videoid<v>/seq<n>``, of
    frames/2 .. 3 frames/2 frames stored 64 x 64."""
    rng = np.random.default_rng(seed)
    pool = WalkPool(rng, frames * 3 // 2, 64, 64)
    labels = [f"{i + 1:04d}" for i in range(ids)]
    for label in labels:
        for s in range(6):
            seq_type, view = f"camid{int(rng.integers(0, 40))}_videoid{s // 2 + 1}", f"seq{s % 2}"
            length = int(rng.integers(max(1, frames // 2), frames * 3 // 2 + 1))
            write_sequence(root, label, seq_type, view, pool.sequence(length), frame_size=(64, 64))
    return root, write_partition(root / "partition.json", labels, [])


def _children_cpu() -> float:
    """CPU seconds of this process's finished children (DataLoader workers count once joined)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(cfg, dataset: GaitDataset, workers: int, count: int, warmup: int) -> dict:
    """Batches/s over ``count`` batches after ``warmup`` (at least one per worker), and CPU per batch.

    Wall-clock rates depend on what else the machine runs; the CPU seconds a
    batch costs (in the workers, their start included, and in this process
    receiving it) do much less,
    so they give the rate of one dedicated core: ``1 / cpu_per_batch``.  The
    product ``rate * cpu_per_batch`` is about how many cores the builders got:
    on a shared machine two workers may get one core between them.
    """
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, num_workers=workers))
    batches = TrainBatches(cfg, dataset, torch.device("cpu"))
    warmup = max(warmup, workers)
    t0, main0, child0 = time.perf_counter(), time.process_time(), _children_cpu()
    with batches.stream(0, warmup + count) as stream:
        for i in range(warmup):
            stream(i)
        first = time.perf_counter() - t0
        start = time.perf_counter()
        for i in range(warmup, warmup + count):
            stream(i)
        seconds = time.perf_counter() - start
    # Closing the stream joined the workers, so their CPU time is now counted.
    main_cpu = (time.process_time() - main0) / (warmup + count)
    worker_cpu = (_children_cpu() - child0) / (warmup + count)
    build_cpu = worker_cpu if workers else main_cpu
    return {"workers": workers, "rate": count / seconds, "warmup_s": first,
            "build_cpu": build_cpu, "main_cpu": main_cpu}


def bench(preset: str, args: argparse.Namespace, tmp: Path) -> list[dict]:
    cfg = load_config(preset, args.set, budget="full")
    d = cfg.data
    if args.root:
        root, partition = Path(args.root), Path(args.partition) if args.partition else None
    else:
        make = make_casia_b if preset == "casia-b" else make_gait3d
        ids = args.ids or (d.batch_p if preset == "casia-b" else d.batch_p + 8)
        t0 = time.perf_counter()
        root, partition = make(tmp / preset, ids, args.seq_frames)
        print(f"# {preset}: generated {ids} ids of blob silhouettes in {time.perf_counter() - t0:.1f} s")
    mb = d.cache if args.cache is None else args.cache

    def datasets() -> GaitDataset:
        """A fresh dataset (cold cache) for every setting: forked workers would inherit a warm one."""
        return GaitDataset(root, partition, "train", cache=int(mb * 2 ** 20), frame_size=None)

    first = datasets()
    frames = (f"{d.frames} frames" if d.frames_mode == "fixed" else f"{d.frames_min}..{d.frames_max} frames")
    print(f"# {preset}: {len(first)} sequences, batch {d.batch_p}x{d.batch_k} x {frames} ({d.frames_mode}), "
          f"augment {'+'.join(d.augment) or 'none'} p={d.augment_prob}, cache {mb:g} MB per process")
    rows = []
    for workers in args.workers:
        r = measure(cfg, datasets(), workers, args.batches, args.warmup)
        rows.append(r)
        per = r["rate"] / max(1, workers)
        print(f"{preset:8s} {workers:7d} {r['rate']:9.2f} {per:10.2f} {r['build_cpu']:12.3f} "
              f"{r['main_cpu']:11.3f} {1 / r['build_cpu']:10.2f} {r['rate'] * r['build_cpu']:10.2f} "
              f"{r['warmup_s']:9.2f}")
    return rows


def summarize(preset: str, rows: list[dict]) -> None:
    """Per-worker rates and the 16-core projection (15 workers, one core left to training)."""
    with_workers = [r for r in rows if r["workers"] > 0]
    if not with_workers:
        return
    one = min(with_workers, key=lambda r: r["workers"])
    wall = one["rate"] / one["workers"]
    core = 1 / one["build_cpu"]         # one dedicated core
    receive = 1 / max(one["main_cpu"], 1e-9)
    projected = {"wall": min(wall * (CORES - 1), receive), "cpu": min(core * (CORES - 1), receive)}
    line = (f"# {preset}: per worker {wall:.2f} batches/s measured here ({one['workers']} worker(s), "
            f"shared cores), {core:.2f} per dedicated core (CPU time); the training process receives "
            f"at most {receive:.0f}/s.  On {CORES} cores, {CORES - 1} workers: "
            f"{projected['wall']:.1f} (from the measured rate) to {projected['cpu']:.1f} batches/s "
            f"(from CPU time)")
    if preset == "casia-b":
        verdict = "met" if projected["wall"] >= GOAL else ("met on CPU time only" if projected["cpu"] >= GOAL
                                                           else "NOT met")
        line += (f"; goal {GOAL:.1f}/s {verdict}: it needs {math.ceil(GOAL / wall)} workers at the "
                 f"measured rate, {math.ceil(GOAL / core)} at the dedicated-core rate")
    print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", nargs="+", default=["casia-b", "gait3d"], choices=["casia-b", "gait3d"])
    ap.add_argument("--workers", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--batches", type=int, default=20, help="timed batches per setting")
    ap.add_argument("--warmup", type=int, default=2, help="untimed batches first (at least one per worker)")
    ap.add_argument("--ids", type=int, default=None, help="generated ids (default: just enough for P)")
    ap.add_argument("--seq-frames", type=int, default=80, help="frames per generated sequence")
    ap.add_argument("--cache", type=float, default=None, help="cache MB per process (default: data.cache)")
    ap.add_argument("--root", default=None, help="a real dataset folder instead of the generated one")
    ap.add_argument("--partition", default=None, help="its partition json")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="config override, as for qgait-lab train (e.g. data.batch_k=4)")
    args = ap.parse_args()
    if args.root and len(args.preset) != 1:
        ap.error("--root needs exactly one --preset (the one whose batch to build)")
    torch.set_num_threads(1)    # like each worker: the in-process row is one thread too
    print(f"# torch {torch.__version__}, {os.cpu_count()} CPUs visible; goal {GOAL:.1f} casia-b batches/s")
    print(f"{'preset':8s} {'workers':>7s} {'batches/s':>9s} {'per worker':>10s} {'build CPU s':>12s} "
          f"{'main CPU s':>11s} {'per core':>10s} {'cores used':>10s} {'warm-up s':>9s}")
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        results = {p: bench(p, args, Path(tmp)) for p in args.preset}
    for preset, rows in results.items():
        summarize(preset, rows)


if __name__ == "__main__":
    main()
