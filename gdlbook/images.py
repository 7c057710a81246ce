"""Image preprocessing shared by the image-generating chapters (first used in chapter 8, diffusion).

Datasets of photographs come in many shapes (CelebA's aligned faces are 109×89, Oxford Flowers'
images are all sizes); the generative models of the book train on small squares.
:func:`center_crop_resize` turns any batch into such squares.
"""

from __future__ import annotations

import numpy as np


def center_crop_resize(images: np.ndarray, size: int) -> np.ndarray:
    """Square centre crop, then an antialiased resize to ``size`` × ``size``.

    Args:
        images: uint8 array ``(N, H, W, C)`` (``C`` is 1 or 3).
        size: the side of the output squares, in pixels.

    Returns:
        uint8 array ``(N, size, size, C)``. The crop keeps the central ``min(H, W)`` square; the
        resize is PIL's Lanczos filter, which low-passes before it subsamples (no aliasing when
        shrinking).
    """
    from PIL import Image

    x = np.asarray(images)
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"expected images shaped (N, H, W, C) with C = 1 or 3; got {x.shape}")
    if x.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels; got {x.dtype}")
    if int(size) < 1:
        raise ValueError(f"size must be a positive number of pixels; got {size}")
    size = int(size)
    n, h, w, c = x.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crops = x[:, top:top + side, left:left + side]
    if side == size:
        return np.ascontiguousarray(crops)
    out = np.empty((n, size, size, c), dtype=np.uint8)
    for i, crop in enumerate(crops):
        im = Image.fromarray(crop[..., 0] if c == 1 else crop)
        im = im.resize((size, size), Image.Resampling.LANCZOS)
        out[i] = np.asarray(im).reshape(size, size, c)
    return out
