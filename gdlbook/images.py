"""Image preparation shared by the chapters that train on faces (VAE, GANs, diffusion)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def center_crop_resize(images: np.ndarray, size: int) -> np.ndarray:
    """Square centre crop of each image, resized to ``size``×``size`` (antialiased).

    ``images`` is uint8 ``(N, H, W, C)`` (or ``(N, H, W)``); the result is uint8
    ``(N, size, size, C)`` (or ``(N, size, size)``). CelebA's aligned faces (218×178, or the
    109×89 stand-in) become the usual square training inputs this way.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise ValueError(f"expected uint8 images (N, H, W[, C]), got {images.dtype} "
                         f"{images.shape}")
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    h, w = images.shape[1:3]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crops = images[:, top:top + side, left:left + side]
    if side == size:
        return np.ascontiguousarray(crops)
    return np.stack([np.asarray(Image.fromarray(c).resize((size, size), Image.Resampling.LANCZOS))
                     for c in crops])
