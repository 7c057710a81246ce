"""Chapters as notebook tests.

    python tests/nbtools.py prepare                 # chapters/*.md -> tests/_nbval/*.ipynb
    python tests/nbtools.py refresh-golden [CH...]  # re-record golden outputs (smoke profile)

Chapters are jupytext MyST notebooks without outputs. ``prepare`` converts each to ``.ipynb`` for
nbval and fills the cells tagged ``golden`` with the outputs recorded in
``tests/golden/<chapter>.json``, tagging them ``nbval-check-output``: nbval (in ``--nbval-lax``
mode) then runs every cell, fails on any error (the hidden assertion cells included), and compares
the golden cells' fresh outputs with the recorded ones. A golden cell whose source changed since
it was recorded fails ``prepare`` with a message saying how to refresh it.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"
GOLDEN = ROOT / "tests" / "golden"
OUT = ROOT / "tests" / "_nbval"
GOLDEN_TAG = "golden"
#: The header every chapter starts with (jupytext MyST notebook + kernelspec).
MYST_HEADER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""
CHECK_TAG = "nbval-check-output"


class GoldenError(RuntimeError):
    pass


def chapters() -> list[Path]:
    return sorted(CHAPTERS.glob("[0-9A-Z][0-9]_*.md"))


def golden_cells(nb) -> list:
    return [c for c in nb.cells
            if c.cell_type == "code" and GOLDEN_TAG in c.get("metadata", {}).get("tags", [])]


def golden_path(chapter: Path) -> Path:
    return GOLDEN / f"{chapter.stem}.json"


def _clean_outputs(outputs) -> list:
    out = []
    for o in outputs:
        o = copy.deepcopy(dict(o))
        o.pop("execution_count", None)
        if o.get("output_type") == "execute_result":
            o["data"] = {k: v for k, v in o["data"].items() if k == "text/plain"}
            o["metadata"] = {}
        out.append(o)
    return out


def prepare(chapter: Path, out_dir: Path = OUT) -> Path:
    """Convert one chapter to a notebook with its golden outputs in place."""
    nb = jupytext.read(chapter)
    cells = golden_cells(nb)
    if cells:
        gpath = golden_path(chapter)
        if not gpath.exists():
            raise GoldenError(f"{chapter.name}: {len(cells)} golden cell(s) but no {gpath}; "
                              f"record them with `make golden CHAPTERS={chapter}`")
        recorded = json.loads(gpath.read_text())["cells"]
        if len(recorded) != len(cells):
            raise GoldenError(f"{chapter.name}: {len(cells)} golden cells, {len(recorded)} recorded "
                              f"in {gpath.name}; refresh with `make golden CHAPTERS={chapter}`")
        for cell, rec in zip(cells, recorded):
            if cell.source.strip() != rec["source"].strip():
                raise GoldenError(
                    f"{chapter.name}: golden cell changed since it was recorded:\n{cell.source}\n"
                    f"refresh with `make golden CHAPTERS={chapter}` if the change is deliberate")
            cell.outputs = [nbformat.from_dict(o) for o in rec["outputs"]]
            cell.execution_count = 1
            cell.metadata.setdefault("tags", []).append(CHECK_TAG)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{chapter.stem}.ipynb"
    nbformat.write(nb, target)
    return target


def refresh_golden(chapter: Path) -> Path:
    """Execute ``chapter`` (smoke profile) and record the outputs of its golden cells."""
    from nbclient import NotebookClient

    os.environ.setdefault("GDL_PROFILE", "smoke")
    nb = jupytext.read(chapter)
    NotebookClient(nb, timeout=1800, kernel_name="python3",
                   resources={"metadata": {"path": str(chapter.parent)}}).execute()
    cells = golden_cells(nb)
    data = {"chapter": chapter.name,
            "note": "outputs of the cells tagged 'golden', smoke profile; refresh: make golden",
            "cells": [{"source": c.source, "outputs": _clean_outputs(c.outputs)} for c in cells]}
    GOLDEN.mkdir(parents=True, exist_ok=True)
    gpath = golden_path(chapter)
    gpath.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return gpath


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("command", choices=["prepare", "refresh-golden"])
    ap.add_argument("chapters", nargs="*", type=Path)
    args = ap.parse_args(argv)
    targets = [p.resolve() for p in args.chapters] or chapters()
    if args.command == "prepare":
        for old in OUT.glob("*.ipynb") if OUT.exists() else []:
            old.unlink()
        try:
            for ch in targets:
                print(f"prepared {prepare(ch).relative_to(ROOT)}")
        except GoldenError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    else:
        for ch in targets:
            print(f"recorded {refresh_golden(ch).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
