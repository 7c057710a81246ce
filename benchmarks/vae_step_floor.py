"""Benchmark: chapter 3's VAE training step written directly in each framework, without Keras.

``train_throughput.py`` times the book's loops through Keras. This script answers the question
behind a slow backend: is the time Keras's (or ours), or the framework's own kernels? It trains
the same network as chapter 3's Fashion-MNIST VAE (three stride-2 3×3 convolutions 32/64/128 with
ReLU, two dense heads for a 2-dimensional code, a dense layer back to 4×4×128, three stride-2 3×3
transposed convolutions 128/64/32 with ReLU and a 3×3 sigmoid convolution; 347,141 weights), on
batches of 100 random 32×32 images, with the negative ELBO (Bernoulli reconstruction summed over
pixels plus the KL term) and Adam (learning rate 1e-3), written as each framework's own users
would write it:

- ``torch``: ``torch.nn`` modules (NCHW), ``torch.optim.Adam``, eager; ``--channels-last`` puts
  the weights and images in PyTorch's channels-last memory format (oneDNN's preferred layout);
- ``jax``: ``jax.lax`` convolutions (NHWC) and ``lax.conv_transpose``, Adam written out, one
  ``jax.jit`` of the whole step;
- ``tensorflow``: ``tf.nn`` convolutions and ``tf.nn.conv2d_transpose`` (NHWC), one
  ``tf.function`` of the whole step, Adam written out.

Each framework runs in a fresh process (``--rounds`` rounds, interleaved); a process does
``--warmup`` steps, then ``--repeats`` timings of ``--steps`` steps, and reports the median
milliseconds per step. Compare with ``train_throughput.py --loops vae`` on the same machine::

    python benchmarks/vae_step_floor.py --frameworks tensorflow,torch,jax --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from _worker import print_result, run_worker

BATCH, SIZE, LATENT, LR = 100, 32, 2, 1e-3
ENC, DEC = (32, 64, 128), (128, 64, 32)
WEIGHTS = 347_141


def _shapes():
    """Every weight's shape, in NHWC / HWIO order: the encoder, the heads, the decoder."""
    shapes, c = [], 1
    for f in ENC:
        shapes += [(3, 3, c, f), (f,)]
        c = f
    flat = 4 * 4 * ENC[-1]
    shapes += [(flat, 2 * LATENT), (2 * LATENT,), (LATENT, flat), (flat,)]
    c = DEC[0]
    for f in DEC:
        shapes += [(3, 3, f, c), (f,)]   # transposed convolution kernels: (kh, kw, out, in)
        c = f
    shapes += [(3, 3, c, 1), (1,)]
    return shapes


def _init(rng):
    import numpy as np
    ws = []
    for s in _shapes():
        fan_in = int(np.prod(s[:-1])) if len(s) > 1 else 1
        ws.append((rng.normal(size=s) * (0.5 / np.sqrt(fan_in)) if len(s) > 1
                   else np.zeros(s)).astype("float32"))
    assert sum(w.size for w in ws) == WEIGHTS
    return ws


def run_jax(args, x_np, eps_np, ws_np):
    import jax
    import jax.numpy as jnp
    from jax import lax

    dn = ("NHWC", "HWIO", "NHWC")

    def forward(ws, x, eps):
        h, i = x, 0
        for _ in ENC:
            h = jax.nn.relu(lax.conv_general_dilated(h, ws[i], (2, 2), "SAME",
                                                     dimension_numbers=dn) + ws[i + 1])
            i += 2
        stats = h.reshape(BATCH, -1) @ ws[i] + ws[i + 1]
        mu, logvar = stats[:, :LATENT], stats[:, LATENT:]
        z = mu + jnp.exp(0.5 * logvar) * eps
        h = jax.nn.relu(z @ ws[i + 2] + ws[i + 3]).reshape(BATCH, 4, 4, DEC[0])
        i += 4
        for _ in DEC:
            k = jnp.transpose(ws[i], (0, 1, 3, 2))       # (kh, kw, in, out)
            h = jax.nn.relu(lax.conv_transpose(h, k, (2, 2), "SAME", dimension_numbers=dn)
                            + ws[i + 1])
            i += 2
        logits = lax.conv_general_dilated(h, ws[i], (1, 1), "SAME", dimension_numbers=dn) \
            + ws[i + 1]
        rec = jnp.sum(jnp.maximum(logits, 0) - logits * x + jnp.log1p(jnp.exp(-jnp.abs(logits))),
                      axis=(1, 2, 3))
        kl = -0.5 * jnp.sum(1 + logvar - mu ** 2 - jnp.exp(logvar), axis=1)
        return jnp.mean(rec + kl)

    @jax.jit
    def step(ws, m, v, t, x, eps):
        loss, g = jax.value_and_grad(forward)(ws, x, eps)
        t = t + 1
        m = [0.9 * a + 0.1 * b for a, b in zip(m, g)]
        v = [0.999 * a + 0.001 * b * b for a, b in zip(v, g)]
        lr = LR * jnp.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        ws = [w - lr * a / (jnp.sqrt(b) + 1e-7) for w, a, b in zip(ws, m, v)]
        return ws, m, v, t, loss

    ws = [jnp.asarray(w) for w in ws_np]
    m, v = [jnp.zeros_like(w) for w in ws], [jnp.zeros_like(w) for w in ws]
    t, x, eps = jnp.float32(0), jnp.asarray(x_np), jnp.asarray(eps_np)
    state = [ws, m, v, t]

    def one():
        *new, loss = step(*state, x, eps)
        state[:] = new
        return loss

    def sync(loss):
        return float(loss)

    return one, sync


def run_torch(args, x_np, eps_np, ws_np):
    import torch
    import torch.nn.functional as F

    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    ws = []
    for w in ws_np:          # to PyTorch's layouts: OIHW kernels, (out, in) matrices
        t = torch.from_numpy(w)
        if w.ndim == 4:
            t = t.permute(3, 2, 0, 1).contiguous(memory_format=fmt)   # conv: (out, in, kh, kw);
        elif w.ndim == 2:                                              # transposed: (in, out, ..)
            t = t.T.contiguous()
        ws.append(t.requires_grad_())
    opt = torch.optim.Adam(ws, lr=LR, eps=1e-7)
    x = torch.from_numpy(x_np).permute(0, 3, 1, 2).contiguous(memory_format=fmt)
    eps = torch.from_numpy(eps_np)

    def forward():
        h, i = x, 0
        for _ in ENC:
            h = F.relu(F.conv2d(h, ws[i], ws[i + 1], stride=2, padding=1))
            i += 2
        stats = F.linear(h.permute(0, 2, 3, 1).reshape(BATCH, -1), ws[i], ws[i + 1])
        mu, logvar = stats[:, :LATENT], stats[:, LATENT:]
        z = mu + torch.exp(0.5 * logvar) * eps
        h = F.relu(F.linear(z, ws[i + 2], ws[i + 3])).reshape(BATCH, 4, 4, DEC[0])
        h = h.permute(0, 3, 1, 2).contiguous(memory_format=fmt)
        i += 4
        for _ in DEC:
            h = F.relu(F.conv_transpose2d(h, ws[i], ws[i + 1], stride=2,
                                          padding=1, output_padding=1))
            i += 2
        logits = F.conv2d(h, ws[i], ws[i + 1], padding=1)
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3))
        kl = -0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum(1)
        return (rec + kl).mean()

    def one():
        loss = forward()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return one, lambda loss: float(loss.detach())


def tensorflow_step(ws_np, jit_compile: bool = False):
    """The VAE's training step in plain TensorFlow: ``step(x, eps) -> loss`` (a ``tf.function``
    holding its weights and Adam's moments); ``benchmarks/tf_data_autotune.py`` uses it too."""
    import tensorflow as tf

    ws = [tf.Variable(w) for w in ws_np]
    m = [tf.Variable(tf.zeros_like(w)) for w in ws_np]
    v = [tf.Variable(tf.zeros_like(w)) for w in ws_np]
    t = tf.Variable(0.0)

    def forward(x, eps):
        h, i = x, 0
        for _ in ENC:
            h = tf.nn.relu(tf.nn.conv2d(h, ws[i], 2, "SAME") + ws[i + 1])
            i += 2
        stats = tf.reshape(h, (BATCH, -1)) @ ws[i] + ws[i + 1]
        mu, logvar = stats[:, :LATENT], stats[:, LATENT:]
        z = mu + tf.exp(0.5 * logvar) * eps
        h = tf.reshape(tf.nn.relu(z @ ws[i + 2] + ws[i + 3]), (BATCH, 4, 4, DEC[0]))
        i += 4
        size = 4
        for f in DEC:
            size *= 2
            h = tf.nn.relu(tf.nn.conv2d_transpose(h, ws[i], (BATCH, size, size, f), 2, "SAME")
                           + ws[i + 1])
            i += 2
        logits = tf.nn.conv2d(h, ws[i], 1, "SAME") + ws[i + 1]
        rec = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(x, logits), (1, 2, 3))
        kl = -0.5 * tf.reduce_sum(1 + logvar - mu ** 2 - tf.exp(logvar), 1)
        return tf.reduce_mean(rec + kl)

    @tf.function(jit_compile=jit_compile)
    def step(x, eps):
        with tf.GradientTape() as tape:
            loss = forward(x, eps)
        grads = tape.gradient(loss, ws)
        t.assign_add(1.0)
        lr = LR * tf.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        for w, a, b, g in zip(ws, m, v, grads):
            a.assign(0.9 * a + 0.1 * g)
            b.assign(0.999 * b + 0.001 * g * g)
            w.assign_sub(lr * a / (tf.sqrt(b) + 1e-7))
        return loss

    return step


def run_tensorflow(args, x_np, eps_np, ws_np):
    import tensorflow as tf

    step = tensorflow_step(ws_np, args.tf_xla)
    x, eps = tf.constant(x_np), tf.constant(eps_np)
    return (lambda: step(x, eps)), lambda loss: float(loss)


def worker(args) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    x = (rng.random((BATCH, SIZE, SIZE, 1)) < 0.3).astype("float32")
    eps = rng.normal(size=(BATCH, LATENT)).astype("float32")
    one, sync = {"jax": run_jax, "torch": run_torch,
                 "tensorflow": run_tensorflow}[args.worker](args, x, eps, _init(rng))
    loss = one()
    first = sync(loss)
    for _ in range(args.warmup - 1):
        loss = one()
    sync(loss)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for _ in range(args.steps):
            loss = one()
        last = sync(loss)
        times.append((time.perf_counter() - t0) / args.steps * 1000)
    return dict(ms_per_step=statistics.median(times), all_ms=[round(a, 1) for a in times],
                first_loss=first, last_loss=last)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frameworks", default="tensorflow,torch,jax")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--channels-last", action="store_true", help="PyTorch: channels-last format")
    p.add_argument("--tf-xla", action="store_true", help="TensorFlow: jit_compile=True")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.warmup < 1 or args.steps < 1 or args.repeats < 1:
        p.error("--warmup, --steps and --repeats must be at least 1")
    if args.worker:
        print_result(worker(args))
        return 0
    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    bad = sorted(set(frameworks) - {"tensorflow", "torch", "jax"})
    if bad:
        p.error(f"unknown framework(s) {', '.join(bad)}: tensorflow, torch or jax")
    results = {f: [] for f in frameworks}
    extra = (["--channels-last"] if args.channels_last else []) + \
        (["--tf-xla"] if args.tf_xla else [])
    for r in range(args.rounds):
        for f in frameworks:
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", f, "--steps",
                   str(args.steps), "--repeats", str(args.repeats), "--warmup",
                   str(args.warmup), *extra]
            res = run_worker(cmd, dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), f)
            results[f].append(res)
            print(f"round {r + 1}  {f:<11s} {res['ms_per_step']:7.1f} ms/step  {res['all_ms']}  "
                  f"loss {res['first_loss']:.1f} -> {res['last_loss']:.1f}", flush=True)
    print(f"\n{'framework, no Keras':<22s}{'ms/step median (min)':>22s}{'steps/s':>9s}")
    for f in frameworks:
        ms = [res["ms_per_step"] for res in results[f]]
        print(f"{f:<22s}{statistics.median(ms):>14.1f} ({min(ms):.1f}){1000 / statistics.median(ms):>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
