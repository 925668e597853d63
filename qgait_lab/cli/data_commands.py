"""The ``synth`` and ``pretreat`` subcommands of ``qgait-lab``.

``qgait_lab.cli`` wires them in with::

    add_synth_parser(subparsers)      # then args.func(args) runs it
    add_pretreat_parser(subparsers)

Each ``add_*`` sets ``func`` on its parser through ``set_defaults``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

__all__ = ["add_pretreat_parser", "add_synth_parser", "run_pretreat", "run_synth"]


def _split_list(text: str) -> tuple[str, ...]:
    return tuple(item for item in text.replace(",", " ").split() if item)


def add_synth_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``synth``: generate a SynthGait dataset."""
    from qgait_lab.data.synth import SynthConfig

    d = SynthConfig()
    p = subparsers.add_parser(
        "synth",
        help="generate a SynthGait dataset in OpenGait's layout",
        description="Generate a synthetic gait dataset (OpenGait pkl layout + partition.json). "
        "Without --out the dataset goes to the cache ($QGAIT_DATA_DIR or ~/.cache/qgait-lab) "
        "and is reused when it already exists.",
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (default: the cache)")
    p.add_argument("--ids", type=int, default=d.n_ids, help=f"number of subjects (default {d.n_ids})")
    p.add_argument("--train-ids", type=int, default=None,
                   help="subjects in TRAIN_SET (default: 60%% of --ids, i.e. 30 of 50)")
    p.add_argument("--views", type=_split_list, default=d.views,
                   help=f"views, comma-separated (default {','.join(d.views)})")
    p.add_argument("--types", type=_split_list, default=None,
                   help="only these sequence types, e.g. nm-01,nm-05,bg-01,cl-01 (default: all 10)")
    p.add_argument("--frames", type=int, default=d.frames, help=f"frames per sequence (default {d.frames})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"master seed (default {d.seed})")
    p.add_argument("--noise", type=float, default=d.noise, help=f"segmentation-noise rate (default {d.noise})")
    p.add_argument("--jitter", type=float, default=d.jitter, help=f"per-walk variation scale (default {d.jitter})")
    p.add_argument("--render-height", type=int, default=d.render_height,
                   help=f"raw rendering size in pixels per 1.7 m (default {d.render_height})")
    p.add_argument("--workers", type=int, default=2, help="processes (default 2; output does not depend on it)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.add_argument("--gei", action="store_true", help="print the GEI baseline table of the test split afterwards")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_synth)
    return p


def run_synth(args: argparse.Namespace) -> int:
    """Run ``synth``; returns the exit status."""
    from qgait_lab.data.synth import SynthConfig, ensure_synthgait, generate_synthgait

    n_train = args.train_ids if args.train_ids is not None else round(0.6 * args.ids)
    config = SynthConfig(
        n_ids=args.ids,
        n_train=n_train,
        views=tuple(args.views),
        frames=args.frames,
        types=tuple(args.types) if args.types else None,
        seed=args.seed,
        noise=args.noise,
        jitter=args.jitter,
        render_height=args.render_height,
    )
    start = time.perf_counter()
    progress = not args.quiet
    if args.out is None:
        root = ensure_synthgait(config, workers=args.workers, progress=progress)
    else:
        root = generate_synthgait(args.out, config, workers=args.workers, overwrite=args.overwrite, progress=progress)
    print(f"SynthGait ready at {root} ({time.perf_counter() - start:.1f} s)")
    if args.gei:
        from qgait_lab.data.dataset import GaitDataset
        from qgait_lab.data.gei import gei_baseline

        print()
        print(gei_baseline(GaitDataset(root, split="test")).to_markdown())
    return 0


def add_pretreat_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``pretreat``: PNG frame folders -> OpenGait pkl layout."""
    p = subparsers.add_parser(
        "pretreat",
        help="turn FRAMES_ROOT/<id>/<type>/<view>/*.png into OpenGait's pkl layout",
        description="Align silhouette frames exactly as OpenGait's datasets/pretreatment.py does (drop "
        "near-empty frames, crop rows, resize to height --size with OpenCV's INTER_CUBIC, centre on the column "
        "median of mass, drop frames centred on column 0) and write OUTPUT/<id>/<type>/<view>/<view>.pkl. "
        "Frames are read in plain sorted name order; files whose name contains gei.png are skipped.",
    )
    p.add_argument("--input", type=Path, required=True, help="FRAMES_ROOT with <id>/<type>/<view>/*.png")
    p.add_argument("--output", type=Path, required=True, help="PKL_ROOT to write")
    p.add_argument("--size", type=int, default=64,
                   help="output frame height and width (default 64; an odd size gives one column less, as OpenGait)")
    p.add_argument("--min-sum", type=float, default=10_000.0,
                   help="drop frames whose intensity sum is at most this (default 10000, ~40 pixels)")
    p.add_argument("--no-align", dest="align", action="store_false",
                   help="keep every frame as read, without dropping, cropping or resizing: GREW, which is "
                   "stored aligned (OpenGait's --dataset GREW); --size and --min-sum are then unused")
    p.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    p.set_defaults(func=run_pretreat)
    return p


def run_pretreat(args: argparse.Namespace) -> int:
    """Run ``pretreat``; returns the exit status."""
    from qgait_lab.data.pretreat import pretreat_tree
    from qgait_lab.errors import ConfigError

    if args.size < 2:
        raise ConfigError(f"--size must be at least 2, got {args.size}")
    report = pretreat_tree(
        args.input, args.output, size=args.size, min_sum=args.min_sum, workers=args.workers, align=args.align
    )
    print(report)
    for folder in report.empty_sequences[:10]:
        print(f"  skipped (no usable frame): {folder}")
    return 0
