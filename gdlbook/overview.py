"""Every chapter's results on one page: the recorded runs read back (the conclusion, chapter 15).

The conclusion compares the models of the book with the figures their chapters measured. It
never types a number in: it reads each chapter's recorded run (``results/NN_name.ipynb``,
:mod:`gdlbook.records`) and takes the values the chapter glued (``gdlbook.glue``), which
myst-nb stores in the executed notebook as outputs named by the glue. The chapters come from
``_toc.yml``, in the book's order, so a chapter added later appears without a change here:

- a chapter with a **fresh** record (its code unchanged since) gives its glued values, profile,
  backend, device and wall time;
- a chapter whose record is **stale**, **broken** or **missing** gives none of them, and says
  why.

:func:`headline_rows` turns that into table rows with a per-chapter *headline*: a short text
whose ``{name}`` fields are glue names of that chapter (``"{val_loss} nats per character"``).
A chapter without a headline, or a field its record lacks, is reported, not guessed.
"""

from __future__ import annotations

import ast
import string
from pathlib import Path

from gdlbook import records

#: Where myst-nb puts a glued value in the executed notebook.
GLUE_PREFIX = "application/papermill.record/"


def toc_chapters(root: Path) -> list[Path]:
    """The chapter files ``_toc.yml`` lists under ``chapters/``, in the book's order."""
    import yaml

    toc = yaml.safe_load((Path(root) / "_toc.yml").read_text(encoding="utf-8"))
    found: list[Path] = []

    def walk(node):
        if isinstance(node, dict):
            entry = node.get("file")
            if isinstance(entry, str) and entry.startswith("chapters/"):
                path = Path(root) / (entry if entry.endswith(".md") else entry + ".md")
                if path not in found:
                    found.append(path)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return found


def chapter_title(chapter: Path) -> str:
    """The chapter's title: its first level-one Markdown heading, without the number."""
    for line in Path(chapter).read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            title = line[2:].strip()
            head, _, rest = title.partition(". ")
            return rest if head.isdigit() and rest else title
    return Path(chapter).stem


def glued_values(nb) -> dict[str, str]:
    """The values a chapter glued, as text, from its executed notebook ``nb``.

    A glued Python string is stored as its ``repr``; it is read back as the string. Values
    glued as rich objects (Markdown, figures) are left out.
    """
    out: dict[str, str] = {}
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        for output in cell.get("outputs", []):
            meta = output.get("metadata", {}).get("scrapbook")
            text = output.get("data", {}).get(GLUE_PREFIX + "text/plain")
            if not meta or text is None:
                continue
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                continue  # the repr of an object, not a literal
            if isinstance(value, (str, int, float)):
                out[meta["name"]] = str(value)
    return out


def chapter_records(root: Path, exclude: tuple[str, ...] = ()) -> list[dict]:
    """Per chapter of the table of contents: title, record state and, when fresh, its run.

    Each dict has ``chapter`` (file name), ``stem``, ``title``, ``state`` (``fresh``,
    ``stale``, ``none`` or ``broken``), and for a fresh record ``values`` (the glued values),
    ``profile``, ``backend``, ``device``, ``wall_s`` and ``date``. Chapters whose stem is in
    ``exclude`` (the page that shows the table) are left out.
    """
    root = Path(root)
    states = {row["chapter"]: row for row in records.status(root)}
    rows = []
    for chapter in toc_chapters(root):
        if chapter.stem in exclude or not chapter.exists():
            continue
        status = states.get(chapter.name, {"state": "none"})
        row = {"chapter": chapter.name, "stem": chapter.stem, "title": chapter_title(chapter),
               "state": status["state"]}
        if status["state"] == "fresh":
            row.update(values=glued_values(status["nb"]),
                       **{k: status[k] for k in ("profile", "backend", "device", "wall_s",
                                                 "date")})
        elif status.get("reason"):
            row["reason"] = status["reason"]
        rows.append(row)
    return rows


STATE_NOTES = {
    "stale": "record stale (the chapter changed since it was recorded)",
    "none": "no recorded run yet",
    "broken": "record unreadable",
}


def fill(template: str, values: dict[str, str]) -> tuple[str, list[str]]:
    """``template`` with its ``{name}`` fields replaced from ``values``; and the names missing."""
    names = [f for _, f, _, _ in string.Formatter().parse(template) if f]
    missing = [n for n in names if n not in values]
    if missing:
        return "", missing
    return template.format(**{n: values[n] for n in names}), []


def headline_rows(rows: list[dict], headlines: dict[str, list[tuple[str, str]]]) -> list[dict]:
    """Table rows: one per (chapter, model) of ``headlines``, one per chapter without any.

    ``headlines`` maps a chapter's stem to ``[(model, template), ...]``. Every row has
    ``title``, ``model``, ``figures`` (the filled template, or why there is none), ``source``
    (which run the figures come from) and ``minutes`` (the recorded chapter's wall time, or
    ``None``).
    """
    out = []
    for row in rows:
        fresh = row["state"] == "fresh"
        source = (f"recorded {row['profile']} run, {row['backend']}, {row['date'][:10]}"
                  if fresh else STATE_NOTES.get(row["state"], row["state"]))
        minutes = row["wall_s"] / 60 if fresh else None
        entries = headlines.get(row["stem"]) or [("", "")]
        for model, template in entries:
            if not fresh:
                figures = "—"
            elif not template:
                figures = "no headline chosen for this chapter yet"
            else:
                figures, missing = fill(template, row["values"])
                if missing:
                    figures = f"not in this record: {', '.join(missing)}"
            out.append({"stem": row["stem"], "title": row["title"], "model": model,
                        "figures": figures, "source": source, "minutes": minutes,
                        "state": row["state"]})
    return out
