"""gdlbook.music: parsing and tokens round-trip through MIDI, piano rolls round-trip, audio has
the right length and pitch, MuseGAN's metrics on hand-made examples, bad input is refused by name."""

import os
from pathlib import Path

import numpy as np
import pytest

music21 = pytest.importorskip("music21")

from gdlbook import data, music  # noqa: E402


def _cello(stem):
    try:
        return data.load("bach_cello", verbose=False)[stem]
    except data.DataNotFoundError:
        pytest.skip("the cello suites are not available offline here (set GDL_DATA_DIR)")


def _sounding(stream, step=1 / 24):
    return music.roll_from_notes(music.notes_of(stream), step=step)


@pytest.mark.parametrize("stem", ["bwv1007_01", "bwv1007_02", "bwv1011_03"])
def test_movement_round_trips_through_midi(stem, tmp_path):
    """Tokens -> MIDI -> tokens is exact, and the written file sounds the same pitches at every
    moment as the original (1007_02 has ornaments that overlap; 1011_03 ends with a rest)."""
    score = music.parse(_cello(stem))
    events = music.tokenize(score)
    assert events[0] == (music.START, "0")
    assert any(p.startswith("K:") for p, _ in events) and any(p.startswith("TS:") for p, _ in events)
    path = music.write_midi(music.to_stream(events), tmp_path / "back.mid")
    back = music.parse(path)
    assert music.tokenize(back) == events
    a, b = _sounding(score), _sounding(back)
    assert a.shape == b.shape and np.array_equal(a, b)
    # and the durations add up to the length of the movement
    total = sum(music.Fraction(d) for p, d in events)
    assert float(total) == pytest.approx(float(score.highestTime) - _trailing_rest(score))


def _trailing_rest(score):
    notes = music.notes_of(score)
    return float(score.highestTime) - max(o + d for o, d, *_ in notes)


def test_not_midi_and_no_notes_are_refused_by_name(tmp_path):
    bad = tmp_path / "notes.mid"
    bad.write_text("this is not a MIDI file")
    with pytest.raises(music.MusicError, match="notes.mid: not a MIDI file"):
        music.parse(bad)
    silent = music21.stream.Part([music21.note.Rest(quarterLength=4)])
    path = music.write_midi(silent, tmp_path / "silence.mid")
    with pytest.raises(music.MusicError, match="silence.mid.*no notes"):
        music.parse(path)
    with pytest.raises(music.MusicError, match="my score.*no notes"):
        music.tokenize(music21.stream.Score([silent]), name="my score")
    with pytest.raises(FileNotFoundError, match="missing.mid"):
        music.parse(tmp_path / "missing.mid")


def test_piano_roll_round_trips_and_multitrack_midi(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((2, 16, 84, 4)) > 0.97
    flat = x.reshape(32, 84, 4)
    for t in range(4):
        notes = music.notes_from_roll(flat[..., t], step=1)
        assert np.array_equal(music.roll_from_notes(notes, step=1, n_pitches=84, length=32),
                              flat[..., t])
    score = music.tracks_to_stream(x, step=0.25)
    back = music.parse(music.write_midi(score, tmp_path / "tracks.mid"))
    notes = music.notes_of(back)
    assert {n[3] for n in notes} == {0, 1, 2, 3}
    for t in range(4):
        mine = [n for n in notes if n[3] == t]
        roll = music.roll_from_notes(mine, step=0.25, lowest=music.LOWEST, n_pitches=84,
                                     length=32)
        assert np.array_equal(roll, flat[..., t]), t


def test_chorale_segments_shape_and_content():
    chorale = np.full((40, 4), np.nan, dtype="float32")
    chorale[:, 0] = 60.0
    chorale[5:9, 3] = 36.0
    seg = music.chorale_segments([chorale])
    assert seg.shape == (1, 2, 16, 84, 4)                    # 40 steps: one piece of 32
    assert seg[0, :, :, 60 - music.LOWEST, 0].all()
    assert seg[0, 0, 5:9, 36 - music.LOWEST, 3].all() and seg[..., 3].sum() == 4
    assert seg[..., 1].sum() == 0


def _peak_hz(x, rate):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spec)]


@pytest.mark.parametrize("engine", ["additive", "fluidsynth"])
def test_render_has_expected_length_and_pitch(engine):
    if engine == "fluidsynth" and not (music.shutil.which("fluidsynth") and music.find_soundfont()):
        pytest.skip("FluidSynth or a General MIDI soundfont is not installed")
    part = music.to_stream([("A4", "2"), ("rest", "1"), ("A3", "1")], bpm=60)
    rate = 16_000
    x, used = music.render(part, rate, engine=engine, tail=0.5)
    assert used == engine and x.dtype == np.float32 and x.ndim == 1
    assert len(x) == int(4.5 * rate)                         # 4 beats at 60 bpm + tail
    # the strongest partial is a harmonic of the note (a cello's is not always the first);
    # a semitone off would put it 6 % of a harmonic number away
    for (a, b), f0 in (((0.2, 1.8), 440.0), ((3.1, 3.9), 220.0)):
        ratio = _peak_hz(x[int(a * rate):int(b * rate)], rate) / f0
        assert round(ratio) >= 1 and abs(ratio - round(ratio)) < 0.03 * round(ratio), ratio
    loud = np.sqrt(np.mean(x[int(0.2 * rate):int(1.5 * rate)] ** 2))
    rest = np.sqrt(np.mean(x[int(2.5 * rate):int(2.95 * rate)] ** 2))
    assert rest < 0.2 * loud                                 # the rest is (nearly) silent


def test_audio_player_embeds_a_decodable_compressed_sound():
    sf = pytest.importorskip("soundfile")
    part = music.to_stream([("C4", "1"), ("E4", "1"), ("G4", "2")], bpm=120)
    player = music.audio_player(part, "a C major arpeggio", engine="additive")
    html = player._repr_html_()
    assert "<audio controls" in html and f"data:{player.mime};base64," in html
    assert player.mime in ("audio/mpeg", "audio/ogg")
    import io
    back, rate = sf.read(io.BytesIO(player.data))
    assert rate == 16_000 and abs(len(back) / rate - 2.5) < 0.1     # 2 s of music + tail
    assert player.nbytes < 16_000 * 2 * 2.5 / 4                      # much smaller than WAV


def test_empty_bars_pitch_classes_qualified_notes():
    x = np.zeros((1, 2, 16, 84, 2), dtype=bool)
    c, e, g = (p - music.LOWEST for p in (60, 64, 67))
    x[0, 0, 0:8, c, 0] = x[0, 0, 0:8, e, 0] = x[0, 0, 0:8, g, 0] = True   # a triad, 8 steps
    x[0, 0, 8, c + 12, 0] = True                                        # C5: same class, 1 step
    x[0, 1, :, c, 1] = True                                             # track 1: one long C
    assert music.empty_bar_rate(x).tolist() == [0.5, 0.5]
    assert music.used_pitch_classes(x).tolist() == [3.0, 1.0]
    assert music.qualified_note_rate(x, min_steps=2).tolist() == [0.75, 1.0]
    assert music.qualified_note_rate(x, min_steps=9).tolist() == [0.0, 1.0]


def test_tonal_distance_matches_harte_centroids():
    def centroid(k):
        return np.array([np.sin(k * 7 * np.pi / 6), np.cos(k * 7 * np.pi / 6),
                         np.sin(k * 3 * np.pi / 2), np.cos(k * 3 * np.pi / 2),
                         0.5 * np.sin(k * 2 * np.pi / 3), 0.5 * np.cos(k * 2 * np.pi / 3)])

    x = np.zeros((1, 1, 16, 84, 3), dtype=bool)
    x[..., 60 - music.LOWEST, 0] = True     # C
    x[..., 67 - music.LOWEST, 1] = True     # G
    x[..., 72 - music.LOWEST, 2] = True     # C an octave up
    td = music.tonal_distance(x)
    assert td[(0, 2)] == pytest.approx(0.0)
    assert td[(0, 1)] == pytest.approx(np.linalg.norm(centroid(0) - centroid(7)))
    tritone = x.copy()
    tritone[..., 1] = False
    tritone[..., 66 - music.LOWEST, 1] = True
    assert music.tonal_distance(tritone)[(0, 1)] > td[(0, 1)]    # C-F# is farther than C-G
    x[0, 0, 4:8, :, 1] = False                                   # G silent in beat 2
    assert music.tonal_distance(x)[(0, 1)] == pytest.approx(td[(0, 1)])   # that beat is skipped


def test_vocabulary_and_unigram_baseline():
    v = music.Vocabulary(["a", "b", "b", "c"])
    assert v.tokens[:3] == ["<pad>", "<unk>", "b"] and len(v) == 5
    ids = v.encode(["b", "z"])
    assert ids.tolist() == [2, 1] and v.decode(ids) == ["b", "<unk>"]
    assert music.unigram_loss(np.arange(4), np.arange(4), 4) == pytest.approx(np.log(4))
    skewed = music.unigram_loss(np.zeros(98, int), np.zeros(10, int), 4)
    assert skewed == pytest.approx(-np.log(99 / 102))


def test_music_datasets_are_registered():
    for name in ("bach_cello", "bach_chorales"):
        assert name in data.names()
    try:
        valid = data.load("bach_chorales", "valid", verbose=False)
    except data.DataNotFoundError:
        pytest.skip("the chorales are not available offline here")
    assert len(valid) == 76 and all(c.shape[1] == 4 for c in valid)
    assert len(data.load("bach_cello", verbose=False)) == 41


def test_cello_suites_download_format_keys_movements_like_the_41(isolated_data):
    """The downloadable format (Grossman's 36 jsbach.net files, pinned on GitHub) is found
    under its own file names, yields the 41-movement keys minus the second menuets, bourrées
    and gavottes, and is checked by sha256 (these stand-in files fail the check)."""
    from gdlbook.data import catalog, registry

    tiny = music.write_midi(music.to_stream([(music.START, "0"), ("C3", "1")]),
                            isolated_data / "tiny.mid").read_bytes()
    folder = isolated_data / "bach_cello"
    folder.mkdir()
    for n in catalog.CELLO_GROSSMAN:
        (folder / f"{n}.mid").write_bytes(tiny)

    found = registry.locate(data.dataset("bach_cello"), "train")
    assert found.fmt.name == "grossman" and found.where == "$GDL_DATA_DIR"
    movements = found.fmt.decode(found.paths, "train")
    halves = {"bwv1007_06", "bwv1008_06", "bwv1010_06", "bwv1011_06", "bwv1012_06"}
    assert list(movements) == [k for k in catalog.CELLO_MOVEMENTS if k not in halves]
    assert {k: p.name for k, p in movements.items() if k[-2:] in ("05", "06", "07")} == {
        "bwv1007_05": "cs1-5men.mid", "bwv1007_07": "cs1-6gig.mid",
        "bwv1008_05": "cs2-5men.mid", "bwv1008_07": "cs2-6gig.mid",
        "bwv1009_05": "cs3-5bou.mid", "bwv1009_06": "cs3-6gig.mid",
        "bwv1010_05": "cs4-5bou.mid", "bwv1010_07": "cs4-6gig.mid",
        "bwv1011_05": "cs5-5gav.mid", "bwv1011_07": "cs5-6gig.mid",
        "bwv1012_05": "cs6-5gav.mid", "bwv1012_07": "cs6-6gig.mid"}
    assert movements["bwv1007_01"].name == "cs1-1pre.mid"
    assert music.notes_of(music.parse(movements["bwv1012_03"]))       # a MIDI file, parsed
    for spec in found.fmt.files["train"]:                             # pinned, checksummed
        assert len(spec.sha256) == 64 and spec.urls[0].startswith(
            f"https://raw.githubusercontent.com/{catalog.CELLO_GROSSMAN_REPO}/"
            f"{catalog.CELLO_GROSSMAN_COMMIT}/")
    with pytest.raises(data.CorruptDataError, match="checksum"):
        data.load("bach_cello", verbose=False)
