"""Music as data (chapter 11): parsing, tokens, piano rolls, MIDI, audio and MuseGAN's metrics.

Everything that turns music into arrays and back lives here, once:

- :func:`parse` reads a MIDI file with music21 {Cuthbert & Ariza 2010} and refuses, naming the
  file, anything that is not MIDI or has no notes.
- :func:`tokenize` turns a score into Foster's two token streams {Foster 2023, ch. 11}: one
  *pitch* token (a note such as ``"G3"``, a chord such as ``"D3.B3"``, ``"rest"``, a key or a
  time signature) and one *duration* token (quarter lengths as an exact fraction, ``"1/4"``)
  per event, after ``chordify()`` has cut the music into non-overlapping slices. Unlike
  Foster's code, a chord keeps all its pitches, so :func:`to_stream` writes back exactly what
  was read.
- :class:`Vocabulary` maps tokens to integers (0 is padding, 1 stands for a token never seen in
  training).
- Piano rolls: :func:`notes_of` lists the notes of a stream, :func:`roll_from_notes` and
  :func:`notes_from_roll` convert to and from a boolean ``(steps, pitches)`` grid;
  :func:`chorale_segments` cuts the JSB chorales into MuseGAN's ``(bars, steps, pitches, tracks)``
  tensors and :func:`tracks_to_stream` turns such a tensor into a multi-part score.
- Audio: :func:`render` plays a stream with FluidSynth and a General MIDI soundfont where they
  are installed, and otherwise with :func:`additive_synth`, a small NumPy synthesiser;
  :func:`audio_player` compresses the sound (MP3 at 16 kHz, mono) and embeds it in the page as
  an HTML ``<audio>`` element that plays without a kernel.
- MuseGAN's objective metrics {Dong et al. 2018}: :func:`empty_bar_rate`,
  :func:`used_pitch_classes`, :func:`qualified_note_rate` and :func:`tonal_distance`.
"""

from __future__ import annotations

import base64
import html
import io
import os
import shutil
import subprocess
import tempfile
import wave
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

__all__ = ["MusicError", "parse", "tokenize", "to_stream", "write_midi", "Vocabulary",
           "notes_of", "roll_from_notes", "notes_from_roll", "plot_notes", "chorale_roll",
           "chorale_segments", "tracks_to_stream", "plot_tracks", "find_soundfont", "render",
           "additive_synth", "encode_audio", "audio_player", "empty_bar_rate",
           "used_pitch_classes", "qualified_note_rate", "tonal_distance", "tonal_matrix",
           "unigram_loss", "tokenize_files", "START", "REST"]

START, REST = "START", "rest"
#: Denominators of the quarter lengths kept exactly (16ths, triplets, 32nds, sextuplets...).
MAX_DENOMINATOR = 48
#: The time grid of parsing, in divisions of a quarter note (24: 32nds and triplets fit).
GRID = 24
#: MuseGAN's pitch range: 84 pitches from C1 (MIDI 24) to B7 (MIDI 107).
LOWEST, N_PITCHES = 24, 84
#: General MIDI programs (0-based) used for the book's sound: cello, church organ.
CELLO, ORGAN = 42, 19


class MusicError(ValueError):
    """A file that is not MIDI, a score without notes, or a token that means nothing."""


def _ql(x) -> Fraction:
    return Fraction(x).limit_denominator(MAX_DENOMINATOR)


# --------------------------------------------------------------------------- parsing, tokens


def parse(path: str | os.PathLike, *, divisions: int = GRID):
    """Read a MIDI file into a ``music21.stream.Score``, on a grid of ``1/divisions`` quarters.

    music21 snaps onsets and ends to the grid. Its default, the nearer of a 1/4 and a 1/3
    grid, does not contain the differences of its own points (1/3 - 1/4 = 1/12), so a slice
    written back could land elsewhere; one grid fine enough for sixteenths, 32nds and triplets
    keeps every onset and length where it was.

    Raises :class:`MusicError`, naming the file, when it is not a MIDI file (no ``MThd``
    header), when music21 cannot read it, or when it holds no notes.
    """
    import music21

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(4)
    if head != b"MThd":
        raise MusicError(f"{path}: not a MIDI file (it does not start with the 'MThd' header)")
    try:
        score = music21.converter.parse(path, format="midi",
                                        quarterLengthDivisors=(divisions,))
    except Exception as e:  # noqa: BLE001 - music21 raises many kinds; all mean "unreadable"
        raise MusicError(f"{path}: music21 cannot read it as MIDI ({e})") from e
    if not len(score.flatten().notes):
        raise MusicError(f"{path}: the score has no notes")
    return score


def _pitch_token(pitches) -> str:
    return ".".join(p.nameWithOctave for p in sorted(set(pitches), key=lambda p: p.midi))


def tokenize(score, *, name: str = "the score") -> list[tuple[str, str]]:
    """The score as ``(pitch token, duration token)`` events, starting with ``(START, "0")``.

    The score is ``chordify()``-ed (every moment where the sounding notes change starts a new
    slice) and tied slices are merged (``stripTies()``). Each slice becomes one event: its
    pitches joined by ``.`` (low to high) or ``"rest"``, and its length in quarter notes as an
    exact fraction. Keys (``"K:G major"``) and time signatures (``"TS:3/4"``) are events of
    duration ``"0"``. A silent gap between slices becomes a rest, so the events tile the time
    line and :func:`to_stream` puts every note back at its onset.
    """
    import music21

    flat = score.chordify().stripTies().flatten()
    events, end = [(START, "0")], Fraction(0)
    for el in flat:
        if isinstance(el, music21.key.KeySignature):
            k = el if isinstance(el, music21.key.Key) else el.asKey()
            events.append((f"K:{k.tonic.name} {k.mode}", "0"))
            continue
        if isinstance(el, music21.meter.TimeSignature):
            events.append((f"TS:{el.ratioString}", "0"))
            continue
        if not isinstance(el, (music21.chord.Chord, music21.note.Note, music21.note.Rest)):
            continue
        offset, length = _ql(el.offset), _ql(el.quarterLength)
        if length == 0:       # grace notes take no time
            continue
        if offset > end:
            events.append((REST, str(offset - end)))
        token = REST if isinstance(el, music21.note.Rest) else _pitch_token(el.pitches)
        events.append((token, str(length)))
        end = max(end, offset + length)
    while events[-1][0] == REST:     # MIDI keeps no silence after the last note
        events.pop()
    if not any(p not in (START, REST) and not p.startswith(("K:", "TS:")) for p, _ in events):
        raise MusicError(f"{name}: the score has no notes")
    return events


TOKEN_CACHE_VERSION = 1


def tokenize_files(paths: Sequence[str | os.PathLike]) -> dict[str, list[tuple[str, str]]]:
    """:func:`tokenize` ``parse(path)`` for each file, as ``{file stem: events}``.

    Parsing and ``chordify()`` take a fraction of a second per movement, so the events are
    cached in the user cache (``$GDL_CACHE_DIR/music``) under the sha256 of each file.
    """
    import hashlib
    import json

    from gdlbook.data.registry import cache_dir

    out = {}
    folder = cache_dir() / "music"
    for path in map(Path, paths):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:24]
        cached = folder / f"{digest}-g{GRID}-v{TOKEN_CACHE_VERSION}.json"
        if cached.is_file():
            try:
                out[path.stem] = [tuple(e) for e in json.loads(cached.read_text())]
                continue
            except (ValueError, OSError):
                cached.unlink(missing_ok=True)
        events = tokenize(parse(path), name=str(path))
        folder.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(events))
        os.replace(tmp, cached)
        out[path.stem] = events
    return out


def to_stream(events: Iterable[tuple[str, str]], *, bpm: float = 100.0,
              program: int = CELLO):
    """Events (tokens, as from :func:`tokenize` or a model) as a one-part ``music21`` stream.

    Notes, chords and rests follow each other; key and time-signature tokens are placed where
    they occur; ``START`` and padding are skipped. The part gets a tempo (``bpm`` quarter notes
    a minute) and a General MIDI ``program`` (0-based; 42 is the cello).
    """
    import music21

    part = music21.stream.Part()
    inst = music21.instrument.Instrument()
    inst.midiProgram = program
    part.insert(0, inst)
    part.insert(0, music21.tempo.MetronomeMark(number=bpm))
    offset = Fraction(0)
    for pitch, duration in events:
        if pitch in (START, "", "<pad>", "<unk>"):
            continue
        if pitch.startswith("K:"):
            tonic, mode = pitch[2:].split(" ")
            part.insert(offset, music21.key.Key(tonic, mode))
            continue
        if pitch.startswith("TS:"):
            part.insert(offset, music21.meter.TimeSignature(pitch[3:]))
            continue
        try:
            length = Fraction(duration)
        except (ValueError, ZeroDivisionError):
            raise MusicError(f"{duration!r} is not a duration in quarter notes") from None
        if length <= 0:
            continue      # a model may pair a note with duration "0": it takes no time
        if pitch == REST:
            el = music21.note.Rest(quarterLength=length)
        elif "." in pitch:
            el = music21.chord.Chord(pitch.split("."), quarterLength=length)
        else:
            try:
                el = music21.note.Note(pitch, quarterLength=length)
            except Exception as e:  # noqa: BLE001
                raise MusicError(f"{pitch!r} is not a pitch token") from e
        part.insert(offset, el)
        offset += length
    return part


def write_midi(stream, path: str | os.PathLike) -> Path:
    """Write a music21 stream as a MIDI file; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stream.write("midi", fp=str(path))
    return path


class Vocabulary:
    """Tokens <-> integers. Index 0 is ``"<pad>"``, 1 is ``"<unk>"`` (a token unseen in training).

    Built from training tokens only, most frequent first, so a held-out movement is encoded
    with what the model could have learned.
    """

    PAD, UNK = "<pad>", "<unk>"

    def __init__(self, tokens: Iterable[str]):
        counts = Counter(tokens)
        self.tokens = [self.PAD, self.UNK] + [t for t, _ in counts.most_common()
                                              if t not in (self.PAD, self.UNK)]
        self.index = {t: i for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Iterable[str]) -> np.ndarray:
        return np.array([self.index.get(t, 1) for t in tokens], dtype="int32")

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[int(i)] for i in ids]


def unigram_loss(train_ids: np.ndarray, eval_ids: np.ndarray, vocab_size: int) -> float:
    """Cross-entropy (nats per token) of ``eval_ids`` under the training frequencies.

    The baseline that knows how often each token occurs but nothing about order. Counts are
    add-one smoothed over the ``vocab_size`` tokens, so a token unseen in training costs a
    finite amount.
    """
    counts = np.bincount(np.asarray(train_ids).ravel(), minlength=vocab_size) + 1.0
    logp = np.log(counts / counts.sum())
    return float(-logp[np.asarray(eval_ids).ravel()].mean())


# --------------------------------------------------------------------------- piano rolls


def notes_of(stream) -> list[tuple[float, float, int, int]]:
    """The notes of a stream as ``(onset, duration, MIDI pitch, part)`` in quarter notes.

    A chord gives one note per pitch; tied notes are merged first. Parts are numbered in
    score order (a one-part stream: all 0).
    """
    import music21

    parts = list(stream.parts) if isinstance(stream, music21.stream.Score) else [stream]
    out = []
    for i, part in enumerate(parts):
        for n in part.stripTies().flatten().notes:
            for p in n.pitches:
                out.append((float(_ql(n.offset)), float(_ql(n.quarterLength)), int(p.midi), i))
    return sorted(out)


def roll_from_notes(notes: Sequence[tuple], step: float = 0.25, lowest: int = 0,
                    n_pitches: int = 128, length: int | None = None) -> np.ndarray:
    """A boolean piano roll ``(steps, n_pitches)``: True where a pitch sounds during a step.

    ``notes`` are ``(onset, duration, pitch, ...)`` in quarter notes; a step lasts ``step``
    quarter notes (0.25: a sixteenth). Pitch ``lowest`` is column 0. Onsets and ends are
    rounded to the grid; notes out of the pitch range are dropped.
    """
    ends = [round((n[0] + n[1]) / step) for n in notes]
    steps = length if length is not None else max(ends, default=0)
    roll = np.zeros((steps, n_pitches), dtype=bool)
    for (onset, _, pitch, *_), end in zip(notes, ends):
        if 0 <= pitch - lowest < n_pitches:
            roll[round(onset / step):end, pitch - lowest] = True
    return roll


def notes_from_roll(roll: np.ndarray, step: float = 0.25,
                    lowest: int = 0) -> list[tuple[float, float, int]]:
    """The notes of a boolean roll ``(steps, pitches)``: each run of True is one held note.

    A roll cannot tell a held note from the same note struck again on the next step (MuseGAN
    has the same ambiguity), so :func:`roll_from_notes` of the result gives the roll back
    exactly, but repeated notes come back as one long note.
    """
    roll = np.asarray(roll, dtype=bool)
    padded = np.pad(roll, ((1, 1), (0, 0))).astype(np.int8)
    diff = np.diff(padded, axis=0)
    out = []
    for p in range(roll.shape[1]):
        starts, ends = np.flatnonzero(diff[:, p] == 1), np.flatnonzero(diff[:, p] == -1)
        out += [(float(s * step), float((e - s) * step), int(p + lowest))
                for s, e in zip(starts, ends)]
    return sorted(out)


TRACK_COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd")


def _draw_boxes(ax, notes: Sequence[tuple], colour: str, height: float, linewidth: float):
    """Notes ``(onset, duration, pitch, ...)`` as one collection of boxes (one artist, fast)."""
    from matplotlib.collections import PolyCollection

    h = height / 2
    boxes = [((o, p - h), (o + d, p - h), (o + d, p + h), (o, p + h)) for o, d, p, *_ in notes]
    ax.add_collection(PolyCollection(boxes, facecolors=colour, edgecolors="k",
                                     linewidths=linewidth))


def plot_notes(ax, notes: Sequence[tuple], *, title: str = "", colour: str = "#1f77b4",
               step_label: str = "time (quarter notes)"):
    """Draw notes ``(onset, duration, pitch, [part])`` as bars on a pitch-time grid."""
    by_colour: dict[str, list] = {}
    for n in notes:
        c = TRACK_COLOURS[n[3] % len(TRACK_COLOURS)] if len(n) > 3 and n[3] else colour
        by_colour.setdefault(c, []).append(n)
    for c, group in by_colour.items():
        _draw_boxes(ax, group, c, 0.8, 0.3)
    if notes:
        lo, hi = min(n[2] for n in notes), max(n[2] for n in notes)
        ax.set_ylim(lo - 2, hi + 2)
        ax.set_xlim(0, max(n[0] + n[1] for n in notes))
        cs = [p for p in range(lo - 1, hi + 2) if p % 12 == 0]
        ax.set_yticks(cs, [f"C{p // 12 - 1}" for p in cs])
    ax.set(xlabel=step_label, ylabel="pitch", title=title)
    ax.grid(axis="x", alpha=0.3)


def chorale_roll(chorale: np.ndarray, lowest: int = LOWEST,
                 n_pitches: int = N_PITCHES) -> np.ndarray:
    """One JSB chorale ``(T, voices)`` of MIDI pitches (NaN: rest) as a roll ``(T, P, voices)``."""
    chorale = np.asarray(chorale, dtype="float64")
    roll = np.zeros((len(chorale), n_pitches, chorale.shape[1]), dtype=bool)
    t, v = np.nonzero(~np.isnan(chorale))
    p = chorale[t, v].astype(int) - lowest
    ok = (p >= 0) & (p < n_pitches)
    roll[t[ok], p[ok], v[ok]] = True
    return roll


def chorale_segments(chorales: Sequence[np.ndarray], bars: int = 2,
                     steps_per_bar: int = 16) -> np.ndarray:
    """Cut chorales into MuseGAN's tensors ``(N, bars, steps_per_bar, 84, voices)``, boolean.

    Each chorale is cut into consecutive, non-overlapping pieces of ``bars`` bars from its first
    step on (a leftover shorter than that is dropped); the four voices (soprano, alto, tenor,
    bass) are the tracks.
    """
    span, out = bars * steps_per_bar, []
    for c in chorales:
        roll = chorale_roll(c)
        for s in range(0, len(roll) - span + 1, span):
            out.append(roll[s:s + span].reshape(bars, steps_per_bar, *roll.shape[1:]))
    if not out:
        raise MusicError(f"no chorale is {span} steps long")
    return np.stack(out)


def tracks_to_stream(x: np.ndarray, *, bpm: float = 80.0, program: int = ORGAN,
                     step: float = 0.25, lowest: int = LOWEST):
    """A MuseGAN tensor ``(bars, steps, pitches, tracks)`` (True/positive: on) as a Score.

    Each track becomes a part (the General MIDI ``program``, 19: church organ); each run of
    active steps in a pitch is one note. Bars follow each other.
    """
    import music21

    x = np.asarray(x) > 0
    bars, steps, pitches, tracks = x.shape
    flat = x.reshape(bars * steps, pitches, tracks)
    score = music21.stream.Score()
    total = bars * steps * step
    for t in range(tracks):
        part = music21.stream.Part()
        inst = music21.instrument.Instrument()
        inst.midiProgram = program
        part.insert(0, inst)
        if t == 0:
            part.insert(0, music21.tempo.MetronomeMark(number=bpm))
        for onset, dur, pitch in notes_from_roll(flat[..., t], step, lowest):
            part.insert(onset, music21.note.Note(pitch, quarterLength=dur))
        if not len(part.notes):
            part.insert(0, music21.note.Rest(quarterLength=total))
        score.insert(0, part)
    return score


def plot_tracks(ax, x: np.ndarray, *, names: Sequence[str] = ("S", "A", "T", "B"),
                title: str = "", lowest: int = LOWEST, steps_per_bar: int | None = None):
    """Draw a MuseGAN tensor ``(bars, steps, pitches, tracks)``, one colour per track."""
    x = np.asarray(x) > 0
    bars, steps = x.shape[:2]
    flat = x.reshape(bars * steps, *x.shape[2:])
    notes = [(o, d, p, t) for t in range(flat.shape[-1])
             for o, d, p in notes_from_roll(flat[..., t], 1, lowest)]
    for t in range(flat.shape[-1]):
        _draw_boxes(ax, [n for n in notes if n[3] == t], TRACK_COLOURS[t % 4], 0.9, 0.2)
    for b in range(1, bars):
        ax.axvline(b * (steps_per_bar or steps), color="k", lw=0.8, ls="--")
    lo = min((n[2] for n in notes), default=48)
    hi = max((n[2] for n in notes), default=72)
    ax.set_ylim(lo - 2, hi + 2)
    ax.set_xlim(0, bars * steps)
    cs = [p for p in range(lo - 1, hi + 2) if p % 12 == 0]
    ax.set_yticks(cs, [f"C{p // 12 - 1}" for p in cs])
    ax.set(xlabel="time (sixteenths)", title=title)
    handles = [ax.plot([], [], color=TRACK_COLOURS[i], lw=4)[0] for i in range(len(names))]
    ax.legend(handles, names, loc="upper right", fontsize="x-small", ncol=len(names))


# --------------------------------------------------------------------------- audio

SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2",
              "/usr/share/soundfonts/FluidR3_GM.sf2", "/usr/share/soundfonts/default.sf2")


def find_soundfont() -> Path | None:
    """A General MIDI soundfont: ``$GDL_SOUNDFONT``, else the ones Debian's packages install."""
    env = os.environ.get("GDL_SOUNDFONT", "").strip()
    for candidate in ([env] if env else []) + list(SOUNDFONTS):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _seconds(stream) -> float:
    """The length of a stream in seconds at its first tempo mark (100 bpm without one)."""
    import music21

    marks = list(stream.recurse().getElementsByClass(music21.tempo.MetronomeMark))
    bpm = marks[0].getQuarterBPM() if marks else 100.0
    return float(stream.highestTime) * 60.0 / bpm, bpm


def additive_synth(notes: Sequence[tuple], bpm: float, rate: int = 16_000,
                   seconds: float | None = None) -> np.ndarray:
    """A small synthesiser: each note a sum of five harmonics under an attack-decay envelope.

    ``notes`` are ``(onset, duration, pitch, ...)`` in quarter notes at ``bpm``. Returns mono
    float32 samples in [-1, 1], ``seconds`` long (default: until the last note ends).
    """
    spq = 60.0 / bpm
    end = max((n[0] + n[1] for n in notes), default=0.0) * spq
    total = int(round((seconds if seconds is not None else end) * rate))
    out = np.zeros(total, dtype=np.float64)
    harmonics = np.array([1.0, 0.5, 0.33, 0.25, 0.2])
    release = 0.08
    for onset, dur, pitch, *_ in notes:
        start = int(round(onset * spq * rate))
        n = int(round((dur * spq + release) * rate))
        n = min(n, total - start)
        if n <= 0:
            continue
        t = np.arange(n) / rate
        f0 = 440.0 * 2 ** ((pitch - 69) / 12)
        ks = np.arange(1, len(harmonics) + 1)[:, None]
        ok = (ks[:, 0] * f0) < rate / 2                     # no aliasing
        wave_ = (harmonics[ok, None] * np.sin(2 * np.pi * f0 * ks[ok] * t)).sum(0)
        env = np.minimum(1.0, t / 0.01) * np.exp(-2.5 * t)  # 10 ms attack, plucked decay
        off = dur * spq
        env *= np.clip(1.0 - (t - off) / release, 0.0, 1.0)
        out[start:start + n] += wave_ * env
    peak = np.max(np.abs(out)) if total else 0.0
    return (0.8 * out / peak if peak > 0 else out).astype("float32")


def render(stream, rate: int = 16_000, *, engine: str = "auto",
           tail: float = 0.5) -> tuple[np.ndarray, str]:
    """Play a music21 stream into mono float32 samples; returns ``(samples, engine used)``.

    ``engine="fluidsynth"`` writes the stream as MIDI and renders it with the FluidSynth
    program and a General MIDI soundfont (:func:`find_soundfont`); ``"additive"`` uses
    :func:`additive_synth`; ``"auto"`` takes FluidSynth when both it and a soundfont are
    installed. The result is exactly ``tail`` seconds longer than the music (at its tempo), so
    the last note can ring.
    """
    seconds, bpm = _seconds(stream)
    total = int(round((seconds + tail) * rate))
    fluid, font = shutil.which("fluidsynth"), find_soundfont()
    if engine == "auto":
        engine = "fluidsynth" if fluid and font else "additive"
    if engine == "additive":
        return additive_synth(notes_of(stream), bpm, rate, seconds + tail), engine
    if engine != "fluidsynth":
        raise ValueError(f"engine must be 'auto', 'fluidsynth' or 'additive', got {engine!r}")
    if not (fluid and font):
        raise RuntimeError("FluidSynth needs the fluidsynth program and a General MIDI "
                           "soundfont (Debian: apt-get install fluidsynth fluid-soundfont-gm)")
    with tempfile.TemporaryDirectory(prefix="gdl-audio-") as tmp:
        mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        write_midi(stream, mid)
        cmd = [fluid, "-ni", "-q", "-g", "0.8", "-r", str(rate), "-T", "wav", "-O", "s16",
               "-F", str(wav), str(font), str(mid)]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if run.returncode or not wav.is_file():
            raise RuntimeError(f"fluidsynth failed ({run.returncode}): {run.stderr[-500:]}")
        with wave.open(str(wav)) as w:
            channels = w.getnchannels()
            raw = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    samples = raw.reshape(-1, channels).astype("float32").mean(axis=1) / 32768.0
    out = np.zeros(total, dtype="float32")
    out[:min(total, len(samples))] = samples[:total]
    return out, engine


def encode_audio(samples: np.ndarray, rate: int = 16_000) -> tuple[bytes, str]:
    """Compress mono samples: ``(bytes, MIME type)``.

    MP3 through ``soundfile`` (libsndfile with LAME, in its wheels), which every browser plays;
    Ogg Vorbis where that libsndfile has no MP3; 16-bit WAV (about ten times larger) where
    ``soundfile`` is missing.
    """
    x = np.clip(np.asarray(samples, dtype="float32"), -1.0, 1.0)
    try:
        import soundfile as sf
    except ImportError:
        sf = None
    if sf is not None:
        formats = sf.available_formats()
        for fmt, subtype, mime in (("MP3", "MPEG_LAYER_III", "audio/mpeg"),
                                   ("OGG", "VORBIS", "audio/ogg")):
            if fmt in formats:
                buf = io.BytesIO()
                sf.write(buf, x, rate, format=fmt, subtype=subtype)
                return buf.getvalue(), mime
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((x * 32767).astype("<i2").tobytes())
    return buf.getvalue(), "audio/wav"


class AudioPlayer:
    """An ``<audio>`` element with its sound inline (base64), shown by Jupyter and the HTML book."""

    def __init__(self, data: bytes, mime: str, title: str, seconds: float, engine: str):
        self.data, self.mime, self.title = data, mime, title
        self.seconds, self.engine = seconds, engine

    @property
    def nbytes(self) -> int:
        return len(self.data)

    def _repr_html_(self) -> str:
        src = base64.b64encode(self.data).decode("ascii")
        kb = f"{self.nbytes / 1024:.0f} kB"
        return (f'<figure class="gdl-audio" style="margin:0.3em 0">'
                f'<figcaption style="font-size:90%">{html.escape(self.title)} '
                f'<span style="color:#777">({self.seconds:.1f} s, {self.engine}, {kb})</span>'
                f'</figcaption><audio controls preload="metadata" '
                f'src="data:{self.mime};base64,{src}"></audio></figure>')


def audio_player(stream, title: str, *, rate: int = 16_000, engine: str = "auto",
                 max_seconds: float | None = 30.0) -> AudioPlayer:
    """Render a stream (:func:`render`), keep at most ``max_seconds``, compress, embed.

    A short fade-out ends a cut excerpt without a click.
    """
    samples, used = render(stream, rate, engine=engine)
    if max_seconds is not None and len(samples) > max_seconds * rate:
        samples = samples[:int(max_seconds * rate)].copy()
        fade = min(len(samples), int(0.5 * rate))
        samples[-fade:] *= np.linspace(1.0, 0.0, fade, dtype="float32")
    data, mime = encode_audio(samples, rate)
    return AudioPlayer(data, mime, title, len(samples) / rate, used)


# --------------------------------------------------------------------------- MuseGAN metrics


def _bars(x: np.ndarray) -> np.ndarray:
    """``(N, bars, steps, pitches, tracks)`` or ``(bars, ...)`` -> ``(all bars, steps, P, T)``."""
    x = np.asarray(x) > 0
    if x.ndim == 4:
        x = x[None]
    if x.ndim != 5:
        raise ValueError(f"expected (N, bars, steps, pitches, tracks), got shape {x.shape}")
    return x.reshape(-1, *x.shape[2:])


def empty_bar_rate(x: np.ndarray) -> np.ndarray:
    """EB of Dong et al. (2018): the share of bars in which a track plays nothing, per track."""
    bars = _bars(x)
    return (~bars.any(axis=(1, 2))).mean(axis=0)


def _chroma(bars: np.ndarray, lowest: int) -> np.ndarray:
    """Fold pitches into the 12 pitch classes: ``(..., pitches, tracks)`` -> ``(..., 12, tracks)``."""
    p = bars.shape[-2]
    classes = (np.arange(p) + lowest) % 12
    onehot = (classes[:, None] == np.arange(12)[None]).astype(np.float64)   # (P, 12)
    return np.einsum("...pt,pc->...ct", bars.astype(np.float64), onehot)


def used_pitch_classes(x: np.ndarray, lowest: int = LOWEST) -> np.ndarray:
    """UPC of Dong et al. (2018): pitch classes used per bar (0-12), per track.

    Averaged over the bars in which the track plays (an empty bar has no pitch classes to
    count; it is counted by :func:`empty_bar_rate`). NaN for a track that never plays.
    """
    bars = _bars(x)
    used = (_chroma(bars.any(axis=1), lowest) > 0).sum(axis=-2)      # (bars, tracks)
    playing = bars.any(axis=(1, 2))
    with np.errstate(invalid="ignore"):
        return np.where(playing.any(0), (used * playing).sum(0) / playing.sum(0), np.nan)


def qualified_note_rate(x: np.ndarray, min_steps: int = 3) -> np.ndarray:
    """QN of Dong et al. (2018): the share of notes at least ``min_steps`` steps long, per track.

    A note is a run of active steps of one pitch within a bar. Dong et al. count notes of at
    least 3 steps at their resolution of 24 steps a beat (a 32nd note) as qualified; choose
    ``min_steps`` for the grid at hand. NaN for a track without notes.
    """
    bars = _bars(x)
    padded = np.pad(bars, ((0, 0), (1, 1), (0, 0), (0, 0))).astype(np.int8)
    d = np.diff(padded, axis=1)                      # +1 at onsets, -1 after the last step
    starts = np.argwhere(d == 1)
    ends = np.argwhere(d == -1)                      # same order: bar, pitch, track sorted
    order_s = np.lexsort((starts[:, 1], starts[:, 2], starts[:, 3], starts[:, 0]))
    order_e = np.lexsort((ends[:, 1], ends[:, 2], ends[:, 3], ends[:, 0]))
    starts, ends = starts[order_s], ends[order_e]
    lengths = ends[:, 1] - starts[:, 1]
    tracks = starts[:, 3]
    n = bars.shape[-1]
    total = np.bincount(tracks, minlength=n).astype(float)
    good = np.bincount(tracks, weights=lengths >= min_steps, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, good / total, np.nan)


def tonal_matrix(r1: float = 1.0, r2: float = 1.0, r3: float = 0.5) -> np.ndarray:
    """Harte et al.'s (2006) 6x12 map from a chroma vector to its tonal centroid.

    Three circles, of fifths, minor thirds and major thirds, with radii ``r1, r2, r3``.
    """
    k = np.arange(12)
    return np.stack([r1 * np.sin(k * 7 * np.pi / 6), r1 * np.cos(k * 7 * np.pi / 6),
                     r2 * np.sin(k * 3 * np.pi / 2), r2 * np.cos(k * 3 * np.pi / 2),
                     r3 * np.sin(k * 2 * np.pi / 3), r3 * np.cos(k * 2 * np.pi / 3)])


def tonal_distance(x: np.ndarray, steps_per_beat: int = 4, lowest: int = LOWEST,
                   pairs: Sequence[tuple[int, int]] | None = None) -> dict[tuple[int, int], float]:
    """TD of Dong et al. (2018): how far apart two tracks are harmonically, per pair of tracks.

    For every beat, each track's chroma (the steps of the beat summed) is normalised to sum to
    one and mapped to its tonal centroid (:func:`tonal_matrix`); TD is the Euclidean distance
    between the two centroids, averaged over the beats in which both tracks play. Smaller is
    more consonant. NaN for a pair that never plays together.
    """
    bars = _bars(x)
    nb, steps = bars.shape[:2]
    if steps % steps_per_beat:
        raise ValueError(f"{steps} steps per bar is not a whole number of beats")
    beats = bars.reshape(nb * steps // steps_per_beat, steps_per_beat, *bars.shape[2:])
    chroma = _chroma(beats.sum(axis=1), lowest)                     # (beats, 12, tracks)
    sums = chroma.sum(axis=1)                                        # (beats, tracks)
    with np.errstate(invalid="ignore", divide="ignore"):
        centroid = np.einsum("dc,bct->bdt", tonal_matrix(), chroma / sums[:, None])
    n = bars.shape[-1]
    pairs = pairs or [(i, j) for i in range(n) for j in range(i + 1, n)]
    out = {}
    for i, j in pairs:
        both = (sums[:, i] > 0) & (sums[:, j] > 0)
        d = np.linalg.norm(centroid[both, :, i] - centroid[both, :, j], axis=1)
        out[(i, j)] = float(d.mean()) if len(d) else float("nan")
    return out
