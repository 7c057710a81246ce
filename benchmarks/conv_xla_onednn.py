"""Minimal reproduction: on a CPU, XLA's ordinary convolutions are slower than TensorFlow's
(oneDNN) on the same shapes, the kernel gradient most.

Plain JAX (``jax.lax.conv_general_dilated`` under ``jax.jit``) against plain TensorFlow
(``tf.nn.conv2d`` under ``tf.function``, no XLA, so oneDNN's kernels): the convolutions chapter
3's VAE runs on JAX (its encoder's three stride-2 3×3 convolutions, the sub-pixel convolutions
that replace its decoder's transposed ones, and its last 3×3 convolution), batch 100, "same"
padding, channels-last. Forward alone, and forward with both gradients (input and kernel);
medians of ``--rounds`` calls after a warm-up, in milliseconds::

    python benchmarks/conv_xla_onednn.py [--rounds 10] [--batch 100]

Neither side involves Keras: whatever gap it shows lies between XLA:CPU and oneDNN. It is the
floor under chapter 3's VAE on the JAX backend (``benchmarks/train_throughput.py``).
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from _timing import median_ms

# (input size, in channels, out channels, kernel, stride): chapter 3's VAE as it runs on JAX
SHAPES = [(32, 1, 32, 3, 2), (16, 32, 64, 3, 2), (8, 64, 128, 3, 2),
          (4, 128, 512, 2, 1), (8, 128, 256, 2, 1), (16, 64, 128, 2, 1),   # sub-pixel
          (32, 32, 1, 3, 1)]


def time_jax(x_np, k_np, stride, rounds):
    import jax
    import jax.numpy as jnp
    from jax import lax

    x, k = jnp.asarray(x_np), jnp.asarray(k_np)
    conv = lambda x, k: lax.conv_general_dilated(x, k, (stride, stride), "SAME",
                                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))
    grads = jax.jit(jax.grad(lambda x, k: jnp.sum(conv(x, k) ** 2), argnums=(0, 1)))
    fwd = jax.jit(conv)
    return (median_ms(lambda: jax.block_until_ready(fwd(x, k)), rounds),
            median_ms(lambda: jax.block_until_ready(grads(x, k)), rounds))


def time_tensorflow(x_np, k_np, stride, rounds):
    import tensorflow as tf

    x, k = tf.constant(x_np), tf.constant(k_np)
    fwd = tf.function(lambda x, k: tf.nn.conv2d(x, k, stride, "SAME"), jit_compile=False)

    @tf.function(jit_compile=False)
    def grads(x, k):
        with tf.GradientTape() as tape:
            tape.watch([x, k])
            loss = tf.reduce_sum(tf.nn.conv2d(x, k, stride, "SAME") ** 2)
        return tape.gradient(loss, [x, k])

    return (median_ms(lambda: fwd(x, k).numpy(), rounds),
            median_ms(lambda: [g.numpy() for g in grads(x, k)], rounds))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    rng = np.random.default_rng(0)
    print(f"{'convolution':>28} {'XLA fwd':>8} {'oneDNN fwd':>11} {'XLA grads':>10} "
          f"{'oneDNN grads':>13}  (ms; grads: forward + d/dx + d/dk)")
    for size, c_in, c_out, kernel, stride in SHAPES:
        x = rng.normal(size=(args.batch, size, size, c_in)).astype("float32")
        k = (rng.normal(size=(kernel, kernel, c_in, c_out)) * 0.05).astype("float32")
        jf, jg = time_jax(x, k, stride, args.rounds)
        tf_f, tf_g = time_tensorflow(x, k, stride, args.rounds)
        name = f"{size}px {c_in}->{c_out} {kernel}x{kernel}/{stride}"
        print(f"{name:>28} {jf:8.1f} {tf_f:11.1f} {jg:10.1f} {tf_g:13.1f}", flush=True)


if __name__ == "__main__":
    main()
