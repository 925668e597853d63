"""The ``qgait-lab`` command.  Each subcommand is a thin shell over the library."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Sequence

from .errors import QGaitError

EXAMPLES = {
    "bitops": """examples:
  qgait-lab bitops --model gaitbase --frames 100 --classes 3000
  qgait-lab bitops --frames 100 --bits 32 8 4 --json
  qgait-lab bitops --channels 16 32 64 128 --height 32 --width 22 --frames 30""",
    "sanity": """examples:
  qgait-lab sanity            # checks of the quantizers on random data""",
}


def _add_bitops(sub) -> None:
    p = sub.add_parser("bitops", help="MACs and BitOPs of a model per bit-width (paper Sec. 4.1)",
                       epilog=EXAMPLES["bitops"], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="gaitbase", help="registered model name (default: gaitbase)")
    p.add_argument("--frames", type=int, default=100, help="frames in the sequence (paper: 100)")
    p.add_argument("--classes", type=int, default=3000, help="training identities (Gait3D: 3000)")
    p.add_argument("--channels", type=int, nargs=4, default=None, metavar="C",
                   help="four stage widths (default: 64 128 256 512)")
    p.add_argument("--height", type=int, default=64)
    p.add_argument("--width", type=int, default=44)
    p.add_argument("--bits", type=int, nargs="+", default=[32, 8, 4], help="bit-widths to count")
    p.add_argument("--first-last-bits", type=int, default=None,
                   help="bits of the first and last layer (default: same as the rest)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_run_bitops)


def _run_bitops(args) -> int:
    import torch

    from .models import PAPER_CHANNELS, build_model
    from .quant import LayerPolicy
    from .quant.bitops import bitops_table, format_bitops_table, gaitbase_inference_layers

    if args.frames < 1:
        raise QGaitError(f"--frames must be >= 1, got {args.frames}")
    channels = tuple(args.channels or PAPER_CHANNELS)
    policy = None
    if args.first_last_bits is not None:
        fl = (args.first_last_bits, args.first_last_bits)
        policy = LayerPolicy(first_layer_bits=fl, last_layer_bits=fl)
    rows = bitops_table(lambda: build_model(args.model, num_classes=args.classes, channels=channels),
                        [torch.zeros(1, args.frames, args.height, args.width)], args.bits,
                        policy=policy, include=gaitbase_inference_layers)
    if args.json:
        print(json.dumps({"model": args.model, "frames": args.frames, "classes": args.classes,
                          "channels": list(channels), "input": [args.height, args.width],
                          "rows": rows}, indent=2))
    else:
        print(f"{args.model}: channels {list(channels)}, {args.frames} frames of "
              f"{args.height}x{args.width}, inference path (BNNeck head excluded)")
        print(format_bitops_table(rows))
    return 0


def _add_sanity(sub) -> None:
    p = sub.add_parser("sanity", help="quick numerical checks of the quantizers",
                       epilog=EXAMPLES["sanity"], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=_run_sanity)


def _run_sanity(args) -> int:
    from .quant.sanity import format_report, run_sanity_checks

    results = run_sanity_checks()
    print(format_report(results))
    return 0 if all(r.passed for r in results) else 1


# Subcommands register here; each adds its parser and sets ``func``.
COMMANDS: list[Callable] = [_add_bitops, _add_sanity]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qgait-lab",
        description="QGait lab: quantization for gait recognition with binarized input.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except QGaitError as err:
        print(f"qgait-lab {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
