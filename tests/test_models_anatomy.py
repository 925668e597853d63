"""qgait_lab.models.anatomy: the shape after each part of Eq. 1 and the parameters of each part."""
from __future__ import annotations

import pytest
import torch

from qgait_lab.models import build_model, count_parameters
from qgait_lab.models.anatomy import gaitbase_parts, parameters_without_bnneck, parts_table


@pytest.fixture(scope="module")
def paper_model():
    return build_model("gaitbase", num_classes=74)


def test_paper_gaitbase_shapes_part_by_part(paper_model):
    parts = gaitbase_parts(paper_model, torch.rand(5, 64, 44))       # one sequence, no batch axis
    assert [p.symbol for p in parts] == ["S", "B", "P", "P", "F", "K"]
    assert [p.shape for p in parts] == [(1, 5, 64, 44), (5, 512, 16, 11), (1, 512, 16, 11), (1, 512, 16),
                                        (1, 256, 16), (1, 74, 16)]
    assert [p.per_frame for p in parts] == [False, True, False, False, False, False]


def test_parameter_counts_match_opengait(paper_model):
    parts = gaitbase_parts(paper_model, torch.rand(1, 3, 64, 44))
    by_module = {p.module: p.parameters for p in parts if p.module}
    assert sum(p.parameters for p in parts) == count_parameters(paper_model) == 7_305_408   # ARCHITECTURE.md §4
    assert by_module["FCs"] == 16 * 512 * 256
    assert by_module["BNNecks"] == 2 * 256 * 16 + 16 * 256 * 74
    assert by_module["HPP"] == 0
    assert parameters_without_bnneck(paper_model) == 6_994_112


def test_other_widths_batches_and_the_model_left_as_it_was():
    model = build_model("gaitbase", num_classes=9, channels=(16, 32, 64, 128))
    model.train()
    sils = torch.rand(2, 4, 32, 22)
    parts = gaitbase_parts(model, sils)
    assert parts[1].shape[:2] == (8, 128)                    # 2 sequences x 4 frames, per frame
    assert parts[2].shape[:2] == (2, 128)                    # the frame axis is gone
    assert parts[4].shape == (2, 256, 16) and parts[5].shape == (2, 9, 16)
    assert model.training
    for module in (model.Backbone.forward_block, model.HPP, model.FCs, model.BNNecks):
        assert not module._forward_hooks
    model.eval()
    with torch.no_grad():
        assert tuple(model(sils)["inference_feat"]["embeddings"].shape) == parts[4].shape


def test_parts_table(paper_model):
    parts = gaitbase_parts(paper_model, torch.rand(2, 64, 44))
    with_counts = parts_table(parts)
    assert "| total | | 7,305,408 |" in with_counts and "2,097,152" in with_counts
    without = parts_table(parts, parameters=False)
    assert "parameters" not in without and "2,097,152" not in without
    assert len(without.splitlines()) == 2 + len(parts)
    assert "1 × 256 × 16" in without
