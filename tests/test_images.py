"""gdlbook.images: centre crop and resize, nearest neighbours."""

import numpy as np
import pytest

from gdlbook.images import center_crop_resize, nearest_neighbours


def test_center_crop_resize_keeps_the_central_square():
    x = np.zeros((2, 109, 89, 3), np.uint8)
    x[:, 10:99, :, :] = 200                       # the central 89×89 square is bright
    out = center_crop_resize(x, 32)
    assert out.shape == (2, 32, 32, 3) and out.dtype == np.uint8
    assert np.all(out == 200)
    assert center_crop_resize(x, 89).shape == (2, 89, 89, 3)
    grey = center_crop_resize(np.full((3, 28, 40), 7, np.uint8), 64)
    assert grey.shape == (3, 64, 64) and np.all(grey == 7)
    assert center_crop_resize(np.ones((1, 8, 8, 1), np.uint8), 4).shape == (1, 4, 4, 1)


def test_center_crop_resize_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        center_crop_resize(np.zeros((2, 8, 8), np.float32), 4)
    with pytest.raises(ValueError, match="positive"):
        center_crop_resize(np.zeros((2, 8, 8), np.uint8), 0)


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
