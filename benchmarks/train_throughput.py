"""Benchmark: training steps per second of the book's main training loops.

This folder holds scripts that measure speed; they are not tests and not run by CI (a unit test
only checks that ``--tiny`` mode runs). This one times six ``fit()`` loops, built with the
``gdlbook`` functions and the chapter's settings at the ``laptop`` profile's sizes:

========  ==========================================================================
vae       chapter 3: the Fashion-MNIST VAE (32×32, latent 2, batch 100, Adam)
dcgan     chapter 4: DCGAN at 32×32, width 32, batch 128 (one step = D and G updates)
wgan      chapter 4: WGAN-GP at 32×32, width 32, batch 128, 3 critic steps per G step
pixelcnn  chapter 5: PixelCNN, 64 filters, 5 residual blocks, 16×16 images, 4 levels, batch 128
unet      chapter 8: the DDIM U-Net, widths 32/64/96/128, depth 2, 32×32, batch 64, AdamW + EMA
gpt       chapter 9: the GPT, 4 layers, 4 heads, 128 channels, context 64, batch 12
========  ==========================================================================

Each measurement is a fresh process: it builds the model, runs one warm-up epoch (compilation
included), then ``--epochs`` timed epochs of ``--steps`` steps; a callback reads the clock at
each epoch's start and end, so the figure is training alone (no validation, ``verbose=0``).
``--rounds`` repeats every (loop, configuration) pair, interleaved round by round so that a
change in the machine's load hits every configuration alike; the table gives the median and
the minimum over rounds of each round's mean steps/s.

The timed loops are the book's models; the inputs are the real data for the VAE (Fashion-MNIST,
as in chapter 3) and random arrays of the chapters' shapes for the others (the cost of a step does
not depend on the pixel values; the GPT's windows still come from chapter 9's ``RandomWindows``).

Backends: ``--backends tensorflow,torch,jax`` (default: ``KERAS_BACKEND``, else TensorFlow); each
worker process gets ``KERAS_BACKEND`` set.

Side by side with Foster's own code (:cite:`foster2023generative`, the notebooks of
``davidADSP/Generative_Deep_Learning_2nd_Edition``, Keras 2 / tf-keras). Nothing of it is copied
here: ``--foster CHECKOUT`` names a checkout of that repository and ``--foster-python`` an
interpreter with TensorFlow and ``tf-keras`` (``pip install tensorflow tf-keras matplotlib
scipy``). The worker reads the code cells of ``notebooks/03_vae/02_vae_fashion/vae_fashion.ipynb``
from the checkout and runs them, with ``TF_USE_LEGACY_KERAS=1``, up to the ``compile`` call, with
``fashion_mnist.load_data`` returning the same 20,000 training images as our run (its ``display``
calls draw nothing: ``MPLBACKEND=Agg``), then calls the notebook's ``vae.fit`` with the same
batch, epochs and timing callback as ours, without its checkpoint and TensorBoard callbacks.
Only the VAE has a Foster counterpart here::

    git clone https://github.com/davidADSP/Generative_Deep_Learning_2nd_Edition /tmp/foster
    python -m venv /tmp/fenv && /tmp/fenv/bin/pip install tensorflow tf-keras matplotlib scipy
    python benchmarks/train_throughput.py --loops vae --backends tensorflow,torch,jax \\
        --foster /tmp/foster --foster-python /tmp/fenv/bin/python --rounds 3

Processes differ (a machine's load drifts, an epoch can run at two speeds: notes of sessions 12
to 14), so ``--same-process`` also runs the pair in one process: Foster's VAE under tf-keras
and ours under Keras 3, on the same TensorFlow, one ``fit(epochs=1)`` each in turn (Foster's
first in odd pairs, ours first in even ones), timed by the same callback; ``--epochs`` is the
number of timed pairs after one warm-up pair, and the summary is the median over rounds of each
round's median ratio of the two sides' steps/s in a pair. The Foster interpreter then needs
Keras 3 beside tf-keras (``pip install tensorflow tf-keras`` installs both)::

    python benchmarks/train_throughput.py --loops vae --foster /tmp/foster \\
        --foster-python /tmp/fenv/bin/python --same-process --rounds 3 --epochs 4

Other options: ``--steps``, ``--epochs``, ``--jit-compile chapter|auto|true|false``
(``compile``'s ``jit_compile``; ``chapter``, the default, is what the chapter's laptop profile
passes: ``False`` for the GANs, ``"auto"`` for the others; on a machine with only a CPU, Keras
turns ``"auto"`` into XLA on JAX and into no XLA on TensorFlow and PyTorch),
``--steps-per-execution N`` (Keras refuses more than 1 on PyTorch), ``--tf-data-autotune``
(leave tf.data's autotuner on, as Keras does; :func:`gdlbook.set_seed` turns it off),
``--json FILE`` (every measurement),
``--tiny`` (small sizes, one round, for a quick check). Run from the repository root with the
package importable (``pip install -e .`` or ``PYTHONPATH=.``); set ``GDL_DATA_DIR`` for the
offline Fashion-MNIST.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from _worker import print_result, run_worker

LOOPS = ("vae", "dcgan", "wgan", "pixelcnn", "unet", "gpt")
FOSTER_VAE = "notebooks/03_vae/02_vae_fashion/vae_fashion.ipynb"
N_IMAGES = 20_000   # the VAE's training images, both sides


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--loops", default=",".join(LOOPS),
                   help=f"comma-separated, from {', '.join(LOOPS)} (default: all)")
    p.add_argument("--backends", default=os.environ.get("KERAS_BACKEND", "tensorflow"))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3, help="timed epochs after the warm-up one")
    p.add_argument("--steps", type=int, default=None,
                   help="steps per epoch (default: 200 for the VAE, 40-100 for the others)")
    p.add_argument("--jit-compile", default="chapter", choices=("chapter", "auto", "true", "false"),
                   help="compile(jit_compile=...); 'chapter': the chapter's laptop setting")
    p.add_argument("--steps-per-execution", type=int, default=1)
    p.add_argument("--tf-data-autotune", action="store_true",
                   help="ours on TensorFlow: leave tf.data's autotuner on (GDL_TF_DATA_AUTOTUNE=1)")
    p.add_argument("--foster", default=None, help="a checkout of Foster's notebooks repository")
    p.add_argument("--foster-python", default=None,
                   help="a Python with TensorFlow and tf-keras for Foster's code")
    p.add_argument("--same-process", action="store_true",
                   help="with --foster: Foster's VAE and ours in one process, epochs alternating "
                        "(the Foster interpreter needs Keras 3 besides tf-keras)")
    p.add_argument("--json", default=None, help="write every measurement to this file")
    p.add_argument("--tiny", action="store_true", help="small sizes and one round")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.loops = [x.strip() for x in args.loops.split(",") if x.strip()]
    unknown = sorted(set(args.loops) - set(LOOPS))
    if unknown:
        p.error(f"unknown loop(s) {', '.join(unknown)}; choose from {', '.join(LOOPS)}")
    args.backends = [x.strip() for x in args.backends.split(",") if x.strip()]
    bad = sorted(set(args.backends) - {"tensorflow", "torch", "jax"})
    if bad:
        p.error(f"unknown backend(s) {', '.join(bad)}: tensorflow, torch or jax")
    if (args.foster is None) != (args.foster_python is None):
        p.error("--foster and --foster-python go together")
    if args.foster and not os.path.isfile(os.path.join(args.foster, FOSTER_VAE)):
        p.error(f"{args.foster} has no {FOSTER_VAE}: is it a checkout of Foster's repository?")
    if args.same_process and not args.foster:
        p.error("--same-process needs --foster")
    if args.tiny:
        args.rounds, args.epochs = 1, 1
    return args


def _default_steps(loop: str, tiny: bool) -> int:
    if tiny:
        return 3
    return {"vae": 200, "dcgan": 60, "wgan": 30, "pixelcnn": 40, "unet": 40, "gpt": 100}[loop]


# --- the workers (one measurement each, in a fresh process) ---------------------------------

class _EpochClock:
    """A Keras callback (built lazily, so that either Keras can import it) timing epochs."""

    @staticmethod
    def make(keras):
        class Clock(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seconds = []

            def on_epoch_begin(self, epoch, logs=None):
                self._t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(time.perf_counter() - self._t0)
                self.last_logs = {k: float(v) for k, v in (logs or {}).items()}

        return Clock()


def _fashion(n: int):
    import numpy as np

    from gdlbook import data
    x, y = data.load("fashion_mnist", "train", subset=n, seed=0, verbose=False)
    return x, y, np.pad(x.astype("float32") / 255.0, ((0, 0), (2, 2), (2, 2)))[..., None]


def _build(loop: str, tiny: bool, jit, spe: int):
    """(model, fit arguments) of one of the book's loops, compiled as its chapter does."""
    import keras
    import numpy as np

    from gdlbook import autoregressive, diffusion, gans, transformer, vae

    rng = np.random.default_rng(0)
    compile_kw = dict(jit_compile=jit, steps_per_execution=spe)
    if loop == "vae":
        _, _, x = _fashion(N_IMAGES if not tiny else 600)
        model = vae.VAE(vae.conv_encoder((32, 32, 1), 2), vae.conv_decoder(2, (32, 32, 1)),
                        beta=1.0, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), **compile_kw)
        return model, dict(x=x, batch_size=100)
    if loop in ("dcgan", "wgan"):
        width, batch = (8, 16) if tiny else (32, 128)
        x = rng.uniform(-1, 1, (batch * 64, 32, 32, 3)).astype("float32")
        if loop == "dcgan":
            model = gans.DCGAN(gans.build_generator(100, 32, 3, width=width),
                               gans.build_discriminator(32, 3, width=width),
                               latent_dim=100, label_noise=0.1, seed=42)
            beta_2 = 0.999
        else:
            model = gans.WGANGP(gans.build_generator(128, 32, 3, width=width),
                                gans.build_discriminator(32, 3, width=width, batch_norm=False,
                                                         output_activation=None, name="critic"),
                                latent_dim=128, critic_steps=3, gp_weight=10.0, seed=42)
            beta_2 = 0.9
        model.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=beta_2),
                      g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=beta_2),
                      **compile_kw)
        return model, dict(x=x, batch_size=batch)
    if loop == "pixelcnn":
        filters, blocks, batch = (16, 1, 16) if tiny else (64, 5, 128)
        levels = rng.integers(0, 4, (batch * 64, 16, 16, 1))
        model = autoregressive.build_pixelcnn(16, 4, filters, blocks)
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      **compile_kw)
        return model, dict(x=(levels / 3).astype("float32"), y=levels, batch_size=batch)
    if loop == "unet":
        widths, depth, batch = ((8, 16), 1, 8) if tiny else ((32, 64, 96, 128), 2, 64)
        x = rng.uniform(0, 1, (batch * 64, 32, 32, 3)).astype("float32")
        model = diffusion.DiffusionModel(
            diffusion.build_unet(32, widths, depth, 32, norm_momentum=0.99),
            schedule="offset_cosine", seed=42)
        model.normalizer.adapt(x[:512])
        model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=1e-4, use_ema=True,
                                                       ema_momentum=0.99), **compile_kw)
        return model, dict(x=x, batch_size=batch)
    if loop == "gpt":
        sizes = dict(context=16, n_layer=1, n_head=2, n_embd=32, batch=4) if tiny else \
            dict(context=64, n_layer=4, n_head=4, n_embd=128, batch=12)
        tokens = rng.integers(0, 65, 200_000)
        model = transformer.build_gpt(65, sizes["context"], sizes["n_layer"], sizes["n_head"],
                                      sizes["n_embd"], 0.0, tie_weights=True, bias=False,
                                      scaled_init=True)
        optimizer = keras.optimizers.AdamW(1e-3, weight_decay=0.1, beta_2=0.99, epsilon=1e-8,
                                           global_clipnorm=1.0)
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        model.compile(optimizer=optimizer, **compile_kw,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model, dict(windows=(tokens, sizes["context"], sizes["batch"]))
    raise ValueError(loop)


def _repeat(a, n: int):
    """The first ``n`` rows of ``a`` repeated as often as needed (an epoch of exactly n)."""
    import numpy as np
    return np.concatenate([a] * -(-n // len(a)))[:n]


def _fit_timed(keras, model, fit, steps: int, epochs: int) -> dict:
    clock = _EpochClock.make(keras)
    if "windows" in fit:
        from gdlbook import transformer
        tokens, context, batch = fit["windows"]
        ds = transformer.RandomWindows(tokens, context, batch, steps=steps, seed=0)
        model.fit(ds, epochs=1 + epochs, verbose=0, callbacks=[clock])
    else:
        n = steps * fit["batch_size"]
        model.fit(_repeat(fit["x"], n), _repeat(fit["y"], n) if "y" in fit else None,
                  batch_size=fit["batch_size"], epochs=1 + epochs, shuffle=True, verbose=0,
                  callbacks=[clock])
    timed = clock.seconds[1:]
    return dict(steps_per_s=steps * len(timed) / sum(timed),
                epoch_steps_per_s=[round(steps / s, 3) for s in clock.seconds],
                last_logs=clock.last_logs)


def _jit(loop: str, args):
    """``compile``'s ``jit_compile`` for a loop: ``--jit-compile``, or the chapter's."""
    if args.jit_compile == "chapter":    # chapter 4 trains its GANs with jit_compile=False
        return False if loop in ("dcgan", "wgan") else "auto"
    return {"auto": "auto", "true": True, "false": False}[args.jit_compile]


def worker_ours(loop: str, args) -> dict:
    import keras

    import gdlbook

    gdlbook.set_seed(0)     # as every chapter does before it trains (it also sets up tf.data)
    model, fit = _build(loop, args.tiny, _jit(loop, args), args.steps_per_execution)
    out = _fit_timed(keras, model, fit, args.steps or _default_steps(loop, args.tiny),
                     args.epochs)
    return dict(out, params=int(model.count_params()))


def _foster_model(args, n: int):
    """Foster's VAE, built and compiled by the notebook's own cells (under tf-keras)."""
    import tensorflow as tf

    x_raw, y_raw, _ = _fashion(n)
    tf.keras.datasets.fashion_mnist.load_data = lambda: ((x_raw, y_raw), (x_raw[:500],
                                                                          y_raw[:500]))
    with open(os.path.join(args.foster, FOSTER_VAE), encoding="utf-8") as f:
        cells = [c for c in json.load(f)["cells"] if c["cell_type"] == "code"]
    sys.path.insert(0, args.foster)    # its cells import notebooks.utils
    namespace: dict = {}
    for cell in cells:
        source = "".join(line for line in cell["source"] if not line.lstrip().startswith("%"))
        exec(compile(source, FOSTER_VAE, "exec"), namespace)
        if ".compile(" in source:
            break
    import tf_keras

    if not isinstance(namespace["vae"], tf_keras.Model):
        raise RuntimeError("Foster's code did not run under tf-keras: set TF_USE_LEGACY_KERAS=1")
    return namespace


def worker_foster_vae(args) -> dict:
    """Run Foster's VAE notebook code from ``args.foster`` (see the module's docstring)."""
    import tf_keras as keras

    namespace = _foster_model(args, 600 if args.tiny else N_IMAGES)
    model = namespace["vae"]
    steps = args.steps or _default_steps("vae", args.tiny)
    x = _repeat(namespace["x_train"], steps * namespace["BATCH_SIZE"])
    clock = _EpochClock.make(keras)
    model.fit(x, epochs=1 + args.epochs, batch_size=namespace["BATCH_SIZE"], shuffle=True,
              verbose=0, callbacks=[clock])
    timed = clock.seconds[1:]
    params = model.encoder.count_params() + model.decoder.count_params()
    return dict(steps_per_s=steps * len(timed) / sum(timed), params=int(params),
                epoch_steps_per_s=[round(steps / s, 3) for s in clock.seconds],
                last_logs=clock.last_logs)


def worker_vae_pair(args) -> dict:
    """Foster's VAE (tf-keras) and ours (Keras 3) in one process, epochs alternating.

    Both run on the same TensorFlow, so the process, the machine's state and the data are
    shared; what differs is the Keras and the model code. Each side gets one warm-up epoch, then
    ``--epochs`` timed epochs each, alternating (Foster's first in odd pairs, ours first in even
    ones). An epoch is one ``fit(epochs=1)`` call timed from its first batch to its last (the
    callback's clock), so the per-call setup of ``fit()`` is left out on both sides.
    """
    import keras
    import tf_keras

    import gdlbook

    n = 600 if args.tiny else N_IMAGES
    namespace = _foster_model(args, n)
    gdlbook.set_seed(0)
    ours, fit = _build("vae", args.tiny, _jit("vae", args), args.steps_per_execution)
    steps = args.steps or _default_steps("vae", args.tiny)
    batch = namespace["BATCH_SIZE"]
    sides = {
        "foster": (namespace["vae"], _repeat(namespace["x_train"], steps * batch), tf_keras),
        "ours": (ours, _repeat(fit["x"], steps * batch), keras),
    }
    seconds: dict = {name: [] for name in sides}
    for i in range(1 + args.epochs):
        order = ("foster", "ours") if i % 2 else ("ours", "foster")
        for name in order:
            model, x, lib = sides[name]
            clock = _EpochClock.make(lib)
            model.fit(x, epochs=1, batch_size=batch, shuffle=True, verbose=0, callbacks=[clock])
            seconds[name].append(clock.seconds[0])
    rates = {name: [steps / s for s in secs[1:]] for name, secs in seconds.items()}
    ratios = [o / f for o, f in zip(rates["ours"], rates["foster"])]
    return dict(steps_per_s={k: statistics.median(v) for k, v in rates.items()},
                epoch_steps_per_s={k: [round(r, 3) for r in v] for k, v in rates.items()},
                ratio_median=statistics.median(ratios), ratio_min=min(ratios),
                ratio_max=max(ratios))


# --- the orchestrator -------------------------------------------------------------------------

def _spawn(config: dict, args) -> dict:
    here = os.path.abspath(__file__)
    cmd = [config["python"], here, "--worker", config["worker"], "--epochs", str(args.epochs),
           "--jit-compile", args.jit_compile,
           "--steps-per-execution", str(args.steps_per_execution)]
    if args.steps:
        cmd += ["--steps", str(args.steps)]
    if args.tiny:
        cmd += ["--tiny"]
    if args.foster:
        cmd += ["--foster", args.foster, "--foster-python", args.foster_python]
    env = dict(os.environ, KERAS_BACKEND=config["backend"], MPLBACKEND="Agg",
               TF_CPP_MIN_LOG_LEVEL="2")
    repo = os.path.dirname(os.path.dirname(here))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, env.get("PYTHONPATH")]))
    if config.get("legacy"):
        env["TF_USE_LEGACY_KERAS"] = "1"
    if args.tf_data_autotune:
        env["GDL_TF_DATA_AUTOTUNE"] = "1"
    return run_worker(cmd, env, config["label"])


def _main_same_process(args) -> int:
    config = dict(loop="vae", label="vae  Foster's and ours, one process",
                  python=args.foster_python, worker="vae-pair", backend="tensorflow", legacy=True)
    results = []
    for r in range(args.rounds):
        res = _spawn(config, args)
        results.append(res)
        print(f"round {r + 1}  Foster's {res['steps_per_s']['foster']:6.2f} steps/s  ours "
              f"{res['steps_per_s']['ours']:6.2f}  ratio per epoch pair: median "
              f"{res['ratio_median']:.3f} (min {res['ratio_min']:.3f}, max "
              f"{res['ratio_max']:.3f})  ({res['wall_s']} s)", flush=True)
    ratios = [res["ratio_median"] for res in results]
    print(f"\nours / Foster's, median over rounds of each round's median epoch-pair ratio: "
          f"{statistics.median(ratios):.3f} (rounds: {', '.join(f'{x:.3f}' for x in ratios)})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(dict(args=vars(args), results=results), f, indent=1)
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        loop, _, backend = args.worker.partition(":")
        worker = {"foster-vae": worker_foster_vae, "vae-pair": worker_vae_pair}.get(loop)
        result = worker(args) if worker else worker_ours(loop, args)
        print_result(result)
        return 0
    if args.same_process:
        return _main_same_process(args)
    configs = []
    for loop in args.loops:
        if loop == "vae" and args.foster:
            configs.append(dict(loop="vae", label="vae  Foster's code, tf-keras",
                                python=args.foster_python, worker="foster-vae",
                                backend="tensorflow", legacy=True))
        for backend in args.backends:
            configs.append(dict(loop=loop, label=f"{loop:<9s}ours, {backend}",
                                python=sys.executable, worker=loop, backend=backend))
    results: dict = {c["label"]: [] for c in configs}
    for r in range(args.rounds):
        for c in configs:
            res = _spawn(c, args)
            results[c["label"]].append(res)
            print(f"round {r + 1}  {c['label']:<34s} {res['steps_per_s']:7.2f} steps/s  "
                  f"epochs {res['epoch_steps_per_s']}  ({res['wall_s']} s)", flush=True)
    print(f"\n{'loop / configuration':<36s}{'steps/s median (min)':>22s}{'ratio':>8s}")
    reference: dict = {}
    for c in configs:
        rates = [res["steps_per_s"] for res in results[c["label"]]]
        med = statistics.median(rates)
        reference.setdefault(c["loop"], med)
        print(f"{c['label']:<36s}{med:>14.2f} ({min(rates):.2f}){med / reference[c['loop']]:>8.2f}")
    print("(ratio: to the first configuration of the same loop)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(dict(args={k: v for k, v in vars(args).items()}, results=results), f,
                      indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
