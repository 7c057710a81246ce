"""Minimal reproduction: on a CPU, XLA computes the kernel gradient of a transposed convolution
far more slowly than the same layer written as a sub-pixel convolution.

Pure JAX (no Keras): the three stride-2, 3×3 transposed convolutions of chapter 3's decoder
(4→8, 8→16, 16→32 pixels, batch 100), timed forward and backward, and the kernel gradient alone,
against an ordinary convolution with four times the output channels followed by depth-to-space
(what ``gdlbook.upsampling.Conv2DTranspose`` does on JAX). Medians of ``--rounds`` calls after a
warm-up, in milliseconds::

    python benchmarks/conv_transpose_xla.py [--rounds 10] [--batch 100]

This is what the JAX backend of Keras runs for ``keras.layers.Conv2DTranspose`` (it lowers to
``jax.lax.conv_transpose``); the slow part is XLA:CPU's code for a convolution whose input is
dilated, which is what the kernel gradient of a strided transposed convolution is.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from _timing import median_ms

LAYERS = [(4, 128, 128), (8, 128, 64), (16, 64, 32)]   # (input size, in channels, out channels)
DN = ("NHWC", "HWIO", "NHWC")


def conv_transpose(x, k):
    return lax.conv_transpose(x, k, (2, 2), "SAME", dimension_numbers=DN)


def subpixel(x, k4):
    y = lax.conv_general_dilated(x, k4, (1, 1), "SAME", dimension_numbers=DN)
    b, h, w, c = y.shape
    y = y.reshape(b, h, w, 2, 2, c // 4).transpose(0, 1, 3, 2, 4, 5)
    return y.reshape(b, 2 * h, 2 * w, c // 4)


def _jax_ms(fn, x, k, rounds: int) -> float:
    return median_ms(lambda: jax.block_until_ready(fn(x, k)), rounds)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"{'layer':>22} {'route':>15} {'forward':>9} {'d/dx,d/dk':>10} {'d/dk':>9}  (ms)")
    for size, c_in, c_out in LAYERS:
        x = jnp.asarray(rng.normal(size=(args.batch, size, size, c_in)), jnp.float32)
        routes = {"conv_transpose": (conv_transpose, (3, 3, c_in, c_out)),
                  "sub-pixel": (subpixel, (2, 2, c_in, 4 * c_out))}
        for name, (fn, shape) in routes.items():
            k = jnp.asarray(rng.normal(size=shape) * 0.05, jnp.float32)
            loss = lambda x, k, fn=fn: jnp.sum(fn(x, k) ** 2)
            fwd = _jax_ms(jax.jit(fn), x, k, args.rounds)
            both = _jax_ms(jax.jit(jax.grad(loss, argnums=(0, 1))), x, k, args.rounds)
            dk = _jax_ms(jax.jit(jax.grad(loss, argnums=1)), x, k, args.rounds)
            layer = f"{size}->{2 * size} px, {c_in}->{c_out} ch"
            print(f"{layer:>22} {name:>15} {fwd:9.1f} {both:10.1f} {dk:9.1f}", flush=True)


if __name__ == "__main__":
    main()
