"""gdlbook.gans: two training steps of each GAN on each supported backend, and resuming a GAN's fit()."""

import numpy as np
import pytest

from backendrun import BACKENDS, run_with_backend

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
    import textwrap
    code = ("import json\nRESULT = {}\n" + textwrap.dedent(STEPS)
            + textwrap.dedent(RESUME.format(run_root=str(tmp_path_factory.mktemp("runs"))))
            + "print(json.dumps(RESULT))\n")
    return run_with_backend(request.param, code)


def test_two_training_steps_of_each_gan(gan_run):
    out = gan_run["steps"]
    for name, critic_steps in (("dcgan", 1), ("wgangp", 2), ("cgan", 2)):
        r = out[name]
        assert r["logs"] and all(np.isfinite(v) for v in r["logs"].values()), (name, r["logs"])
        assert r["g_moved"] and r["d_moved"], (name, "generator or discriminator did not move")
        assert r["g_iter"] == 2 and r["d_iter"] == 2 * critic_steps, (name, r)
    assert {"d_loss", "g_loss", "gp"} <= set(out["wgangp"]["logs"])


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
