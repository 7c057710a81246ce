"""The book's layout: the design card's top level, chapters as outputs-free jupytext notebooks."""

import subprocess
from pathlib import Path

import jupytext
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9A-Z][0-9]_*.md"))  # appendices: A1_...


def test_top_level():
    for name in ("_config.yml", "_toc.yml", "README.md", "environment.yml", "pyproject.toml",
                 "references.bib", "chapters", "gdlbook", "tests", ".ci/run"):
        assert (ROOT / name).exists(), name


def _toc_files(node) -> list[str]:
    out = []
    if isinstance(node, dict):
        if "file" in node:
            out.append(node["file"])
        for v in node.values():
            out += _toc_files(v)
    elif isinstance(node, list):
        for v in node:
            out += _toc_files(v)
    return out


def test_toc_lists_every_chapter_and_only_existing_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + _toc_files(toc)
    for f in files:
        assert any((ROOT / f).with_suffix(s).exists() for s in (".md", ".ipynb")), f
    for ch in CHAPTERS:
        assert f"chapters/{ch.stem}" in files, f"{ch.name} is not in _toc.yml"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_chapter_is_a_myst_notebook_without_outputs(chapter):
    text = chapter.read_text()
    assert text.startswith("---\njupytext:"), "jupytext header first"
    nb = jupytext.read(chapter)
    assert nb.metadata["jupytext"]["text_representation"]["format_name"] == "myst"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a chapter has code"
    assert sum(1 for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("# ")) == 1
    src = "\n".join(c.source for c in code)
    assert "import tensorflow" not in src and "tf." not in src, "chapter code is backend-agnostic"
    assert "profile.select(" in src, "a parameters cell shows both profiles"


def test_no_notebooks_or_build_output_tracked():
    try:
        tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                                 check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    # the only executed notebooks in git are the recorded runs, results/<chapter>.ipynb
    recorded = {f"results/{c.stem}.ipynb" for c in (ROOT / "chapters").glob("[0-9A-Z]*.md")}
    bad = [f for f in tracked if (f.endswith(".ipynb") and not f.startswith("tests/")
                                  and f not in recorded)
           or f.startswith("_build/") or "/_build/" in f or ".jupyter_cache" in f]
    assert not bad, bad
