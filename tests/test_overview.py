"""gdlbook.overview: the conclusion's table reads the glued values of fresh records, in the order of
_toc.yml, and says why a chapter has none (stale, missing) instead of failing."""

from __future__ import annotations

import shutil

import nbformat
import pytest

from gdlbook import overview, records
from nbtools import MYST_HEADER, ROOT


def chapter(title: str, code: str) -> str:
    return MYST_HEADER + f"\n# {title}\n\n```{{code-cell}} ipython3\n{code}\n```\n"


GLUING = 'import gdlbook\ngdlbook.glue("val_loss", "1.95")\ngdlbook.glue("steps", 400)'

TOC = """format: jb-book
root: intro
parts:
  - caption: Methods
    chapters:
      - file: chapters/02_second
      - file: chapters/01_first
  - caption: Later
    chapters:
      - file: chapters/03_third
      - file: chapters/15_end
"""


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    root = tmp_path_factory.mktemp("book")
    shutil.copy(ROOT / "_config.yml", root / "_config.yml")
    (root / "_toc.yml").write_text(TOC)
    (root / "chapters").mkdir()
    (root / "chapters" / "01_first.md").write_text(chapter("1. First things", GLUING))
    (root / "chapters" / "02_second.md").write_text(chapter("2. Second", GLUING))
    (root / "chapters" / "03_third.md").write_text(chapter("3. Third", "x = 1"))
    (root / "chapters" / "15_end.md").write_text(chapter("15. The end", "y = 2"))
    for name in ("01_first", "02_second"):
        records.record(root / "chapters" / f"{name}.md", "laptop", root=root)
    # the second chapter changes after its record: stale
    (root / "chapters" / "02_second.md").write_text(chapter("2. Second", GLUING + "\nz = 3"))
    return root


def test_chapters_come_from_the_toc_in_its_order(book):
    assert [p.name for p in overview.toc_chapters(book)] == [
        "02_second.md", "01_first.md", "03_third.md", "15_end.md"]
    assert overview.chapter_title(book / "chapters" / "01_first.md") == "First things"


def test_fresh_records_give_their_glued_values_the_others_say_why(book):
    rows = overview.chapter_records(book, exclude=("15_end",))
    assert [r["stem"] for r in rows] == ["02_second", "01_first", "03_third"]
    second, first, third = rows
    assert first["state"] == "fresh" and first["profile"] == "laptop"
    assert first["values"] == {"val_loss": "1.95", "steps": "400"}  # strings unquoted
    assert first["wall_s"] > 0
    assert second["state"] == "stale" and "values" not in second
    assert third["state"] == "none"


def test_headline_rows_fill_templates_and_report_gaps(book):
    rows = overview.chapter_records(book, exclude=("15_end",))
    table = overview.headline_rows(rows, {
        "01_first": [("model A", "loss {val_loss} after {steps} steps"),
                     ("model B", "{val_loss} and {missing_name}")],
        "02_second": [("model C", "{val_loss}")]})
    by_model = {(t["stem"], t["model"]): t for t in table}
    assert by_model["01_first", "model A"]["figures"] == "loss 1.95 after 400 steps"
    assert by_model["01_first", "model A"]["source"].startswith("recorded laptop run")
    assert by_model["01_first", "model A"]["minutes"] > 0
    assert "missing_name" in by_model["01_first", "model B"]["figures"]
    assert by_model["02_second", "model C"]["figures"] == "—"          # stale: nothing shown
    assert "stale" in by_model["02_second", "model C"]["source"]
    assert by_model["03_third", ""]["source"] == overview.STATE_NOTES["none"]
    assert by_model["02_second", "model C"]["minutes"] is None


def test_glued_values_of_a_real_record():
    nb = nbformat.read(str(ROOT / "results" / "09_transformers.ipynb"), as_version=4)
    values = overview.glued_values(nb)
    assert values["profile"] == "laptop" and float(values["val_loss"]) > 0
    assert "run_provenance" not in values   # Markdown objects are not text values


def test_the_books_toc_lists_existing_chapters():
    chapters = overview.toc_chapters(ROOT)
    assert chapters and all(p.exists() for p in chapters)
    assert [p.name for p in chapters[:2]] == ["01_generative_modelling.md", "02_deep_learning.md"]
