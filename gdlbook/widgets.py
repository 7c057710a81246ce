"""Latent-space explorers: sliders that move a point through a model's latent space.

Taught in chapter 3 (variational autoencoders); the GAN and diffusion chapters reuse it.

**One call, two versions.** :func:`latent_explorer` returns a :class:`LatentExplorer`, and
displaying it sends both versions of the explorer in one output:

- ``application/vnd.jupyter.widget-view+json``, the live ipywidgets version. In a kernel
  (JupyterLab, Notebook, Colab, VS Code) every slider move decodes the current latent vector.
- ``text/html``, the static version for the rendered book, where no kernel runs. Its images are
  decoded in advance and embedded as PNG data URIs, and a few lines of plain JavaScript swap them.
  It loads nothing from the network and uses no external script.

A live front end picks the richest type it can render, which is the widget. myst-nb would pick the
widget view too, but on a static page that is a frozen picture with dead sliders. So the book's
``_config.yml`` ranks ``text/html`` first for the HTML builders (:data:`MIME_PRIORITY_OVERRIDES`).
Ordinary widgets have no ``text/html`` and are unaffected.

**What the static version shows.** Decoding every combination of slider positions takes
``len(values) ** len(dims)`` images: 169 for 2 dims and 13 values, but 2,197 for 3 dims. So:

- ``static="grid"``: every combination, the full grid. ``"auto"`` picks it when it fits in
  ``max_images``.
- ``static="axes"``: one coordinate at a time. Moving a slider returns the others to the base
  point, and the page marks them "base". This takes ``1 + len(dims) * (len(values) - 1)`` images.

Coordinates outside ``dims`` stay at ``base``. The static sliders stop only at ``values``, so it
snaps the listed coordinates of ``base`` to the nearest of them. A request that needs more than
``max_images`` images raises an error. Each image adds about 4/3 of its PNG size to the page:
about 0.3 KB for a 32×32 grey digit and 5–10 KB for a 64×64 colour face, so 169 faces are about
1.5 MB. Keep the images small and the grids coarse.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
from typing import Any, Callable, Literal, Sequence

import numpy as np
from matplotlib import colormaps
from PIL import Image

from gdlbook.plotting import infer_value_range, to_display

#: ``nb_mime_priority_overrides`` for the book's ``_config.yml``: show the static explorer.
MIME_PRIORITY_OVERRIDES = [[b, "text/html", 5] for b in ("html", "dirhtml", "singlehtml")]

_ids = itertools.count()


def _numpy(x: Any) -> np.ndarray:
    """``decode``'s output as a NumPy array. A backend tensor goes through ``keras.ops``."""
    if isinstance(x, (np.ndarray, list, tuple)):
        return np.asarray(x)
    import keras  # a tensor of the active backend (maybe on a GPU)

    return keras.ops.convert_to_numpy(x)


def _decode(decode: Callable[[np.ndarray], Any], z: np.ndarray, batch_size: int) -> np.ndarray:
    return np.concatenate([_numpy(decode(z[i:i + batch_size]))
                           for i in range(0, len(z), batch_size)])


def _png(image: np.ndarray, cmap: str, scale: int = 1) -> bytes:
    """An image in [0, 1], grey ``(H, W)`` or colour ``(H, W, 3)``, as PNG bytes.

    ``scale`` enlarges it by repeating pixels, for the live widget.
    """
    if image.ndim == 2 and cmap in ("gray", "gray_r"):  # one channel: smaller files
        image = 1.0 - image if cmap == "gray_r" else image
    elif image.ndim == 2:
        image = colormaps[cmap](image)[..., :3]
    im = Image.fromarray(np.round(image * 255).astype(np.uint8))
    if scale > 1:  # nearest-neighbour: pixels stay sharp squares
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


class LatentExplorer:
    """A latent-space explorer: ``widget`` (live) and ``html`` (static), displayed as one output.

    Build it with :func:`latent_explorer`. ``display(explorer.widget)`` or
    ``IPython.display.HTML(explorer.html)`` shows just one version. ``sliders`` and ``image`` are
    the live widget's parts. ``n_images`` is the number of images the static page embeds.
    """

    def __init__(self, widget: Any, sliders: list, image: Any, html_: str, static: str,
                 n_images: int):
        self.widget, self.sliders, self.image = widget, sliders, image
        self.html, self.static, self.n_images = html_, static, n_images

    def __repr__(self) -> str:
        names = [s.description for s in self.sliders]
        return f"LatentExplorer({names}, static={self.static!r}, {self.n_images} images)"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle = self.widget._repr_mimebundle_() if self.widget.comm is not None else {}
        return {**bundle, "text/plain": repr(self), "text/html": self.html}


def latent_explorer(decode: Callable[[np.ndarray], Any], dims: Sequence[int], *,
                    base: Any = None, latent_dim: int | None = None,
                    values: Any = np.linspace(-3, 3, 13), labels: Sequence[str] | None = None,
                    value_range: tuple[float, float] | None = None, cmap: str = "gray_r",
                    static: Literal["auto", "grid", "axes"] = "auto", max_images: int = 200,
                    size: int = 192, batch_size: int = 64,
                    continuous_update: bool = True) -> LatentExplorer:
    """Sliders over the latent coordinates ``dims``, showing ``decode`` of the current vector.

    ``decode`` maps latent vectors ``(N, latent_dim)`` to images ``(N, H, W)`` or
    ``(N, H, W, C)``, in any value range. Any callable that returns arrays or backend tensors will
    do: the Keras decoder itself, or ``lambda z: decoder.predict(z, verbose=0)`` (plain
    ``predict`` prints a progress bar on every call). The explorer starts from ``base``, or from
    zeros of length ``latent_dim`` (default ``max(dims) + 1``). The sliders run over ``values``,
    which must be evenly spaced and increasing, and ``labels`` names them (default ``z[i]``).

    ``value_range`` is the range of the decoded pixels. By default it is the range of the static
    images: ``[0, 1]`` or ``[-1, 1]`` when they fit, else their minimum and maximum. The same scale
    then holds for every image, the live ones too. Grey images are coloured with ``cmap``. The
    default draws dark on white, as :func:`~gdlbook.plotting.image_grid` does. ``size`` is the
    displayed width in pixels. The module docstring explains ``static`` and ``max_images``. The
    static images are decoded now, ``batch_size`` at a time.
    """
    import ipywidgets as W

    dims = [int(d) for d in dims]
    if base is None:
        base = np.zeros(latent_dim if latent_dim is not None else max(dims, default=0) + 1)
    base = np.asarray(base, dtype=np.float32).ravel().copy()
    if not dims or len(set(dims)) != len(dims) or min(dims) < 0 or max(dims) >= len(base):
        raise ValueError(f"dims must be distinct indices into the latent vector of length "
                         f"{len(base)}; got {dims}")
    if latent_dim is not None and latent_dim != len(base):
        raise ValueError(f"base has length {len(base)}, latent_dim is {latent_dim}")
    values = np.asarray(values, dtype=float).ravel()
    step = values[1] - values[0] if len(values) > 1 else 0.0
    if len(values) < 2 or step <= 0 or not np.allclose(np.diff(values), step):
        raise ValueError("values must be at least 2 evenly spaced, increasing numbers")
    labels = [f"z[{d}]" for d in dims] if labels is None else [str(s) for s in labels]
    if len(labels) != len(dims):
        raise ValueError(f"{len(labels)} labels for {len(dims)} dims")

    # The static page: which slider positions it can show, one image for each.
    n, m = len(values), len(dims)
    home = [int(np.abs(values - base[d]).argmin()) for d in dims]
    counts = {"grid": n ** m, "axes": 1 + m * (n - 1)}
    if static not in ("auto", *counts):
        raise ValueError(f"static must be 'auto', 'grid' or 'axes', got {static!r}")
    mode = static if static != "auto" else ("grid" if counts["grid"] <= max_images else "axes")
    if counts[mode] > max_images:
        raise ValueError(
            f"the static explorer would embed {counts[mode]} images ({mode!r} over {m} dims × "
            f"{n} values), more than max_images={max_images}: use fewer dims or values"
            + (", or static='axes'" if mode == "grid" else "") + ", or raise max_images "
            "(each image adds its PNG size to the page)")
    if mode == "grid":
        positions = list(itertools.product(range(n), repeat=m))
    else:  # the home point, then each slider alone away from home
        positions = [tuple(home)] + [tuple(home[:j]) + (k,) + tuple(home[j + 1:])
                                     for j in range(m) for k in range(n) if k != home[j]]
    z = np.repeat(base[None], len(positions), axis=0)
    z[:, dims] = values[np.array(positions)]
    raw = _decode(decode, z, batch_size)
    if value_range is None:  # one scale for every image, live ones included
        value_range = infer_value_range(raw)
    images = to_display(raw, value_range)
    uris = ["data:image/png;base64," + base64.b64encode(_png(x, cmap)).decode() for x in images]
    page = _static_html(uris, positions, home, values, labels, mode, size, images.shape[1:3])

    # The live widget: decode the current vector on every slider move.
    scale = max(1, size // images.shape[2])
    image = W.Image(format="png")
    sliders = [W.FloatSlider(value=float(base[d]), min=float(values[0]), max=float(values[-1]),
                             step=float(step), description=label, readout_format=".2f",
                             continuous_update=continuous_update)
               for d, label in zip(dims, labels)]

    def redraw(_: Any = None) -> None:
        z = base.copy()
        z[dims] = [s.value for s in sliders]
        image.value = _png(to_display(_decode(decode, z[None], 1), value_range)[0], cmap, scale)

    for s in sliders:
        s.observe(redraw, names="value")
    redraw()
    widget = W.HBox([image, W.VBox(sliders)], layout=W.Layout(align_items="center"))
    return LatentExplorer(widget, sliders, image, page, mode, len(uris))


_JS = """(function () {
  var root = document.getElementById("%s");
  var d = JSON.parse(root.querySelector("script[type='application/json']").textContent);
  var img = root.querySelector("img"), outs = root.querySelectorAll("output");
  var inputs = root.querySelectorAll("input[type=range]");
  function show(active) {
    var id = 0;
    inputs.forEach(function (s, j) {
      var held = d.mode === "axes" && j !== active;
      if (held) s.value = d.home[j];
      var k = +s.value;
      if (d.mode === "grid") id = id * d.values.length + k;
      else if (!held) id = d.table[j][k];
      outs[j].textContent = d.values[k].toFixed(2) + (held || k === d.home[j] ? " (base)" : "");
    });
    img.src = d.images[id];
  }
  inputs.forEach(function (s, j) { s.addEventListener("input", function () { show(j); }); });
})();"""


def _static_html(uris: list[str], positions: list[tuple[int, ...]], home: list[int],
                 values: np.ndarray, labels: list[str], mode: str, size: int,
                 hw: tuple[int, int]) -> str:
    """The static explorer: the images, a range input per slider, and the script that swaps them."""
    uid = f"gdl-latent-explorer-{next(_ids)}"
    start = positions.index(tuple(home))
    table = None  # axes: table[j][k] is the image with slider j at position k, the others home
    if mode == "axes":
        table = [[positions.index(tuple(home[:j]) + (k,) + tuple(home[j + 1:]))
                  for k in range(len(values))] for j in range(len(home))]
    data = {"mode": mode, "values": values.tolist(), "home": home, "table": table, "images": uris}
    rows = "".join(
        f'<label style="display:block;white-space:nowrap">{html.escape(label)} '
        f'<input type="range" min="0" max="{len(values) - 1}" step="1" value="{k}" '
        f'aria-label="{html.escape(label)}"> <output>{values[k]:.2f} (base)</output></label>'
        for label, k in zip(labels, home))
    note = ("every combination of the slider positions" if mode == "grid" else
            "one slider at a time: moving one returns the others to the base point")
    return (
        f'<div id="{uid}" class="gdl-latent-explorer" '
        'style="display:flex;flex-wrap:wrap;gap:1em;align-items:center">'
        f'<img src="{uris[start]}" alt="decoded latent vector" width="{size}" '
        f'height="{round(size * hw[0] / hw[1])}" style="image-rendering:pixelated">'
        f'<div>{rows}<p style="font-size:smaller;max-width:30em;margin:0.5em 0 0">'
        f"Static version ({len(uris)} images decoded in advance): {note}. Run the notebook for "
        "the live explorer.</p></div>"
        '<script type="application/json">'
        + json.dumps(data, separators=(",", ":")).replace("<", "\\u003c") + "</script>"
        f"<script>{_JS % uid}</script></div>")
