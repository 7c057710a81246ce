"""gdlbook.worldmodels: the MDN loss against NumPy, temperature sampling, M trained by fit() until
it beats "no change", the controller, the dream and CMA-ES on TensorFlow, PyTorch and JAX; in
this process: seeded and reproducible rollouts, collection that resumes and re-collects a corrupt
file, and a CMA-ES run that resumes from its checkpoint with the same result."""

import textwrap

import numpy as np
import pytest
from scipy.special import logsumexp

from backendrun import BACKENDS, run_with_backend

from gdlbook import worldmodels as wm

CHECKS = """
    import numpy as np, keras
    from keras import ops
    from gdlbook import set_seed, worldmodels as wm

    set_seed(0)
    np_ = ops.convert_to_numpy
    rng = np.random.default_rng(0)
    out = {}

    # the MDN loss on random parameters, compared in the test with a NumPy reference
    z_dim, k = 4, 3
    params = rng.normal(size=(2, 5, 3 * z_dim * k)).astype("float32")
    z = rng.normal(size=(2, 5, z_dim)).astype("float32")
    log_pi, mu, log_sigma = wm.mdn_split(params, z_dim, k)
    out["mdn"] = dict(params=params.tolist(), z=z.tolist(),
                      nll=np_(wm.mdn_nll(z, log_pi, mu, log_sigma)).tolist(),
                      pi_sum=np_(ops.sum(ops.exp(log_pi), -1)).tolist())

    # temperature: two components at -3 and +3 with weights 0.8 / 0.2, sigma 0.5
    n = 20000
    lp = ops.convert_to_tensor(np.log(np.tile([[0.8, 0.2]], (n, 1))).astype("float32"))
    m = ops.convert_to_tensor(np.tile([[-3.0, 3.0]], (n, 1)).astype("float32"))
    ls = ops.convert_to_tensor(np.full((n, 2), np.log(0.5), "float32"))
    seed = keras.random.SeedGenerator(1)
    samples = {}
    for tau in (0.1, 1.0, 2.0):
        s = np_(wm.mdn_sample(lp, m, ls, tau, seed))
        right = s > 0
        samples[str(tau)] = dict(right=float(right.mean()),
                                 sd_left=float(s[~right].std()))
    out["tau"] = samples

    # M learns a toy world: z_{t+1} = 0.9 z_t + 0.5 a_t (first dims), reward = a_0
    T, B, zd = 12, 64, 3
    zs = np.zeros((B, T + 1, zd), "float32")
    acts = rng.uniform(-1, 1, size=(B, T, 3)).astype("float32")
    zs[:, 0] = rng.normal(size=(B, zd))
    for t in range(T):
        zs[:, t + 1] = 0.9 * zs[:, t] + 0.5 * acts[:, t, :zd] + 0.05 * rng.normal(size=(B, zd))
    y = {"z_next": zs[:, 1:], "reward": acts[..., 0].copy(), "done": np.zeros((B, T), "float32")}
    rnn = wm.MDNRNN(zd, hidden=32, n_mix=2)
    rnn.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = rnn((zs[:, :-1], acts))
    nll0 = float(np_(ops.mean(wm.mdn_nll(y["z_next"], before["log_pi"], before["mu"],
                                         before["log_sigma"]))))
    h = rnn.fit((zs[:, :-1], acts), y, epochs=60, batch_size=32, verbose=0)
    after = rnn((zs[:, :-1], acts))
    nll1 = float(np_(ops.mean(wm.mdn_nll(y["z_next"], after["log_pi"], after["mu"],
                                         after["log_sigma"]))))
    sd = (zs[:, 1:] - zs[:, :-1]).reshape(-1, zd).std(0)
    out["rnn"] = dict(nll0=nll0, nll1=nll1,
                      still=wm.no_change_nll(zs[:, :-1], zs[:, 1:], sd),
                      reward_err=float(np.mean((np_(after["reward"]) - y["reward"]) ** 2)),
                      keys=sorted(h.history))
    # one step of the cell equals the sequence model's first step
    heads, state = rnn.step(ops.convert_to_tensor(zs[:, 0]), ops.convert_to_tensor(acts[:, 0]),
                            rnn.initial_state(B))
    out["step_err"] = float(np.abs(np_(heads["mu"]) - np_(after["mu"][:, 0])).max())

    # the controller: zero weights give straight ahead, half gas, no brake
    p = np.zeros((2, wm.controller_size(zd, 32)), "float32")
    p[1, :3] = [10.0, 10.0, 10.0]
    a = np_(wm.controller_actions(p, np.ones((2, zd), "float32"), np.ones((2, 32), "float32")))
    out["actions"] = a.tolist()

    # the dream: rewards follow the steering (the toy reward is a_0); a controller that steers
    # right earns more than one that steers left, and the same seed gives the same returns
    right = np.zeros((4, wm.controller_size(zd, 32)), "float32")
    right[:2, 0], right[2:, 0] = 5.0, -5.0
    z0 = zs[:4, 0]
    r1 = wm.dream_returns(rnn, right, z0, 10, tau=1.0, seed=3)
    r2 = wm.dream_returns(rnn, right, z0, 10, tau=1.0, seed=3)
    out["dream"] = dict(returns=r1.tolist(), same=bool(np.array_equal(r1, r2)))
    # common random numbers: two copies of one controller, two rollouts each, from the same two
    # first codes, dream the same dreams with shared=2, and different ones without
    twice = np.repeat(right[:2], 2, axis=0)
    zz = np.tile(zs[:2, 0], (2, 1))
    crn = wm.dream_returns(rnn, twice, zz, 10, tau=1.0, seed=4, shared=2)
    free = wm.dream_returns(rnn, twice, zz, 10, tau=1.0, seed=4)
    out["crn"] = dict(shared=crn.tolist(), free=free.tolist())
    frames = wm.dream_frames(rnn, keras.Sequential([keras.Input((zd,)),
                                                    keras.layers.Dense(64 * 64 * 3),
                                                    keras.layers.Reshape((64, 64, 3))]),
                             right[:1], z0[:1], 5, 1.0, seed=0)
    out["dream_frames"] = [list(frames.shape), str(frames.dtype)]
    RESULT.update(out)
"""


@pytest.fixture(scope="module", params=BACKENDS)
def run(request):
    code = "import json\nRESULT = {}\n" + textwrap.dedent(CHECKS) + "print(json.dumps(RESULT))\n"
    return run_with_backend(request.param, code, timeout=600)


def _reference_nll(params, z, z_dim, k):
    p = params.reshape(params.shape[:-1] + (z_dim, 3 * k))
    logits, mu, log_sigma = np.split(p, 3, axis=-1)
    log_sigma = np.clip(log_sigma, -7, 5)
    log_pi = logits - logsumexp(logits, axis=-1, keepdims=True)
    zz = z[..., None]
    log_n = -0.5 * ((zz - mu) / np.exp(log_sigma)) ** 2 - log_sigma - 0.5 * np.log(2 * np.pi)
    return -logsumexp(log_pi + log_n, axis=-1)


def test_mdn_loss_matches_numpy(run):
    m = run["mdn"]
    ref = _reference_nll(np.array(m["params"]), np.array(m["z"]), 4, 3)
    np.testing.assert_allclose(m["nll"], ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(m["pi_sum"], 1.0, atol=1e-5)


def test_temperature_sharpens_and_flattens_the_mixture(run):
    t = run["tau"]
    # weights ∝ π^(1/τ): τ = 0.1 almost never picks the 0.2 component, τ = 1 picks it 20% of the
    # time, τ = 2 picks it √0.2 / (√0.8 + √0.2) = 1/3 of the time
    assert t["0.1"]["right"] < 0.01
    assert abs(t["1.0"]["right"] - 0.2) < 0.02
    assert abs(t["2.0"]["right"] - 1 / 3) < 0.02
    # the standard deviation is scaled by √τ
    assert abs(t["1.0"]["sd_left"] - 0.5) < 0.03
    assert abs(t["2.0"]["sd_left"] - 0.5 * np.sqrt(2)) < 0.04


def test_m_learns_a_toy_world_better_than_no_change(run):
    r = run["rnn"]
    assert r["nll1"] < r["nll0"] - 0.5
    assert r["nll1"] < r["still"] - 0.3, r
    assert r["reward_err"] < 0.05            # the reward (the steering) has variance 1/3
    assert {"z_loss", "reward_loss", "done_loss"} <= set(r["keys"])
    assert run["step_err"] < 1e-4


def test_common_random_numbers_give_the_same_dream_to_each_controller(run):
    shared, free = np.array(run["crn"]["shared"]), np.array(run["crn"]["free"])
    np.testing.assert_allclose(shared[:2], shared[2:], rtol=1e-5, atol=1e-5)
    assert np.abs(free[:2] - free[2:]).max() > 1e-3      # without sharing, other dreams


def test_controller_maps_to_the_action_ranges(run):
    a = np.array(run["actions"])
    np.testing.assert_allclose(a[0], [0.0, 0.5, 0.0], atol=1e-6)
    np.testing.assert_allclose(a[1], [1.0, 1.0, 1.0], atol=1e-4)


def test_dream_rewards_follow_the_model(run):
    d = run["dream"]
    r = np.array(d["returns"])
    assert d["same"]
    assert r[:2].min() > r[2:].max() + 1.0, r
    assert run["dream_frames"] == [[1, 5, 64, 64, 3], "uint8"]


# --- in this process: the environment, files and CMA-ES ------------------------------------

def test_preprocess_crops_the_dashboard_and_resizes():
    obs = np.zeros((96, 96, 3), np.uint8)
    obs[84:] = 255                                  # the dashboard
    out = wm.preprocess(obs)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8 and out.max() == 0
    assert wm.preprocess(np.stack([obs, obs])).shape == (2, 64, 64, 3)


def test_rollouts_are_seeded_and_reproducible():
    a = wm.play(wm.BrownianPolicy(seed=3), [5, 6], 30, keep=True)
    b = wm.play(wm.BrownianPolicy(seed=3), [5], 30, keep=True)
    np.testing.assert_array_equal(a["frames"][0], b["frames"][0])
    np.testing.assert_array_equal(a["actions"][0], b["actions"][0])
    assert a["returns"][0] == b["returns"][0]
    assert not np.array_equal(a["frames"][0], a["frames"][1])      # another track
    assert a["frames"][0].shape == (30, 64, 64, 3)
    acts = np.concatenate(a["actions"])
    assert acts[:, 0].min() >= -1 and acts[:, 1:].min() >= 0 and acts.max() <= 1


def test_collection_resumes_and_recollects_a_corrupt_file(tmp_path, capsys):
    paths = wm.collect(3, 20, seed=7, directory=tmp_path)
    first = [wm.load_episode(p) for p in paths]
    mtimes = [p.stat().st_mtime_ns for p in paths]
    paths[1].write_bytes(b"not an npz file")         # a damaged file
    paths[2].unlink()                                # an interrupted collection
    again = wm.collect(3, 20, seed=7, directory=tmp_path)
    out = capsys.readouterr().out
    assert "episode_000008.npz is not a readable episode file" in out
    assert again[0].stat().st_mtime_ns == mtimes[0]  # kept, not collected again
    for old, path in zip(first, again):
        new = wm.load_episode(path)
        for key in wm.EPISODE_KEYS:
            np.testing.assert_array_equal(old[key], new[key])
    assert not list(tmp_path.glob("*.tmp"))


def test_load_episode_reports_inconsistent_arrays(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez_compressed(path, frames=np.zeros((3, 64, 64, 3), np.uint8),
                        actions=np.zeros((2, 3), np.float32), rewards=np.zeros(3, np.float32),
                        terminated=np.zeros(3, bool))
    with pytest.raises(wm.CorruptEpisodeError, match="bad.npz"):
        wm.load_episode(path)


def _sphere(population, generation):
    target = np.linspace(-1, 1, population.shape[1])
    return -np.sum((population - target) ** 2, axis=1)


def _interrupted_at(stop):
    """The sphere, interrupted (as by Ctrl-C) when generation ``stop`` is about to be scored."""
    def fitness(population, generation):
        if generation == stop:
            raise KeyboardInterrupt
        return _sphere(population, generation)
    return fitness


def test_cma_finds_the_optimum_and_resumes_after_an_interruption(tmp_path):
    full = wm.cma_train(_sphere, 5, generations=40, popsize=8, sigma0=0.5, seed=0)
    assert full.history["best"][-1] > -1e-2
    assert np.abs(full.mean - np.linspace(-1, 1, 5)).max() < 0.1

    ckpt = tmp_path / "es.pkl"
    with pytest.raises(KeyboardInterrupt):
        wm.cma_train(_interrupted_at(15), 5, generations=40, popsize=8, sigma0=0.5, seed=0,
                     checkpoint=ckpt)
    assert ckpt.exists()
    resumed = wm.cma_train(_sphere, 5, generations=40, popsize=8, sigma0=0.5, seed=0,
                           checkpoint=ckpt)
    assert resumed.resumed_from == 15
    np.testing.assert_allclose(resumed.mean, full.mean)        # the same search, continued
    assert resumed.history["mean"] == full.history["mean"]
    assert not ckpt.exists()


def test_cma_ignores_a_checkpoint_that_fails_its_checksum(tmp_path, capsys):
    ckpt = tmp_path / "es.pkl"
    with pytest.raises(KeyboardInterrupt):
        wm.cma_train(_interrupted_at(3), 5, generations=10, popsize=8, seed=0, checkpoint=ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[:-10] + b"0123456789")
    result = wm.cma_train(_sphere, 5, generations=10, popsize=8, seed=0, checkpoint=ckpt)
    assert "does not match its checksum" in capsys.readouterr().out
    assert result.resumed_from == 0


def test_gif_html_is_an_inline_animation():
    frames = np.random.default_rng(0).integers(0, 255, size=(2, 4, 8, 8, 3), dtype=np.uint8)
    html = wm.gif_html(frames, titles=["a", "b"], caption="two")
    assert html.count("data:image/gif;base64,") == 1 and "two" in html
    import base64
    import io

    from PIL import Image
    data = base64.b64decode(html.split("base64,")[1].split('"')[0])
    img = Image.open(io.BytesIO(data))
    assert img.n_frames == 4 and img.size == (18, 8)
