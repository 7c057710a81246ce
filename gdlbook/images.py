"""Small image utilities shared by the image chapters (taught in chapter 4, GANs; used by the VAE
and diffusion chapters): a centre crop with resizing, and nearest neighbours in pixel space for
the memorisation check of a generative model.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def center_crop_resize(images: np.ndarray, size: int) -> np.ndarray:
    """The largest centred square of each image, resized to ``size`` × ``size``.

    ``images`` are uint8, ``(N, H, W)`` or ``(N, H, W, C)``; the result has the same dtype and
    channels. Resizing uses a box filter when shrinking (every source pixel counts, no aliasing)
    and bicubic interpolation when enlarging. For CelebA's aligned 109×89 faces this keeps the
    central 89×89 square: the face, without most of the background.
    """
    x = np.asarray(images)
    if x.dtype != np.uint8 or x.ndim not in (3, 4):
        raise ValueError(f"expected uint8 images (N, H, W) or (N, H, W, C); got {x.dtype} {x.shape}")
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    h, w = x.shape[1:3]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = x[:, top:top + side, left:left + side]
    if side == size:
        return crop.copy()
    method = Image.BOX if size < side else Image.BICUBIC
    squeeze = crop.ndim == 4 and crop.shape[-1] == 1
    if squeeze:
        crop = crop[..., 0]
    out = np.stack([np.asarray(Image.fromarray(im).resize((size, size), method)) for im in crop])
    return out[..., None] if squeeze else out


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
