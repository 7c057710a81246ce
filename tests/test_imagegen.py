"""gdlbook.imagegen on TensorFlow, PyTorch and JAX: the Gram matrix, the content, style and
total-variation losses and DeepDream's objective against NumPy; the style loss of an image with
itself is zero; the octave loop gives back the image when nothing is dreamt (detail
re-injection is exact); a gradient-ascent step raises the dream objective; instance
normalisation; the fast style-transfer network trains with fit() without touching the
network it reads; L-BFGS-B lowers the loss and keeps pixels in bounds; Keras's VGG19 and
InceptionV3 (random weights: the ImageNet files are not here) run the feature extraction, the
losses and one optimisation step; missing ImageNet weights offline give one clear error."""

import numpy as np
import pytest

from backendrun import BACKENDS, run_snippets

LOSSES = """
    import numpy as np, keras
    from keras import ops
    from gdlbook import set_seed, imagegen as ig
    from gdlbook.gradients import value_and_grad

    set_seed(0)
    np_ = ops.convert_to_numpy
    rng = np.random.default_rng(0)
    out = {}

    f = rng.normal(size=(2, 5, 6, 4)).astype("float32")
    out["gram"] = np_(ig.gram_matrix(f)).tolist()
    g = rng.normal(size=(2, 5, 6, 4)).astype("float32")
    out["content"] = float(np_(ig.content_loss(f, g)))
    target = np_(ig.gram_matrix(g[:1]))
    out["style"] = float(np_(ig.style_loss([f, f[:, :3, :3]], [target, target])))
    img = rng.uniform(size=(2, 7, 9, 3)).astype("float32")
    out["tv"] = float(np_(ig.total_variation_loss(img)))
    feats = {"a": rng.normal(size=(1, 10, 12, 3)).astype("float32"),
             "b": rng.normal(size=(1, 4, 4, 2)).astype("float32")}
    out["dream"] = float(np_(ig.dream_loss(feats, {"a": 1.0, "b": 2.5})))

    # a small VGG-style network, untrained: the losses are properties of the maths, not of training
    net = ig.trained_network(ig.small_vgg((8, 16, 16)), "test network")
    out["layers"] = [net.content_layer, list(net.style_layers), sorted(net.dream_layers)]
    a = rng.uniform(size=(1, 32, 32, 3)).astype("float32")
    b = rng.uniform(size=(1, 32, 32, 3)).astype("float32")
    loss = ig.StyleTransferLoss(net, a, style_weight=3.0, tv_weight=0.0)
    total, terms = loss(ops.convert_to_tensor(a), loss.content_target(a))
    out["self"] = [float(np_(total)), float(np_(terms["style"])), float(np_(terms["content"]))]
    total, terms = loss(ops.convert_to_tensor(b), loss.content_target(a))
    out["other"] = [float(np_(total)), float(np_(terms["style"])), float(np_(terms["content"]))]

    # the octave loop with an ascent that does nothing returns the image (detail re-injection)
    shapes = ig.octave_shapes((32, 48), 3, 1.4, min_side=8)
    out["shapes"] = [list(s) for s in shapes]
    out["shapes_min"] = [list(s) for s in ig.octave_shapes((32, 48), 4, 2.0, min_side=8)]
    same = ig.octave_dream(np.concatenate([a, b])[:, :, :], lambda x: x,
                           ig.octave_shapes((32, 32), 3, 1.4))
    out["identity_dream"] = float(np.abs(np_(same) - np.concatenate([a, b])).max())
    seen = []
    ig.octave_dream(a, lambda x: seen.append(tuple(x.shape[1:3])) or x, shapes)
    out["seen"] = [list(s) for s in seen]

    # one normalised gradient-ascent step raises the dream objective
    extract = net.extractor(["block2_conv2"])
    objective = lambda x: ig.dream_loss(extract(x), {"block2_conv2": 1.0})  # noqa: E731
    x = ops.convert_to_tensor(a)
    before, (grad,) = value_and_grad(objective, [x])
    x = x + 0.01 * grad / (ops.mean(ops.abs(grad)) + 1e-8)
    out["ascent"] = [float(np_(before)), float(np_(objective(x)))]
    try:
        net.extractor(["no_such_layer"])
    except ValueError as e:
        out["bad_layer"] = str(e)
    RESULT["losses"] = out
"""

FAST = """
    import numpy as np, keras
    from keras import ops
    from gdlbook import set_seed, imagegen as ig

    set_seed(0)
    np_ = ops.convert_to_numpy
    rng = np.random.default_rng(1)
    out = {}

    # instance normalisation: every example's every channel has mean 0 and variance 1
    norm = ig._norm("n")
    z = rng.normal(2.0, 3.0, size=(2, 6, 6, 4)).astype("float32")
    y = np_(norm(z))
    out["in_mean"] = float(np.abs(y.mean(axis=(1, 2))).max())
    out["in_var"] = float(np.abs(y.var(axis=(1, 2)) - 1).max())

    T = ig.transform_net((4, 8, 8), 1)
    images = rng.uniform(size=(8, 16, 20, 3)).astype("float32")
    styled = np_(T(images))
    out["shape"] = list(styled.shape)
    out["range"] = [float(styled.min()), float(styled.max())]

    net = ig.trained_network(ig.small_vgg((4, 8)), "test network")
    frozen = [np_(w).copy() for w in net.model.weights]
    loss = ig.StyleTransferLoss(net, rng.uniform(size=(1, 16, 16, 3)).astype("float32"),
                                style_weight=10.0, tv_weight=0.1)
    fast = ig.FastStyleTransfer(T, loss)
    fast.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = [np_(w).copy() for w in T.trainable_weights]
    h = fast.fit(images, batch_size=4, epochs=3, verbose=0)
    out["logs"] = sorted(h.history)
    out["loss"] = h.history["loss"]
    out["moved"] = max(float(np.abs(np_(w) - b).max()) for w, b in zip(T.trainable_weights, before))
    out["frozen"] = max(float(np.abs(np_(w) - b).max()) for w, b in zip(net.model.weights, frozen))
    out["n_trainable"] = [len(fast.trainable_weights), len(T.trainable_weights)]

    # L-BFGS-B from SciPy: lower loss, pixels within [0, 1]
    content = rng.uniform(size=(1, 16, 16, 3)).astype("float32")
    target = loss.content_target(content)
    x, hist = ig.lbfgs(lambda x: loss(x, target), content, 8)
    out["lbfgs"] = [hist[0]["loss"], hist[-1]["loss"], float(x.min()), float(x.max()),
                    sorted(hist[0]), list(x.shape)]
    RESULT["fast"] = out
"""

REAL = """
    import os, tempfile
    import numpy as np, keras
    from keras import ops
    from gdlbook import set_seed, imagegen as ig
    from gdlbook.gradients import value_and_grad

    set_seed(0)
    np_ = ops.convert_to_numpy
    rng = np.random.default_rng(2)
    out = {}

    # the architectures of the online path, with random weights (no ImageNet files here)
    vgg = ig.imagenet_network("vgg19", weights=None)
    content = rng.uniform(size=(1, 48, 64, 3)).astype("float32")
    style = rng.uniform(size=(1, 40, 40, 3)).astype("float32")
    feats = vgg.extractor([vgg.content_layer, *vgg.style_layers])(content)
    out["vgg_shapes"] = {k: list(v.shape) for k, v in feats.items()}
    loss = ig.StyleTransferLoss(vgg, style, style_weight=1e-3, tv_weight=1.0)
    target = loss.content_target(content)
    image = keras.Variable(content)
    opt = keras.optimizers.SGD(1e-3)
    (total0, terms), (grad,) = value_and_grad(lambda: loss(image, target), [image], has_aux=True)
    opt.apply_gradients([(grad, image)])
    total1, _ = loss(image, target)
    out["vgg_step"] = [float(np_(total0)), float(np_(total1)), float(np_(terms["content"]))]
    out["vgg_pre"] = np_(vgg.preprocess(np.ones((1, 1, 1, 3), "float32")))[0, 0, 0].tolist()

    inc = ig.imagenet_network("inception_v3", weights=None)
    out["inc_choices"] = sorted(inc.dream_layers)
    weights = inc.dream_layers["mixed4–7 (Chollet)"]
    extract = inc.extractor(list(weights))
    shapes = ig.octave_shapes((220, 260), 3, 1.4, min_side=inc.min_side)
    out["inc_octaves"] = [list(s) for s in shapes]
    steps = []

    def ascend(x):
        objective = lambda x: ig.dream_loss(extract(x), weights)  # noqa: E731
        value, (g,) = value_and_grad(objective, [x])
        x = x + 0.01 * g / (ops.mean(ops.abs(g)) + 1e-8)
        steps.append([float(np_(value)), float(np_(objective(x)))])
        return x

    dream = ig.octave_dream(rng.uniform(size=(1, 220, 260, 3)).astype("float32"), ascend, shapes)
    out["inc_dream"] = [list(dream.shape), steps]

    # the weights cannot be had: one clear error, or the fallback with the reason printed
    os.environ["KERAS_HOME"] = tempfile.mkdtemp()
    os.environ["GDL_OFFLINE"] = "1"
    try:
        ig.imagenet_network("vgg19")
    except ig.WeightsUnavailableError as e:
        out["offline_error"] = str(e)
    out["auto"] = ig.choose_network("inception_v3", "auto", lambda: "fallback")
    out["never"] = ig.choose_network("inception_v3", False, lambda: "fallback")
    try:
        ig.choose_network("vgg19", True, lambda: "fallback")
    except ig.WeightsUnavailableError:
        out["required"] = "raised"
    RESULT["real"] = out
"""


@pytest.fixture(scope="module", params=BACKENDS)
def run(request):
    return run_snippets(request.param, LOSSES, FAST, REAL, timeout=600)


def _inputs():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(2, 5, 6, 4)).astype("float32")
    g = rng.normal(size=(2, 5, 6, 4)).astype("float32")
    img = rng.uniform(size=(2, 7, 9, 3)).astype("float32")
    feats = {"a": rng.normal(size=(1, 10, 12, 3)).astype("float32"),
             "b": rng.normal(size=(1, 4, 4, 2)).astype("float32")}
    return f, g, img, feats


def _gram(x):
    flat = x.reshape(x.shape[0], -1, x.shape[-1]).astype("float64")
    return np.einsum("bnc,bnd->bcd", flat, flat) / flat.shape[1]


def test_gram_matrix_against_numpy(run):
    f, *_ = _inputs()
    np.testing.assert_allclose(run["losses"]["gram"], _gram(f), rtol=1e-5, atol=1e-6)


def test_content_style_and_total_variation_losses_against_numpy(run):
    f, g, img, _ = _inputs()
    out = run["losses"]
    np.testing.assert_allclose(out["content"], np.mean((f - g) ** 2), rtol=1e-5)
    target = _gram(g[:1])
    expect = np.mean([np.mean((_gram(f) - target) ** 2),
                      np.mean((_gram(f[:, :3, :3]) - target) ** 2)])
    np.testing.assert_allclose(out["style"], expect, rtol=1e-4)
    tv = np.mean(np.diff(img, axis=1) ** 2) + np.mean(np.diff(img, axis=2) ** 2)
    np.testing.assert_allclose(out["tv"], tv, rtol=1e-5)


def test_dream_loss_leaves_out_the_border_of_large_maps(run):
    *_, feats = _inputs()
    expect = np.mean(feats["a"][:, 2:-2, 2:-2] ** 2) + 2.5 * np.mean(feats["b"] ** 2)
    np.testing.assert_allclose(run["losses"]["dream"], expect, rtol=1e-5)


def test_style_loss_of_an_image_with_itself_is_zero(run):
    out = run["losses"]
    assert out["layers"][0] == "block3_conv2"
    assert out["layers"][1] == ["block1_conv1", "block2_conv1", "block3_conv1"]
    assert max(abs(v) for v in out["self"]) < 1e-6, out["self"]
    total, style, content = out["other"]
    assert style > 1e-6 and content > 1e-6
    np.testing.assert_allclose(total, content + 3.0 * style, rtol=1e-4)


def test_octaves_and_detail_reinjection(run):
    out = run["losses"]
    assert out["shapes"] == [[16, 24], [23, 34], [32, 48]]
    assert out["shapes_min"] == [[8, 12], [16, 24], [32, 48]]      # 4×12 is below min_side
    assert out["seen"] == out["shapes"]
    assert out["identity_dream"] < 1e-5, out["identity_dream"]


def test_gradient_ascent_raises_the_dream_objective(run):
    before, after = run["losses"]["ascent"]
    assert after > before > 0, (before, after)
    assert "no_such_layer" in run["losses"]["bad_layer"]


def test_instance_normalisation_and_the_transform_network(run):
    out = run["fast"]
    assert out["in_mean"] < 1e-4 and out["in_var"] < 1e-2, out
    assert out["shape"] == [8, 16, 20, 3]
    assert 0.0 <= out["range"][0] and out["range"][1] <= 1.0


def test_fast_style_transfer_trains_the_transform_net_only(run):
    out = run["fast"]
    assert {"loss", "content_loss", "style_loss", "tv_loss"} <= set(out["logs"])
    assert out["loss"][-1] < out["loss"][0], out["loss"]
    assert out["moved"] > 0 and out["frozen"] == 0.0, out
    assert out["n_trainable"][0] == out["n_trainable"][1]


def test_lbfgs_lowers_the_loss_within_bounds(run):
    first, last, lo, hi, keys, shape = run["fast"]["lbfgs"]
    assert last < first and 0.0 <= lo and hi <= 1.0 and shape == [1, 16, 16, 3]
    assert keys == ["content", "evaluation", "loss", "seconds", "style", "tv"]


def test_the_imagenet_architectures_run_the_whole_pipeline(run):
    out = run["real"]
    shapes = out["vgg_shapes"]
    assert shapes["block4_conv2"] == [1, 6, 8, 512] and shapes["block1_conv1"] == [1, 48, 64, 64]
    assert shapes["block5_conv1"] == [1, 3, 4, 512]
    total0, total1, content0 = out["vgg_step"]
    assert content0 == 0.0 and total1 < total0          # the step lowers the loss
    np.testing.assert_allclose(out["vgg_pre"], [255 - 103.939, 255 - 116.779, 255 - 123.68],
                               rtol=1e-5)
    assert "mixed4–7 (Chollet)" in out["inc_choices"]
    assert all(min(s) >= 150 for s in out["inc_octaves"]) and out["inc_octaves"][-1] == [220, 260]
    shape, steps = out["inc_dream"]
    assert len(out["inc_octaves"]) == 2 and shape == [1, 220, 260, 3]
    assert len(steps) == len(out["inc_octaves"])
    assert all(after > before for before, after in steps), steps


def test_missing_weights_offline_give_a_clear_message(run):
    out = run["real"]
    msg = out["offline_error"]
    assert "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5" in msg and "GDL_OFFLINE" in msg
    assert "https://storage.googleapis.com/" in msg and "Traceback" not in msg
    assert out["auto"] == "fallback" and out["never"] == "fallback"
    assert out["required"] == "raised"
