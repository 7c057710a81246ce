"""Hand the chapters nbval executed to the book build, so ``make test`` runs each chapter once.

``make notebooks`` executes every chapter under nbval; ``make strict-build`` then builds the book
with ``execute_notebooks: cache`` (``_config.yml``), which runs a chapter only when
jupyter-cache holds no executed notebook with the same code. With ``--nb-cache=DIR``, this
pytest plugin (registered by ``tests/conftest.py``) collects the outputs nbval received for each
cell and, for every chapter whose cells all passed, stores the executed notebook in the
jupyter-cache at ``DIR``, exactly as the build would have stored it after running the chapter:
the notebook is read from the chapter's Markdown by myst-nb's own reader (so the build's lookup,
a hash of the code cells and the kernelspec, matches) and the outputs are put into its code cells.

Nothing is cached for a chapter with a failed, skipped or unmatched cell: the build then executes
it itself, as it always could. A cached chapter is the smoke-profile run that nbval just checked,
which is what the smoke build would have produced.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from pathlib import Path

import nbformat
import pytest

from gdlbook import records

from nbtools import CHAPTERS, ROOT


def chapter_notebook(chapter: Path) -> nbformat.NotebookNode:
    """``chapter`` (a jupytext MyST Markdown file) as myst-nb reads it for the build."""
    return records.chapter_notebook(chapter, ROOT)


def cache_executed(chapter: Path, sources: list[str], outputs: list[list], cache_dir: Path,
                   seconds: float) -> str | None:
    """Store ``chapter`` executed by nbval in the jupyter-cache at ``cache_dir`` (see
    :func:`gdlbook.records.cache_outputs`, which the recorded runs use too)."""
    return records.cache_outputs(chapter, sources, outputs, cache_dir, seconds, ROOT)


def figures_not_drawn() -> str | None:
    """The matplotlib backend the kernels inherit when it is not the inline one, else None.

    Under ``MPLBACKEND=Agg`` (say) ``plt.show()`` in a kernel shows nothing, so the executed
    chapters would reach the book without their figures: they must not be cached.
    """
    backend = os.environ.get("MPLBACKEND", "")
    return backend if backend and "inline" not in backend else None


class NbCachePlugin:
    """Collects nbval's per-cell outputs; caches each chapter that passed at the end.

    ``times`` and ``failed`` are the per-chapter run times and failures that ``tests/conftest.py``
    already keeps for its time report (keyed by the notebook's stem).
    """

    def __init__(self, cache_dir: Path, times: dict[str, float], failed: set[str]):
        self.cache_dir = cache_dir
        self.times, self.failed = times, failed
        self.cells: dict[str, dict[int, tuple[str, list]]] = defaultdict(dict)
        self.lines: list[str] = []

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = (yield).get_result()
        path = Path(str(getattr(item, "fspath", "")))
        if path.suffix == ".ipynb" and report.when == "call" and report.passed:
            self.cells[path.stem][item.cell_num] = (item.cell.source,
                                                     list(item.test_outputs or []))

    def pytest_sessionfinish(self, session):
        backend = figures_not_drawn()
        for name, cells in sorted(self.cells.items()):
            chapter = CHAPTERS / (name + ".md")
            if backend:
                reason = f"MPLBACKEND={backend}: its kernel drew no figures"
            elif name in self.failed or not chapter.exists():
                reason = "a cell failed" if name in self.failed else "no such chapter"
            elif sorted(cells) != list(range(len(cells))):
                reason = "cells missing"
            else:
                t0 = time.time()
                ordered = [cells[i] for i in range(len(cells))]
                reason = cache_executed(chapter, [s for s, _ in ordered], [o for _, o in ordered],
                                        self.cache_dir, self.times.get(name, 0.0))
                if reason is None:
                    self.lines.append(f"{chapter.name:<40} cached ({time.time() - t0:.1f} s)")
                    continue
            self.lines.append(f"{chapter.name:<40} not cached: {reason}; the build runs it")
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:            # a pytest-xdist worker: tell the controller
            workeroutput["nbcache_lines"] = self.lines

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error):
        """Under pytest-xdist, each worker caches the chapters it ran; the controller reports."""
        self.lines.extend(getattr(node, "workeroutput", {}).get("nbcache_lines", []))

    def pytest_terminal_summary(self, terminalreporter):
        if self.lines:
            terminalreporter.section(f"executed chapters handed to the build ({self.cache_dir})")
            for line in self.lines:
                terminalreporter.write_line(line)
