"""The transformer of chapter 9: embeddings, causal self-attention, the pre-norm block and a GPT.

Everything is written in ``keras.ops``, so it runs unchanged on TensorFlow, PyTorch and JAX, and
the attention weights can be returned for inspection. Chapter 9 (transformers) teaches these
pieces and trains :class:`GPT` on Tiny Shakespeare; the music and multimodal chapters reuse
:class:`TokenAndPositionEmbedding` and :class:`TransformerBlock`.

Shapes: ``B`` batch, ``T`` sequence length (at most ``context``), ``C = n_embd`` channels,
``H = n_head`` heads of ``D = C / H`` channels each, ``V`` vocabulary.

The model is nanoGPT's {Karpathy 2022} in Keras: learned (or sinusoidal) positions, pre-norm
blocks {Xiong et al. 2020}, a 4x GELU MLP, dropout on the attention weights and on the residual
branches, an optional output layer tied to the token embedding. Two options make it nanoGPT's
model exactly: ``bias=False`` (no biases in the linear layers and LayerNorms) and
``scaled_init=True`` (the residual projections drawn with standard deviation
``0.02 / sqrt(2 * n_layer)``, as GPT-2 does); :func:`nanogpt_param_count` gives the parameter
counts nanoGPT reports for such a model.
"""

from __future__ import annotations

import math

import numpy as np
import keras
from keras import layers, ops

from gdlbook import progress, sampling

__all__ = ["sinusoidal_encoding", "causal_mask", "tokens_as_rows", "TokenDense",
           "TokenAndPositionEmbedding", "CausalSelfAttention", "TransformerBlock", "GPT",
           "build_gpt", "training_jit_compile", "nanogpt_param_count", "RandomWindows",
           "generate"]


def _init(std: float = 0.02):
    return keras.initializers.RandomNormal(stddev=std)


def sinusoidal_encoding(length: int, dim: int, base: float = 10_000.0) -> np.ndarray:
    """The fixed positional encoding of Vaswani et al. (2017), ``(length, dim)`` float32.

    Channel pairs ``(2i, 2i + 1)`` hold ``sin`` and ``cos`` of ``pos / base ** (2i / dim)``:
    one wavelength per pair, from ``2 pi`` to ``2 pi * base``.
    """
    if dim % 2:
        raise ValueError(f"the sinusoidal encoding needs an even dimension, got {dim}")
    pos = np.arange(length, dtype=np.float64)[:, None]
    freq = base ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)
    table = np.zeros((length, dim))
    table[:, 0::2] = np.sin(pos * freq)
    table[:, 1::2] = np.cos(pos * freq)
    return table.astype("float32")


def causal_mask(length: int):
    """Boolean ``(length, length)`` tensor, True where query ``t`` may attend to key ``s <= t``."""
    i = ops.arange(length)
    return ops.greater_equal(ops.expand_dims(i, 1), ops.expand_dims(i, 0))


def tokens_as_rows(f, x):
    """``f`` applied to ``x`` ``(..., C)`` viewed as one matrix with a row per token.

    The same result as ``f(x)`` for any ``f`` that acts on every token alone (a linear layer);
    see :class:`TokenDense` for why the view pays.
    """
    shape = ops.shape(x)
    rows = f(ops.reshape(x, (-1, shape[-1])))
    return ops.reshape(rows, (*shape[:-1], ops.shape(rows)[-1]))


def apply_dropout(layer: layers.Dropout, x, training):
    """``layer(x)`` where it drops something (in training, at a rate above 0), else ``x``.

    The same result as calling the layer; skipping it saves the call, whose cost is Python's
    and shows where Keras runs eagerly (PyTorch without ``torch.compile``), even at rate 0.
    """
    return layer(x, training=training) if training and layer.rate > 0 else x


@keras.saving.register_keras_serializable(package="gdlbook")
class TokenDense(layers.Dense):
    """A ``Dense`` layer for token sequences: it multiplies the ``(B * T, C)`` matrix of all
    tokens by its kernel, where ``Dense`` would multiply the ``(B, T, C)`` tensor. Same weights,
    same result; only the shape of the product differs.

    Why it is here: the kernel's gradient sums over the batch and the position axes. For the
    3-D product, the XLA compiler that JAX uses on a CPU (JAX 0.4.38, 0.6.2, 0.8.3, 0.9.2 and
    0.10.2 tried) lays that sum out through transposed copies of the activations, which made a
    stack of residual blocks on JAX about twice as slow as PyTorch's in forward and backward
    (with freed memory kept, :mod:`gdlbook.allocator`); on the 2-D view it is one matrix
    product (``benchmarks/xla_residual_backward.py`` shows both). PyTorch's
    ``nn.Linear`` flattens the leading axes the same way internally; on TensorFlow, with or
    without XLA, the view made no measurable difference.
    """

    def call(self, inputs, training=None):
        return tokens_as_rows(super().call, inputs)


@keras.saving.register_keras_serializable(package="gdlbook")
class TokenAndPositionEmbedding(layers.Layer):
    """Integer tokens ``(B, T)`` -> vectors ``(B, T, C)``: a token embedding plus a position code.

    Args:
        vocab_size: number of distinct tokens ``V``.
        context: the longest sequence the layer accepts (the number of positions).
        n_embd: channels ``C``.
        positional: ``"learned"`` (a trained ``(context, C)`` table, as in GPT) or
            ``"sinusoidal"`` (the fixed table of :func:`sinusoidal_encoding`).
    """

    def __init__(self, vocab_size: int, context: int, n_embd: int,
                 positional: str = "learned", **kwargs):
        super().__init__(**kwargs)
        if positional not in ("learned", "sinusoidal"):
            raise ValueError(f"positional must be 'learned' or 'sinusoidal', got {positional!r}")
        self.vocab_size, self.context, self.n_embd = vocab_size, context, n_embd
        self.positional = positional
        self.token = layers.Embedding(vocab_size, n_embd, embeddings_initializer=_init(),
                                      name="token")
        if positional == "learned":
            self.position = layers.Embedding(context, n_embd, embeddings_initializer=_init(),
                                             name="position")
        else:
            self.table = sinusoidal_encoding(context, n_embd)

    def build(self, input_shape):
        self.token.build(input_shape)
        if self.positional == "learned":
            self.position.build((self.context,))
        self.built = True

    def call(self, tokens):
        length = ops.shape(tokens)[-1]
        x = self.token(tokens)
        if self.positional == "learned":
            # the first `length` rows, by slicing: the same as looking up positions 0..T-1, but
            # its gradient is a dense tensor on every backend. A lookup's gradient on TensorFlow
            # is an IndexedSlices, and Keras's Adam squares its slices before summing repeated
            # rows: under tf.distribute every replica adds a slice for each position, and Adam's
            # second moment would depend on the number of replicas (appendix A).
            pos = self.position.embeddings[:length]
        else:
            pos = ops.convert_to_tensor(self.table)[:length]
        return x + ops.cast(pos, x.dtype)              # (B, T, C) + (T, C)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "context": self.context,
                "n_embd": self.n_embd, "positional": self.positional}


@keras.saving.register_keras_serializable(package="gdlbook")
class CausalSelfAttention(layers.Layer):
    """Multi-head self-attention in which position ``t`` sees only positions ``s <= t``.

    ``call(x, return_attention=True)`` also returns the attention weights ``(B, H, T, T)``.
    With ``causal=False`` every position sees every other (an encoder's attention, the text
    encoder of chapter 13); ``call(x, key_mask=m)`` with ``m`` ``(B, T)``, true at real tokens,
    hides padding from every query.

    Args:
        n_embd: channels ``C`` of the input and output.
        n_head: number of heads ``H``; ``C`` must be a multiple of it.
        dropout: dropout rate on the attention weights and on the output.
        fused: compute attention with ``keras.ops.dot_product_attention`` (a fused kernel,
            flash attention where the backend and GPU have one) instead of the explicit
            softmax. Same result in inference. That kernel has no dropout, so in training with
            ``dropout > 0`` the layer takes the explicit path, which drops attention weights;
            the explicit path is also taken when the weights are asked for.
        bias: give the two linear layers a bias (nanoGPT's Shakespeare model has none).
        proj_std: standard deviation of the output projection's initial weights.
        causal: hide later positions (a decoder); ``False`` for an encoder.
    """

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, fused: bool = False,
                 bias: bool = True, proj_std: float = 0.02, causal: bool = True, **kwargs):
        super().__init__(**kwargs)
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} is not a multiple of n_head={n_head}")
        self.n_embd, self.n_head, self.dropout, self.fused = n_embd, n_head, dropout, fused
        self.bias, self.proj_std, self.causal = bias, proj_std, causal
        self.head_dim = n_embd // n_head
        self.qkv = TokenDense(3 * n_embd, use_bias=bias, kernel_initializer=_init(),
                              name="qkv")
        self.proj = TokenDense(n_embd, use_bias=bias, kernel_initializer=_init(proj_std),
                               name="proj")
        self.attn_drop = layers.Dropout(dropout)
        self.out_drop = layers.Dropout(dropout)

    def build(self, input_shape):
        self.qkv.build(input_shape)
        self.proj.build(input_shape)
        self.built = True

    def call(self, x, training=None, return_attention: bool = False, key_mask=None):
        length = ops.shape(x)[1]
        qkv = ops.reshape(self.qkv(x), (-1, length, 3, self.n_head, self.head_dim))
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]          # each (B, T, H, D)
        weights = None
        drops = bool(training) and self.dropout > 0
        if self.fused and not return_attention and not drops and key_mask is None:
            y = ops.dot_product_attention(q, k, v, is_causal=self.causal)   # (B, T, H, D)
        else:
            q, k, v = (ops.transpose(a, (0, 2, 1, 3)) for a in (q, k, v))   # (B, H, T, D)
            scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))          # (B, H, T, T)
            scores = ops.cast(scores, "float32") / math.sqrt(self.head_dim)
            if self.causal:
                scores = ops.where(causal_mask(length), scores, float("-inf"))
            if key_mask is not None:                                # padding is never seen
                keys = ops.reshape(ops.cast(key_mask, "bool"), (-1, 1, 1, length))
                scores = ops.where(keys, scores, float("-inf"))
            weights = ops.softmax(scores, axis=-1)                  # rows sum to one
            y = ops.matmul(apply_dropout(self.attn_drop, ops.cast(weights, v.dtype), training), v)
            y = ops.transpose(y, (0, 2, 1, 3))                      # (B, T, H, D)
        y = ops.reshape(y, (-1, length, self.n_embd))               # heads side by side
        y = apply_dropout(self.out_drop, self.proj(y), training)
        return (y, weights) if return_attention else y

    def get_config(self):
        return {**super().get_config(), "n_embd": self.n_embd, "n_head": self.n_head,
                "dropout": self.dropout, "fused": self.fused, "bias": self.bias,
                "proj_std": self.proj_std, "causal": self.causal}


@keras.saving.register_keras_serializable(package="gdlbook")
class TransformerBlock(layers.Layer):
    """The pre-norm transformer block: ``x + attn(LN(x))``, then ``x + MLP(LN(x))``.

    The MLP has ``mlp_ratio * C`` hidden units with a GELU. Input and output are ``(B, T, C)``;
    ``call(x, return_attention=True)`` returns ``(y, attention weights (B, H, T, T))``.

    Args:
        n_embd: channels ``C``.
        n_head: attention heads.
        dropout: dropout rate on the attention weights and on both residual branches.
        mlp_ratio: width of the MLP's hidden layer, in multiples of ``C``.
        fused: use the fused attention kernel (see :class:`CausalSelfAttention`).
        bias: biases in the linear layers and LayerNorms (``False``: none, as in nanoGPT).
        proj_std: initial standard deviation of the two layers that write into the residual
            stream (attention output ``proj`` and MLP output ``fc_out``); the others use 0.02.
        causal: causal attention (a decoder, the default) or not (an encoder: chapter 13);
            ``call(x, key_mask=m)`` hides the padding of an encoder's input.
    """

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, mlp_ratio: int = 4,
                 fused: bool = False, bias: bool = True, proj_std: float = 0.02,
                 causal: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.n_embd, self.n_head, self.dropout = n_embd, n_head, dropout
        self.mlp_ratio, self.fused, self.bias, self.proj_std = mlp_ratio, fused, bias, proj_std
        self.causal = causal
        self.ln1 = layers.LayerNormalization(epsilon=1e-5, center=bias, name="ln1")
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, fused=fused, bias=bias,
                                        proj_std=proj_std, causal=causal, name="attn")
        self.ln2 = layers.LayerNormalization(epsilon=1e-5, center=bias, name="ln2")
        self.fc = TokenDense(mlp_ratio * n_embd, activation="gelu", use_bias=bias,
                             kernel_initializer=_init(), name="fc")
        self.fc_out = TokenDense(n_embd, use_bias=bias, kernel_initializer=_init(proj_std),
                                 name="fc_out")
        self.mlp_drop = layers.Dropout(dropout)

    def build(self, input_shape):
        for layer in (self.ln1, self.attn, self.ln2):
            layer.build(input_shape)
        self.fc.build(input_shape)
        self.fc_out.build((*input_shape[:-1], self.mlp_ratio * self.n_embd))
        self.built = True

    def call(self, x, training=None, return_attention: bool = False, key_mask=None):
        a = self.attn(self.ln1(x), training=training, return_attention=return_attention,
                      key_mask=key_mask)
        if return_attention:
            a, weights = a
        x = x + a
        x = x + apply_dropout(self.mlp_drop, self.fc_out(self.fc(self.ln2(x))), training)
        return (x, weights) if return_attention else x

    def get_config(self):
        return {**super().get_config(), "n_embd": self.n_embd, "n_head": self.n_head,
                "dropout": self.dropout, "mlp_ratio": self.mlp_ratio, "fused": self.fused,
                "bias": self.bias, "proj_std": self.proj_std, "causal": self.causal}


@keras.saving.register_keras_serializable(package="gdlbook")
class GPT(keras.Model):
    """A decoder-only transformer: tokens ``(B, T)`` -> next-token logits ``(B, T, V)`` (float32).

    Embedding and dropout, ``n_layer`` :class:`TransformerBlock` s, a final LayerNorm, and a
    linear layer to the vocabulary — or, with ``tie_weights``, the transposed token embedding.
    Position ``t`` of the output predicts token ``t + 1`` from tokens ``0..t``.

    ``bias=False`` removes every bias (linear layers and LayerNorms); ``scaled_init=True``
    draws the weights of the layers that write into the residual stream with standard deviation
    ``0.02 / sqrt(2 * n_layer)`` instead of 0.02, so that the sum of ``2 * n_layer`` residual
    branches starts at the scale of one (GPT-2's scheme, which nanoGPT follows).
    """

    def __init__(self, vocab_size: int, context: int, n_layer: int, n_head: int, n_embd: int,
                 dropout: float = 0.0, tie_weights: bool = False, positional: str = "learned",
                 fused_attention: bool = False, bias: bool = True, scaled_init: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.config = dict(vocab_size=vocab_size, context=context, n_layer=n_layer,
                           n_head=n_head, n_embd=n_embd, dropout=dropout,
                           tie_weights=tie_weights, positional=positional,
                           fused_attention=fused_attention, bias=bias, scaled_init=scaled_init)
        proj_std = 0.02 / math.sqrt(2 * n_layer) if scaled_init else 0.02
        self.context, self.tie_weights = context, tie_weights
        self.embed = TokenAndPositionEmbedding(vocab_size, context, n_embd, positional,
                                               name="embed")
        self.embed_drop = layers.Dropout(dropout)
        self.blocks = [TransformerBlock(n_embd, n_head, dropout, fused=fused_attention,
                                        bias=bias, proj_std=proj_std, name=f"block_{i}")
                       for i in range(n_layer)]
        self.ln_f = layers.LayerNormalization(epsilon=1e-5, center=bias, name="ln_f")
        self.head = None if tie_weights else TokenDense(
            vocab_size, use_bias=False, kernel_initializer=_init(), name="head")

    def call(self, tokens, training=None):
        x = apply_dropout(self.embed_drop, self.embed(tokens), training)
        for block in self.blocks:
            x = block(x, training=training)
        x = self.ln_f(x)
        if self.tie_weights:
            table = ops.cast(self.embed.token.embeddings, x.dtype)      # (V, C)
            logits = tokens_as_rows(lambda rows: ops.matmul(rows, ops.transpose(table)), x)
        else:
            logits = self.head(x)
        return ops.cast(logits, "float32")

    def attention_maps(self, tokens) -> list[np.ndarray]:
        """The attention weights of every block for ``tokens`` (inference mode).

        Returns a list of ``n_layer`` NumPy arrays ``(B, H, T, T)``; row ``t`` of a head says
        how much position ``t`` draws from each earlier position.
        """
        return block_attention_maps(self.blocks,
                                    self.embed(ops.convert_to_tensor(np.asarray(tokens), "int32")))

    def get_config(self):
        return {**super().get_config(), **self.config}


def block_attention_maps(blocks, x) -> list[np.ndarray]:
    """Run embedded inputs ``x`` through transformer ``blocks`` in inference mode and return
    each block's attention weights ``(B, H, T, T)`` as NumPy arrays (the GPT of chapter 9 and
    chapter 11's music transformer)."""
    maps = []
    for block in blocks:
        x, weights = block(x, training=False, return_attention=True)
        maps.append(ops.convert_to_numpy(weights))
    return maps


def build_gpt(vocab_size: int, context: int, n_layer: int, n_head: int, n_embd: int,
              dropout: float = 0.0, tie_weights: bool = False, positional: str = "learned",
              fused_attention: bool = False, bias: bool = True,
              scaled_init: bool = False) -> GPT:
    """A :class:`GPT`, built (its weights created) by one call on a batch of zeros.

    nanoGPT's "baby" Shakespeare model is ``build_gpt(65, 256, 6, 6, 384, 0.2,
    tie_weights=True, bias=False, scaled_init=True)``: 10,745,088 parameters, of which
    nanoGPT prints the 10,646,784 that are not position embeddings ("10.65M"); with biases
    the model has 10,770,816.
    """
    model = GPT(vocab_size, context, n_layer, n_head, n_embd, dropout, tie_weights, positional,
                fused_attention, bias, scaled_init, name="gpt")
    model(np.zeros((1, context), dtype="int32"))
    return model


def training_jit_compile(backend: str | None = None) -> bool:
    """``compile(jit_compile=...)`` for training a :class:`GPT` on ``backend`` (default: the
    active one): XLA on TensorFlow and JAX, eager execution on PyTorch.

    Keras's default, ``"auto"``, gives the same except for TensorFlow on a computer without a
    GPU, where it leaves XLA off (``benchmarks/gpt_shakespeare.py --jit-compile false`` times
    that choice at nanoGPT's CPU configuration: 91.5 against 50.7 ms per iteration with XLA on
    2 cores, session 17). On PyTorch,
    ``True`` would hand the step to ``torch.compile``, whose compilation takes minutes on a CPU.
    """
    return (backend or keras.backend.backend()) != "torch"


def nanogpt_param_count(vocab_size: int, context: int, n_layer: int, n_embd: int,
                        bias: bool = False) -> dict[str, int]:
    """Parameters of nanoGPT's GPT (tied output layer), counted from its layer sizes.

    Per block: ``12 C^2`` weights (``3C^2`` for queries, keys and values, ``C^2`` for the
    attention output, ``8C^2`` for the 4x MLP) and the two LayerNorm gains ``2C``; with
    ``bias``, ``9C`` linear biases and ``2C`` LayerNorm biases more. Outside the blocks: the
    token table ``VC``, the position table ``TC`` and the final LayerNorm. nanoGPT prints
    ``non_embedding``, the total without the position table (its ``get_num_params``).
    """
    c = n_embd
    block = 12 * c * c + 2 * c + (11 * c if bias else 0)
    total = vocab_size * c + context * c + n_layer * block + c * (2 if bias else 1)
    return {"total": total, "non_embedding": total - context * c}


class RandomWindows(keras.utils.PyDataset):
    """Batches of random windows of a token sequence, for ``fit()`` on any backend.

    Batch ``i`` holds ``batch_size`` windows ``tokens[s : s + context]`` at random starts ``s``,
    and their targets ``tokens[s + 1 : s + context + 1]`` (the same window shifted by one).
    An epoch is ``steps`` batches. The draws depend only on ``(seed, epoch, i)``, so a run is
    reproducible; with ``resample=False`` every epoch repeats the same batches (a fixed
    validation set).
    """

    def __init__(self, tokens: np.ndarray, context: int, batch_size: int, steps: int,
                 seed: int = 0, resample: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.tokens = np.asarray(tokens, dtype="int32")
        if len(self.tokens) <= context:
            raise ValueError(f"{len(self.tokens)} tokens are too few for windows of {context}")
        self.context, self.batch_size, self.steps = context, batch_size, steps
        self.seed, self.resample, self.epoch = seed, resample, 0

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, self.epoch, index])
        starts = rng.integers(0, len(self.tokens) - self.context, size=self.batch_size)
        idx = starts[:, None] + np.arange(self.context + 1)
        windows = self.tokens[idx]                     # (batch, context + 1)
        return windows[:, :-1], windows[:, 1:]

    def on_epoch_end(self):
        if self.resample:
            self.epoch += 1


def generate(model: GPT, prompt, length: int, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, seed=None) -> np.ndarray:
    """Continue each row of ``prompt`` (``(B, P)`` token ids) by ``length`` tokens.

    Every step runs the model on a fixed-size window of ``context`` tokens (so the compiled
    prediction function is traced once): the last ``context`` tokens once the sequence is that
    long, before that the sequence padded on the *right* with zeros — causality makes the
    padding invisible to the position read. The next token is drawn with
    :func:`gdlbook.sampling.sample` (temperature, top-k, top-p). Returns ``(B, P + length)``.
    """
    rng = np.random.default_rng(seed)
    seq = np.asarray(prompt, dtype="int32")
    if seq.ndim != 2 or seq.shape[1] < 1:
        raise ValueError(f"prompt must be (batch, length >= 1) token ids, got {seq.shape}")
    context = model.context
    for _ in progress.track(range(length), f"generating {len(seq)} x {length} tokens",
                            unit="token"):
        n = min(seq.shape[1], context)
        window = np.zeros((len(seq), context), dtype="int32")
        window[:, :n] = seq[:, -n:]
        logits = np.asarray(model.predict_on_batch(window))[:, n - 1]     # (B, V)
        nxt = sampling.sample(logits, temperature, top_k, top_p, rng=rng)
        seq = np.concatenate([seq, nxt[:, None].astype("int32")], axis=1)
    return seq
