"""Image preparation shared by the image-generating chapters (VAE faces in chapter 3, GANs in
chapter 4, diffusion in chapter 8).

Datasets of photographs come in many shapes (CelebA's aligned faces are 218×178, or 109×89 in the
offline stand-in; Oxford Flowers' images are all sizes); the generative models of the book train
on small squares. :func:`center_crop_resize` turns any batch into such squares.
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
