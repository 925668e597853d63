"""The four datasets of the paper as OpenGait stores and evaluates them, written down as data.

Every place that needs a dataset's stored frame size, the model's input size, the
partition json's keys or the evaluation protocol reads it from :data:`LAYOUTS`.
The facts come from OpenGait: ``datasets/<name>/README.md`` and the
pretreatment and rearrangement scripts next to it (folder layout, stored size),
``datasets/<name>/<name>.json`` (partition keys), ``opengait/data/transform.py``
(``BaseSilCuttingTransform``: the cut) and ``opengait/evaluation/evaluator.py``
(the protocols).

**The cut.**  OpenGait decides it from the stored width alone: ``W // 64 * 10``
columns come off each side, so a 64 x 64 frame reaches the model as 64 x 44 and a
frame stored 64 x 44 stays 64 x 44 (:func:`~qgait_lab.data.transforms.cut_columns`).
The model input is therefore 64 x 44 for every dataset here (Sec. 4.1 of the paper),
whichever of its accepted sizes a file is stored at.

========  ==================  ==============================  ===================================
dataset   stored (H x W)      types / views                   protocol
========  ==================  ==============================  ===================================
CASIA-B   64 x 64             nm-01..06, bg-01/02, cl-01/02;  cross-view Rank-1, gallery nm-01..04,
                              11 views 000..180               probes NM nm-05/06, BG bg-*, CL cl-*
OU-MVLP   64 x 64             00, 01; 14 views 000..090,      cross-view Rank-1, gallery 01,
                              180..270                        probe 00
GREW      64 x 44 (as given)  00 (train), 01/02 (test         gallery 01, probe 02, Rank-1/5/10/20
                              gallery), 03 (unlabelled        (OpenGait's ``evaluate_real_scene``)
                              probes); view = a sequence id
Gait3D    64 x 64 or 64 x 44  camid<c>_videoid<v>; seq<n>     PROBE_SET against the rest,
                                                              Rank-1/5/10, mAP, mINP
========  ==================  ==============================  ===================================

GREW's official probes (``probe/03/<seq>``) carry no labels: OpenGait ranks them
for a submission to GREW's server (``GREW_submission``).  This project evaluates
GREW on its labelled test identities (gallery 01 against 02), the evaluation
OpenGait's ``evaluate_real_scene`` defines for GREW; the unlabelled probes are
left out of it.

SynthGait, the dataset generated here, uses CASIA-B's layout and protocol.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args


__all__ = ["DatasetLayout", "LAYOUTS", "LayoutName", "MODEL_INPUT", "get_layout"]

#: The model's input (H, W) at full resolution: 64 x 44 for every dataset (paper Sec. 4.1).
MODEL_INPUT: tuple[int, int] = (64, 44)


@dataclass(frozen=True)
class DatasetLayout:
    """How one dataset is stored and evaluated (see the module docstring's table)."""

    name: str                                   # the config value, e.g. "gait3d"
    title: str                                  # as papers write it, e.g. "Gait3D"
    stored_sizes: tuple[tuple[int, int], ...]   # accepted (H, W) of the stored frames
    partition_keys: tuple[str, ...]             # keys the partition json must hold
    types: str                                  # how sequence types are named
    views: str                                  # how views are named
    protocol: str                               # evaluation protocol (qgait_lab.evaluation)
    bitops_frames: int                          # frames per sequence of the paper's BitOPs
    source: str                                 # OpenGait files these facts come from

    def check_stored_size(self, size: tuple[int, int]) -> bool:
        return tuple(size) in self.stored_sizes

    def describe_sizes(self) -> str:
        return " or ".join(f"{h}x{w}" for h, w in self.stored_sizes)


LayoutName = Literal["casia-b", "oumvlp", "grew", "gait3d"]

LAYOUTS: dict[str, DatasetLayout] = {
    layout.name: layout for layout in (
        DatasetLayout(
            name="casia-b", title="CASIA-B", stored_sizes=((64, 64),),
            partition_keys=("TRAIN_SET", "TEST_SET"),
            types="nm-01..nm-06, bg-01, bg-02, cl-01, cl-02", views="000, 018, ..., 180 (11 views)",
            protocol="casia-b", bitops_frames=100,
            source="datasets/CASIA-B/, datasets/pretreatment.py, evaluator.py single_view_gallery_evaluation"),
        DatasetLayout(
            name="oumvlp", title="OU-MVLP", stored_sizes=((64, 64),),
            partition_keys=("TRAIN_SET", "TEST_SET"),
            types="00, 01", views="000, 015, ..., 090, 180, 195, ..., 270 (14 views)",
            protocol="oumvlp", bitops_frames=100,
            source="datasets/OUMVLP/rearrange_OUMVLP.py, datasets/pretreatment.py, evaluator.py "
                   "single_view_gallery_evaluation"),
        DatasetLayout(
            name="grew", title="GREW", stored_sizes=((64, 44),),
            partition_keys=("TRAIN_SET", "TEST_SET"),
            types="00 (training ids '<n>train'), 01 and 02 (test gallery), 03 (unlabelled probes, id 'probe')",
            views="one sequence id per folder",
            protocol="grew", bitops_frames=120,
            source="datasets/GREW/rearrange_GREW.py, datasets/pretreatment.py --dataset GREW, evaluator.py "
                   "evaluate_real_scene"),
        DatasetLayout(
            name="gait3d", title="Gait3D", stored_sizes=((64, 64), (64, 44)),
            partition_keys=("TRAIN_SET", "TEST_SET", "PROBE_SET"),
            types="camid<c>_videoid<v>", views="seq<n>",
            protocol="gait3d", bitops_frames=100,
            source="datasets/Gait3D/README.md (Gait3D-sils-64-64-pkl), Gait3D.json, evaluator.py evaluate_Gait3D"),
    )
}
assert set(LAYOUTS) == set(get_args(LayoutName))


def get_layout(name: str) -> DatasetLayout:
    """The layout called ``name``; a clear error lists the known ones."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise KeyError(f"unknown dataset layout {name!r}; known: {', '.join(LAYOUTS)}") from None
