"""gdlbook.metrics: the unbiased polynomial-kernel MMD² of KID against a plain double loop."""

import numpy as np
import pytest

from gdlbook import metrics


def mmd2_reference(x, y):
    """The unbiased MMD² with k(a, b) = (a·b/d + 1)³, written as the textbook's double sums."""
    d = x.shape[1]
    k = lambda a, b: (float(np.dot(a, b)) / d + 1.0) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


@pytest.mark.parametrize("m,n,d", [(5, 5, 3), (7, 4, 6), (12, 9, 2)])
def test_mmd2_matches_double_loop(m, n, d):
    rng = np.random.default_rng(m * 100 + n * 10 + d)
    x, y = rng.normal(size=(m, d)), rng.normal(0.3, 1.2, size=(n, d))
    assert metrics.mmd2_unbiased(x, y) == pytest.approx(mmd2_reference(x, y), rel=1e-10, abs=1e-12)


def test_kernel_is_the_cubic_polynomial():
    x = np.array([[1.0, 2.0]])
    y = np.array([[3.0, -1.0]])
    assert metrics.polynomial_kernel(x, y)[0, 0] == pytest.approx((1 / 2 + 1) ** 3)


def test_kid_is_about_zero_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
    same, _ = metrics.kid(a, b, num_subsets=20, subset_size=200)
    small, _ = metrics.kid(a, b + 0.3, num_subsets=20, subset_size=200)
    large, _ = metrics.kid(a, b + 1.0, num_subsets=20, subset_size=200)
    assert abs(same) < 0.01
    assert same < small < large
    assert small > 0.05


def test_kid_subsets_and_small_sets():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(30, 4)), rng.normal(size=(30, 4))
    mean, std = metrics.kid(a, b, num_subsets=50, subset_size=1000)  # smaller than a subset
    assert std == 0.0 and mean == pytest.approx(metrics.mmd2_unbiased(a, b))
    mean, std = metrics.kid(a, b, num_subsets=10, subset_size=10, seed=3)
    assert std > 0 and np.isfinite(mean)
    assert metrics.kid(a, b, num_subsets=10, subset_size=10, seed=3)[0] == mean  # seeded


def test_mmd2_rejects_bad_shapes():
    with pytest.raises(ValueError):
        metrics.mmd2_unbiased(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError):
        metrics.mmd2_unbiased(np.zeros((1, 3)), np.zeros((4, 3)))


def test_offline_falls_back_to_a_labelled_random_cnn(monkeypatch, capsys):
    monkeypatch.setenv("GDL_OFFLINE", "1")
    extractor = metrics.kid_feature_extractor(299, fallback_size=16)
    out = capsys.readouterr().out
    assert "not available" in out and "not comparable" in out
    assert not extractor.standard and "not the standard" in extractor.label
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 16, 16, 3), dtype=np.uint8)
    f1, f2 = extractor(images), extractor(images.astype("float32") / 255)
    assert f1.shape == (5, 64 + 128 + 256 + 512) and np.allclose(f1, f2, atol=1e-5)
    # bigger images are resized to the extractor's size
    assert extractor(rng.random((3, 32, 32, 3))).shape == (3, 960)


def test_random_cnn_features_separate_image_sets():
    rng = np.random.default_rng(0)
    extractor = metrics.random_cnn_extractor(16)
    smooth = np.repeat(np.repeat(rng.random((60, 4, 4, 3)), 4, axis=1), 4, axis=2)
    smooth2 = np.repeat(np.repeat(rng.random((60, 4, 4, 3)), 4, axis=1), 4, axis=2)
    noise = rng.random((60, 16, 16, 3))
    same = metrics.kid(extractor(smooth), extractor(smooth2))[0]
    other = metrics.kid(extractor(smooth), extractor(noise))[0]
    assert other > 10 * abs(same) and other > 0


def test_generated_features_draw_seeded_latents_in_batches_and_rescale_to_unit():
    calls, seen = [], []

    def generate(z):
        calls.append(len(z))
        return np.tanh(z[:, :1, None, None] * np.ones((1, 2, 2, 3), "float32"))

    def extractor(images):
        seen.append(np.asarray(images))
        return np.asarray(images).reshape(len(images), -1)

    a = metrics.generated_features(extractor, generate, 4, 7, seed=3, batch_size=3)
    b = metrics.generated_features(extractor, generate, 4, 7, seed=3, batch_size=7)
    assert calls == [3, 3, 1, 7]
    np.testing.assert_allclose(a, b)                         # same draws, whatever the batching
    z = np.random.default_rng(3).normal(size=(7, 4)).astype("float32")
    np.testing.assert_allclose(a[:, 0], (np.tanh(z[:, 0]) + 1) / 2, rtol=1e-6)
    assert 0.0 <= seen[0].min() and seen[0].max() <= 1.0
    np.testing.assert_allclose(metrics.to_unit([0.0, 255.0], (0, 255)), [0.0, 1.0])
