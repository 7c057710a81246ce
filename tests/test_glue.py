"""gdlbook.glue: values reach the prose, and a cell ending with a glue shows nothing."""

from __future__ import annotations

import gdlbook


def test_glue_returns_nothing_so_no_output_box():
    # A cell that ends with gdlbook.glue(...) would otherwise echo the value under the cell
    # (the stray 'smoke' box under every parameters table).
    assert gdlbook.glue("profile", "smoke") is None


def test_glue_hands_the_value_to_myst_nb(monkeypatch):
    import myst_nb

    seen = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: seen.update(
        {name: (value, display)}))
    gdlbook.glue("answer", 42)
    assert seen == {"answer": (42, False)}
