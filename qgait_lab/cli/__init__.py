"""The ``qgait-lab`` command.  Each subcommand is a thin shell over the library."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Sequence, get_args

from ..errors import QGaitError
from ..experiments.methods import METHODS, QUANTIZED_METHODS
from ..models import ModelName
from ..quant.bitops import CONVENTIONS
from ..training.config import BUDGETS

EXAMPLES = {
    "bitops": """examples:
  qgait-lab bitops --model gaitbase --frames 100 --classes 3000
  qgait-lab bitops --frames 100 --bits 32 8 4 --json
  qgait-lab bitops --frames 120 --classes 20000              # GREW, Table 2a: 141.96 G
  qgait-lab bitops --convention conv-linear                  # MACs of conv and linear layers only
  qgait-lab bitops --channels 16 32 64 128 --height 32 --width 22 --frames 30
  qgait-lab bitops --model gaitset --frames 100                # Table 1: 10.68 G (gaitpart: 10.67 G)
  qgait-lab bitops --model gaitpart --frames 120 --config grew # Table 2a: 31.68 G (gaitset: 50.68 G)""",
    "sanity": """examples:
  qgait-lab sanity            # checks of the quantizers on random data""",
}


def _add_bitops(sub) -> None:
    p = sub.add_parser("bitops", help="MACs and BitOPs of a model per bit-width (paper Sec. 4.1)",
                       epilog=EXAMPLES["bitops"], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="gaitbase",
                   help="registered model name: gaitbase (default), gaitset, gaitpart")
    p.add_argument("--config", default=None, metavar="NAME",
                   help="gaitset/gaitpart: OpenGait's configuration, casia-b (default) or grew / oumvlp "
                   "(the larger model of Table 2a)")
    p.add_argument("--frames", type=int, default=100, help="frames in the sequence (paper: 100)")
    p.add_argument("--classes", type=int, default=3000, help="gaitbase: training identities (Gait3D: 3000)")
    p.add_argument("--channels", type=int, nargs=4, default=None, metavar="C",
                   help="gaitbase: four stage widths (default: 64 128 256 512)")
    p.add_argument("--height", type=int, default=64)
    p.add_argument("--width", type=int, default=44)
    p.add_argument("--bits", type=int, nargs="+", default=[32, 8, 4], help="bit-widths to count")
    p.add_argument("--first-last-bits", type=int, default=None,
                   help="bits of the first and last layer (default: same as the rest)")
    p.add_argument("--convention", choices=list(CONVENTIONS), default=None,
                   help="what counts: 'paper' (default) adds BatchNorm at 4 ops per output element and "
                   "reproduces Tables 1-2; 'conv-linear' counts conv and linear MACs only")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_run_bitops)


def _run_bitops(args) -> int:
    import torch

    from ..models import PAPER_CHANNELS, build_model
    from ..quant import LayerPolicy
    from ..quant.bitops import (PAPER_CONVENTION, bitops_table, format_bitops_table,
                                gaitbase_inference_layers, get_convention)

    convention = get_convention(getattr(args, "convention", None) or PAPER_CONVENTION)
    if args.frames < 1:
        raise QGaitError(f"--frames must be >= 1, got {args.frames}")
    config = getattr(args, "config", None)
    if args.model == "gaitbase":
        if config is not None:
            raise QGaitError("--config chooses a gaitset/gaitpart configuration; gaitbase takes --channels "
                             "and --classes")
        channels = list(args.channels or PAPER_CHANNELS)
        setting = {"classes": args.classes, "channels": channels}
        options = {"num_classes": args.classes, "channels": tuple(channels)}
        described, path = f"channels {channels}", ", inference path (BNNeck head excluded)"
    else:
        if args.channels is not None:
            raise QGaitError(f"--channels sets gaitbase's stage widths; {args.model} takes --config")
        setting = {"config": config or "casia-b"}
        options = dict(setting)
        described, path = f"OpenGait's {setting['config']} configuration", ""
    policy = None
    if args.first_last_bits is not None:
        fl = (args.first_last_bits, args.first_last_bits)
        policy = LayerPolicy(first_layer_bits=fl, last_layer_bits=fl)
    def shapes_only():  # the count needs shapes only: build on the meta device, skipping the weight init
        with torch.device("meta"):
            return build_model(args.model, **options)

    rows = bitops_table(shapes_only, [torch.zeros(1, args.frames, args.height, args.width)], args.bits,
                        policy=policy, include=gaitbase_inference_layers, convention=convention.name)
    if args.json:
        print(json.dumps({"model": args.model, "frames": args.frames, **setting,
                          "input": [args.height, args.width],
                          "convention": convention.name, "rows": rows}, indent=2))
    else:
        print(f"{args.model}: {described}, {args.frames} frames of {args.height}x{args.width}{path}")
        print(f"convention {convention.name!r}: {convention.description}")
        print(format_bitops_table(rows))
    return 0


def _add_sanity(sub) -> None:
    p = sub.add_parser("sanity", help="quick numerical checks of the quantizers",
                       epilog=EXAMPLES["sanity"], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=_run_sanity)


def _run_sanity(args) -> int:
    from ..quant.sanity import format_report, run_sanity_checks

    results = run_sanity_checks()
    print(format_report(results))
    return 0 if all(r.passed for r in results) else 1


def _config_args(p, preset_help: str = "preset name or YAML file (default: tiny-cpu)") -> None:
    p.add_argument("--preset", default="tiny-cpu", help=preset_help)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set data.batch_p=4 (repeatable)")
    p.add_argument("--budget", choices=list(BUDGETS), default=None,
                   help="the preset as written (full), its lab: section or its fast: section "
                        "(default: fast under QGAIT_FAST=1, else full)")
    p.add_argument("--model", choices=list(get_args(ModelName)), default=None,
                   help="the gait model, at the preset's size for it (default: the preset's, gaitbase)")


def _load(args, **extra):
    from ..training.config import load_config

    values = {k: v for k, v in extra.items() if v is not None}
    if getattr(args, "model", None) is not None:
        values["model"] = {"name": args.model}
    return load_config(args.preset, args.overrides, extra=values, budget=getattr(args, "budget", None))


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train one method (full precision, a baseline or QGait)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog="""examples:
  qgait-lab train                                   # QGait-4 on SynthGait (tiny-cpu preset)
  qgait-lab train --method fp                       # the full-precision teacher only
  qgait-lab train --method lsq --bits 8 --set stage1.iterations=300
  qgait-lab train --preset casia-b --method qgait --set data.root=/data/CASIA-B-pkl \\
                  --set data.partition=/data/CASIA-B.json
  qgait-lab train --preset casia-b --method qgait --set data.root=/data/CASIA-B-pkl \\
                  --set full_precision.checkpoint=GaitBase_DA-60000.pt   # quantize OpenGait's model
  torchrun --nproc_per_node=4 -m qgait_lab.cli train --preset gait3d --set data.root=...

Runs are written to runs/<name>/; an interrupted run continues where it stopped.""")
    _config_args(p)
    p.add_argument("--method", choices=list(METHODS), default=None,
                   help="what to train (default: the preset's, qgait; the recipes: "
                        "qgait_lab.experiments.methods)")
    p.add_argument("--bits", type=int, default=None, help="weight and activation bits (4 or 8)")
    p.add_argument("--name", default=None, help="run name under runs/ (default: the preset's)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the configuration this command would train, as YAML, and stop")
    p.set_defaults(func=_run_train)


def _run_train(args) -> int:
    from ..experiments.results import markdown_table
    from ..training.distributed import distributed_session
    from ..experiments.pipeline import Experiment, run_banner
    from ..ranks import is_main_process

    quant = {"bits": args.bits} if args.bits is not None else None
    cfg = _load(args, method=args.method, name=args.name, quant=quant)
    if args.dry_run:
        import yaml

        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    if is_main_process():
        print(run_banner(cfg), flush=True)
    with distributed_session(cfg.runtime.device) as main_process:
        result = Experiment(cfg).run()
        if main_process:
            from ..experiments.demo import result_rows
            print(markdown_table(result_rows([result])))
            print(f"checkpoint: {result.stages[-1].checkpoint}")
    return 0


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint, or an exported ONNX model, on the preset's test split",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog="""examples:
  qgait-lab eval --checkpoint runs/demo/fp-1a2b3c4d/checkpoints/last.pt --method fp
  qgait-lab eval --checkpoint runs/demo/qgait-w4a4-stage2-.../checkpoints/last.pt --method qgait
  qgait-lab eval --onnx runs/demo/qgait4.onnx          # onnxruntime only, no PyTorch model
  qgait-lab eval --preset casia-b --set data.root=/data/CASIA-B-pkl \\
                 --checkpoint GaitBase_DA-60000.pt --method fp   # an OpenGait checkpoint""")
    _config_args(p)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="our checkpoint, or an OpenGait one")
    source.add_argument("--onnx", help="a model written by `qgait-lab export --format onnx`, run by onnxruntime")
    p.add_argument("--method", choices=list(METHODS), default=None,
                   help="how the checkpoint's model was quantized (default: fp; not with --onnx)")
    p.add_argument("--bits", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=_run_eval)


def _run_eval(args) -> int:
    from ..experiments.pipeline import evaluate_checkpoint, run_banner

    if args.onnx and (args.method is not None or args.bits is not None):
        raise QGaitError("--method and --bits describe a --checkpoint; an --onnx file carries its own")
    method = args.method or "fp"
    quant = {"bits": args.bits} if args.bits is not None else None
    cfg = _load(args, method=None if args.onnx else method, quant=quant)
    print(run_banner(cfg), file=sys.stderr if args.json else sys.stdout, flush=True)
    if args.onnx:
        from ..experiments.onnx_eval import evaluate_onnx

        metrics = evaluate_onnx(cfg, args.onnx)
    else:
        metrics = evaluate_checkpoint(cfg, args.checkpoint, method)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        for key, value in metrics.items():
            print(f"{key:>12}: {value:.2f}")
    return 0


def _add_export(sub) -> None:
    from ..experiments.export import ExportFormat

    p = sub.add_parser("export", help="write a trained QAT model as an integer model (ONNX or torch file)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog="""examples:
  qgait-lab export --run runs/demo --method qgait --bits 4 --format onnx --out runs/demo/qgait4.onnx
  qgait-lab export --run runs/demo --method lsq --bits 4 --out lsq4.pt       # packed 4-bit weights
  qgait-lab export --checkpoint runs/demo/qgait-w4a4-stage2-.../checkpoints/last.pt --method qgait \\
                   --out qgait4.onnx
  qgait-lab eval --onnx runs/demo/qgait4.onnx                                # then evaluate it

It prints the layers and their bits, the file size against the fp32 weights, and the parity of the
integer model with the fake-quantized one (and of onnxruntime with the integer model).""")
    _config_args(p, "the preset the model was trained with: its width and input size (default: tiny-cpu)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="a run folder, runs/<name>: its final checkpoint of --method and --bits")
    source.add_argument("--checkpoint", help="a checkpoint file of a quantization-aware model")
    p.add_argument("--method", choices=list(QUANTIZED_METHODS), default=None,
                   help="how the model was quantized (default: the preset's method)")
    p.add_argument("--bits", type=int, default=None, help="its weight and activation bits (default: the preset's)")
    p.add_argument("--format", choices=list(get_args(ExportFormat)), default=None,
                   help="onnx: a QDQ graph for onnxruntime; torch: a torch file with 4-bit weights packed "
                        "two per byte (default: from --out's suffix, .onnx or .pt)")
    p.add_argument("--out", required=True, help="the file to write")
    p.add_argument("--sequences", type=int, default=8,
                   help="test sequences for the parity figures (default: 8; 0 skips them)")
    p.set_defaults(func=_run_export)


def _run_export(args) -> int:
    from ..experiments.export import (export_checkpoint, find_run_checkpoint, format_export_report,
                                      format_from_path)

    if args.sequences < 0:
        raise QGaitError(f"--sequences must be >= 0, got {args.sequences}")
    fmt = format_from_path(args.out, args.format)
    quant = {"bits": args.bits} if args.bits is not None else None
    cfg = _load(args, method=args.method, quant=quant)
    if cfg.method == "fp":
        raise QGaitError(f"preset {args.preset!r} trains method fp; a float model has no integer form: "
                         f"pass --method qgait, lsq, dorefa or pact")
    checkpoint = args.checkpoint or find_run_checkpoint(args.run, cfg.method, cfg.quant.bits,
                                                        cfg.runtime.runs_dir)
    report = export_checkpoint(cfg, checkpoint, cfg.method, args.out, fmt, sequences=args.sequences)
    print(format_export_report(report))
    return 0


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="SynthGait -> FP, LSQ-4, QGait-4 -> Table-1 report -> QGait-4 on "
                       "onnxruntime (make demo)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog="""examples:
  qgait-lab demo                       # about 10 minutes on 2 CPU cores
  QGAIT_FAST=1 qgait-lab demo          # a 1-minute smoke run (numbers are meaningless)

Writes runs/demo/report.md and the figures theta_k.png, loss_curves.png, tsne.png, and ends by
exporting QGait-4 to runs/demo/qgait4.onnx and printing its onnxruntime Rank-1 beside the
fake-quantized one.""")
    _config_args(p)
    p.add_argument("--no-sanity", action="store_true", help="skip the quantizer sanity report")
    p.set_defaults(func=_run_demo)


def _fast_notice(args) -> None:
    """Demo and reproduce say first when they run on the smoke-test budget."""
    if _load(args).budget == "fast":
        from ..training.config import FAST_MODE_NOTICE

        print(FAST_MODE_NOTICE, flush=True)


def _run_demo(args) -> int:
    from ..experiments.demo import run_demo
    from ..quant.sanity import format_report, run_sanity_checks

    _fast_notice(args)
    if not args.no_sanity:
        print(format_report(run_sanity_checks()), "\n")
    _run_bitops(argparse.Namespace(model="gaitbase", frames=100, classes=3000, channels=None,
                                   height=64, width=44, bits=[32, 8, 4], first_last_bits=None,
                                   json=False))
    print()
    report = run_demo(args.preset, args.overrides, budget=args.budget)
    print(report.table)
    if report.deployed is not None:
        print(f"\n{report.deployed.line()}")
    print(f"\nreport: {report.report_path}  ({report.seconds / 60:.1f} min)")
    return 0


def _add_reproduce(sub) -> None:
    from ..experiments.reproduce import TEACHERS, WHAT

    p = sub.add_parser("reproduce", help="re-run the paper's tables on SynthGait over seeds",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog="""examples:
  qgait-lab reproduce --what table1 --seeds 3     # see README "Results on SynthGait" for the time
  qgait-lab reproduce --what table1 --seeds 3 --jobs 1   # one process, in the foreground
  qgait-lab reproduce --what table1 --seeds 3 --teacher per-seed   # a teacher per seed too
  qgait-lab reproduce --what table3a --seeds 1
  qgait-lab reproduce --what table4 --seeds 2        # GaitSet, GaitPart, GaitBase: FP, QGait-4, QGait-8
  qgait-lab reproduce --what fig5
  qgait-lab reproduce --what variation --seeds 3    # one seed at 1 and N threads and AVX2 kernels, beside 3 seeds
  QGAIT_FAST=1 qgait-lab reproduce --what table3b --seeds 1   # quick smoke version""")
    _config_args(p)
    p.add_argument("--what", required=True, choices=list(WHAT))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--jobs", default="auto",
                   help="worker processes that train independent runs side by side (default "
                        "auto: one per CPU core, at most 4; 1 with a GPU)")
    p.add_argument("--teacher", default="shared", choices=list(TEACHERS),
                   help="shared (default): every seed quantizes one full-precision model, as "
                        "the paper quantizes one pretrained GaitBase; per-seed: each seed trains "
                        "its own, so the spread includes the teacher's (takes longer)")
    p.set_defaults(func=_run_reproduce)


def _run_reproduce(args) -> int:
    from ..experiments.reproduce import run_reproduce

    _fast_notice(args)
    report = run_reproduce(args.what, args.seeds, args.preset, args.overrides, jobs=args.jobs,
                           teacher=args.teacher, budget=args.budget)
    print(report.markdown)
    print(f"report: {report.path}")
    return 0


def _add_synth(sub) -> None:
    from .data_commands import add_synth_parser

    p = add_synth_parser(sub)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = """examples:
  qgait-lab synth                                   # the default dataset, into the cache
  qgait-lab synth --out synthgait --ids 74 --gei    # CASIA-B-sized, with the GEI baseline
  qgait-lab synth --out small --ids 10 --views 018,090 --frames 20 --noise 0.2 --seed 3"""


def _add_pretreat(sub) -> None:
    from .data_commands import add_pretreat_parser

    p = add_pretreat_parser(sub)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = """examples:
  qgait-lab pretreat --input CASIA-B-frames --output CASIA-B-pkl --workers 2
  (the input holds FRAMES_ROOT/<id>/<type>/<view>/*.png silhouettes)"""


def _add_lab(sub) -> None:
    p = sub.add_parser("lab", help="the course: hand out student notebooks, grade submissions",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog="""examples:
  qgait-lab lab release --out handout/
  qgait-lab lab grade submissions/alice submissions/bob --out grades.csv
  qgait-lab lab grade hand-in/*.ipynb --out grades.csv --timeout 600   # files named alice__03_....ipynb""")
    lab = p.add_subparsers(dest="lab_command", metavar="ACTION", required=True)
    r = lab.add_parser("release", help="write the student notebooks (no solutions, no outputs) and data_samples")
    r.add_argument("--out", required=True, help="a new (or empty) folder for the release")
    r.add_argument("--notebooks", default=None, help="the course notebooks (default: ./notebooks)")
    r.add_argument("--instructor", default=None, help="the instructor folder (default: ./instructor)")
    r.set_defaults(func=_run_lab_release)
    g = lab.add_parser("grade", help="execute submissions in fast mode and grade every exercise")
    g.add_argument("submissions", nargs="+", help="one folder per student, or notebook files")
    g.add_argument("--out", required=True, help="the grades CSV; feedback/<student>.md is written beside it")
    g.add_argument("--instructor", default=None, help="the instructor folder with hidden/ (default: ./instructor)")
    g.add_argument("--timeout", type=float, default=900, help="seconds allowed per notebook (default: 900)")
    g.add_argument("--cell-timeout", type=float, default=600, help="seconds allowed per cell (default: 600)")
    g.set_defaults(func=_run_lab_grade)


def _run_lab_release(args) -> int:
    from ..lab.course.release import release

    try:
        manifest = release(args.out, args.notebooks, args.instructor)
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        raise QGaitError(str(err)) from None
    n = sum(len(v) for v in manifest["notebooks"].values())
    print(f"wrote {len(manifest['notebooks'])} notebooks with {n} exercises to {args.out}")
    return 0


def _run_lab_grade(args) -> int:
    from ..lab.course.grade import grade

    if args.timeout <= 0 or args.cell_timeout <= 0:
        raise QGaitError("--timeout and --cell-timeout must be positive")
    try:
        grades = grade(args.submissions, args.out, args.instructor, notebook_timeout=args.timeout,
                       cell_timeout=args.cell_timeout)
    except (FileNotFoundError, ValueError) as err:
        raise QGaitError(str(err)) from None
    print(f"graded {len(grades)} notebooks; grades in {args.out}, feedback beside it")
    return 0


# Subcommands register here; each adds its parser and sets ``func``.
COMMANDS: list[Callable] = [_add_train, _add_eval, _add_export, _add_demo, _add_reproduce, _add_synth,
                            _add_pretreat, _add_bitops, _add_sanity, _add_lab]


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
