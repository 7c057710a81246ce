"""The Colab notebooks (gdlbook.colab): every chapter converts to a valid notebook with the install
cell first and no MyST left; the conversion of each MyST construct; one chapter runs top to
bottom in a fresh virtual environment whose install cell installs the package."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest

from gdlbook import colab
from nbtools import MYST_HEADER, ROOT


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory):
    out = tmp_path_factory.mktemp("colab")
    written = colab.build(out, root=ROOT, install="gdlbook")
    return {p.stem: nbformat.read(p, as_version=4) for p in written}


def test_every_chapter_of_the_toc_has_a_notebook(notebooks):
    chapters = sorted(p.stem for p in (ROOT / "chapters").glob("[0-9A-Z][0-9]_*.md"))
    assert sorted(notebooks) == chapters


def test_notebooks_are_valid_and_ask_for_a_gpu(notebooks):
    for name, nb in notebooks.items():
        nbformat.validate(nb)
        assert nb.metadata["accelerator"] == "GPU", name
        assert nb.metadata["kernelspec"]["name"] == "python3", name


def test_the_install_cell_comes_first(notebooks):
    for name, nb in notebooks.items():
        first = nb.cells[0]
        assert first.cell_type == "code" and "%pip install" in first.source, name
        assert first.metadata.get("cellView") == "form", name
        assert sum("%pip install" in c.source for c in nb.cells) == 1, name


def test_no_myst_is_left(notebooks):
    for name, nb in notebooks.items():
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                assert colab.check_plain(cell.source) == [], (name, cell.source[:200])
                assert "{glue" not in cell.source and "{cite" not in cell.source, name
                assert not re.search(r"^\s*:(?:class|pyobject|tags):", cell.source, re.M), name


def test_hidden_cells_are_kept_and_folded(notebooks):
    for name, nb in notebooks.items():
        chapter = (ROOT / "chapters" / f"{name}.md").read_text(encoding="utf-8")
        n_hidden = chapter.count(":tags: [remove-cell]")
        folded = [c for c in nb.cells if "remove-cell" in c.metadata.get("tags", [])]
        assert len(folded) == n_hidden, name
        for cell in folded:
            assert cell.metadata["cellView"] == "form" and cell.source.startswith("# @title")
            assert cell.metadata["jupyter"]["source_hidden"] is True


def test_code_is_the_chapters_code(notebooks):
    from gdlbook import records

    for name, nb in notebooks.items():
        source = records.chapter_notebook(ROOT / "chapters" / f"{name}.md")
        ours = [re.sub(r"^# @title .*\n", "", c.source) for c in nb.cells[1:]
                if c.cell_type == "code" and not c.source.startswith("# @title The numbers")]
        assert ours == [c.source for c in records.code_cells(source)], name


def test_citations_literalincludes_and_links(notebooks):
    text = "\n".join(c.source for c in notebooks["03_variational_autoencoders"].cells
                     if c.cell_type == "markdown")
    assert "(Kingma and Welling 2014)" in text
    assert "def pad_and_scale(" in text                    # a {literalinclude} with :pyobject:
    assert "## References" in text and "Auto-Encoding Variational Bayes" in text
    assert "https://gdlbook.github.io/executable-book/chapters/" in text
    widgets = "\n".join(c.source for c in notebooks["03_variational_autoencoders"].cells)
    assert "def redraw" in widgets                         # :start-at: inside a :pyobject:
    # the book's MathJax macros are expanded (Colab does not know them)
    assert not re.search(r"\\E(?![A-Za-z])", "\n".join(
        c.source for nb in notebooks.values() for c in nb.cells if c.cell_type == "markdown"))


def test_glued_numbers_are_shown_by_a_cell_after_their_paragraph(notebooks):
    nb = notebooks["09_transformers"]
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and "`val_loss`" in cell.source:
            follow = nb.cells[i + 1]
            assert follow.cell_type == "code" and "show_glued" in follow.source
            assert '"val_loss"' in follow.source
            break
    else:
        pytest.fail("no paragraph quotes val_loss")


def test_numbers_glued_after_their_paragraph_are_shown_after_the_glue(notebooks):
    cells = notebooks["01_generative_modelling"].cells
    glue_at = next(i for i, c in enumerate(cells) if 'glue("n_sweep"' in c.source)
    quoted_at = next(i for i, c in enumerate(cells)
                     if c.cell_type == "markdown" and "`n_sweep`" in c.source)
    shown_at = next(i for i, c in enumerate(cells)
                    if "show_glued" in c.source and '"n_sweep"' in c.source)
    assert quoted_at < glue_at < shown_at


# --- the conversion of each construct ---------------------------------------------------------

@pytest.fixture
def converter():
    ctx = colab._context(ROOT)
    return colab.Converter(ROOT, "chapters/03_variational_autoencoders", ctx["settings"],
                           ctx["bib"], ctx["titles"], ctx["labels"], ctx["macros"])


def test_roles(converter):
    text = converter.markdown(
        "As {cite:t}`kingma2014auto` show {cite}`kingma2014auto,rezende2014stochastic`, see "
        "{doc}`the GANs <04_gans>`, {doc}`04_gans`, {ref}`ch4-ring` and {ref}`here <ch4-ring>`; "
        "the loss is {glue:text}`val_loss` and $\\E[x]$.")
    assert text.startswith("As Kingma and Welling (2014) show (Kingma and Welling 2014; Rezende")
    assert "[the GANs](https://gdlbook.github.io/executable-book/chapters/04_gans.html)" in text
    assert "[4. Generative adversarial networks](" in text or "[4. " in text
    assert "[here](https://gdlbook.github.io/executable-book/chapters/04_gans.html#ch4-ring)" in text
    assert "`val_loss`" in text and converter.glued == ["val_loss"]
    assert "$\\mathbb{E}[x]$" in text


@pytest.mark.parametrize("bad", ["{ref}`no-such-label`", "{doc}`no_such_page`",
                                 "{cite}`nobody2099`", "{term}`thing`",
                                 "```{figure} x.png\n```"])
def test_unknown_targets_and_constructs_are_errors(converter, bad):
    with pytest.raises(colab.ColabError):
        converter.markdown(bad)


def test_admonitions_become_quotes_and_targets_vanish(converter):
    text = converter.markdown("(my-label)=\n## Title\n\n::::{admonition} Careful\n:class: note\n\n"
                              "A *quoted* {cite}`kingma2014auto` line.\n\n:::{note}\nInner.\n:::\n"
                              "::::\n\nAfter.")
    assert "(my-label)=" not in text
    assert "> **Careful**\n>\n> A *quoted* (Kingma and Welling 2014) line." in text
    assert "> > **Note**" in text and "> > Inner." in text
    assert text.endswith("After.")


def test_plain_code_fences_are_copied_verbatim(converter):
    text = converter.markdown("```\nx = {cite}`not-a-role`\n```\n")
    assert "{cite}`not-a-role`" in text      # inside a code fence nothing is converted


def test_latex_in_references():
    assert colab.latex_to_text("Fran{\\c{c}}ois") == "François"
    assert colab.latex_to_text("{\\L}ukasz") == "Łukasz"
    assert colab.latex_to_text("Bi{\\'n}kowski, Miko{\\l}aj") == "Bińkowski, Mikołaj"
    assert colab.latex_to_text("Sch{\\\"o}lkopf and {B}ayes \\& co") == "Schölkopf and Bayes & co"


def test_same_author_same_year_gets_letters():
    bib = colab.Bibliography.load(ROOT)
    years = {bib.year("foster2023generative"), bib.year("foster2023notebooks")}
    assert years == {"2023a", "2023b"}
    assert bib.year("kingma2014auto") == "2014"


def test_system_packages_of_the_front_matter_go_in_the_install_cell(tmp_path):
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    shutil.copy(ROOT / "references.bib", tmp_path / "references.bib")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: chapters/01_music\n")
    (tmp_path / "chapters").mkdir()
    header = MYST_HEADER.replace("kernelspec:", "colab_apt: [fluidsynth]\nkernelspec:")
    (tmp_path / "chapters" / "01_music.md").write_text(
        header + "\n# 1. Music\n\n```{code-cell} ipython3\nx = 1\n```\n")
    nb = colab.convert(tmp_path / "chapters" / "01_music.md", root=tmp_path, install="gdlbook")
    first = nb.cells[0].source
    assert "apt-get -qq install -y fluidsynth" in first
    assert first.index("apt-get") < first.index("%pip install")


def test_settings_come_from_the_config(tmp_path):
    s = colab.settings(ROOT)
    assert s.colab_url("chapters/01_generative_modelling") == (
        f"https://colab.research.google.com/github/{s.owner_name}/blob/{s.branch}/"
        "chapters/01_generative_modelling.ipynb")
    (tmp_path / "_config.yml").write_text("title: x\n")
    with pytest.raises(colab.ColabError, match="gdlbook_colab"):
        colab.settings(tmp_path)


def test_the_command_line_reports_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert colab.main(["build", "--install", "gdlbook", "--out", str(tmp_path),
                       "chapters/01_generative_modelling.md"]) == 0
    assert (tmp_path / "chapters" / "01_generative_modelling.ipynb").exists()


# --- a Colab run, as near as this machine gets ------------------------------------------------

def test_a_chapter_runs_in_a_fresh_environment(tmp_path, monkeypatch):
    """Chapter 1 in a new virtual environment: Colab's preinstalled packages stand in as this
    environment's packages *without* gdlbook; the notebook's own first cell installs gdlbook
    (from a wheel of this checkout instead of GitHub) and the rest runs in the smoke profile."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = Path(subprocess.run([str(python), "-c",
                                   "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  check=True, capture_output=True, text=True).stdout.strip())
    preinstalled = tmp_path / "preinstalled"
    preinstalled.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not re.match(r"(__editable__[._]*)?gdlbook", entry.name, re.I):
            (preinstalled / entry.name).symlink_to(entry)
    (purelib / "colab_preinstalled.pth").write_text(str(preinstalled) + "\n")

    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "gdlbook", src / "gdlbook",
                    ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path / "wheel"), str(src)], check=True)
    wheel = next((tmp_path / "wheel").glob("gdlbook-*.whl"))

    out = tmp_path / "colab"
    colab.build(out, [ROOT / "chapters" / "01_generative_modelling.md"], root=ROOT,
                install=str(wheel))
    nb = nbformat.read(out / "chapters" / "01_generative_modelling.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import gdlbook; print(gdlbook.__file__)"))

    kernels = tmp_path / "jupyter" / "kernels" / "colab-sim"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab stand-in", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.setenv("GDL_PROFILE", "smoke")
    monkeypatch.setenv("GDL_PROGRESS", "off")
    work = tmp_path / "work"
    work.mkdir()

    from nbclient import NotebookClient

    NotebookClient(nb, kernel_name="colab-sim", timeout=600,
                   resources={"metadata": {"path": str(work)}}).execute()
    where = nb.cells[-1].outputs[0]["text"].strip()
    assert where.startswith(str(purelib)), where          # the installed copy, not the checkout
    shown = [o for c in nb.cells if "show_glued" in c.source for o in c.outputs]
    assert shown, "no paragraph numbers were shown"
    text = "\n".join(o.get("data", {}).get("text/markdown", "") for o in shown)
    assert text and "not computed yet" not in text
