"""Shared fixtures, and the per-chapter time report of the notebook tests."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib
import pytest

# Agg for this process only: an MPLBACKEND variable would reach the kernels nbval starts, whose
# figures (inline, for the book) would then never be drawn.
matplotlib.use("Agg")

_chapter_times: dict[str, float] = defaultdict(float)
_chapter_failed: set[str] = set()


def pytest_addoption(parser):
    parser.addoption("--nb-cache", default=None, metavar="DIR",
                     help="store the chapters nbval executed in the jupyter-cache at DIR, "
                          "for the book build to reuse (see tests/nbcache.py)")


def pytest_configure(config):
    if config.getoption("--nb-cache", default=None):
        from nbcache import NbCachePlugin

        plugin = NbCachePlugin(Path(config.getoption("--nb-cache")), _chapter_times,
                               _chapter_failed)
        config.pluginmanager.register(plugin, "nbcache")


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _chapter_times[Path(path).stem] += report.duration
        if report.failed:
            _chapter_failed.add(Path(path).stem)


def pytest_terminal_summary(terminalreporter):
    if not _chapter_times:
        return
    tr = terminalreporter
    tr.section("chapter smoke-run times (nbval, kernel start included)")
    for name, secs in sorted(_chapter_times.items()):
        flag = "  FAILED" if name in _chapter_failed else ""
        tr.write_line(f"{name:<40} {secs:7.1f} s{flag}")
    tr.write_line(f"{'total':<40} {sum(_chapter_times.values()):7.1f} s")


@pytest.fixture
def isolated_data(tmp_path, monkeypatch):
    """An empty data dir and cache, offline: the registry sees only what a test puts there."""
    data_dir = tmp_path / "data"
    cache = tmp_path / "cache"
    data_dir.mkdir()
    monkeypatch.setenv("GDL_DATA_DIR", str(data_dir))
    monkeypatch.setenv("GDL_CACHE_DIR", str(cache))
    monkeypatch.setenv("GDL_OFFLINE", "1")
    return data_dir


# tests import the notebook tools (tests/nbtools.py) as a plain module
import sys  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
