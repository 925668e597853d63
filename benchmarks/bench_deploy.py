"""How fast does the integer GaitBase run?  torch fp32 against onnxruntime fp32, w8a8 and w4a4.

Times the embedding of one 30-frame sequence, and of a batch of 16, for

* ``torch-fp32``: the float GaitBase in eval mode under ``torch.no_grad``, up
  to the embeddings (the training-only BNNeck left out, as in the export);
* ``ort-fp32``: the same model written by ``export_float_onnx`` (BatchNorm
  folded), run by onnxruntime's CPU provider with all graph optimisations;
* ``ort-w8a8``, ``ort-w4a4``: LSQ-quantized twins through
  ``build_integer_model`` and ``export_onnx`` (QDQ; 4-bit codes in int8
  containers);
* experiments on the exported graph (rewritten here, see below):
  ``ort-w8a8-fw`` (in the default run) and ``ort-w4a4-fw`` with the weights of
  the convolutions that onnxruntime runs in float stored pre-dequantized in
  float32, and ``ort-w8a8-ci`` / ``ort-w4a4-ci`` with those convolutions as
  ``ConvInteger`` on the codes, then scaled: the exact integer accumulator;

for the paper's full-width GaitBase (64/128/256/512) at 64x44 and the
tiny-cpu preset's quarter width (16/32/64/128) at 32x22.  The weights are
random (timing does not depend on their values); LSQ's steps and the
BatchNorm statistics come from a few forwards on random binary silhouettes.
torch and onnxruntime get the same number of intra-op threads, whose idle
threads sleep (last point below).  After a
warm-up, the variants are called in interleaved rounds and the median is
printed, with the ratios to torch fp32 and to onnxruntime fp32 from the same
rounds.  Also printed: the weights' bytes (fp32, int8, packed int4) and the
files' sizes, the node types of onnxruntime's optimised graphs, the share of
the MACs that runs in integer kernels, and onnxruntime's per-node profile
(``enable_profiling``, kernel times summed by op type).  Nothing is asserted.

What costs the time (onnxruntime 1.30, measured; figures in benchmarks/README.md):

* Only each block's conv1 becomes an integer ``QLinearConv`` (and the FCs a
  ``MatMulIntegerToFloat``): the other convolutions feed the float residual
  add, so no ``QuantizeLinear`` follows them to fuse with.  That is 35 % of
  the MACs at full width, 37 % at quarter width: were those kernels free, the
  graph could still run at most 1.55x faster than in float, so w8a8 cannot
  reach 2.5x torch fp32 where torch is about as fast as onnxruntime fp32
  (full width, one sequence).  On the layers it runs, ``QLinearConv`` takes
  about 3x (quarter width) to 4x (full width) less time than the float
  convolutions of the fp32 graph.
* The time goes to the float convolutions of the QDQ graph, not to the Q/DQ
  nodes or to per-node overhead.  Their weights come out of a
  ``DequantizeLinear``, which onnxruntime keeps in a QDQ graph (it does not
  constant-fold Q/DQ), and its NCHWc layout pass takes only convolutions
  whose weight is a constant float initialiser (``TransformConv`` in
  onnxruntime's ``core/optimizer/nchwc_transformer.cc``).  So they run the
  plain NCHW kernel: at quarter width w8a8's 7 float convolutions take as
  long as all 12 of the fp32 graph, or longer.  The 16 ``DequantizeLinear`` nodes together
  take 2-3 % of a call, the 8 on weights 0.4-1.5 %; the executor's own
  time outside the kernels stays under 1.5 ms a call for the 66-87 nodes of
  the QDQ graphs (26 in fp32).
* ``-fw`` puts those convolutions on the NCHWc path: a third (full width) to
  two thirds (quarter width) less time in them, as little as in the fp32
  graph.  What it leaves is layout and glue: onnxruntime runs ``QLinearConv``
  in NHWC and the float convolutions in NCHWc, so every block converts back
  and forth (``Transpose``, ``ReorderInput`` / ``ReorderOutput``), and the
  ``Q`` / ``DQ`` / ``Add`` / ``Relu`` that the fp32 graph fuses into its
  convolutions run as passes of their own.  These are memory-bound and weigh
  most at quarter width with a batch of 16 (over a third of the call).
* 4 bits add a ``Clip`` per quantized layer and run as fast as 8 bits or
  slower (no 4-bit convolution kernel exists on x86: they save memory, not
  time).
* ``ConvInteger`` (``-ci``) gives the integer reference's accumulators
  exactly, but makes the graph about 3x slower than w8a8.
* Interleaving runtimes needs idle threads that sleep: onnxruntime's
  intra-op threads spin after each call by default, and so do libgomp's in
  torch; on 2 cores the pools of the variants not being timed then take the
  cores from the one that is.  So the script sets ``OMP_WAIT_POLICY=PASSIVE``
  (unless set) and onnxruntime's ``session.intra_op.allow_spinning`` to 0
  (``--spin`` keeps onnxruntime's default).

    python benchmarks/bench_deploy.py                    # full width x 1, quarter width x 1 and x 16
    python benchmarks/bench_deploy.py --profile quarter full
    python benchmarks/bench_deploy.py --cases full --batches 16 --skip --reps 3 --profile   # minutes
    python benchmarks/bench_deploy.py --cases quarter --variants torch-fp32 ort-fp32 ort-w8a8 ort-w4a4 \\
        ort-w8a8-fw ort-w4a4-fw ort-w8a8-ci ort-w4a4-ci --profile-batch 16 --profile-runs 5
"""
from __future__ import annotations

import argparse
import collections
import copy
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

# Idle threads must sleep, not spin: interleaved on 2 cores, the spinning thread pools of the variants not
# being timed take the cores from the one that is (measured at quarter width: torch fp32 20 times slower).
# libgomp reads this once, when torch starts; OMP_WAIT_POLICY=ACTIVE in the environment keeps spinning.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402

from qgait_lab.deploy import IntegerGaitBase, build_integer_model  # noqa: E402
from qgait_lab.deploy.onnx_export import INPUT, export_float_onnx, export_onnx  # noqa: E402
from qgait_lab.deploy.onnx_runtime import OnnxModel  # noqa: E402
from qgait_lab.deploy.serialize import model_bytes, save_integer_model  # noqa: E402
from qgait_lab.deploy.timing import time_interleaved  # noqa: E402
from qgait_lab.models import GaitBase  # noqa: E402
from qgait_lab.models.gaitbase import temporal_max  # noqa: E402
from qgait_lab.quant import quantize_model  # noqa: E402
from qgait_lab.quant.bitops import count_costs, gaitbase_inference_layers  # noqa: E402

#: label -> (stage widths, input h x w): the paper's GaitBase, and the tiny-cpu preset's.
CASES = {"full": ((64, 128, 256, 512), (64, 44)), "quarter": ((16, 32, 64, 128), (32, 22))}
#: Experiments on the exported graph: ``-fw`` (:func:`float_weights`), ``-ci`` (:func:`integer_accumulators`).
VARIANTS = ("torch-fp32", "ort-fp32", "ort-w8a8", "ort-w4a4", "ort-w8a8-fw", "ort-w4a4-fw", "ort-w8a8-ci",
            "ort-w4a4-ci")
DEFAULT_VARIANTS = ("torch-fp32", "ort-fp32", "ort-w8a8", "ort-w4a4", "ort-w8a8-fw")
FRAMES = 30
CONV_OPS = ("Conv", "FusedConv", "QLinearConv", "ConvInteger")
LAYOUT_OPS = ("Transpose", "ReorderInput", "ReorderOutput")     # NCHW <-> NHWC / NCHWc conversions
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear", "Clip")
GOAL_FULL = 2.5          # issue 14: w8a8 at least 2.5x faster than torch fp32, full width, one sequence


def silhouettes(n: int, frames: int, size: tuple[int, int], seed: int) -> torch.Tensor:
    """Random binary silhouettes ``[n, frames, h, w]``."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, frames, *size, generator=g) > 0.5).float()


@torch.no_grad()
def gather_statistics(model: GaitBase, size: tuple[int, int], forwards: int = 3) -> GaitBase:
    """Train-mode forwards on random silhouettes: fresh BatchNorm statistics, and LSQ's steps.

    An LSQ quantizer sets its step from the first values it sees; BatchNorm
    averages over all the forwards (``momentum=None``).  Random weights are fine
    for timing: dense kernels do not look at the values.
    """
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    for i in range(forwards):
        model(silhouettes(2, 8, size, seed=100 + i))
    return model.eval()


@torch.no_grad()
def torch_embeddings(model: GaitBase, sils: torch.Tensor) -> torch.Tensor:
    """GaitBase's forward up to the embeddings (no BNNeck), what the ONNX graph computes."""
    maps = model.Backbone(sils.unsqueeze(1))
    return model.FCs(model.HPP(temporal_max(maps, None)))


def _float_convs(graph: onnx.GraphProto):
    """``(Conv, input DQ, weight DQ)`` for each convolution of an ``export_onnx`` graph left in float.

    onnxruntime fuses each block's conv1 into ``QLinearConv``; the others stay
    float ``Conv`` nodes on ``DequantizeLinear`` outputs.  They are told apart by
    their bias: the exporter gives an int32 bias, read through a
    ``DequantizeLinear``, only to the ones meant for ``QLinearConv``.
    """
    producers = {out: node for node in graph.node for out in node.output}
    for node in graph.node:
        if node.op_type == "Conv" and node.input[2] not in producers:
            yield node, producers[node.input[0]], producers[node.input[1]]


def _save_pruned(model: onnx.ModelProto, nodes: list, dst: Path) -> None:
    """``model`` with ``nodes`` as its graph, less nodes and initialisers that nothing reads."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    while True:
        used = {name for n in nodes for name in n.input} | outputs
        live = [n for n in nodes if any(o in used for o in n.output)]
        if len(live) == len(nodes):
            break
        nodes = live
    del graph.node[:]
    graph.node.extend(nodes)
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(dst))


def float_weights(src: Path, dst: Path) -> int:
    """The ``-fw`` experiment: the float convolutions' weights stored pre-dequantized in float32.

    Each such weight becomes a float32 initialiser holding exactly what its
    ``DequantizeLinear`` computed (codes times step, in float32), so the graph
    computes the same values with the weights constant.  Returns how many
    convolutions were rewritten.
    """
    model = onnx.load(str(src))
    weights = {t.name: t for t in model.graph.initializer}
    count = 0
    for conv, _, w_dq in _float_convs(model.graph):
        codes = numpy_helper.to_array(weights[w_dq.input[0]]).astype(np.float32)
        step = numpy_helper.to_array(weights[w_dq.input[1]]).astype(np.float32)
        name = f"{w_dq.input[0]}/float"
        model.graph.initializer.append(numpy_helper.from_array(codes * step.reshape(-1, 1, 1, 1), name))
        conv.input[1] = name
        count += 1
    _save_pruned(model, list(model.graph.node), dst)
    return count


def integer_accumulators(src: Path, dst: Path) -> int:
    """The ``-ci`` experiment: the float convolutions as ``ConvInteger`` on the codes, then scaled.

    ``Conv(DQ(codes), DQ(W), b)`` becomes ``ConvInteger(codes, W)`` (the exact
    int32 accumulator) ``-> Cast -> Mul(s_x s_w) -> Add(b)``: the same real
    value, computed the way the integer reference computes it.  Returns how
    many convolutions were rewritten.
    """
    model = onnx.load(str(src))
    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    replaced = {}
    for conv, x_dq, w_dq in _float_convs(graph):
        x_step = numpy_helper.to_array(weights[x_dq.input[1]]).astype(np.float64)
        w_step = numpy_helper.to_array(weights[w_dq.input[1]]).astype(np.float64)
        bias = numpy_helper.to_array(weights[conv.input[2]]).astype(np.float32)
        name = conv.name
        graph.initializer.extend([
            numpy_helper.from_array((x_step * w_step).astype(np.float32).reshape(1, -1, 1, 1), f"{name}/acc_scale"),
            numpy_helper.from_array(bias.reshape(1, -1, 1, 1), f"{name}/shift")])
        acc = helper.make_node("ConvInteger", [x_dq.input[0], w_dq.input[0]], [f"{name}/acc"],
                               name=f"{name}/acc")
        acc.attribute.extend(conv.attribute)
        replaced[conv.name] = [
            acc, helper.make_node("Cast", [f"{name}/acc"], [f"{name}/acc_f"], name=f"{name}/cast",
                                  to=onnx.TensorProto.FLOAT),
            helper.make_node("Mul", [f"{name}/acc_f", f"{name}/acc_scale"], [f"{name}/scaled"],
                             name=f"{name}/scaled"),
            helper.make_node("Add", [f"{name}/scaled", f"{name}/shift"], list(conv.output), name=f"{name}/shift")]
    nodes = [new for n in graph.node for new in replaced.get(n.name, [n])]   # the exporter's names are unique
    _save_pruned(model, nodes, dst)
    return len(replaced)


def integer_mac_share(model: GaitBase, integer: IntegerGaitBase, size: tuple[int, int]) -> float:
    """The fraction of the backbone's and FCs' MACs in the layers onnxruntime runs in integers.

    Those are each block's conv1 (``QLinearConv``) and the FCs
    (``MatMulIntegerToFloat``); with the rest at float speed this bounds any
    speed-up over the float graph (Amdahl): at most ``1 / (1 - share)``.
    """
    costs = count_costs(model, silhouettes(1, 1, size, 0), include=gaitbase_inference_layers)
    integer_layers = {b.conv1.name for b in integer.blocks} | {integer.fc.name}
    return sum(c.macs for c in costs if c.name in integer_layers) / sum(c.macs for c in costs)


class SleepingOnnxModel(OnnxModel):
    """An ``OnnxModel`` whose idle intra-op threads sleep instead of spinning (see OMP_WAIT_POLICY above)."""

    def _options(self) -> ort.SessionOptions:
        options = super()._options()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return options


#: The graph rewrites behind the experimental variants, by suffix.
REWRITES = {"-fw": float_weights, "-ci": integer_accumulators}


class Case:
    """One model width: the float GaitBase, its LSQ twins, their exports in ``folder``, and sessions."""

    def __init__(self, label: str, variants: list[str], threads: int, folder: Path, spin: bool = False,
                 seed: int = 0) -> None:
        channels, self.size = CASES[label]
        self.label, self.channels, self.folder = label, channels, folder
        torch.manual_seed(seed)
        self.float_model = gather_statistics(GaitBase(74, channels=channels), self.size)
        self.paths = {"ort-fp32": export_float_onnx(self.float_model, folder / f"{label}-fp32.onnx", self.size)}
        self.integer: dict[int, IntegerGaitBase] = {}
        for bits in (8, 4):
            fake = quantize_model(copy.deepcopy(self.float_model), "lsq", bits, bits)
            self.integer[bits] = build_integer_model(gather_statistics(fake, self.size))
            base = f"ort-w{bits}a{bits}"
            self.paths[base] = export_onnx(self.integer[bits], folder / f"{label}-{base}.onnx", self.size)
            for suffix, rewrite in REWRITES.items():
                if base + suffix in variants:
                    self.paths[base + suffix] = folder / f"{label}-{base}{suffix}.onnx"
                    rewrite(self.paths[base], self.paths[base + suffix])
        runtime = OnnxModel if spin else SleepingOnnxModel
        self.sessions = {v: runtime(self.paths[v], threads=threads) for v in variants if v in self.paths}

    def runner(self, variant: str, sils: torch.Tensor) -> Callable[[], object]:
        """A call that embeds ``sils`` with ``variant``, its input already in the runtime's form."""
        if variant == "torch-fp32":
            return lambda: torch_embeddings(self.float_model, sils)
        session, x = self.sessions[variant], np.ascontiguousarray(sils.numpy())
        return lambda: session.embed(x)

    def weight_bytes(self) -> dict[str, int]:
        """The weights as fp32, int8 codes and packed int4 codes (:func:`model_bytes`)."""
        return {"fp32": model_bytes(self.integer[8], "fp32"), "int8": model_bytes(self.integer[8], "int8"),
                "int4": model_bytes(self.integer[4], "int4")}

    def file_bytes(self) -> dict[str, int]:
        """Sizes of the .onnx files and of the integer models as ``qgait-lab export --format torch`` saves them."""
        sizes = {f"{v}.onnx": p.stat().st_size for v, p in self.paths.items()}
        for bits in (8, 4):
            path = save_integer_model(self.integer[bits], self.folder / f"{self.label}-w{bits}a{bits}.pt")
            sizes[f"w{bits}a{bits}.pt"] = path.stat().st_size
        return sizes


def profile(paths: dict[str, Path], sils: torch.Tensor, threads: int, runs: int, folder: Path,
            spin: bool = False) -> dict[str, dict]:
    """onnxruntime's per-node profile of ``runs`` interleaved calls of each graph, summed by op type.

    The sessions have the timed sessions' settings (all graph optimisations,
    the same threads and spinning) plus ``enable_profiling``.  Returns for each
    variant ``{"ops": {op: (ms, nodes)}, "kernel_ms", "run_ms", "between_ms",
    "conv1_ms", "other_conv_ms", "layout_ms", "qdq_ms", "nodes"}``: the median
    call (``run_ms``) and its time outside the kernels (``between_ms``, the
    executor's own, per-node overhead), and the kernels' mean time per call:
    all, by op type, the blocks' conv1 (the ``QLinearConv`` layers), the other
    convolutions, the layout conversions and the Q / DQ / Clip nodes.
    """
    sessions = {}
    for v, path in paths.items():
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.log_severity_level = 3
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.enable_profiling = True
        options.profile_file_prefix = str(folder / f"profile-{path.stem}")
        sessions[v] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {INPUT: np.ascontiguousarray(sils.numpy())}
    for _ in range(2 + runs):                # two warm-up rounds, left out below
        for session in sessions.values():
            session.run(None, feed)
    return {v: _summarize(json.loads(Path(s.end_profiling()).read_text()), runs) for v, s in sessions.items()}


def _summarize(events: list[dict], runs: int) -> dict:
    """The last ``runs`` calls of one session's profile, per call (see :func:`profile`)."""
    timed = [e for e in events if e.get("cat") == "Session" and e["name"] == "model_run"][-runs:]
    kernels = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")
               and e["ts"] >= timed[0]["ts"]]
    ops: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    for e in kernels:
        ops[e["args"]["op_name"]][0] += e["dur"] / 1e3 / runs
        ops[e["args"]["op_name"]][1] += 1 / runs
    # The convolutions by role; onnxruntime keeps the exporter's node names ("<layer>/conv#7...").
    convs = [e for e in kernels if e["args"]["op_name"] in CONV_OPS]
    conv1 = sum(e["dur"] for e in convs if e["name"].split("/")[0].endswith(".0.conv1")) / 1e3 / runs
    # Per call, the run's time less its kernels' (the executor's own time), median over the calls.
    between = [r["dur"] - sum(e["dur"] for e in kernels if r["ts"] <= e["ts"] <= r["ts"] + r["dur"])
               for r in timed]
    kernel_ms = sum(ms for ms, _ in ops.values())
    return {"ops": {op: (ms, round(n)) for op, (ms, n) in ops.items()}, "kernel_ms": kernel_ms,
            "run_ms": statistics.median(r["dur"] / 1e3 for r in timed),
            "between_ms": statistics.median(between) / 1e3, "conv1_ms": conv1,
            "other_conv_ms": sum(e["dur"] for e in convs) / 1e3 / runs - conv1,
            "layout_ms": sum(ops[op][0] for op in LAYOUT_OPS if op in ops),
            "qdq_ms": sum(ops[op][0] for op in QDQ_OPS if op in ops),
            "nodes": round(sum(n for _, n in ops.values()))}


def _times_faster(base: float | None, t: float) -> str:
    return f"{base / t:.2f}x" if base else "-"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--batches", nargs="+", type=int, default=[1, 16], help="sequences per call")
    p.add_argument("--skip", nargs="*", default=["full:16"], metavar="CASE:BATCH",
                   help="case and batch pairs left out (default full:16, tens of seconds a call on 2 cores; "
                        "--skip with nothing after it runs them all)")
    p.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=VARIANTS)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                   help="intra-op threads of torch and onnxruntime alike (default: every core this process may use)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls per variant before timing")
    p.add_argument("--reps", type=int, default=5, help="timed calls per variant, at least")
    p.add_argument("--seconds", type=float, default=8.0,
                   help="more timed calls while one (case, batch) takes less than this")
    p.add_argument("--profile", nargs="*", default=["quarter"], choices=list(CASES),
                   help="cases to profile per node (nothing after it: no profile)")
    p.add_argument("--profile-batch", type=int, default=1, help="sequences per profiled call")
    p.add_argument("--profile-runs", type=int, default=10, help="profiled calls per variant")
    p.add_argument("--spin", action="store_true",
                   help="let onnxruntime's idle threads spin (its default; torch's follow OMP_WAIT_POLICY)")
    p.add_argument("--out", type=Path, help="keep the .onnx files and the profiles in this folder")
    args = p.parse_args()
    if min(args.threads, args.reps, args.profile_runs, args.profile_batch, *args.batches) < 1:
        p.error("--threads, --reps, --batches, --profile-batch and --profile-runs must be at least 1")
    if "torch-fp32" not in args.variants or "ort-fp32" not in args.variants:
        p.error("--variants must include torch-fp32 and ort-fp32, the baselines of the ratios")
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__} (CPU provider); {args.threads} intra-op "
          f"threads for both, idle threads {'spinning' if args.spin else 'sleeping'} in onnxruntime, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')} for torch; {FRAMES} frames per sequence; "
          f"load average {load:.2f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        results = collect(args, folder)
    report(results, args)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end, {load:.2f} at the start: on a shared machine "
          f"absolute times are noisy; the ratios, measured in the same rounds, less so.")


def collect(args, folder: Path) -> dict:
    """Build, export, time and profile every case; every figure the report prints."""
    out = {"times": {}, "rounds": {}, "weights": {}, "files": {}, "nodes": {}, "profiles": {}, "drift": {},
           "share": {}}
    for label in args.cases:
        t0 = time.perf_counter()
        case = Case(label, args.variants, args.threads, folder, spin=args.spin)
        out["weights"][label], out["files"][label] = case.weight_bytes(), case.file_bytes()
        out["nodes"][label] = {v: s.node_types() for v, s in case.sessions.items()}
        out["share"][label] = integer_mac_share(case.float_model, case.integer[8], case.size)
        one = silhouettes(1, FRAMES, case.size, seed=1).numpy()
        profiled = silhouettes(args.profile_batch, FRAMES, case.size, seed=2)
        for v in (v for v in case.sessions if v[-3:] in REWRITES):      # same model, other kernels
            a, b = case.sessions[v[:-3]].embed(one), case.sessions[v].embed(one)
            out["drift"][(label, v)] = float(np.abs(a - b).max() / np.abs(a).max())
        print(f"\n{label}: GaitBase {case.channels} at {case.size[0]}x{case.size[1]}, built and exported in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        for n in args.batches:
            if f"{label}:{n}" in args.skip:
                print(f"  {n} x {FRAMES} frames: skipped (--skip {label}:{n})")
                continue
            sils = silhouettes(n, FRAMES, case.size, seed=n)
            times, rounds = time_interleaved({v: case.runner(v, sils) for v in args.variants},
                                             args.warmup, args.reps, args.seconds)
            out["times"].update({(label, n, v): t for v, t in times.items()})
            out["rounds"][(label, n)] = rounds
            print(f"  {n} x {FRAMES} frames, {rounds} rounds: "
                  + ", ".join(f"{v} {1e3 * t:.1f} ms" for v, t in times.items()), flush=True)
        if label in args.profile:
            wanted = {v: case.paths[v] for v in ("ort-fp32", "ort-w8a8", "ort-w8a8-fw", "ort-w4a4")
                      if v in case.paths}
            out["profiles"][label] = profile(wanted, profiled, args.threads, args.profile_runs, folder, args.spin)
    return out


def report(out: dict, args) -> None:
    times = out["times"]
    print(f"\n{'case':<9}{'input':<7}{'batch':>6}  {'variant':<13}{'ms/call':>10}{'vs torch fp32':>15}"
          f"{'vs ort fp32':>13}")
    for (label, n, v), t in times.items():
        h, w = CASES[label][1]
        print(f"{label:<9}{f'{h}x{w}':<7}{n:>6}  {v:<13}{1e3 * t:>10.1f}"
              f"{_times_faster(times[(label, n, 'torch-fp32')], t):>15}"
              f"{_times_faster(times[(label, n, 'ort-fp32')], t):>13}")
    print("'vs ...': times faster than that variant in the same rounds (above 1: faster); "
          "-fw: float convolutions' weights pre-dequantized; -ci: them as ConvInteger.")

    print("\nmodel bytes (weights: every convolution and the FCs)")
    for label, weights in out["weights"].items():
        print(f"  {label}: weights fp32 {weights['fp32']:,}, int8 codes {weights['int8']:,}, packed int4 "
              f"{weights['int4']:,} ({weights['fp32'] / weights['int4']:.1f}x less than fp32)")
        print("    files: " + ", ".join(f"{k} {b:,}" for k, b in out["files"][label].items()))

    for label, per_variant in out["nodes"].items():
        print(f"\nnode types of onnxruntime's optimised graph, {label}:")
        print(f"  {'op':<22}" + "".join(f"{v:>13}" for v in per_variant))
        for op in sorted(set().union(*per_variant.values())):
            print(f"  {op:<22}" + "".join(f"{c[op]:>13}" for c in per_variant.values()))
        share = out["share"][label]
        print(f"  MACs in integer kernels (blocks' conv1, FCs): {100 * share:.0f} %; were they free, the "
              f"graph would run at most {1 / (1 - share):.2f}x faster than in float")
    for (label, v), d in out["drift"].items():
        print(f"  {label} {v}: embeddings within {d:.1e} of {v[:-3]}'s largest value (float sums in "
              f"another order can move a code at a rounding boundary)")

    for label, per_variant in out["profiles"].items():
        print(f"\nper-node profile, {label} width, {args.profile_batch} x {FRAMES} frames ({args.profile_runs} "
              f"interleaved calls, ms):")
        print(f"  {'':<12}{'call':>8}{'outside':>9}{'kernels':>9}{'nodes':>7}{'conv1':>8}{'other':>8}"
              f"{'layout':>8}{'Q/DQ':>8}{'rest':>8}")
        for v, pr in per_variant.items():
            rest = pr["kernel_ms"] - pr["conv1_ms"] - pr["other_conv_ms"] - pr["layout_ms"] - pr["qdq_ms"]
            print(f"  {v:<12}{pr['run_ms']:>8.1f}{pr['between_ms']:>9.1f}{pr['kernel_ms']:>9.1f}{pr['nodes']:>7}"
                  + "".join(f"{x:>8.1f}" for x in (pr["conv1_ms"], pr["other_conv_ms"], pr["layout_ms"],
                                                    pr["qdq_ms"], rest)))
        print("  call: the median call; outside: its time outside the kernels; the rest: mean kernel ms per call:\n"
              "  conv1 = the blocks' conv1 (QLinearConv in the QDQ graphs), other = the other convolutions,\n"
              "  layout = Transpose and Reorder, Q/DQ = QuantizeLinear, DequantizeLinear and Clip")
        ops = sorted(set().union(*(pr["ops"] for pr in per_variant.values())),
                     key=lambda op: -max(pr["ops"].get(op, (0.0, 0))[0] for pr in per_variant.values()))
        print(f"  {'op':<22}" + "".join(f"{v:>16}" for v in per_variant))
        for op in ops[:10]:
            cells = [pr["ops"].get(op) for pr in per_variant.values()]
            print(f"  {op:<22}" + "".join(f"{f'{c[0]:.2f} ({c[1]})' if c else '-':>16}" for c in cells))

    print("\ngoals (issue 14):")
    goals = []
    for v in (v for v in ("ort-w8a8", "ort-w8a8-fw") if v in args.variants):
        if ("full", 1, v) in times:
            s = times[("full", 1, "torch-fp32")] / times[("full", 1, v)]
            goals.append(f"{v} >= {GOAL_FULL}x torch fp32, full width, one sequence: {s:.2f}x, "
                         f"{'met' if s >= GOAL_FULL else 'not met'}")
        for n in args.batches:
            if ("quarter", n, v) in times:
                s = times[("quarter", n, "ort-fp32")] / times[("quarter", n, v)]
                goals.append(f"{v} no slower than ort fp32, quarter width, {n} x {FRAMES} frames: {s:.2f}x, "
                             f"{'met' if s >= 1 else 'not met'}")
    print("\n".join(f"  {g}" for g in goals) or "  none measured in this run (they need ort-w8a8 at full "
                                                "width, one sequence, or at quarter width)")

if __name__ == "__main__":
    main()
