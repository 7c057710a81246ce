"""Text corpora in the dataset registry (chapter 5): they load as one str, verified by sha256."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gdlbook import data
from gdlbook.data import registry

TEXTS = {"nietzsche": ("nietzsche.txt", 600_893), "tinyshakespeare": ("tinyshakespeare.txt", 1_115_394)}


def _shared_text() -> Path | None:
    d = os.environ.get("GDL_DATA_DIR")
    return Path(d, "text") if d and Path(d, "text", "nietzsche.txt").is_file() else None


def test_text_datasets_are_registered_with_checksums_and_urls():
    for name, (fname, _) in TEXTS.items():
        ds = data.dataset(name)
        (f,) = ds.formats[0].files["train"]
        assert f.name == fname and len(f.sha256) == 64 and f.urls[0].startswith("https://")
        assert ds.splits == ("train",) and ds.how_to_get


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_missing_text_says_where_it_looked(name, isolated_data):
    with pytest.raises(data.DataNotFoundError) as e:
        data.load(name)
    msg = str(e.value)
    assert repr(name) in msg and str(isolated_data / "text") in msg and TEXTS[name][0] in msg
    assert "GDL_OFFLINE" in msg


@pytest.mark.parametrize("damage", ["truncated", "edited"])
def test_corrupt_text_is_refused_by_its_checksum(damage, isolated_data):
    folder = isolated_data / "text"
    folder.mkdir()
    text = "PANDARUS:\nO, gods! how do you plague me!\n" * 10
    (folder / "tinyshakespeare.txt").write_text(text[:-7] if damage == "truncated" else text.upper())
    with pytest.raises(data.CorruptDataError, match="tinyshakespeare.txt: checksum mismatch"):
        data.load("tinyshakespeare")


def test_text_decoder_rejects_bad_bytes_and_empty_files(tmp_path):
    from gdlbook.data.formats import decode_text

    p = tmp_path / "t.txt"
    p.write_bytes(b"caf\xc3\xa9\n")
    assert decode_text()([p], "train") == "café\n"
    p.write_bytes(b"\xff\xfe broken")
    with pytest.raises(UnicodeDecodeError):
        decode_text()([p], "train")
    p.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        decode_text()([p], "train")


@pytest.mark.skipif(_shared_text() is None, reason="GDL_DATA_DIR with the shared data is not set")
@pytest.mark.parametrize("name", sorted(TEXTS))
def test_real_text_loads_as_str(name, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GDL_CACHE_DIR", str(tmp_path))
    text = data.load(name)
    assert isinstance(text, str) and len(text) == TEXTS[name][1]
    assert f"{len(text):,} characters" in capsys.readouterr().out
    assert not (tmp_path / "decoded").exists()  # text is not cached as .npz
    with pytest.raises(ValueError, match="subset"):
        data.load(name, subset=10)
