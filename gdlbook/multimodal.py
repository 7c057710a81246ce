"""Text and images in one space: a word tokenizer, the contrastive loss and a small CLIP (chapter 13).

Chapter 13 trains these on the captioned shapes of :mod:`gdlbook.data.shapes`:

- :class:`Tokenizer` turns captions into fixed-length rows of word ids (0 is padding);
- :func:`contrastive_loss` is CLIP's symmetric cross-entropy over the similarities of a batch
  {Radford et al. 2021};
- :func:`build_image_encoder` is a small convolutional network, :class:`TextEncoder` the
  transformer blocks of :mod:`gdlbook.transformer` run without the causal mask, and
  :class:`CLIP` trains the two with a learned temperature through ``compute_loss``, so
  ``fit()`` works on TensorFlow, PyTorch and JAX;
- :func:`recall_at_k` scores retrieval.
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
import numpy as np
from keras import layers, ops

from gdlbook.transformer import TokenAndPositionEmbedding, TransformerBlock

PAD = "<pad>"


class Tokenizer:
    """Words to ids over a fixed vocabulary; every row padded with 0 to ``context`` ids.

    A word outside the vocabulary, or a caption longer than ``context`` words, is an error that
    names it: the text encoder has no embedding for it.
    """

    def __init__(self, words: Sequence[str], context: int):
        self.words = [PAD, *sorted(set(words) - {PAD})]
        self.ids = {w: i for i, w in enumerate(self.words)}
        self.context = context

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), context)`` int32 ids, padded on the right with 0."""
        out = np.zeros((len(texts), self.context), dtype="int32")
        for row, text in enumerate(texts):
            words = text.split()
            if len(words) > self.context:
                raise ValueError(f"{text!r} has {len(words)} words; the context is "
                                 f"{self.context}")
            for col, word in enumerate(words):
                if word not in self.ids:
                    raise ValueError(f"{word!r} (in {text!r}) is not in the vocabulary: "
                                     f"{', '.join(self.words[1:])}")
                out[row, col] = self.ids[word]
        return out

    def decode(self, ids) -> list[str]:
        return [" ".join(self.words[i] for i in row if i) for row in np.asarray(ids)]


def contrastive_loss(image_embeddings, text_embeddings, logit_scale):
    """CLIP's symmetric loss for a batch of ``B`` matching (image, text) pairs.

    The embeddings are L2-normalised ``(B, E)``; ``logits = scale * images @ texts.T``. Row
    ``i`` is a ``B``-way classification of which text belongs to image ``i`` (the answer is
    ``i``), column ``j`` the same for text ``j``; the loss is the mean of the two
    cross-entropies.
    """
    logits = logit_scale * ops.matmul(image_embeddings, ops.transpose(text_embeddings))
    logits = ops.cast(logits, "float32")
    image_to_text = -ops.mean(ops.diagonal(ops.log_softmax(logits, axis=1)))
    text_to_image = -ops.mean(ops.diagonal(ops.log_softmax(logits, axis=0)))
    return 0.5 * (image_to_text + text_to_image)


def l2_normalize(x, axis: int = -1):
    return x / ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=axis, keepdims=True), 1e-12))


def build_image_encoder(image_size: int, widths: Sequence[int] = (32, 64, 128),
                        embed_dim: int = 64) -> keras.Model:
    """A convolutional image encoder: ``(N, S, S, 3)`` → ``(N, embed_dim)`` (not normalised).

    Pixels in [0, 1] are first mapped to [-1, 1]. Each stage is a 3×3 convolution and a strided
    3×3 convolution that halves the resolution, followed by a layer normalisation over the
    channels (the same in training and inference, unlike a batch normalisation; without it the
    embeddings of all images start nearly equal and training stalls at chance on some
    backends). The last feature map is flattened rather than averaged, so where things are
    survives: the relation "above" is a fact about positions.
    """
    images = keras.Input((image_size, image_size, 3), name="images")
    x = layers.Rescaling(2.0, offset=-1.0)(images)
    for width in widths:
        x = layers.Conv2D(width, 3, padding="same", activation="gelu")(x)
        x = layers.Conv2D(width, 3, strides=2, padding="same", activation="gelu")(x)
        x = layers.LayerNormalization(epsilon=1e-5)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(2 * embed_dim, activation="gelu")(x)
    return keras.Model(images, layers.Dense(embed_dim)(x), name="image_encoder")


@keras.saving.register_keras_serializable(package="gdlbook")
class TextEncoder(layers.Layer):
    """Word ids ``(N, T)`` → one vector ``(N, embed_dim)`` per text (not normalised).

    Token and position embeddings, ``n_layer`` pre-norm :class:`~gdlbook.transformer.TransformerBlock`
    s with ``causal=False`` (every word sees the whole caption) and the padding masked out, a
    final LayerNorm, the mean over the real words, and a linear projection.
    """

    def __init__(self, vocab_size: int, context: int, n_layer: int = 2, n_head: int = 4,
                 n_embd: int = 64, embed_dim: int = 64, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.config = dict(vocab_size=vocab_size, context=context, n_layer=n_layer,
                           n_head=n_head, n_embd=n_embd, embed_dim=embed_dim, dropout=dropout)
        self.embed = TokenAndPositionEmbedding(vocab_size, context, n_embd, name="embed")
        self.blocks = [TransformerBlock(n_embd, n_head, dropout, causal=False, name=f"block_{i}")
                       for i in range(n_layer)]
        self.ln_f = layers.LayerNormalization(epsilon=1e-5, name="ln_f")
        self.proj = layers.Dense(embed_dim, name="proj")

    def build(self, input_shape):
        n_embd = self.config["n_embd"]
        self.embed.build(input_shape)
        for block in self.blocks:
            block.build((*input_shape, n_embd))
        self.ln_f.build((*input_shape, n_embd))
        self.proj.build((input_shape[0], n_embd))
        self.built = True

    def call(self, tokens, training=None):
        real = ops.not_equal(tokens, 0)                             # (N, T): words, not padding
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x, training=training, key_mask=real)
        x = self.ln_f(x)
        weights = ops.expand_dims(ops.cast(real, x.dtype), -1)
        pooled = ops.sum(x * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)
        return self.proj(pooled)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.config["embed_dim"])

    def get_config(self):
        return {**super().get_config(), **self.config}


class CLIP(keras.Model):
    """Contrastive language–image pre-training: two encoders and a learned temperature.

    ``call({"images": ..., "tokens": ...})`` returns the two batches of L2-normalised
    embeddings; :meth:`compute_loss` is :func:`contrastive_loss` at the current
    :meth:`logit_scale`. The scale is learned as its logarithm, starts at ``1 / 0.07`` and is
    clipped at ``max_logit_scale`` = 100, as {Radford et al. 2021} do.
    """

    def __init__(self, image_encoder: keras.Model, text_encoder: layers.Layer,
                 init_temperature: float = 0.07, max_logit_scale: float = 100.0, **kwargs):
        super().__init__(**kwargs)
        self.image_encoder, self.text_encoder = image_encoder, text_encoder
        self.max_log_scale = math.log(max_logit_scale)
        self.log_scale = self.add_weight(
            shape=(), name="log_scale",
            initializer=keras.initializers.Constant(math.log(1.0 / init_temperature)))

    def logit_scale(self):
        """``exp(log_scale)``, at most ``max_logit_scale``: the inverse temperature."""
        return ops.exp(ops.minimum(self.log_scale, self.max_log_scale))

    def call(self, inputs, training=False):
        images = l2_normalize(self.image_encoder(inputs["images"], training=training))
        texts = l2_normalize(self.text_encoder(inputs["tokens"], training=training))
        return images, texts

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        images, texts = y_pred
        return contrastive_loss(images, texts, self.logit_scale())

    def encode_images(self, images, batch_size: int = 256) -> np.ndarray:
        """L2-normalised image embeddings as a NumPy array (inference mode)."""
        return np.concatenate([ops.convert_to_numpy(l2_normalize(
            self.image_encoder(ops.convert_to_tensor(images[i:i + batch_size]), training=False)))
            for i in range(0, len(images), batch_size)])

    def encode_texts(self, tokens, batch_size: int = 256) -> np.ndarray:
        """L2-normalised text embeddings of ``tokens`` (ids) as a NumPy array (inference mode)."""
        tokens = np.asarray(tokens, dtype="int32")
        return np.concatenate([ops.convert_to_numpy(l2_normalize(
            self.text_encoder(ops.convert_to_tensor(tokens[i:i + batch_size]), training=False)))
            for i in range(0, len(tokens), batch_size)])


def recall_at_k(similarity: np.ndarray, relevant: np.ndarray, k: int) -> float:
    """The share of queries (rows) with at least one relevant item among their ``k`` best.

    ``similarity`` and ``relevant`` are ``(queries, gallery)``; ``relevant[i, j]`` says item
    ``j`` is a right answer to query ``i`` (several can be: two images with the same caption).
    """
    similarity, relevant = np.asarray(similarity), np.asarray(relevant, dtype=bool)
    if similarity.shape != relevant.shape:
        raise ValueError(f"shapes differ: {similarity.shape} and {relevant.shape}")
    top = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.take_along_axis(relevant, top, axis=1).any(axis=1)))
