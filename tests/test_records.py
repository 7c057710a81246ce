"""Recorded runs (gdlbook.records): record, status, priming the build's cache, bad records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from gdlbook import records
from nbtools import MYST_HEADER, ROOT

CHAPTER = MYST_HEADER + """
# 1. A recorded chapter

```{code-cell} ipython3
import os
profile = os.environ["GDL_PROFILE"]
```

```{code-cell} ipython3
print("profile", profile, "recorded", os.environ.get("GDL_RECORD"))
```
"""


@pytest.fixture
def book(tmp_path):
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    (tmp_path / "chapters").mkdir()
    (tmp_path / "chapters" / "01_tiny.md").write_text(CHAPTER)
    return tmp_path


def _outputs(nb):
    return [c.get("outputs", []) for c in records.code_cells(nb)]


def test_record_status_prime_round_trip(book):
    from jupyter_cache import get_cache

    chapter = book / "chapters" / "01_tiny.md"
    path = records.record(chapter, "laptop", root=book)
    assert path == book / "results" / "01_tiny.ipynb"
    nb, meta = records.load_record(path)
    assert _outputs(nb)[1][0]["text"] == "profile laptop recorded 1\n"  # ran in that profile
    assert meta["profile"] == "laptop" and meta["chapter"] == "chapters/01_tiny.md"
    assert meta["wall_s"] > 0 and meta["device"] and meta["backend"]

    [row] = records.status(book)
    assert row["state"] == "fresh" and row["profile"] == "laptop"

    cache_dir = book / "_build" / ".jupyter_cache"
    import os
    os.utime(chapter, (1, 1))
    [line] = records.prime(cache_dir, book)
    assert "recorded laptop run" in line
    # newly primed: the chapter is marked as changed, so an incremental build re-reads it
    assert chapter.stat().st_mtime > 1
    os.utime(chapter, (1, 1))
    records.prime(cache_dir, book)                 # already there: left alone
    assert chapter.stat().st_mtime == 1
    # what the build looks up: the chapter as myst-nb reads it, with the record's outputs
    _, merged = get_cache(str(cache_dir)).merge_match_into_notebook(
        records.chapter_notebook(chapter, book))
    assert _outputs(merged)[1][0]["text"] == "profile laptop recorded 1\n"

    # one edited code cell makes the record stale: never shown, the build executes the chapter
    chapter.write_text(CHAPTER.replace('"profile", profile', '"the profile", profile'))
    [row] = records.status(book)
    assert row["state"] == "stale"
    [line] = records.prime(book / "other_cache", book)
    assert "stale" in line and "executes it" in line
    with pytest.raises(KeyError):
        get_cache(str(book / "other_cache")).match_cache_notebook(
            records.chapter_notebook(chapter, book))


def test_failed_run_keeps_the_previous_record(book):
    chapter = book / "chapters" / "01_tiny.md"
    path = records.record(chapter, "smoke", root=book)
    before = path.read_bytes()
    chapter.write_text(CHAPTER.replace('print("profile"', 'raise RuntimeError("boom"); print('))
    with pytest.raises(records.RecordError, match="boom|failed"):
        records.record(chapter, "smoke", root=book)
    assert path.read_bytes() == before


def test_oversized_record_is_refused(book, monkeypatch):
    chapter = book / "chapters" / "01_tiny.md"
    monkeypatch.setattr(records, "MAX_BYTES", 100)
    with pytest.raises(records.RecordError, match="over the 0 MiB limit"):
        records.record(chapter, "smoke", root=book)
    assert not (book / "results" / "01_tiny.ipynb").exists()
    assert (book / "results" / "01_tiny.rejected.ipynb").exists()


def test_unknown_profile_and_broken_record(book, capsys):
    assert records.main(["record", str(book / "chapters" / "01_tiny.md"),
                         "--profile", "huge"]) == 1
    assert "Valid profiles" in capsys.readouterr().err
    (book / "results").mkdir()
    (book / "results" / "01_tiny.ipynb").write_text(json.dumps(nbformat.v4.new_notebook()))
    [row] = records.status(book)
    assert row["state"] == "broken" and "no provenance" in row["reason"]


def test_large_figures_are_stored_as_jpeg():
    import base64
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (300, 300, 3), dtype=np.uint8)).save(buf, "PNG")
    small = io.BytesIO()
    Image.new("RGB", (10, 10)).save(small, "PNG")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x")])
    nb.cells[0].outputs = [
        nbformat.v4.new_output("display_data", {"image/png": base64.b64encode(
            buf.getvalue()).decode()}),
        nbformat.v4.new_output("display_data", {"image/png": base64.b64encode(
            small.getvalue()).decode()})]
    assert records.shrink_figures(nb) > 0
    big, tiny = nb.cells[0].outputs
    assert "image/jpeg" in big.data and "image/png" not in big.data
    assert "image/png" in tiny.data  # a small figure stays a PNG


def test_committed_records_are_well_formed_and_small():
    for path in sorted((ROOT / "results").glob("*.ipynb")):
        assert path.stat().st_size <= records.MAX_BYTES, path
        nb, meta = records.load_record(path)
        assert (ROOT / meta["chapter"]).exists(), f"{path}: no chapter {meta['chapter']}"
        assert meta["profile"] in ("laptop", "full"), path
        for cell in records.code_cells(nb):
            for out in cell.get("outputs", []):
                assert out.get("output_type") != "error", f"{path} holds an error output"
