"""Colab notebooks of the chapters: what the "Open in Colab" badge of each page opens.

A chapter is a jupytext MyST Markdown file; Colab opens ``.ipynb`` files and renders plain
Markdown. ``make colab`` (``python -m gdlbook.colab build``) turns every chapter of ``_toc.yml``
into ``_build/colab/chapters/NN_name.ipynb``:

- a first cell installs the book's package at the commit the page was built from (and the system
  packages a chapter names in its front matter under ``colab_apt``), and nothing Colab already
  has: pip keeps the Keras, TensorFlow and NumPy Colab ships when they satisfy ``gdlbook``;
- MyST becomes Markdown: ``{literalinclude}`` becomes the included source as a code listing,
  ``{cite}`` author–year text with the list of references at the end, ``{doc}`` and ``{ref}``
  links to the online book, ``{glue:text}`` the glued name in code type, followed by a form cell
  that shows the paragraph with the values of the run, admonitions quoted blocks, and the book's
  MathJax macros are expanded; :func:`check_plain` finds any MyST left over;
- the cells the online book hides (checks, glue) are kept, folded as Colab forms with a title;
- the notebook asks for a GPU runtime.

Where the notebooks are published (repository, branch) and where the online book lives are set
once, in ``_config.yml`` under ``sphinx.config.gdlbook_colab``; the badge of each page
(:mod:`gdlbook.sphinx_colab`) reads the same block.

    python -m gdlbook.colab build                      # all chapters -> _build/colab
    python -m gdlbook.colab build --install /path/to/checkout-or-wheel chapters/01_*.md
"""

from __future__ import annotations

import argparse
import ast
import json
import posixpath
import re
import subprocess
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from . import records

#: Where ``make colab`` writes; the layout under it is the repository's (``chapters/...``).
DEFAULT_OUT = Path("_build") / "colab"
#: The Colab notebook metadata: a GPU runtime, Python 3.
NOTEBOOK_METADATA = {
    "accelerator": "GPU",
    "colab": {"provenance": [], "gpuType": "T4", "toc_visible": True},
    "kernelspec": {"name": "python3", "display_name": "Python 3"},
    "language_info": {"name": "python"},
}
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"


class ColabError(ValueError):
    """A chapter that cannot be turned into a Colab notebook (unknown MyST, missing target)."""


# --- settings ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    """The ``gdlbook_colab`` block of ``_config.yml``."""

    repository: str            # https://github.com/OWNER/NAME
    branch: str                # the branch that holds the generated notebooks
    book_url: str              # the published HTML book, ending in "/"

    @property
    def owner_name(self) -> str:
        m = re.fullmatch(r"https://github\.com/([^/]+/[^/]+?)(?:\.git)?/?", self.repository)
        if not m:
            raise ColabError(f"gdlbook_colab.repository must be https://github.com/OWNER/NAME; "
                             f"got {self.repository!r}")
        return m.group(1)

    def colab_url(self, docname: str) -> str:
        """The Colab address of the notebook generated from ``docname`` (e.g. chapters/01_x)."""
        return (f"https://colab.research.google.com/github/{self.owner_name}/blob/"
                f"{self.branch}/{docname}.ipynb")

    def page_url(self, docname: str, anchor: str = "") -> str:
        return f"{self.book_url}{docname}.html" + (f"#{anchor}" if anchor else "")

    def install_spec(self, commit: str) -> str:
        return f"gdlbook @ git+{self.repository.rstrip('/')}.git@{commit}"

    @classmethod
    def from_block(cls, block: dict | None) -> "Settings":
        """The settings of a ``gdlbook_colab`` block (as the Sphinx config also receives it)."""
        if not block:
            raise ColabError("_config.yml has no sphinx.config.gdlbook_colab block "
                             "(repository, branch, book_url)")
        missing = [k for k in ("repository", "branch", "book_url") if not block.get(k)]
        if missing:
            raise ColabError(f"_config.yml: gdlbook_colab lacks {', '.join(missing)}")
        book_url = str(block["book_url"])
        return cls(str(block["repository"]), str(block["branch"]),
                   book_url if book_url.endswith("/") else book_url + "/")


def _config(root: Path) -> dict:
    import yaml

    return yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8")) or {}


def settings(root: Path | None = None) -> Settings:
    root = root or records.book_root()
    return Settings.from_block(
        (_config(root).get("sphinx", {}).get("config", {}) or {}).get("gdlbook_colab"))


def toc_documents(root: Path) -> list[str]:
    """The docnames of ``_toc.yml``, in its order."""
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    names = [toc["root"]]
    for part in toc.get("parts", []):
        names += [c["file"] for c in part.get("chapters", [])]
    return names


def toc_chapters(root: Path) -> list[str]:
    """The docnames of ``_toc.yml`` that are notebooks (they have code cells)."""
    return [n for n in toc_documents(root)
            if "```{code-cell}" in (root / f"{n}.md").read_text(encoding="utf-8")]


# --- bibliography ------------------------------------------------------------------------------

_ACCENTS = {"'": "\u0301", '"': "\u0308", "`": "\u0300", "^": "\u0302", "~": "\u0303",
            "c": "\u0327", "v": "\u030c", "=": "\u0304", ".": "\u0307", "u": "\u0306",
            "H": "\u030b"}
_LETTERS = {"L": "Ł", "l": "ł", "i": "ı", "o": "ø", "O": "Ø", "ss": "ß", "ae": "æ", "AE": "Æ"}


def latex_to_text(s: str) -> str:
    """The BibTeX subset of LaTeX the book's references use, as Unicode text."""
    s = re.sub(r"\\url\{([^}]*)\}", r"\1", s)
    s = re.sub(r"\\(['\"`^~=.])\{?([A-Za-z])\}?",
               lambda m: m.group(2) + _ACCENTS[m.group(1)], s)
    s = re.sub(r"\\([cvuH])\{([A-Za-z])\}", lambda m: m.group(2) + _ACCENTS[m.group(1)], s)
    s = re.sub(r"\\(ss|ae|AE|[LloOi])(?![A-Za-z])\s?", lambda m: _LETTERS[m.group(1)], s)
    s = s.replace("\\&", "&").replace("--", "–").replace("~", " ")
    s = s.replace("{", "").replace("}", "")
    return unicodedata.normalize("NFC", s)


@dataclass
class Bibliography:
    entries: dict
    cited: list[str] = field(default_factory=list)
    _suffixes: dict | None = None

    @classmethod
    def load(cls, root: Path) -> "Bibliography":
        from pybtex.database import parse_file

        files = _config(root).get("bibtex_bibfiles", ["references.bib"])
        entries: dict = {}
        for name in files:
            entries.update(parse_file(str(root / name)).entries)
        return cls(entries)

    def _entry(self, key: str):
        if key not in self.entries:
            raise ColabError(f"{{cite}} of an unknown reference: {key}")
        if key not in self.cited:
            self.cited.append(key)
        return self.entries[key]

    @staticmethod
    def _people(entry) -> list:
        return entry.persons.get("author") or entry.persons.get("editor") or []

    def names(self, key: str) -> str:
        """"Foster", "Kingma and Welling", "Ho et al." (or the organisation, or the title)."""
        return self._names_of(self._entry(key))

    def _names_of(self, entry) -> str:
        people = self._people(entry)
        last = [latex_to_text(" ".join(p.prelast_names + p.last_names)) for p in people]
        last = [n[0].upper() + n[1:] if n else n for n in last]
        if not last:
            return latex_to_text(entry.fields.get("title", entry.key))
        if len(last) == 1:
            return last[0]
        if len(last) == 2:
            return f"{last[0]} and {last[1]}"
        return f"{last[0]} et al."

    def year(self, key: str) -> str:
        """The year, with a letter when the same names have several works that year (2023a)."""
        year = self._entry(key).fields.get("year", "n.d.")
        if self._suffixes is None:
            groups: dict = {}
            for k, e in self.entries.items():
                groups.setdefault((self._names_of(e), e.fields.get("year", "n.d.")), []).append(
                    (latex_to_text(e.fields.get("title", k)).lower(), k))
            self._suffixes = {k: "abcdefghijklmnopqrstuvwxyz"[i] for group in groups.values()
                              if len(group) > 1 for i, (_, k) in enumerate(sorted(group))}
        return year + self._suffixes.get(key, "")

    def cite(self, keys: str, textual: bool = False) -> str:
        keys_ = [k.strip() for k in keys.split(",") if k.strip()]
        if textual:
            return "; ".join(f"{self.names(k)} ({self.year(k)})" for k in keys_)
        return "(" + "; ".join(f"{self.names(k)} {self.year(k)}" for k in keys_) + ")"

    def reference(self, key: str) -> str:
        """One line of the reference list, in Markdown."""
        entry = self.entries[key]
        f = {k: latex_to_text(v) for k, v in entry.fields.items()}
        people = self._people(entry)
        who = ", ".join(latex_to_text(" ".join(p.first_names + p.middle_names + p.prelast_names
                                               + p.last_names)) for p in people[:6])
        if len(people) > 6:
            who += " et al."
        where = (f.get("journal") or f.get("booktitle") or f.get("howpublished")
                 or f.get("publisher") or f.get("school") or f.get("institution") or "")
        if entry.type == "book" and f.get("edition"):
            where = f"{_ordinal(f['edition'])} edition, {where}".rstrip(", ")
        parts = [f"{who} ({self.year(key)})." if who else f"({self.year(key)}).",
                 f"*{f.get('title', key)}*."]
        if where:
            parts.append(where.rstrip(".") + ".")
        url = f.get("url") or (f"https://doi.org/{f['doi']}" if f.get("doi") else "")
        if url and url not in where:
            parts.append(f"<{url}>")
        return " ".join(parts)


def _ordinal(n: str) -> str:
    if not n.isdigit():
        return n
    k = int(n)
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


# --- cross-references --------------------------------------------------------------------------

_TARGET = re.compile(r"^\(([\w.:-]+)\)=\s*$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")


def _strip_md(s: str) -> str:
    return re.sub(r"[*_`]", "", s)


def document_index(root: Path, docnames: list[str]) -> tuple[dict, dict]:
    """Titles of the pages and ``{ref}`` targets: ``{docname: title}``, ``{label: (docname,
    section title)}`` for every ``(label)=`` line of the book's pages."""
    titles: dict[str, str] = {}
    labels: dict[str, tuple[str, str]] = {}
    for doc in docnames:
        lines = (root / f"{doc}.md").read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            h = _HEADING.match(line)
            if h and doc not in titles and len(h.group(1)) == 1:
                titles[doc] = _strip_md(h.group(2))
            t = _TARGET.match(line)
            if t:
                title = t.group(1)
                for nxt in lines[i + 1:i + 4]:
                    m = _HEADING.match(nxt)
                    if m:
                        title = _strip_md(m.group(2))
                        break
                labels[t.group(1)] = (doc, title)
    return titles, labels


# --- MyST -> Markdown ---------------------------------------------------------------------------

_ROLE = re.compile(r"\{([a-z]+(?::[a-z]+)?)\}`([^`]*)`")
_FENCE_OPEN = re.compile(r"^(\s*)(`{3,}|:{3,})\{([\w:-]+)\}\s*(.*?)\s*$")
#: What is left of MyST when a conversion missed something: a role, a directive, a target.
_MYST_LEFT = re.compile(r"\{[a-z]+(?::[a-z]+)?\}`|^\s*(?:`{3,}|:{3,})\{|^\([\w.:-]+\)=\s*$",
                        re.MULTILINE)


def check_plain(markdown: str) -> list[str]:
    """The MyST roles, directives and targets left in ``markdown`` (empty when it is plain)."""
    return [m.group(0) for m in _MYST_LEFT.finditer(markdown)]


def python_object(path: Path, name: str) -> str:
    """The source of ``name`` (a function, a class, or ``Class.method``) in the file ``path``,
    as Sphinx's ``:pyobject:`` option selects it."""
    text = path.read_text(encoding="utf-8")
    nodes = ast.parse(text).body
    node = None
    for part in name.split("."):
        node = next((n for n in nodes if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                        ast.ClassDef)) and n.name == part), None)
        if node is None:
            raise ColabError(f"{path.name} has no {name}")
        nodes = node.body
    lines = text.splitlines()
    start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
    body = lines[start:node.end_lineno]
    indent = min(len(s) - len(s.lstrip()) for s in body if s.strip())
    return "\n".join(s[indent:] for s in body)


@dataclass
class Converter:
    """Turns the Markdown cells of one chapter into plain Markdown."""

    root: Path
    docname: str
    settings: Settings
    bib: Bibliography
    titles: dict
    labels: dict
    macros: dict
    glued: list[str] = field(default_factory=list)

    # roles
    def _role(self, m: re.Match) -> str:
        role, text = m.group(1), m.group(2)
        if role in ("cite", "cite:p", "cite:ps"):
            return self.bib.cite(text)
        if role in ("cite:t", "cite:ts"):
            return self.bib.cite(text, textual=True)
        explicit = re.fullmatch(r"(.*?)\s*<([^>]+)>", text, re.DOTALL)
        label, target = (explicit.group(1), explicit.group(2)) if explicit else (None, text)
        if role == "doc":
            doc = posixpath.normpath(posixpath.join(posixpath.dirname(self.docname), target))
            if doc not in self.titles:
                raise ColabError(f"{self.docname}: {{doc}} to an unknown page: {target}")
            return f"[{label or self.titles[doc]}]({self.settings.page_url(doc)})"
        if role == "ref":
            if target not in self.labels:
                raise ColabError(f"{self.docname}: {{ref}} to an unknown label: {target}")
            doc, title = self.labels[target]
            return f"[{label or title}]({self.settings.page_url(doc, target)})"
        if role == "glue:text" or role == "glue":
            name = text.split(":")[0]
            self.glued.append(name)
            return f"`{name}`"
        raise ColabError(f"{self.docname}: no Colab form for the role {{{role}}}")

    def inline(self, text: str) -> str:
        text = _ROLE.sub(self._role, text)
        for name, expansion in self.macros.items():
            text = re.sub(rf"\\{name}(?![A-Za-z])", lambda _m, e=expansion: e, text)
        return text

    # directives
    def _directive(self, name: str, argument: str, options: dict, body: list[str]) -> list[str]:
        if name == "literalinclude":
            path = (self.root / posixpath.dirname(self.docname) / argument).resolve()
            if "pyobject" in options:
                source = python_object(path, options["pyobject"])
            else:
                source = path.read_text(encoding="utf-8")
            lines = source.splitlines()
            if "start-at" in options:
                lines = lines[next(i for i, s in enumerate(lines) if options["start-at"] in s):]
            if "end-at" in options:
                lines = lines[:next(i for i, s in enumerate(lines) if options["end-at"] in s) + 1]
            rel = path.relative_to(self.root).as_posix()
            what = f"`{options['pyobject']}` in " if "pyobject" in options else ""
            lang = options.get("language", "python" if path.suffix == ".py" else "")
            return [f"*{what}`{rel}`:*", "", f"```{lang}", *lines, "```"]
        if name == "bibliography":
            return []          # the references of the notebook are listed at its end
        if name == "glue:md":
            if argument == "run_provenance":
                return ["This notebook runs the chapter itself, in the profile that "
                        "`GDL_PROFILE` selects (by default `full` on a GPU runtime and `smoke` "
                        "on a CPU); its last cell says which run it was."]
            self.glued.append(argument)
            return [f"`{argument}`"]
        if name in ("admonition", "note", "warning", "tip", "important", "hint", "caution",
                    "seealso", "attention", "danger", "error"):
            title = argument if name == "admonition" else name.capitalize()
            inner = "\n".join(self.markdown_lines(body)).strip("\n").splitlines()
            quoted = [f"> **{self.inline(title)}**", ">"] if title else []
            return quoted + [f"> {s}" if s.strip() else ">" for s in inner]
        raise ColabError(f"{self.docname}: no Colab form for the directive {{{name}}}")

    def markdown_lines(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        i = 0
        fence: str | None = None          # inside a plain code fence: copy verbatim
        while i < len(lines):
            line = lines[i]
            if fence is not None:
                out.append(line)
                if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                    fence = None
                i += 1
                continue
            opened = _FENCE_OPEN.match(line)
            if opened:
                marker, name, argument = opened.group(2), opened.group(3), opened.group(4)
                i += 1
                options: dict[str, str] = {}
                while i < len(lines) and re.match(r"^\s*:[\w-]+:", lines[i]):
                    key, _, value = lines[i].strip()[1:].partition(":")
                    options[key] = value.strip()
                    i += 1
                body: list[str] = []
                depth = 0
                while i < len(lines):
                    s = lines[i].strip()
                    if re.match(rf"^{re.escape(marker[0])}{{3,}}\{{", s) and marker[0] == ":" \
                            and len(s) - len(s.lstrip(":")) == len(marker):
                        depth += 1
                    if s == marker or (s and set(s) == {marker[0]} and len(s) >= len(marker)
                                       and marker[0] == "`"):
                        if depth == 0:
                            break
                        depth -= 1
                    body.append(lines[i])
                    i += 1
                else:
                    raise ColabError(f"{self.docname}: the {{{name}}} block is not closed")
                i += 1
                out += self._directive(name, argument, options, body)
                continue
            plain = re.match(r"^\s*(`{3,}|~{3,})", line)
            if plain:
                fence = plain.group(1)
                out.append(line)
                i += 1
                continue
            if _TARGET.match(line):
                i += 1
                continue
            out.append(self.inline(line))
            i += 1
        return out

    def markdown(self, source: str) -> str:
        return "\n".join(self.markdown_lines(source.splitlines())).strip("\n")


# --- notebooks ---------------------------------------------------------------------------------

def install_cell(spec: str, apt: list[str]) -> dict:
    import nbformat

    lines = ["# @title Install the book's package (run this cell first)",
             "# gdlbook at the version of the online page; pip keeps what Colab already has.",
             f"%pip install --quiet {_shell_quote(spec)}"]
    if apt:
        lines.insert(2, "!apt-get -qq update && apt-get -qq install -y "
                        + " ".join(_shell_quote(p) for p in apt))
    cell = nbformat.v4.new_code_cell("\n".join(lines))
    cell.metadata["cellView"] = "form"
    return cell


def _shell_quote(s: str) -> str:
    return s if re.fullmatch(r"[\w./:@+=-]+", s) else "'" + s.replace("'", "'\"'\"'") + "'"


_HIDDEN_TITLES = {
    "remove-cell": "A check or glue cell that the online book hides (double-click to see it)",
    "remove-input": "Code that the online book hides; its output is shown",
    "hide-input": "Code that the online book folds; its output is shown",
    "hide-cell": "A cell that the online book folds",
}


def glue_cell(names: list[str]) -> dict:
    import nbformat

    listed = ", ".join(f'"{n}"' for n in dict.fromkeys(names))
    cell = nbformat.v4.new_code_cell(
        "# @title The numbers the text above quotes, from this run\n"
        f"import gdlbook\ngdlbook.show_glued([{listed}])")
    cell.metadata["cellView"] = "form"
    return cell


def convert(chapter: Path, *, root: Path | None = None, install: str | None = None,
            commit: str | None = None, context: dict | None = None):
    """The Colab notebook of ``chapter`` (an ``nbformat`` notebook)."""
    import nbformat

    root = root or records.book_root(chapter.parent)
    ctx = context or _context(root)
    docname = chapter.resolve().relative_to(root.resolve()).with_suffix("").as_posix()
    conv = Converter(root, docname, ctx["settings"], ctx["bib"], ctx["titles"], ctx["labels"],
                     ctx["macros"])
    source = records.chapter_notebook(chapter, root)
    front = source.metadata.get("colab_apt") or []
    if install is None:
        install = ctx["settings"].install_spec(commit or _head(root))
    cells = [install_cell(install, list(front))]
    # A paragraph's numbers are shown once the cell that glues the last of them has run.
    glued_at = {}
    for i, cell in enumerate(source.cells):
        if cell.cell_type == "code":
            for name in re.findall(r"glue\(\s*[\"']([\w.-]+)[\"']", cell.source):
                glued_at.setdefault(name, i)
    pending: dict[int, list[str]] = {}
    for i, cell in enumerate(source.cells):
        if cell.cell_type == "markdown":
            conv.glued = []
            text = conv.markdown(cell.source)
            if not text.strip():
                continue
            cells.append(nbformat.v4.new_markdown_cell(text))
            if conv.glued:
                after = max([glued_at.get(n, -1) for n in conv.glued] + [i])
                if after == i:
                    cells.append(glue_cell(conv.glued))
                else:
                    pending.setdefault(after, []).extend(conv.glued)
        elif cell.cell_type == "code":
            new = nbformat.v4.new_code_cell(cell.source)
            tags = list(cell.metadata.get("tags", []))
            if tags:
                new.metadata["tags"] = tags
            hidden = next((t for t in tags if t in _HIDDEN_TITLES), None)
            if hidden:
                new.source = f"# @title {_HIDDEN_TITLES[hidden]}\n" + cell.source
                new.metadata["cellView"] = "form"
                if hidden in ("remove-cell", "hide-cell"):
                    new.metadata["jupyter"] = {"source_hidden": True}
            cells.append(new)
            if i in pending:
                cells.append(glue_cell(pending.pop(i)))
    if conv.bib.cited:
        refs = [f"- {conv.bib.reference(k)}" for k in
                sorted(conv.bib.cited, key=lambda k: (conv.bib.names(k), conv.bib.year(k)))]
        cells.append(nbformat.v4.new_markdown_cell("## References\n\n" + "\n".join(refs)))
        conv.bib.cited.clear()
    nb = nbformat.v4.new_notebook(cells=cells, metadata=json.loads(json.dumps(NOTEBOOK_METADATA)))
    nb.metadata["colab"]["name"] = chapter.with_suffix(".ipynb").name
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "markdown" and check_plain(cell.source):
            raise ColabError(f"{docname}: MyST left after conversion: {check_plain(cell.source)}")
    return nb


def _head(root: Path) -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as err:
        raise ColabError("no git commit to install the package from; pass --install") from err


def _context(root: Path) -> dict:
    titles, labels = document_index(root, toc_documents(root))
    macros = (_config(root).get("sphinx", {}).get("config", {}).get("mathjax3_config", {})
              .get("tex", {}).get("macros", {}))
    return {"settings": settings(root), "bib": Bibliography.load(root), "titles": titles,
            "labels": labels, "macros": {k: v for k, v in macros.items() if isinstance(v, str)}}


def build(out: Path = DEFAULT_OUT, chapters: list[Path] | None = None, *,
          root: Path | None = None, install: str | None = None) -> list[Path]:
    """Write the Colab notebook of each chapter (default: every notebook of ``_toc.yml``) under
    ``out``, in the repository's layout; returns the paths written."""
    import nbformat

    root = root or records.book_root()
    ctx = _context(root)
    if not chapters:
        chapters = [root / f"{d}.md" for d in toc_chapters(root) if d.startswith("chapters/")]
    commit = None if install else _head(root)
    written = []
    for chapter in chapters:
        chapter = Path(chapter).resolve()
        nb = convert(chapter, root=root, install=install, commit=commit, context=ctx)
        target = Path(out) / chapter.relative_to(root.resolve()).with_suffix(".ipynb")
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(target))
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gdlbook.colab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write the Colab notebooks")
    b.add_argument("chapters", nargs="*", type=Path, help="default: every chapter of _toc.yml")
    b.add_argument("--out", type=Path, default=DEFAULT_OUT)
    b.add_argument("--install", default=None,
                   help="what the first cell installs instead of the repository at HEAD "
                        "(a local checkout or wheel, for a test)")
    args = parser.parse_args(argv)
    try:
        written = build(args.out, args.chapters, install=args.install)
    except ColabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
