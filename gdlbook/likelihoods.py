"""Likelihoods of discrete pixel values: the mixture of discretised logistics (PixelCNN++).

Taught in chapter 5 (autoregressive models), where a PixelCNN predicts, for every pixel, the
parameters of a mixture of ``K`` logistic distributions; the probability of an integer level
``x`` in ``{0, ..., L-1}`` is the mass the mixture puts on the bin of width one around it, with
the two end bins stretched to ``-inf`` and ``+inf`` (Salimans et al., 2017). Written in
``keras.ops``, so it trains on every backend (the book's TensorFlow Probability does not run on
Keras 3).

Parameters are given per pixel as one tensor ``(..., 3K)``: ``K`` mixture logits, ``K`` means
and ``K`` log-scales, in that order. As in PixelCNN++, means and scales live on the scale of
the network's inputs: level ``x`` sits at ``2x / (L-1) - 1`` in ``[-1, 1]``, and its bin has
half-width ``1 / (L-1)``.
"""

from __future__ import annotations

import math

import numpy as np
from keras import ops

__all__ = ["split_mixture_params", "logistic_mixture_log_prob", "logistic_mixture_nll",
           "sample_logistic_mixture", "bits_per_dim", "MIN_LOG_SCALE"]

#: Scales are clipped below at ``exp(MIN_LOG_SCALE)`` levels, so a bin never gets all the mass
#: through a vanishing scale (that would make the loss diverge).
MIN_LOG_SCALE = -7.0


def split_mixture_params(params):
    """``(..., 3K)`` -> mixture logits, means, log-scales, each ``(..., K)``."""
    k = params.shape[-1] // 3
    return params[..., :k], params[..., k:2 * k], params[..., 2 * k:3 * k]


def logistic_mixture_log_prob(x, params, num_levels: int = 256):
    """Log-probability of integer levels ``x`` under a mixture of discretised logistics.

    Args:
        x: the observed levels, ``(...)``, integers in ``[0, num_levels - 1]`` (any dtype).
        params: ``(..., 3K)``: mixture logits, means and log-scales (see the module docstring).
        num_levels: ``L``, the number of levels.

    Returns:
        ``log P(x)``, shape ``(...)``, in nats. With ``v = 2x/(L-1) - 1`` and ``h = 1/(L-1)``,
        each component with mean ``mu`` and scale ``s`` gives
        ``P(x) = sigma((v + h - mu) / s) - sigma((v - h - mu) / s)``, where the first term is
        1 for ``x = L - 1`` and the second 0 for ``x = 0``; the components are mixed with
        ``softmax(logits)``. The sum over the ``L`` levels is exactly one.
    """
    logits, means, log_scales = split_mixture_params(params)
    log_scales = ops.maximum(log_scales, MIN_LOG_SCALE)
    x = ops.expand_dims(ops.cast(x, params.dtype), -1)          # (..., 1) against (..., K)
    half = 1.0 / (num_levels - 1)
    centred = (2.0 * half) * x - 1.0 - means                     # level -> [-1, 1], minus mu
    inv_s = ops.exp(-log_scales)
    plus = inv_s * (centred + half)
    minus = inv_s * (centred - half)
    log_cdf_plus = plus - ops.softplus(plus)                     # log sigma(plus): x = 0
    log_one_minus_cdf_minus = -ops.softplus(minus)               # log(1 - sigma(minus)): x = L-1
    # log(sigma(plus) - sigma(minus)), stable: sigma(a) - sigma(b) = sigma(a)(1 - sigma(b))(1 - e^(b-a))
    width = ops.maximum(plus - minus, 1e-12)
    log_delta = (log_cdf_plus + log_one_minus_cdf_minus
                 + ops.log(-ops.expm1(-width)))
    log_p = ops.where(x < 0.5, log_cdf_plus,
                      ops.where(x > num_levels - 1.5, log_one_minus_cdf_minus, log_delta))
    return ops.logsumexp(log_p + ops.log_softmax(logits, axis=-1), axis=-1)


def logistic_mixture_nll(y_true, y_pred, num_levels: int = 256):
    """A Keras loss: the mean negative log-likelihood in nats per value (per pixel and channel).

    ``y_true`` holds the levels ``(B, H, W, 1)`` (or ``(B, H, W)``), ``y_pred`` the mixture
    parameters ``(B, H, W, 3K)``. Divide by ``ln 2`` for bits per dimension.
    """
    if len(y_true.shape) == len(y_pred.shape):
        y_true = y_true[..., 0]
    return -ops.mean(logistic_mixture_log_prob(y_true, y_pred, num_levels))


def sample_logistic_mixture(params, num_levels: int = 256,
                            rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Draw integer levels from the mixtures given by ``params`` (NumPy ``(..., 3K)``).

    Pick a component with the mixture weights, draw a logistic ``mu + s log(u / (1 - u))``,
    map it from ``[-1, 1]`` back to levels and round it to the nearest one, clipped to
    ``[0, L-1]``: exactly the discretised distribution of :func:`logistic_mixture_log_prob`.
    """
    rng = np.random.default_rng(rng)
    params = np.asarray(params, dtype=np.float64)
    k = params.shape[-1] // 3
    logits, means, log_scales = params[..., :k], params[..., k:2 * k], params[..., 2 * k:]
    gumbel = -np.log(-np.log(rng.uniform(1e-12, 1.0, logits.shape)))
    comp = np.argmax(logits + gumbel, axis=-1)[..., None]         # Gumbel-max: one component
    mu = np.take_along_axis(means, comp, -1)[..., 0]
    s = np.exp(np.maximum(np.take_along_axis(log_scales, comp, -1)[..., 0], MIN_LOG_SCALE))
    u = rng.uniform(1e-12, 1 - 1e-12, mu.shape)
    value = (mu + s * (np.log(u) - np.log1p(-u)) + 1.0) * (num_levels - 1) / 2.0
    return np.clip(np.rint(value), 0, num_levels - 1).astype(np.int64)


def bits_per_dim(nll_nats: float) -> float:
    """Convert a mean negative log-likelihood per value from nats to bits."""
    return nll_nats / math.log(2.0)
