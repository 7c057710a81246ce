"""gdlbook.vq on TensorFlow, PyTorch and JAX: nearest codes against brute force, the straight-through
gradient and the gradients of the codebook and commitment losses, perplexity, dead-code restarts,
serialisation, VQ-VAE training that reconstructs better than before, and two VQ-GAN steps; the
NumPy pieces (perplexity, the prior's sampler) in this process."""

import numpy as np
import pytest

from backendrun import BACKENDS, run_snippets

CHECKS = """
    import numpy as np, keras
    from keras import ops
    from gdlbook import set_seed, vq
    from gdlbook.gradients import value_and_grad

    set_seed(0)
    np_ = ops.convert_to_numpy
    rng = np.random.default_rng(0)
    out = {}
    K, D = 7, 3
    q = vq.VectorQuantizer(K, D, init_scale=1.0)
    book = rng.normal(size=(K, D)).astype("float32")
    q.codebook.assign(book)
    z = rng.normal(size=(2, 4, 5, D)).astype("float32")
    res = q(z)
    out["codes"] = np_(res["codes"]).tolist()
    out["codes_dtype"] = str(np_(res["codes"]).dtype)
    out["lookup_err"] = float(np.abs(np_(res["quantized"]) - book[np_(res["codes"])]).max())

    # straight-through: d/dz of sum(c * quantized) is c, unchanged; the codebook gets nothing
    c = rng.normal(size=z.shape).astype("float32")
    ct = ops.convert_to_tensor(c)
    _, (gz, gbook) = value_and_grad(lambda t: ops.sum(ct * q(t)["quantized"]), [z, q.codebook])
    out["st_grad_err"] = float(np.abs(np_(gz) - c).max())
    out["st_book_grad"] = float(np.abs(np_(gbook)).max())

    # the two losses: the codebook loss moves only the codes, the commitment loss only z
    def losses(t):
        r = q(t)
        return vq.vq_losses(t, r["codebook_vectors"])
    (cb, cm) = [float(np_(v)) for v in losses(z)]
    _, (g_cb_z, g_cb_book) = value_and_grad(lambda t: losses(t)[0], [z, q.codebook])
    _, (g_cm_z, g_cm_book) = value_and_grad(lambda t: losses(t)[1], [z, q.codebook])
    out["losses"] = [cb, cm]
    out["g_cb_z"] = float(np.abs(np_(g_cb_z)).max())
    out["g_cm_book"] = float(np.abs(np_(g_cm_book)).max())
    out["g_cb_book"] = np_(g_cb_book).tolist()
    out["g_cm_z"] = np_(g_cm_z).tolist()
    out["batch_perplexity"] = float(np_(vq.batch_perplexity(res["codes"], K)))

    # dead codes: a code far from every z is never chosen; a restart puts it on one of them
    q.codebook.assign(np.concatenate([book[:-1], np.full((1, D), 100.0, "float32")]))
    n_dead = q.restart_dead_codes(z)
    new = np_(q.codebook)
    out["restarted"] = n_dead
    out["restart_on_z"] = float(np.abs(z.reshape(-1, D) - new[-1]).sum(1).min())
    out["others_kept"] = bool(np.array_equal(new[:-1], book[:-1]))

    # one Adam step on a code used three times and one used once: each moves by one learning
    # rate, as Adam promises, on every backend (a gather's sparse gradient on TensorFlow moved
    # the first by about sqrt(3) learning rates)
    qa = vq.VectorQuantizer(4, 2)
    qa.codebook.assign(np.zeros((4, 2), "float32"))
    _, (g_adam,) = value_and_grad(lambda: ops.sum(qa.lookup(np.array([0, 0, 0, 1]))),
                                  [qa.codebook])
    keras.optimizers.Adam(1e-3).apply([g_adam], [qa.codebook])
    out["adam_step"] = np_(qa.codebook)[:, 0].tolist()

    # serialisation
    clone = vq.VectorQuantizer.from_config(q.get_config())
    clone.set_weights(q.get_weights())
    out["config_same"] = bool(np.array_equal(np_(clone(z)["codes"]), np_(q(z)["codes"])))

    # a VQ-VAE learns: its reconstruction error on the training images falls
    set_seed(1)
    # smooth images: colour ramps in random directions
    angle = rng.uniform(0, 2 * np.pi, size=(32, 1, 1, 1))
    colour = rng.uniform(-1, 1, size=(32, 1, 1, 3))
    yy, xx = np.meshgrid(np.linspace(-1, 1, 8), np.linspace(-1, 1, 8), indexing="ij")
    ramp = np.cos(angle) * xx[None, :, :, None] + np.sin(angle) * yy[None, :, :, None]
    x = np.clip(0.8 * colour * ramp, -1, 1).astype("float32")
    enc = vq.build_vq_encoder(8, 3, code_dim=4, width=16, downsamples=1, res_blocks=1)
    dec = vq.build_vq_decoder(4, 3, code_dim=4, width=16, upsamples=1, res_blocks=1)
    model = vq.VQVAE(enc, dec, vq.VectorQuantizer(8, 4), beta=0.25)
    model.compile(keras.optimizers.Adam(3e-3))
    rec0 = float(np.mean((model.reconstruct(x) - x) ** 2))
    restart = vq.DeadCodeRestart(x, every=1)
    h = model.fit(x, batch_size=16, epochs=40, verbose=0, callbacks=[restart])
    rec1 = float(np.mean((model.reconstruct(x) - x) ** 2))
    logs = {k: v[-1] for k, v in h.history.items()}
    out["vqvae"] = dict(rec0=rec0, rec1=rec1, logs=logs, restarted=restart.restarted,
                        codes_shape=list(np_(model.encode(x[:2])).shape),
                        loss_sum=logs["reconstruction_loss"] + logs["codebook_loss"]
                        + 0.25 * logs["commitment_loss"])

    # two VQ-GAN steps: both optimizers step, the logs are finite
    disc = vq.build_patch_discriminator(8, 3, width=8, downsamples=1)
    gan = vq.VQGAN(model, disc, adversarial_weight=0.1, adversarial_start=0)
    gan.compile(g_optimizer=keras.optimizers.Adam(1e-3), d_optimizer=keras.optimizers.Adam(1e-3))
    d0 = [w.copy() for w in disc.get_weights()]
    h = gan.fit(x, batch_size=16, epochs=1, verbose=0)
    out["vqgan"] = dict(logs={k: v[-1] for k, v in h.history.items()},
                        iters=[int(np_(gan.g_optimizer.iterations)),
                               int(np_(gan.d_optimizer.iterations))],
                        d_moved=any(np.any(a != b) for a, b in zip(d0, disc.get_weights())),
                        patch_shape=list(np_(disc(x[:2])).shape))
    RESULT.update(out)
"""


@pytest.fixture(scope="module", params=BACKENDS)
def run(request):
    return run_snippets(request.param, CHECKS, timeout=600)


def _inputs():
    rng = np.random.default_rng(0)
    book = rng.normal(size=(7, 3)).astype("float32")
    z = rng.normal(size=(2, 4, 5, 3)).astype("float32")
    return book, z


def test_nearest_code_against_brute_force(run):
    book, z = _inputs()
    d = ((z[..., None, :] - book) ** 2).sum(-1)             # (2, 4, 5, K)
    assert run["codes"] == d.argmin(-1).tolist()
    assert run["codes_dtype"] == "int32" and run["lookup_err"] < 1e-6


def test_straight_through_gradient_reaches_the_encoder_unchanged(run):
    assert run["st_grad_err"] < 1e-6, run["st_grad_err"]
    assert run["st_book_grad"] == 0.0   # the decoder's gradient does not reach the codebook


def test_codebook_and_commitment_losses_and_their_gradients(run):
    book, z = _inputs()
    codes = np.array(run["codes"])
    e = book[codes]
    n = z.size
    np.testing.assert_allclose(run["losses"], [np.mean((z - e) ** 2)] * 2, rtol=1e-5)
    assert run["g_cb_z"] == 0.0 and run["g_cm_book"] == 0.0
    expect_book = np.zeros_like(book)
    np.add.at(expect_book, codes.ravel(), 2 * (e - z).reshape(-1, 3) / n)
    np.testing.assert_allclose(run["g_cb_book"], expect_book, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(run["g_cm_z"], 2 * (z - e) / n, rtol=1e-4, atol=1e-7)


def test_adam_moves_each_used_code_by_one_learning_rate(run):
    np.testing.assert_allclose(run["adam_step"], [-1e-3, -1e-3, 0.0, 0.0], atol=1e-6)


def test_batch_perplexity_matches_numpy(run):
    from gdlbook.vq import perplexity

    np.testing.assert_allclose(run["batch_perplexity"], perplexity(run["codes"], 7), rtol=1e-4)


def test_dead_code_is_restarted_on_an_encoder_output(run):
    assert run["restarted"] == 1 and run["restart_on_z"] == 0.0 and run["others_kept"]
    assert run["config_same"]


def test_vqvae_learns_to_reconstruct(run):
    out = run["vqvae"]
    assert out["codes_shape"] == [2, 4, 4]
    assert out["rec1"] < 0.5 * out["rec0"], out
    logs = out["logs"]
    assert all(np.isfinite(v) for v in logs.values()), logs
    np.testing.assert_allclose(logs["loss"], out["loss_sum"], rtol=1e-4)
    assert 1.0 <= logs["perplexity"] <= 8.0, logs
    assert len(out["restarted"]) == 40


def test_two_vqgan_steps(run):
    out = run["vqgan"]
    assert out["iters"] == [2, 2] and out["d_moved"], out
    assert out["patch_shape"] == [2, 4, 4, 1]
    assert {"reconstruction_loss", "g_adversarial", "d_loss", "perplexity"} <= set(out["logs"])
    assert all(np.isfinite(v) for v in out["logs"].values()), out


def test_perplexity_of_known_histograms():
    from gdlbook.vq import perplexity

    assert perplexity([3, 3, 3], 8) == pytest.approx(1.0)
    assert perplexity([0, 1, 2, 3] * 5, 8) == pytest.approx(4.0)
    assert perplexity(np.arange(8), 8) == pytest.approx(8.0)
    assert perplexity([0, 0, 1, 2], 3) == pytest.approx(2 ** 1.5)   # H = 1.5 bits
    with pytest.raises(ValueError, match="codes must lie"):
        perplexity([0, 9], 8)


def test_sample_codes_follows_the_priors_logits():
    from gdlbook.vq import sample_codes

    seen = []

    def prior(x, training=False):          # always sure of code 2, unless the pixel above is 2
        seen.append(np.array(x))
        n, g = x.shape[0], x.shape[1]
        logits = np.full((n, g, g, 4), -30.0, "float32")
        logits[..., 2] = 30.0
        return logits

    grid = sample_codes(prior, 3, 2, 4, seed=0)
    assert grid.shape == (3, 2, 2) and np.all(grid == 2)
    assert len(seen) == 4 and np.all(seen[0] == 0) and np.allclose(seen[-1][:, 0, 0], 2 / 3)
