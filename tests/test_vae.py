"""gdlbook.vae: the closed-form KL, the reparameterisation, the builders, and training on every backend."""

import numpy as np
import pytest
from keras import ops

from backendrun import BACKENDS, run_with_backend
from gdlbook import vae


def test_kl_matches_the_closed_form_and_a_monte_carlo_estimate():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(4, 3)).astype("float32")
    log_var = rng.normal(scale=0.5, size=(4, 3)).astype("float32")
    kl = ops.convert_to_numpy(vae.kl_divergence(mean, log_var))
    var = np.exp(log_var)
    np.testing.assert_allclose(kl, 0.5 * (var + mean ** 2 - 1 - log_var).sum(-1), rtol=1e-5)
    # KL = E_q[log q(z) - log p(z)], estimated by sampling
    z = mean[0] + np.sqrt(var[0]) * rng.normal(size=(200_000, 3))
    log_q = -0.5 * (((z - mean[0]) ** 2) / var[0] + log_var[0] + np.log(2 * np.pi)).sum(-1)
    log_p = -0.5 * (z ** 2 + np.log(2 * np.pi)).sum(-1)
    assert abs((log_q - log_p).mean() - kl[0]) < 0.02
    assert ops.convert_to_numpy(vae.kl_divergence(np.zeros((1, 5)), np.zeros((1, 5))))[0] == 0


def test_sampling_draws_from_the_given_gaussian_and_is_seeded():
    mean = np.full((100_000, 2), [1.0, -2.0], "float32")
    log_var = np.full((100_000, 2), np.log([0.25, 4.0]), "float32")
    z = ops.convert_to_numpy(vae.Sampling(seed=1)(mean, log_var))
    np.testing.assert_allclose(z.mean(0), [1, -2], atol=0.03)
    np.testing.assert_allclose(z.std(0), [0.5, 2.0], rtol=0.02)
    again = ops.convert_to_numpy(vae.Sampling(seed=1)(mean, log_var))
    np.testing.assert_array_equal(z, again)


def test_reconstruction_nll():
    x = np.array([[[1.0, 0.0]]], "float32")
    x_hat = np.array([[[0.5, 0.5]]], "float32")
    bern = ops.convert_to_numpy(vae.reconstruction_nll(x, x_hat, "bernoulli"))
    np.testing.assert_allclose(bern, [2 * np.log(2)], rtol=1e-4)
    gauss = ops.convert_to_numpy(vae.reconstruction_nll(x, x_hat, "gaussian", sigma=0.5))
    np.testing.assert_allclose(gauss, [(0.25 + 0.25) / 0.5], rtol=1e-6)
    with pytest.raises(ValueError, match="unknown reconstruction"):
        vae.reconstruction_nll(x, x_hat, "laplace")


def test_equivalent_beta_of_a_mean_weighted_loss():
    """Foster's losses (weight × mean error + KL) are our summed loss + β·KL, times a constant."""
    # closed forms: Fashion-MNIST (500 × mean BCE over 32×32), faces (2,000 × MSE over 64×64×3)
    assert vae.equivalent_beta(500, 32 * 32) == pytest.approx(2.048)
    assert vae.equivalent_beta(2000, 64 * 64 * 3, "gaussian", sigma=0.5) == pytest.approx(12.288)
    assert vae.equivalent_beta(2000, 32 * 32 * 3, "gaussian", sigma=0.5) == pytest.approx(3.072)
    # numerically, from the loss functions themselves, on a batch
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(6, 8, 8, 3)).astype("float32")
    x_hat = rng.uniform(0.05, 0.95, size=x.shape).astype("float32")
    z_mean = rng.normal(size=(6, 4)).astype("float32")
    z_log_var = rng.normal(scale=0.5, size=(6, 4)).astype("float32")
    kl = ops.convert_to_numpy(vae.kl_divergence(z_mean, z_log_var))
    n = 8 * 8 * 3
    per_value = {"bernoulli": ops.convert_to_numpy(ops.binary_crossentropy(x, x_hat)),
                 "gaussian": (x - x_hat) ** 2}
    for kind, sigma, weight in [("bernoulli", 1.0, 500.0), ("gaussian", 0.5, 2000.0),
                                ("gaussian", 0.9, 7.0)]:
        theirs = weight * per_value[kind].reshape(6, -1).mean(axis=1) + kl
        ours = ops.convert_to_numpy(vae.reconstruction_nll(x, x_hat, kind, sigma))
        beta = vae.equivalent_beta(weight, n, kind, sigma)
        ratio = theirs / (ours + beta * kl)
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-5)   # one constant for every image
        assert ratio[0] > 0
    with pytest.raises(ValueError, match="positive"):
        vae.equivalent_beta(0, 1024)
    with pytest.raises(ValueError, match="unknown reconstruction"):
        vae.equivalent_beta(500, 1024, "laplace")


def test_builders_mirror_each_other():
    enc = vae.conv_encoder((32, 32, 1), 2)
    dec = vae.conv_decoder(2, (32, 32, 1))
    assert [tuple(o.shape) for o in enc.outputs] == [(None, 2), (None, 2)]
    assert tuple(dec.output.shape) == (None, 32, 32, 1)
    assert tuple(vae.conv_encoder((28, 28, 1), 2, (32, 64), variational=False,
                                  dense_units=16).output.shape) == (None, 2)
    faces = vae.conv_decoder(200, (64, 64, 3), (128,) * 5, batch_norm=True)
    assert tuple(faces.output.shape) == (None, 64, 64, 3)
    with pytest.raises(ValueError, match="not divisible"):
        vae.conv_decoder(2, (28, 28, 1), (128, 64, 32))


BACKEND_RUN = """
    import json, os
    import numpy as np, keras
    from gdlbook import data, set_seed, training, vae

    # 1. the Fashion-MNIST VAE of chapter 3 trains: loss falls, KL finite and non-negative
    x, _ = data.load("fashion_mnist", "train", subset=256, seed=0, verbose=False)
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)))[..., None].astype("float32") / 255
    set_seed(0)
    model = vae.VAE(vae.conv_encoder((32, 32, 1), 2), vae.conv_decoder(2, (32, 32, 1)),
                    beta=1.0, seed=0)
    model.compile(keras.optimizers.Adam(1e-3))
    h = model.fit(x, epochs=3, batch_size=64, verbose=0).history
    ev = model.evaluate(x[:128], batch_size=64, verbose=0, return_dict=True)

    # 2. an interrupted run resumes from its saved epoch, with its weights
    os.environ["GDL_RUN_DIR"] = {run_root!r}
    small = x[:64, ::4, ::4]                                  # 8x8 images: a tiny model

    def build():
        set_seed(0)
        m = vae.VAE(vae.conv_encoder((8, 8, 1), 2, (4, 8)), vae.conv_decoder(2, (8, 8, 1), (8, 4)),
                    seed=0)
        m.compile(keras.optimizers.Adam(1e-3))
        return m

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    class Peek(keras.callbacks.Callback):     # the weights at the start of the resumed run
        def on_train_batch_begin(self, batch, logs=None):
            if not hasattr(self, "w"):
                self.w = [np.asarray(w) for w in self.model.get_weights()]

    m = build()
    try:
        m.fit(small, epochs=4, batch_size=32, verbose=0,
              callbacks=[training.resumable("t", "vae", profile="smoke"), Interrupt()])
    except KeyboardInterrupt:
        pass
    saved = [np.asarray(w) for w in m.get_weights()]
    m = build()
    cb, peek = training.resumable("t", "vae", profile="smoke"), Peek()
    hr = m.fit(small, epochs=4, batch_size=32, verbose=0, callbacks=[cb, peek])
    restored = all(np.allclose(a, b) for a, b in zip(saved, peek.w))
    print(json.dumps(dict(loss=h["loss"], kl=h["kl_loss"], rec=h["reconstruction_loss"], ev=ev,
                          resume=dict(resumed_from=cb.resumed_from, epochs=hr.epoch,
                                      restored=restored))))
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_fashion_vae_trains_and_resumes_on_every_backend(backend, tmp_path):
    out = run_with_backend(backend, BACKEND_RUN.format(run_root=str(tmp_path)))
    loss, kl, rec = (np.array(out[k]) for k in ("loss", "kl", "rec"))
    assert np.isfinite(loss).all() and loss[-1] < loss[0], out
    assert np.isfinite(kl).all() and (kl >= 0).all(), out
    np.testing.assert_allclose(loss, rec + kl, rtol=1e-3)   # beta = 1: loss is the negative ELBO
    ev = out["ev"]
    assert ev["kl_loss"] >= 0 and abs(ev["loss"] - ev["reconstruction_loss"] - ev["kl_loss"]) < 1
    assert out["resume"] == dict(resumed_from=2, epochs=[0, 1, 2, 3], restored=True)
