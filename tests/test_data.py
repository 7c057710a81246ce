"""The dataset registry: lookup order, verification, bad inputs, caching, safe extraction.

Every test works on tiny files it makes itself, in an isolated, offline data dir and cache
(the ``isolated_data`` fixture), except the last few, which read the real datasets when the
machine has them (CI does: ../shared/data and Debian's dataset-fashion-mnist).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from gdlbook import data
from gdlbook.data import formats, registry


# --------------------------------------------------------------------------- fixtures


def idx_bytes(arr: np.ndarray) -> bytes:
    arr = np.asarray(arr, dtype=np.uint8)
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.tobytes()


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (20, 4, 4), dtype=np.uint8)
LABELS = (np.arange(20) % 3).astype(np.uint8)
IMG_RAW, LAB_RAW = idx_bytes(IMAGES), idx_bytes(LABELS)
IMG_GZ, LAB_GZ = gzip.compress(IMG_RAW, mtime=0), gzip.compress(LAB_RAW, mtime=0)


@pytest.fixture
def tiny(isolated_data, monkeypatch):
    """A registered dataset 'tiny' of IDX files, with its source files ready to be placed."""
    decode_calls = []

    def decode(paths, split):
        decode_calls.append(split)
        return formats.decode_idx_pair(paths, split)

    def files(base_url=None):
        urls = lambda n: (f"{base_url}/{n}",) if base_url else ()  # noqa: E731
        return {"train": (
            registry.File("img.gz", sha256=sha(IMG_GZ), content_sha256=sha(IMG_RAW), urls=urls("img.gz")),
            registry.File("lab.gz", sha256=sha(LAB_GZ), content_sha256=sha(LAB_RAW), urls=urls("lab.gz")),
        )}

    def make(base_url=None, **kw):
        ds = registry.Dataset(
            name="tiny", title="Tiny", folder="tiny", splits=("train",),
            formats=(registry.Format("idx", "tiny IDX files", files(base_url), decode, **kw),),
            how_to_get="make it with the test fixture",
        )
        monkeypatch.setitem(registry.REGISTRY, "tiny", ds)
        return ds

    make()
    folder = isolated_data / "tiny"

    def place(img=IMG_GZ, lab=LAB_GZ, where=folder):
        where.mkdir(parents=True, exist_ok=True)
        (where / "img.gz").write_bytes(img)
        (where / "lab.gz").write_bytes(lab)
        return where

    return type("Tiny", (), dict(folder=folder, place=staticmethod(place), calls=decode_calls,
                                 make=staticmethod(make), data_dir=isolated_data))


# --------------------------------------------------------------------------- lookup and load


def test_loads_from_data_dir_and_says_where(tiny, capsys):
    tiny.place()
    x, y = data.load("tiny", "train", complete=False)
    np.testing.assert_array_equal(x, IMAGES)
    np.testing.assert_array_equal(y, LABELS)
    assert y.dtype == np.int64
    assert "Tiny [train]: 20 of 20 examples, 4×4, from tiny IDX files ($GDL_DATA_DIR)" in capsys.readouterr().out


def test_system_location_and_user_cache_are_looked_in_order(tiny, tmp_path, monkeypatch):
    system = tmp_path / "usr-share"
    ds = registry.REGISTRY["tiny"]
    monkeypatch.setitem(registry.REGISTRY, "tiny",
                        registry.Dataset(**{**ds.__dict__, "system_dirs": (str(system),)}))
    cache_folder = registry.cache_dir() / "datasets" / "tiny"
    tiny.place(where=cache_folder)
    assert registry.locate(registry.dataset("tiny"), "train").where == "user cache"
    tiny.place(where=system)
    assert registry.locate(registry.dataset("tiny"), "train").where == "system location"
    tiny.place()
    assert registry.locate(registry.dataset("tiny"), "train").where == "$GDL_DATA_DIR"


def test_missing_offline_names_dataset_places_and_remedy(tiny):
    with pytest.raises(data.DataNotFoundError) as e:
        data.load("tiny", "train", complete=False)
    msg = str(e.value)
    assert "'tiny'" in msg and "split 'train'" in msg
    assert str(tiny.folder) in msg and str(registry.cache_dir() / "datasets" / "tiny") in msg
    assert "GDL_OFFLINE" in msg and "make it with the test fixture" in msg
    assert isinstance(e.value, FileNotFoundError)


def test_unknown_dataset_and_split(tiny):
    with pytest.raises(KeyError, match="Registered:"):
        data.load("nope")
    with pytest.raises(ValueError, match="splits"):
        data.load("tiny", "test", complete=False)


def test_recompressed_copy_passes_by_content_checksum(tiny):
    tiny.place(img=gzip.compress(IMG_RAW, compresslevel=1, mtime=123))
    x, _ = data.load("tiny", "train", complete=False, verbose=False)
    np.testing.assert_array_equal(x, IMAGES)


@pytest.mark.parametrize("damage", ["truncated", "flipped", "garbage"])
def test_corrupt_file_is_reported_with_its_path(tiny, damage):
    bad = {"truncated": IMG_GZ[: len(IMG_GZ) // 2],
           "flipped": IMG_GZ[:40] + bytes([IMG_GZ[40] ^ 0xFF]) + IMG_GZ[41:],
           "garbage": b"not a dataset"}[damage]
    tiny.place(img=bad)
    with pytest.raises(data.CorruptDataError) as e:
        data.load("tiny", "train", complete=False)
    assert str(tiny.folder / "img.gz") in str(e.value)
    # nothing half-loaded was cached
    assert not list((registry.cache_dir() / "decoded").glob("*.npz"))


def test_decoder_catches_corruption_when_no_checksum_is_known(tiny, monkeypatch):
    fmt = registry.REGISTRY["tiny"].formats[0]
    bare = {"train": tuple(registry.File(f.name) for f in fmt.files["train"])}
    monkeypatch.setitem(registry.REGISTRY, "tiny", registry.Dataset(
        name="tiny", title="Tiny", folder="tiny", splits=("train",),
        formats=(registry.Format("idx", "tiny IDX files", bare, formats.decode_idx_pair),)))
    tiny.place(img=gzip.compress(IMG_RAW[:-5]))  # a valid gzip of a short IDX file
    with pytest.raises(data.CorruptDataError, match="cannot be decoded.*bytes where the header"):
        data.load("tiny", "train", complete=False)


def test_decoded_arrays_are_cached_and_a_damaged_cache_is_rebuilt(tiny):
    tiny.place()
    data.load("tiny", "train", complete=False, verbose=False)
    data.load("tiny", "train", complete=False, verbose=False)
    assert tiny.calls == ["train"]  # the second load came from the cache
    (entry,) = (registry.cache_dir() / "decoded").glob("tiny-*.npz")
    entry.write_bytes(b"damaged")
    x, _ = data.load("tiny", "train", complete=False, verbose=False)
    np.testing.assert_array_equal(x, IMAGES)
    assert tiny.calls == ["train", "train"]


def test_a_changed_source_file_is_decoded_again(tiny):
    tiny.place()
    data.load("tiny", "train", complete=False, verbose=False)
    os.utime(tiny.folder / "img.gz", ns=(1, 1))
    data.load("tiny", "train", complete=False, verbose=False)
    assert tiny.calls == ["train", "train"]


def test_subset_is_seeded_and_checked(tiny):
    tiny.place()
    a, ya = data.load("tiny", "train", subset=5, seed=1, complete=False, verbose=False)
    b, yb = data.load("tiny", "train", subset=5, seed=1, complete=False, verbose=False)
    c, _ = data.load("tiny", "train", subset=5, seed=2, complete=False, verbose=False)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (5, 4, 4) and not np.array_equal(a, c)
    # images stay with their labels
    for img, lab in zip(a, ya):
        (i,) = [k for k in range(20) if np.array_equal(IMAGES[k], img)]
        assert LABELS[i] == lab
    for bad in (0, 21, -1):
        with pytest.raises(ValueError, match="out of range"):
            data.load("tiny", "train", subset=bad, complete=False, verbose=False)


def test_complete_skips_stand_in_subsets(tiny, monkeypatch):
    tiny.make(complete=False)
    tiny.place()
    data.load("tiny", "train", complete=False, verbose=False)
    with pytest.raises(data.DataNotFoundError, match="complete split"):
        data.load("tiny", "train", complete=True)
    monkeypatch.setenv("GDL_PROFILE", "full")
    with pytest.raises(data.DataNotFoundError):
        data.load("tiny", "train")  # complete=None follows the profile
    monkeypatch.setenv("GDL_PROFILE", "smoke")
    data.load("tiny", "train", verbose=False)


# --------------------------------------------------------------------------- download


def test_download_verifies_and_moves_into_the_cache(tiny, tmp_path, monkeypatch):
    served = tmp_path / "served"
    tiny.place(where=served)
    tiny.make(base_url=served.as_uri())
    monkeypatch.delenv("GDL_OFFLINE")
    x, _ = data.load("tiny", "train", complete=False, verbose=False)
    np.testing.assert_array_equal(x, IMAGES)
    cached = registry.cache_dir() / "datasets" / "tiny"
    assert sorted(p.name for p in cached.iterdir()) == ["img.gz", "lab.gz"]
    assert registry.locate(registry.dataset("tiny"), "train").where == "user cache"


def test_corrupt_download_leaves_nothing_behind(tiny, tmp_path, monkeypatch):
    served = tmp_path / "served"
    tiny.place(img=IMG_GZ[:-10], where=served)
    tiny.make(base_url=served.as_uri())
    monkeypatch.delenv("GDL_OFFLINE")
    with pytest.raises(data.DataNotFoundError, match="download failed"):
        data.load("tiny", "train", complete=False)
    cached = registry.cache_dir() / "datasets" / "tiny"
    assert not (cached / "img.gz").exists()
    assert not [p for p in cached.rglob("*") if p.is_file() and p.name != "lab.gz"]


def test_unreachable_url_gives_the_full_error(tiny, tmp_path, monkeypatch):
    tiny.make(base_url=(tmp_path / "nowhere").as_uri())
    monkeypatch.delenv("GDL_OFFLINE")
    with pytest.raises(data.DataNotFoundError) as e:
        data.load("tiny", "train", complete=False)
    assert "Places looked" in str(e.value) and "download failed" in str(e.value)


# --------------------------------------------------------------------------- archives


def _zip_with(name: str, payload: bytes = b"x") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(name, payload)
    return buf.getvalue()


def _tar_with(*members) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for info, payload in members:
            tf.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return buf.getvalue()


def _file_info(name, payload=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    return info, payload


@pytest.mark.parametrize("member", ["../evil.txt", "a/../../evil.txt", "/tmp/evil-gdl.txt"])
def test_zip_members_escaping_the_target_are_refused(tmp_path, member):
    arch = tmp_path / "a.zip"
    arch.write_bytes(_zip_with(member))
    with pytest.raises(data.UnsafeArchiveError, match="outside"):
        data.safe_extract(arch, tmp_path / "out" / "dest")
    assert not (tmp_path / "out" / "evil.txt").exists() and not Path("/tmp/evil-gdl.txt").exists()
    assert not (tmp_path / "out" / "dest").exists()


@pytest.mark.parametrize("member", ["../evil.txt", "/tmp/evil-gdl.txt"])
def test_tar_members_escaping_the_target_are_refused(tmp_path, member):
    arch = tmp_path / "a.tar.gz"
    arch.write_bytes(_tar_with(_file_info("ok.txt"), _file_info(member)))
    with pytest.raises(data.UnsafeArchiveError, match="outside"):
        data.safe_extract(arch, tmp_path / "out" / "dest")
    assert not list((tmp_path / "out").rglob("ok.txt"))  # refused before anything was written


def test_tar_links_are_refused(tmp_path):
    link = tarfile.TarInfo("link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    arch = tmp_path / "a.tar.gz"
    arch.write_bytes(_tar_with((link, None)))
    with pytest.raises(data.UnsafeArchiveError, match="link"):
        data.safe_extract(arch, tmp_path / "dest")


def test_safe_extract_extracts_zip_and_tar(tmp_path):
    z = tmp_path / "a.zip"
    z.write_bytes(_zip_with("d/f.txt", b"hello"))
    assert (data.safe_extract(z, tmp_path / "z") / "d" / "f.txt").read_bytes() == b"hello"
    t = tmp_path / "a.tgz"
    t.write_bytes(_tar_with(_file_info("d/g.txt", b"world")))
    assert (data.safe_extract(t, tmp_path / "t") / "d" / "g.txt").read_bytes() == b"world"
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(b"neither zip nor tar")
    with pytest.raises(data.CorruptDataError, match="bad.tgz"):
        data.safe_extract(bad, tmp_path / "b")


def test_archive_format_is_extracted_once_into_the_cache(tiny, monkeypatch):
    arch_bytes = _tar_with(_file_info("pack/img", IMG_RAW), _file_info("pack/lab", LAB_RAW))
    files = {"train": (registry.File("pack/img"), registry.File("pack/lab"))}
    monkeypatch.setitem(registry.REGISTRY, "tiny", registry.Dataset(
        name="tiny", title="Tiny", folder="tiny", splits=("train",),
        formats=(registry.Format("packed", "a packed archive", files, formats.decode_idx_pair,
                                 archive=registry.File("pack.tar.gz", sha256=sha(arch_bytes))),)))
    tiny.folder.mkdir()
    (tiny.folder / "pack.tar.gz").write_bytes(arch_bytes)
    x, _ = data.load("tiny", "train", complete=False, verbose=False)
    np.testing.assert_array_equal(x, IMAGES)
    extracted = registry.cache_dir() / "datasets" / "tiny" / "pack" / "img"
    assert extracted.is_file()
    mtime = extracted.stat().st_mtime_ns
    data.load("tiny", "train", complete=False, verbose=False)
    assert extracted.stat().st_mtime_ns == mtime  # not extracted again
    # a corrupt archive is caught by its checksum before extraction
    extracted.parent.joinpath("img").unlink()
    (tiny.folder / "pack.tar.gz").write_bytes(arch_bytes[:-20])
    with pytest.raises(data.CorruptDataError, match="pack.tar.gz"):
        data.load("tiny", "train", complete=False)


# --------------------------------------------------------------------------- decoders


def test_read_idx_rejects_bad_headers(tmp_path):
    p = tmp_path / "f"
    for payload, msg in [(b"\x01\x00\x08\x01", "magic"), (b"\x00\x00\x0d\x01", "unsigned"),
                         (b"\x00\x00\x08\x03\x00", "truncated IDX header")]:
        p.write_bytes(payload)
        with pytest.raises(ValueError, match=msg):
            formats.read_idx(p)


def test_cifar_binary_decoder(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, 10_000, dtype=np.uint8)
    images = rng.integers(0, 256, (10_000, 3, 32, 32), dtype=np.uint8)
    p = tmp_path / "batch.bin"
    p.write_bytes(np.concatenate([labels[:, None], images.reshape(10_000, -1)], 1).tobytes())
    x, y = formats.decode_cifar_binary([p], "test")
    assert x.shape == (10_000, 32, 32, 3) and x.flags.c_contiguous
    np.testing.assert_array_equal(x[7, :, :, 2], images[7, 2])
    np.testing.assert_array_equal(y, labels)
    p.write_bytes(p.read_bytes()[:-1])
    with pytest.raises(ValueError, match="expected"):
        formats.decode_cifar_binary([p], "test")


def test_image_folder_zip_decoder(tmp_path):
    from PIL import Image

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for cls, value in (("cat", 10), ("dog", 200)):
            for i in range(3):
                b = io.BytesIO()
                Image.new("RGB", (4, 4), (value, value, value)).save(b, format="PNG")
                zf.writestr(f"train/{cls}/{i:04d}.png", b.getvalue())
    p = tmp_path / "s.zip"
    p.write_bytes(buf.getvalue())
    x, y = formats.decode_image_folder_zip(("cat", "dog"), (4, 4))([p], "train")
    assert x.shape == (6, 4, 4, 3) and sorted(y.tolist()) == [0, 0, 0, 1, 1, 1]
    assert all(x[i, 0, 0, 0] == (10 if y[i] == 0 else 200) for i in range(6))
    with pytest.raises(ValueError, match="no test/"):
        formats.decode_image_folder_zip(("cat", "dog"), (4, 4))([p], "test")
    with pytest.raises(ValueError, match="size"):
        formats.decode_image_folder_zip(("cat", "dog"), (8, 8))([p], "train")


# --------------------------------------------------------------------------- the real datasets


def _shared() -> Path | None:
    d = os.environ.get("GDL_DATA_DIR")
    return Path(d) if d and Path(d, "mnist").is_dir() else None


def test_registry_lists_the_foundation_datasets():
    assert {"mnist", "fashion_mnist", "cifar10"} <= set(data.names())
    assert len(data.dataset("cifar10").classes) == 10
    for name in data.names():
        ds = data.dataset(name)
        assert ds.how_to_get and ds.formats
        for fmt in ds.formats:
            for files in fmt.files.values():
                for f in files:
                    assert f.sha256 is None or len(f.sha256) == 64


@pytest.mark.skipif(_shared() is None, reason="GDL_DATA_DIR with the shared data is not set")
def test_real_mnist_test_split_and_cifar_subset(tmp_path, monkeypatch):
    monkeypatch.setenv("GDL_CACHE_DIR", str(tmp_path))
    x, y = data.load("mnist", "test", complete=False, verbose=False)
    assert x.shape == (10_000, 28, 28) and x.dtype == np.uint8 and np.bincount(y).min() > 800
    x, y = data.load("cifar10", "test", complete=False, verbose=False)
    assert x.shape == (2_000, 32, 32, 3) and np.bincount(y).tolist() == [200] * 10
    # shuffled once: a prefix holds every class
    assert len(set(y[:100].tolist())) == 10


@pytest.mark.skipif(_shared() is None, reason="GDL_DATA_DIR with the shared data is not set")
def test_real_celeba_subset_is_one_unlabelled_array(tmp_path, monkeypatch):
    monkeypatch.setenv("GDL_CACHE_DIR", str(tmp_path))
    x = data.load("celeba", "train", subset=64, complete=False, verbose=False)
    assert isinstance(x, np.ndarray) and x.shape == (64, 109, 89, 3) and x.dtype == np.uint8
    assert 40 < x.mean() < 220  # real photographs, not blank decodes
    with pytest.raises(data.DataNotFoundError, match="Google"):
        data.load("celeba", "train", complete=True)


def test_image_zip_decoder(tmp_path):
    from PIL import Image

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(3):
            b = io.BytesIO()
            Image.new("RGB", (5, 4), (i * 50, 0, 0)).save(b, format="PNG")
            zf.writestr(f"faces/{i:06d}.png", b.getvalue())
        zf.writestr("faces/readme.txt", "not an image")
    p = tmp_path / "f.zip"
    p.write_bytes(buf.getvalue())
    (x,) = formats.decode_image_zip("faces/", (4, 5))([p], "train")
    assert x.shape == (3, 4, 5, 3) and x[:, 0, 0, 0].tolist() == [0, 50, 100]
    with pytest.raises(ValueError, match="no images"):
        formats.decode_image_zip("other/", (4, 5))([p], "train")


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setenv("GDL_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("GDL_DATA_DIR", str(tmp_path / "empty"))
    x, y = data.load("fashion_mnist", "test", complete=True, verbose=False)
    assert x.shape == (10_000, 28, 28) and np.bincount(y).tolist() == [1000] * 10


def test_image_folder_square_decoder_crops_resizes_and_counts(tmp_path):
    from PIL import Image

    from gdlbook.data.formats import decode_image_folder_square

    folder = tmp_path / "jpg"
    folder.mkdir()
    for i, (h, w) in enumerate([(30, 40), (50, 20), (24, 24)], start=1):
        Image.new("RGB", (w, h), (200, 30 * i, 10)).save(folder / f"image_{i:05d}.jpg")
    (x,) = decode_image_folder_square("image_*.jpg", 3, 8)([folder / "image_00003.jpg"], "train")
    assert x.shape == (3, 8, 8, 3) and x.dtype == np.uint8
    assert abs(int(x[1, 4, 4, 1]) - 60) < 8  # second image, in name order
    with pytest.raises(ValueError, match="expected 4"):
        decode_image_folder_square("image_*.jpg", 4, 8)([folder / "image_00003.jpg"], "train")


def test_oxford_flowers_is_registered_with_its_canonical_archive():
    ds = data.dataset("oxford_flowers102")
    (fmt,) = ds.formats
    assert fmt.complete and fmt.archive.name == "102flowers.tgz"
    assert fmt.archive.urls == ("https://www.robots.ox.ac.uk/~vgg/data/flowers/102/102flowers.tgz",)
    assert fmt.files["train"][0].name == "jpg/image_08189.jpg"


# --- every dataset a chapter loads has an online source ---------------------------------------

def _chapter_datasets() -> dict[str, set[str]]:
    """dataset name -> the chapters that load it (literal names, and cfg.dataset's values)."""
    import re

    root = Path(__file__).resolve().parents[1]
    used: dict[str, set[str]] = {}
    for chapter in sorted((root / "chapters").glob("[0-9A-Z][0-9]_*.md")):
        text = chapter.read_text(encoding="utf-8")
        names = set(re.findall(r'data\.load\(\s*"(\w+)"', text))
        if "data.load(cfg.dataset" in text:
            names |= set(re.findall(r'dataset="(\w+)"', text))
        for name in names:
            used.setdefault(name, set()).add(chapter.stem)
    return used


def test_no_chapter_depends_on_the_shared_data_alone():
    """A Colab run has no ../shared/data: every split of every dataset a chapter loads can be
    downloaded from a canonical source, and every downloaded file is checked by a sha256."""
    from gdlbook import data

    used = _chapter_datasets()
    assert {"mnist", "fashion_mnist", "cifar10", "celeba", "oxford_flowers102",
            "nietzsche", "tinyshakespeare"} <= set(used)
    for name, chapters in used.items():
        ds = data.dataset(name)
        for split in ds.splits:
            online = [f for f in ds.formats if split in f.files and f.downloadable]
            assert online, f"{name}/{split} (used by {sorted(chapters)}) has no online source"
            for fmt in online:
                fetched = [fmt.archive] if fmt.archive is not None else list(fmt.files[split])
                for spec in fetched:
                    assert spec.urls and spec.sha256, f"{name}: {spec.name} lacks a sha256"
                    assert any(u.startswith("https://") for u in spec.urls), spec.urls


def test_google_drive_links_go_to_the_download_host():
    from gdlbook.data.registry import direct_url

    ident = "0B7EVK8r0v71pZjFTYXZWM3FlRnM"
    want = f"https://drive.usercontent.google.com/download?id={ident}&export=download&confirm=t"
    assert direct_url(f"https://drive.google.com/uc?export=download&id={ident}") == want
    assert direct_url(f"https://drive.google.com/file/d/{ident}/view") == want
    other = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    assert direct_url(other) == other


def test_celeba_from_the_authors_archive_is_the_offline_subset(tmp_path):
    """The official format reads the first 5,000 faces of img_align_celeba.zip (218×178) and
    halves them to the 109×89 of the offline subset; fewer images is an error."""
    from PIL import Image

    from gdlbook.data import formats

    def archive(n):
        p = tmp_path / f"celeba{n}.zip"
        with zipfile.ZipFile(p, "w") as zf:
            for i in range(n, 0, -1):                      # stored out of order
                im = Image.new("RGB", (178, 218), (i, 255 - i, 7))
                buf = io.BytesIO()
                im.save(buf, format="JPEG", quality=95)
                zf.writestr(f"img_align_celeba/{i:06d}.jpg", buf.getvalue())
        return p

    decode = formats.decode_image_zip("img_align_celeba/", (109, 89), first=3,
                                      source_size=(218, 178))
    (x,) = decode([archive(5)], "train")
    assert x.shape == (3, 109, 89, 3) and x.dtype == np.uint8
    assert np.abs(x[:, 50, 40, 0].astype(int) - [1, 2, 3]).max() <= 3    # 000001, 000002, 000003
    with pytest.raises(ValueError, match="expected at least 3"):
        decode([archive(2)], "train")


def test_a_download_says_what_it_fetches_and_its_licence(tmp_path, monkeypatch, capsys):
    import keras

    from gdlbook.data import registry

    spec = next(f for fmt in registry.dataset("celeba").formats
                for f in fmt.files["train"] if f.urls)
    payload = b"not the archive"

    def fake_get_file(fname, origin, file_hash, cache_dir, cache_subdir):
        assert origin.startswith("https://drive.usercontent.google.com/download?id=")
        if file_hash and hashlib.sha256(payload).hexdigest() != file_hash:
            raise ValueError("hash mismatch")
        p = Path(cache_dir) / fname
        p.write_bytes(payload)
        return str(p)

    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    with pytest.raises(registry.DataNotFoundError, match="hash mismatch"):
        registry.download(spec, tmp_path)
    out = capsys.readouterr().out
    assert "1.44 GB" in out and "non-commercial research" in out
    assert not (tmp_path / spec.name).exists()        # nothing half-downloaded is left
