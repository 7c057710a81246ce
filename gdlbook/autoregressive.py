"""The autoregressive models of chapter 5: character and word LSTMs, and the PixelCNN.

Each builder returns a plain Keras model that outputs **logits** (or mixture parameters) and is
trained with ``fit()``; nothing here depends on the backend. The chapter shows these sources
with ``literalinclude`` and explains them; the tests train each one for a few steps on
TensorFlow, PyTorch and JAX.
"""

from __future__ import annotations

import numpy as np
import keras
from keras import layers, ops

from gdlbook.convolution import Conv2D


@keras.saving.register_keras_serializable(package="gdlbook")
class OneHot(layers.Layer):
    """Integer tokens ``(B, T)`` -> one-hot vectors ``(B, T, depth)``, no parameters."""

    def __init__(self, depth: int, **kwargs):
        super().__init__(**kwargs)
        self.depth = depth

    def call(self, tokens):
        return ops.one_hot(ops.cast(tokens, "int32"), self.depth)

    def get_config(self):
        return {**super().get_config(), "depth": self.depth}


def build_char_rnn(vocab_size: int, seq_len: int, units: int = 128, *, cell: str = "lstm",
                   num_layers: int = 1) -> keras.Model:
    """Chollet's character model: one-hot characters -> recurrent layer(s) -> next-character logits.

    Input: ``(B, seq_len)`` character indices. Output: ``(B, vocab_size)`` logits for the
    character that follows the window. ``cell`` is ``"lstm"`` (Chollet's choice) or ``"gru"``;
    with ``num_layers > 1`` the layers are stacked, each but the last passing its whole output
    sequence to the next.
    """
    rnn_layers = {"lstm": layers.LSTM, "gru": layers.GRU}
    if cell not in rnn_layers:
        raise ValueError(f"cell must be one of {sorted(rnn_layers)}, got {cell!r}")
    if num_layers < 1:
        raise ValueError(f"num_layers must be at least 1, got {num_layers}")
    inputs = keras.Input((seq_len,), dtype="int32", name="chars")
    x = OneHot(vocab_size, name="one_hot")(inputs)
    for i in range(num_layers):
        name = cell if num_layers == 1 else f"{cell}_{i + 1}"
        x = rnn_layers[cell](units, return_sequences=i < num_layers - 1, name=name)(x)
    logits = layers.Dense(vocab_size, name="next_char_logits")(x)
    stacked = "" if num_layers == 1 else f"_x{num_layers}"
    return keras.Model(inputs, logits, name=f"char_{cell}{stacked}")


def build_char_lstm(vocab_size: int, seq_len: int, units: int = 128) -> keras.Model:
    """The character model with one LSTM layer: ``build_char_rnn(..., cell="lstm")``."""
    return build_char_rnn(vocab_size, seq_len, units, cell="lstm")


def build_word_lstm(vocab_size: int, embedding_dim: int = 100, units: int = 128) -> keras.Model:
    """The word model: embeddings -> LSTM over the whole sequence -> next-word logits at every step.

    Input: ``(B, T)`` word indices (any ``T``). Output: ``(B, T, vocab_size)``: position ``t``
    predicts word ``t + 1``, so one sequence gives ``T`` training targets at once.
    """
    inputs = keras.Input((None,), dtype="int32", name="words")
    x = layers.Embedding(vocab_size, embedding_dim, name="embedding")(inputs)
    x = layers.LSTM(units, return_sequences=True, name="lstm")(x)
    logits = layers.Dense(vocab_size, name="next_word_logits")(x)
    return keras.Model(inputs, logits, name="word_lstm")


def causal_mask(kernel_size: int, mask_type: str) -> np.ndarray:
    """The ``(k, k)`` mask of a PixelCNN convolution, 1 where the kernel may look.

    Pixels are generated row by row, left to right. The kernel may see every row above the
    centre and, in the centre row, the pixels to its left; type ``"A"`` (the first layer) also
    hides the centre pixel itself, type ``"B"`` (every later layer) lets it through, since from
    the second layer on the centre position only carries information about earlier pixels.
    """
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    c = kernel_size // 2
    mask = np.zeros((kernel_size, kernel_size), dtype="float32")
    mask[:c, :] = 1.0                                   # the rows above
    mask[c, :c] = 1.0                                   # the left part of the centre row
    if mask_type == "B":
        mask[c, c] = 1.0                                # and the centre itself
    return mask


@keras.saving.register_keras_serializable(package="gdlbook")
class MaskedConv2D(Conv2D):
    """A ``Conv2D`` whose kernel is multiplied by a causal mask (type ``"A"`` or ``"B"``)."""

    def __init__(self, mask_type: str, filters: int, kernel_size: int, **kwargs):
        kwargs.setdefault("padding", "same")
        super().__init__(filters, kernel_size, **kwargs)
        self.mask_type = mask_type
        self.kernel_mask = causal_mask(self.kernel_size[0], mask_type)[:, :, None, None]

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, kernel * self.kernel_mask)

    def get_config(self):
        config = super().get_config()
        config.pop("filters"), config.pop("kernel_size")
        return {"mask_type": self.mask_type, "filters": self.filters,
                "kernel_size": self.kernel_size[0], **config}


@keras.saving.register_keras_serializable(package="gdlbook")
class ResidualBlock(layers.Layer):
    """PixelCNN's residual block: 1×1 conv (halve) -> masked 3×3 (type B) -> 1×1 conv, + input."""

    def __init__(self, filters: int, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.reduce = Conv2D(filters // 2, 1, activation="relu")
        self.masked = MaskedConv2D("B", filters // 2, 3, activation="relu")
        self.expand = Conv2D(filters, 1, activation="relu")

    def call(self, x):
        return x + self.expand(self.masked(self.reduce(x)))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


def build_pixelcnn(image_size: int, outputs: int, filters: int = 128, residual_blocks: int = 5,
                   channels: int = 1) -> keras.Model:
    """A PixelCNN (van den Oord et al., 2016) for ``image_size``² images with ``channels`` channels.

    A 7×7 type-A masked convolution, ``residual_blocks`` residual blocks, two 1×1 type-B
    layers and a 1×1 output layer with ``outputs`` values per pixel: logits over the grey
    levels, or the parameters of a logistic mixture. The input is the image scaled to
    ``[0, 1]``; output ``(i, j)`` depends only on the pixels before ``(i, j)`` in raster order.
    """
    inputs = keras.Input((image_size, image_size, channels), name="image")
    x = MaskedConv2D("A", filters, 7, activation="relu", name="masked_A")(inputs)
    for i in range(residual_blocks):
        x = ResidualBlock(filters, name=f"residual_{i}")(x)
    for i in range(2):
        x = MaskedConv2D("B", filters, 1, activation="relu", name=f"masked_B_1x1_{i}")(x)
    out = Conv2D(outputs, 1, name="pixel_outputs")(x)
    return keras.Model(inputs, out, name="pixelcnn")
