"""Image preparation and comparison shared by the image-generating chapters (VAE faces in
chapter 3, GANs in chapter 4, diffusion in chapter 8).

Datasets of photographs come in many shapes (CelebA's aligned faces are 218×178, or 109×89 in the
offline stand-in; Oxford Flowers' images are all sizes); the generative models of the book train
on small squares. :func:`center_crop_resize` turns any batch into such squares;
:func:`pad_and_scale` puts the 28×28 grey images of MNIST and Fashion-MNIST on a 32×32 canvas,
so that stride-2 layers halve them cleanly (chapters 3 and 4); :func:`nearest_neighbours` finds the training images closest to generated ones (the
memorisation check of chapter 4).
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def center_crop_resize(images: np.ndarray, size: int) -> np.ndarray:
    """Square centre crop of each image, then an antialiased resize to ``size`` × ``size``.

    Args:
        images: uint8 array ``(N, H, W, C)`` with ``C`` = 1 or 3, or grey ``(N, H, W)``.
        size: the side of the output squares, in pixels.

    Returns:
        uint8 array ``(N, size, size, C)`` (or ``(N, size, size)``). The crop keeps the central
        ``min(H, W)`` square; the resize is PIL's Lanczos filter, which low-passes before it
        subsamples (no aliasing when shrinking).
    """
    x = np.asarray(images)
    if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] not in (1, 3)):
        raise ValueError("expected images shaped (N, H, W) or (N, H, W, C) with C = 1 or 3; "
                         f"got {x.shape}")
    if x.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels; got {x.dtype}")
    if int(size) < 1:
        raise ValueError(f"size must be a positive number of pixels; got {size}")
    size = int(size)
    h, w = x.shape[1:3]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crops = x[:, top:top + side, left:left + side]
    if side == size:
        return np.ascontiguousarray(crops)
    out = np.empty((len(x), size, size, *x.shape[3:]), dtype=np.uint8)
    for i, crop in enumerate(crops):
        im = Image.fromarray(crop[..., 0] if crop.ndim == 3 and crop.shape[-1] == 1 else crop)
        out[i] = np.asarray(im.resize((size, size), Image.Resampling.LANCZOS)).reshape(out.shape[1:])
    return out


def pad_and_scale(images: np.ndarray, size: int = 32,
                  value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """Centre grey images on a black ``size`` × ``size`` canvas and scale them to ``value_range``.

    Args:
        images: uint8 array ``(N, H, W)`` with ``H`` and ``W`` at most ``size`` (28×28 for MNIST
            and Fashion-MNIST: two black pixels are added on each side for ``size`` = 32).
        size: the side of the output squares.
        value_range: where pixel values 0 and 255 land, e.g. ``(0, 1)`` for a Bernoulli or
            sigmoid decoder, ``(-1, 1)`` for a tanh generator or a Langevin sampler.

    Returns:
        float32 array ``(N, size, size, 1)``; the padding takes the value of black, ``value_range[0]``.
    """
    x = np.asarray(images)
    if x.ndim != 3:
        raise ValueError(f"expected grey images shaped (N, H, W); got {x.shape}")
    if x.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels; got {x.dtype}")
    h, w = x.shape[1:]
    if h > size or w > size:
        raise ValueError(f"images of {h}×{w} do not fit on a {size}×{size} canvas")
    top, left = (size - h) // 2, (size - w) // 2
    padded = np.pad(x, ((0, 0), (top, size - h - top), (left, size - w - left)))
    lo, hi = value_range
    return padded[..., None].astype("float32") / np.float32(255.0 / (hi - lo)) + np.float32(lo)


def nearest_neighbours(queries: np.ndarray, references: np.ndarray, k: int = 3,
                       batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` reference images closest to each query in Euclidean pixel distance.

    Both arrays are images of the same shape and value range (any number of channels). Returns
    ``(indices, distances)``, each ``(len(queries), k)``, nearest first. The references are
    compared ``batch_size`` at a time, so memory stays small however many there are.
    """
    q = np.asarray(queries, dtype=np.float64).reshape(len(queries), -1)
    r = np.asarray(references, dtype=np.float64).reshape(len(references), -1)
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"queries and references differ in shape: {queries.shape[1:]} and "
                         f"{references.shape[1:]}")
    if not 1 <= k <= len(r):
        raise ValueError(f"k must be between 1 and the number of references ({len(r)}), got {k}")
    q2 = (q ** 2).sum(1, keepdims=True)
    d2 = np.concatenate([q2 - 2 * q @ r[i:i + batch_size].T + (r[i:i + batch_size] ** 2).sum(1)
                         for i in range(0, len(r), batch_size)], axis=1)
    idx = np.argsort(d2, axis=1, kind="stable")[:, :k]
    dist = np.sqrt(np.maximum(np.take_along_axis(d2, idx, axis=1), 0.0))
    return idx, dist
