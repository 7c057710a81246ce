"""tf.data's autotuner and a training loop on a small CPU: a reproduction without Keras.

Chapter 3's VAE trained with ``fit()`` on TensorFlow ran whole epochs at about half speed
(128 ms per step against 65-75 ms) in roughly two epochs of five, on this project's two-core
machine, with Keras 3 and with tf-keras alike; a ``tf.function`` step called on a fixed batch
never did. This script takes Keras out: the VAE's step in plain TensorFlow
(:func:`vae_step_floor.tensorflow_step`), fed by a ``tf.data`` pipeline over in-memory arrays
(``from_tensor_slices`` → ``shuffle`` → ``batch`` → ``prefetch``), one epoch with tf.data's
autotuner on (its default), one with ``Options().autotune.enabled = False``, alternating, in
one process. It prints every epoch's ms/step and, per setting, the median, the minimum and the
share of "slow" epochs (over 1.4 times the fastest epoch of the run).

    python benchmarks/tf_data_autotune.py [--epochs 8] [--steps 40]

Why it matters: :func:`gdlbook.training.tf_data_autotune` turns the autotuner off for the
pipelines ``fit()`` builds from arrays.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from vae_step_floor import BATCH, LATENT, SIZE, _init, tensorflow_step


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=8, help="epochs per setting (alternating)")
    p.add_argument("--steps", type=int, default=40, help="steps per epoch")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.steps < 1:
        p.error("--epochs and --steps must be at least 1")
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    n = BATCH * args.steps
    x = (rng.random((n, SIZE, SIZE, 1)) < 0.3).astype("float32")
    eps = rng.normal(size=(n, LATENT)).astype("float32")
    step = tensorflow_step(_init(rng))

    def pipeline(autotune: bool):
        options = tf.data.Options()
        options.autotune.enabled = autotune
        ds = tf.data.Dataset.from_tensor_slices((x, eps)).shuffle(n, seed=0)
        return ds.batch(BATCH, drop_remainder=True).prefetch(2).with_options(options)

    def epoch(autotune: bool) -> float:
        t0 = time.perf_counter()
        for xb, eb in pipeline(autotune):
            loss = step(xb, eb)
        float(loss)
        return (time.perf_counter() - t0) / args.steps * 1000

    first_loss = float(step(x[:BATCH], eps[:BATCH]))
    epoch(True), epoch(False)                              # warm-up: tracing, first iterators
    times = {"autotune on": [], "autotune off": []}
    for e in range(args.epochs):
        for autotune in (True, False):
            key = "autotune on" if autotune else "autotune off"
            times[key].append(epoch(autotune))
            print(f"epoch {e + 1}  {key:<13s} {times[key][-1]:7.1f} ms/step", flush=True)
    last_loss = float(step(x[:BATCH], eps[:BATCH]))
    fastest = min(min(v) for v in times.values())
    print(f"\n{'tf.data setting':<16s}{'ms/step median (min)':>22s}{'slow epochs':>13s}")
    for key, v in times.items():
        slow = sum(t > 1.4 * fastest for t in v)
        print(f"{key:<16s}{statistics.median(v):>14.1f} ({min(v):.1f}){slow:>9d} of {len(v)}")
    print(f"(loss on the first batch {first_loss:.1f} -> {last_loss:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
