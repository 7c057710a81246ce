"""Recorded runs: the book shows chapters executed at a real size, with their provenance.

A chapter run in the ``laptop`` profile takes up to half an hour on a CPU, and a ``full`` run
needs a GPU; the book is built on machines that have neither the time nor the GPU. So a run is
*recorded*: ``make record CHAPTERS=chapters/NN_name.md PROFILE=laptop`` executes the chapter
and stores the executed notebook as ``results/NN_name.ipynb``, with its provenance in the
notebook's metadata (profile, backend, versions, device, wall time, date, commit, and a hash of
the chapter's code cells). ``make book`` then puts every record whose code still matches its
chapter into the build's jupyter-cache, exactly where the build would have stored its own
execution, so the page is the recorded run. A record whose chapter has changed since is *stale*
and never shown: the build executes that chapter itself. ``make records`` lists, per chapter,
whether its record is present, fresh or stale.

    python -m gdlbook.records record chapters/06_normalizing_flows.md --profile laptop
    python -m gdlbook.records status
    python -m gdlbook.records prime _build/.jupyter_cache

Each page also says which run it shows (:mod:`gdlbook.provenance`). A record is at most
:data:`MAX_BYTES`: figures are re-encoded as JPEG when that is smaller, and a record never holds
weights or data. An interrupted or failed recording leaves the previous record untouched.
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import hashlib
import io
import os
import sys
import time
from pathlib import Path

#: The house limit for one file under ``results/``.
MAX_BYTES = 4 * 1024 * 1024
#: Where a record's provenance lives in the executed notebook's metadata.
META_KEY = "gdlbook_record"
#: A PNG larger than this is stored as JPEG when the JPEG is smaller.
PNG_KEEP_BYTES = 60_000


class RecordError(RuntimeError):
    """A recording that failed, or a record that cannot be used."""


def book_root(start: Path | None = None) -> Path:
    """The book's root: the nearest folder above ``start`` (default: here) with ``_config.yml``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_config.yml").exists() and (folder / "chapters").is_dir():
            return folder
    raise RecordError(f"no book (a folder with _config.yml and chapters/) at or above {here}")


def _md_config(root: Path):
    """The MyST parser configuration of the book (its enabled extensions), as the build uses."""
    import yaml
    from myst_parser.config.main import MdParserConfig

    config = yaml.safe_load((root / "_config.yml").read_text())
    extensions = config.get("parse", {}).get("myst_enable_extensions", [])
    return MdParserConfig(enable_extensions=set(extensions))


def chapter_notebook(chapter: Path, root: Path | None = None):
    """``chapter`` (a jupytext MyST Markdown file) as myst-nb reads it for the build."""
    from myst_nb.core.read import read_myst_markdown_notebook

    root = root or book_root(chapter.parent)
    return read_myst_markdown_notebook(chapter.read_text(encoding="utf-8"),
                                       config=_md_config(root), add_source_map=True,
                                       path=str(chapter))


def code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def code_hash(nb) -> str:
    """A hash of a notebook's code cells (what decides whether a record still matches)."""
    h = hashlib.sha256()
    for cell in code_cells(nb):
        h.update(cell.source.strip().encode("utf-8") + b"\n\x00")
    return h.hexdigest()[:16]


def cache_outputs(chapter: Path, sources: list[str], outputs: list[list], cache_dir: Path,
                  seconds: float, root: Path | None = None, *,
                  data: dict | None = None) -> str | None:
    """Store ``chapter`` executed (``outputs`` per code cell) in the jupyter-cache at ``cache_dir``.

    The notebook is the chapter as myst-nb reads it (so the build's lookup, a hash of the code
    cells and the kernelspec, matches) with ``outputs`` put into its code cells; ``sources`` are
    the code cells that produced them, checked against the chapter's. Returns ``None`` when the
    build will find the notebook, else the reason it was not cached.
    """
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    nb = chapter_notebook(chapter, root)
    code = code_cells(nb)
    if len(code) != len(outputs):
        return f"{len(outputs)} cells run, the chapter has {len(code)}"
    for n, (cell, src, outs) in enumerate(zip(code, sources, outputs), start=1):
        if cell.source.strip() != src.strip():
            return f"code cell {n} differs from the one that ran"
        cell.outputs = [nbformat.from_dict(dict(o)) for o in outs]
        cell.execution_count = n
    cache = get_cache(str(cache_dir))
    cache.cache_notebook_bundle(
        CacheBundleIn(nb, str(chapter), data={"execution_seconds": seconds, **(data or {})}),
        check_validity=False, overwrite=True)
    if cache.match_cache_notebook(chapter_notebook(chapter, root)) is None:
        return "the build's lookup does not find it"
    return None


# --- recording -------------------------------------------------------------------------------

def shrink_figures(nb, keep_png: int = PNG_KEEP_BYTES) -> int:
    """Re-encode large PNG outputs as JPEG where that is smaller; returns the bytes saved."""
    from PIL import Image

    saved = 0
    for cell in code_cells(nb):
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            png = data.get("image/png")
            if not png:
                continue
            raw = base64.b64decode(png)
            if len(raw) <= keep_png:
                continue
            img = Image.open(io.BytesIO(raw))
            if img.mode in ("RGBA", "LA", "P"):  # matplotlib's figures: flatten on white
                img = img.convert("RGBA")
                flat = Image.new("RGB", img.size, "white")
                flat.paste(img, mask=img.getchannel("A"))
                img = flat
            buf = io.BytesIO()
            img.convert("RGB").save(buf, "JPEG", quality=88, optimize=True)
            if buf.tell() < len(raw):
                del data["image/png"]
                data["image/jpeg"] = base64.b64encode(buf.getvalue()).decode("ascii")
                saved += len(raw) - buf.tell()
    return saved


def _progress_hook(n_cells: int, t0: float):
    def on_cell_executed(cell, cell_index, execute_reply=None, **_):
        if cell.cell_type == "code":
            print(f"  cell {cell_index + 1:>3}/{n_cells}  {time.time() - t0:7.1f} s", flush=True)
    return on_cell_executed


def record(chapter: Path, profile: str, *, root: Path | None = None,
           results: Path | None = None, timeout: int | None = None) -> Path:
    """Execute ``chapter`` in ``profile`` and store it as ``results/<name>.ipynb``.

    The previous record is replaced only when the run succeeded and the new record fits
    :data:`MAX_BYTES`; a failed or oversized run leaves it as it was.
    """
    import nbformat
    from nbclient import NotebookClient

    from gdlbook import profile as _profile
    from gdlbook import provenance

    chapter = Path(chapter).resolve()
    root = root or book_root(chapter.parent)
    results = results or root / "results"
    profile = _profile.current(profile)
    if not chapter.exists():
        raise RecordError(f"no chapter {chapter}")
    nb = chapter_notebook(chapter, root)
    commit = provenance.commit(root)
    env = {_profile.ENV_VAR: profile, provenance.RECORD_ENV: "1",
           provenance.COMMIT_ENV: commit or "", "GDL_PROGRESS": "summary"}
    old_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits them
    t0 = time.time()
    print(f"recording {chapter.name} in the {profile!r} profile "
          f"({len(code_cells(nb))} code cells)", flush=True)
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(chapter.parent)}},
                                on_cell_executed=_progress_hook(len(nb.cells), t0))
        client.execute()
    except Exception as err:
        raise RecordError(f"{chapter.name} failed after {time.time() - t0:.0f} s; the previous "
                          f"record (if any) is unchanged:\n{err}") from err
    finally:
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    wall = time.time() - t0
    shrink_figures(nb)
    nb.metadata[META_KEY] = {
        "chapter": chapter.relative_to(root).as_posix(),
        "profile": profile,
        **provenance.versions(),
        "device": provenance.device(),
        "wall_s": round(wall, 1),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": commit,
        "code_hash": code_hash(nb),
    }
    text = nbformat.writes(nb)
    size = len(text.encode("utf-8"))
    results.mkdir(parents=True, exist_ok=True)
    target = results / (chapter.stem + ".ipynb")
    if size > MAX_BYTES:
        rejected = target.with_suffix(".rejected.ipynb")
        rejected.write_text(text, encoding="utf-8")
        raise RecordError(f"the record of {chapter.name} is {size / 2**20:.1f} MiB, over the "
                          f"{MAX_BYTES / 2**20:.0f} MiB limit; kept aside as {rejected} (not "
                          "used): shrink its outputs (fewer or smaller figures)")
    tmp = target.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)  # atomic: a reader never sees half a record
    print(f"recorded {target.relative_to(root)}: {size / 1024:.0f} KiB, {wall / 60:.1f} min",
          flush=True)
    return target


# --- using records ---------------------------------------------------------------------------

def load_record(path: Path):
    """A record and its provenance; a malformed one is an error naming the file."""
    import nbformat

    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as err:
        raise RecordError(f"{path} is not a readable notebook: {err}") from err
    meta = nb.metadata.get(META_KEY)
    missing = [k for k in ("chapter", "profile", "backend", "device", "wall_s", "date",
                           "code_hash") if not meta or k not in meta]
    if missing:
        raise RecordError(f"{path} has no provenance ({', '.join(missing)} missing from "
                          f"its metadata['{META_KEY}'])")
    return nb, meta


def status(root: Path | None = None) -> list[dict]:
    """Per chapter: its record's state (``fresh``, ``stale``, ``none``, ``broken``) and facts."""
    root = root or book_root()
    rows = []
    for chapter in sorted((root / "chapters").glob("[0-9A-Z]*.md")):
        path = root / "results" / (chapter.stem + ".ipynb")
        row = {"chapter": chapter.name, "state": "none", "record": None}
        if path.exists():
            row["record"] = path
            try:
                nb, meta = load_record(path)
            except RecordError as err:
                row.update(state="broken", reason=str(err))
            else:
                fresh = meta["code_hash"] == code_hash(chapter_notebook(chapter, root))
                row.update({**meta, "chapter": chapter.name}, nb=nb, size=path.stat().st_size,
                           state="fresh" if fresh else "stale")
        rows.append(row)
    return rows


def prime(cache_dir: Path, root: Path | None = None) -> list[str]:
    """Put every fresh record into the build's jupyter-cache; returns one line per chapter."""
    root = root or book_root()
    lines = []
    for row in status(root):
        name = row["chapter"]
        if row["state"] != "fresh":
            what = {"none": "no record", "stale": "record stale (code changed since)",
                    "broken": "record unusable"}[row["state"]]
            lines.append(f"{name:<40} {what}: the build executes it")
            continue
        chapter = root / "chapters" / name
        label = f"{name:<40} recorded {row['profile']} run of {row['date'][:10]}"
        if _primed(cache_dir, chapter, root) == row["date"]:
            lines.append(label)
            continue
        cells = code_cells(row["nb"])
        reason = cache_outputs(chapter, [c.source for c in cells],
                               [c.get("outputs", []) for c in cells], Path(cache_dir),
                               float(row["wall_s"]), root, data={"record": row["date"]})
        if reason is None:
            # Sphinx re-reads only the sources that changed: mark this one as changed, so an
            # incremental build shows the record in place of the page it built before
            os.utime(chapter)
        lines.append(label if reason is None else f"{name:<40} not used: {reason}")
    return lines


def _primed(cache_dir: Path, chapter: Path, root: Path) -> str | None:
    """The date of the record the cache already holds for ``chapter``'s code, if any."""
    from jupyter_cache import get_cache

    if not Path(cache_dir).exists():
        return None
    try:
        found = get_cache(str(cache_dir)).match_cache_notebook(chapter_notebook(chapter, root))
    except KeyError:
        return None
    return (found.data or {}).get("record")


def _table(rows: list[dict]) -> str:
    out = [f"{'chapter':<40} {'record':<7} {'profile':<8} {'backend':<11} {'wall':>8}  date"]
    for r in rows:
        if r["state"] in ("fresh", "stale"):
            out.append(f"{r['chapter']:<40} {r['state']:<7} {r['profile']:<8} "
                       f"{r['backend']:<11} {r['wall_s'] / 60:6.1f} m  {r['date'][:10]}"
                       f"  {r.get('size', 0) / 1024:.0f} KiB")
        else:
            out.append(f"{r['chapter']:<40} {r['state']:<7}"
                       + (f"  {r['reason']}" if r.get("reason") else ""))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gdlbook.records", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="execute chapters and store them under results/")
    rec.add_argument("chapters", nargs="+", type=Path)
    rec.add_argument("--profile", default=None, help="smoke, laptop or full (default: as "
                     "GDL_PROFILE, else by the hardware)")
    rec.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: none)")
    sub.add_parser("status", help="list each chapter's record: fresh, stale or none")
    pr = sub.add_parser("prime", help="put the fresh records into a build's jupyter-cache")
    pr.add_argument("cache_dir", type=Path)
    args = ap.parse_args(argv)
    try:
        if args.command == "record":
            for chapter in args.chapters:
                record(chapter, args.profile, timeout=args.timeout)
        elif args.command == "status":
            print(_table(status()))
        else:
            for line in prime(args.cache_dir):
                print(line)
    except (RecordError, ValueError) as err:  # ValueError: an unknown profile
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
