"""``qgait-lab export``: a trained checkpoint to an integer model file, with the figures that vouch for it.

The steps are the ones training took, in reverse: build the config's float
GaitBase, quantize it as training did (:func:`~qgait_lab.experiments.pipeline.quantize_for`),
load the checkpoint, read its integer form (:func:`~qgait_lab.deploy.build_integer_model`)
and write it, as a torch file (:mod:`.serialize`) or a QDQ ONNX graph
(:mod:`.onnx_export`).  :func:`export_model` then measures, on a few test
sequences of the preset's dataset, how closely the integer reference follows
the fake-quantized model (the acceptance bar of :mod:`.parity`), and for ONNX
how closely onnxruntime follows the reference computed in the graph's own
arithmetic (``integer_forward(..., bias="onnx")``: the BatchNorm shift as an
int32 bias where onnxruntime runs an integer kernel), and how far that
arithmetic moves the codes from the fake-quantized model's.
"""
from __future__ import annotations

import copy
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import torch
import yaml
from torch import Tensor, nn

from ..errors import ConfigError
from ..evaluation import eval_sequence
from ..models.checkpoint import load_checkpoint, load_model_state, model_state_of
from ..training.config import ExperimentConfig
from .methods import METHODS, QUANTIZED_METHODS
from .pipeline import build_float_model, eval_transform, input_size, load_datasets, quantize_for
from ..deploy.integer_model import IntegerGaitBase, build_integer_model
from ..deploy.parity import CodeAgreement, compare_codes, embedding_cosine, fake_quant_codes
from ..deploy.reference import integer_forward
from ..deploy.serialize import model_bytes, save_integer_model, will_pack

__all__ = ["ONNX_BIAS", "ExportFormat", "ExportReport", "Parity", "export_checkpoint", "export_model",
           "find_run_checkpoint", "format_export_report", "format_from_path", "load_quantized_model",
           "parity_sequences"]

ExportFormat = Literal["onnx", "torch"]
FORMATS: tuple[str, ...] = get_args(ExportFormat)

#: Frames per parity sequence: enough for the temporal max to matter, few enough for the full-width model.
PARITY_FRAMES = 30


# -- finding and loading the model -----------------------------------------------------------

def format_from_path(path: str | os.PathLike, fmt: str | None) -> ExportFormat:
    """``--format``, or the one that ``--out``'s suffix names (``.onnx``; ``.pt`` / ``.pth``)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        return fmt  # type: ignore[return-value]
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix in (".pt", ".pth"):
        return "torch"
    raise ConfigError(f"--out {path}: say --format onnx or torch (or name the file .onnx / .pt)")


def find_run_checkpoint(run: str | os.PathLike, method: str, bits: int,
                        runs_dir: str | os.PathLike = "runs") -> Path:
    """The final checkpoint of ``method`` at ``bits`` in a run folder (``runs/<name>``).

    Stages live in ``<label>-<fingerprint>/checkpoints/last.pt``
    (:mod:`qgait_lab.experiments.pipeline`): the final one is ``<method>-wXaX-stage2``,
    or for the baselines trained without a fine-tune stage ``<method>-wXaX-stage1``
    (QGait's stage 1 is the LSQ baseline's, so QGait needs its stage 2).  Of several
    matches (runs with other settings) the finished one written last is taken.
    """
    folder = Path(run).expanduser()
    if not folder.is_dir() and not folder.is_absolute() and (Path(runs_dir) / folder).is_dir():
        folder = Path(runs_dir) / folder
    if not folder.is_dir():
        raise ConfigError(f"--run {run}: no such run folder (give runs/<name>, as `qgait-lab train` "
                          f"writes it, or --checkpoint PATH)")
    recipe = METHODS[method]
    labels = [recipe.stage_folder("stage2", bits)]
    if recipe.stages[-1].only_with_equal_budget:    # a baseline trained without quant.equal_budget
        labels.append(recipe.stage_folder("stage1", bits))
    for label in labels:
        found = [d for d in folder.glob(f"{label}-*") if (d / "checkpoints" / "last.pt").is_file()]
        if found:
            newest = max(found, key=lambda d: ((d / "result.json").is_file(),
                                               (d / "checkpoints" / "last.pt").stat().st_mtime))
            return newest / "checkpoints" / "last.pt"
    there = sorted(d.name for d in folder.iterdir() if d.is_dir())
    raise ConfigError(f"--run {folder}: no checkpoint of --method {method} --bits {bits} (looked for "
                      f"{' or '.join(f'{l}-*/checkpoints/last.pt' for l in labels)}); the folder holds: "
                      f"{', '.join(there) if there else 'nothing'}")


def _check_run_config(cfg: ExperimentConfig, checkpoint: Path) -> None:
    """A stage folder records its config: refuse a checkpoint trained at other bits or widths."""
    saved = checkpoint.parent.parent / "config.yaml"
    if checkpoint.parent.name != "checkpoints" or not saved.is_file():
        return
    try:
        trained = yaml.safe_load(saved.read_text()) or {}
        bits, model = trained["quant"]["bits"], trained["model"]
        name, arguments = model["name"], model.get("arguments", {}).get(model["name"], {})
    except (yaml.YAMLError, KeyError, TypeError, AttributeError):
        return
    if bits != cfg.quant.bits:
        raise ConfigError(f"{checkpoint}: trained at {bits} bits ({saved}), but --bits (or the preset) "
                          f"says {cfg.quant.bits}; pass --bits {bits}")
    built = cfg.model.arguments.get(cfg.model.name, {})
    if (name, arguments) != (cfg.model.name, built):
        raise ConfigError(f"{checkpoint}: trained as {name} {arguments} ({saved}), but preset {cfg.name!r} "
                          f"builds {cfg.model.name} {built}; pick the preset it was trained with")


def load_quantized_model(cfg: ExperimentConfig, checkpoint: str | os.PathLike, method: str) -> nn.Module:
    """The config's GaitBase, fake-quantized by ``method`` and loaded from ``checkpoint``, on the CPU."""
    if method not in QUANTIZED_METHODS:
        raise ConfigError(f"--method {method}: only a quantization-aware model has an integer form; "
                          f"export a model trained with --method {', '.join(QUANTIZED_METHODS)}")
    path = Path(checkpoint)
    state = model_state_of(load_checkpoint(path))
    if not any(".weight_quantizer." in k or ".act_quantizer." in k for k in state):
        raise ConfigError(f"{path}: holds a float model (no quantizer state), which has no integer form; "
                          f"export a checkpoint trained with --method {', '.join(QUANTIZED_METHODS)}")
    _check_run_config(cfg, path)
    neck = state.get("BNNecks.fc_bin")
    if torch.is_tensor(neck) and neck.dim() == 3:
        num_classes = int(neck.shape[2])     # the training split's identities, without reading it
    else:
        num_classes = load_datasets(cfg)[0].num_classes
    cpu = torch.device("cpu")
    model = quantize_for(cfg, build_float_model(cfg, num_classes), method, cpu)
    load_model_state(model, state, str(path))
    return model.eval()


# -- parity ------------------------------------------------------------------------------------

def parity_sequences(cfg: ExperimentConfig, count: int, test=None, frames: int = PARITY_FRAMES) -> Tensor:
    """``count`` test sequences spread over the test split, as evaluation reads them, ``[n, f, h, w]``.

    All cut to the shortest one's first frames (at most ``frames``) so that they form one batch.
    """
    test = test if test is not None else load_datasets(cfg)[1]
    transform = eval_transform(cfg)
    picks = np.unique(np.linspace(0, len(test) - 1, num=min(count, len(test))).round().astype(int))
    seqs = [eval_sequence(test, int(i), transform, max_frames=frames) for i in picks]
    length = min(len(s) for s in seqs)
    return torch.stack([s[:length] for s in seqs])


#: The integer reference in the exported graph's arithmetic (:mod:`.onnx_export`): the folded BatchNorm
#: shift as an int32 bias where onnxruntime runs an integer kernel (``QLinearConv`` takes no other form).
ONNX_BIAS = "onnx"


@dataclass
class Parity:
    """The figures of :mod:`.parity` on ``sequences`` test sequences of ``frames`` frames."""

    sequences: int
    frames: int
    reference: CodeAgreement                  # integer reference vs fake-quantized
    reference_cosine: float
    as_onnx: CodeAgreement | None = None      # the reference in the ONNX graph's arithmetic vs fake-quantized
    as_onnx_cosine: float | None = None
    onnx_exact: CodeAgreement | None = None   # onnxruntime, optimisations off, vs that reference
    onnx_cosine_plain: float | None = None
    onnx_cosine: float | None = None          # onnxruntime as deployed (optimisations on) vs that reference
    onnx_vs_fake_cosine: float | None = None  # onnxruntime as deployed vs the fake-quantized model
    onnx_nodes: dict[str, int] = field(default_factory=dict)


def _onnx_parity(integer: IntegerGaitBase, path: Path, size: tuple[int, int], sils: Tensor,
                 fake: tuple[dict[str, Tensor], Tensor]) -> dict:
    from ..deploy.onnx_export import export_onnx
    from ..deploy.onnx_runtime import OnnxModel

    fake_codes, fake_embeddings = fake
    reference = integer_forward(integer, sils, bias=ONNX_BIAS)
    x = sils.numpy().astype(np.float32)
    deployed = OnnxModel(path)
    embedded = torch.from_numpy(deployed.embed(x))
    out = {"as_onnx": compare_codes(fake_codes, reference.codes),
           "as_onnx_cosine": embedding_cosine(reference.embeddings, fake_embeddings),
           "onnx_cosine": embedding_cosine(embedded, reference.embeddings),
           "onnx_vs_fake_cosine": embedding_cosine(embedded, fake_embeddings),
           "onnx_nodes": dict(deployed.node_types())}
    with tempfile.TemporaryDirectory() as tmp:
        probe = export_onnx(integer, Path(tmp) / "codes.onnx", size, expose_codes=True)
        plain = OnnxModel(probe, optimize=False)
        codes = {name: torch.from_numpy(c) for name, c in plain.codes(x).items()}
        out["onnx_exact"] = compare_codes(reference.codes, codes)
        out["onnx_cosine_plain"] = embedding_cosine(torch.from_numpy(plain.embed(x)), reference.embeddings)
    return out


# -- export ------------------------------------------------------------------------------------

@dataclass
class ExportReport:
    """What :func:`export_model` wrote and measured."""

    path: Path
    format: ExportFormat
    source: str
    method: str
    integer: IntegerGaitBase
    file_bytes: int
    packed: bool
    parity: Parity | None = None


def export_model(model: nn.Module, cfg: ExperimentConfig, method: str, out: str | os.PathLike,
                 fmt: ExportFormat, *, source: str = "the model", test=None, sequences: int = 8) -> ExportReport:
    """Write the integer form of the fake-quantized ``model`` to ``out`` and measure its parity.

    ``test`` is the preset's test split (loaded when needed and not given);
    ``sequences`` test sequences give the parity figures (0: none).  Raises
    :class:`~qgait_lab.errors.ConfigError` naming ``source`` and the options
    when the model has no integer form (float layers, quantizers never
    initialised, codes wider than 8 bits).
    """
    model = copy.deepcopy(model).cpu().eval()
    try:
        integer = build_integer_model(model, method)
    except ConfigError as err:
        raise ConfigError(f"{source} (--method {method} --bits {cfg.quant.bits}): {err}") from None
    out = Path(out)
    size = input_size(cfg)
    packed = False
    if fmt == "onnx":
        from ..deploy.onnx_export import export_onnx
        export_onnx(integer, out, size)
    elif fmt == "torch":
        packed = will_pack(integer)
        save_integer_model(integer, out, pack=packed)
    else:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    report = ExportReport(out, fmt, source, method, integer, out.stat().st_size, packed)
    if sequences > 0:
        sils = parity_sequences(cfg, sequences, test)
        fake = fake_quant_codes(model, integer, sils)
        reference = integer_forward(integer, sils)
        report.parity = Parity(len(sils), sils.shape[1], compare_codes(fake[0], reference.codes),
                               embedding_cosine(reference.embeddings, fake[1]))
        if fmt == "onnx":
            for key, value in _onnx_parity(integer, out, size, sils, fake).items():
                setattr(report.parity, key, value)
    return report


def export_checkpoint(cfg: ExperimentConfig, checkpoint: str | os.PathLike, method: str,
                      out: str | os.PathLike, fmt: ExportFormat, *, sequences: int = 8) -> ExportReport:
    """:func:`load_quantized_model`, then :func:`export_model`."""
    model = load_quantized_model(cfg, checkpoint, method)
    return export_model(model, cfg, method, out, fmt, source=str(checkpoint), sequences=sequences)


# -- the summary -------------------------------------------------------------------------------

def _size(n: int) -> str:
    for unit, step in (("MB", 2 ** 20), ("KB", 2 ** 10)):
        if n >= step:
            return f"{n / step:.1f} {unit}"
    return f"{n} B"


def format_export_report(report: ExportReport) -> str:
    """The summary ``qgait-lab export`` prints: layers, bits, sizes, parity."""
    m = report.integer
    rows = m.summary_rows()
    width = max(len(r["layer"]) for r in rows)
    lines = [f"exported {METHODS[report.method].label(m.bits)} ({report.method}, w{m.bits}a{m.bits}) "
             f"from {report.source}",
             f"  -> {report.path} ({report.format}, {_size(report.file_bytes)})", "",
             f"{'layer':<{width}}  {'weight':>14}  w bits  a bits  input codes"]
    lines += [f"{r['layer']:<{width}}  {r['weight']:>14}  {r['w_bits']:>6}  {r['a_bits']:>6}  {r['a_codes']}"
              for r in rows]
    fp32, int8, int4 = (model_bytes(m, k) for k in ("fp32", "int8", "int4"))
    weights = f"fp32 {_size(fp32)}, int8 {_size(int8)} ({fp32 / int8:.1f}x smaller)"
    if will_pack(m):
        weights += f", packed int4 {_size(int4)} ({fp32 / int4:.1f}x smaller)"
    if report.format == "torch":
        held = "packed int4 weight codes" if report.packed else "int8 weight codes"
    else:
        held = "int8 weight codes: the graph runs narrower codes in int8 containers"
    lines += ["", f"weights: {weights}",
              f"this file: {_size(report.file_bytes)}, {fp32 / report.file_bytes:.1f}x smaller than the fp32 "
              f"weights ({held}; plus steps, grids and BatchNorm)"]
    p = report.parity
    if p is not None:
        lines += ["", f"parity on {p.sequences} test sequences x {p.frames} frames:",
                  f"  integer reference vs fake-quantized: codes {p.reference}; embedding cosine "
                  f"{p.reference_cosine:.6f}"]
        if p.as_onnx is not None:
            lines.append(f"  reference in the ONNX graph's arithmetic (int32 BN bias in the integer kernels) vs "
                         f"fake-quantized: codes {p.as_onnx}; embedding cosine {p.as_onnx_cosine:.6f}")
        if p.onnx_exact is not None:
            lines.append(f"  onnxruntime, optimisations off, vs that reference: codes {p.onnx_exact}; "
                         f"embedding cosine {p.onnx_cosine_plain:.6f}")
        if p.onnx_cosine is not None:
            lines.append(f"  onnxruntime as deployed (optimisations on): embedding cosine {p.onnx_cosine:.6f} "
                         f"against that reference, {p.onnx_vs_fake_cosine:.6f} against the fake-quantized model")
        if p.onnx_nodes:
            nodes = ", ".join(f"{k} {v}" for k, v in sorted(p.onnx_nodes.items(), key=lambda kv: -kv[1]))
            lines.append(f"  onnxruntime's optimised graph: {nodes}")
    return "\n".join(lines)
