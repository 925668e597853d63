"""Property tests: the reader and the quantizers either work or raise the library's own error."""
import pickle

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from qgait_lab.data.opengait import load_silhouettes
from qgait_lab.errors import QGaitError
from qgait_lab.quant import DoReFaActQuantizer, LSQQuantizer, PACTQuantizer
from qgait_lab.quant.quantizers import validate_bits

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

dtypes = st.sampled_from([np.uint8, np.int16, np.int64, np.float32, np.bool_, np.uint16])
arrays = hnp.arrays(dtype=dtypes, shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6))


@FUZZ
@given(arrays)
def test_reader_on_random_arrays_returns_silhouettes_or_raises_its_own_error(tmp_path, array):
    path = tmp_path / "seq.pkl"
    path.write_bytes(pickle.dumps(array, protocol=4))
    try:
        out = load_silhouettes(path, frame_size=None)
    except QGaitError as err:
        assert "seq.pkl" in str(err)
        return
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[0] >= 1


@FUZZ
@given(st.binary(max_size=300))
def test_reader_on_random_bytes_never_escapes(tmp_path, blob):
    for suffix in (".pkl", ".npy", ".npz"):
        path = tmp_path / f"blob{suffix}"
        path.write_bytes(blob)
        try:
            load_silhouettes(path, frame_size=None)
        except QGaitError as err:
            assert path.name in str(err)


@FUZZ
@given(st.one_of(st.integers(-5, 40), st.floats(allow_nan=True), st.text(max_size=3), st.none()))
def test_bits_are_validated(bits):
    try:
        b = validate_bits(bits)
    except QGaitError:
        return
    assert isinstance(b, int) and 1 <= b <= 16


finite = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, width=32)


@FUZZ
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=4, max_side=7), elements=finite),
       st.integers(2, 8), st.booleans(), st.sampled_from(["ste", "soft"]))
def test_lsq_values_always_on_the_integer_grid(array, bits, is_weight, gradient):
    x = torch.from_numpy(array)
    q = LSQQuantizer(bits, is_weight=is_weight, signed=True if is_weight else None, gradient=gradient,
                     k=3.0)
    y = q(x)
    codes = y / q.step.detach().clamp(min=q.STEP_FLOOR)
    lo, hi = q.bounds
    assert torch.isfinite(y).all()
    assert torch.allclose(codes, torch.round(codes), atol=1e-3)
    assert codes.min() >= lo - 1e-3 and codes.max() <= hi + 1e-3


@FUZZ
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=9), elements=finite),
       st.integers(1, 8))
def test_activation_quantizers_stay_on_their_grids(array, bits):
    x = torch.from_numpy(array)
    levels = 2 ** bits - 1
    y = DoReFaActQuantizer(bits)(x)
    assert torch.allclose(y * levels, torch.round(y * levels), atol=1e-3)
    assert y.min() >= 0 and y.max() <= 1
    pact = PACTQuantizer(bits, alpha_init=4.0)
    z = pact(x) / (4.0 / levels)
    assert torch.allclose(z, torch.round(z), atol=1e-3) and z.min() >= 0 and z.max() <= levels + 1e-3
