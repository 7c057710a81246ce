"""Minimal reproduction: on a CPU, XLA's backward pass through a stack of residual MLP blocks
is about twice as slow as PyTorch's when the linear layers multiply ``(B, T, C)`` tensors, and
as fast when they multiply the same numbers viewed as ``(B * T, C)`` matrices, provided that
the C allocator reuses the step's scratch buffer (``--keep-freed-memory``, below).

Chapter 9's GPT on JAX, at nanoGPT's CPU configuration (batch 12, context 64, 128 channels, 4
blocks), ran its forward pass faster than nanoGPT but its forward and backward together about
twice as slowly (session 16). Profiled with ``jax.profiler``, most of the backward's time was in
XLA loop fusions that transpose a gradient (``[768, 512] -> [512, 768]``) for the weight
gradient's matrix product, fused with GELU's or LayerNorm's backward, at 10-20 ns per element.
The weight gradient of ``x @ w`` with ``x`` of shape ``(B, T, C)`` is a product that contracts
two axes (batch and position) of both operands; XLA:CPU lays it out through those transposed
copies. With ``x`` reshaped to ``(B * T, C)`` first (a free view), it contracts one axis, and
the copies are gone. ``gdlbook.transformer.TokenDense`` applies its kernel that way.

This script needs neither Keras nor the book: it builds ``depth`` pre-norm blocks
``x + W2 gelu(W1 LN(x))`` (exact GELU, LayerNorm without bias, no attention) in plain JAX
(``jax.jit(jax.value_and_grad(...))``) twice, the products taken on ``(B, T, C)`` tensors
(``3-D``) and on ``(B * T, C)`` views (``2-D``), and in plain PyTorch (eager,
``loss.backward()``), with the same weights and batch; it checks that all three compute the same
outputs and prints the median time of the forward pass alone and of forward and backward
together, in milliseconds, for each depth::

    python benchmarks/xla_residual_backward.py [--depths 1,2,4,8] [--rounds 20] [--keep-freed-memory]

The last column is the scratch buffer of the JAX 2-D step, as XLA reports it. Where it passes
32 MiB, glibc's ``malloc`` hands out fresh pages for it at every step (``gdlbook.allocator``
explains why), and the JAX time per block jumps; ``--keep-freed-memory`` makes glibc reuse the
freed pages (``gdlbook.allocator.keep_freed_memory``, which ``gdlbook.set_seed`` calls on a
machine without a GPU). Session 18, 2 cores, medians of 10, forward + backward of 8 blocks
(64.5 MiB of scratch): JAX 2-D 72.9 ms without the flag, 40.5 with it; PyTorch 54.3 and 39.6
in the same two runs. Some of the 3-D slowdown measured in sessions 16 and 17 at 4 and 8
blocks was this too: 60.8 ms without the flag, 36.8 with it, at 4 blocks.

``XLA_FLAGS`` reach the JAX side as usual (none of those tried in session 16 changed the 3-D
picture: ``--xla_cpu_use_thunk_runtime=false``, ``--xla_cpu_multi_thread_eigen=false``,
``--xla_cpu_use_onednn=true``, ``--xla_cpu_experimental_{xnn,ynn}_fusion_type=-dot``, the XNN
graph fusion modes), and neither did JAX 0.4.38, 0.6.2, 0.8.3 or 0.9.2 (session 17).
"""

from __future__ import annotations

import argparse

import numpy as np

from _timing import median_ms

B, T, C = 12, 64, 128


def _weights(depth: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    # weights of scale 1/sqrt(fan-in), so that every block changes the output: a difference in
    # any part of the formula between the two sides shows in the check below
    return [dict(g=rng.uniform(0.5, 1.5, C).astype("float32"),
                 w1=(rng.standard_normal((C, 4 * C)) / np.sqrt(C)).astype("float32"),
                 w2=(rng.standard_normal((4 * C, C)) / np.sqrt(4 * C)).astype("float32"))
            for _ in range(depth)], rng.standard_normal((B, T, C)).astype("float32")


def jax_side(depth: int, rounds: int, rows: bool) -> dict:
    import jax
    import jax.numpy as jnp

    def layer_norm(x, g):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) * jax.lax.rsqrt(v + 1e-5) * g

    def matmul(a, w):
        if not rows:                                    # (B, T, C) @ (C, H)
            return a @ w
        return (a.reshape(-1, a.shape[-1]) @ w).reshape(*a.shape[:-1], w.shape[-1])

    def stack(params, x):
        for p in params:
            h = jax.nn.gelu(matmul(layer_norm(x, p["g"]), p["w1"]), approximate=False)
            x = x + matmul(h, p["w2"])
        return x

    def loss(params, x):
        return jnp.mean(stack(params, x) ** 2)

    weights, x = _weights(depth)
    params = jax.tree_util.tree_map(jnp.asarray, weights)
    x = jnp.asarray(x)
    forward, both = jax.jit(loss), jax.jit(jax.value_and_grad(loss))
    memory = both.lower(params, x).compile().memory_analysis()
    return dict(out=np.asarray(jax.jit(stack)(params, x)),
                scratch_mib=memory.temp_size_in_bytes / 2**20 if memory else float("nan"),
                forward=median_ms(lambda: forward(params, x).block_until_ready(), rounds, 2),
                both=median_ms(lambda: jax.block_until_ready(both(params, x)), rounds, 2))


def torch_side(depth: int, rounds: int) -> dict:
    import torch
    import torch.nn.functional as F

    weights, x = _weights(depth)
    params = [{k: torch.tensor(v, requires_grad=True) for k, v in p.items()} for p in weights]
    x = torch.tensor(x)

    def stack():
        h = x
        for p in params:
            h = h + F.gelu(F.layer_norm(h, (C,), p["g"], eps=1e-5) @ p["w1"]) @ p["w2"]
        return h

    def loss():
        return (stack() ** 2).mean()

    def both():
        for p in params:
            for v in p.values():
                v.grad = None
        loss().backward()

    with torch.no_grad():
        out = stack().numpy()
        forward = median_ms(loss, rounds, 2)
    return dict(out=out, forward=forward, both=median_ms(both, rounds, 2))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--depths", default="1,2,4,8")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--keep-freed-memory", action="store_true",
                   help="gdlbook.allocator.keep_freed_memory() first (glibc keeps freed memory)")
    args = p.parse_args(argv)
    import jax
    import torch

    kept = ""
    if args.keep_freed_memory:
        from gdlbook.allocator import keep_freed_memory

        kept = "; freed memory kept" if keep_freed_memory() else "; not glibc: allocator unchanged"
    print(f"jax {jax.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"batch {B}, context {T}, {C} channels; ms, median of {args.rounds}{kept}")
    print(f"{'':5s} {'forward':>25s} {'forward + backward':>36s}")
    print(f"{'depth':>5s} {'JAX 3-D':>8s} {'JAX 2-D':>8s} {'torch':>7s}   {'JAX 3-D':>8s} "
          f"{'JAX 2-D':>8s} {'torch':>7s} {'3-D/torch':>10s} {'2-D/torch':>10s} "
          f"{'2-D scratch MiB':>16s}")
    for depth in (int(d) for d in args.depths.split(",")):
        t = torch_side(depth, args.rounds)
        j3, j2 = (jax_side(depth, args.rounds, rows) for rows in (False, True))
        for name, j in (("3-D", j3), ("2-D", j2)):
            gap = float(np.max(np.abs(j["out"] - t["out"])))
            if gap > 1e-5 * float(np.max(np.abs(t["out"]))):
                raise SystemExit(f"depth {depth}: JAX {name} and PyTorch compute different "
                                 f"stacks (largest difference {gap:.2e})")
        print(f"{depth:>5d} {j3['forward']:8.2f} {j2['forward']:8.2f} {t['forward']:7.2f}   "
              f"{j3['both']:8.2f} {j2['both']:8.2f} {t['both']:7.2f} "
              f"{j3['both'] / t['both']:10.2f} {j2['both'] / t['both']:10.2f} "
              f"{j2['scratch_mib']:16.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
