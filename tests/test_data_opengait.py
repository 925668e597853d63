"""Safe reading and writing of OpenGait's layout: payloads never run, errors name the file."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from qgait_lab.data.opengait import (
    Partition,
    load_silhouettes,
    read_partition,
    save_silhouettes,
    scan_layout,
    validate_silhouettes,
    write_partition,
    write_sequence,
)
from qgait_lab.errors import DataFormatError, QGaitError, UnsafePickleError

DATA_SAMPLES = Path(__file__).resolve().parents[1] / "data_samples" / "synthgait-mini"


def _sils(t=3, h=64, w=64, seed=0):
    return (np.random.default_rng(seed).random((t, h, w)) > 0.5).astype(np.uint8) * 255


class _Payload:
    """Unpickling this creates *marker* (through builtins.open)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# ------------------------------------------------------------- restricted unpickling


def test_malicious_pickle_is_refused_and_its_payload_never_runs(tmp_path):
    payload = pickle.dumps(_Payload(tmp_path / "pwned"))
    # Proof that the payload is live: plain pickle runs it.
    pickle.loads(pickle.dumps(_Payload(tmp_path / "control")))
    assert (tmp_path / "control").exists()

    bad = tmp_path / "001" / "nm-01" / "090" / "090.pkl"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(payload)
    with pytest.raises(UnsafePickleError) as err:
        load_silhouettes(bad)
    assert str(bad) in str(err.value) and "open" in str(err.value)
    assert not (tmp_path / "pwned").exists()
    assert isinstance(err.value, DataFormatError) and isinstance(err.value, QGaitError)


def test_payload_hidden_inside_an_object_array_is_refused(tmp_path):
    arr = np.empty(1, dtype=object)
    arr[0] = _Payload(tmp_path / "pwned")
    path = tmp_path / "obj.pkl"
    path.write_bytes(pickle.dumps(arr))
    with pytest.raises(UnsafePickleError):
        load_silhouettes(path)
    assert not (tmp_path / "pwned").exists()


def test_ndarray_subclass_is_refused(tmp_path):
    path = tmp_path / "masked.pkl"
    path.write_bytes(pickle.dumps(np.ma.masked_array(_sils())))
    with pytest.raises(UnsafePickleError, match="masked"):
        load_silhouettes(path)


@pytest.mark.parametrize("protocol", [0, 2, 3, 4, 5])
def test_every_pickle_protocol_of_a_plain_array_loads(tmp_path, protocol):
    sils = _sils()
    path = tmp_path / "seq.pkl"
    path.write_bytes(pickle.dumps(sils, protocol=protocol))
    np.testing.assert_array_equal(load_silhouettes(path), sils)


def test_numpy1_spelling_of_reconstruct_is_admitted(tmp_path):
    sils = _sils()
    raw = pickle.dumps(sils, protocol=2)
    assert b"numpy._core.multiarray" in raw or b"numpy.core.multiarray" in raw
    old = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    path = tmp_path / "old.pkl"
    path.write_bytes(old)
    np.testing.assert_array_equal(load_silhouettes(path), sils)


# --------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "array, problem",
    [
        (np.zeros((3, 64, 64), np.float32), "floating-point"),
        (np.zeros((64, 64), np.uint8), "3 dimensions"),
        (np.zeros((0, 64, 64), np.uint8), "empty sequence"),
        (np.zeros((3, 64, 44), np.uint8), "frame size"),
        (np.full((2, 64, 64), 300, np.int16), "outside 0..255"),
        (np.full((2, 64, 64), -1, np.int32), "outside 0..255"),
        (np.zeros((2, 64, 64), np.complex64), "not a silhouette dtype"),
    ],
)
def test_bad_arrays_give_errors_naming_file_and_problem(tmp_path, array, problem):
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(array))
    with pytest.raises(DataFormatError) as err:
        load_silhouettes(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_truncated_and_empty_files(tmp_path):
    full = pickle.dumps(_sils(t=5))
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(full[: len(full) // 2])
    with pytest.raises(DataFormatError, match="truncated") as err:
        load_silhouettes(cut)
    assert str(cut) in str(err.value)
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    with pytest.raises(DataFormatError, match="truncated"):
        load_silhouettes(empty)
    with pytest.raises(DataFormatError, match="no such file"):
        load_silhouettes(tmp_path / "missing.pkl")


def test_non_array_pickle_is_refused(tmp_path):
    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(DataFormatError, match="expected a numpy array"):
        load_silhouettes(path)


def test_bool_and_small_integer_arrays_are_converted():
    b = np.zeros((2, 64, 64), bool)
    b[0, 3, 4] = True
    out = validate_silhouettes(b, "x")
    assert out.dtype == np.uint8 and out[0, 3, 4] == 255 and out.sum() == 255
    i = np.full((1, 64, 64), 7, np.int64)
    assert validate_silhouettes(i, "x").dtype == np.uint8
    assert validate_silhouettes(np.ones((1, 5, 7), np.uint8), "x", frame_size=None).shape == (1, 5, 7)


def test_all_zero_sequence_is_refused():
    with pytest.raises(DataFormatError, match="x: all 3 frames are empty"):
        validate_silhouettes(np.zeros((3, 64, 64), np.uint8), "x")


def test_npy_and_npz_are_accepted_and_pickled_npy_is_refused(tmp_path):
    sils = _sils()
    np.save(tmp_path / "a.npy", sils)
    np.savez(tmp_path / "b.npz", sils)
    np.savez(tmp_path / "c.npz", sils=sils, other=sils)
    np.savez(tmp_path / "d.npz", x=sils, y=sils)
    for name in ("a.npy", "b.npz", "c.npz"):
        np.testing.assert_array_equal(load_silhouettes(tmp_path / name), sils)
    with pytest.raises(DataFormatError, match="'sils'"):
        load_silhouettes(tmp_path / "d.npz")
    obj = np.empty(1, dtype=object)
    np.save(tmp_path / "o.npy", obj, allow_pickle=True)
    with pytest.raises(UnsafePickleError, match="o.npy"):
        load_silhouettes(tmp_path / "o.npy")
    (tmp_path / "t.npy").write_bytes((tmp_path / "a.npy").read_bytes()[:100])
    with pytest.raises(DataFormatError, match="t.npy"):
        load_silhouettes(tmp_path / "t.npy")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataFormatError, match="unknown suffix"):
        load_silhouettes(tmp_path / "x.txt")


# -------------------------------------------------------------- writing and layout


@pytest.mark.parametrize("suffix", [".pkl", ".npy", ".npz"])
def test_save_load_round_trip(tmp_path, suffix):
    sils = _sils(t=4)
    path = save_silhouettes(tmp_path / f"s{suffix}", sils)
    np.testing.assert_array_equal(load_silhouettes(path), sils)
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_written_pickle_is_plain_opengait_compatible(tmp_path):
    sils = _sils()
    path = write_sequence(tmp_path, "001", "nm-01", "090", sils)
    assert path == tmp_path / "001" / "nm-01" / "090" / "090.pkl"
    with open(path, "rb") as fh:  # our own file: what OpenGait's loader would do
        np.testing.assert_array_equal(pickle.load(fh), sils)


def test_writer_validates_before_writing(tmp_path):
    with pytest.raises(DataFormatError, match="floating-point"):
        write_sequence(tmp_path, "001", "nm-01", "090", np.zeros((2, 64, 64)))
    with pytest.raises(DataFormatError, match="not a valid folder name"):
        write_sequence(tmp_path, "../x", "nm-01", "090", _sils())
    assert not any(tmp_path.rglob("*.pkl"))


def test_scan_layout_tolerates_missing_sequences_and_skips_stray_files(tmp_path):
    write_sequence(tmp_path, "001", "nm-01", "000", _sils())
    write_sequence(tmp_path, "001", "nm-01", "090", _sils())
    write_sequence(tmp_path, "002", "bg-01", "090", _sils())  # 002 lacks nm-01 entirely
    write_partition(tmp_path / "partition.json", ["001"], ["002"])  # a file at the id level
    (tmp_path / "002" / "cl-01" / "090").mkdir(parents=True)  # an empty sequence folder
    with pytest.warns(UserWarning, match="without a data file"):
        infos = scan_layout(tmp_path)
    assert [(i.label, i.type, i.view) for i in infos] == [
        ("001", "nm-01", "000"),
        ("001", "nm-01", "090"),
        ("002", "bg-01", "090"),
    ]
    assert infos[2].condition == "bg"
    assert [i.label for i in scan_layout(tmp_path, labels=["001", "999"])] == ["001", "001"]
    with pytest.raises(DataFormatError, match="not a folder"):
        scan_layout(tmp_path / "nope")


# ---------------------------------------------------------------------- partition


def test_partition_round_trip_and_errors(tmp_path):
    path = write_partition(tmp_path / "p.json", ["001", "002"], ["003"])
    part = read_partition(path)
    assert part == Partition(("001", "002"), ("003",))
    assert part.split("all") == ("001", "002", "003")
    with pytest.raises(ValueError):
        part.split("val")

    def bad(content, problem):
        p = tmp_path / "bad.json"
        p.write_text(content)
        with pytest.raises(DataFormatError, match=problem) as err:
            read_partition(p)
        assert str(p) in str(err.value)

    bad("{", "not valid json")
    bad(json.dumps({"TRAIN_SET": ["001"]}), "TEST_SET is missing")
    bad(json.dumps({"TRAIN_SET": [1], "TEST_SET": []}), "non-string")
    bad(json.dumps({"TRAIN_SET": ["001"], "TEST_SET": ["001"]}), "both")
    bad(json.dumps({"TRAIN_SET": ["001", "001"], "TEST_SET": []}), "twice")
    with pytest.raises(DataFormatError, match="both"):
        write_partition(tmp_path / "q.json", ["001"], ["001"])


# -------------------------------------------------------------------- data_samples


def test_data_samples_load_through_the_safe_reader():
    infos = scan_layout(DATA_SAMPLES)
    assert len(infos) == 32
    for info in infos:
        sils = load_silhouettes(info.path)
        assert sils.dtype == np.uint8 and sils.shape == (12, 64, 64)
    part = read_partition(DATA_SAMPLES / "partition.json")
    assert part.train == ("001", "002") and part.test == ("003", "004")
    size = sum(p.stat().st_size for p in DATA_SAMPLES.rglob("*") if p.is_file())
    assert size < 2_000_000
