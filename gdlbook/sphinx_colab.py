"""The "Open in Colab" badge at the top of each chapter page of the HTML book.

A Sphinx extension (``_config.yml``: ``sphinx.extra_extensions``). Every chapter page (the
notebooks under ``chapters/``) gets, under its title, a badge linking to the notebook
:mod:`gdlbook.colab` generates from it, on the branch named in ``_config.yml``
(``sphinx.config.gdlbook_colab``). sphinx-book-theme's own Colab launch button cannot serve: it
links to the page's source file, a ``.md`` that Colab does not open.
"""

from __future__ import annotations

import html
import re

from .colab import BADGE_IMAGE, Settings

BADGE_CLASS = "gdlbook-colab-badge"


def badge_html(url: str) -> str:
    return (f'<p class="{BADGE_CLASS}"><a href="{html.escape(url)}" target="_blank" '
            f'rel="noopener"><img alt="Open In Colab" src="{BADGE_IMAGE}"/></a></p>')


def _add_badge(app, pagename, templatename, context, doctree):
    block = app.config.gdlbook_colab or {}
    if not block or not context.get("body") or not pagename.startswith("chapters/"):
        return
    badge = badge_html(Settings.from_block(block).colab_url(pagename))
    body, n = re.subn(r"(</h1>)", lambda m: m.group(1) + badge, context["body"], count=1)
    context["body"] = body if n else badge + context["body"]


def setup(app):
    app.add_config_value("gdlbook_colab", {}, "html")
    app.connect("html-page-context", _add_badge)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
