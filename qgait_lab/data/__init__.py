"""Gait data: SynthGait, OpenGait's layout, pretreatment, datasets, sampling, transforms.

The public API is re-exported here; each name lives in one small module:

* :mod:`~qgait_lab.data.opengait`: safe reading/writing of ``root/<id>/<type>/<view>/*.pkl``
  and of the partition json;
* :mod:`~qgait_lab.data.pretreat`: OpenGait's frame alignment and the PNG-tree converter;
* :mod:`~qgait_lab.data.synth`: the SynthGait generator and its cache
  (built on :mod:`~qgait_lab.data.body`, :mod:`~qgait_lab.data.render`, :mod:`~qgait_lab.data.raster`);
* :mod:`~qgait_lab.data.dataset`, :mod:`~qgait_lab.data.sampler`, :mod:`~qgait_lab.data.transforms`:
  training and test input pipelines;
* :mod:`~qgait_lab.data.gei`: the GEI + nearest-neighbour baseline.
"""

from qgait_lab.data.dataset import FrameSampling, GaitCollate, GaitDataset, GaitSample, sample_frames
from qgait_lab.data.gei import GEIBaseline, gei, gei_baseline, gei_features
from qgait_lab.data.opengait import (
    DATA_SUFFIXES,
    FRAME_SIZE,
    NumpyOnlyUnpickler,
    Partition,
    SequenceInfo,
    load_silhouettes,
    read_partition,
    save_silhouettes,
    scan_layout,
    sequence_dir,
    validate_silhouettes,
    write_partition,
    write_sequence,
)
from qgait_lab.data.pretreat import (PretreatReport, pretreat_frame, pretreat_sequence, pretreat_tree,
                                     read_frames)
from qgait_lab.data.sampler import PKSampler
from qgait_lab.data.synth import (
    ALL_VIEWS,
    DEFAULT_VIEWS,
    SynthConfig,
    ensure_synthgait,
    generate_synthgait,
    render_walk,
    sequence_types,
    synthgait_cache_root,
)
from qgait_lab.data.transforms import (
    Compose,
    Downsample2x,
    RandomErasing,
    RandomHorizontalFlip,
    RandomPerspective,
    RandomRotate,
    SilCutScale,
    build_transform,
    gaitbase_transform,
)

__all__ = [
    "ALL_VIEWS",
    "Compose",
    "DATA_SUFFIXES",
    "DEFAULT_VIEWS",
    "Downsample2x",
    "FRAME_SIZE",
    "FrameSampling",
    "GEIBaseline",
    "GaitCollate",
    "GaitDataset",
    "GaitSample",
    "NumpyOnlyUnpickler",
    "PKSampler",
    "Partition",
    "PretreatReport",
    "RandomErasing",
    "RandomHorizontalFlip",
    "RandomPerspective",
    "RandomRotate",
    "SequenceInfo",
    "SilCutScale",
    "SynthConfig",
    "build_transform",
    "ensure_synthgait",
    "gaitbase_transform",
    "gei",
    "gei_baseline",
    "gei_features",
    "generate_synthgait",
    "load_silhouettes",
    "pretreat_frame",
    "pretreat_sequence",
    "pretreat_tree",
    "read_frames",
    "read_partition",
    "render_walk",
    "sample_frames",
    "save_silhouettes",
    "scan_layout",
    "sequence_dir",
    "sequence_types",
    "synthgait_cache_root",
    "validate_silhouettes",
    "write_partition",
    "write_sequence",
]
