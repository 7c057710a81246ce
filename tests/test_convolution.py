"""gdlbook.convolution.Conv2D computes the same function and gradients as keras.layers.Conv2D on
TensorFlow, PyTorch and JAX, for the kernel sizes, strides, paddings, dilations and groups the
book uses and others (odd and even image sizes, so that "same" pads unevenly); it runs in
channels-last memory on PyTorch only; a model built with it saves and reloads; and the "same"
padding rule is right where it can be worked out by hand."""

import pytest

from backendrun import BACKENDS, assert_same_as_reference, run_snippets
from gdlbook.convolution import same_padding

CHECKS = """
    import os, tempfile
    import numpy as np, keras
    from keras import ops
    from gdlbook.gradients import value_and_grad
    from gdlbook.convolution import Conv2D

    np_ = ops.convert_to_numpy
    rng = np.random.default_rng(0)
    out = {"forward": {}, "grad": {}}
    configs = [dict(kernel_size=3, strides=2, padding="same"),
               dict(kernel_size=4, strides=2, padding="same"),
               dict(kernel_size=5, strides=1, padding="same"),
               dict(kernel_size=1, strides=1, padding="valid"),
               dict(kernel_size=4, strides=1, padding="valid"),
               dict(kernel_size=(3, 2), strides=(1, 3), padding="same"),
               dict(kernel_size=3, dilation_rate=2, padding="same"),
               dict(kernel_size=3, padding="same", groups=2)]
    for config in configs:
        for size in (7, 8):
            x = rng.normal(size=(2, size, size + 1, 4)).astype("float32")
            plain = keras.layers.Conv2D(6, activation="tanh", bias_initializer="random_normal",
                                        **config)
            ours = Conv2D(6, activation="tanh", **config)
            plain(x), ours(x)
            ours.set_weights(plain.get_weights())
            key = f"{config} {size}"
            a, b = np_(plain(x)), np_(ours(x))
            out["forward"][key] = [list(a.shape), list(b.shape), float(np.abs(a - b).max()),
                                   float(np.abs(a).max())]
            grads = []
            for layer in (plain, ours):
                def f(kernel, bias, x, layer=layer):
                    y = layer.stateless_call([kernel, bias], [], x)[0]
                    return ops.sum(ops.square(y) * ops.arange(1.0, 7.0))
                _, g = value_and_grad(f, [ops.convert_to_tensor(w) for w in
                                          plain.get_weights() + [x]])
                grads.append([np_(t) for t in g])
            out["grad"][key] = [float(np.abs(p - s).max()) for p, s in zip(*grads)] + [
                float(min(np.abs(g).max() for g in grads[0]))]

    out["channels_last"] = Conv2D(3, 3)._uses_torch_channels_last()
    inputs = keras.Input((6, 6, 2))
    model = keras.Model(inputs, Conv2D(3, 3, strides=2, padding="same")(inputs))
    x = rng.normal(size=(2, 6, 6, 2)).astype("float32")
    path = os.path.join(tempfile.mkdtemp(), "m.keras")
    model.save(path)
    again = keras.models.load_model(path)
    out["reload"] = [type(again.layers[-1]).__name__,
                     float(np.abs(np_(model(x)) - np_(again(x))).max())]
    RESULT.update(out)
"""


@pytest.fixture(scope="module", params=BACKENDS)
def run(request):
    return run_snippets(request.param, CHECKS, timeout=600)


def test_same_outputs_and_gradients_as_keras(run):
    assert len(run["forward"]) == 16
    assert_same_as_reference(run, grad_scale=1e-3, n_grads=3)   # kernel, bias and the input image


def test_channels_last_route_on_torch_only(run, request):
    assert run["channels_last"] == (request.node.callspec.params["run"] == "torch")


def test_model_saves_and_reloads(run):
    name, err = run["reload"]
    assert name == "Conv2D" and err < 1e-6


def test_same_padding_by_hand():
    assert same_padding(8, 3, 2) == (0, 1)     # 4 outputs: rows 0..8 read, one padded after
    assert same_padding(7, 3, 2) == (1, 1)     # 4 outputs from 7 rows: one each side
    assert same_padding(8, 4, 2) == (1, 1)
    assert same_padding(8, 5, 1) == (2, 2)
    assert same_padding(8, 3, 1, dilation=2) == (2, 2)
    assert same_padding(8, 1, 2) == (0, 0)
    assert same_padding(8, 2, 1) == (0, 1)
