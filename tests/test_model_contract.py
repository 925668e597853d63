"""The model contract: any model that keeps it trains, quantizes, distils and evaluates unchanged.

GaitSet and GaitPart (no classification head) train at full precision, with
LSQ-4 and with QGait-4 including IDD, through the same trainer as GaitBase;
and a model written here, only against the contract, does too.
"""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from qgait_lab.errors import ConfigError
from qgait_lab.experiments.pipeline import Experiment
from qgait_lab.models import build_model, gait_output
from qgait_lab.models.checkpoint import save_checkpoint
from qgait_lab.models.contract import ModelContractError, inference_embeddings, training_inputs
from qgait_lab.quant.convert import quantizers
from test_training import tiny_config

@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("contract")


def _records(result, kind="train"):
    lines = (result.stages[-1].run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


class StripNet(nn.Module):
    """A gait model written only against the contract: a frame CNN, a max over frames, 4 strips,
    a linear embedding per strip and (optionally) a linear classifier."""

    def __init__(self, num_classes: int, with_logits: bool = True) -> None:
        super().__init__()
        self.frames = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                                    nn.ReLU())
        self.embed = nn.Linear(8, 16)
        self.classify = nn.Linear(16, num_classes) if with_logits else None

    def forward(self, sils, seqL=None):
        n, s, h, w = sils.shape
        maps = self.frames(sils.reshape(n * s, 1, h, w)).reshape(n, s, 8, h, w)
        if seqL is not None:    # packed: one max per sequence
            maps = torch.stack([part.max(1).values[0] for part in maps.split(list(seqL), dim=1)])
        else:
            maps = maps.max(1).values                                   # [n, 8, h, w]
        strips = maps.reshape(maps.shape[0], 8, 4, -1).mean(-1)          # [n, 8, 4]
        embeddings = self.embed(strips.transpose(1, 2)).transpose(1, 2)   # [n, 16, 4]
        logits = None
        if self.classify is not None:
            logits = self.classify(embeddings.transpose(1, 2)).transpose(1, 2)   # [n, classes, 4]
        return gait_output(embeddings, logits)


def strip_net(num_classes: int) -> nn.Module:
    return StripNet(num_classes)


def strip_net_without_logits(num_classes: int) -> nn.Module:
    return StripNet(num_classes, with_logits=False)


@pytest.mark.parametrize("factory", [strip_net, strip_net_without_logits])
def test_a_model_written_against_the_contract_trains_quantizes_and_distils(workdir, factory):
    cfg = tiny_config(workdir, f"name=contract-{factory.__name__}", "runtime.channels_last=false")
    exp = Experiment(cfg, model_factory=factory)
    for method in ("fp", "lsq", "qgait"):
        result = exp.run(method)
        assert {"NM", "BG", "CL"} <= set(result.metrics)
        records = _records(result)
        assert records and all(torch.isfinite(torch.tensor(r["loss"])) for r in records)
        assert ("ce" in records[-1]) == (factory is strip_net)
        if method != "fp":
            # Every Conv2d and Linear of the model got its weight and activation quantizers.
            assert sum(1 for _ in quantizers(result.model)) == 2 * (4 if factory is strip_net else 3)
        if method == "qgait":
            assert records[-1]["distill"] > 0 and records[-1]["k"] > 1.0    # IDD, soft theta_k, growing k


@pytest.mark.parametrize("model", ["gaitset", "gaitpart"])
def test_gaitset_and_gaitpart_train_fp_lsq4_and_qgait4_with_idd(workdir, model):
    cfg = tiny_config(workdir, f"name=t4-{model}", f"model.name={model}", "quant.bits=4")
    assert cfg.stage2.distill.kind == "idd"
    exp = Experiment(cfg)
    for method in ("fp", "lsq", "qgait"):
        result = exp.run(method)
        assert type(result.model).__name__ == {"gaitset": "GaitSet", "gaitpart": "GaitPart"}[model]
        assert {"NM", "BG", "CL"} <= set(result.metrics)
        records = _records(result)
        # No classification head: the triplet loss alone (and IDD in QGait's fine-tune).
        assert "ce" not in records[-1] and records[-1]["triplet"] >= 0
        assert ("distill" in records[-1]) == (method == "qgait")
        assert result.label == {"fp": "FP32", "lsq": "LSQ-4", "qgait": "QGait-4"}[method]


def test_kd_on_a_model_without_logits_is_refused_by_name(workdir):
    cfg = tiny_config(workdir, "name=kd-gaitset", "model.name=gaitset", "stage2.distill.kind=kd")
    with pytest.raises(ConfigError, match=r"stage2\.distill\.kind.*'softmax'.*GaitSet.*distill\.kind=idd"):
        Experiment(cfg).run("qgait")


@pytest.mark.parametrize("model", ["gaitset", "gaitpart"])
def test_an_opengait_style_checkpoint_of_each_model_loads_as_the_teacher(workdir, model):
    cfg = tiny_config(workdir, f"name=ckpt-{model}", f"model.name={model}")
    torch.manual_seed(3)
    trained = build_model(model, **cfg.model.arguments[model])
    # OpenGait's checkpoint layout: the model's state dict under "model", beside the optimizer's.
    path = save_checkpoint({"model": trained.state_dict(), "optimizer": {}, "scheduler": {}, "iteration": 7},
                           workdir / f"{model}-00007.pt")
    loaded = tiny_config(workdir, f"name=ckpt-{model}", f"model.name={model}", f"full_precision.checkpoint={path}")
    result = Experiment(loaded).run("fp")
    for key, value in trained.state_dict().items():
        assert torch.equal(result.model.state_dict()[key].cpu(), value), key
    assert result.stages[0].iterations == 0 and {"NM", "BG", "CL"} <= set(result.metrics)


def test_contract_violations_are_named():
    with pytest.raises(ModelContractError, match="GaitNet's forward must return a dict with 'training_feat'"):
        training_inputs(torch.zeros(2, 3), "GaitNet")
    with pytest.raises(ModelContractError, match="no 'triplet' entry"):
        training_inputs({"training_feat": {"softmax": {"logits": torch.zeros(1)}}, "inference_feat": {}}, "M")
    with pytest.raises(ModelContractError, match=r"training_feat\['softmax'\] must be a dict with 'logits'"):
        training_inputs({"training_feat": {"triplet": {"embeddings": torch.zeros(1)}, "softmax": torch.zeros(1)},
                         "inference_feat": {}}, "M")
    with pytest.raises(ModelContractError, match="has 'arcface'"):
        training_inputs({"training_feat": {"triplet": {"embeddings": torch.zeros(1)}, "arcface": {}},
                         "inference_feat": {}}, "M")
    with pytest.raises(ModelContractError, match="inference_feat has no 'embeddings'"):
        inference_embeddings({"training_feat": {}, "inference_feat": {"features": torch.zeros(1)}}, "M")


def test_unknown_model_arguments_name_the_option(workdir):
    cfg = tiny_config(workdir, "model.name=gaitset", "model.arguments.gaitset.parts=8")
    with pytest.raises(ConfigError, match=r"model\.arguments\.gaitset: GaitSet has no argument 'parts'.*bin_num"):
        Experiment(cfg).build_model()
