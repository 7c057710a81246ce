"""Benchmark: chapter 9's GPT on character-level Tiny Shakespeare, side by side with nanoGPT.

This folder holds scripts that measure speed; they are not tests and not run by CI (a unit test
only checks that ``--tiny`` mode runs). This one trains the model of nanoGPT's
``config/train_shakespeare_char.py`` with ``gdlbook.transformer`` and one Keras ``fit()``, on the
backend named by ``KERAS_BACKEND`` (or ``--backend``). By default everything nanoGPT sets is
matched:

- model: 6 layers, 6 heads, 384 channels, context 256, dropout 0.2 (on the embeddings, the
  attention weights and both residual branches), tied output layer, no biases in the linear
  layers and LayerNorms (nanoGPT's ``bias = False``), normal(0, 0.02) initial weights and
  0.02 / sqrt(2 * n_layer) for the two projections that write into the residual stream;
- training: batch 64, AdamW (lr 1e-3, betas 0.9 / 0.99, eps 1e-8, weight decay 0.1 on the
  matrices and embeddings only), gradient clipping at global norm 1, nanoGPT's learning-rate
  schedule (linear warm-up ``lr * (it + 1) / 101`` for 100 iterations, cosine to 1e-4 at
  5,000), 5,000 iterations, evaluation every 250 on 200 fresh random batches of each split
  (90/10, as nanoGPT);
- precision ``auto``: what nanoGPT picks, bfloat16 autocast on a GPU that supports it, float16
  on other GPUs, float32 on a CPU (here the Keras policies ``mixed_bfloat16``,
  ``mixed_float16``, ``float32``: float32 weights, low-precision matrix products).

The model has 10,745,088 parameters; nanoGPT prints "10.65M", its count without the
256 x 384 position table. The script prints both counts (``--bias true`` gives 10,770,816).

Timing: one ``fit()`` runs every iteration; a callback takes the time of each interval of
``--eval-interval`` training iterations (waiting for its last step to finish), then evaluates both
splits and takes that time separately. Each line reports the interval's training time per
iteration and tokens per second (evaluation excluded; the first interval includes compilation)
and the evaluation time. The end prints the steady-state time per iteration (every interval but
the first), the total training and evaluation times and the wall time from the start of
``fit()``. nanoGPT's ``train.py`` prints ``dt``, the time between consecutive iteration ends:
at an evaluation iteration it includes the evaluation, at the first ones the compilation; its
other lines are training alone, comparable with our ms/iter. Its total wall time is
comparable with ours.

``--config nanogpt-cpu`` trains, instead, the configuration of nanoGPT's README for a machine
without a GPU (``--device=cpu --compile=False --eval_iters=20 --block_size=64 --batch_size=12
--n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0``;
the rest as above, target validation loss 1.88, the README's figure). nanoGPT is not a
dependency: ``--print-nanogpt-command`` prints its command line for the chosen configuration,
and ``--nanogpt CHECKOUT`` runs it from a checkout of ``karpathy/nanoGPT`` with this
interpreter (PyTorch needed), on the same text (written into its ``data/shakespeare_char`` if
it has none; its ``prepare.py`` makes the same 90/10 split) and prints the same summary: the
median of its per-iteration times (first interval and evaluating iterations left out) and the
validation losses. On a CPU both sides use glibc's allocator the same way: ours keeps freed
memory for reuse (``gdlbook.set_seed``, see ``gdlbook.allocator``), and nanoGPT runs with the
same settings as environment variables (``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=...``,
printed with its command); ``GDL_KEEP_FREED_MEMORY=0`` leaves glibc's default on both. Side by
side on one CPU, one after another::

    python benchmarks/gpt_shakespeare.py --config nanogpt-cpu --nanogpt /path/to/nanoGPT
    KERAS_BACKEND=tensorflow python benchmarks/gpt_shakespeare.py --config nanogpt-cpu
    KERAS_BACKEND=torch python benchmarks/gpt_shakespeare.py --config nanogpt-cpu
    KERAS_BACKEND=jax python benchmarks/gpt_shakespeare.py --config nanogpt-cpu

Compare with nanoGPT on the same machine (``compile=True`` is nanoGPT's default, so the torch
line compiles too)::

    KERAS_BACKEND=jax python benchmarks/gpt_shakespeare.py
    KERAS_BACKEND=tensorflow python benchmarks/gpt_shakespeare.py
    KERAS_BACKEND=torch python benchmarks/gpt_shakespeare.py --jit-compile true
    python train.py config/train_shakespeare_char.py    # in a nanoGPT checkout

Attention: nanoGPT computes it with PyTorch's fused kernel (``scaled_dot_product_attention``)
whenever PyTorch has one, with or without dropout. ``--fused auto`` (the default) takes
``keras.ops.dot_product_attention`` when there is no dropout and the kernel pays: on a GPU, and
on PyTorch run eagerly (in the nanogpt-cpu configuration, forward and backward of one batch
took 44.5 ms fused and 54.4 ms explicit, against 43.5 ms for nanoGPT's own model; 2 cores,
medians of 3 x 50 calls, session 14). Elsewhere it keeps the explicit softmax: XLA on a CPU
compiled it into a faster step than the fused op (JAX, nanogpt-cpu, 2,000 iterations: 66.3
against 73.9 ms per iteration; TensorFlow with XLA, one train step: 36.9 against 38.3 ms;
session 17), and under ``torch.compile`` (PyTorch, ``--jit-compile true``) Keras's
``dot_product_attention`` asks at every call whether a flash-attention kernel applies
(``_can_use_flash_attention``), which makes Dynamo recompile the step until it reaches its
recompile limit and runs the step uncompiled: 63-80 ms per step, against 42-49 with that check
patched out and 47-50 for the compiled explicit softmax (2 cores, 100-step epochs, session 16).
With dropout it keeps the explicit softmax too, because that op has no dropout argument while
nanoGPT's drops attention weights (``dropout_p``), so ``--fused true`` is refused there (time
the fused kernel without dropout on both sides: ``--dropout 0`` here, ``--dropout=0.0`` for
nanoGPT). ``--fused false`` and ``--fused true`` force either path.

Other options: ``--precision``, ``--jit-compile auto|true|false`` (``compile(jit_compile=...)``;
``auto`` is XLA on TensorFlow and JAX and eager execution on PyTorch; ``true`` on PyTorch is
``torch.compile``; Keras's own ``"auto"`` would leave XLA off for TensorFlow on a machine
without a GPU, where the nanogpt-cpu step then took 91.5 ms per iteration against 50.7 with
XLA, session 17), ``--bias true`` and ``--scaled-init false`` (GPT-2-style biases, plain
0.02 init), ``--iters``, ``--batch``, ``--eval-interval``, ``--eval-iters``, ``--target``.
``--tiny`` shrinks the model (2 layers, 2 heads, 64 channels, context 64, batch 16, no dropout)
for a quick check on a CPU, e.g. ``--tiny --iters 20 --eval-interval 10 --eval-iters 2``.

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

NANOGPT = dict(context=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2, batch=64)
# nanoGPT's README, "I only have a macbook": its CPU run of the same script
NANOGPT_CPU = dict(context=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, batch=12)
CONFIGS = {"baby-gpt": (NANOGPT, dict(iters=5000, eval_iters=200, target=1.47)),
           "nanogpt-cpu": (NANOGPT_CPU, dict(iters=2000, eval_iters=20, target=1.88))}
TINY = dict(context=64, n_layer=2, n_head=2, n_embd=64, dropout=0.0, batch=16)


def nanogpt_command(args) -> list[str]:
    """nanoGPT's own ``train.py`` with the configuration this run trains (its README's CPU line
    for ``--config nanogpt-cpu``)."""
    cfg = args.cfg
    cmd = ["train.py", "config/train_shakespeare_char.py", f"--max_iters={args.iters}",
           f"--lr_decay_iters={args.iters}", f"--eval_iters={args.eval_iters}",
           f"--eval_interval={args.eval_interval}", f"--block_size={cfg['context']}",
           f"--batch_size={cfg['batch']}", f"--n_layer={cfg['n_layer']}",
           f"--n_head={cfg['n_head']}", f"--n_embd={cfg['n_embd']}",
           f"--dropout={cfg['dropout']}", "--log_interval=1"]
    if args.config == "nanogpt-cpu":
        cmd += ["--device=cpu", "--compile=False"]
    return cmd


def nanogpt_environment(args) -> dict[str, str]:
    """What nanoGPT's process gets on top of ours: on a CPU (``nanogpt-cpu``), the allocator
    settings that ``gdlbook.set_seed`` gives our side, unless ``GDL_KEEP_FREED_MEMORY=0``."""
    from gdlbook import allocator

    if args.config != "nanogpt-cpu" or not allocator.requested():
        return {}
    return allocator.environment()


def nanogpt_shell_line(args, python: str = "python") -> str:
    """nanoGPT's command line with its extra environment in front, as a shell takes it."""
    env = "".join(f"{k}={v} " for k, v in nanogpt_environment(args).items())
    return env + " ".join([python, *nanogpt_command(args)])


def run_nanogpt(args) -> int:
    """Run nanoGPT's ``train.py`` from the checkout ``args.nanogpt`` on the same text and split,
    and summarise its log as this script summarises ours: steady-state ms/iteration (the median of
    its per-iteration times, leaving out the first interval and the iterations that evaluate)
    and the validation losses."""
    import re
    import statistics
    import subprocess

    from gdlbook import data

    folder = os.path.join(args.nanogpt, "data", "shakespeare_char")
    if not os.path.isfile(os.path.join(args.nanogpt, "train.py")) or not os.path.isdir(folder):
        print(f"{args.nanogpt} is not a nanoGPT checkout (no train.py, data/shakespeare_char)",
              file=sys.stderr)
        return 2
    if not os.path.isfile(os.path.join(folder, "train.bin")):
        text_path = os.path.join(folder, "input.txt")
        if not os.path.isfile(text_path):         # the same text as ours, offline
            with open(text_path, "w", encoding="utf-8") as f:
                f.write(data.load("tinyshakespeare", verbose=False))
        subprocess.run([sys.executable, "prepare.py"], cwd=folder, check=True)
    cmd = [sys.executable, *nanogpt_command(args)]
    env = {**os.environ, **nanogpt_environment(args)}
    print("running in", args.nanogpt + ":", nanogpt_shell_line(args, sys.executable), flush=True)
    proc = subprocess.Popen(cmd, cwd=args.nanogpt, stdout=subprocess.PIPE, text=True, env=env)
    times, vals, evals = {}, [], set()
    for line in proc.stdout:
        print(line, end="", flush=True)
        if m := re.match(r"iter (\d+): loss \S+, time ([\d.]+)ms", line):
            times[int(m[1])] = float(m[2])
        elif m := re.match(r"step (\d+): train loss \S+, val loss ([\d.]+)", line):
            vals.append((int(m[1]), float(m[2])))
            evals.add(int(m[1]))
    if proc.wait():
        return proc.returncode
    steady = [t for i, t in times.items() if i >= args.eval_interval and i not in evals]
    per_iter = statistics.median(steady) if steady else float("nan")
    reached = next((step for step, v in vals if v <= args.target), None)
    print(f"nanoGPT steady state: {per_iter:.1f} ms/iter (median of {len(steady)} iterations); "
          f"final validation loss {vals[-1][1] if vals else float('nan'):.4f}; validation loss "
          + (f"<= {args.target} first at step {reached}" if reached else
             f"did not reach {args.target}"), flush=True)
    return 0


def _bool(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() == "true"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backend", choices=("tensorflow", "torch", "jax"),
                   help="Keras backend (default: $KERAS_BACKEND, else tensorflow)")
    p.add_argument("--precision", default="auto",
                   choices=("auto", "float32", "mixed_bfloat16", "mixed_float16"),
                   help="auto (default): nanoGPT's choice for the device")
    p.add_argument("--jit-compile", default="auto", choices=("auto", "true", "false"),
                   help="auto (default): XLA on TensorFlow and JAX, eager PyTorch; true on "
                        "PyTorch: torch.compile")
    p.add_argument("--fused", nargs="?", const="true", default="auto",
                   choices=("auto", "true", "false"),
                   help="fused dot-product attention kernel; auto (default): without dropout, "
                        "on a GPU or on PyTorch run eagerly")
    p.add_argument("--config", default="baby-gpt", choices=sorted(CONFIGS),
                   help="baby-gpt (default): config/train_shakespeare_char.py; nanogpt-cpu: "
                        "its README's CPU run (4 layers, 4 heads, 128 channels, context 64, "
                        "batch 12, no dropout, 2,000 iterations, 20 evaluation batches)")
    p.add_argument("--nanogpt", default=None, metavar="CHECKOUT",
                   help="run nanoGPT's own train.py from this checkout with the same "
                        "configuration, instead of ours")
    p.add_argument("--print-nanogpt-command", action="store_true",
                   help="print the nanoGPT command for this configuration and stop")
    p.add_argument("--tiny", action="store_true", help="a tiny model, for a CPU check")
    p.add_argument("--dropout", type=float, default=None, help="default 0.2 (0 with --tiny)")
    p.add_argument("--bias", type=_bool, default=False, help="biases (nanoGPT: false)")
    p.add_argument("--scaled-init", type=_bool, default=True,
                   help="0.02/sqrt(2 n_layer) for the residual projections (nanoGPT: true)")
    p.add_argument("--iters", type=int, default=None, help="default: the configuration's")
    p.add_argument("--batch", type=int, default=None, help="default 64 (16 with --tiny)")
    p.add_argument("--eval-interval", type=int, default=250)
    p.add_argument("--eval-iters", type=int, default=None, help="default: the configuration's")
    p.add_argument("--target", type=float, default=None,
                   help="validation loss to report (default: the configuration's)")
    p.add_argument("--seed", type=int, default=1337)
    args = p.parse_args(argv)
    model_cfg, run_cfg = CONFIGS[args.config]
    for key, value in run_cfg.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    cfg = dict(TINY if args.tiny else model_cfg)
    if args.dropout is not None:
        cfg["dropout"] = args.dropout
    if args.batch is not None:
        cfg["batch"] = args.batch
    args.backend = args.backend or os.environ.get("KERAS_BACKEND", "tensorflow")
    if args.fused == "true" and cfg["dropout"] > 0:
        p.error(f"--fused with dropout {cfg['dropout']}: keras.ops.dot_product_attention has "
                "no dropout, while nanoGPT's flash attention drops attention weights; the "
                "model would not be nanoGPT's. Leave out --fused, or time both without "
                "dropout (--dropout 0 here, --dropout=0.0 for nanoGPT).")
    if min(args.iters, args.eval_interval, args.eval_iters) < 1:
        p.error("--iters, --eval-interval and --eval-iters must be positive")
    args.cfg = cfg
    return args


def resolve_auto(args, gpu: bool) -> tuple[bool, bool]:
    """``(fused attention, jit_compile)`` for this run, ``--fused auto`` and ``--jit-compile
    auto`` resolved as measured on a CPU at the nanogpt-cpu configuration (session 17):

    - jit_compile: chapter 9's, ``gdlbook.transformer.training_jit_compile``: XLA on JAX and
      TensorFlow, eager execution on PyTorch. Keras's own ``"auto"`` leaves XLA off for
      TensorFlow on a machine without a GPU, where the step then took 1.5 to 1.8 times as long
      as with XLA.
    - attention: the fused kernel where there is no dropout and it pays: on a GPU (flash
      attention), and on PyTorch run eagerly (``scaled_dot_product_attention``). On a CPU, XLA's
      fused op was slower than the explicit softmax (JAX: 74 against 66 ms per iteration), and
      under ``torch.compile`` Keras's check for a flash-attention kernel makes Dynamo recompile
      until it gives up (see the module's docstring).
    """
    from gdlbook.transformer import training_jit_compile

    jit = {"true": True, "false": False,
           "auto": training_jit_compile(args.backend)}[args.jit_compile]
    compiled_torch = args.backend == "torch" and jit
    auto = args.cfg["dropout"] == 0 and not compiled_torch and (gpu or args.backend == "torch")
    return {"true": True, "false": False, "auto": auto}[args.fused], jit


def nanogpt_precision() -> str:
    """nanoGPT's ``dtype``: bfloat16 autocast on a GPU with bfloat16, float16 on other GPUs,
    no autocast (float32) on a CPU, mapped to a Keras dtype policy."""
    import keras

    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        if not torch.cuda.is_available():
            return "float32"
        return "mixed_bfloat16" if torch.cuda.is_bf16_supported() else "mixed_float16"
    if backend == "jax":
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        if not gpus:
            return "float32"
        capability = getattr(gpus[0], "compute_capability", "8.0")
        return "mixed_bfloat16" if float(capability) >= 8.0 else "mixed_float16"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "float32"
    capability = tf.config.experimental.get_device_details(gpus[0]).get(
        "compute_capability", (8, 0))
    return "mixed_bfloat16" if tuple(capability) >= (8, 0) else "mixed_float16"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.print_nanogpt_command:
        print(nanogpt_shell_line(args))
        return 0
    if args.nanogpt:
        return run_nanogpt(args)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    import numpy as np
    import keras
    from keras import ops

    import gdlbook
    from gdlbook import data, training, transformer

    cfg = args.cfg
    context, batch = cfg["context"], cfg["batch"]
    lr, min_lr, warmup = 1e-3, 1e-4, min(100, max(1, args.iters // 10))

    text = data.load("tinyshakespeare", verbose=False)
    chars = sorted(set(text))
    lookup = np.zeros(128, dtype="int32")
    lookup[[ord(c) for c in chars]] = np.arange(len(chars))
    tokens = lookup[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]
    split = int(0.9 * len(tokens))
    parts = {"train": tokens[:split], "val": tokens[split:]}

    from gdlbook.profile import accelerator_available

    fused, jit = resolve_auto(args, gpu=accelerator_available())
    precision = nanogpt_precision() if args.precision == "auto" else args.precision
    keras.mixed_precision.set_global_policy(precision)
    gdlbook.set_seed(args.seed)     # as chapter 9 does (on TensorFlow it also sets up tf.data)
    model = transformer.build_gpt(
        len(chars), context, cfg["n_layer"], cfg["n_head"], cfg["n_embd"], cfg["dropout"],
        tie_weights=True, fused_attention=fused, bias=args.bias,
        scaled_init=args.scaled_init)

    class NanoGPTSchedule(keras.optimizers.schedules.LearningRateSchedule):
        """nanoGPT's get_lr: lr (it + 1) / (warmup + 1), then a cosine to min_lr."""

        def __call__(self, step):
            it = ops.cast(step, "float32")
            warm = lr * (it + 1.0) / (warmup + 1.0)
            ratio = ops.clip((it - warmup) / max(1, args.iters - warmup), 0.0, 1.0)
            cosine = min_lr + 0.5 * (1.0 + ops.cos(math.pi * ratio)) * (lr - min_lr)
            return ops.where(it < warmup, warm, cosine)

    optimizer = keras.optimizers.AdamW(NanoGPTSchedule(), weight_decay=0.1, beta_1=0.9,
                                       beta_2=0.99, epsilon=1e-8, global_clipnorm=1.0)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    model.compile(optimizer=optimizer, jit_compile=jit,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    interval = min(args.eval_interval, args.iters)
    epochs = math.ceil(args.iters / interval)
    train = transformer.RandomWindows(parts["train"], context, batch, interval, seed=args.seed)
    n_params = model.count_params()
    from gdlbook import allocator

    print(f"backend {keras.backend.backend()}, precision {precision}, jit_compile "
          f"{jit}, fused attention {fused}, bias {args.bias}, scaled init "
          f"{args.scaled_init}, freed memory kept {allocator.kept}; {cfg}, "
          f"{epochs * interval} iterations", flush=True)
    print(f"{n_params:,} parameters; without the position table, as nanoGPT prints: "
          f"{n_params - context * cfg['n_embd']:,} ({(n_params - context * cfg['n_embd']) / 1e6:.2f}M)",
          flush=True)

    class EvalTimer(training.EpochTimer):
        """Times each interval of training, then evaluates both splits on fresh batches."""

        def __init__(self):
            super().__init__()
            self.eval_s, self.reached, self.failed = [], None, False

        def on_train_begin(self, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)    # the interval's training time, its steps done
            t1 = time.perf_counter()
            losses = {}
            for i, (name, part) in enumerate(parts.items()):
                fresh = transformer.RandomWindows(part, context, batch, args.eval_iters,
                                                  seed=args.seed + 1000 * (epoch + 1) + i)
                losses[name] = float(self.model.evaluate(fresh, verbose=0))
            self.eval_s.append(time.perf_counter() - t1)
            step, per_iter = (epoch + 1) * interval, self.train_seconds[-1] / interval
            if self.reached is None and losses["val"] <= args.target:
                self.reached = step
            print(f"step {step} | train loss {losses['train']:.4f} | val loss "
                  f"{losses['val']:.4f} | {1000 * per_iter:.1f} ms/iter | "
                  f"{batch * context / per_iter:,.0f} tokens/s | eval {self.eval_s[-1]:.1f} s "
                  f"| {time.perf_counter() - self.start:.1f} s", flush=True)
            if not all(math.isfinite(v) for v in losses.values()):
                self.failed = self.model.stop_training = True

    timer = EvalTimer()
    model.fit(train, epochs=epochs, verbose=0, callbacks=[timer])
    if timer.failed:
        print("non-finite loss: stopped", file=sys.stderr)
        return 1
    per_iter = timer.steady_seconds() / interval
    print(f"steady state: {1000 * per_iter:.1f} ms/iter, {batch * context / per_iter:,.0f} "
          f"tokens/s; training {sum(timer.train_seconds):.1f} s, evaluation "
          f"{sum(timer.eval_s):.1f} s, wall {time.perf_counter() - timer.start:.1f} s; validation loss "
          + (f"<= {args.target} first at step {timer.reached}" if timer.reached else
             f"did not reach {args.target}"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
