"""Benchmark: chapter 9's GPT on character-level Tiny Shakespeare, side by side with nanoGPT.

This folder holds scripts that measure speed; they are not tests and not run by CI (a unit test
only checks that ``--tiny`` mode runs). This one trains nanoGPT's "baby GPT" configuration
(``config/train_shakespeare_char.py``: 6 layers, 6 heads, 384 channels, context 256, batch 64,
dropout 0.2, AdamW lr 1e-3 with 100 warm-up iterations and cosine decay to 1e-4 at 5,000
iterations, weight decay 0.1, beta2 0.99, gradient clipping at 1.0, tied output weights) with
``gdlbook.transformer`` and Keras ``fit()``, on the backend named by ``KERAS_BACKEND`` (or
``--backend``), and prints every ``--eval-interval`` iterations::

    step 250 | train loss 1.9669 | val loss 2.0624 | 14.5 ms/iter | 1,130,000 tokens/s | 12.3 s

Losses are the mean cross-entropy in nats per character over ``--eval-iters`` batches of the
training and of the validation split (90/10, as nanoGPT); ms/iter and tokens/s are for the
training iterations of that interval only (evaluation excluded; the first interval includes
compilation). At the end it prints the steady-state time per iteration (all intervals but the
first) and the first step at which the validation loss reached ``--target`` (1.47 by default).

Compare with nanoGPT on the same machine::

    KERAS_BACKEND=jax python benchmarks/gpt_shakespeare.py --precision mixed_bfloat16 --fused
    KERAS_BACKEND=tensorflow python benchmarks/gpt_shakespeare.py --precision mixed_bfloat16
    KERAS_BACKEND=torch python benchmarks/gpt_shakespeare.py --jit-compile true --fused
    python train.py config/train_shakespeare_char.py    # in a nanoGPT checkout

Options: ``--precision float32|mixed_bfloat16|mixed_float16`` (the Keras dtype policy),
``--jit-compile auto|true|false`` (``compile(jit_compile=...)``; ``auto``, the default, is
XLA on TensorFlow and JAX and eager execution on PyTorch; ``true`` on PyTorch is
``torch.compile``), ``--fused`` (attention through ``keras.ops.dot_product_attention``,
flash attention where available), ``--iters``, ``--batch``, ``--eval-interval``,
``--eval-iters``. ``--tiny`` shrinks the model (2 layers, 2 heads, 64 channels, context 64,
batch 16) for a quick check on a CPU, e.g. ``--tiny --iters 20``.

The data come from ``gdlbook.data.load("tinyshakespeare")`` (``$GDL_DATA_DIR/text`` or a
download). Run from the repository root with the package importable (``pip install -e .`` or
``PYTHONPATH=.``).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backend", choices=("tensorflow", "torch", "jax"),
                   help="Keras backend (default: $KERAS_BACKEND, else tensorflow)")
    p.add_argument("--precision", default="float32",
                   choices=("float32", "mixed_bfloat16", "mixed_float16"))
    p.add_argument("--jit-compile", default="auto", choices=("auto", "true", "false"))
    p.add_argument("--fused", action="store_true", help="fused dot-product attention kernel")
    p.add_argument("--tiny", action="store_true", help="a tiny model, for a CPU check")
    p.add_argument("--iters", type=int, default=5000)
    p.add_argument("--batch", type=int, default=None, help="default 64 (16 with --tiny)")
    p.add_argument("--eval-interval", type=int, default=250)
    p.add_argument("--eval-iters", type=int, default=200)
    p.add_argument("--target", type=float, default=1.47, help="validation loss to report")
    p.add_argument("--seed", type=int, default=1337)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    import numpy as np
    import keras

    from gdlbook import data, transformer

    if args.tiny:
        model_cfg = dict(context=64, n_layer=2, n_head=2, n_embd=64, dropout=0.0)
        batch = args.batch or 16
    else:
        model_cfg = dict(context=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2)
        batch = args.batch or 64
    lr, min_lr, warmup = 1e-3, 1e-4, min(100, max(1, args.iters // 10))
    context = model_cfg["context"]

    text = data.load("tinyshakespeare", verbose=False)
    chars = sorted(set(text))
    lookup = np.zeros(128, dtype="int32")
    lookup[[ord(c) for c in chars]] = np.arange(len(chars))
    tokens = lookup[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]
    split = int(0.9 * len(tokens))

    keras.mixed_precision.set_global_policy(args.precision)
    keras.utils.set_random_seed(args.seed)
    model = transformer.build_gpt(len(chars), tie_weights=True, fused_attention=args.fused,
                                  **model_cfg)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, args.iters - warmup), alpha=min_lr / lr, warmup_target=lr,
        warmup_steps=warmup)
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=0.1, beta_1=0.9, beta_2=0.99,
                                       global_clipnorm=1.0)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    model.compile(optimizer=optimizer, jit_compile=jit,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    interval = min(args.eval_interval, args.iters)
    train = transformer.RandomWindows(tokens[:split], context, batch, interval, seed=args.seed)
    evals = {name: transformer.RandomWindows(part, context, batch, args.eval_iters,
                                             seed=args.seed + 1 + i, resample=False)
             for i, (name, part) in enumerate((("train", tokens[:split]),
                                               ("val", tokens[split:])))}
    print(f"backend {keras.backend.backend()}, precision {args.precision}, jit_compile "
          f"{args.jit_compile}, fused attention {args.fused}; {model.count_params():,} "
          f"parameters; {model_cfg}, batch {batch}, {args.iters} iterations", flush=True)

    start, times, reached = time.perf_counter(), [], None
    for k in range(math.ceil(args.iters / interval)):
        t0 = time.perf_counter()
        model.fit(train, initial_epoch=k, epochs=k + 1, verbose=0)
        seconds = time.perf_counter() - t0        # fit() returns after the last step's loss
        times.append(seconds / interval)
        losses = {name: model.evaluate(ds, verbose=0) for name, ds in evals.items()}
        step = (k + 1) * interval
        if reached is None and losses["val"] <= args.target:
            reached = step
        print(f"step {step} | train loss {losses['train']:.4f} | val loss {losses['val']:.4f} "
              f"| {1000 * times[-1]:.1f} ms/iter | {batch * context / times[-1]:,.0f} tokens/s "
              f"| {time.perf_counter() - start:.1f} s", flush=True)
        if not all(math.isfinite(v) for v in losses.values()):
            print("non-finite loss: stopping", file=sys.stderr)
            return 1

    steady = times[1:] or times
    print(f"steady state: {1000 * float(np.mean(steady)):.1f} ms/iter, "
          f"{batch * context / float(np.mean(steady)):,.0f} tokens/s; validation loss "
          + (f"<= {args.target} first at step {reached}" if reached else
             f"did not reach {args.target}"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
