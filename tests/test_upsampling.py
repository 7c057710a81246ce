"""gdlbook.upsampling: the sub-pixel route, and the default route of each backend (sub-pixel on
JAX, channels-last memory on PyTorch, Keras's own on TensorFlow), compute the same function and
the same gradients as Keras's own transposed convolution, for the kernel sizes and strides the
book uses and others, on TensorFlow, PyTorch and JAX; a model built with the layer saves and
reloads; and the phase table is right where it can be worked out by hand."""

import numpy as np
import pytest

from backendrun import BACKENDS, assert_same_as_reference, run_snippets
from gdlbook.upsampling import _phase_taps

CHECKS = """
    import os, tempfile
    import numpy as np, keras
    from keras import ops
    from gdlbook.gradients import value_and_grad
    from gdlbook.upsampling import Conv2DTranspose

    np_ = ops.convert_to_numpy
    rng = np.random.default_rng(0)
    out = {"forward": {}, "grad": {}}
    configs = [(3, 2), (4, 2), (5, 2), (2, 2), (1, 2), (3, 3), (6, 3), (4, 4),
               ((2, 1), (2, 1)), ((1, 12), (1, 12)), ((3, 4), (2, 3))]
    for kernel, stride in configs:
        x = rng.normal(size=(2, 5, 3, 4)).astype("float32")
        plain = Conv2DTranspose(6, kernel, strides=stride, padding="same", subpixel=False,
                                bias_initializer="random_normal", activation="tanh")
        sub = Conv2DTranspose(6, kernel, strides=stride, padding="same", subpixel=True,
                              activation="tanh")
        auto = Conv2DTranspose(6, kernel, strides=stride, padding="same", activation="tanh")
        plain(x), sub(x), auto(x)
        sub.set_weights(plain.get_weights())
        auto.set_weights(plain.get_weights())
        for route, other in (("subpixel", sub), ("default", auto)):
            key = f"{route} {(kernel, stride)}"
            a, b = np_(plain(x)), np_(other(x))
            out["forward"][key] = [list(a.shape), list(b.shape), float(np.abs(a - b).max()),
                                   float(np.abs(a).max())]
            xt = ops.convert_to_tensor(x)
            grads = []
            for layer in (plain, other):
                def f(kernel, bias, layer=layer):
                    y = layer.stateless_call([kernel, bias], [], xt)[0]
                    return ops.sum(ops.square(y) * ops.arange(1.0, 7.0))
                _, g = value_and_grad(f, [ops.convert_to_tensor(w) for w in plain.get_weights()])
                grads.append([np_(t) for t in g])
            out["grad"][key] = [float(np.abs(p - s).max()) for p, s in zip(*grads)] + [
                float(np.abs(grads[0][0]).max())]

    default = Conv2DTranspose(3, 3, strides=2, padding="same")
    default(np.zeros((1, 4, 4, 2), "float32"))
    out["default_subpixel"] = default._uses_subpixel()
    out["default_channels_last"] = default._uses_torch_channels_last()
    out["valid_subpixel"] = Conv2DTranspose(3, 3, strides=2, padding="valid", subpixel=True
                                            )._uses_subpixel()

    inputs = keras.Input((4, 4, 2))
    model = keras.Model(inputs, Conv2DTranspose(3, 4, strides=2, padding="same", subpixel=True)(inputs))
    x = rng.normal(size=(2, 4, 4, 2)).astype("float32")
    path = os.path.join(tempfile.mkdtemp(), "m.keras")
    model.save(path)
    again = keras.models.load_model(path)
    out["reload"] = [type(again.layers[-1]).__name__, again.layers[-1].subpixel,
                     float(np.abs(np_(model(x)) - np_(again(x))).max())]
    RESULT.update(out)
"""


@pytest.fixture(scope="module", params=BACKENDS)
def run(request):
    return run_snippets(request.param, CHECKS, timeout=600)


def test_same_outputs_and_gradients_as_keras(run):
    assert len(run["forward"]) == 22                # 11 configurations, two routes each
    assert_same_as_reference(run, grad_scale=0.1, n_grads=2)    # kernel and bias


def test_routes_by_default_sub_pixel_on_jax_channels_last_on_torch(run, request):
    backend = request.node.callspec.params["run"]
    assert run["default_subpixel"] == (backend == "jax")
    assert run["default_channels_last"] == (backend == "torch")
    assert run["valid_subpixel"] is False
    assert any(key.startswith("default") for key in run["forward"])


def test_model_saves_and_reloads(run):
    name, subpixel, err = run["reload"]
    assert name == "Conv2DTranspose" and subpixel is True
    assert err < 1e-6


def test_phase_taps_by_hand():
    # kernel 3, stride 2, "same": the left padding is 0; output 2m takes k[0]·x[m] and
    # k[2]·x[m-1], output 2m+1 takes k[1]·x[m].
    lo, taps = _phase_taps(3, 2)
    assert lo == -1
    np.testing.assert_array_equal(taps, [[2, -1], [0, 1]])
    # kernel 4, stride 2: padding 1; output 2m takes k[1]·x[m], k[3]·x[m-1];
    # output 2m+1 takes k[2]·x[m], k[0]·x[m+1]
    lo, taps = _phase_taps(4, 2)
    assert lo == -1
    np.testing.assert_array_equal(taps, [[3, -1], [1, 2], [-1, 0]])
    # stride equal to the kernel: no overlap, one tap per phase
    lo, taps = _phase_taps(12, 12)
    assert lo == 0
    np.testing.assert_array_equal(taps, [list(range(12))])


def test_minimal_reproduction_runs():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "conv_transpose_xla.py"
    out = subprocess.run([sys.executable, str(script), "--rounds", "1", "--batch", "2"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    rows = [line for line in out.splitlines() if " px, " in line]
    assert len(rows) == 6
    assert all(len(row.split()[-3:]) == 3 for row in rows)
