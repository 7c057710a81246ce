"""The machinery of the dataset registry: files, formats, datasets, and where to look for them.

A :class:`Dataset` has one or more :class:`Format` s (the canonical files, or a stand-in subset
kept for offline runs). Each format lists, per split, the :class:`File` s it needs and a decoder
that turns those files into arrays (or text, or scores). :func:`load` looks for the files in this
order, and takes the first place that has every file of a format:

1. ``$GDL_DATA_DIR/<folder>`` (CI and developers point it at ``../shared/data``);
2. system locations where a package installs the data (e.g. Debian's ``dataset-fashion-mnist``);
3. the user cache (``$GDL_CACHE_DIR``, default ``~/.cache/gdlbook``), ``datasets/<name>``;
4. the canonical URLs, downloaded with ``keras.utils.get_file``, verified by sha256 and moved
   into the user cache atomically (unless ``GDL_OFFLINE=1``).

Every file is verified before it is decoded: by its sha256 where the registry knows it (of the
file as distributed, or of its decompressed content, so a recompressed copy still passes), and
always by a decoder that checks sizes and headers. Decoded arrays are cached as ``.npz`` so a
second load is fast.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import socket
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np


class DataError(RuntimeError):
    """Base class of the dataset errors."""


class DataNotFoundError(DataError, FileNotFoundError):
    """No place had the dataset's files, and they could not be downloaded."""


class CorruptDataError(DataError):
    """A file was found but is truncated, corrupt or not what the registry expects."""


class UnsafeArchiveError(DataError):
    """An archive member would be written outside the extraction directory."""


@dataclass(frozen=True)
class File:
    """One file of a format.

    ``name`` may contain ``/`` (a file inside an extracted folder). ``sha256`` is the digest of
    the file as distributed; ``content_sha256`` that of its decompressed bytes (gzip files), which
    also accepts a copy that was recompressed. ``urls`` are canonical download locations, tried
    in order. ``notice`` is printed before a download (its size, its licence).
    """

    name: str
    sha256: str | None = None
    content_sha256: str | None = None
    urls: tuple[str, ...] = ()
    notice: str = ""


@dataclass(frozen=True)
class Format:
    """One way a dataset is stored, with the decoder that reads it.

    ``files`` maps each split to the files it needs; ``decode(paths, split)`` receives their
    paths in that order. ``archive``, if given, is a downloadable archive that contains the files;
    it is extracted safely into the user cache. ``complete`` is False for a subset kept as a
    stand-in (the full profile asks for complete formats).
    """

    name: str
    description: str
    files: dict[str, tuple[File, ...]]
    decode: Callable[[Sequence[Path], str], Any]
    complete: bool = True
    archive: File | None = None
    cache_decoded: bool = True

    @property
    def downloadable(self) -> bool:
        if self.archive is not None:
            return bool(self.archive.urls)
        return all(f.urls for fs in self.files.values() for f in fs)


@dataclass(frozen=True)
class Dataset:
    """A registered dataset: its formats, where to look, and how a reader can supply it."""

    name: str
    title: str
    formats: tuple[Format, ...]
    folder: str
    system_dirs: tuple[str, ...] = ()
    classes: tuple[str, ...] | None = None
    how_to_get: str = ""
    credit: str = ""
    splits: tuple[str, ...] = field(default=("train", "test"))


REGISTRY: dict[str, Dataset] = {}


def register(ds: Dataset) -> Dataset:
    REGISTRY[ds.name] = ds
    return ds


def dataset(name: str) -> Dataset:
    """The registered dataset called ``name`` (its title, classes, formats...)."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"Unknown dataset {name!r}. Registered: {', '.join(sorted(REGISTRY))}"
        ) from None


# --------------------------------------------------------------------------- places


def cache_dir() -> Path:
    """The user cache: ``$GDL_CACHE_DIR`` or ``~/.cache/gdlbook``."""
    return Path(os.environ.get("GDL_CACHE_DIR") or Path.home() / ".cache" / "gdlbook")


def offline() -> bool:
    return os.environ.get("GDL_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def places(ds: Dataset) -> list[tuple[str, Path]]:
    """Where ``ds`` is looked for, in order, as (label, directory)."""
    out = []
    data_dir = os.environ.get("GDL_DATA_DIR", "").strip()
    if data_dir:
        out.append(("$GDL_DATA_DIR", Path(data_dir).expanduser() / ds.folder))
    out += [("system location", Path(p)) for p in ds.system_dirs]
    out.append(("user cache", cache_dir() / "datasets" / ds.folder))
    return out


# --------------------------------------------------------------------------- verification


def sha256_of(path: Path, *, decompress: bool = False) -> str:
    h = hashlib.sha256()
    opener = gzip.open if decompress else open
    with opener(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, spec: File) -> None:
    """Check ``path`` against the digests in ``spec``; raise :class:`CorruptDataError` if neither matches."""
    if spec.sha256 is None and spec.content_sha256 is None:
        return  # the decoder checks structure and size
    if spec.sha256 is not None and sha256_of(path) == spec.sha256:
        return
    if spec.content_sha256 is not None:
        try:
            if sha256_of(path, decompress=True) == spec.content_sha256:
                return
        except (OSError, EOFError, gzip.BadGzipFile, ValueError):
            pass
    raise CorruptDataError(
        f"{path}: checksum mismatch (the file is truncated, corrupt or a different version). "
        f"Delete it and load again: a fresh copy is looked for elsewhere or downloaded."
    )


# --------------------------------------------------------------------------- archives


def _check_member(name: str, dest: Path) -> Path:
    target = (dest / name).resolve()
    root = dest.resolve()
    if os.path.isabs(name) or (target != root and root not in target.parents):
        raise UnsafeArchiveError(f"archive member {name!r} would be written outside {dest}")
    return target


def safe_extract(archive: Path, dest: Path) -> Path:
    """Extract a zip or tar archive into ``dest``, refusing members that escape it.

    Absolute paths, ``..`` components, and (for tar) links and device files are refused before
    anything is written. Extraction goes to a temporary folder beside ``dest`` and is moved into
    place only when complete, so an interrupted extraction leaves nothing half-written.
    """
    archive, dest = Path(archive), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest.parent))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    _check_member(info.filename, tmp)
                zf.extractall(tmp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
                for m in members:
                    _check_member(m.name, tmp)
                    if not (m.isfile() or m.isdir()):
                        raise UnsafeArchiveError(
                            f"archive member {m.name!r} is a link or special file; refused"
                        )
                tf.extractall(tmp, members=members, filter="data")
        else:
            raise CorruptDataError(f"{archive}: not a zip or tar archive (or corrupt)")
        dest.mkdir(parents=True, exist_ok=True)
        for item in tmp.iterdir():
            target = dest / item.name
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            os.replace(item, target)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        if isinstance(e, DataError):
            raise
        raise CorruptDataError(f"{archive}: cannot be extracted ({e})") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


# --------------------------------------------------------------------------- download


def direct_url(url: str) -> str:
    """The address that serves the file itself. A Google Drive link (``drive.google.com/uc?id=``
    or ``/file/d/ID``) answers a large file with a "cannot scan for viruses" page; its download
    host serves the bytes when the confirmation is given in the address."""
    import re
    from urllib.parse import parse_qs, urlparse

    u = urlparse(url)
    if u.netloc != "drive.google.com":
        return url
    ident = parse_qs(u.query).get("id", [None])[0]
    m = re.match(r"^/file/d/([\w-]+)", u.path)
    ident = ident or (m.group(1) if m else None)
    if not ident:
        return url
    return f"https://drive.usercontent.google.com/download?id={ident}&export=download&confirm=t"


def download(spec: File, dest_dir: Path, *, timeout: float = 60.0) -> Path:
    """Download ``spec`` into ``dest_dir`` with ``keras.utils.get_file``, verified, atomically.

    The file is fetched under a temporary name and moved into place only after its sha256
    matched, so an interrupted or corrupt download never leaves a file that looks complete.
    """
    import keras

    if spec.notice:
        print(spec.notice, flush=True)

    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / spec.name
    final.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        for url in spec.urls:
            tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=dest_dir))
            try:
                got = keras.utils.get_file(
                    fname=Path(spec.name).name, origin=direct_url(url), file_hash=spec.sha256,
                    cache_dir=str(tmp), cache_subdir=".",
                )
                os.replace(got, final)
                return final
            except Exception as e:  # noqa: BLE001 - reported below, with every URL tried
                errors.append(f"{url}: {e}")
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    finally:
        socket.setdefaulttimeout(old_timeout)
    raise DataNotFoundError("download failed: " + "; ".join(errors))


# --------------------------------------------------------------------------- decoded cache


def _decoded_cache_path(ds: Dataset, fmt: Format, split: str, paths: Sequence[Path]) -> Path:
    ident = "|".join(
        f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in paths
    )
    key = hashlib.sha256(ident.encode()).hexdigest()[:16]
    return cache_dir() / "decoded" / f"{ds.name}-{fmt.name}-{split}-{key}.npz"


def _read_decoded(path: Path) -> tuple | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return tuple(z[f"arr_{i}"] for i in range(len(z.files)))
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - a damaged cache entry is rebuilt from the source
        path.unlink(missing_ok=True)
        return None


def _write_decoded(path: Path, arrays: tuple) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez(tmp, *arrays)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _decode(ds: Dataset, fmt: Format, split: str, paths: list[Path], specs: Sequence[File]):
    cacheable = fmt.cache_decoded
    cpath = _decoded_cache_path(ds, fmt, split, paths) if cacheable else None
    if cpath is not None:
        cached = _read_decoded(cpath)
        if cached is not None:
            return cached
    for p, spec in zip(paths, specs):
        verify(p, spec)
    try:
        value = fmt.decode(paths, split)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder failure is a corrupt file
        raise CorruptDataError(
            f"{', '.join(map(str, paths))}: cannot be decoded as {fmt.description} ({e}). "
            "The file is truncated or corrupt: delete it and load again."
        ) from e
    if cpath is not None and isinstance(value, tuple) and all(
        isinstance(a, np.ndarray) for a in value
    ):
        _write_decoded(cpath, value)
    return value


# --------------------------------------------------------------------------- lookup


@dataclass
class Found:
    """What :func:`locate` found: the format, the files, and where."""

    fmt: Format
    paths: list[Path]
    where: str


def _find_in(fmt: Format, split: str, where: str, folder: Path, extract_to: Path) -> Found | None:
    specs = fmt.files[split]
    paths = [folder / f.name for f in specs]
    if all(p.is_file() for p in paths):
        return Found(fmt, paths, where)
    if fmt.archive is not None and (folder / fmt.archive.name).is_file():
        arch = folder / fmt.archive.name
        paths = [extract_to / f.name for f in specs]
        if not all(p.is_file() for p in paths):  # not extracted yet
            verify(arch, fmt.archive)
            safe_extract(arch, extract_to)
        if all(p.is_file() for p in paths):
            return Found(fmt, paths, f"{where}, {fmt.archive.name} extracted to the user cache")
        raise CorruptDataError(f"{arch}: does not contain {[f.name for f in specs]}")
    return None


def locate(ds: Dataset, split: str, *, complete: bool = False) -> Found:
    """Find (or download) the files of ``split``; raise :class:`DataNotFoundError` listing every place."""
    if split not in ds.splits:
        raise ValueError(f"{ds.name} has splits {ds.splits}, not {split!r}")
    formats = [f for f in ds.formats if split in f.files and (f.complete or not complete)]
    cache = cache_dir() / "datasets" / ds.folder
    looked = []
    for where, folder in places(ds):
        for fmt in formats:
            found = _find_in(fmt, split, where, folder, cache)
            if found is not None:
                return found
        looked.append(f"  - {where}: {folder}  (looked for: "
                      + "; ".join(_wanted(f, split) for f in formats) + ")")
    why = ""
    if offline():
        why = "downloads are off (GDL_OFFLINE is set)"
    else:
        errors = []
        for fmt in formats:
            if not fmt.downloadable:
                continue
            try:
                if fmt.archive is not None:
                    download(fmt.archive, cache)
                    found = _find_in(fmt, split, "download", cache, cache)
                else:
                    for spec in fmt.files[split]:
                        if not (cache / spec.name).is_file():
                            download(spec, cache)
                    found = _find_in(fmt, split, "download", cache, cache)
                if found is not None:
                    return found
            except DataError as e:
                errors.append(str(e))
        why = "; ".join(errors) or "no downloadable format"
    label = "complete " if complete else ""
    raise DataNotFoundError(
        f"Dataset {ds.name!r} ({ds.title}), {label}split {split!r}, was not found.\n"
        f"Places looked, in order:\n" + "\n".join(looked) + "\n"
        f"  - canonical download: {why}\n"
        f"How to provide it: {ds.how_to_get}"
    )


def _wanted(fmt: Format, split: str) -> str:
    names = [f.name for f in fmt.files[split]]
    alt = f" or {fmt.archive.name}" if fmt.archive else ""
    return f"{fmt.description}: {', '.join(names)}{alt}"


def load(name: str, split: str = "train", *, subset: int | None = None, seed: int = 0,
         complete: bool | None = None, verbose: bool = True):
    """Load a registered dataset.

    Args:
        name: a registered name (``gdlbook.data.names()``).
        split: ``"train"`` or ``"test"`` (or the dataset's own splits).
        subset: keep this many examples, drawn without replacement with ``seed``.
        seed: the seed of the subset draw.
        complete: require the complete dataset and never a stand-in subset. ``None`` means: yes
            in the ``full`` profile, no otherwise.
        verbose: print one line saying what was loaded and from where.

    Returns:
        What the format decodes to: ``(x, y)`` NumPy arrays for labelled images (``x`` uint8,
        ``(N, H, W)`` or ``(N, H, W, 3)``; ``y`` int64 class indices); the array ``x`` alone
        for unlabelled images (CelebA); a ``str`` for a text corpus (Nietzsche, Tiny
        Shakespeare).
    """
    ds = dataset(name)
    if complete is None:
        from gdlbook.profile import current

        complete = current() == "full"
    found = locate(ds, split, complete=complete)
    value = _decode(ds, found.fmt, split, found.paths, found.fmt.files[split])
    if isinstance(value, tuple):
        n = len(value[0])
        if subset is not None:
            if not 0 < subset <= n:
                raise ValueError(
                    f"subset={subset} is out of range: {name}/{split} from "
                    f"{found.fmt.description} has {n} examples"
                )
            idx = np.random.default_rng(seed).permutation(n)[:subset]
            value = tuple(a[idx] for a in value)
        if verbose:
            shape = "×".join(map(str, value[0].shape[1:]))
            print(f"{ds.title} [{split}]: {len(value[0]):,} of {n:,} examples, {shape}, "
                  f"from {found.fmt.description} ({found.where})")
    else:
        if subset is not None:
            raise ValueError(f"subset= applies to arrays of examples; {name} is not one "
                             f"(slice the loaded value instead)")
        if verbose:
            size = f"{len(value):,} characters, " if isinstance(value, str) else ""
            print(f"{ds.title} [{split}]: {size}from {found.fmt.description} ({found.where})")
    if isinstance(value, tuple) and len(value) == 1:  # unlabelled data: just the array
        return value[0]
    return value
