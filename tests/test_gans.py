"""gdlbook.gans on each supported backend: two training steps of each GAN, resuming a GAN's fit(),
the gradient penalty and the critic's loss against a linear critic (exact values), and a WGAN-GP
that must cover the eight modes of a ring of Gaussians."""

import numpy as np
import pytest

from backendrun import BACKENDS, run_snippets

GAN_BACKENDS = BACKENDS  # JAX: eagerly, see gdlbook.training.StatefulStepModel

STEPS = """
    import json
    import numpy as np, keras
    from gdlbook import set_seed, gans

    set_seed(0)
    rng = np.random.default_rng(0)
    faces = rng.uniform(-1, 1, size=(16, 8, 8, 3)).astype("float32")
    digits = rng.uniform(-1, 1, size=(16, 8, 8, 1)).astype("float32")
    onehot = keras.utils.to_categorical(rng.integers(0, 4, 16), 4)

    def adam(): return keras.optimizers.Adam(2e-4, beta_1=0.5)
    models = {
        "dcgan": (gans.DCGAN(gans.build_generator(6, 8, 3, width=4),
                             gans.build_discriminator(8, 3, width=4), latent_dim=6), (faces,)),
        "wgangp": (gans.WGANGP(gans.build_generator(6, 8, 3, width=4),
                               gans.build_discriminator(8, 3, width=4, batch_norm=False,
                                                        output_activation=None),
                               latent_dim=6, critic_steps=2), (faces,)),
        "cgan": (gans.ConditionalWGANGP(gans.build_generator(6 + 4, 8, 1, width=4),
                                        gans.build_discriminator(8, 1 + 4, width=4,
                                                                 batch_norm=False,
                                                                 output_activation=None),
                                        latent_dim=6, critic_steps=2), (digits, onehot)),
    }
    out = {}
    for name, (gan, data) in models.items():
        gan.compile(d_optimizer=adam(), g_optimizer=adam())
        g0 = [w.copy() for w in gan.generator.get_weights()]
        d0 = [w.copy() for w in gan.discriminator.get_weights()]
        h = gan.fit(*data, batch_size=8, epochs=1, verbose=0)   # 16 examples: two steps
        moved = lambda a, b: bool(any(np.any(x != y) for x, y in zip(a, b)))
        out[name] = dict(
            logs={k: v[-1] for k, v in h.history.items()},
            g_moved=moved(g0, gan.generator.get_weights()),
            d_moved=moved(d0, gan.discriminator.get_weights()),
            d_iter=int(keras.ops.convert_to_numpy(gan.d_optimizer.iterations)),
            g_iter=int(keras.ops.convert_to_numpy(gan.g_optimizer.iterations)))
    RESULT["steps"] = out
"""


@pytest.fixture(scope="module", params=GAN_BACKENDS)
def gan_run(request, tmp_path_factory):
    """Both snippets in one interpreter per backend (importing Keras costs more than the tests)."""
    return run_snippets(request.param, STEPS, PENALTY,
                        RESUME.format(run_root=str(tmp_path_factory.mktemp("runs"))))


PENALTY = """
    import numpy as np, keras
    from keras import ops
    from gdlbook import set_seed, gans
    from gdlbook.gradients import value_and_grad

    set_seed(0)
    rng = np.random.default_rng(0)
    real = rng.normal(size=(32, 4, 4, 3)).astype("float32")
    fake = rng.normal(0.5, 2.0, size=(32, 4, 4, 3)).astype("float32")
    # A linear critic f(x) = w.x + b: its input gradient is w at every point, so the penalty is
    # (||w|| - 1)^2 wherever the penalty points are, and the critic's loss is known exactly.
    critic = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(),
                               keras.layers.Dense(1)])
    w = rng.normal(0.0, 0.3, size=(48, 1)).astype("float32")
    critic.set_weights([w, np.array([0.7], "float32")])
    gan = gans.WGANGP(gans.build_mlp(2, 48), critic, latent_dim=2, gp_weight=10.0, seed=0)
    np_ = ops.convert_to_numpy
    gp = float(np_(gan.gradient_penalty(ops.convert_to_tensor(real), ops.convert_to_tensor(fake))))
    (loss, (wass, gp2)), (gw, gb) = value_and_grad(
        lambda: gan.critic_loss(ops.convert_to_tensor(real), ops.convert_to_tensor(fake)),
        critic.trainable_variables, has_aux=True)
    # Penalty points between zeros (real) and ones (fake): the value of each point is 1 - alpha.
    pts = np_(gan.penalty_points(ops.zeros((4000, 2)), ops.ones((4000, 2))))
    img = np_(gan.penalty_points(ops.zeros((64, 4, 4, 3)), ops.ones((64, 4, 4, 3))))
    RESULT["penalty"] = dict(
        gp=gp, loss=float(np_(loss)), wass=float(np_(wass)), gp2=float(np_(gp2)),
        gw=np_(gw).ravel().tolist(), gb=np_(gb).ravel().tolist(),
        pts_min=float(pts.min()), pts_max=float(pts.max()), pts_mean=float(pts.mean()),
        pts_std=float(pts[:, 0].std()), pts_same_axes=bool(np.allclose(pts[:, 0], pts[:, 1])),
        img_one_alpha=float(np.max(img.reshape(64, -1).std(axis=1))))
"""


def test_penalty_and_critic_loss_of_a_linear_critic(gan_run):
    """A flipped sign, a wrong norm or a penalty off the segments gives other numbers."""
    out = gan_run["penalty"]
    rng = np.random.default_rng(0)
    real = rng.normal(size=(32, 4, 4, 3))
    fake = rng.normal(0.5, 2.0, size=(32, 4, 4, 3))
    w = rng.normal(0.0, 0.3, size=(48, 1))[:, 0]
    norm = np.linalg.norm(w)
    gp = (norm - 1.0) ** 2
    wass = w @ (real.reshape(32, -1).mean(0) - fake.reshape(32, -1).mean(0))
    np.testing.assert_allclose(out["gp"], gp, rtol=1e-4)
    np.testing.assert_allclose(out["gp2"], gp, rtol=1e-4)
    np.testing.assert_allclose(out["wass"], wass, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["loss"], -wass + 10.0 * gp, rtol=1e-4, atol=1e-5)
    # d loss / d w = mean fake - mean real + 10 * 2 (||w|| - 1) w / ||w||, and the bias drops out
    grad_w = (fake.reshape(32, -1).mean(0) - real.reshape(32, -1).mean(0)
              + 20.0 * (norm - 1.0) * w / norm)
    np.testing.assert_allclose(out["gw"], grad_w, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(out["gb"], [0.0], atol=1e-5)
    # penalty points: on the segment, uniform along it (mean 1/2, std 1/sqrt(12)), one alpha
    # per example shared by all its coordinates
    assert 0.0 <= out["pts_min"] and out["pts_max"] <= 1.0, out
    assert abs(out["pts_mean"] - 0.5) < 0.03 and abs(out["pts_std"] - 12 ** -0.5) < 0.02, out
    assert out["pts_same_axes"] and out["img_one_alpha"] < 1e-6, out


RING = """
    import time
    import numpy as np, keras
    from gdlbook import set_seed, gans

    set_seed(42)
    std = 0.1
    x = gans.ring_of_gaussians(8192, std=std, seed=0)
    gan = gans.WGANGP(gans.build_mlp(2, 2, 64, 3, name="generator"),
                      gans.build_mlp(2, 1, 64, 3, name="critic"),
                      latent_dim=2, critic_steps=5, gp_weight=10.0, seed=42)
    adam = lambda: keras.optimizers.Adam(1e-3, beta_1=0.5, beta_2=0.9)
    gan.compile(d_optimizer=adam(), g_optimizer=adam())
    centres = gans.ring_centres()
    sample = lambda: keras.ops.convert_to_numpy(gan.generate(gan.sample_latent(2000)))
    before = gans.mode_coverage(sample(), centres, std)
    t0 = time.perf_counter()
    gan.fit(x, batch_size=256, epochs=16, verbose=0, shuffle=True)   # 512 steps
    after = gans.mode_coverage(sample(), centres, std)
    RESULT["ring"] = dict(before=[before[0].tolist(), before[1]],
                          after=[after[0].tolist(), after[1]], seconds=time.perf_counter() - t0)
"""


# About ten seconds of CPU on TensorFlow; several times that on PyTorch, and minutes on JAX, which
# runs the GAN step eagerly (gdlbook.training.StatefulStepModel). The chapter (nbval) trains the
# same ring GAN on every backend and asserts the same coverage.
RING_BACKENDS = ("tensorflow",)


@pytest.fixture(scope="module", params=RING_BACKENDS)
def ring_run(request):
    return run_snippets(request.param, RING)


def test_wgangp_covers_the_modes_of_a_ring_of_gaussians(ring_run):
    """Eight Gaussians (sigma 0.1) on a circle of radius 2: the trained generator must put samples
    at 7 or more of the modes, and a good share of them within 3 sigma of a mode; the untrained
    one does neither. A flipped critic or generator sign fails this."""
    out = ring_run["ring"]
    shares, near = np.array(out["after"][0]), out["after"][1]
    assert np.sum(shares >= 0.02) >= 7, out
    assert near >= 0.3, out
    assert out["before"][1] < 0.1, out


def test_two_training_steps_of_each_gan(gan_run):
    out = gan_run["steps"]
    for name, critic_steps in (("dcgan", 1), ("wgangp", 2), ("cgan", 2)):
        r = out[name]
        assert r["logs"] and all(np.isfinite(v) for v in r["logs"].values()), (name, r["logs"])
        assert r["g_moved"] and r["d_moved"], (name, "generator or discriminator did not move")
        assert r["g_iter"] == 2 and r["d_iter"] == 2 * critic_steps, (name, r)
    for name in ("wgangp", "cgan"):
        logs = out[name]["logs"]
        assert {"d_loss", "g_loss", "gp", "wasserstein"} <= set(logs), (name, logs)
        # every critic-side metric is a mean over the same critic steps, so the logged loss is
        # exactly the negated Wasserstein estimate plus the weighted penalty
        np.testing.assert_allclose(logs["d_loss"], -logs["wasserstein"] + 10.0 * logs["gp"],
                                   rtol=1e-4, atol=1e-5, err_msg=name)


RESUME = """
    import json, os
    import numpy as np, keras
    from gdlbook import set_seed, gans, training

    os.environ["GDL_RUN_DIR"] = {run_root!r}
    x = np.random.default_rng(0).uniform(-1, 1, size=(16, 8, 8, 3)).astype("float32")

    def build():
        set_seed(0)
        gan = gans.DCGAN(gans.build_generator(6, 8, 3, width=4),
                         gans.build_discriminator(8, 3, width=4), latent_dim=6)
        gan.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                    g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
        return gan

    def state(gan):
        np_ = keras.ops.convert_to_numpy
        return dict(g=[float(np.sum(w)) for w in gan.generator.get_weights()],
                    d=[float(np.sum(w)) for w in gan.discriminator.get_weights()],
                    g_opt=[float(np.sum(np_(v))) for v in gan.g_optimizer.variables],
                    d_opt=[float(np.sum(np_(v))) for v in gan.d_optimizer.variables])

    class Probe(keras.callbacks.Callback):
        def __init__(self, stop_at=None):
            super().__init__()
            self.stop_at, self.seen = stop_at, {{}}
        def on_train_begin(self, logs=None):
            self.seen["begin"] = state(self.model)
        def on_epoch_end(self, epoch, logs=None):
            self.seen[epoch] = state(self.model)
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == self.stop_at:
                raise KeyboardInterrupt("the Colab session ended")

    gan, probe = build(), Probe(stop_at=2)
    try:
        gan.fit(x, batch_size=8, epochs=4, verbose=0,
                callbacks=[training.resumable("t", "dcgan", profile="smoke"), probe])
    except KeyboardInterrupt:
        pass
    saved = probe.seen[1]
    gan, probe = build(), Probe()
    fresh = state(gan)
    cb = training.resumable("t", "dcgan", profile="smoke")
    history = gan.fit(x, batch_size=8, epochs=4, verbose=0, callbacks=[cb, probe])
    RESULT["resume"] = dict(saved=saved, fresh=fresh, restored=probe.seen["begin"],
                            resumed_from=cb.resumed_from, epochs=history.epoch,
                            g_iter=int(keras.ops.convert_to_numpy(gan.g_optimizer.iterations)),
                            d_iter=int(keras.ops.convert_to_numpy(gan.d_optimizer.iterations)))
"""


def test_resumed_gan_restores_both_networks_and_both_optimizers(gan_run):
    out = gan_run["resume"]
    assert out["resumed_from"] == 2 and out["epochs"] == [0, 1, 2, 3]
    for part in ("g", "d", "g_opt", "d_opt"):
        np.testing.assert_allclose(out["restored"][part], out["saved"][part], rtol=1e-6,
                                   err_msg=f"{part} was not restored")
        assert not np.allclose(out["fresh"][part], out["saved"][part]), part
    assert out["g_iter"] == out["d_iter"] == 8  # 4 epochs × 2 steps, none lost or repeated
