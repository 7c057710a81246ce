"""The notebook-test machinery: chapters converted on the fly, golden outputs injected."""

import json

import nbformat
import pytest

import nbtools

CHAPTER = nbtools.MYST_HEADER + """
# 9. A test chapter

```{code-cell} ipython3
x = 6 * 7
```

```{code-cell} ipython3
:tags: [golden]
print(x)
```
"""


@pytest.fixture
def chapter(tmp_path, monkeypatch):
    monkeypatch.setattr(nbtools, "GOLDEN", tmp_path / "golden")
    p = tmp_path / "09_test.md"
    p.write_text(CHAPTER)
    return p


def _record(tmp_path, source="print(x)", text="42\n"):
    (tmp_path / "golden").mkdir(exist_ok=True)
    (tmp_path / "golden" / "09_test.json").write_text(json.dumps({"cells": [{
        "source": source,
        "outputs": [{"output_type": "stream", "name": "stdout", "text": text}]}]}))


def test_prepare_injects_golden_outputs(chapter, tmp_path):
    _record(tmp_path)
    nb = nbformat.read(nbtools.prepare(chapter, tmp_path / "out"), as_version=4)
    golden = [c for c in nb.cells if "golden" in c.metadata.get("tags", [])]
    assert len(golden) == 1
    assert "nbval-check-output" in golden[0].metadata.tags
    assert golden[0].outputs[0]["text"] == "42\n"
    assert all(not c.get("outputs") for c in nb.cells if c not in golden and c.cell_type == "code")


def test_missing_or_stale_golden_record_fails(chapter, tmp_path):
    with pytest.raises(nbtools.GoldenError, match="no .*09_test.json"):
        nbtools.prepare(chapter, tmp_path / "out")
    _record(tmp_path, source="print(x + 1)")
    with pytest.raises(nbtools.GoldenError, match="changed since it was recorded"):
        nbtools.prepare(chapter, tmp_path / "out")


def test_refresh_records_what_the_chapter_prints(chapter, tmp_path):
    path = nbtools.refresh_golden(chapter)
    rec = json.loads(path.read_text())
    assert rec["cells"][0]["outputs"][0]["text"] == "42\n"
    nbtools.prepare(chapter, tmp_path / "out")  # and the record is accepted


def _ran_cells(chapter, tmp_path):
    """The code cells as nbval runs them (from the prepared notebook), with their outputs."""
    _record(tmp_path)
    nb = nbformat.read(nbtools.prepare(chapter, tmp_path / "nbval"), as_version=4)
    sources = [c.source for c in nb.cells if c.cell_type == "code"]
    return sources, [[], [{"output_type": "stream", "name": "stdout", "text": "42\n"}]]


def test_executed_chapter_is_cached_where_the_build_looks(chapter, tmp_path):
    import nbcache
    from jupyter_cache import get_cache

    sources, outputs = _ran_cells(chapter, tmp_path)
    assert nbcache.cache_executed(chapter, sources, outputs, tmp_path / "cache", 1.0) is None
    cache = get_cache(str(tmp_path / "cache"))
    # the build's lookup: the chapter as myst-nb reads it, matched by its code
    _, merged = cache.merge_match_into_notebook(nbcache.chapter_notebook(chapter))
    code = [c for c in merged.cells if c.cell_type == "code"]
    assert code[1].outputs[0]["text"] == "42\n" and code[1].execution_count == 2

    chapter.write_text(CHAPTER.replace("6 * 7", "6 * 8"))  # edited code: the build runs it again
    with pytest.raises(KeyError):
        cache.match_cache_notebook(nbcache.chapter_notebook(chapter))


def test_cells_that_are_not_the_chapters_are_not_cached(chapter, tmp_path):
    import nbcache

    sources, outputs = _ran_cells(chapter, tmp_path)
    assert "3 cells run" in nbcache.cache_executed(chapter, sources, outputs + [[]],
                                                   tmp_path / "cache", 1.0)
    assert "differs" in nbcache.cache_executed(chapter, ["x = 0", sources[1]], outputs,
                                               tmp_path / "cache", 1.0)


def test_kernels_draw_figures_for_the_book(monkeypatch):
    import os

    import nbcache

    # the tests themselves must not hand a non-inline backend to the kernels nbval starts
    assert nbcache.figures_not_drawn() is None, os.environ.get("MPLBACKEND")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    assert nbcache.figures_not_drawn() == "Agg"
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    assert nbcache.figures_not_drawn() is None
