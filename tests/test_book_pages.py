"""The built book's chapter pages, in a real browser (run after the build: `make pages`).

Every chapter page carries the figures its code draws. Chapter 3 embeds two static latent
explorers (the 2-D Fashion-MNIST VAE and three dimensions of the face VAE). In the HTML page, with
no kernel, moving a slider must show the decoded image of the new slider position.
"""

import json
import os
import re
from pathlib import Path

import pytest

import nbtools
from browser import chromium, needs_chromium, open_page
from nbcache import chapter_notebook

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("GDL_BOOK_HTML", ROOT / "_build" / "smoke" / "_build" / "html")).resolve()
VAE_PAGE = HTML / "chapters" / "03_variational_autoencoders.html"


@pytest.fixture(scope="module")
def vae_page() -> Path:
    if not VAE_PAGE.exists():
        pytest.fail(f"{VAE_PAGE} is missing: build the book first (make strict-build), or point "
                    "GDL_BOOK_HTML at a built book's html folder")
    return VAE_PAGE


CHAPTERS = nbtools.chapters()


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_every_figure_of_the_chapter_is_on_its_page(chapter):
    page = HTML / "chapters" / (chapter.stem + ".html")
    if not page.exists():
        pytest.fail(f"{page} is missing: build the book first (make strict-build)")
    cells = [c.source for c in chapter_notebook(chapter).cells if c.cell_type == "code"]
    showing = sum("plt.show()" in c for c in cells)     # each such cell shows a figure at least
    images = re.findall(r'<img[^>]*src="([^"]+)"', page.read_text())
    local = [src for src in images if not src.startswith(("http", "data:"))]
    assert len(local) >= showing > 0, (
        f"{page.name}: {len(local)} figures for {showing} cells that show one (were the "
        "chapter's figures drawn? MPLBACKEND must not be set for the kernels)")
    missing = [src for src in local if not (page.parent / src).resolve().is_file()]
    assert not missing, missing


def explorers(html: str) -> list[dict]:
    return [json.loads(m) for m in re.findall(
        r'class="gdl-latent-explorer".*?<script type="application/json">(.*?)</script>',
        html, re.S)]


def test_chapter_3_holds_two_self_contained_explorers(vae_page):
    html = vae_page.read_text()
    found = explorers(html)
    assert [d["mode"] for d in found] == ["grid", "axes"]
    assert len(found[0]["images"]) == 13 ** 2          # every combination of two 13-step sliders
    assert len(found[1]["images"]) == 1 + 3 * 8        # three 9-step sliders, one at a time
    assert all(u.startswith("data:image/png;base64,") for d in found for u in d["images"])
    assert "application/vnd.jupyter.widget-view+json" not in html, "no dead widget view"


def expected_index(data: dict, positions: list[int]) -> int:
    n = len(data["values"])
    if data["mode"] == "grid":
        index = 0
        for k in positions:
            index = index * n + k
        return index
    moved = [j for j, (k, h) in enumerate(zip(positions, data["home"])) if k != h]
    assert len(moved) <= 1
    return data["table"][moved[0]][positions[moved[0]]] if moved else data["table"][0][data["home"][0]]


@needs_chromium
def test_moving_a_slider_shows_the_decoded_image_of_the_new_position(vae_page, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    data = explorers(vae_page.read_text())
    with chromium(tmp_path / "profile") as driver:
        open_page(driver, vae_page)
        roots = driver.find_elements(By.CSS_SELECTOR, ".gdl-latent-explorer")
        assert len(roots) == len(data) == 2
        for root, d in zip(roots, data):
            img = root.find_element(By.TAG_NAME, "img")
            sliders = root.find_elements(By.CSS_SELECTOR, "input[type=range]")
            positions = list(d["home"])
            assert img.get_attribute("src") == d["images"][expected_index(d, positions)]
            j = len(sliders) - 1                       # the last slider, one step up (or down)
            key = Keys.ARROW_RIGHT if positions[j] < len(d["values"]) - 1 else Keys.ARROW_LEFT
            driver.execute_script("arguments[0].scrollIntoView();", sliders[j])
            sliders[j].send_keys(key)
            positions[j] += 1 if key == Keys.ARROW_RIGHT else -1
            src = img.get_attribute("src")
            assert src == d["images"][expected_index(d, positions)]
            assert src != d["images"][expected_index(d, d["home"])], "the image did not change"
            shown = root.find_elements(By.TAG_NAME, "output")[j].text
            assert float(shown) == pytest.approx(d["values"][positions[j]], abs=0.01)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_every_page_says_which_run_it_shows(chapter):
    """The first lines of a chapter page name its run: a fresh record, or the build's own."""
    from gdlbook import records

    page = HTML / "chapters" / (chapter.stem + ".html")
    if not page.exists():
        pytest.fail(f"{page} is missing: build the book first (make strict-build)")
    text = re.sub(r"<[^>]+>", "", page.read_text())
    found = re.search(r"This page shows (a recorded run|this build.s own execution) of the "
                      r"chapter in the (\w+) profile", text)
    assert found, f"{page.name} does not say which run it shows"
    [row] = [r for r in records.status(ROOT) if r["chapter"] == chapter.name]
    if row["state"] == "fresh":   # the build must show the record, with the record's profile
        assert found.groups() == ("a recorded run", row["profile"]), found.group(0)
        assert row["device"] in text
    else:
        assert found.group(1) != "a recorded run", f"{page.name}: a {row['state']} record shown"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_every_chapter_page_has_an_open_in_colab_badge(chapter):
    """Under the title, a badge links to the chapter's generated notebook on the published branch
    (gdlbook.colab writes it at that path, the repository's layout)."""
    from gdlbook import colab

    page = HTML / "chapters" / (chapter.stem + ".html")
    if not page.exists():
        pytest.fail(f"{page} is missing: build the book first (make strict-build)")
    html = page.read_text()
    badges = re.findall(r'class="gdlbook-colab-badge"><a href="([^"]+)"', html)
    expected = colab.settings(ROOT).colab_url(f"chapters/{chapter.stem}")
    assert badges == [expected]
    assert html.index("gdlbook-colab-badge") > html.index("<h1")   # under the title
    assert expected.endswith(f"/chapters/{chapter.stem}.ipynb")


AUDIO_CHAPTERS = [c for c in CHAPTERS if "audio_player(" in c.read_text()]

# Wait until every <audio> on the page has read its metadata (or failed), then report each one.
AUDIO_STATE = """
const done = arguments[arguments.length - 1];
const players = Array.from(document.querySelectorAll("audio"));
const t0 = Date.now();
(function poll() {
  const settled = players.every(a => a.readyState >= 1 || a.error);
  if (settled || Date.now() - t0 > 20000) {
    done(players.map(a => ({src: (a.currentSrc || a.src || "").slice(0, 40),
                            mime: (a.src.match(/^data:([^;]+);/) || [null, ""])[1],
                            can: a.canPlayType((a.src.match(/^data:([^;]+);/) || [null, ""])[1]),
                            ready: a.readyState, duration: a.duration,
                            error: a.error ? a.error.code : null})));
  } else { setTimeout(poll, 100); }
})();
"""


@needs_chromium
@pytest.mark.parametrize("chapter", AUDIO_CHAPTERS, ids=[c.stem for c in AUDIO_CHAPTERS])
def test_every_audio_player_has_a_playable_source(chapter, tmp_path):
    """The music chapter's players carry their sound in the page: in Chromium each one has a
    source it can play, loads its metadata without a server, and lasts more than zero seconds."""
    page = HTML / "chapters" / (chapter.stem + ".html")
    if not page.exists():
        pytest.fail(f"{page} is missing: build the book first (make strict-build)")
    n_players = page.read_text().count("<audio ")
    assert n_players > 0, f"{page.name} has no audio player"
    with chromium(tmp_path / "profile") as driver:
        driver.set_script_timeout(30)
        open_page(driver, page)
        players = driver.execute_async_script(AUDIO_STATE)
    assert len(players) == n_players, \
        f"{len(players)} <audio> elements in the DOM, {n_players} in the HTML"
    for p in players:
        assert p["src"].startswith("data:audio/"), p
        assert p["can"] in ("maybe", "probably"), p
        assert p["error"] is None and p["ready"] >= 1, p
        assert p["duration"] > 0, p
