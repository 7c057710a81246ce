"""The latent-space explorer: live widget, static HTML, and the static HTML in a built book page."""

import base64
import io
import json
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from gdlbook import widgets
from browser import chromium, needs_chromium, open_page
from nbtools import MYST_HEADER

ROOT = Path(__file__).resolve().parents[1]
VALUES = np.linspace(-3, 3, 13)


class FakeDecoder:
    """z (N, D) → images (N, 2, D): row 0 encodes z as brightness z/6 + 1/2, row 1 pins 0 and 1.

    It records every batch it is called with, and :func:`read_z` recovers z from a shown PNG.
    """

    def __init__(self):
        self.calls = []

    def __call__(self, z):
        self.calls.append(np.array(z))
        z = np.asarray(z)
        pins = np.tile(np.arange(z.shape[1]) % 2, (len(z), 1))
        return np.stack([z / 6 + 0.5, pins], axis=1)


def read_z(png: bytes) -> np.ndarray:
    """Invert FakeDecoder on an image drawn with cmap='gray' (at any integer scale)."""
    a = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
    scale = a.shape[0] // 2
    return (a[0, ::scale] / 255 - 0.5) * 6


def uri_png(uri: str) -> bytes:
    assert uri.startswith("data:image/png;base64,")
    return base64.b64decode(uri.split(",", 1)[1])


def static_data(page: str) -> dict:
    m = re.search(r'<script type="application/json">(.*?)</script>', page, re.S)
    return json.loads(m.group(1))


# --- the live widget ---------------------------------------------------------------------------

def test_live_widget_has_one_slider_per_dim_with_the_values_range():
    ex = widgets.latent_explorer(FakeDecoder(), [2, 0], latent_dim=4, labels=["a", "b"],
                                 cmap="gray")
    assert [s.description for s in ex.sliders] == ["a", "b"]
    for s in ex.sliders:
        assert (s.min, s.max, s.step, s.value) == (-3.0, 3.0, 0.5, 0.0)
    assert ex.image in ex.widget.children and all(s in ex.widget.children[1].children
                                                  for s in ex.sliders)
    np.testing.assert_allclose(read_z(ex.image.value), 0.0, atol=0.03)


def test_moving_a_slider_decodes_the_current_vector_and_redraws():
    dec = FakeDecoder()
    base = np.array([0.1, 0.2, 0.3, 0.4])
    ex = widgets.latent_explorer(dec, [1, 3], base=base, cmap="gray")
    assert ex.sliders[0].value == pytest.approx(0.2)
    before, n_calls = ex.image.value, len(dec.calls)
    ex.sliders[0].value = 1.5
    assert len(dec.calls) == n_calls + 1
    np.testing.assert_allclose(dec.calls[-1], [[0.1, 1.5, 0.3, 0.4]], rtol=1e-6)
    assert ex.image.value != before
    ex.sliders[1].value = -2.0
    np.testing.assert_allclose(dec.calls[-1], [[0.1, 1.5, 0.3, -2.0]], rtol=1e-6)
    np.testing.assert_allclose(read_z(ex.image.value), [0.1, 1.5, 0.3, -2.0], atol=0.03)
    assert base.tolist() == [0.1, 0.2, 0.3, 0.4], "the caller's base is not modified"


def test_grey_colour_maps():
    dark_on_white = widgets.latent_explorer(FakeDecoder(), [0], base=[3.0, 0.0])  # gray_r
    np.testing.assert_allclose(read_z(dark_on_white.image.value), [-3, 0], atol=0.03)
    viridis = widgets.latent_explorer(FakeDecoder(), [0], latent_dim=2, cmap="viridis")
    assert Image.open(io.BytesIO(viridis.image.value)).mode == "RGB"


def test_colour_images_and_backend_tensors():
    import keras

    def decode(z):  # a colour image, returned as a tensor of the active backend
        img = np.broadcast_to((z[:, :1, None, None] / 6 + 0.5), (len(z), 5, 7, 3))
        return keras.ops.convert_to_tensor(np.ascontiguousarray(img))

    ex = widgets.latent_explorer(decode, [0], size=70)
    im = Image.open(io.BytesIO(ex.image.value))
    assert im.mode == "RGB" and im.size == (70, 50)  # enlarged 10× with sharp pixels
    assert 'width="70" height="50"' in ex.html


# --- the static explorer -----------------------------------------------------------------------

def test_static_grid_embeds_every_combination():
    ex = widgets.latent_explorer(FakeDecoder(), [0, 1], latent_dim=3, cmap="gray")
    assert ex.static == "grid" and ex.n_images == 169
    d = static_data(ex.html)
    assert d["mode"] == "grid" and len(d["images"]) == 169 and d["values"] == VALUES.tolist()
    for i, j in [(0, 0), (3, 11), (12, 12)]:
        z = read_z(uri_png(d["images"][i * 13 + j]))  # row-major, as the script indexes them
        np.testing.assert_allclose(z, [VALUES[i], VALUES[j], 0.0], atol=0.03)
    assert len(re.findall(r'<input type="range" min="0" max="12" step="1" value="6"', ex.html)) == 2
    assert 'src="' + d["images"][6 * 13 + 6] + '"' in ex.html, "starts at the base point"
    assert "addEventListener(\"input\"" in ex.html and "every combination" in ex.html
    assert "http" not in ex.html.lower(), "no network, no external script"


def test_static_axes_for_many_dims_moves_one_coordinate_from_the_base():
    base = np.array([0.0, 1.0, -0.4, 0.0, 2.0, 0.0])
    ex = widgets.latent_explorer(FakeDecoder(), [0, 1, 2, 4], base=base, cmap="gray",
                                 labels=["x<y", "b", "c", "d"])
    assert ex.static == "axes" and ex.n_images == 1 + 4 * 12
    d = static_data(ex.html)
    home = [6, 8, 5, 10]  # base snapped to the nearest value: 0, 1, -0.5, 2
    assert d["home"] == home and len(d["images"]) == 49
    snapped = base.copy()
    snapped[[0, 1, 2, 4]] = VALUES[home]
    for j, dim in enumerate([0, 1, 2, 4]):
        for k in (0, home[j], 12):
            want = snapped.copy()
            want[dim] = VALUES[k]
            z = read_z(uri_png(d["images"][d["table"][j][k]]))
            np.testing.assert_allclose(z, want, atol=0.03)
    assert "x&lt;y" in ex.html and "x<y" not in ex.html
    assert "one slider at a time" in ex.html


def test_static_size_cap():
    with pytest.raises(ValueError, match=r"2197 images .*max_images=200.*static='axes'"):
        widgets.latent_explorer(FakeDecoder(), [0, 1, 2], static="grid")
    with pytest.raises(ValueError, match=r"241 images .*max_images=200"):
        widgets.latent_explorer(FakeDecoder(), range(20))
    ex = widgets.latent_explorer(FakeDecoder(), [0, 1, 2], values=np.linspace(-1, 1, 5))
    assert ex.static == "grid" and ex.n_images == 125
    assert len(ex.html) < 125_000, "small images keep the page small"


def test_display_bundle_offers_both_versions():
    ex = widgets.latent_explorer(FakeDecoder(), [0])
    bundle = ex._repr_mimebundle_()
    assert bundle["text/html"] == ex.html
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == ex.widget.model_id
    assert bundle["text/plain"] == "LatentExplorer(['z[0]'], static='grid', 13 images)"


@pytest.mark.parametrize("kwargs, match", [
    ({"dims": [0, 0]}, "distinct"),
    ({"dims": [4], "latent_dim": 4}, "distinct"),
    ({"dims": []}, "distinct"),
    ({"dims": [0], "base": np.zeros(3), "latent_dim": 4}, "latent_dim"),
    ({"dims": [0], "values": [0, 1, 3]}, "evenly spaced"),
    ({"dims": [0], "values": [1, 0]}, "increasing"),
    ({"dims": [0], "labels": ["a", "b"]}, "labels"),
    ({"dims": [0], "static": "all"}, "static"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        widgets.latent_explorer(FakeDecoder(), **kwargs)


# --- the book: the static explorer survives myst-nb and works in a browser ---------------------

def test_book_config_shows_the_static_explorer():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    overrides = config.get("nb_mime_priority_overrides", [])
    for o in widgets.MIME_PRIORITY_OVERRIDES:
        assert list(o) in [list(x) for x in overrides], (
            f"_config.yml needs sphinx.config.nb_mime_priority_overrides {o}: without it myst-nb "
            "renders the explorers' dead widget view instead of their static HTML")


NOTEBOOK = MYST_HEADER + """
# Explorer

```{code-cell} ipython3
import numpy as np
from gdlbook.widgets import latent_explorer

def decode(z):  # brightness of row 0 encodes z
    pins = np.tile(np.arange(z.shape[1]) % 2, (len(z), 1))
    return np.stack([z / 6 + 0.5, pins], axis=1)

latent_explorer(decode, [0, 1], latent_dim=2, values=np.linspace(-3, 3, 7), cmap="gray")
```
"""


@pytest.fixture(scope="module")
def built_page(tmp_path_factory):
    """A one-page Jupyter Book with the book's execution and myst-nb settings, built strictly."""
    src = tmp_path_factory.mktemp("book")
    book = yaml.safe_load((ROOT / "_config.yml").read_text())
    nb_config = {k: v for k, v in book["sphinx"]["config"].items() if k.startswith("nb_")}
    nb_config.setdefault("nb_mime_priority_overrides", widgets.MIME_PRIORITY_OVERRIDES)
    config = {"title": "t", "author": "t", "only_build_toc_files": True,
              "execute": book["execute"], "sphinx": {"config": nb_config}}
    (src / "_config.yml").write_text(yaml.safe_dump(config))
    (src / "_toc.yml").write_text("format: jb-book\nroot: index\n")
    (src / "index.md").write_text(NOTEBOOK)
    jb = Path(sys.executable).parent / "jupyter-book"
    t0 = time.perf_counter()
    run = subprocess.run([str(jb), "build", str(src), "-W", "-n", "--keep-going"],
                         capture_output=True, text=True, timeout=600, cwd=src)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    print(f"book built in {time.perf_counter() - t0:.1f} s")
    return src / "_build" / "html" / "index.html"


def test_built_page_holds_the_static_explorer(built_page):
    page = built_page.read_text()
    assert page.count('class="gdl-latent-explorer"') == 1
    assert "application/vnd.jupyter.widget-view+json" not in page, "no dead widget view"
    explorer = page[page.index('class="gdl-latent-explorer"'):]
    explorer = explorer[:explorer.index("})();</script></div>")]
    assert "http" not in explorer.lower()
    assert len(static_data(explorer)["images"]) == 49


@needs_chromium
def test_static_explorer_sliders_swap_the_image_in_a_browser(built_page, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    with chromium(tmp_path / "profile") as driver:
        open_page(driver, built_page)
        root = driver.find_element(By.CSS_SELECTOR, ".gdl-latent-explorer")
        img = root.find_element(By.TAG_NAME, "img")
        x, y = root.find_elements(By.CSS_SELECTOR, "input[type=range]")
        shown = lambda: read_z(uri_png(img.get_attribute("src")))  # noqa: E731
        np.testing.assert_allclose(shown(), [0, 0], atol=0.03)
        start = img.get_attribute("src")

        x.send_keys(Keys.ARROW_RIGHT)  # a real key press: 0 → 1
        assert img.get_attribute("src") != start
        np.testing.assert_allclose(shown(), [1, 0], atol=0.03)

        driver.execute_script("arguments[0].value = 0;"
                              "arguments[0].dispatchEvent(new Event('input'));", y)
        np.testing.assert_allclose(shown(), [1, -3], atol=0.03)
        outputs = [o.text for o in root.find_elements(By.TAG_NAME, "output")]
        assert outputs == ["1.00", "-3.00"]
