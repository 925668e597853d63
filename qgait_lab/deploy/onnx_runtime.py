"""An exported GaitBase run by onnxruntime's CPU provider, with no PyTorch model built.

:class:`OnnxModel` loads a file written by :mod:`.onnx_export`, checks that
its input and output shapes are a GaitBase's (silhouettes ``[*, *, h, w]``
in, embeddings ``[*, c, p]`` out), and embeds silhouettes.  ``node_types``
lists the operators of onnxruntime's *optimised* graph, which is where one
sees whether the QDQ pattern became integer kernels (``QLinearConv``,
``MatMulIntegerToFloat``) or stayed float ``Conv`` on dequantized weights.
"""
from __future__ import annotations

import collections
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_errors

from ..errors import ConfigError, DataFormatError
from .onnx_export import CODES_PREFIX, OUTPUT

__all__ = ["OnnxModel"]

_LOAD_ERRORS = (_ort_errors.InvalidProtobuf, _ort_errors.InvalidGraph, _ort_errors.Fail,
                _ort_errors.NoSuchFile, _ort_errors.InvalidArgument, _ort_errors.NotImplemented,
                _ort_errors.RuntimeException)


def _fixed(dims) -> bool:
    """Whether every dimension is a number (not a symbolic ``dim_param`` or unknown)."""
    return all(isinstance(d, int) for d in dims)


def _shape_text(shape) -> str:
    return "[" + ", ".join(str(d) if isinstance(d, int) else "*" for d in shape) + "]"


class OnnxModel:
    """A GaitBase ONNX file in an ``onnxruntime.InferenceSession`` (CPU provider).

    ``optimize=False`` runs the graph as written (every QDQ node in float32);
    ``True`` lets onnxruntime apply all its graph optimisations, among them the
    QDQ fusions into integer kernels.  ``threads`` sets the intra-op threads
    (onnxruntime's default: one per physical core).
    """

    def __init__(self, path: str | os.PathLike, optimize: bool = True, threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataFormatError(f"{self.path}: no such ONNX file")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ConfigError(f"threads must be a positive integer or None, got {threads!r}")
        self.optimize = optimize
        self.threads = threads
        self.session = self._session()
        self._read_signature()

    def _options(self) -> ort.SessionOptions:
        options = ort.SessionOptions()
        options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if self.optimize
                                            else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        options.log_severity_level = 3          # errors only: not the "hardware specific" save warning
        return options

    def _session(self, options: ort.SessionOptions | None = None) -> ort.InferenceSession:
        try:
            return ort.InferenceSession(str(self.path), options or self._options(),
                                        providers=["CPUExecutionProvider"])
        except _LOAD_ERRORS as err:
            raise DataFormatError(f"{self.path}: onnxruntime cannot load it as a model: {err}") from None

    def _read_signature(self) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        found = (f"input {', '.join(f'{i.name} {i.type} {_shape_text(i.shape)}' for i in inputs)}; "
                 f"output {', '.join(f'{o.name} {o.type} {_shape_text(o.shape)}' for o in outputs[:1])}")
        wanted = "input float [*, *, h, w] (silhouettes), output float [*, c, p] (embeddings)"
        if len(inputs) != 1 or not outputs:
            raise DataFormatError(f"{self.path}: expected one input and an output ({wanted}), found {found}")
        x = inputs[0]
        embeddings = next((o for o in outputs if o.name == OUTPUT), outputs[0])
        if x.type != "tensor(float)" or len(x.shape) != 4 or not _fixed(x.shape[2:]) \
                or embeddings.type != "tensor(float)" or len(embeddings.shape) != 3 \
                or not _fixed(embeddings.shape[1:]):
            raise DataFormatError(f"{self.path}: not a GaitBase export; expected {wanted} "
                                  f"with h, w, c, p fixed, found {found}")
        self.input_name, self.output_name = x.name, embeddings.name
        self.input_size: tuple[int, int] = (int(x.shape[2]), int(x.shape[3]))
        self.embed_dim, self.parts = int(embeddings.shape[1]), int(embeddings.shape[2])
        self.code_names = [o.name for o in outputs if o.name.startswith(CODES_PREFIX)]

    def check_fits(self, input_size: tuple[int, int], parts: int) -> None:
        """Refuse a model whose input size or pyramid parts are not the preset's."""
        wanted = (int(input_size[0]), int(input_size[1]))
        if self.input_size != wanted or self.parts != int(parts):
            h, w = self.input_size
            raise DataFormatError(
                f"{self.path}: the model takes silhouettes [*, *, {h}, {w}] and gives {self.parts} parts, "
                f"but the preset needs [*, *, {wanted[0]}, {wanted[1]}] and {int(parts)} parts; "
                f"export it for this preset's input size")

    def _feed(self, sils) -> dict[str, np.ndarray]:
        x = np.asarray(sils, dtype=np.float32)
        if x.ndim != 4 or tuple(x.shape[2:]) != self.input_size:
            raise DataFormatError(f"{self.path}: silhouettes of shape {tuple(x.shape)} do not fit the "
                                  f"model's input [n, frames, {self.input_size[0]}, {self.input_size[1]}]")
        return {self.input_name: np.ascontiguousarray(x)}

    def embed(self, sils: np.ndarray) -> np.ndarray:
        """Embeddings ``[n, c, p]`` float32 of silhouettes ``[n, frames, h, w]`` in [0, 1]."""
        return self.session.run([self.output_name], self._feed(sils))[0]

    def codes(self, sils: np.ndarray) -> dict[str, np.ndarray]:
        """The integer codes of every quantized layer's input, by layer name (int64)."""
        if not self.code_names:
            raise ConfigError(f"{self.path}: the model has no codes outputs; export it with "
                              f"export_onnx(..., expose_codes=True)")
        values = self.session.run(self.code_names, self._feed(sils))
        return {name[len(CODES_PREFIX):]: v.astype(np.int64) for name, v in zip(self.code_names, values)}

    def node_types(self) -> collections.Counter:
        """How many nodes of each op type onnxruntime's optimised graph holds (this session's settings)."""
        with tempfile.TemporaryDirectory() as folder:
            saved = Path(folder) / "optimized.onnx"
            options = self._options()
            options.optimized_model_filepath = str(saved)
            self._session(options)
            graph = onnx.load(str(saved)).graph
        return collections.Counter(node.op_type for node in graph.node)
