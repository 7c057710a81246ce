"""gdlbook.sampling: temperature, top-k and top-p sampling over logits (chapter 5)."""

import numpy as np
import pytest
from scipy import stats

from gdlbook import sampling

PROBS = np.array([0.4, 0.25, 0.15, 0.1, 0.06, 0.04])
LOGITS = np.log(PROBS) + 3.0          # logits are defined up to a constant


def test_reweight_is_softmax_of_scaled_logits_and_sums_to_one():
    for t in (0.2, 0.5, 1.0, 1.2, 5.0):
        q = sampling.reweight(LOGITS, t)
        expected = PROBS ** (1 / t) / np.sum(PROBS ** (1 / t))
        np.testing.assert_allclose(q, expected, rtol=1e-12)
        np.testing.assert_allclose(sampling.reweight(PROBS, t, from_probs=True), expected)
    np.testing.assert_allclose(sampling.reweight(LOGITS, 1.0), PROBS)


def test_entropy_grows_with_temperature_towards_uniform():
    h = [sampling.entropy(sampling.reweight(LOGITS, t)) for t in (0.01, 0.2, 0.5, 1.0, 2.0, 100.0)]
    assert np.all(np.diff(h) > 0)
    assert h[0] == pytest.approx(0.0, abs=1e-6)
    assert h[-1] == pytest.approx(np.log2(len(PROBS)), abs=1e-3)
    assert sampling.entropy([0.5, 0.5, 0.0]) == pytest.approx(1.0)


def test_temperature_to_zero_is_greedy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(64, 50)) * 3
    greedy = logits.argmax(-1)
    np.testing.assert_array_equal(sampling.sample(logits, temperature=0), greedy)
    np.testing.assert_array_equal(sampling.reweight(logits, 0).argmax(-1), greedy)
    # the limit: a tiny temperature samples the argmax every time
    for seed in range(5):
        np.testing.assert_array_equal(sampling.sample(logits, temperature=1e-4, rng=seed), greedy)


def test_frequencies_at_temperature_one_match_the_distribution():
    """A chi-square goodness-of-fit test at level 0.001 with a fixed seed, plus a 4-sigma
    binomial bound for each category."""
    n = 20_000
    draws = sampling.sample(np.broadcast_to(LOGITS, (n, len(PROBS))), rng=123)
    counts = np.bincount(draws, minlength=len(PROBS))
    chi2 = np.sum((counts - n * PROBS) ** 2 / (n * PROBS))
    assert chi2 < stats.chi2.ppf(0.999, df=len(PROBS) - 1), (chi2, counts)
    sigma = np.sqrt(n * PROBS * (1 - PROBS))
    assert np.all(np.abs(counts - n * PROBS) < 4 * sigma), counts


def test_temperature_changes_frequencies_as_reweight_says():
    n = 20_000
    q = sampling.reweight(LOGITS, 0.5)
    draws = sampling.sample(np.broadcast_to(LOGITS, (n, len(PROBS))), temperature=0.5, rng=7)
    counts = np.bincount(draws, minlength=len(PROBS))
    assert np.all(np.abs(counts - n * q) < 4 * np.sqrt(n * q * (1 - q)) + 1), counts


def test_top_k_never_picks_outside_the_k():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(500, 30))
    for k in (1, 3, 10):
        draws = sampling.sample(logits, temperature=1.5, top_k=k, rng=k)
        allowed = np.argsort(-logits, axis=-1)[:, :k]
        assert all(d in a for d, a in zip(draws, allowed))
        assert np.all(np.isfinite(sampling.top_k_filter(logits, k)).sum(-1) == k)
    np.testing.assert_array_equal(sampling.sample(logits, top_k=1, rng=0), logits.argmax(-1))
    np.testing.assert_array_equal(sampling.top_k_filter(logits, 100), logits)


def test_top_p_keeps_the_smallest_set_whose_mass_reaches_p():
    # sorted probabilities 0.4, 0.25, 0.15, 0.1, 0.06, 0.04: cumulative 0.4, 0.65, 0.8, 0.9, ...
    for p, kept in [(0.3, 1), (0.4, 1), (0.41, 2), (0.65, 2), (0.7, 3), (0.85, 4), (0.95, 5), (1.0, 6)]:
        f = sampling.top_p_filter(LOGITS, p)
        assert np.isfinite(f).sum() == kept, (p, f)
        assert np.all(np.isfinite(f[:kept]))        # the most likely ones
        assert sampling.reweight(f)[:kept].sum() == pytest.approx(1.0)
    # batched, with the tokens in another order
    perm = np.array([3, 0, 5, 1, 4, 2])
    batch = np.stack([LOGITS, LOGITS[perm]])
    f = sampling.top_p_filter(batch, 0.7)
    np.testing.assert_array_equal(np.isfinite(f[1]), np.isfinite(f[0])[perm])
    draws = sampling.sample(np.broadcast_to(LOGITS, (2000, 6)), top_p=0.7, rng=3)
    assert set(np.unique(draws)) == {0, 1, 2}


def test_sample_shapes_and_bad_arguments():
    logits = np.zeros((4, 7, 11))
    assert sampling.sample(logits, rng=0).shape == (4, 7)
    assert sampling.sample(np.zeros(11), rng=0).shape == ()
    with pytest.raises(ValueError):
        sampling.sample(logits, temperature=-1)
    with pytest.raises(ValueError):
        sampling.top_k_filter(logits, 0)
    with pytest.raises(ValueError):
        sampling.top_p_filter(logits, 0.0)
    # a token with probability zero is never drawn
    draws = sampling.sample(np.broadcast_to([-np.inf, 0.0, -np.inf, 0.0], (1000, 4)), rng=0)
    assert set(np.unique(draws)) == {1, 3}


def test_distribution_is_what_sample_draws_from():
    q = sampling.distribution(LOGITS, temperature=0.7, top_p=0.8)
    assert q.sum() == pytest.approx(1.0) and np.count_nonzero(q) < len(PROBS)
    np.testing.assert_allclose(q, sampling.reweight(sampling.top_p_filter(LOGITS / 0.7, 0.8)))
    np.testing.assert_array_equal(sampling.distribution(LOGITS, 0), [1, 0, 0, 0, 0, 0])
    n = 20_000
    draws = sampling.sample(np.broadcast_to(LOGITS, (n, 6)), temperature=0.7, top_p=0.8, rng=5)
    counts = np.bincount(draws, minlength=6)
    assert np.all(np.abs(counts - n * q) < 4 * np.sqrt(n * q * (1 - q)) + 1), (counts, n * q)
