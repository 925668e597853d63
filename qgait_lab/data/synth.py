"""SynthGait: a synthetic gait dataset in OpenGait's layout, made on a laptop.

Each subject is an articulated ellipsoid body (:mod:`~qgait_lab.data.body`)
with its own proportions and gait, and a bag and a coat of its own.  Each
sequence is one walk with per-walk jitter; the views of a sequence are the same
walk seen by several cameras, as in CASIA-B.  Frames are rendered larger than
the format (:mod:`~qgait_lab.data.render`), corrupted by segmentation noise,
and brought to 64 x 64 by :func:`~qgait_lab.data.pretreat.pretreat_sequence`,
the very function real PNG frames go through.

Sequence types follow CASIA-B: ``nm-01`` .. ``nm-06`` (normal), ``bg-01``,
``bg-02`` (bag), ``cl-01``, ``cl-02`` (coat).  Views are CASIA-B's ``000`` ..
``180`` in 18-degree steps; the default uses five of them.

Default dataset (``SynthConfig()``), sized so that a demo can train a
full-precision teacher and two 4-bit students in minutes on two CPU cores:

* 50 subjects ``001`` .. ``050``: ``TRAIN_SET`` = ``001`` .. ``030``,
  ``TEST_SET`` = ``031`` .. ``050`` (CASIA-B's 74/50 split, scaled);
* 10 sequences per subject (6 nm, 2 bg, 2 cl);
* 5 views ``018, 054, 090, 126, 162`` (36 degrees apart, so no two views are
  CASIA-B neighbours, and front/back views are left out);
* 30 frames per sequence at 25 fps (about one gait cycle);
* rendered at 128 pixels per 1.7 m, segmentation noise rate 0.3.

That is 2 500 sequences, 75 000 frames, about 310 MB of pkl files.  It takes
about 33 CPU-seconds (so roughly 20 s on two idle cores; 40-50 s measured on two
cores that other jobs kept busy) and is cached (see :func:`ensure_synthgait`).

Difficulty.  Identity is spread over many correlated cues (proportions, gait,
posture, asymmetries) whose population ranges overlap; no single number such
as mean width or area identifies a person (nearest neighbour on either gets
13-16 % same-view, chance being 5 %).  GEI + Euclidean nearest neighbour
(32 x 22, :func:`~qgait_lab.data.gei.gei_baseline`) on the default test split
gives Rank-1 (%)::

                 NM     BG     CL
    cross-view  28.1   21.8   13.8     (CASIA-B, 50 test ids: 22.7 15.8  6.6)
    same-view   92.0   52.0   24.5     (CASIA-B, 50 test ids: 97.7 58.5 13.1)

Views symmetric about 90 degrees (``054``/``126``) are the easiest cross-view
pairs, as in real data: with a left-right symmetric walker they differ only by
the walker's asymmetries and the perspective.

Determinism: every random draw comes from a ``numpy`` generator seeded by
``(seed, purpose, subject, ...)``: subjects from ``(seed, 1, subject)``, walks
from ``(seed, 2, subject, type)``, camera and noise from
``(seed, 3, subject, type, view)``.  Output therefore does not depend on the
number of worker processes or the order in which they run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from qgait_lab.data.body import Identity, jitter_identity, pose_ellipsoids, sample_identity
from qgait_lab.data.opengait import write_partition, write_sequence
from qgait_lab.data.pretreat import pretreat_sequence
from qgait_lab.data.render import Camera, render_silhouettes
from qgait_lab.errors import QGaitError

__all__ = [
    "ALL_VIEWS",
    "DEFAULT_VIEWS",
    "GENERATOR_VERSION",
    "SynthConfig",
    "ensure_synthgait",
    "generate_synthgait",
    "render_walk",
    "sequence_types",
    "subject_identity",
    "synthgait_cache_root",
]

#: Bumped whenever a change alters the generated data, so caches are rebuilt.
#: 3: pretreatment resizes with OpenCV's INTER_CUBIC (was Pillow's bicubic) and drops frames centred on column 0.
GENERATOR_VERSION = 3

#: CASIA-B's eleven views.
ALL_VIEWS: tuple[str, ...] = tuple(f"{a:03d}" for a in range(0, 181, 18))

#: The views of the default dataset.
DEFAULT_VIEWS: tuple[str, ...] = ("018", "054", "090", "126", "162")

_CONDITION_CODE = {"nm": 0, "bg": 1, "cl": 2}


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines a SynthGait dataset (and its cache key).

    Attributes:
        n_ids: number of subjects, named ``001``, ``002``, ...
        n_train: the first ``n_train`` subjects form ``TRAIN_SET``, the rest ``TEST_SET``.
        views: view names (three-digit degrees, multiples of 18 in 0..180).
        frames: frames per sequence.
        nm_seqs, bg_seqs, cl_seqs: sequences per condition.
        types: if given, only these sequence types are generated (e.g. for a
            small sample); they must exist under the counts above.
        seed: master seed.
        noise: segmentation-noise rate (0 clean, 1 heavy).
        jitter: scale of the per-walk variation (0: every walk of a subject is
            identical up to phase and noise).
        render_height: raw rendering size, in pixels per 1.7 m of height.
        fps: frame rate of the walk.
        heading_sd: sd of the walking direction around the nominal view, degrees.
        camera_distance: camera distance from the path centre, metres (sd 0.3 per camera and walk).
        camera_height: camera height, metres (sd 0.1 per camera and walk).
    """

    n_ids: int = 50
    n_train: int = 30
    views: tuple[str, ...] = DEFAULT_VIEWS
    frames: int = 30
    nm_seqs: int = 6
    bg_seqs: int = 2
    cl_seqs: int = 2
    types: tuple[str, ...] | None = None
    seed: int = 0
    noise: float = 0.3
    jitter: float = 1.0
    render_height: int = 128
    fps: float = 25.0
    heading_sd: float = 4.0
    camera_distance: float = 4.5
    camera_height: float = 1.0

    def __post_init__(self) -> None:
        if self.n_ids < 1 or not 0 <= self.n_train <= self.n_ids:
            raise ValueError(f"need n_ids >= 1 and 0 <= n_train <= n_ids, got {self.n_ids}, {self.n_train}")
        if self.frames < 1:
            raise ValueError(f"frames must be >= 1, got {self.frames}")
        for view in self.views:
            if view not in ALL_VIEWS:
                raise ValueError(f"view {view!r} is not one of {ALL_VIEWS}")
        if not self.views:
            raise ValueError("at least one view is needed")
        if self.types is not None:
            unknown = set(self.types) - set(self.all_types())
            if unknown:
                raise ValueError(f"types {sorted(unknown)} are not among {self.all_types()}")

    def all_types(self) -> tuple[str, ...]:
        """Every sequence type the counts define, e.g. ``nm-01`` .. ``cl-02``."""
        return sequence_types(self.nm_seqs, self.bg_seqs, self.cl_seqs)

    def selected_types(self) -> tuple[str, ...]:
        """The sequence types that are generated."""
        return self.all_types() if self.types is None else tuple(self.types)

    def labels(self) -> list[str]:
        """Subject ids ``001`` ... (zero-padded to at least three digits)."""
        width = max(3, len(str(self.n_ids)))
        return [f"{i:0{width}d}" for i in range(1, self.n_ids + 1)]

    def to_dict(self) -> dict:
        """A json-able dict of the fields."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    def cache_key(self) -> str:
        """Short hash of the fields and the generator version."""
        payload = json.dumps({"version": GENERATOR_VERSION, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def sequence_types(nm: int = 6, bg: int = 2, cl: int = 2) -> tuple[str, ...]:
    """CASIA-B-style type names: ``nm-01 .. nm-<nm>, bg-01 .., cl-01 ..``."""
    return tuple(f"{c}-{i:02d}" for c, n in (("nm", nm), ("bg", bg), ("cl", cl)) for i in range(1, n + 1))


def _rng(config: SynthConfig, *keys: int) -> np.random.Generator:
    return np.random.default_rng([config.seed, *keys])


def subject_identity(config: SynthConfig, index: int) -> Identity:
    """The body, gait, bag and coat of subject number *index* (0-based)."""
    return sample_identity(_rng(config, 1, index))


def _type_code(seq_type: str) -> tuple[int, int]:
    condition, number = seq_type.split("-")
    return _CONDITION_CODE[condition], int(number)


def render_walk(
    config: SynthConfig, index: int, seq_type: str, views: Sequence[str] | None = None, *, raw: bool = False
) -> dict[str, np.ndarray]:
    """Render one walk of subject *index* from several views.

    Args:
        config: dataset parameters.
        index: 0-based subject number.
        seq_type: e.g. ``"nm-01"``.
        views: view names; defaults to ``config.views``.
        raw: return the raw binary frames (``bool`` ``[T, R, W]``, size varying
            with the view) instead of the pretreated ``uint8`` ``[T', 64, 64]``.

    Returns:
        ``{view: frames}``.
    """
    views = tuple(config.views if views is None else views)
    person = subject_identity(config, index)
    cond_code, number = _type_code(seq_type)
    walk_rng = _rng(config, 2, index, cond_code, number)
    walker = jitter_identity(person, walk_rng, config.jitter)
    phase0 = float(walk_rng.uniform(0, 2 * np.pi))
    heading = float(walk_rng.normal(0.0, config.heading_sd))
    times = np.arange(config.frames) / config.fps
    centres, shapes, clip_z = pose_ellipsoids(walker, seq_type.split("-")[0], times, phase0)

    out: dict[str, np.ndarray] = {}
    for view in views:
        cam_rng = _rng(config, 3, index, cond_code, number, int(view))
        camera = Camera(
            view=float(view),
            distance=float(cam_rng.normal(config.camera_distance, 0.3)),
            height=float(cam_rng.normal(config.camera_height, 0.1)),
            heading=heading + float(cam_rng.normal(0.0, 1.0)),
        )
        frames = render_silhouettes(centres, shapes, clip_z, camera, config.render_height, config.noise, cam_rng)
        out[view] = frames if raw else pretreat_sequence(frames)
    return out


def _generate_subject(args: tuple[SynthConfig, int, str]) -> tuple[int, int]:
    config, index, root = args
    label = config.labels()[index]
    n_seq = n_frames = 0
    for seq_type in config.selected_types():
        for view, sils in render_walk(config, index, seq_type).items():
            if len(sils) == 0:  # pragma: no cover - a walker never vanishes, but stay safe
                continue
            write_sequence(root, label, seq_type, view, sils)
            n_seq += 1
            n_frames += len(sils)
    return n_seq, n_frames


def generate_synthgait(
    out_dir: str | os.PathLike[str],
    config: SynthConfig | None = None,
    *,
    workers: int = 2,
    overwrite: bool = False,
    progress: bool | Callable[[int, int], None] = False,
) -> Path:
    """Generate a SynthGait dataset into *out_dir*, atomically.

    The dataset is written into a hidden temporary folder beside *out_dir* and
    renamed into place when complete, so an interrupted run never leaves a
    half dataset.  *out_dir* then holds ``<id>/<type>/<view>/<view>.pkl``,
    ``partition.json`` and ``synthgait.json`` (config, version, counts).  The
    whole folder is byte-for-byte reproducible from the config.

    Args:
        out_dir: destination; must not exist unless *overwrite*.
        config: parameters (default :class:`SynthConfig`).
        workers: processes (the output does not depend on this).
        overwrite: replace an existing *out_dir*.
        progress: ``True`` shows a tqdm bar; a callable gets ``(done, total)``.

    Returns:
        *out_dir* as a :class:`~pathlib.Path`.
    """
    config = config or SynthConfig()
    out_dir = Path(out_dir).expanduser()
    if out_dir.exists() and not overwrite:
        raise QGaitError(f"{out_dir}: already exists (pass overwrite=True to replace it)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        jobs = [(config, i, str(tmp)) for i in range(config.n_ids)]
        bar = None
        if progress is True:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(jobs), desc="SynthGait", unit="subject")
        results = []

        def tick(result: tuple[int, int]) -> None:
            results.append(result)
            if bar is not None:
                bar.update(1)
            elif callable(progress):
                progress(len(results), len(jobs))

        if workers > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for result in pool.map(_generate_subject, jobs):
                    tick(result)
        else:
            for job in jobs:
                tick(_generate_subject(job))
        if bar is not None:
            bar.close()

        labels = config.labels()
        write_partition(tmp / "partition.json", labels[: config.n_train], labels[config.n_train :])
        meta = {
            "generator": "qgait_lab.data.synth",
            "version": GENERATOR_VERSION,
            "config": config.to_dict(),
            "cache_key": config.cache_key(),
            "sequences": sum(r[0] for r in results),
            "frames": sum(r[1] for r in results),
        }
        (tmp / "synthgait.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def synthgait_cache_root() -> Path:
    """Folder for cached datasets: ``$QGAIT_DATA_DIR`` or ``~/.cache/qgait-lab``."""
    env = os.environ.get("QGAIT_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "qgait-lab"


def ensure_synthgait(
    config: SynthConfig | None = None,
    *,
    cache_root: str | os.PathLike[str] | None = None,
    workers: int = 2,
    progress: bool | Callable[[int, int], None] = False,
) -> Path:
    """Path of the cached dataset for *config*, generating it only if missing.

    The dataset lives in ``<cache_root>/synthgait-<cache_key>``; a folder there
    counts as complete only with its ``synthgait.json``, which
    :func:`generate_synthgait` writes last, before the atomic rename.  If two
    processes race, both generate and the second rename finds the folder done
    and discards its copy.
    """
    config = config or SynthConfig()
    root = Path(cache_root).expanduser() if cache_root is not None else synthgait_cache_root()
    target = root / f"synthgait-{config.cache_key()}"
    if (target / "synthgait.json").is_file():
        return target
    try:
        generate_synthgait(target, config, workers=workers, overwrite=target.exists(), progress=progress)
    except OSError:
        if (target / "synthgait.json").is_file():  # another process finished first
            return target
        raise
    return target
