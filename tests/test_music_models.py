"""gdlbook.music_models on TensorFlow, PyTorch and JAX: the two-stream transformer learns a
sequence far below the unigram baseline and attends causally; MuseGAN's generator is wired as
the paper says (a track's melody and groove reach only that track), and one WGAN-GP fit() of
MuseGAN updates both players."""

import pytest

from backendrun import BACKENDS, run_with_backend

TRANSFORMER = """
import json
import numpy as np, keras
from gdlbook import set_seed, music, music_models as mm, transformer

set_seed(0)
# a piece whose next pitch depends on the last two events and whose durations alternate
pitches = np.array([2, 3, 4, 5, 4, 3] * 60, dtype="int32")
durations = np.array([2, 2, 3] * 120, dtype="int32")
tokens = np.stack([pitches, durations], axis=1)
train = transformer.RandomWindows(tokens, 12, 16, 30, seed=0)
valid = transformer.RandomWindows(tokens, 12, 16, 4, seed=1, resample=False)
model = mm.MusicTransformer(8, 5, 12, n_layer=2, n_head=2, n_embd=32)
model(tokens[None, :12])
model.compile(optimizer=keras.optimizers.Adam(3e-3))
before = model.evaluate(valid, verbose=0, return_dict=True)
model.fit(train, epochs=4, verbose=0)
after = model.evaluate(valid, verbose=0, return_dict=True)
maps = model.attention_maps(tokens[None, :12])
gen = mm.generate(model, tokens[None, :6], 12, temperature=0.5, seed=0)
print(json.dumps(dict(
    before=before, after=after,
    unigram_pitch=music.unigram_loss(pitches, pitches, 8),
    unigram_duration=music.unigram_loss(durations, durations, 5),
    causal=float(np.abs(np.triu(maps[-1][0, 0], 1)).max()),
    rows=float(np.abs(maps[-1].sum(-1) - 1).max()),
    gen_shape=list(gen.shape), gen_forbidden=int(np.isin(gen[0, 6:], [0, 1]).sum()),
    gen_pitch_ok=float(np.mean(gen[0, 6:, 0] == np.tile([2, 3, 4, 5, 4, 3], 3)[:12]))
                 if list(gen[0, :6, 0]) == [2, 3, 4, 5, 4, 3] else -1.0)))
"""

MUSEGAN = """
import json
import numpy as np, keras
from gdlbook import set_seed, music_models as mm

set_seed(0)
G = mm.build_musegan_generator(z_dim=8, n_tracks=4, n_bars=2, n_steps=16, width=8)
C = mm.build_musegan_critic(n_tracks=4, n_bars=2, n_steps=16, width=8)
gan = mm.MuseGAN(G, C, z_dim=8, n_tracks=4, critic_steps=2)
rng = np.random.default_rng(0)
base = [rng.normal(size=(1, 8)), rng.normal(size=(1, 8)), rng.normal(size=(1, 4, 8)),
        rng.normal(size=(1, 4, 8))]
base = [b.astype("float32") for b in base]

def change(i, track=None):
    z = [b.copy() for b in base]
    if track is None:
        z[i] = z[i] + 1.0
    else:
        z[i][:, track] += 1.0
    out = keras.ops.convert_to_numpy(G(z, training=False))
    ref = keras.ops.convert_to_numpy(G(base, training=False))
    return [float(np.abs(out[..., t] - ref[..., t]).max()) for t in range(4)]

wiring = dict(chords=change(0), style=change(1), melody2=change(2, 2), groove1=change(3, 1))
gan.compile(d_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5, beta_2=0.9),
            g_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5, beta_2=0.9))
real = (rng.random((16, 2, 16, 84, 4)) > 0.97).astype("float32") * 2 - 1
g0 = [w.copy() for w in G.get_weights()]
c0 = [w.copy() for w in C.get_weights()]
h = gan.fit(real, batch_size=8, epochs=1, verbose=0)
moved = lambda a, b: bool(any(np.any(x != y) for x, y in zip(a, b)))
out = gan.binarise(gan.generate(gan.sample_latent(3)))
print(json.dumps(dict(wiring=wiring, shape=list(out.shape), dtype=str(out.dtype),
                      logs={k: v[-1] for k, v in h.history.items()},
                      g_moved=moved(g0, G.get_weights()), c_moved=moved(c0, C.get_weights()),
                      c_iter=int(keras.ops.convert_to_numpy(gan.d_optimizer.iterations)))))
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_music_transformer_learns_and_attends_causally(backend):
    r = run_with_backend(backend, TRANSFORMER, timeout=600)
    for stream in ("pitch", "duration"):
        # untrained: about log V; trained: far below what token frequencies alone give
        assert r["before"][f"{stream}_loss"] > 0.8 * r[f"unigram_{stream}"]
        assert r["after"][f"{stream}_loss"] < 0.5 * r[f"unigram_{stream}"], r
    assert r["after"]["loss"] == pytest.approx(
        r["after"]["pitch_loss"] + r["after"]["duration_loss"], rel=1e-4)
    assert r["causal"] == 0.0 and r["rows"] < 1e-5
    assert r["gen_shape"] == [1, 18, 2] and r["gen_forbidden"] == 0
    assert r["gen_pitch_ok"] > 0.8      # it continues the pattern it learned


@pytest.mark.parametrize("backend", BACKENDS)
def test_musegan_wiring_and_one_fit(backend):
    r = run_with_backend(backend, MUSEGAN, timeout=600)
    w = r["wiring"]
    # chords and style reach every track; a track's melody and groove reach only that track
    assert all(d > 0 for d in w["chords"]) and all(d > 0 for d in w["style"])
    assert [d > 0 for d in w["melody2"]] == [False, False, True, False]
    assert [d > 0 for d in w["groove1"]] == [False, True, False, False]
    assert r["shape"] == [3, 2, 16, 84, 4] and r["dtype"] == "bool"
    assert r["g_moved"] and r["c_moved"] and r["c_iter"] == 4      # 2 batches x 2 critic steps
    assert set(r["logs"]) >= {"d_loss", "g_loss", "gp", "wasserstein"}
