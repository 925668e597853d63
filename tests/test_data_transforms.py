"""GaitBase transforms keep shapes and (near-)binariness and use only the given generator."""

from pathlib import Path

import numpy as np
import pytest
import torch

from qgait_lab.data.opengait import load_silhouettes
from qgait_lab.data.transforms import (
    Compose,
    Downsample2x,
    RandomErasing,
    RandomHorizontalFlip,
    RandomPerspective,
    RandomRotate,
    SilCutScale,
    gaitbase_transform,
)

SAMPLE = Path(__file__).resolve().parents[1] / "data_samples" / "synthgait-mini" / "001" / "nm-01" / "090" / "090.pkl"


@pytest.fixture(scope="module")
def sils():
    return torch.from_numpy(load_silhouettes(SAMPLE)).to(torch.float32)  # [12, 64, 64], 0..255


def _binary(shape=(4, 64, 44)):
    x = torch.zeros(shape)
    x[:, 10:50, 15:30] = 1.0
    return x


def _grey_count(x):
    return int(((x > 0.05) & (x < 0.95)).sum())


def _edge_band(x):
    """Pixels whose 3 x 3 neighbourhood holds both values: a 2-pixel band along every edge."""
    pooled_max = torch.nn.functional.max_pool2d(x[:, None], 3, 1, 1)[:, 0]
    pooled_min = -torch.nn.functional.max_pool2d(-x[:, None], 3, 1, 1)[:, 0]
    return int((pooled_max != pooled_min).sum())


def test_cut_and_scale_and_downsample(sils):
    out = SilCutScale()(sils)
    assert out.shape == (12, 64, 44)
    assert torch.equal(out, sils[:, :, 10:54] / 255)
    assert 0 <= out.min() and out.max() <= 1
    small = Downsample2x()(out)
    assert small.shape == (12, 32, 22)
    assert torch.allclose(small[:, 0, 0], out[:, :2, :2].mean(dim=(1, 2)))
    assert SilCutScale()(torch.zeros(1, 128, 128)).shape == (1, 128, 88)  # 20 columns per side at 128


@pytest.mark.parametrize(
    "transform",
    [RandomHorizontalFlip(1.0), RandomRotate(1.0), RandomErasing(1.0), RandomPerspective(1.0, margin=10)],
    ids=lambda t: type(t).__name__,
)
def test_random_transforms_preserve_shape_and_binariness(transform):
    x = _binary()
    out = transform(x, np.random.default_rng(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not torch.equal(out, x)  # p = 1 always acts
    assert out.min() >= 0 and out.max() <= 1 + 1e-6
    assert _grey_count(out) <= _edge_band(x)  # intermediate values only on a thin rim along edges
    if isinstance(transform, (RandomHorizontalFlip, RandomErasing)):
        assert set(out.unique().tolist()) <= {0.0, 1.0}  # these keep the value set exactly


def test_sequence_level_parameters_are_shared_by_all_frames():
    x = _binary()
    for transform in (RandomRotate(1.0), RandomErasing(1.0), RandomPerspective(1.0)):
        out = transform(x, np.random.default_rng(1))
        assert all(torch.equal(out[0], out[t]) for t in range(1, len(out)))


def test_probability_zero_is_identity_and_randomness_comes_from_the_generator():
    x = _binary()
    for transform in (RandomHorizontalFlip(0.0), RandomRotate(0.0), RandomErasing(0.0), RandomPerspective(0.0)):
        assert transform(x, np.random.default_rng(0)) is x
    pipeline = gaitbase_transform(train=True, p=0.5, erasing=True)
    sils = torch.rand(3, 64, 64).round() * 255
    torch.manual_seed(123)  # global state must not matter
    a = pipeline(sils, np.random.default_rng(5))
    torch.manual_seed(999)
    b = pipeline(sils, np.random.default_rng(5))
    assert torch.equal(a, b)
    with pytest.raises(ValueError):
        RandomRotate(1.5)


def test_flip_is_an_exact_mirror():
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)
    assert torch.equal(RandomHorizontalFlip(1.0)(x, np.random.default_rng(0)), x.flip(-1))


def test_gaitbase_pipelines(sils):
    test = gaitbase_transform(train=False)
    assert [type(t).__name__ for t in test.transforms] == ["SilCutScale"]
    assert test(sils, None).shape == (12, 64, 44)
    train = gaitbase_transform(train=True, downsample=True)
    assert [type(t).__name__ for t in train.transforms] == [
        "RandomPerspective", "SilCutScale", "RandomHorizontalFlip", "RandomRotate", "Downsample2x",
    ]
    rng = np.random.default_rng(0)
    for _ in range(5):
        out = train(sils, rng)
        assert out.shape == (12, 32, 22) and 0 <= out.min() and out.max() <= 1 + 1e-6
    assert "RandomRotate(p=0.2" in repr(train) and isinstance(train, Compose)
