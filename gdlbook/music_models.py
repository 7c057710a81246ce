"""The two generators of chapter 11 (music): a two-stream transformer and MuseGAN.

:class:`MusicTransformer` reads Foster's two token streams {Foster 2023, ch. 11}, a pitch and a
duration per event, as one ``(B, T, 2)`` integer tensor. Each stream has its own embedding
(token plus learned position, :class:`gdlbook.transformer.TokenAndPositionEmbedding`); the two
halves are concatenated into one vector per event, run through chapter 9's causal
:class:`gdlbook.transformer.TransformerBlock` s, and two output heads predict the next pitch and
the next duration. Its loss is the sum of the two cross-entropies, each also logged on its own.
:func:`generate` samples both heads with :func:`gdlbook.sampling.sample`.

:func:`build_musegan_generator` and :func:`build_musegan_critic` are the "hybrid" MuseGAN of
Dong et al. (2018), at a size chosen by ``width``: four inputs (chords and style shared by all
tracks, melody and groove one per track), temporal networks that turn the chords and each
track's melody vector into one vector per bar, one bar generator per track, and a critic of 3-D
convolutions over (bars, steps, pitches) with the tracks as channels. :class:`MuseGAN` trains
them as chapter 4's :class:`gdlbook.gans.WGANGP` does (its gradient penalty, its
:func:`gdlbook.gradients.value_and_grad`), on every backend.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from gdlbook import progress, sampling
from gdlbook.gans import WGANGP
from gdlbook.transformer import TokenAndPositionEmbedding, TransformerBlock, block_attention_maps
from gdlbook.upsampling import Conv2DTranspose

__all__ = ["MusicTransformer", "generate", "build_musegan_generator", "build_musegan_critic",
           "MuseGAN"]


@keras.saving.register_keras_serializable(package="gdlbook")
class MusicTransformer(keras.Model):
    """Events ``(B, T, 2)`` (pitch id, duration id) -> next-event logits ``(pitch, duration)``.

    Args:
        n_pitch, n_duration: the sizes of the two vocabularies.
        context: the longest sequence (number of learned positions).
        n_layer, n_head, n_embd: depth, heads and width of the transformer; each stream is
            embedded in ``n_embd // 2`` channels.
        dropout: dropout on the embeddings, attention weights and residual branches.
    """

    def __init__(self, n_pitch: int, n_duration: int, context: int, n_layer: int, n_head: int,
                 n_embd: int, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if n_embd % 2:
            raise ValueError(f"n_embd must be even (two halves), got {n_embd}")
        self.config = dict(n_pitch=n_pitch, n_duration=n_duration, context=context,
                           n_layer=n_layer, n_head=n_head, n_embd=n_embd, dropout=dropout)
        self.context = context
        self.pitch_embed = TokenAndPositionEmbedding(n_pitch, context, n_embd // 2,
                                                     name="pitch_embed")
        self.duration_embed = TokenAndPositionEmbedding(n_duration, context, n_embd // 2,
                                                        name="duration_embed")
        self.embed_drop = layers.Dropout(dropout)
        self.blocks = [TransformerBlock(n_embd, n_head, dropout, name=f"block_{i}")
                       for i in range(n_layer)]
        self.ln_f = layers.LayerNormalization(epsilon=1e-5, name="ln_f")
        self.pitch_head = layers.Dense(n_pitch, name="pitch_head")
        self.duration_head = layers.Dense(n_duration, name="duration_head")
        self.pitch_tracker = keras.metrics.Mean(name="pitch_loss")
        self.duration_tracker = keras.metrics.Mean(name="duration_loss")

    def _embed(self, tokens):
        tokens = ops.cast(tokens, "int32")
        return ops.concatenate([self.pitch_embed(tokens[..., 0]),
                                self.duration_embed(tokens[..., 1])], axis=-1)

    def call(self, tokens, training=None):
        x = self.embed_drop(self._embed(tokens), training=training)
        for block in self.blocks:
            x = block(x, training=training)
        x = self.ln_f(x)
        return (ops.cast(self.pitch_head(x), "float32"),
                ops.cast(self.duration_head(x), "float32"))

    def stream_losses(self, y, y_pred):
        """Mean cross-entropy (nats per event) of the next pitch and of the next duration."""
        y = ops.cast(y, "int32")
        ce = keras.losses.sparse_categorical_crossentropy
        return (ops.mean(ce(y[..., 0], y_pred[0], from_logits=True)),
                ops.mean(ce(y[..., 1], y_pred[1], from_logits=True)))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        pitch, duration = self.stream_losses(y, y_pred)
        self.pitch_tracker.update_state(pitch)
        self.duration_tracker.update_state(duration)
        return pitch + duration

    @property
    def metrics(self):
        return [*super().metrics, self.pitch_tracker, self.duration_tracker]

    def attention_maps(self, tokens) -> list[np.ndarray]:
        """The attention weights ``(B, H, T, T)`` of every block for ``tokens`` ``(B, T, 2)``."""
        x = self._embed(ops.convert_to_tensor(np.asarray(tokens), "int32"))
        return block_attention_maps(self.blocks, x)

    def get_config(self):
        return {**super().get_config(), **self.config}


def generate(model: MusicTransformer, prompt, length: int, temperature: float = 1.0,
             duration_temperature: float | None = None, seed=None,
             forbid: tuple[int, ...] = (0, 1)) -> np.ndarray:
    """Continue each prompt ``(B, P, 2)`` by ``length`` events, both streams sampled.

    At every step the model reads a window of ``context`` events (right-padded while the
    sequence is shorter; causality hides the padding), and the next pitch and the next duration
    are drawn from their two heads with :func:`gdlbook.sampling.sample`, at ``temperature`` and
    ``duration_temperature`` (default: the same). Token ids in ``forbid`` (padding and unknown)
    are never drawn. Returns ``(B, P + length, 2)``.
    """
    rng = np.random.default_rng(seed)
    seq = np.asarray(prompt, dtype="int32")
    if seq.ndim != 3 or seq.shape[2] != 2 or seq.shape[1] < 1:
        raise ValueError(f"prompt must be (batch, length >= 1, 2) token ids, got {seq.shape}")
    t_dur = temperature if duration_temperature is None else duration_temperature
    context = model.context
    for _ in progress.track(range(length), f"generating {len(seq)} x {length} events",
                            unit="event"):
        n = min(seq.shape[1], context)
        window = np.zeros((len(seq), context, 2), dtype="int32")
        window[:, :n] = seq[:, -n:]
        pitch_logits, dur_logits = model.predict_on_batch(window)
        picks = []
        for logits, t in ((pitch_logits, temperature), (dur_logits, t_dur)):
            logits = np.array(logits[:, n - 1], dtype="float64")
            logits[:, list(forbid)] = -np.inf
            picks.append(sampling.sample(logits, t, rng=rng))
        seq = np.concatenate([seq, np.stack(picks, axis=-1)[:, None].astype("int32")], axis=1)
    return seq


# --------------------------------------------------------------------------- MuseGAN


def _temporal_network(z_dim: int, n_bars: int, width: int, name: str) -> keras.Model:
    """One vector ``(z_dim,)`` -> one vector per bar ``(n_bars, z_dim)`` (transposed convs in time)."""
    z = keras.Input((z_dim,))
    x = layers.Reshape((1, 1, z_dim))(z)
    x = Conv2DTranspose(width, (2, 1), padding="valid")(x)                   # 2 bars
    x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))
    x = Conv2DTranspose(z_dim, (n_bars - 1, 1), padding="valid")(x)          # n_bars
    x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))
    return keras.Model(z, layers.Reshape((n_bars, z_dim))(x), name=name)


def _bar_generator(input_dim: int, n_bars: int, n_steps: int, n_pitches: int, width: int,
                   name: str) -> keras.Model:
    """The vectors of one track, one per bar ``(n_bars, input_dim)`` -> its piano roll.

    Every bar goes through the same layers on its own (the bars are stacked along the batch
    axis, so one call draws them all): a dense layer makes a ``(2, 1)`` grid of features,
    transposed convolutions double the time axis up to ``n_steps``, then spread the pitch axis
    into 7 octaves and 12 semitones (``n_pitches = 84``), as in MuseGAN. Output
    ``(n_bars, n_steps, n_pitches, 1)``.
    """
    doublings = int(np.log2(n_steps // 2))
    if 2 * 2 ** doublings != n_steps or n_pitches != 84:
        raise ValueError(f"need n_steps = 2 * 2**k and 84 pitches, got {n_steps}, {n_pitches}")
    v = keras.Input((n_bars, input_dim))
    x = ops.reshape(v, (-1, input_dim))                                            # bars -> batch
    x = layers.Dense(2 * 2 * width)(x)
    x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))
    x = layers.Reshape((2, 1, 2 * width))(x)
    for _ in range(doublings):
        x = Conv2DTranspose(width, (2, 1), strides=(2, 1), padding="same")(x)
        x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))
    x = Conv2DTranspose(width, (1, 7), strides=(1, 7), padding="same")(x)           # octaves
    x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))
    x = Conv2DTranspose(1, (1, 12), strides=(1, 12), padding="same",
                        activation="tanh")(x)                                      # semitones
    return keras.Model(v, ops.reshape(x, (-1, n_bars, n_steps, n_pitches, 1)), name=name)


def build_musegan_generator(z_dim: int = 32, n_tracks: int = 4, n_bars: int = 2,
                            n_steps: int = 16, n_pitches: int = 84,
                            width: int = 64) -> keras.Model:
    """MuseGAN's hybrid generator: ``[chords, style, melody, groove]`` -> ``(bars, steps, P, T)``.

    Inputs: ``chords`` and ``style`` ``(z_dim,)`` are shared by all tracks; ``melody`` and
    ``groove`` ``(n_tracks, z_dim)`` give each track its own. Chords and each melody go through
    a temporal network (one vector per bar: they change from bar to bar); style and groove stay
    the same in every bar. The bar generator of track ``t`` reads
    ``[chords_b, style, melody_{t,b}, groove_t]`` for each bar ``b``. Output in [-1, 1] (tanh).
    """
    chords = keras.Input((z_dim,), name="chords")
    style = keras.Input((z_dim,), name="style")
    melody = keras.Input((n_tracks, z_dim), name="melody")
    groove = keras.Input((n_tracks, z_dim), name="groove")
    chords_t = _temporal_network(z_dim, n_bars, 4 * width, "temporal_chords")(chords)
    style_t = layers.RepeatVector(n_bars)(style)                      # the same in every bar
    tracks = []
    for t in range(n_tracks):
        melody_t = _temporal_network(z_dim, n_bars, 4 * width, f"temporal_melody_{t}")(
            melody[:, t])
        groove_t = layers.RepeatVector(n_bars)(groove[:, t])
        bar_gen = _bar_generator(4 * z_dim, n_bars, n_steps, n_pitches, width,
                                 f"bar_generator_{t}")
        tracks.append(bar_gen(layers.Concatenate()([chords_t, style_t, melody_t, groove_t])))
    out = layers.Concatenate(axis=-1)(tracks) if n_tracks > 1 else tracks[0]
    return keras.Model([chords, style, melody, groove], out, name="musegan_generator")


def build_musegan_critic(n_tracks: int = 4, n_bars: int = 2, n_steps: int = 16,
                         n_pitches: int = 84, width: int = 64) -> keras.Model:
    """WGAN critic: ``(bars, steps, pitches, tracks)`` -> one unbounded score.

    3-D convolutions, tracks as channels: one across the bars, one per semitone then per octave
    (mirroring the generator), then strided ones along time; leaky ReLUs and no batch norm (the
    gradient penalty is per example), a dense layer and a linear output.
    """
    x_in = keras.Input((n_bars, n_steps, n_pitches, n_tracks), name="music")
    act = lambda y: layers.LeakyReLU(0.2)(y)  # noqa: E731
    x = act(layers.Conv3D(width, (n_bars, 1, 1), padding="valid")(x_in))          # bars -> 1
    x = act(layers.Conv3D(width, (1, 1, 12), strides=(1, 1, 12))(x))             # -> octaves
    x = act(layers.Conv3D(width, (1, 1, 7), strides=(1, 1, 7))(x))               # -> 1
    steps = n_steps
    while steps > 2:
        x = act(layers.Conv3D(width, (1, 2, 1), strides=(1, 2, 1))(x))
        steps //= 2
    x = act(layers.Conv3D(2 * width, (1, 2, 1), padding="valid")(x))
    x = act(layers.Dense(4 * width)(layers.Flatten()(x)))
    return keras.Model(x_in, layers.Dense(1)(x), name="musegan_critic")


class MuseGAN(WGANGP):
    """MuseGAN trained as a WGAN-GP: chapter 4's step, with four latent inputs.

    Only the latent draw and the generator call differ from :class:`gdlbook.gans.WGANGP`:
    :meth:`sample_latent` returns ``[chords, style, melody, groove]``. Train on piano rolls
    scaled to [-1, 1] (``2 * roll - 1``); :meth:`binarise` turns generated music into notes.
    """

    def __init__(self, generator, critic, z_dim: int, n_tracks: int, **kwargs):
        super().__init__(generator, critic, latent_dim=z_dim, **kwargs)
        self.n_tracks = n_tracks

    def sample_latent(self, n):
        z, t, s = self.latent_dim, self.n_tracks, self.seed_generator
        return [keras.random.normal((n, z), seed=s), keras.random.normal((n, z), seed=s),
                keras.random.normal((n, t, z), seed=s), keras.random.normal((n, t, z), seed=s)]

    def generate(self, z, labels=None, training: bool = False):
        return self.generator(list(z), training=training)

    @staticmethod
    def binarise(x) -> np.ndarray:
        """Generated values in [-1, 1] -> boolean notes: on where the output is positive."""
        return np.asarray(ops.convert_to_numpy(x)) > 0
