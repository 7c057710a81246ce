"""Sampling from a categorical distribution given by logits: temperature, top-k and top-p.

Taught in chapter 5 (autoregressive models) and reused by every chapter that generates a
sequence one token at a time (the transformer and music chapters). A generation loop calls the
model, takes the logits (or probabilities) of the next token, and draws the token with
:func:`sample`. Everything here works on NumPy arrays, so it is the same on every Keras backend:
pass ``keras.ops.convert_to_numpy(logits)``.

All functions are batched: the last axis is the vocabulary, any leading axes are a batch.
"""

from __future__ import annotations

import numpy as np

__all__ = ["reweight", "entropy", "top_k_filter", "top_p_filter", "distribution", "sample"]


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - np.max(logits, axis=-1, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))


def reweight(logits, temperature: float = 1.0, *, from_probs: bool = False) -> np.ndarray:
    """The distribution ``softmax(logits / temperature)``, as probabilities.

    Args:
        logits: array ``(..., V)`` of unnormalised log-probabilities (``-inf`` allowed: a token
            that can never be drawn).
        temperature: ``T > 0`` flattens the distribution for ``T > 1`` and sharpens it for
            ``T < 1``; ``T = 0`` is the limit ``T -> 0``: all the mass on the most likely token
            (the first one on ties).
        from_probs: ``logits`` are probabilities; their logarithm is taken first, so
            ``reweight(p, T, from_probs=True)`` is proportional to ``p ** (1 / T)``.

    Returns:
        Probabilities ``(..., V)`` (float64) that sum to one along the last axis.
    """
    x = np.asarray(logits, dtype=np.float64)
    if from_probs:
        with np.errstate(divide="ignore"):
            x = np.log(x)
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        out = np.zeros_like(x)
        np.put_along_axis(out, np.argmax(x, axis=-1)[..., None], 1.0, axis=-1)
        return out
    return np.exp(_log_softmax(x / temperature))


def entropy(probs, *, base: float = 2.0) -> np.ndarray:
    """Shannon entropy ``-sum p log p`` along the last axis (in bits by default; 0 log 0 = 0)."""
    p = np.asarray(probs, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=-1) / np.log(base)


def top_k_filter(logits, k: int) -> np.ndarray:
    """Keep the ``k`` largest logits of each row and set the others to ``-inf``.

    Ties at the k-th value are broken by position (the earlier token is kept), so exactly
    ``min(k, V)`` entries stay finite.
    """
    x = np.asarray(logits, dtype=np.float64)
    if k < 1:
        raise ValueError(f"top_k must be >= 1, got {k}")
    if k >= x.shape[-1]:
        return x.copy()
    order = np.argsort(-x, axis=-1, kind="stable")[..., :k]
    out = np.full_like(x, -np.inf)
    np.put_along_axis(out, order, np.take_along_axis(x, order, axis=-1), axis=-1)
    return out


def top_p_filter(logits, p: float) -> np.ndarray:
    """Nucleus filter: keep the smallest set of most likely tokens whose mass reaches ``p``.

    Tokens are sorted by probability; the kept set is the shortest prefix of that order with
    total probability ``>= p`` (so the most likely token is always kept). The others are set
    to ``-inf``. ``p = 1`` keeps every token.
    """
    x = np.asarray(logits, dtype=np.float64)
    if not 0 < p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    probs = np.exp(_log_softmax(x))
    order = np.argsort(-x, axis=-1, kind="stable")
    sorted_p = np.take_along_axis(probs, order, axis=-1)
    before = np.cumsum(sorted_p, axis=-1) - sorted_p     # mass of the tokens ranked above
    keep_sorted = before < p - 1e-12                      # still short of p before this token
    keep = np.zeros_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=-1)
    return np.where(keep, x, -np.inf)


def distribution(logits, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None) -> np.ndarray:
    """The distribution :func:`sample` draws from, as probabilities ``(..., V)``.

    The steps are applied in this order: divide the logits by ``temperature``, keep the
    ``top_k`` most likely tokens, keep the nucleus of mass ``top_p`` (of the tempered
    distribution), renormalise. ``temperature=0`` gives the one-hot distribution of the argmax.
    Its :func:`entropy` says how much choice the sampler has left.
    """
    x = np.asarray(logits, dtype=np.float64)
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return reweight(x, 0)
    x = x / temperature
    if top_k is not None:
        x = top_k_filter(x, top_k)
    if top_p is not None:
        x = top_p_filter(x, top_p)
    return np.exp(_log_softmax(x))


def sample(logits, temperature: float = 1.0, top_k: int | None = None,
           top_p: float | None = None, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Draw one token index per row of ``logits``.

    The logits are divided by ``temperature``, truncated to the ``top_k`` most likely tokens
    and to the nucleus of mass ``top_p`` (see :func:`distribution`), and one token is drawn from
    the renormalised distribution. ``temperature=0`` is greedy decoding (argmax), whatever
    ``top_k`` and ``top_p``.

    Args:
        logits: array ``(..., V)`` of logits (use ``np.log(probs)`` for probabilities).
        temperature: ``>= 0``; 1 samples from the model's own distribution.
        top_k: if given, sample only among the ``top_k`` most likely tokens.
        top_p: if given, sample only from the nucleus of probability mass ``top_p``.
        rng: a ``numpy.random.Generator`` or a seed (``None``: a fresh unseeded generator).

    Returns:
        Integer indices of shape ``logits.shape[:-1]``.
    """
    x = np.asarray(logits, dtype=np.float64)
    if temperature == 0:
        return np.argmax(x, axis=-1)
    probs = distribution(x, temperature, top_k, top_p)
    rng = np.random.default_rng(rng)
    flat = probs.reshape(-1, probs.shape[-1])
    u = 1.0 - rng.random((flat.shape[0], 1))             # in (0, 1]
    cdf = np.cumsum(flat, axis=-1)
    idx = (u * cdf[:, -1:] > cdf).sum(axis=-1)           # inverse-CDF draw, one per row
    idx = np.minimum(idx, flat.shape[-1] - 1)
    return idx.reshape(probs.shape[:-1])
