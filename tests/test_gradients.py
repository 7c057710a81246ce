"""gdlbook.gradients.value_and_grad against analytic gradients, on every backend."""

import numpy as np
import pytest

from backendrun import BACKENDS, run_with_backend

CHECK = """
    import json
    import numpy as np, keras
    from keras import ops
    from gdlbook.gradients import value_and_grad

    rng = np.random.default_rng(0)
    x_np = rng.normal(size=(5, 3)).astype("float32")
    w_np = rng.normal(size=(3, 2)).astype("float32")
    out = {}

    # 1. with respect to variables: L = sum((x W)^2), dL/dW = 2 x^T (x W); an unused one gets 0
    W = keras.Variable(w_np)
    unused = keras.Variable(np.ones(4, "float32"))
    x = ops.convert_to_tensor(x_np)
    loss, (gW, gu) = value_and_grad(lambda: ops.sum(ops.matmul(x, W) ** 2), [W, unused])
    out["loss"] = float(loss)
    out["gW"] = ops.convert_to_numpy(gW).tolist()
    out["gu"] = ops.convert_to_numpy(gu).tolist()
    (loss_a, aux), (gW_a,) = value_and_grad(
        lambda: (ops.sum(ops.matmul(x, W) ** 2), ops.sum(W)), [W], has_aux=True)
    out["aux"] = [float(loss_a), float(aux)]
    out["gW_aux"] = ops.convert_to_numpy(gW_a).tolist()

    # 2. with respect to an input tensor (and a variable at once): dL/dx = 2 (x W) W^T
    loss2, (gx, gW2) = value_and_grad(lambda x: ops.sum(ops.matmul(x, W) ** 2), [x, W])
    out["gx"] = ops.convert_to_numpy(gx).tolist()
    out["gW2"] = ops.convert_to_numpy(gW2).tolist()

    # 3. nested (a gradient penalty): inner g = d/dx sum(sin(x w)) = w cos(x w);
    #    outer L = sum(g^2), dL/dw = sum over x of 2 w cos^2(xw) - 2 w^2 x cos(xw) sin(xw)
    v = keras.Variable(np.array([0.7, -1.3, 0.4], "float32"))
    def outer():
        _, (g,) = value_and_grad(lambda x: ops.sum(ops.sin(x * v)), [x])
        return ops.sum(g ** 2)
    loss3, (gv,) = value_and_grad(outer, [v])
    out["loss3"] = float(loss3)
    out["gv"] = ops.convert_to_numpy(gv).tolist()

    # 4. a model with batch norm and dropout in training mode: gradients of every weight, and
    #    the moving statistics and the seed state are updated as in a plain forward pass
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4),
                              keras.layers.BatchNormalization(), keras.layers.Dropout(0.5),
                              keras.layers.Dense(1)])
    before = ops.convert_to_numpy(model.layers[1].moving_mean).copy()
    loss4, grads4 = value_and_grad(lambda: ops.mean(model(x, training=True) ** 2),
                                   model.trainable_variables)
    out["n4"] = [len(grads4), len(model.trainable_variables)]
    out["shapes4"] = [list(g.shape) == list(v.shape)
                      for g, v in zip(grads4, model.trainable_variables)]
    out["finite4"] = all(bool(np.all(np.isfinite(ops.convert_to_numpy(g)))) for g in grads4)
    out["bn_moved"] = bool(np.any(ops.convert_to_numpy(model.layers[1].moving_mean) != before))
    print(json.dumps(out))
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_value_and_grad_matches_analytic_gradients(backend):
    out = run_with_backend(backend, CHECK)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3)).astype("float32")
    w = rng.normal(size=(3, 2)).astype("float32")
    xw = x @ w
    np.testing.assert_allclose(out["loss"], np.sum(xw ** 2), rtol=1e-5)
    np.testing.assert_allclose(out["gW"], 2 * x.T @ xw, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(out["gu"], np.zeros(4))
    np.testing.assert_allclose(out["aux"], [np.sum(xw ** 2), np.sum(w)], rtol=1e-5)
    np.testing.assert_allclose(out["gW_aux"], 2 * x.T @ xw, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["gx"], 2 * xw @ w.T, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["gW2"], 2 * x.T @ xw, rtol=1e-4, atol=1e-5)

    v = np.array([0.7, -1.3, 0.4], "float32")
    c, s = np.cos(x * v), np.sin(x * v)
    np.testing.assert_allclose(out["loss3"], np.sum((v * c) ** 2), rtol=1e-5)
    np.testing.assert_allclose(out["gv"], np.sum(2 * v * c ** 2 - 2 * v ** 2 * x * c * s, axis=0),
                               rtol=1e-4, atol=1e-5)

    assert out["n4"][0] == out["n4"][1] == 6 and all(out["shapes4"]) and out["finite4"]
    assert out["bn_moved"], "batch-norm moving statistics were not updated"


def test_unknown_backend_is_refused(monkeypatch):
    import keras
    from gdlbook import gradients
    monkeypatch.setattr(keras.backend, "backend", lambda: "numpy")
    with pytest.raises(NotImplementedError, match="numpy"):
        gradients.value_and_grad(lambda: 0.0, [])
