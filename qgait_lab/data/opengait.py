"""Safe reading and writing of OpenGait's silhouette layout.

OpenGait stores a dataset as one folder per sequence::

    root/<id>/<type>/<view>/<view>.pkl      # one uint8 array, T x 64 x 64

plus a *partition* json with the ids of the two splits::

    {"TRAIN_SET": ["001", ...], "TEST_SET": ["075", ...]}

The arrays are pickled, and :func:`pickle.load` runs whatever code a pickle asks
for.  Dataset files come from the internet, so this module never uses plain
``pickle``: :class:`NumpyOnlyUnpickler` admits the handful of numpy callables a
pickled ``ndarray`` needs and refuses every other global *before* it is looked
up, so a malicious payload never runs.  ``.npy`` (read with
``allow_pickle=False``) and ``.npz`` files are accepted as well.

Every array read is validated by :func:`validate_silhouettes`; every problem is
reported as :class:`~qgait_lab.errors.DataFormatError` with the file's path in
the message.

Dtype policy (a choice, made explicit here):

* ``uint8`` is the format and passes unchanged;
* ``bool`` becomes ``uint8`` with ``True -> 255``;
* other integer dtypes are accepted when every value lies in 0..255 and are
  converted to ``uint8``;
* floating-point arrays are **refused**: a float file is ambiguous (0..1 or
  0..255?) and guessing silently would change the network's input scale.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from qgait_lab.errors import DataFormatError, UnsafePickleError

__all__ = [
    "DATA_SUFFIXES",
    "FRAME_SIZE",
    "NumpyOnlyUnpickler",
    "Partition",
    "SequenceInfo",
    "load_silhouettes",
    "read_partition",
    "save_silhouettes",
    "scan_layout",
    "sequence_dir",
    "validate_silhouettes",
    "write_partition",
    "write_sequence",
]

#: File suffixes recognised as silhouette arrays inside a sequence folder.
DATA_SUFFIXES: tuple[str, ...] = (".pkl", ".npy", ".npz")

#: Frame size (height, width) of OpenGait's pretreated silhouettes.
FRAME_SIZE: tuple[int, int] = (64, 64)


# --------------------------------------------------------------------------
# Restricted unpickling
# --------------------------------------------------------------------------


def _numpy_attr(*candidates: str) -> Callable[..., Any]:
    """Return the first importable ``module:name`` among *candidates*.

    numpy 2 moved ``numpy.core`` to ``numpy._core``; pickles written by either
    major version name their own spelling, so both map to the live function.
    """
    import importlib

    for candidate in candidates:
        module_name, name = candidate.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if hasattr(module, name):
            return getattr(module, name)
    raise ImportError(f"none of {candidates} exists in this numpy")  # pragma: no cover


_REAL_RECONSTRUCT = _numpy_attr("numpy._core.multiarray:_reconstruct", "numpy.core.multiarray:_reconstruct")
_REAL_FROMBUFFER = _numpy_attr("numpy._core.numeric:_frombuffer", "numpy.core.numeric:_frombuffer")


def _safe_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    # ndarray subclasses could carry behaviour of their own; only the base class is data.
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"array subtype {subtype!r} is not numpy.ndarray")
    return _REAL_RECONSTRUCT(subtype, shape, dtype)


def _safe_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    # Protocol 5 (Python 3.14's default) pickles arrays through numpy's _frombuffer.
    if not isinstance(buf, (bytes, bytearray, memoryview, pickle.PickleBuffer)):
        raise UnsafePickleError(f"array buffer of type {type(buf).__name__} is not bytes")
    return _REAL_FROMBUFFER(buf, dtype, shape, order)


def _safe_codecs_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    # Protocols 0-2 spell bytes as _codecs.encode(text, "latin1"); nothing else is needed.
    if not isinstance(obj, str) or encoding != "latin1" or errors != "strict":
        raise UnsafePickleError("_codecs.encode is admitted only as encode(str, 'latin1')")
    return obj.encode("latin1")


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and nothing else.

    ``find_class`` is the only door through which a pickle reaches Python
    callables (``__reduce__`` payloads name their callable as a global).  This
    class answers it from a fixed allow-list and raises
    :class:`~qgait_lab.errors.UnsafePickleError` for any other name, *before*
    importing or calling anything.  The admitted callables are wrappers that
    check their arguments, so even the allowed names cannot be steered into
    building an ``ndarray`` subclass or decoding arbitrary codecs.

    Admitted globals (both numpy 1 ``numpy.core`` and numpy 2 ``numpy._core``
    spellings): ``multiarray._reconstruct``, ``numeric._frombuffer``,
    ``numpy.ndarray``, ``numpy.dtype``; and ``_codecs.encode`` restricted to
    ``latin1`` text, which protocols 0-2 use to spell raw bytes.
    """

    _ALLOWED: dict[tuple[str, str], Any] = {
        ("numpy.core.multiarray", "_reconstruct"): _safe_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _safe_reconstruct,
        ("numpy.core.numeric", "_frombuffer"): _safe_frombuffer,
        ("numpy._core.numeric", "_frombuffer"): _safe_frombuffer,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _safe_codecs_encode,
    }

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102 - documented on the class
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"refused global {module}.{name}: only numpy arrays are admitted") from None

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102
        raise UnsafePickleError("persistent ids are not admitted")


def _unpickle_array(path: Path) -> Any:
    try:
        with open(path, "rb") as fh:
            return NumpyOnlyUnpickler(fh).load()
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{path}: unsafe pickle refused ({exc})") from None
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise DataFormatError(f"{path}: truncated or corrupt pickle ({type(exc).__name__}: {exc})") from None
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read file ({exc})") from None


def _load_npy(path: Path) -> Any:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise UnsafePickleError(f"{path}: object arrays (pickled .npy) are refused") from None
        raise DataFormatError(f"{path}: truncated or corrupt .npy file ({exc})") from None
    except (EOFError, OSError) as exc:
        raise DataFormatError(f"{path}: truncated or corrupt .npy file ({exc})") from None


def _load_npz(path: Path) -> Any:
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.keys())
            if len(keys) == 1:
                key = keys[0]
            elif "sils" in keys:
                key = "sils"
            else:
                raise DataFormatError(f"{path}: .npz holds arrays {keys}; expected one array or one named 'sils'")
            return archive[key]
    except DataFormatError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise UnsafePickleError(f"{path}: object arrays (pickled .npz members) are refused") from None
        raise DataFormatError(f"{path}: truncated or corrupt .npz file ({exc})") from None
    except Exception as exc:  # zipfile raises BadZipFile, EOFError, OSError, ...
        raise DataFormatError(f"{path}: truncated or corrupt .npz file ({type(exc).__name__}: {exc})") from None


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


FrameSizes = tuple[int, int] | Sequence[tuple[int, int]] | None


def _allowed_sizes(frame_size: FrameSizes) -> list[tuple[int, int]] | None:
    if frame_size is None:
        return None
    if len(frame_size) == 2 and all(isinstance(v, int) for v in frame_size):
        return [tuple(frame_size)]
    return [tuple(size) for size in frame_size]


def validate_silhouettes(
    array: Any, source: str | os.PathLike[str], frame_size: FrameSizes = FRAME_SIZE
) -> np.ndarray:
    """Check that *array* is a silhouette sequence and return it as ``uint8``.

    Args:
        array: the object read from a file.
        source: the file it came from; every error message starts with it.
        frame_size: required ``(H, W)``, or a list of accepted sizes (Gait3D
            is stored 64 x 64 or 64 x 44); ``None`` accepts any size.

    Returns:
        a C-contiguous ``uint8`` array of shape ``[T, H, W]`` with ``T >= 1``.

    Raises:
        DataFormatError: wrong type, dtype, number of dimensions, frame size,
            empty sequence, all-zero sequence, or values outside 0..255.
    """
    where = str(source)
    if not isinstance(array, np.ndarray) or type(array) is not np.ndarray:
        raise DataFormatError(f"{where}: holds a {type(array).__name__}, expected a numpy array")
    if array.ndim != 3:
        raise DataFormatError(f"{where}: expected 3 dimensions (T, H, W), got shape {array.shape}")
    if array.shape[0] == 0:
        raise DataFormatError(f"{where}: empty sequence (T = 0 frames)")
    allowed = _allowed_sizes(frame_size)
    if allowed is not None and tuple(array.shape[1:]) not in allowed:
        expected = " or ".join(f"{h}x{w}" for h, w in allowed)
        raise DataFormatError(
            f"{where}: frame size {array.shape[1]}x{array.shape[2]} differs from the expected {expected}"
        )
    if min(array.shape[1:]) == 0:
        raise DataFormatError(f"{where}: frames of size {array.shape[1]}x{array.shape[2]} are empty")

    kind = array.dtype.kind
    if array.dtype == np.uint8:
        out = array
    elif kind == "b":
        out = array.astype(np.uint8) * np.uint8(255)
    elif kind in "iu":
        lo, hi = int(array.min()), int(array.max())
        if lo < 0 or hi > 255:
            raise DataFormatError(f"{where}: values outside 0..255 (min {lo}, max {hi}) in {array.dtype} array")
        out = array.astype(np.uint8)
    elif kind == "f":
        raise DataFormatError(
            f"{where}: floating-point dtype {array.dtype} is not accepted; silhouettes are uint8 0..255 "
            "(convert explicitly, e.g. (x * 255).round().astype(np.uint8) for values in [0, 1])"
        )
    else:
        raise DataFormatError(f"{where}: dtype {array.dtype} is not a silhouette dtype (expected uint8)")
    if not out.any():
        raise DataFormatError(f"{where}: all {out.shape[0]} frames are empty (every pixel is 0); "
                              "segmentation failed for this sequence, so remove the file")
    return np.ascontiguousarray(out)


def load_silhouettes(path: str | os.PathLike[str], frame_size: FrameSizes = FRAME_SIZE) -> np.ndarray:
    """Read one silhouette sequence file safely and validate it.

    ``.pkl`` files go through :class:`NumpyOnlyUnpickler`; ``.npy`` files are
    read with ``allow_pickle=False``; ``.npz`` files must hold exactly one array
    or one named ``sils``.

    Returns:
        ``uint8`` array ``[T, H, W]`` (see :func:`validate_silhouettes`).

    Raises:
        UnsafePickleError: the file asks for anything but numpy arrays.
        DataFormatError: unreadable, truncated or invalid content.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    if suffix == ".pkl":
        array = _unpickle_array(path)
    elif suffix == ".npy":
        array = _load_npy(path)
    elif suffix == ".npz":
        array = _load_npz(path)
    else:
        raise DataFormatError(f"{path}: unknown suffix {suffix!r}; expected one of {DATA_SUFFIXES}")
    return validate_silhouettes(array, path, frame_size)


def save_silhouettes(path: str | os.PathLike[str], sils: np.ndarray, frame_size: tuple[int, int] | None = None) -> Path:
    """Validate *sils* and write it to *path* (``.pkl``, ``.npy`` or ``.npz``).

    The file is written to a temporary name and renamed into place, so a reader
    never sees a half-written file.  Pickles use protocol 4, which every Python
    3 that OpenGait supports can read.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in DATA_SUFFIXES:
        raise DataFormatError(f"{path}: unknown suffix {suffix!r}; expected one of {DATA_SUFFIXES}")
    array = validate_silhouettes(np.asarray(sils), path, frame_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    if suffix == ".pkl":
        pickle.dump(array, buf, protocol=4)
    elif suffix == ".npy":
        np.save(buf, array, allow_pickle=False)
    else:
        np.savez_compressed(buf, sils=array)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(buf.getbuffer())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# --------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class SequenceInfo:
    """Where one sequence lives and what it is.

    Attributes:
        label: subject id, e.g. ``"001"``.
        type: sequence type (condition and index), e.g. ``"nm-01"``.
        view: camera view, e.g. ``"090"``.
        path: the data file inside ``root/<label>/<type>/<view>/``.
    """

    label: str
    type: str
    view: str
    path: Path

    @property
    def condition(self) -> str:
        """The type without its index (``"nm-01" -> "nm"``)."""
        return self.type.split("-")[0]


def sequence_dir(root: str | os.PathLike[str], label: str, seq_type: str, view: str) -> Path:
    """The folder ``root/<label>/<seq_type>/<view>`` of one sequence."""
    return Path(root) / label / seq_type / view


def write_sequence(
    root: str | os.PathLike[str],
    label: str,
    seq_type: str,
    view: str,
    sils: np.ndarray,
    *,
    filename: str | None = None,
    frame_size: tuple[int, int] | None = FRAME_SIZE,
) -> Path:
    """Write one sequence to ``root/<label>/<seq_type>/<view>/<filename>``.

    ``filename`` defaults to ``<view>.pkl``, the name OpenGait's pretreatment
    uses.  Returns the written path.
    """
    for part, what in ((label, "label"), (seq_type, "type"), (view, "view")):
        if not part or "/" in part or "\\" in part or part in {".", ".."}:
            raise DataFormatError(f"{root}: {what} {part!r} is not a valid folder name")
    name = filename if filename is not None else f"{view}.pkl"
    return save_silhouettes(sequence_dir(root, label, seq_type, view) / name, sils, frame_size)


def _sorted_subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan_layout(root: str | os.PathLike[str], labels: Iterable[str] | None = None) -> list[SequenceInfo]:
    """List the sequences under *root*, sorted by (label, type, view).

    Only the folder structure is read, not the arrays.  Files at the id, type
    or view level (a partition json, for instance) and hidden entries are
    ignored.  Sequences that are missing altogether are simply not listed (real
    CASIA-B lacks a few); a view folder *without* a data file is skipped with
    one :class:`UserWarning` naming the folders.  When a folder holds several
    data files, the first in sorted order is used.

    Args:
        root: dataset root.
        labels: if given, only these ids are scanned (missing ones are skipped).

    Raises:
        DataFormatError: *root* is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(f"{root}: dataset root is not a folder")
    wanted = None if labels is None else set(labels)
    infos: list[SequenceInfo] = []
    empty: list[Path] = []
    for label_dir in _sorted_subdirs(root):
        if wanted is not None and label_dir.name not in wanted:
            continue
        for type_dir in _sorted_subdirs(label_dir):
            for view_dir in _sorted_subdirs(type_dir):
                files = sorted(
                    p for p in view_dir.iterdir()
                    if p.is_file() and p.suffix.lower() in DATA_SUFFIXES and not p.name.startswith(".")
                )
                if not files:
                    empty.append(view_dir)
                    continue
                infos.append(SequenceInfo(label_dir.name, type_dir.name, view_dir.name, files[0]))
    if empty:
        shown = ", ".join(str(p) for p in empty[:5]) + (" ..." if len(empty) > 5 else "")
        warnings.warn(f"{root}: skipped {len(empty)} sequence folder(s) without a data file: {shown}", stacklevel=2)
    return infos


# --------------------------------------------------------------------------
# Partition json
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Partition:
    """The ids of the training and test splits (OpenGait's partition json).

    ``probe_set`` is Gait3D's ``PROBE_SET``: the test sequences used as probes,
    each named ``"<id>-<type>-<view>"`` (OpenGait's ``evaluate_Gait3D``); the
    other test sequences form the gallery.  ``keys`` are the json's keys.
    """

    train: tuple[str, ...]
    test: tuple[str, ...]
    probe_set: tuple[str, ...] = ()
    keys: tuple[str, ...] = ("TRAIN_SET", "TEST_SET")

    def split(self, name: str) -> tuple[str, ...]:
        """Ids of split *name*: ``"train"``, ``"test"`` or ``"all"``."""
        if name == "train":
            return self.train
        if name == "test":
            return self.test
        if name == "all":
            return self.train + self.test
        raise ValueError(f"unknown split {name!r}; expected 'train', 'test' or 'all'")


def read_partition(path: str | os.PathLike[str]) -> Partition:
    """Read a partition json with string-id lists ``TRAIN_SET`` and ``TEST_SET``.

    Raises:
        DataFormatError: unreadable json, missing keys, non-string ids,
            duplicates, or an id in both splits.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read partition file ({exc})") from None
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{path}: not valid json ({exc})") from None
    if not isinstance(data, dict):
        raise DataFormatError(f"{path}: expected a json object with TRAIN_SET and TEST_SET")
    splits: dict[str, tuple[str, ...]] = {}
    for key in ("TRAIN_SET", "TEST_SET"):
        ids = data.get(key)
        if not isinstance(ids, list):
            raise DataFormatError(f"{path}: {key} is missing or not a list")
        bad = [x for x in ids if not isinstance(x, str)]
        if bad:
            raise DataFormatError(f"{path}: {key} holds non-string ids {bad[:3]} (write ids as strings, e.g. \"001\")")
        if len(set(ids)) != len(ids):
            raise DataFormatError(f"{path}: {key} lists some ids twice")
        splits[key] = tuple(ids)
    both = sorted(set(splits["TRAIN_SET"]) & set(splits["TEST_SET"]))
    if both:
        raise DataFormatError(f"{path}: ids {both[:5]} are in both TRAIN_SET and TEST_SET")
    probes: tuple[str, ...] = ()
    if "PROBE_SET" in data:
        entries = data["PROBE_SET"]
        if not isinstance(entries, list) or not all(isinstance(x, str) for x in entries):
            raise DataFormatError(f"{path}: PROBE_SET must be a list of \"<id>-<type>-<view>\" strings")
        test_ids = set(splits["TEST_SET"])
        strays = [x for x in entries if x.split("-", 1)[0] not in test_ids]
        if strays:
            raise DataFormatError(f"{path}: PROBE_SET names sequences of ids outside TEST_SET: {strays[:3]}")
        probes = tuple(entries)
    return Partition(splits["TRAIN_SET"], splits["TEST_SET"], probes, tuple(data))


def write_partition(path: str | os.PathLike[str], train: Sequence[str], test: Sequence[str],
                    probe_set: Sequence[str] | None = None) -> Path:
    """Write a partition json (``TRAIN_SET``/``TEST_SET``, and Gait3D's ``PROBE_SET``) and return its path."""
    path = Path(path)
    train, test = [str(x) for x in train], [str(x) for x in test]
    both = sorted(set(train) & set(test))
    if both:
        raise DataFormatError(f"{path}: ids {both[:5]} would be in both TRAIN_SET and TEST_SET")
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"TRAIN_SET": train, "TEST_SET": test}
    if probe_set is not None:
        data["PROBE_SET"] = [str(x) for x in probe_set]
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return path
