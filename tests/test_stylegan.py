"""gdlbook.stylegan on TensorFlow, PyTorch and JAX: the modulated convolution against a per-example
convolution and its demodulation, style mixing (coarse layers from one w, fine from the other),
truncation towards the mean w, the noise inputs, the minibatch standard deviation and the
equalised learning rate against NumPy, SAGAN's self-attention (rows of its map sum to one; the
identity at the start), serialisation, two training steps of the StyleGAN and a resumed run."""

import numpy as np
import pytest

from backendrun import BACKENDS, run_snippets

LAYERS = """
    import numpy as np, keras
    from keras import ops
    from gdlbook import set_seed, stylegan as sg

    set_seed(0)
    np_ = ops.convert_to_numpy
    rng = np.random.default_rng(0)
    out = {}

    # -- modulated convolution: the fast form equals a convolution with each example's kernel
    conv = sg.ModulatedConv2D(5, 3)
    x = rng.normal(size=(3, 6, 6, 4)).astype("float32")
    w = rng.normal(size=(3, 7)).astype("float32")
    y = np_(conv([x, w]))
    kernels = np_(conv.modulated_kernel(w))
    per_example = np.concatenate([np_(ops.conv(x[b:b + 1], kernels[b], padding="same"))
                                  for b in range(3)])
    out["modconv_err"] = float(np.abs(y - per_example).max())
    out["modconv_shape"] = list(y.shape)
    out["demod_sumsq"] = np.sum(kernels ** 2, axis=(1, 2, 3)).ravel().tolist()
    # unit-variance inputs give unit-variance outputs (inside the border, away from the padding)
    big = rng.normal(size=(4, 40, 40, 4)).astype("float32")
    out["demod_var"] = np_(ops.var(conv([big, w[:1].repeat(4, 0)])[:, 1:-1, 1:-1],
                                   axis=(0, 1, 2))).tolist()
    plain = sg.ModulatedConv2D(5, 3, demodulate=False)
    plain([x, w])
    out["plain_sumsq_varies"] = float(np.ptp(np.sum(np_(plain.modulated_kernel(w)) ** 2,
                                                      axis=(1, 2, 3))))
    up = sg.ModulatedConv2D(2, 3, upsample=True)
    out["up_shape"] = list(np_(up([x, w])).shape)

    # -- minibatch standard deviation against NumPy (groups of 2 out of 4: images i and i+2)
    feats = rng.normal(size=(4, 3, 3, 2)).astype("float32")
    mb = np_(sg.MinibatchStdDev(group_size=2)(feats))
    out["mbstd_shape"] = list(mb.shape)
    out["mbstd_extra"] = mb[:, 0, 0, -1].tolist()
    out["mbstd_const"] = float(np.ptp(mb[..., -1], axis=(1, 2)).max())
    out["mbstd_whole"] = np_(sg.MinibatchStdDev()(feats))[:, 0, 0, -1].tolist()
    out["mbstd_small"] = np_(sg.MinibatchStdDev(group_size=8)(feats))[:, 0, 0, -1].tolist()

    # -- equalised learning rate: y = x (W · lr / sqrt(fan_in)) + b · lr
    dense = sg.EqualizedDense(6, lr_multiplier=0.01, bias_init=0.5)
    xd = rng.normal(size=(5, 8)).astype("float32")
    yd = np_(dense(xd))
    kernel, bias = dense.get_weights()
    out["eq_dense_err"] = float(np.abs(yd - (xd @ (kernel * 0.01 / np.sqrt(8)) + bias * 0.01)).max())
    out["eq_dense_bias"] = float(np.abs(bias * 0.01 - 0.5).max())
    big_dense = sg.EqualizedDense(256, lr_multiplier=0.5)
    big_dense.build((None, 256))
    out["eq_kernel_std"] = float(np.std(big_dense.get_weights()[0]))
    econv = sg.EqualizedConv2D(4, 3)
    yc = np_(econv(x))
    kc, bc = econv.get_weights()
    kc = (kc / np.sqrt(9 * 4)).astype("float32")
    out["eq_conv_err"] = float(np.abs(yc - np_(ops.conv(x, kc, padding="same")) - bc).max())

    # -- SAGAN's self-attention
    att = sg.SelfAttention2D()
    fm = rng.normal(size=(2, 4, 5, 16)).astype("float32")
    ya, beta = att(fm, return_attention=True)
    ya, beta = np_(ya), np_(beta)
    out["att_shape"] = list(beta.shape)
    out["att_rowsum"] = float(np.abs(beta.sum(-1) - 1).max())
    out["att_identity"] = float(np.abs(ya - fm).max())
    qk, kk, vk, ok = [np_(layer.kernel) for layer in (att.query, att.key, att.value, att.out)]
    att.gamma.assign(0.7)
    flat = fm.reshape(2, 20, 16)
    s = (flat @ qk[0, 0]) @ np.swapaxes(flat @ kk[0, 0], 1, 2)
    b_ = np.exp(s - s.max(-1, keepdims=True)); b_ /= b_.sum(-1, keepdims=True)
    expect = fm + 0.7 * ((b_ @ (flat @ vk[0, 0])) @ ok[0, 0]).reshape(fm.shape)
    out["att_err"] = float(np.abs(np_(att(fm)) - expect).max())

    # -- serialisation: from_config gives the same layer
    same = {}
    for layer, inputs in ((conv, [x, w]), (att, fm), (dense, xd),
                          (sg.MinibatchStdDev(group_size=2), feats)):
        clone = layer.__class__.from_config(layer.get_config())
        clone(inputs)
        clone.set_weights(layer.get_weights())
        a, c = layer(inputs), clone(inputs)
        same[layer.__class__.__name__] = float(np.abs(np_(a) - np_(c)).max())
    out["config_err"] = same
    RESULT["layers"] = out
"""

GENERATOR = """
    import numpy as np, keras
    from keras import ops
    from gdlbook import set_seed, stylegan as sg

    set_seed(0)
    np_ = ops.convert_to_numpy
    rng = np.random.default_rng(1)
    out = {}
    G = sg.StyleGenerator(latent_dim=8, w_dim=8, image_size=16, width=4, width_max=8,
                          mapping_depth=2)
    S = G.synthesis_network
    out["num_ws"] = G.num_ws
    out["layer_ws"] = S.layer_ws()
    # the noise strengths start at zero; give them values so that noise matters in these tests
    for layer in S.style_layers:
        layer.noise.strength.assign(np.full(layer.noise.strength.shape, 0.5, "float32"))
    noise = S.make_noise(2, seed=0)
    z = rng.normal(size=(6, 8)).astype("float32")
    w = np_(G.mapping(z))
    w1, w2, w2b = w[0:2], w[2:4], w[4:6]

    def run(ws, noise=noise):
        img, feats = G.synthesis(ops.convert_to_tensor(ws), noise=noise, return_features=True)
        return np_(img), [np_(f) for f in feats]

    # style mixing at crossover 3: layers reading ws[0..2] (4x4 and 8x8 blocks) get w1
    mixed = np_(sg.mix_styles(w1, w2, 3, G.num_ws))
    mixed_b = np_(sg.mix_styles(w1, w2b, 3, G.num_ws))
    out["mix_rows"] = [bool(np.allclose(mixed[:, k], w1)) for k in range(G.num_ws)]
    img_a, f_a = run(mixed)
    img_b, f_b = run(mixed_b)
    out["mix_feature_diff"] = [float(np.abs(a - b).max()) for a, b in zip(f_a, f_b)]
    out["mix_image_diff"] = float(np.abs(img_a - img_b).max())
    img_c, f_c = run(np_(sg.mix_styles(w2b, w2, 3, G.num_ws)))   # change the coarse w instead
    out["mix_coarse_diff"] = [float(np.abs(a - c).max()) for a, c in zip(f_a, f_c)]
    try:
        sg.mix_styles(w1, w2, G.num_ws + 1, G.num_ws)
        out["mix_bad"] = "no error"
    except ValueError as err:
        out["mix_bad"] = str(err)

    # truncation: psi = 0 gives the image of the mean w, whatever z (same noise for both images)
    noise = [np.repeat(n[:1], 2, axis=0) for n in noise]
    G.w_avg.assign(rng.normal(size=(8,)).astype("float32"))
    zs = rng.normal(size=(2, 8)).astype("float32")
    at_zero = np_(G(zs, truncation_psi=0.0, noise=noise))
    mean_img = np_(G.synthesis(ops.convert_to_tensor(np.tile(np_(G.w_avg), (2, 1))),
                               noise=noise))
    out["psi0_err"] = float(np.abs(at_zero - mean_img).max())
    out["psi0_spread"] = float(np.abs(at_zero[0] - at_zero[1]).max())
    out["psi1_spread"] = float(np.abs(np_(G(zs, noise=noise))[0] - np_(G(zs, noise=noise))[1]).max())
    wz = np_(G.mapping(zs))
    out["trunc_half_err"] = float(np.abs(np_(G.truncated(wz, 0.5))
                                         - (np_(G.w_avg) + 0.5 * (wz - np_(G.w_avg)))).max())
    # in training the mean w follows the batch: w_avg <- mean + beta (w_avg - mean)
    before = np_(G.w_avg).copy()
    G(zs, training=True)
    expect = wz.mean(0) + 0.995 * (before - wz.mean(0))
    out["w_avg_err"] = float(np.abs(np_(G.w_avg) - expect).max())

    # noise: same w and same noise give the same image; other noise, another image
    again = np_(G.synthesis(ops.convert_to_tensor(w1), noise=noise))
    other = np_(G.synthesis(ops.convert_to_tensor(w1), noise=S.make_noise(2, seed=1)))
    ref = np_(G.synthesis(ops.convert_to_tensor(w1), noise=noise))
    out["noise_same"] = float(np.abs(again - ref).max())
    out["noise_other"] = float(np.abs(other - ref).max())
    out["image"] = [list(ref.shape), float(ref.min()), float(ref.max())]

    # serialisation of the whole generator
    clone = sg.StyleGenerator.from_config(G.get_config())
    clone.set_weights(G.get_weights())
    out["gen_config_err"] = float(np.abs(np_(clone(zs, noise=noise)) - np_(G(zs, noise=noise))).max())

    # StyleGAN's eight-layer mapping network at initialisation: w keeps the scale of z and
    # differs from z to z (without the activation gain w shrinks ~0.7x per layer to about 0.1)
    deep = sg.build_mapping_network(64, 64, depth=8)
    wd = np_(deep(rng.normal(size=(256, 64)).astype("float32")))
    out["deep_w_rms"] = float(np.sqrt(np.mean(wd ** 2)))
    out["deep_w_spread"] = float(wd.std(axis=0).mean())
    RESULT["generator"] = out
"""

TRAIN = """
    import json, os
    import numpy as np, keras
    from gdlbook import set_seed, stylegan as sg, training

    os.environ["GDL_RUN_DIR"] = {run_root!r}
    x = np.random.default_rng(0).uniform(-1, 1, size=(16, 8, 8, 3)).astype("float32")
    np_ = keras.ops.convert_to_numpy

    def build(r1_gamma=1.0, r1_interval=16, **ema):
        set_seed(0)
        G = sg.StyleGenerator(latent_dim=8, w_dim=8, image_size=8, width=4, width_max=8,
                              mapping_depth=2)
        D = sg.build_style_discriminator(8, 3, width=4, width_max=8, attention_at=8,
                                         mbstd_group=4)
        gan = sg.StyleGAN(G, D, r1_gamma=r1_gamma, mixing_prob=0.9, r1_interval=r1_interval,
                          seed=0, **ema)
        gan.compile(d_optimizer=keras.optimizers.Adam(2e-3, 0.0, 0.99),
                    g_optimizer=keras.optimizers.Adam(2e-3, 0.0, 0.99))
        return gan

    # lazy R1: one step from the same start, with the discriminator's step counter at `start`
    def d_after_one_step(r1_gamma, r1_interval, start):
        gan = build(r1_gamma, r1_interval)
        gan.d_optimizer.iterations.assign(start)
        gan.fit(x[:8], batch_size=8, epochs=1, verbose=0, shuffle=False)
        return [np_(w) for w in gan.discriminator.get_weights()]

    def max_diff(a, b):
        return max(float(np.abs(u - v).max()) for u, v in zip(a, b))

    # the averaged generator: half-life 16 images, one step of 8 images: beta = 0.5 ** 0.5
    gan = build(ema_images=16, ema_ramp=None)
    before = [np_(w) for w in gan.generator.weights]
    gan.fit(x[:8], batch_size=8, epochs=1, verbose=0, shuffle=False)
    after = [np_(w) for w in gan.generator.weights]
    expect = [a + 0.5 ** 0.5 * (b - a) for a, b in zip(after, before)]
    ema = [np_(w) for w in gan.generator_ema.weights]
    RESULT["ema"] = dict(
        err=max(float(np.abs(e - f).max()) for e, f in zip(ema, expect)),
        moved=max(float(np.abs(e - b).max()) for e, b in zip(ema, before)),
        n_weights=[len(ema), len(after)], trainable=len(gan.generator_ema.trainable_weights))

    lazy_due = d_after_one_step(0.5, 4, 0)                 # step 0 of 4: R1, weighted by 4
    RESULT["lazy"] = dict(
        due_vs_weighted=max_diff(lazy_due, d_after_one_step(2.0, 1, 0)),
        due_vs_none=max_diff(lazy_due, d_after_one_step(0.0, 4, 0)),
        skipped_vs_none=max_diff(d_after_one_step(0.5, 4, 1), d_after_one_step(0.0, 4, 1)))

    def state(gan):
        return dict(g=[float(np.sum(w)) for w in gan.generator.get_weights()],
                    d=[float(np.sum(w)) for w in gan.discriminator.get_weights()],
                    w_avg=np_(gan.generator.w_avg).tolist(),
                    g_ema=[float(np.sum(w)) for w in gan.generator_ema.get_weights()],
                    g_opt=[float(np.sum(np_(v))) for v in gan.g_optimizer.variables])

    gan = build()
    s0 = state(gan)
    h = gan.fit(x, batch_size=8, epochs=1, verbose=0)
    s1 = state(gan)
    RESULT["train"] = dict(
        logs={{k: v[-1] for k, v in h.history.items()}},
        g_moved=s0["g"] != s1["g"], d_moved=s0["d"] != s1["d"],
        w_avg_moved=s0["w_avg"] != s1["w_avg"],
        iters=[int(np_(gan.g_optimizer.iterations)), int(np_(gan.d_optimizer.iterations))])

    class Stop(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt("the session ended")
        def on_epoch_end(self, epoch, logs=None):
            self.saved = state(self.model)

    gan, stop = build(), Stop()
    try:
        gan.fit(x, batch_size=8, epochs=2, verbose=0,
                callbacks=[training.resumable("t", "stylegan", profile="smoke"), stop])
    except KeyboardInterrupt:
        pass

    class Begin(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seen = state(self.model)

    gan, begin = build(), Begin()
    cb = training.resumable("t", "stylegan", profile="smoke")
    gan.fit(x, batch_size=8, epochs=2, verbose=0, callbacks=[cb, begin])
    RESULT["resume"] = dict(saved=stop.saved, restored=begin.seen, resumed_from=cb.resumed_from,
                            g_iter=int(np_(gan.g_optimizer.iterations)))
"""


@pytest.fixture(scope="module", params=BACKENDS)
def run(request, tmp_path_factory):
    """Every snippet in one interpreter per backend (importing Keras costs more than the tests)."""
    return run_snippets(request.param, LAYERS, GENERATOR,
                        TRAIN.format(run_root=str(tmp_path_factory.mktemp("runs"))), timeout=600)


def test_modulated_convolution_equals_a_convolution_with_each_examples_kernel(run):
    out = run["layers"]
    assert out["modconv_shape"] == [3, 6, 6, 5] and out["up_shape"] == [3, 12, 12, 2]
    assert out["modconv_err"] < 1e-4, out["modconv_err"]


def test_demodulation_gives_unit_norm_kernels_and_unit_variance_outputs(run):
    out = run["layers"]
    np.testing.assert_allclose(out["demod_sumsq"], 1.0, rtol=1e-4)   # every example, every output
    np.testing.assert_allclose(out["demod_var"], 1.0, atol=0.2)
    assert out["plain_sumsq_varies"] > 1e-3   # without demodulation the style scales the kernel


def test_minibatch_stddev_against_numpy(run):
    out = run["layers"]
    rng = np.random.default_rng(0)
    rng.normal(size=(3, 6, 6, 4)), rng.normal(size=(3, 7)), rng.normal(size=(4, 40, 40, 4))
    feats = rng.normal(size=(4, 3, 3, 2)).astype("float32")
    groups = feats.reshape(2, 2, 3, 3, 2)                  # group j = images j and j + 2
    per_group = np.sqrt(groups.var(axis=0) + 1e-8).mean(axis=(1, 2, 3))
    assert out["mbstd_shape"] == [4, 3, 3, 3] and out["mbstd_const"] == 0.0
    np.testing.assert_allclose(out["mbstd_extra"], np.tile(per_group, 2), rtol=1e-5)
    whole = np.sqrt(feats.var(axis=0) + 1e-8).mean()
    np.testing.assert_allclose(out["mbstd_whole"], [whole] * 4, rtol=1e-5)
    np.testing.assert_allclose(out["mbstd_small"], [whole] * 4, rtol=1e-5)  # groups ≤ batch


def test_equalised_learning_rate_scales_at_run_time(run):
    out = run["layers"]
    assert out["eq_dense_err"] < 1e-5 and out["eq_dense_bias"] < 1e-6, out
    assert abs(out["eq_kernel_std"] - 2.0) < 0.05, out      # N(0, 1 / lr²) with lr = 0.5
    assert out["eq_conv_err"] < 1e-4, out


def test_self_attention_rows_sum_to_one_and_the_block_starts_as_the_identity(run):
    out = run["layers"]
    assert out["att_shape"] == [2, 20, 20]
    assert out["att_rowsum"] < 1e-5 and out["att_identity"] == 0.0, out
    assert out["att_err"] < 1e-4, out                        # against the NumPy formula


def test_layers_round_trip_through_their_config(run):
    assert all(err < 1e-6 for err in run["layers"]["config_err"].values()), run["layers"]
    assert run["generator"]["gen_config_err"] < 1e-6


def test_style_mixing_takes_coarse_layers_from_one_w_and_fine_layers_from_the_other(run):
    out = run["generator"]
    assert out["num_ws"] == 6
    assert out["layer_ws"] == [["b4_conv1", 0], ["b4_torgb", 1], ["b8_conv0", 1],
                               ["b8_conv1", 2], ["b8_torgb", 3], ["b16_conv0", 3],
                               ["b16_conv1", 4], ["b16_torgb", 5]]
    assert out["mix_rows"] == [True, True, True, False, False, False]
    # changing the fine w leaves the 4x4 and 8x8 activations alone, and changes the rest
    assert out["mix_feature_diff"][0] == 0.0 and out["mix_feature_diff"][1] == 0.0, out
    assert out["mix_feature_diff"][2] > 1e-3 and out["mix_image_diff"] > 1e-3, out
    # changing the coarse w changes everything from the first layer on
    assert all(d > 1e-3 for d in out["mix_coarse_diff"]), out
    assert "crossover" in out["mix_bad"]


def test_a_deep_mapping_network_keeps_the_scale_and_variety_of_w(run):
    out = run["generator"]
    assert 0.5 < out["deep_w_rms"] < 2.0, out["deep_w_rms"]
    assert out["deep_w_spread"] > 0.4, out["deep_w_spread"]


def test_truncation_with_psi_zero_gives_the_mean_w_image(run):
    out = run["generator"]
    assert out["psi0_err"] < 1e-5 and out["psi0_spread"] < 1e-5, out
    assert out["psi1_spread"] > 1e-3, out                    # without truncation z matters
    assert out["trunc_half_err"] < 1e-5 and out["w_avg_err"] < 1e-5, out


def test_noise_inputs_change_the_image_and_fixed_noise_is_repeatable(run):
    out = run["generator"]
    assert out["noise_same"] == 0.0 and out["noise_other"] > 1e-3, out
    shape, lo, hi = out["image"]
    assert shape == [2, 16, 16, 3] and -1.0 <= lo < hi <= 1.0


def test_two_stylegan_steps_move_both_players_and_the_mean_w(run):
    out = run["train"]
    assert out["logs"] and all(np.isfinite(v) for v in out["logs"].values()), out
    assert {"d_loss", "g_loss", "r1"} <= set(out["logs"]) and out["logs"]["r1"] > 0, out  # step 0
    assert out["g_moved"] and out["d_moved"] and out["w_avg_moved"], out
    assert out["iters"] == [2, 2], out


def test_lazy_r1_regularises_every_interval_steps_with_the_weight_of_the_interval(run):
    out = run["lazy"]
    assert out["due_vs_none"] > 1e-5, out         # the penalty changes a regularised step
    assert out["due_vs_weighted"] < 1e-5, out     # γ at every 4th step = 4γ at that step
    assert out["skipped_vs_none"] < 1e-6, out     # the steps between carry no penalty


def test_the_averaged_generator_follows_the_trained_one_with_its_half_life(run):
    out = run["ema"]
    assert out["n_weights"][0] == out["n_weights"][1] and out["trainable"] == 0, out
    assert out["moved"] > 1e-4, out              # the average moved with the generator
    assert out["err"] < 1e-5, out                # by 1 - 0.5 ** (8 / 16) of the step


def test_resumed_stylegan_restores_networks_mean_w_and_optimizer(run):
    out = run["resume"]
    assert out["resumed_from"] == 1 and out["g_iter"] == 4, out
    for part in ("g", "d", "w_avg", "g_ema", "g_opt"):
        np.testing.assert_allclose(out["restored"][part], out["saved"][part], rtol=1e-6,
                                   err_msg=part)


def test_fade_in_blends_from_the_old_output_to_the_new():
    from gdlbook.stylegan import fade_in

    old, new = np.zeros((2, 4)), np.ones((2, 4))
    assert np.all(fade_in(0.0, old, new) == old) and np.all(fade_in(1.0, old, new) == new)
    np.testing.assert_allclose(fade_in(0.25, old, new), 0.25)


def test_image_size_must_be_a_power_of_two():
    from gdlbook import stylegan as sg

    with pytest.raises(ValueError, match="power of two"):
        sg.build_style_discriminator(24)
