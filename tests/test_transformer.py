"""gdlbook.transformer: shapes, the causal mask, training on every backend, the benchmark script."""

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backendrun import BACKENDS, run_with_backend

ROOT = Path(__file__).resolve().parents[1]

# One subprocess per backend runs every backend-specific check.
CHECKS = """
    import json
    import numpy as np, keras
    from gdlbook import set_seed, transformer as tr

    out = {}
    set_seed(0)
    V, T = 11, 16
    rng = np.random.default_rng(0)
    x = rng.integers(0, V, (3, T)).astype("int32")

    # shapes, and causality: a change at position t moves no logit before t
    for name, kw in dict(learned={}, sinusoidal=dict(positional="sinusoidal"),
                         tied=dict(tie_weights=True), fused=dict(fused_attention=True)).items():
        m = tr.build_gpt(V, T, n_layer=2, n_head=2, n_embd=16, dropout=0.0, **kw)
        if name == "tied":    # same attention as "learned": only the parameter count
            out[name] = dict(params=int(m.count_params()))
            continue
        a = np.asarray(m.predict_on_batch(x))
        x2 = x.copy(); x2[:, 9] = (x2[:, 9] + 1) % V
        b = np.asarray(m.predict_on_batch(x2))
        d = np.abs(a - b).max(axis=(0, 2))
        out[name] = dict(shape=list(a.shape), dtype=str(a.dtype), before=float(d[:9].max()),
                         at=float(d[9]), params=int(m.count_params()))
        if name == "learned":
            maps = m.attention_maps(x[:1])
            out["maps"] = [list(w.shape) for w in maps]
            out["rowsum"] = float(np.abs(maps[0].sum(-1) - 1).max())
            out["upper"] = float(np.abs(np.triu(maps[1][0], k=1)).max())
            short = np.asarray(m.predict_on_batch(x[:, :5]))          # shorter than the context
            out["short"] = float(np.abs(short - a[:, :5]).max())
            learned = m
        if name == "fused":   # the fused kernel and the explicit softmax agree
            m.set_weights(learned.get_weights())
            fused = np.asarray(m.predict_on_batch(x))
            out["fused_vs_explicit"] = float(np.abs(fused - out_learned).max())
        if name == "learned":
            out_learned = a

    # generation: fixed-size window, right-padded prompt
    g = tr.generate(learned, x[:2, :3], 20, temperature=0.8, top_k=5, seed=0)
    out["gen"] = [list(g.shape), bool(np.array_equal(g[:, :3], x[:2, :3])),
                  int(g.min()), int(g.max())]

    # the fused path in training with dropout drops attention weights: with the output
    # dropout switched off, training and inference outputs must differ
    h = rng.normal(size=(2, 8, 16)).astype("float32")
    fused_layer = tr.CausalSelfAttention(16, 2, dropout=0.5, fused=True)
    fused_layer.build(h.shape)
    fused_layer.out_drop.rate = 0.0
    y_train = keras.ops.convert_to_numpy(fused_layer(h, training=True))
    y_eval = keras.ops.convert_to_numpy(fused_layer(h, training=False))
    out["fused_dropout"] = float(np.abs(y_train - y_eval).max())

    # TokenDense multiplies the (B * T, C) view: Dense's outputs and gradients, same weights
    from gdlbook.gradients import value_and_grad
    h = rng.normal(size=(3, 5, 8)).astype("float32")
    w = keras.ops.convert_to_tensor(rng.normal(size=(3, 5, 6)).astype("float32"))  # weighs each
    dense, token = keras.layers.Dense(6, activation="gelu"), tr.TokenDense(6, activation="gelu")
    dense.build(h.shape)
    token.build(h.shape)
    token.set_weights(dense.get_weights())
    res = {}
    for name, layer in (("dense", dense), ("token", token)):
        _, grads = value_and_grad(lambda: keras.ops.sum(layer(h) * w), layer.trainable_variables)
        res[name] = [keras.ops.convert_to_numpy(keras.ops.stop_gradient(t))
                     for t in [layer(h), *grads]]
    out["token_dense"] = [list(res["token"][0].shape)] + [
        float(np.abs(a - b).max() / np.abs(a).max()) for a, b in zip(res["dense"], res["token"])]

    # a few training steps on a learnable sequence: the loss falls
    set_seed(1)
    text = np.tile(np.arange(V), 400)
    ds = tr.RandomWindows(text, T, 16, steps=10, seed=0)
    m = tr.build_gpt(V, T, n_layer=1, n_head=2, n_embd=32, dropout=0.1, tie_weights=True)
    m.compile(keras.optimizers.AdamW(1e-2, weight_decay=0.1, global_clipnorm=1.0),
              keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    h = m.fit(ds, epochs=3, verbose=0)
    out["loss"] = h.history["loss"]
    print(json.dumps(out))
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_gpt_on_backend(backend):
    out = run_with_backend(backend, CHECKS)
    for name in ("learned", "sinusoidal", "fused"):
        r = out[name]
        assert r["shape"] == [3, 16, 11] and r["dtype"] == "float32", (name, r)
        assert r["before"] == 0.0, f"{name}: a later token changed an earlier logit"
        assert r["at"] > 0.0, f"{name}: the changed token had no effect on its own position"
    # tying removes the V x C output matrix; sinusoidal removes the T x C position table
    assert out["learned"]["params"] - out["tied"]["params"] == 11 * 16
    assert out["learned"]["params"] - out["sinusoidal"]["params"] == 16 * 16
    assert out["maps"] == [[1, 2, 16, 16]] * 2
    assert out["rowsum"] < 1e-5 and out["upper"] == 0.0
    assert out["short"] < 1e-5, "a shorter input must give the same logits as the prefix"
    assert out["fused_vs_explicit"] < 1e-4
    # output, kernel gradient, bias gradient of TokenDense against Dense (relative differences)
    assert out["token_dense"][0] == [3, 5, 6] and max(out["token_dense"][1:]) < 1e-5, out
    assert out["fused_dropout"] > 1e-3, "the fused path in training must drop attention weights"
    assert out["gen"][0] == [2, 23] and out["gen"][1] and 0 <= out["gen"][2] <= out["gen"][3] < 11
    loss = out["loss"]
    assert all(math.isfinite(v) for v in loss)
    assert loss[-1] < loss[0] - 0.3, loss


def test_sinusoidal_encoding_and_mask():
    from gdlbook import transformer as tr
    from keras import ops
    table = tr.sinusoidal_encoding(50, 8)
    assert table.shape == (50, 8) and table.dtype == np.float32
    assert np.allclose(table[0, 0::2], 0) and np.allclose(table[0, 1::2], 1)
    assert np.allclose(table[:, 0], np.sin(np.arange(50)), atol=1e-6)
    assert np.allclose(table[:, 0::2] ** 2 + table[:, 1::2] ** 2, 1, atol=1e-6)
    with pytest.raises(ValueError):
        tr.sinusoidal_encoding(10, 7)
    mask = ops.convert_to_numpy(tr.causal_mask(4))
    assert np.array_equal(mask, np.tril(np.ones((4, 4), bool)))


def test_bad_arguments():
    from gdlbook import transformer as tr
    with pytest.raises(ValueError, match="multiple"):
        tr.CausalSelfAttention(10, 3)
    with pytest.raises(ValueError, match="positional"):
        tr.TokenAndPositionEmbedding(5, 8, 4, positional="rotary")
    with pytest.raises(ValueError, match="too few"):
        tr.RandomWindows(np.arange(8), 8, 2, 1)


def test_random_windows_are_shifted_and_reproducible():
    from gdlbook import transformer as tr
    seq = np.arange(1000)
    ds = tr.RandomWindows(seq, 32, 4, steps=3, seed=5)
    x, y = ds[1]
    assert x.shape == y.shape == (4, 32) and x.dtype == np.int32
    assert np.array_equal(y, x + 1) and np.array_equal(x[:, 1:], x[:, :-1] + 1)
    assert np.array_equal(ds[1][0], x) and len(ds) == 3
    ds.on_epoch_end()
    assert not np.array_equal(ds[1][0], x), "a new epoch draws new windows"
    fixed = tr.RandomWindows(seq, 32, 4, steps=3, seed=5, resample=False)
    first = fixed[0][0]
    fixed.on_epoch_end()
    assert np.array_equal(fixed[0][0], first), "validation windows stay fixed"


def test_benchmark_tiny_mode_runs():
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpt_shakespeare.py"), "--tiny", "--iters",
         "20", "--eval-interval", "10", "--eval-iters", "2"],
        env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    evals = re.findall(r"^step (\d+) \| train loss (\S+) \| val loss (\S+) \|",
                       proc.stdout, flags=re.M)
    assert [int(e[0]) for e in evals] == [10, 20], proc.stdout
    for _, train, val in evals:
        assert math.isfinite(float(train)) and math.isfinite(float(val)), proc.stdout
    assert "ms/iter" in proc.stdout and "tokens/s" in proc.stdout
    assert "without the position table, as nanoGPT prints" in proc.stdout


def test_scaled_init_of_the_residual_projections():
    """nanoGPT's init: 0.02 / sqrt(2 n_layer) for attention output and MLP output, 0.02 else."""
    import gdlbook
    from gdlbook import transformer as tr
    n_layer = 8
    gdlbook.set_seed(0)
    for scaled, expected in ((True, 0.02 / math.sqrt(2 * n_layer)), (False, 0.02)):
        m = tr.build_gpt(11, 16, n_layer=n_layer, n_head=4, n_embd=128, scaled_init=scaled)
        kernels = {}
        for v in m.weights:
            kind = v.path.split("/")[-2]
            if v.path.endswith("kernel"):
                kernels.setdefault(kind, []).append(np.asarray(v.numpy()).ravel())
        weights = {k: np.concatenate(vs) for k, vs in kernels.items()}
        assert set(weights) == {"qkv", "proj", "fc", "fc_out", "head"}, weights.keys()
        for k, w in weights.items():
            want = expected if k in ("proj", "fc_out") else 0.02
            # the sample standard deviation of n normal draws is off by about 1/sqrt(2n) of it:
            # five of those (9% for the 1,408 weights of the head, under 1% for the others),
            # far from the factor of 4 between the two scales
            assert abs(w.std() / want - 1) < 5 / math.sqrt(2 * w.size), (scaled, k, w.std())


def test_no_bias_model_matches_nanogpt_count():
    """bias=False leaves no bias or LayerNorm beta; the count is nanoGPT's formula."""
    from gdlbook import transformer as tr
    V, T, L, H, C = 11, 16, 3, 2, 32
    plain = tr.build_gpt(V, T, L, H, C, tie_weights=True, bias=False)
    names = [v.path for v in plain.weights]
    assert not [n for n in names if n.endswith(("bias", "beta"))], names
    assert plain.count_params() == tr.nanogpt_param_count(V, T, L, C)["total"]
    assert plain.count_params() == V * C + T * C + L * (12 * C * C + 2 * C) + C
    biased = tr.build_gpt(V, T, L, H, C, tie_weights=True, bias=True)
    assert biased.count_params() == tr.nanogpt_param_count(V, T, L, C, bias=True)["total"]
    assert biased.count_params() - plain.count_params() == L * 11 * C + C
    # nanoGPT's baby Shakespeare model: it prints 10.65M, the count without positions
    baby = tr.nanogpt_param_count(65, 256, 6, 384)
    assert baby == {"total": 10_745_088, "non_embedding": 10_646_784}
    assert f"{baby['non_embedding'] / 1e6:.2f}M" == "10.65M"


def test_benchmark_refuses_fused_attention_with_dropout():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpt_shakespeare.py"), "--tiny", "--fused",
         "--dropout", "0.1"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no dropout" in proc.stderr, proc.stderr[-2000:]


def test_benchmark_nanogpt_cpu_config_matches_the_readme_command():
    """`--config nanogpt-cpu` is nanoGPT's README CPU run, and the command printed for nanoGPT
    trains exactly the configuration ours does."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpt_shakespeare.py"), "--config",
         "nanogpt-cpu", "--print-nanogpt-command"], env=env, capture_output=True, text=True,
        timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    args = set(proc.stdout.split())
    readme = ("--device=cpu --compile=False --eval_iters=20 --block_size=64 --batch_size=12 "
              "--n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 "
              "--dropout=0.0").split()
    assert set(readme) <= args, proc.stdout
    assert "config/train_shakespeare_char.py" in args
    # on a CPU nanoGPT runs with the allocator settings gdlbook.set_seed gives ours, or neither
    from gdlbook import allocator

    assert {f"{k}={v}" for k, v in allocator.environment().items()} <= args
    plain = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpt_shakespeare.py"), "--config",
         "nanogpt-cpu", "--print-nanogpt-command"], env={**env, "GDL_KEEP_FREED_MEMORY": "0"},
        capture_output=True, text=True, timeout=60)
    assert "MALLOC_" not in plain.stdout and set(readme) <= set(plain.stdout.split())
    bad = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpt_shakespeare.py"), "--nanogpt",
         "/nonexistent"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "not a nanoGPT checkout" in bad.stderr


def test_benchmark_auto_choices():
    """--fused auto and --jit-compile auto resolve as measured: XLA on TensorFlow and JAX, the
    fused kernel without dropout on a GPU and on eager PyTorch only."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "gpt_shakespeare", ROOT / "benchmarks" / "gpt_shakespeare.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    def choice(*argv, gpu=False):
        return bench.resolve_auto(bench.parse_args(["--config", "nanogpt-cpu", *argv]), gpu)

    # Keras's "auto" leaves XLA off for TensorFlow on a CPU; the benchmark turns it on
    assert choice("--backend", "tensorflow") == (False, True)
    assert choice("--backend", "jax") == (False, True)
    assert choice("--backend", "jax", gpu=True) == (True, True)
    assert choice("--backend", "torch") == (True, False)
    # Keras's flash-attention check makes Dynamo recompile: torch.compile gets the explicit path
    assert choice("--backend", "torch", "--jit-compile", "true") == (False, True)
    assert choice("--backend", "torch", "--jit-compile", "true", "--fused", "true") == (True, True)
    assert choice("--backend", "tensorflow", "--jit-compile", "false", "--fused") == (True, False)
    # the GPU configuration has dropout: explicit softmax everywhere
    assert not bench.resolve_auto(bench.parse_args(["--backend", "torch"]), True)[0]
