"""gdlbook.ebm: Langevin dynamics on a known energy, the replay buffer, training and resuming an EBM.

Everything runs in one interpreter per backend (importing Keras costs more than the checks).
"""

import textwrap

import numpy as np
import pytest

from backendrun import BACKENDS, run_with_backend

EBM_BACKENDS = BACKENDS  # JAX: eagerly, as the GANs (see gdlbook.training.StatefulStepModel)

LANGEVIN = """
    from keras import ops
    from gdlbook import ebm, set_seed

    set_seed(0)
    # E(x) = 1/2 |x - mu|^2: grad E = x - mu; Langevin settles around mu
    mu_np = np.linspace(-0.8, 0.8, 6).astype("float32")
    mu = ops.convert_to_tensor(mu_np)
    energy = lambda x: 0.5 * ops.sum(ops.square(x - mu), axis=1)
    x0 = np.random.default_rng(0).uniform(-3, 3, size=(200, 6)).astype("float32")
    x = ebm.langevin(energy, x0, 60, 0.1, 0.01, clip=None, value_range=None, seed=1)
    x = ops.convert_to_numpy(x)
    e = lambda x: 0.5 * np.sum((x - mu_np) ** 2, axis=1)
    one = ops.convert_to_numpy(ebm.langevin(energy, x0, 1, 0.1, 0.0, clip=0.03, seed=1))
    RESULT["langevin"] = dict(
        e0=float(e(x0).mean()), e1=float(e(x).mean()),
        err=float(np.abs(x.mean(0) - mu_np).max()), spread=float(x.std(0).mean()),
        clipped_move=float(np.abs(one - np.clip(x0, -1, 1)).max()),
        in_range=bool(np.all(np.abs(one) <= 1.0)))
"""

BUFFER = """
    buf = ebm.ReplayBuffer(500, (4, 4, 1), fresh=0.05, seed=0)
    start = ops.convert_to_numpy(buf.examples)
    RESULT["buffer_start"] = [float(start.min()), float(start.max())]
    buf.examples.assign(ops.full((500, 4, 4, 1), 2.0))   # a value noise never takes
    fresh = 0
    for _ in range(50):
        batch = ops.convert_to_numpy(buf.sample(400))
        is_fresh = np.all(batch != 2.0, axis=(1, 2, 3))
        assert np.all(batch[~is_fresh] == 2.0) and np.all(np.abs(batch[is_fresh]) <= 1.0)
        fresh += int(is_fresh.sum())
    pushed = [np.full((300, 4, 4, 1), v, "float32") for v in (0.25, 0.5)]
    for p in pushed:
        buf.push(p)
    after = ops.convert_to_numpy(buf.examples)[:, 0, 0, 0]
    RESULT["buffer"] = dict(fresh_rate=fresh / 20000, shape=list(buf.examples.shape),
                            position=int(ops.convert_to_numpy(buf.position)),
                            after=[float((after == v).sum()) for v in (0.25, 0.5, 2.0)])
"""

TRAIN = """
    import os
    from gdlbook import training

    os.environ["GDL_RUN_DIR"] = {run_root!r}
    x = np.random.default_rng(0).uniform(-1, 1, size=(16, 16, 16, 1)).astype("float32")

    def build():
        set_seed(0)
        model = ebm.EBM(ebm.build_energy_network(16, 1, filters=(4, 4, 8, 8), dense=8),
                        ebm.ReplayBuffer(64, (16, 16, 1), seed=0), steps=3, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-4))
        return model

    def state(model):
        return [float(np.sum(keras.ops.convert_to_numpy(v))) for v in
                model.energy.weights + model.buffer.weights + model.optimizer.variables]

    model = build()
    w0 = state(model)
    h = model.fit(x, batch_size=8, epochs=1, verbose=0)          # two steps
    RESULT["train"] = dict(logs={{k: v[-1] for k, v in h.history.items()}},
                           moved=[a != b for a, b in zip(w0, state(model))][:len(w0)],
                           position=int(keras.ops.convert_to_numpy(model.buffer.position)))

    class Stop(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt("the Colab session ended")
        def on_epoch_end(self, epoch, logs=None):
            self.saved = state(self.model)

    class Begin(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.restored = state(self.model)

    model, stop = build(), Stop()
    try:
        model.fit(x, batch_size=8, epochs=3, verbose=0,
                  callbacks=[training.resumable("t", "ebm", profile="smoke"), stop])
    except KeyboardInterrupt:
        pass
    model, begin = build(), Begin()
    fresh = state(model)
    cb = training.resumable("t", "ebm", profile="smoke")
    history = model.fit(x, batch_size=8, epochs=3, verbose=0, callbacks=[cb, begin])
    RESULT["resume"] = dict(saved=stop.saved, fresh=fresh, restored=begin.restored,
                            resumed_from=cb.resumed_from, epochs=history.epoch,
                            iterations=int(keras.ops.convert_to_numpy(model.optimizer.iterations)))
"""


@pytest.fixture(scope="module", params=EBM_BACKENDS)
def ebm_run(request, tmp_path_factory):
    code = ("import json\nimport numpy as np, keras\nRESULT = {}\n" + textwrap.dedent(LANGEVIN)
            + textwrap.dedent(BUFFER)
            + textwrap.dedent(TRAIN.format(run_root=str(tmp_path_factory.mktemp("runs"))))
            + "print(json.dumps(RESULT))\n")
    return run_with_backend(request.param, code)


def test_langevin_lowers_a_quadratic_energy_to_its_minimum(ebm_run):
    r = ebm_run["langevin"]
    assert r["e0"] > 5.0 and r["e1"] < 0.01 * r["e0"], r      # from far away to near mu
    assert r["err"] < 0.02, r                                  # the chains' mean is mu
    assert 0.002 < r["spread"] < 0.1, r                       # the noise keeps them apart
    # one step, no noise: the clipped gradient moves each value by at most 0.1 * 0.03
    assert r["clipped_move"] <= 0.1 * 0.03 + 1e-6 and r["in_range"], r


def test_buffer_keeps_its_size_and_mixes_fresh_noise_at_the_stated_rate(ebm_run):
    start = ebm_run["buffer_start"]
    assert -1.0 <= start[0] < -0.9 and 0.9 < start[1] <= 1.0   # starts as uniform noise
    r = ebm_run["buffer"]
    # 20,000 draws at 5%: the standard deviation of the rate is 0.0015, so 0.01 is ~7 sigma
    assert abs(r["fresh_rate"] - 0.05) < 0.01, r
    assert r["shape"] == [500, 4, 4, 1], r
    # 600 pushed into 500 slots, first in first out: the last 300 and 200 of the first 300
    assert r["position"] == 100 and r["after"] == [200.0, 300.0, 0.0], r


def test_training_steps_give_finite_losses_and_move_the_weights(ebm_run):
    r = ebm_run["train"]
    assert {"loss", "cd", "reg", "e_real", "e_fake"} <= set(r["logs"]), r
    assert all(np.isfinite(v) for v in r["logs"].values()), r
    assert any(r["moved"]), r
    assert r["position"] == 16, r    # two batches of 8 samples went back to the buffer


def test_resumed_ebm_restores_network_buffer_and_optimizer(ebm_run):
    r = ebm_run["resume"]
    assert r["resumed_from"] == 2 and r["epochs"] == [0, 1, 2], r
    np.testing.assert_allclose(r["restored"], r["saved"], rtol=1e-6)
    assert not np.allclose(r["fresh"], r["saved"])
    assert r["iterations"] == 6, r   # 3 epochs x 2 steps, none lost or repeated
