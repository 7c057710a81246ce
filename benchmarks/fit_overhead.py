"""Minimal reproduction: what one ``fit()`` step costs beyond the model's arithmetic, Keras 3
against Keras 2 (tf-keras), both on the same TensorFlow.

The model is one ``Dense(1)`` on one input, batch 1, SGD, mean squared error: its arithmetic is
a few multiplications, so the time of a step is the training loop itself (the ``tf.function``
call, the iterator, the callbacks, the logs). No ``gdlbook`` code is involved. Each epoch is
``--steps`` steps; after a warm-up epoch, ``--epochs`` timed epochs, interleaved between the two
Kerases (each in its own process, ``TF_USE_LEGACY_KERAS=1`` for tf-keras), medians in µs per
step, for ``steps_per_execution`` 1 (the default, and what the book's chapters use) and 10::

    python benchmarks/fit_overhead.py [--steps 2000] [--epochs 5] [--rounds 3]

It needs an interpreter with TensorFlow, Keras 3 and ``tf-keras`` (``pip install tensorflow
tf-keras``); ``--python`` names it (default: this one). Chapter 3's VAE takes about 70 ms a
step on two cores: the difference per step printed here, divided by that, is the share of
the gap to Foster's Keras 2 code that belongs to Keras's training loop rather than to the
model.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

WORKER = r"""
import json, os, sys, time
import numpy as np
legacy = os.environ.get("TF_USE_LEGACY_KERAS") == "1"
if legacy:
    import tf_keras as keras
else:
    import keras
import tensorflow as tf
tf.random.set_seed(0)
steps, epochs, spe = (int(a) for a in sys.argv[1:4])
x = np.random.default_rng(0).normal(size=(steps, 1)).astype("float32")
y = 2 * x
model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse", steps_per_execution=spe)
times = []
class Clock(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()
    def on_epoch_end(self, epoch, logs=None):
        times.append((time.perf_counter() - self.t0) / steps * 1e6)
model.fit(x, y, batch_size=1, epochs=epochs + 1, shuffle=False, verbose=0, callbacks=[Clock()])
print(json.dumps({"keras": keras.__version__, "us": times[1:]}))
"""


def run(python: str, legacy: bool, steps: int, epochs: int, spe: int) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("KERAS_BACKEND", None)
    env["TF_USE_LEGACY_KERAS"] = "1" if legacy else "0"
    out = subprocess.run([python, "-c", WORKER, str(steps), str(epochs), str(spe)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    results: dict[tuple[str, int], list[float]] = {}
    versions = {}
    for _ in range(args.rounds):
        for spe in (1, 10):
            for legacy in (True, False):
                name = "tf-keras" if legacy else "Keras 3"
                r = run(args.python, legacy, args.steps, args.epochs, spe)
                versions[name] = r["keras"]
                results.setdefault((name, spe), []).extend(r["us"])
    print(f"{'Keras':<10} {'version':<8} {'steps/execution':>15} {'µs/step median':>15} {'min':>8}")
    for (name, spe), us in results.items():
        print(f"{name:<10} {versions[name]:<8} {spe:>15} {statistics.median(us):>15.0f} "
              f"{min(us):>8.0f}")
    for spe in (1, 10):
        diff = statistics.median(results[("Keras 3", spe)]) - statistics.median(
            results[("tf-keras", spe)])
        print(f"steps_per_execution {spe}: Keras 3 - tf-keras = {diff:+.0f} µs per step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
