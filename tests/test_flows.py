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


def test_every_variable_has_its_own_path():
    # PyTorch registers a Keras model's parameters by variable path: duplicates drop out, and
    # fit() then never resets their gradients (the flow did not learn on torch)
    model = _flow(num_layers=3)
    paths = [v.path for v in model.trainable_variables]
    assert len(paths) == 3 * 12 and len(set(paths)) == len(paths), paths


def test_networks_with_the_same_paths_are_refused(monkeypatch):
    build = flows.coupling_network
    monkeypatch.setattr(flows, "coupling_network",
                        lambda *args, name, **kwargs: build(*args, name="same", **kwargs))
    with pytest.raises(ValueError, match="distinct paths"):
        flows.RealNVP(num_layers=2, units=4, hidden_layers=1)


# The smoke configuration of chapter 6 (4 couplings of 2 x 64 units, Adam 3e-3, 30 epochs) on a
# smaller set: it must beat a Gaussian fitted to the same points, on held-out points, by a
# clear margin. (With the coupling networks' gradients accumulating, as they did on torch, the
# loss stalls or rises.)
TRAIN = """
    import json
    import numpy as np, keras
    from keras import ops
    from sklearn.datasets import make_moons
    from gdlbook import flows, set_seed

    points = make_moons(1536, noise=0.05, random_state=0)[0].astype("float32")
    mean, std = points[:1024].mean(0), points[:1024].std(0)
    x, x_val = (points[:1024] - mean) / std, (points[1024:] - mean) / std
    # the baseline: the maximum-likelihood Gaussian of the training points, on held-out points
    cov = np.cov(x.T, bias=True)
    d = x_val - x.mean(0)
    gauss = float(np.mean(0.5 * np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d)
                          + 0.5 * np.log(np.linalg.det(2 * np.pi * cov))))
    set_seed(0)
    model = flows.RealNVP(num_layers=4, units=64, hidden_layers=2, seed=0)
    model(x[:1])
    registered = None
    if keras.backend.backend() == "torch":            # every trainable variable is a parameter
        ids = {id(p) for p in model.parameters()}
        registered = sum(id(v.value) in ids for v in model.trainable_variables)
    model.compile(keras.optimizers.Adam(3e-3))
    h = model.fit(x, epochs=30, batch_size=128, verbose=0).history
    ev = model.evaluate(x_val, batch_size=256, verbose=0)
    nll = -float(ops.convert_to_numpy(ops.mean(model.log_prob(x_val))))
    back = ops.convert_to_numpy(model.g(model.f(x[:64])[0]))
    print(json.dumps(dict(loss=h["loss"], ev=float(ev), nll=nll, gauss=gauss,
                          registered=registered, trainable=len(model.trainable_variables),
                          err=float(np.abs(back - x[:64]).max()),
                          sample=ops.convert_to_numpy(model.sample(4)).tolist())))
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_realnvp_learns_the_moons_on_every_backend(backend):
    out = run_with_backend(backend, TRAIN, timeout=600)
    loss = np.array(out["loss"])
    assert out["registered"] in (None, out["trainable"]), out
    assert np.isfinite(loss).all() and loss[-1] < loss[0] - 0.3, out
    assert out["nll"] < out["gauss"] - 0.5, out                  # held out, against the baseline
    assert abs(out["ev"] - out["nll"]) < 1e-3, out              # the loss is the mean NLL
    assert out["err"] < 1e-4 and np.isfinite(out["sample"]).all(), out
