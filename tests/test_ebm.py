"""gdlbook.ebm: Langevin dynamics on a known energy, the replay buffer, training and resuming an EBM.

Everything runs in one interpreter per backend (importing Keras costs more than the checks).
"""

import itertools

import numpy as np
import pytest

from backendrun import BACKENDS, run_snippets

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

MIXING = """
    # Two Gaussians (s = 0.5) at (-1.25, 0) and (1.25, 0), equal mass. Every chain starts in the
    # left basin: a sampler must carry about half of them over the ridge at x1 = 0 (and spread
    # them as wide as the density); gradient descent without noise never leaves the basin.
    centres = ops.convert_to_tensor([[-1.25, 0.0], [1.25, 0.0]])

    def mixture(x):
        d2 = ops.sum(ops.square(x[:, None, :] - centres[None]), axis=-1)
        return -ops.logsumexp(-d2 / (2 * 0.5 ** 2), axis=1)

    rng = np.random.default_rng(0)
    x0 = np.stack([rng.uniform(-3, 0, 200), rng.uniform(-1, 1, 200)], 1).astype("float32")
    mixing = {}
    for name, sigma in (("langevin", np.sqrt(2 * 0.05)), ("descent", 0.0)):
        steps = 250 if sigma else 100  # descent has long converged by then
        x = ops.convert_to_numpy(ebm.langevin(mixture, x0, steps, 0.05, sigma, clip=None,
                                              value_range=None, seed=3))
        right = x[:, 0] > 0
        mixing[name] = dict(right=float(right.mean()), finite=bool(np.all(np.isfinite(x))),
                            spread=float(np.mean([x[m, 1].std() for m in (right, ~right)
                                                  if m.sum() > 1])))
    RESULT["mixing"] = mixing
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
    return run_snippets(request.param, "import numpy as np, keras\n", LANGEVIN, MIXING, BUFFER,
                        TRAIN.format(run_root=str(tmp_path_factory.mktemp("runs"))))


def test_langevin_lowers_a_quadratic_energy_to_its_minimum(ebm_run):
    r = ebm_run["langevin"]
    assert r["e0"] > 5.0 and r["e1"] < 0.01 * r["e0"], r      # from far away to near mu
    assert r["err"] < 0.02, r                                  # the chains' mean is mu
    assert 0.002 < r["spread"] < 0.1, r                       # the noise keeps them apart
    # one step, no noise: the clipped gradient moves each value by at most 0.1 * 0.03
    assert r["clipped_move"] <= 0.1 * 0.03 + 1e-6 and r["in_range"], r


def test_langevin_mixes_between_modes_where_noise_free_descent_cannot(ebm_run):
    r = ebm_run["mixing"]
    assert r["langevin"]["finite"] and r["descent"]["finite"], r
    # 200 chains: the standard deviation of the share is about 0.035
    assert 0.25 < r["langevin"]["right"] < 0.75, r      # chains crossed from the left mode
    assert 0.35 < r["langevin"]["spread"] < 0.7, r      # and spread like the density (s = 0.5)
    assert r["descent"]["right"] == 0.0, r              # no noise: every chain stays in its basin
    assert r["descent"]["spread"] < 0.01, r             # and collapses onto the minimum


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


# ---------------------------------------------------------------------------------------------
# The restricted Boltzmann machine (NumPy: the same on every backend, so tested in this process)

def _all_binary(n):
    return ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1).astype("float64")


def _random_rbm(n_visible, n_hidden, seed):
    from gdlbook import ebm

    rbm = ebm.RBM(n_visible, n_hidden, seed=seed)
    rng = np.random.default_rng(seed + 100)
    rbm.W = rng.normal(0, 1.0, (n_visible, n_hidden))
    rbm.a = rng.normal(0, 1.0, n_visible)
    rbm.b = rng.normal(0, 1.0, n_hidden)
    return rbm


def test_rbm_conditionals_free_energy_and_partition_function_match_brute_force():
    rbm = _random_rbm(5, 3, seed=0)
    v, h = _all_binary(5), _all_binary(3)
    # the joint over all 2**5 x 2**3 states, from the energy E(v, h) = -vWh - av - bh
    log_joint = v @ rbm.W @ h.T + (v @ rbm.a)[:, None] + (h @ rbm.b)[None, :]
    log_z = np.log(np.exp(log_joint).sum())
    assert np.isclose(rbm.log_partition(), log_z)
    np.testing.assert_allclose(rbm.free_energy(v), -np.log(np.exp(log_joint).sum(axis=1)))
    p_v = np.exp(rbm.log_likelihood(v))
    assert np.isclose(p_v.sum(), 1.0)                      # a normalised distribution
    joint = np.exp(log_joint - log_z)
    # p(h_j = 1 | v) and p(v_i = 1 | h) by summing the joint
    p_h_given_v = (joint @ h) / joint.sum(axis=1, keepdims=True)
    p_v_given_h = (joint.T @ v) / joint.sum(axis=0)[:, None]
    np.testing.assert_allclose(rbm.hidden_probs(v), p_h_given_v, atol=1e-12)
    np.testing.assert_allclose(rbm.visible_probs(h), p_v_given_h, atol=1e-12)


def test_block_gibbs_sampling_draws_from_the_rbm_distribution():
    rbm = _random_rbm(4, 2, seed=1)
    states = _all_binary(4)
    exact = np.exp(rbm.log_likelihood(states))
    start = (np.random.default_rng(0).random((20000, 4)) < 0.5).astype("float64")
    samples = rbm.sample(start, 30)
    index = samples @ (2 ** np.arange(4))
    empirical = np.bincount(index.astype(int), minlength=16) / len(samples)
    # 20,000 draws over 16 states: sampling noise in the total variation is about 0.01
    assert 0.5 * np.abs(empirical - exact).sum() < 0.03
    probs = rbm.sample(start[:5], 3, probabilities=True)
    assert probs.shape == (5, 4) and np.all((probs > 0) & (probs < 1))


def _bars_and_stripes(n):
    patterns = set()
    for bits in itertools.product([0, 1], repeat=n):
        rows = np.repeat(np.array(bits)[:, None], n, axis=1)
        patterns.add(tuple(rows.ravel()))
        patterns.add(tuple(rows.T.ravel()))
    return np.array(sorted(patterns), dtype="float64")


@pytest.mark.parametrize("persistent", [False, True], ids=["CD-1", "PCD-1"])
def test_rbm_training_beats_independent_pixels_on_bars_and_stripes(persistent):
    from gdlbook import ebm

    patterns = _bars_and_stripes(4)              # the 30 bars-and-stripes images of 4 x 4
    assert len(patterns) == 30
    rbm = ebm.RBM(16, 8, seed=0)
    before = rbm.log_likelihood(patterns).mean()
    rbm.fit(np.tile(patterns, (20, 1)), epochs=100, batch_size=20, learning_rate=0.1,
            persistent=persistent)
    after = rbm.log_likelihood(patterns).mean()  # exact, under the true (uniform) distribution
    independent = 16 * np.log(0.5)               # every pixel is on half the time: -11.09 nats
    best = np.log(1 / 30)                        # the data distribution itself: -3.40 nats
    assert abs(before - independent) < 0.1
    assert independent + 3.0 < after <= best + 1e-9, (after, independent, best)
    assert (rbm.chains is not None) == persistent


def test_rbm_refuses_bad_input():
    from gdlbook import ebm

    rbm = ebm.RBM(4, 2, seed=0)
    with pytest.raises(ValueError, match="0/1 data"):
        rbm.fit(np.full((10, 4), 0.5))
    with pytest.raises(ValueError, match=r"shape \(n, 4\)"):
        rbm.free_energy(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="at least one"):
        ebm.RBM(0, 3)
    with pytest.raises(ValueError, match="steps"):
        rbm.sample(np.zeros((2, 4)), 0)
    with pytest.raises(ValueError, match="batch_size"):
        rbm.fit(np.zeros((10, 4)), batch_size=0)
    with pytest.raises(ValueError, match=r"2\*\*21 hidden"):
        ebm.RBM(4, 21).log_partition()
