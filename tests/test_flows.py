"""gdlbook.flows: invertibility, the log-determinant, the prior's density, and training on every backend."""

import numpy as np
import pytest
from keras import ops
from scipy.stats import multivariate_normal

from backendrun import BACKENDS, run_with_backend
from gdlbook import flows, set_seed


def _flow(**kwargs):
    set_seed(0)
    model = flows.RealNVP(**{"num_layers": 4, "units": 16, "hidden_layers": 2, "seed": 0,
                             **kwargs})
    model(np.zeros((1, model.dim), "float32"))
    return model


def _points(n=64, dim=2, seed=0):
    return np.random.default_rng(seed).normal(scale=1.5, size=(n, dim)).astype("float32")


def test_masks_alternate():
    np.testing.assert_array_equal(flows.alternating_masks(4, 2), [[0, 1], [1, 0], [0, 1], [1, 0]])
    assert flows.alternating_masks(3, 5).sum(axis=1).tolist() == [2, 3, 2]


def test_g_inverts_f_and_f_inverts_g():
    model = _flow(dim=3)
    x = _points(dim=3)
    z, _ = model.f(x)
    z = ops.convert_to_numpy(z)
    assert np.abs(z - x).max() > 1e-2                                    # f is not the identity
    np.testing.assert_allclose(ops.convert_to_numpy(model.g(z)), x, atol=1e-4)
    np.testing.assert_allclose(ops.convert_to_numpy(model.f(model.g(x))[0]), x, atol=1e-4)


def test_log_det_matches_a_numerical_jacobian():
    model = _flow()
    x = _points(n=8).astype("float64")
    _, log_det = model.f(x.astype("float32"))
    eps = 1e-3
    for i in range(len(x)):
        jac = np.empty((2, 2))
        for j in range(2):                                               # central differences
            dx = np.zeros((1, 2)); dx[0, j] = eps
            plus = ops.convert_to_numpy(model.f((x[i:i + 1] + dx).astype("float32"))[0])
            minus = ops.convert_to_numpy(model.f((x[i:i + 1] - dx).astype("float32"))[0])
            jac[:, j] = (plus - minus)[0] / (2 * eps)
        expected = np.log(abs(np.linalg.det(jac)))
        np.testing.assert_allclose(ops.convert_to_numpy(log_det)[i], expected, atol=5e-3)
    assert np.ptp(ops.convert_to_numpy(log_det)) > 1e-2        # not volume-preserving: a real test


def test_prior_log_prob_is_the_standard_normal():
    z = _points(n=10, dim=3)
    expected = multivariate_normal(np.zeros(3), np.eye(3)).logpdf(z)
    np.testing.assert_allclose(ops.convert_to_numpy(flows.standard_normal_log_prob(z)),
                               expected, rtol=1e-5)


def test_flow_density_integrates_to_one():
    model = _flow()
    xs, ys, density = flows.density_grid(model.log_prob, (-8, 8), (-8, 8), n=300)
    mass = density.sum() * (xs[1] - xs[0]) * (ys[1] - ys[0])
    assert abs(mass - 1) < 0.01, mass


def test_samples_come_from_the_flow():
    model = _flow()
    x = ops.convert_to_numpy(model.sample(20_000))
    assert x.shape == (20_000, 2) and np.isfinite(x).all()
    # samples are g(z): mapping them back must give z that looks standard normal
    z = ops.convert_to_numpy(model.f(x)[0])
    np.testing.assert_allclose(z.mean(0), 0, atol=0.03)
    np.testing.assert_allclose(z.std(0), 1, atol=0.03)


TRAIN = """
    import json
    import numpy as np, keras
    from keras import ops
    from sklearn.datasets import make_moons
    from gdlbook import flows, set_seed

    x = make_moons(1024, noise=0.05, random_state=0)[0].astype("float32")
    x = (x - x.mean(0)) / x.std(0)
    set_seed(0)
    model = flows.RealNVP(num_layers=4, units=32, hidden_layers=2, seed=0)
    model(x[:1])
    model.compile(keras.optimizers.Adam(1e-3))
    h = model.fit(x, epochs=4, batch_size=128, verbose=0).history
    ev = model.evaluate(x, batch_size=256, verbose=0)
    nll = -float(ops.convert_to_numpy(ops.mean(model.log_prob(x))))
    back = ops.convert_to_numpy(model.g(model.f(x[:64])[0]))
    print(json.dumps(dict(loss=h["loss"], ev=float(ev), nll=nll,
                          err=float(np.abs(back - x[:64]).max()),
                          sample=ops.convert_to_numpy(model.sample(4)).tolist())))
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_realnvp_trains_on_every_backend(backend):
    out = run_with_backend(backend, TRAIN)
    loss = np.array(out["loss"])
    assert np.isfinite(loss).all() and loss[-1] < loss[0] - 0.05, out
    assert abs(out["ev"] - out["nll"]) < 1e-3, out              # the loss is the mean NLL
    assert out["err"] < 1e-4 and np.isfinite(out["sample"]).all(), out
