"""gdlbook.images: the square centre crop and resize, the 32×32 canvas of the MNIST-like sets, and
the nearest-neighbour search of the image-generating chapters."""

import numpy as np
import pytest

from gdlbook import images
from gdlbook.images import center_crop_resize, nearest_neighbours


def test_crop_is_centred_and_resized():
    x = np.zeros((2, 10, 6, 3), dtype=np.uint8)
    x[:, 2:8] = 200  # the central 6×6 square
    out = center_crop_resize(x, 3)
    assert out.shape == (2, 3, 3, 3) and out.dtype == np.uint8
    assert np.all(out == 200)
    wide = np.zeros((1, 4, 8, 1), dtype=np.uint8)
    wide[:, :, 2:6] = 50
    assert np.all(center_crop_resize(wide, 4) == 50)


def test_same_size_is_the_crop_itself():
    x = np.random.default_rng(0).integers(0, 256, (3, 9, 7, 3), dtype=np.uint8)
    assert np.array_equal(center_crop_resize(x, 7), x[:, 1:8])


def test_resize_keeps_the_mean_and_grey_images():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (3, 109, 89, 3), dtype=np.uint8)
    out = center_crop_resize(x, 32)
    assert out.shape == (3, 32, 32, 3)
    assert abs(out.mean() - x[:, 10:99].mean()) < 3
    assert center_crop_resize(x[..., 0], 16).shape == (3, 16, 16)
    assert center_crop_resize(x[..., :1], 16).shape == (3, 16, 16, 1)


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((1, 4, 4, 2), np.uint8),
                                 np.zeros((1, 4, 4, 3), np.float32)])
def test_bad_inputs(bad):
    with pytest.raises(ValueError):
        center_crop_resize(bad, 2)


def test_nearest_neighbours_matches_brute_force():
    rng = np.random.default_rng(0)
    refs = rng.uniform(size=(50, 4, 4, 3)).astype(np.float32)
    queries = refs[[3, 17]] + 0.01
    idx, dist = nearest_neighbours(queries, refs, k=3, batch_size=7)
    brute = np.sqrt(((queries[:, None] - refs[None]) ** 2).sum(axis=(2, 3, 4)))
    np.testing.assert_array_equal(idx, np.argsort(brute, axis=1)[:, :3])
    np.testing.assert_allclose(dist, np.sort(brute, axis=1)[:, :3], rtol=1e-4, atol=1e-4)
    assert list(idx[:, 0]) == [3, 17]
    with pytest.raises(ValueError, match="differ in shape"):
        nearest_neighbours(queries, refs[:, :2])
    with pytest.raises(ValueError, match="k must be"):
        nearest_neighbours(queries, refs, k=51)


def test_pad_and_scale_centres_on_black_and_maps_the_range():
    x = np.full((2, 28, 28), 255, dtype=np.uint8)
    x[1, 0, 0] = 0
    out = images.pad_and_scale(x, value_range=(-1.0, 1.0))
    assert out.shape == (2, 32, 32, 1) and out.dtype == np.float32
    assert (out[:, :2] == -1).all() and (out[:, -2:] == -1).all()     # the black border
    assert (out[:, :, :2] == -1).all() and (out[:, :, -2:] == -1).all()
    assert out[0, 2:30, 2:30].min() == 1.0                              # 255 lands on 1
    assert out[1, 2, 2, 0] == -1.0 and out[1, 2, 3, 0] == 1.0           # the image is not shifted
    unit = images.pad_and_scale(x)
    assert unit.min() == 0.0 and unit.max() == 1.0
    np.testing.assert_array_equal(unit[:, 2:30, 2:30, 0], x / np.float32(255))


@pytest.mark.parametrize("bad", [np.zeros((2, 28, 28, 1), np.uint8), np.zeros((2, 28, 28)),
                                 np.zeros((2, 33, 28), np.uint8)])
def test_pad_and_scale_rejects_bad_inputs(bad):
    with pytest.raises(ValueError):
        images.pad_and_scale(bad)
