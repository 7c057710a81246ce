"""gdlbook.likelihoods: the discretised logistic mixture (chapter 5) against a NumPy reference."""

import numpy as np
import pytest
from scipy import special

from gdlbook import likelihoods

L = 256


def reference_probs(logits, means, log_scales, levels=L):
    """P(x) for every level x, straight from the definition, in float64 with scipy."""
    x = np.arange(levels)[:, None]
    v, h = 2 * x / (levels - 1) - 1, 1 / (levels - 1)
    s = np.exp(np.maximum(log_scales, likelihoods.MIN_LOG_SCALE))
    upper = np.where(x == levels - 1, 1.0, special.expit((v + h - means) / s))
    lower = np.where(x == 0, 0.0, special.expit((v - h - means) / s))
    w = special.softmax(logits)
    return ((upper - lower) * w).sum(-1)


def _params(seed, k=5):
    rng = np.random.default_rng(seed)
    return rng.normal(size=k), rng.uniform(-1.1, 1.1, k), rng.uniform(-5.0, -0.5, k)


@pytest.mark.parametrize("seed", range(4))
def test_probabilities_sum_to_one_and_match_numpy(seed):
    logits, means, log_scales = _params(seed)
    params = np.concatenate([logits, means, log_scales]).astype("float32")
    batch = np.broadcast_to(params, (L, params.size))
    logp = np.asarray(likelihoods.logistic_mixture_log_prob(np.arange(L), batch, L), dtype=np.float64)
    assert logp.shape == (L,) and np.all(np.isfinite(logp))
    ref = reference_probs(logits, means, log_scales)
    assert ref.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.exp(logp).sum() == pytest.approx(1.0, abs=1e-4)
    # where the reference probability is not negligible, the log-probabilities agree closely
    big = ref > 1e-6
    np.testing.assert_allclose(logp[big], np.log(ref[big]), atol=2e-3)


def test_sharp_and_edge_components_stay_finite():
    # a very sharp component on level 0, one on 255, one far outside the range
    logits = np.zeros(3)
    means = np.array([-1.0, 1.0, 3.0])
    log_scales = np.array([-9.0, -9.0, -9.0])
    params = np.broadcast_to(np.concatenate([logits, means, log_scales]).astype("float32"), (L, 9))
    logp = np.asarray(likelihoods.logistic_mixture_log_prob(np.arange(L), params, L))
    assert np.all(np.isfinite(logp))
    assert np.exp(logp).sum() == pytest.approx(1.0, abs=1e-4)
    ref = reference_probs(logits, means, log_scales)
    assert np.exp(logp[-1]) == pytest.approx(ref[-1], abs=1e-4) and ref[-1] > 0.66
    assert np.exp(logp[0]) == pytest.approx(ref[0], abs=1e-4) and ref[0] > 0.32


def test_nll_loss_and_bits_per_dim():
    logits, means, log_scales = _params(0)
    params = np.concatenate([logits, means, log_scales]).astype("float32")
    y_pred = np.broadcast_to(params, (2, 4, 4, params.size))
    y_true = np.full((2, 4, 4, 1), 100)
    nll = float(likelihoods.logistic_mixture_nll(y_true, y_pred))
    assert nll == pytest.approx(-np.log(reference_probs(logits, means, log_scales)[100]), rel=1e-3)
    assert likelihoods.bits_per_dim(np.log(256.0)) == pytest.approx(8.0)


def test_sampler_follows_the_distribution():
    logits, means, log_scales = _params(2, k=3)
    params = np.concatenate([logits, means, log_scales])
    n = 40_000
    draws = likelihoods.sample_logistic_mixture(np.broadcast_to(params, (n, 9)), L, rng=0)
    assert draws.min() >= 0 and draws.max() <= L - 1
    ref = reference_probs(logits, means, log_scales)
    # compare in 16 coarse bins of 16 levels: 4-sigma binomial bounds
    counts = np.bincount(draws // 16, minlength=16)
    p = ref.reshape(16, 16).sum(1)
    assert np.all(np.abs(counts - n * p) < 4 * np.sqrt(n * p * (1 - p)) + 2), (counts, n * p)
