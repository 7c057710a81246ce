import numpy as np
import pytest

from gdlbook.images import center_crop_resize


def test_crop_is_centred_and_square():
    x = np.zeros((2, 10, 6, 3), np.uint8)
    x[:, 2:8] = 200                       # the centred 6×6 square is bright, the rest dark
    out = center_crop_resize(x, 6)
    assert out.shape == (2, 6, 6, 3) and out.dtype == np.uint8
    assert (out == 200).all()


def test_resize_keeps_the_mean_and_grey_images():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (3, 109, 89, 3), dtype=np.uint8)
    out = center_crop_resize(x, 32)
    assert out.shape == (3, 32, 32, 3)
    assert abs(out.mean() - x[:, 10:99].mean()) < 3
    assert center_crop_resize(x[..., 0], 16).shape == (3, 16, 16)


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((1, 4, 4), np.float32)])
def test_bad_input(bad):
    with pytest.raises(ValueError):
        center_crop_resize(bad, 2)
