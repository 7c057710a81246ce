"""gdlbook.autoregressive (chapter 5): the masks are causal, and every model trains on every backend.

One subprocess per backend trains all four models of the chapter (character LSTM, word LSTM,
PixelCNN with a softmax over grey levels, PixelCNN with a logistic mixture) for a few steps.
"""

import numpy as np
import pytest

from backendrun import BACKENDS, run_with_backend

TRAIN_ALL = """
    import json
    import numpy as np, keras
    from gdlbook import set_seed, autoregressive as ar, likelihoods as lk

    set_seed(0)
    rng = np.random.default_rng(0)
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    losses = {}

    def train(name, model, loss, x, y):
        model.compile(keras.optimizers.Adam(1e-2), loss)
        h = model.fit(x, y, batch_size=16, epochs=4, verbose=0)
        losses[name] = h.history["loss"]

    train("char_lstm", ar.build_char_lstm(20, 12, units=16), ce,
          rng.integers(0, 20, (32, 12)), rng.integers(0, 5, 32))
    words = rng.integers(0, 40, (32, 9))
    train("word_lstm", ar.build_word_lstm(40, 8, 16), ce, words[:, :-1], words[:, 1:] % 7)
    img = rng.integers(0, 4, (32, 8, 8, 1))
    train("pixelcnn", ar.build_pixelcnn(8, 4, filters=16, residual_blocks=1), ce,
          img / 3.0, img)
    img = rng.integers(0, 256, (32, 8, 8, 1))
    train("mixture_pixelcnn", ar.build_pixelcnn(8, 3 * 3, filters=16, residual_blocks=1),
          lk.logistic_mixture_nll, img / 255.0, img)
    print(json.dumps(losses))
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_model_trains_on_every_backend(backend):
    losses = run_with_backend(backend, TRAIN_ALL)
    assert set(losses) == {"char_lstm", "word_lstm", "pixelcnn", "mixture_pixelcnn"}
    for name, curve in losses.items():
        assert len(curve) == 4 and np.all(np.isfinite(curve)), (name, curve)
        assert curve[-1] < curve[0], f"{backend}: {name} did not learn: {curve}"


def test_masks():
    from gdlbook.autoregressive import causal_mask

    a, b = causal_mask(5, "A"), causal_mask(5, "B")
    assert a.sum() == 12 and b.sum() == 13 and a[2, 2] == 0 and b[2, 2] == 1
    assert np.all(a[3:] == 0) and np.all(a[2, 3:] == 0) and np.all(b[:2] == 1)
    with pytest.raises(ValueError):
        causal_mask(3, "C")


def test_pixelcnn_output_depends_only_on_earlier_pixels():
    import keras
    from gdlbook.autoregressive import build_pixelcnn

    keras.utils.set_random_seed(0)
    model = build_pixelcnn(8, 4, filters=8, residual_blocks=2)
    x = np.random.default_rng(0).random((1, 8, 8, 1)).astype("float32")
    base = keras.ops.convert_to_numpy(model(x))
    for i, j in [(0, 0), (3, 4), (5, 0), (7, 7)]:
        x2 = x.copy()
        x2[0, i, j, 0] += 1.0
        changed = np.abs(keras.ops.convert_to_numpy(model(x2)) - base).sum(-1)[0] > 1e-6
        order = np.arange(64).reshape(8, 8)
        assert not np.any(changed & (order <= i * 8 + j)), (i, j)  # nothing at or before (i, j)
        if (i, j) != (7, 7):
            assert changed[order == i * 8 + j + 1].all()          # the next pixel does see it


def test_char_rnn_cells_layers_and_parameter_counts():
    """LSTM: 4 gates of u(d + u) + u weights; GRU (Keras's reset_after): 3 of u(d + u) + 2u."""
    from gdlbook.autoregressive import build_char_lstm, build_char_rnn

    V, u = 30, 16

    def rnn_params(model):
        return sum(layer.count_params() for layer in model.layers
                   if layer.name.startswith(("lstm", "gru")))

    lstm, gru = build_char_rnn(V, 10, u, cell="lstm"), build_char_rnn(V, 10, u, cell="gru")
    assert rnn_params(lstm) == 4 * (u * (V + u) + u)
    assert rnn_params(gru) == 3 * (u * (V + u) + 2 * u)
    stacked = build_char_rnn(V, 10, u, cell="lstm", num_layers=2)
    assert rnn_params(stacked) == 4 * (u * (V + u) + u) + 4 * (u * (u + u) + u)
    assert stacked.output.shape == (None, V) and lstm.output.shape == (None, V)
    assert build_char_lstm(V, 10, u).count_params() == lstm.count_params()
    with pytest.raises(ValueError, match="cell"):
        build_char_rnn(V, 10, u, cell="rnn")
    with pytest.raises(ValueError, match="num_layers"):
        build_char_rnn(V, 10, u, num_layers=0)


def test_word_lstm_is_causal_and_a_bidirectional_one_is_not():
    """Output t of the word model must not depend on tokens after t; a bidirectional layer leaks."""
    import keras
    from keras import layers
    from gdlbook.autoregressive import build_word_lstm

    keras.utils.set_random_seed(0)
    causal = build_word_lstm(50, 8, 16)
    inputs = keras.Input((None,), dtype="int32")
    x = layers.Embedding(50, 8)(inputs)
    x = layers.Bidirectional(layers.LSTM(16, return_sequences=True))(x)
    bidirectional = keras.Model(inputs, layers.Dense(50)(x))
    ids = np.random.default_rng(0).integers(0, 50, (1, 10))
    changed = ids.copy()
    changed[0, 6] = (ids[0, 6] + 1) % 50
    for model, leaks in ((causal, False), (bidirectional, True)):
        moved = np.abs(keras.ops.convert_to_numpy(model(changed) - model(ids))).max(-1)[0]
        assert moved[6:].min() > 0                      # the changed token and after it move
        assert (moved[:6].max() > 1e-6) == leaks, moved  # before it: only if the model looks ahead
