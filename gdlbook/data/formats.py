"""Decoders: each turns the files of one format into NumPy arrays, checking sizes as it reads.

A decoder raises on anything unexpected (a wrong magic number, a short file, a bad JPEG); the
registry reports that as a corrupt file with its path. Nothing is returned half-read.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np


def _read_maybe_gzip(path: Path) -> bytes:
    with open(path, "rb") as f:
        head = f.read(2)
    if head == b"\x1f\x8b":
        with gzip.open(path, "rb") as f:  # CRC and length are checked at the end of the stream
            return f.read()
    return Path(path).read_bytes()


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST's format; gzip'd or not) of unsigned bytes."""
    raw = _read_maybe_gzip(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise ValueError(f"{path}: IDX type {raw[2]:#x} is not unsigned bytes")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        raise ValueError(f"{path}: {len(raw)} bytes where the header announces {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def decode_idx_pair(paths: Sequence[Path], split: str):
    """Images and labels from two IDX files; their counts must agree."""
    x, y = read_idx(paths[0]), read_idx(paths[1])
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"images {x.shape} and labels {y.shape} do not match")
    return x, y.astype(np.int64)


CIFAR_RECORD = 1 + 32 * 32 * 3


def decode_cifar_binary(paths: Sequence[Path], split: str):
    """CIFAR-10's binary version: records of one label byte and a 3×32×32 image (CHW)."""
    xs, ys = [], []
    for p in paths:
        raw = Path(p).read_bytes()
        if len(raw) != 10_000 * CIFAR_RECORD:
            raise ValueError(f"{p}: {len(raw)} bytes, expected {10_000 * CIFAR_RECORD}")
        rec = np.frombuffer(raw, dtype=np.uint8).reshape(-1, CIFAR_RECORD)
        ys.append(rec[:, 0].astype(np.int64))
        xs.append(rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    y = np.concatenate(ys)
    if y.max() > 9:
        raise ValueError("label out of range 0–9")
    return np.ascontiguousarray(np.concatenate(xs)), y


def decode_image_folder_zip(classes: Sequence[str], size: tuple[int, int]):
    """A decoder for a zip of ``<split>/<class>/<name>.jpg``, returned in a fixed shuffled order."""

    def decode(paths: Sequence[Path], split: str):
        from PIL import Image

        index = {c: i for i, c in enumerate(classes)}
        xs, ys = [], []
        with zipfile.ZipFile(paths[0]) as zf:
            names = sorted(n for n in zf.namelist()
                           if n.startswith(f"{split}/") and not n.endswith("/"))
            if not names:
                raise ValueError(f"no {split}/ images in the archive")
            for n in names:
                cls = n.split("/")[1]
                if cls not in index:
                    raise ValueError(f"unknown class folder {cls!r}")
                with Image.open(io.BytesIO(zf.read(n))) as im:
                    arr = np.asarray(im.convert("RGB"))
                if arr.shape[:2] != size:
                    raise ValueError(f"{n}: size {arr.shape[:2]}, expected {size}")
                xs.append(arr)
                ys.append(index[cls])
        # the archive is sorted by class: shuffle once, with a fixed seed, so that any prefix
        # (a validation split, a smoke subset) holds every class
        order = np.random.default_rng(0).permutation(len(xs))
        return np.stack(xs)[order], np.asarray(ys, dtype=np.int64)[order]

    return decode


def decode_image_zip(prefix: str, size: tuple[int, int], *, first: int | None = None,
                     source_size: tuple[int, int] | None = None):
    """A decoder for a zip of unlabelled ``<prefix><name>.jpg`` images, in file-name order.

    With ``first``, only the first ``first`` images are read (and the archive must hold that
    many); with ``source_size`` (height, width), the images have that size in the archive and are
    resized to ``size`` with PIL's Lanczos filter (CelebA's 218×178 faces to the 109×89 of the
    offline subset).
    """

    def decode(paths: Sequence[Path], split: str):
        from PIL import Image

        with zipfile.ZipFile(paths[0]) as zf:
            names = sorted(n for n in zf.namelist()
                           if n.startswith(prefix) and n.lower().endswith((".jpg", ".png")))
            if not names:
                raise ValueError(f"no images under {prefix!r} in the archive")
            if first is not None:
                if len(names) < first:
                    raise ValueError(f"{len(names)} images under {prefix!r}, expected at "
                                     f"least {first}")
                names = names[:first]
            expected = source_size or size
            x = np.empty((len(names), *size, 3), dtype=np.uint8)
            for i, n in enumerate(names):
                with Image.open(io.BytesIO(zf.read(n))) as im:
                    im = im.convert("RGB")
                    if (im.height, im.width) != tuple(expected):
                        raise ValueError(f"{n}: size {(im.height, im.width)}, expected {expected}")
                    if source_size is not None:
                        im = im.resize((size[1], size[0]), Image.Resampling.LANCZOS)
                    x[i] = np.asarray(im)
        return (x,)

    return decode



def decode_image_folder_square(pattern: str, count: int, size: int):
    """A decoder for a folder of photographs of any size: each centre-cropped to a square, resized.

    The format names one file of the folder (the last image); the decoder reads every file
    matching ``pattern`` beside it, in name order, and checks that there are ``count`` of them.
    Returns one uint8 array ``(count, size, size, 3)``. Used for Oxford 102 Flowers.
    """

    def decode(paths: Sequence[Path], split: str):
        from PIL import Image

        from gdlbook.images import center_crop_resize

        files = sorted(Path(paths[0]).parent.glob(pattern))
        if len(files) != count:
            raise ValueError(f"{len(files)} files match {pattern!r}, expected {count}")
        x = np.empty((count, size, size, 3), dtype=np.uint8)
        for i, p in enumerate(files):
            with Image.open(p) as im:
                im.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, still ≥ size
                arr = np.asarray(im.convert("RGB"))
            x[i] = center_crop_resize(arr[None], size)[0]
        return (x,)

    return decode


def decode_text(encoding: str = "utf-8"):
    """A decoder for one plain-text file: the whole text as a Python ``str``."""

    def decode(paths: Sequence[Path], split: str) -> str:
        text = Path(paths[0]).read_bytes().decode(encoding)  # strict: bad bytes are an error
        if not text:
            raise ValueError("the file is empty")
        return text

    return decode


def decode_paths(paths: Sequence[Path], split: str) -> dict[str, Path]:
    """Files that a chapter reads itself (MIDI): ``{file stem: path}``, already verified."""
    return {Path(p).stem: Path(p) for p in paths}


def decode_paths_as(keys: dict[str, str]):
    """Like :func:`decode_paths`, for files named otherwise: ``{keys[file name]: path}``.

    Lets a second source of the same dataset (jsbach.net's ``cs1-1pre.mid`` for the cello
    suites) yield the keys of its first format (``bwv1007_01``), in the order of ``keys``.
    """

    def decode(paths: Sequence[Path], split: str) -> dict[str, Path]:
        by_name = {Path(p).name: Path(p) for p in paths}
        unknown = sorted(set(by_name) - set(keys))
        if unknown:
            raise ValueError(f"no key for {unknown}")
        return {key: by_name[name] for name, key in keys.items() if name in by_name}

    return decode


def decode_jsb_chorales(paths: Sequence[Path], split: str) -> list[np.ndarray]:
    """The JSB chorales of one split: a list of ``(T, 4)`` float arrays of MIDI pitches.

    Columns are soprano, alto, tenor and bass on a sixteenth-note grid; NaN is a rest. The
    ``.npz`` holds pickled object arrays, so it is read only after its sha256 matched.
    """
    with np.load(paths[0], allow_pickle=True, encoding="latin1") as z:
        chorales = [np.asarray(c, dtype="float32") for c in z[split]]
    for i, c in enumerate(chorales):
        if c.ndim != 2 or c.shape[1] != 4:
            raise ValueError(f"chorale {i} of {split!r} has shape {c.shape}, not (T, 4)")
    return chorales
