"""``qgait-lab eval --onnx``: an exported model evaluated with onnxruntime alone.

No PyTorch model is built: the test sequences are read and transformed as
every evaluation reads them (:func:`qgait_lab.evaluation.eval_sequence`, the
test-time transform of :func:`qgait_lab.experiments.pipeline.eval_transform`),
embedded one sequence per onnxruntime call with all its frames (at most 720,
as :func:`~qgait_lab.evaluation.extract_features` takes them), and scored by
the preset's protocol (:func:`~qgait_lab.evaluation.evaluate_features`).
"""
from __future__ import annotations

import os

import torch

from ..evaluation import eval_sequence, evaluate_features
from ..models import build_model
from ..training.config import ExperimentConfig
from .pipeline import dataset_layout, eval_transform, input_size, load_datasets

__all__ = ["evaluate_onnx", "onnx_features"]


def onnx_features(model, dataset, transform=None, max_frames: int | None = 720,
                  progress: bool = False) -> torch.Tensor:
    """Embeddings ``[n, c, p]`` of every sequence of ``dataset`` by an :class:`OnnxModel`, in order."""
    from tqdm.auto import tqdm

    feats = []
    for index in tqdm(range(len(dataset)), desc="embedding test sequences (onnxruntime)", unit="seq",
                      leave=False, disable=not progress, dynamic_ncols=True):
        sils = eval_sequence(dataset, index, transform, max_frames)
        feats.append(torch.from_numpy(model.embed(sils[None].numpy())).float())
    return torch.cat(feats, 0) if feats else torch.empty(0)


def evaluate_onnx(cfg: ExperimentConfig, path: str | os.PathLike, *, test=None,
                  threads: int | None = None) -> dict[str, float]:
    """The metrics of the ONNX model at ``path`` on the preset's test split and protocol.

    The model is first checked against the preset's input size and pyramid
    parts (:meth:`OnnxModel.check_fits`, a :class:`~qgait_lab.errors.DataFormatError`
    naming the file when it does not fit); ``test`` is the test split when
    the caller has it loaded already.
    """
    from ..deploy.onnx_runtime import OnnxModel

    model = OnnxModel(path, threads=threads)
    with torch.device("meta"):     # the preset's GaitBase, for its pyramid parts (shapes only)
        parts = build_model("gaitbase", **cfg.model.arguments.get("gaitbase", {})).config["parts"]
    model.check_fits(input_size(cfg), parts)
    test = test if test is not None else load_datasets(cfg)[1]
    feats = onnx_features(model, test, eval_transform(cfg), progress=cfg.runtime.progress)
    return evaluate_features(feats, test, dataset_layout(cfg).protocol)
