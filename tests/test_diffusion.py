"""gdlbook.diffusion: schedules, the U-Net, training through compute_loss on every backend, DDIM."""

import numpy as np
import pytest

from backendrun import BACKENDS, run_with_backend


@pytest.mark.parametrize("name", ["linear", "cosine", "offset_cosine"])
def test_schedules_are_monotone_and_preserve_variance(name):
    import keras
    from gdlbook import diffusion

    t = np.linspace(0.0, 1.0, 201, dtype="float32")
    noise, signal = (keras.ops.convert_to_numpy(r) for r in diffusion.SCHEDULES[name](t))
    np.testing.assert_allclose(signal**2 + noise**2, 1.0, atol=1e-5)
    assert np.all(np.diff(signal) < 0) and np.all(np.diff(noise) > 0)
    assert np.all((signal >= 0) & (signal <= 1) & (noise >= 0) & (noise <= 1))
    assert signal[0] > 0.9 and signal[-1] < 0.05


def _random_denoiser(size=16):
    """An untrained stand-in for the U-Net: a random 1×1 convolution of the noisy image."""
    import keras

    images = keras.Input((size, size, 3))
    variances = keras.Input((1, 1, 1))
    init = keras.initializers.RandomNormal(0.0, 0.5, seed=0)
    out = keras.layers.Conv2D(3, 1, kernel_initializer=init)(images)
    return keras.Model([images, variances], out)


@pytest.mark.parametrize("name", ["linear", "cosine", "offset_cosine"])
def test_every_schedule_samples_finite_images(name):
    """Sampling never divides by a signal rate below MIN_SIGNAL_RATE, so every schedule gives finite images.

    Before the fix, `generate` started every chain at t = 1, where the cosine schedule's signal
    rate is 0 (infinite image estimate, NaN samples) and the linear one's 0.0066.
    """
    import keras
    from gdlbook import diffusion

    model = diffusion.DiffusionModel(_random_denoiser(), schedule=name, seed=0)
    model.normalizer.adapt(np.random.default_rng(0).random((32, 16, 16, 3)).astype("float32"))
    seen = []
    denoise = model.denoise

    def spy(noisy_images, noise_rates, signal_rates):
        seen.append(float(np.min(keras.ops.convert_to_numpy(signal_rates))))
        return denoise(noisy_images, noise_rates, signal_rates)

    model.denoise = spy
    for steps in (1, 2, 5):
        for eta in (0.0, 1.0):
            images = model.generate(keras.random.normal((4, 16, 16, 3), seed=1), steps, eta=eta)
            assert images.shape == (4, 16, 16, 3)
            assert np.all(np.isfinite(images)), (name, steps, eta)
    # every chain starts where the signal rate is 0.02: not below (the old chains started at
    # t = 1: signal rate 0 for the cosine schedule, 0.0066 for the linear), nor needlessly above
    assert min(seen) == pytest.approx(0.02, rel=1e-3), (name, min(seen))


def test_max_sampling_time_and_unsamplable_schedules():
    from keras import ops
    from gdlbook import diffusion

    assert diffusion.max_sampling_time(diffusion.offset_cosine_schedule) == 1.0
    # cos(πt/2) = 0.02 and the linear schedule's closed form solved for ᾱ = 0.02²
    assert diffusion.max_sampling_time(diffusion.cosine_schedule) == pytest.approx(
        2 / np.pi * np.arccos(0.02), abs=1e-4)
    a = diffusion.LINEAR_STEPS * diffusion.LINEAR_BETA_MIN
    b = 0.5 * diffusion.LINEAR_STEPS * (diffusion.LINEAR_BETA_MAX - diffusion.LINEAR_BETA_MIN)
    t_lin = (-a + np.sqrt(a * a - 4 * b * np.log(0.02**2))) / (2 * b)
    assert diffusion.max_sampling_time(diffusion.linear_schedule) == pytest.approx(t_lin, abs=1e-4)

    def signal_free(t):  # no signal at any time: nothing to sample from
        return ops.ones_like(t), ops.zeros_like(t)

    with pytest.raises(ValueError, match="cannot be sampled"):
        diffusion.max_sampling_time(signal_free)
    with pytest.raises(ValueError, match="cannot be sampled"):  # offset cosine peaks at 0.95
        diffusion.DiffusionModel(_random_denoiser(), schedule="offset_cosine", min_signal_rate=0.99)
    with pytest.raises(ValueError, match="unknown schedule"):
        diffusion.DiffusionModel(_random_denoiser(), schedule="quadratic")


def test_unet_shapes_and_embedding():
    import keras
    from gdlbook import diffusion

    net = diffusion.build_unet(16, widths=(8, 16), block_depth=1, embedding_dims=8)
    x = np.zeros((2, 16, 16, 3), "float32")
    out = net([x, np.full((2, 1, 1, 1), 0.5, "float32")])
    assert tuple(out.shape) == (2, 16, 16, 3)
    assert np.all(keras.ops.convert_to_numpy(out) == 0)  # zero-initialised output layer
    e = keras.ops.convert_to_numpy(diffusion.SinusoidalEmbedding(8)(np.zeros((1, 1), "float32")))
    np.testing.assert_allclose(e, [[0, 0, 0, 0, 1, 1, 1, 1]], atol=1e-6)
    with pytest.raises(ValueError):
        diffusion.build_unet(18, widths=(8, 16, 24))


def _identity_denoiser(size=8):
    """A stand-in network that returns its noisy input: ``call`` then hands back ``x_t``."""
    import keras

    images = keras.Input((size, size, 3))
    variances = keras.Input((1, 1, 1))
    return keras.Model([images, variances], keras.layers.Identity()(images))


def test_input_scale_scales_the_signal_not_the_noise():
    """``input_scale`` b: x_t = s b x + n ε (Chen 2023), and generated images come back in pixels."""
    from keras import ops
    from gdlbook import diffusion

    rng = np.random.default_rng(0)
    x = rng.random((6, 8, 8, 3)).astype("float32")
    out = {}
    for b in (1.0, 0.3):
        model = diffusion.DiffusionModel(_identity_denoiser(), seed=5, input_scale=b)
        model.normalizer.adapt(x)
        noises, noisy = (ops.convert_to_numpy(t) for t in model(x, training=True))
        out[b] = noises, noisy
        xn = ops.convert_to_numpy(model.normalizer(x))
        np.testing.assert_allclose(ops.convert_to_numpy(model.scale(x)), b * xn, atol=1e-5)
        np.testing.assert_allclose(ops.convert_to_numpy(model.denormalize(model.scale(x))), x,
                                   atol=1e-5)
    (eps, x1), (eps_b, xb) = out[1.0], out[0.3]
    np.testing.assert_array_equal(eps, eps_b)        # the same seed: same times, same noise
    # x1 - xb = s (1 - b) x and xb - b x1 = n (1 - b) ε: per image, one is a multiple of the
    # signal and the other of the noise. A scale on the whole noisy image would make the second
    # zero; a scale on the noise would make the first a multiple of the noise
    for i in range(len(x)):
        signal_part, noise_part = (x1 - xb)[i].ravel(), (xb - 0.3 * x1)[i].ravel()
        assert np.linalg.norm(signal_part) > 1e-3 and np.linalg.norm(noise_part) > 1e-3
        norm_x = ops.convert_to_numpy(model.normalizer(x[i:i + 1])).ravel()
        cos_signal = np.dot(signal_part, norm_x) / (np.linalg.norm(signal_part)
                                                    * np.linalg.norm(norm_x))
        cos_noise = np.dot(noise_part, eps[i].ravel()) / (
            np.linalg.norm(noise_part) * np.linalg.norm(eps[i]))
        assert cos_signal > 0.9999 and cos_noise > 0.9999, (i, cos_signal, cos_noise)
    with pytest.raises(ValueError, match="input_scale"):
        diffusion.DiffusionModel(_identity_denoiser(), input_scale=0.0)


def test_spherical_interpolation_keeps_the_norm():
    from gdlbook.diffusion import spherical_interpolation

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(8, 8, 3)), rng.normal(size=(8, 8, 3))
    path = spherical_interpolation(a, b, np.linspace(0, 1, 5))
    assert path.shape == (5, 8, 8, 3)
    np.testing.assert_allclose(path[0], a, atol=1e-5)
    np.testing.assert_allclose(path[-1], b, atol=1e-5)
    norms = np.linalg.norm(path.reshape(5, -1), axis=1)
    lo, hi = sorted(norms[[0, -1]])
    assert np.all(norms > 0.99 * lo) and np.all(norms < 1.01 * hi)  # no dip in the middle
    assert np.linalg.norm((a + b) / 2) < 0.8 * lo  # which linear interpolation has


TRAIN = """
    import json
    import numpy as np, keras
    from gdlbook import diffusion, set_seed

    set_seed(0)
    rng = np.random.default_rng(0)
    # smooth random images: a learnable structure, unlike white noise
    x = np.repeat(np.repeat(rng.random((64, 4, 4, 3)), 4, axis=1), 4, axis=2).astype("float32")
    net = diffusion.build_unet(16, widths=(8, 16), block_depth=1, embedding_dims=8)
    model = diffusion.DiffusionModel(net, seed=0)
    model.normalizer.adapt(x)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=3e-3, weight_decay=1e-4,
                                                   use_ema=True, ema_momentum=0.5))
    history = model.fit(x, batch_size=16, epochs=4, verbose=0)
    a = model.sample(3, diffusion_steps=4, seed=1)
    b = model.generate(keras.random.normal((3, 16, 16, 3), seed=1), diffusion_steps=4)
    c = model.sample(3, diffusion_steps=4, eta=1.0, seed=1)
    cosine = diffusion.DiffusionModel(net, schedule="cosine", seed=0)  # signal rate 0 at t = 1
    cosine.normalizer.adapt(x)
    d = cosine.sample(3, diffusion_steps=4, seed=1)
    print(json.dumps(dict(loss=history.history["loss"], shape=list(a.shape),
                          lo=float(a.min()), hi=float(a.max()),
                          deterministic=bool(np.allclose(a, b, atol=1e-5)),
                          stochastic_differs=bool(not np.allclose(a, c, atol=1e-3)),
                          cosine_finite=bool(np.all(np.isfinite(d))))))
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_steps_on_each_backend(backend):
    out = run_with_backend(backend, TRAIN)
    loss = out["loss"]
    assert len(loss) == 4 and all(np.isfinite(loss))
    assert loss[-1] < loss[0], loss
    assert out["shape"] == [3, 16, 16, 3] and 0.0 <= out["lo"] <= out["hi"] <= 1.0
    assert out["deterministic"], "eta=0 sampling must depend on the initial noise only"
    assert out["stochastic_differs"]
    assert out["cosine_finite"], "the cosine schedule must sample finite images"

