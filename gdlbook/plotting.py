"""Figures every chapter draws: image grids, training curves, and 2-D latent scatters.

All functions return the matplotlib ``Figure`` (and draw into ``ax`` when one is given), so a
chapter can show, save or test the figure.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator


def infer_value_range(x: Any) -> tuple[float, float]:
    """The range pixels are in: uint8 → [0, 255]; within [0, 1] or [-1, 1] → that; else min–max."""
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return (0.0, 255.0)
    lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
    if lo >= 0.0 and hi <= 1.0:
        return (0.0, 1.0)
    if lo >= -1.0 and hi <= 1.0:
        return (-1.0, 1.0)
    return (lo, hi if hi > lo else lo + 1.0)


def to_display(images: Any, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Images as floats in [0, 1], shaped ``(N, H, W)`` (grey) or ``(N, H, W, 3)`` (colour).

    Accepts a batch, or one grey ``(H, W)`` image; ``(…, 1)`` channels are squeezed. ``value_range`` is the
    range the pixels are in; ``None`` infers it: uint8 → [0, 255]; data already in [0, 1] → as
    is; data in [-1, 1] → [-1, 1]; anything else is scaled by its own minimum and maximum.
    Values outside the range are clipped.
    """
    x = np.asarray(images)
    if x.dtype == bool:
        x = x.astype(np.float32)
    if x.ndim == 2:  # one grey image
        x = x[None]
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] != 3):
        raise ValueError(
            f"expected images shaped (N, H, W), (N, H, W, 1) or (N, H, W, 3); got {x.shape}"
        )
    if x.size == 0:
        raise ValueError("no images to show")
    if value_range is None:
        value_range = infer_value_range(x)
    lo, hi = map(float, value_range)
    if not hi > lo:
        raise ValueError(f"value_range must be increasing, got {value_range}")
    return np.clip((x.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)


def image_grid(images: Any, *, ncols: int | None = None, titles: Sequence[str] | None = None,
               title_colors: Sequence[Any] | None = None,
               value_range: tuple[float, float] | None = None, cmap: str = "gray_r",
               size: float = 1.3, suptitle: str | None = None) -> plt.Figure:
    """Show a batch of images in a grid, without axes.

    Grey images use ``cmap`` (dark strokes on white by default, as MNIST is usually shown);
    colour images are shown as they are. See :func:`to_display` for ``value_range``. Titles may
    span several lines (room is made for the longest) and have a colour each (``title_colors``),
    e.g. to mark wrong predictions.
    """
    x = to_display(images, value_range)
    n = len(x)
    ncols = min(n, ncols or min(n, 10))
    nrows = int(np.ceil(n / ncols))
    if titles is not None and len(titles) != n:
        raise ValueError(f"{len(titles)} titles for {n} images")
    lines = max((str(t).count("\n") + 1 for t in titles), default=0) if titles is not None else 0
    extra = 0.22 * lines
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, (size + extra) * nrows),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        if x.ndim == 3:
            ax.imshow(x[i], cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
        else:
            ax.imshow(x[i], interpolation="nearest")
        if titles is not None:
            style = {"color": title_colors[i]} if title_colors is not None else {}
            ax.set_title(str(titles[i]), fontsize=8, **style)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def _history_dict(history: Any) -> Mapping[str, Sequence[float]]:
    h = getattr(history, "history", history)
    if not isinstance(h, Mapping):
        raise TypeError("expected a keras History or a dict of metric name → values per epoch")
    return h


def training_curves(history: Any, metrics: Sequence[str] | None = None, *,
                    ax_size: tuple[float, float] = (4.5, 3.2)) -> plt.Figure:
    """One panel per metric, training and validation (``val_``) curves against the epoch.

    ``history`` is a ``keras.callbacks.History`` or a dict such as ``history.history``; several
    runs can be compared by passing ``{"MLP": h1, "CNN": h2}`` of histories.
    """
    runs: dict[str, Mapping[str, Sequence[float]]]
    h = getattr(history, "history", history)
    if isinstance(h, Mapping) and h and all(
        isinstance(v, Mapping) or hasattr(v, "history") for v in h.values()
    ):
        runs = {name: _history_dict(v) for name, v in h.items()}
    else:
        runs = {"": _history_dict(history)}
    first = next(iter(runs.values()))
    if metrics is None:
        metrics = [k for k in first if not k.startswith("val_")]
    fig, axes = plt.subplots(1, len(metrics), figsize=(ax_size[0] * len(metrics), ax_size[1]),
                             squeeze=False)
    for ax, m in zip(axes.flat, metrics):
        for name, hist in runs.items():
            prefix = f"{name} " if name else ""
            for key, style, label in ((m, "-", "train"), (f"val_{m}", "--", "validation")):
                if key in hist:
                    values = np.asarray(hist[key], dtype=float)
                    ax.plot(np.arange(1, len(values) + 1), values, style, marker=".",
                            label=f"{prefix}{label}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(m)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def latent_scatter(z: Any, labels: Any = None, *, class_names: Sequence[str] | None = None,
                   ax: plt.Axes | None = None, s: float = 3.0, alpha: float = 0.7,
                   title: str | None = None) -> plt.Figure:
    """Scatter 2-D points (latent codes, embeddings) coloured by their integer label."""
    z = np.asarray(z, dtype=float)
    if z.ndim != 2 or z.shape[1] != 2:
        raise ValueError(f"expected points shaped (N, 2), got {z.shape}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 5))
    else:
        fig = ax.figure
    if labels is None:
        ax.scatter(z[:, 0], z[:, 1], s=s, alpha=alpha, color="C0")
    else:
        labels = np.asarray(labels).astype(int).ravel()
        if len(labels) != len(z):
            raise ValueError(f"{len(labels)} labels for {len(z)} points")
        k = int(labels.max()) + 1 if class_names is None else len(class_names)
        cmap = plt.get_cmap("tab10" if k <= 10 else "tab20")
        for c in range(k):
            sel = labels == c
            if sel.any():
                name = class_names[c] if class_names is not None else str(c)
                ax.scatter(z[sel, 0], z[sel, 1], s=s, alpha=alpha, color=cmap(c % cmap.N),
                           label=name)
        ax.legend(markerscale=12 / max(s, 1), fontsize=8, loc="center left",
                  bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
