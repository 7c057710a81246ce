"""gdlbook.progress: a live bar by default, one summary line in built or recorded pages."""

import pytest

from gdlbook import progress


def test_summary_mode_prints_one_line_with_the_count(monkeypatch, capsys):
    monkeypatch.setenv("GDL_PROGRESS", "summary")
    assert list(progress.track(range(5), "sampling", unit="image")) == [0, 1, 2, 3, 4]
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sampling: 5 images in ")


def test_bar_mode_shows_a_keras_progbar(monkeypatch, capsys):
    monkeypatch.setenv("GDL_PROGRESS", "bar")
    for _ in progress.track(range(3), "DDIM"):
        pass
    out = capsys.readouterr().out
    assert out.startswith("DDIM\n") and "3/3" in out


def test_off_is_silent_and_unknown_is_an_error(monkeypatch, capsys):
    monkeypatch.setenv("GDL_PROGRESS", "off")
    assert sum(progress.track(iter(range(4)), "x")) == 6
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("GDL_PROGRESS", "loud")
    with pytest.raises(ValueError, match="summary"):
        progress.mode()
