"""Training the book's models on several devices with Keras's and TensorFlow's own engines
(appendix A).

Nothing here splits a batch, reduces a gradient or places a shard by hand. On JAX the work is
done by ``keras.distribution`` (:class:`~keras.distribution.DataParallel`,
:class:`~keras.distribution.ModelParallel` with a :class:`~keras.distribution.LayoutMap`), which
hands shardings to XLA; on TensorFlow by ``tf.distribute.MirroredStrategy``. This module only
builds the models of chapters 8 and 9 (:mod:`gdlbook.diffusion`, :mod:`gdlbook.transformer`),
trains them for a few steps under a given distribution and reports what happened: the loss of
every step, the time of every step and the sharding of every weight.

JAX fixes its number of devices, and Keras its backend, when they are first imported, so one
Python process cannot compare "one device" on JAX with "eight devices" on TensorFlow. The
appendix therefore calls :func:`launch`, which runs this module as a command
(``python -m gdlbook.distributed SPEC.json OUT.json``) in a fresh process with the right
environment: ``KERAS_BACKEND`` and, for *virtual* devices on a machine that has one CPU,
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (JAX) or ``N`` logical CPU devices
(TensorFlow, :func:`split_cpu`). Virtual devices share the same cores: they show that the
distributed program computes the same thing, not that it is faster.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = ["MODELS", "KINDS", "device_environment", "split_cpu", "gpt_layout_map",
           "make_distribution", "train_steps", "reload_on_one_device", "run_spec", "launch",
           "DistributedRunError"]

MODELS = ("gpt", "diffusion")
#: ``single``: no distribution (one device); ``data``: DataParallel (JAX); ``model``:
#: ModelParallel on a (batch, model) mesh (JAX); ``mirrored``: MirroredStrategy (TensorFlow).
KINDS = ("single", "data", "model", "mirrored")
#: Environment variable through which :func:`launch` asks for logical TensorFlow CPU devices.
TF_CPUS_VAR = "GDL_TF_LOGICAL_CPUS"


class DistributedRunError(RuntimeError):
    """A run launched by :func:`launch` failed; the message holds the end of its log."""


# --------------------------------------------------------------------------- devices


def device_environment(backend: str, n_devices: int, virtual: bool = True,
                       base: dict | None = None) -> dict[str, str]:
    """The environment of a fresh process that trains on ``backend`` with ``n_devices`` devices.

    With ``virtual=True`` the devices are slices of the CPU: for JAX, XLA's flag
    ``--xla_force_host_platform_device_count`` (read once, when JAX starts); for TensorFlow,
    :data:`TF_CPUS_VAR`, which the child turns into logical CPU devices (:func:`split_cpu`).
    Accelerators are hidden so that both backends use those CPU devices even on a GPU machine.
    With ``virtual=False`` the process sees the machine's real devices (GPUs, a TPU VM's chips).
    """
    if backend not in ("jax", "tensorflow"):
        raise ValueError(f"backend must be 'jax' or 'tensorflow', got {backend!r}")
    if n_devices < 1:
        raise ValueError(f"n_devices must be at least 1, got {n_devices}")
    env = dict(os.environ if base is None else base)
    env["KERAS_BACKEND"] = backend
    if virtual:
        env["CUDA_VISIBLE_DEVICES"] = ""
        if backend == "jax":
            flags = [f for f in env.get("XLA_FLAGS", "").split()
                     if not f.startswith("--xla_force_host_platform_device_count")]
            env["XLA_FLAGS"] = " ".join(
                flags + [f"--xla_force_host_platform_device_count={n_devices}"])
            env["JAX_PLATFORMS"] = "cpu"
        else:
            env[TF_CPUS_VAR] = str(n_devices)
    return env


def split_cpu(n_devices: int) -> list[str]:
    """Split TensorFlow's one CPU into ``n_devices`` logical devices; return their names.

    Must run before TensorFlow executes its first operation (the runtime fixes its devices
    then); a later call raises TensorFlow's ``RuntimeError``.
    """
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n_devices)])
    return [d.name for d in tf.config.list_logical_devices("CPU")]


# --------------------------------------------------------------------------- distributions


def gpt_layout_map(mesh, model_axis: str = "model"):
    """A :class:`keras.distribution.LayoutMap` that shards the GPT of chapter 9 over ``model_axis``.

    Megatron-LM's split of a transformer block (Shoeybi et al., 2019): the first linear layer of
    the attention (queries, keys, values) and of the MLP is cut by output columns, the second
    (``proj``, ``fc_out``) by input rows, so each device holds a quarter of every large matrix
    on a four-way axis. The token embedding is cut along its channels, and the output layer by
    its input rows (its 65 output columns, one per character, do not divide by four: Keras
    refuses a layout whose sharded dimension is not a multiple of the axis). The keys are regular
    expressions matched against ``variable.path`` (``gpt/block_0/attn/qkv/kernel``); a weight
    that matches no key (LayerNorms, biases, positions) is replicated.
    """
    import keras

    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map[r".*/(qkv|fc)/kernel"] = (None, model_axis)         # column-parallel
    layout_map[r".*/(proj|fc_out)/kernel"] = (model_axis, None)    # row-parallel
    layout_map[r".*/token/embeddings"] = (None, model_axis)
    layout_map[r".*/head/kernel"] = (model_axis, None)            # row-parallel
    return layout_map


def make_distribution(kind: str, n_devices: int = 1, mesh_shape: tuple[int, int] | None = None):
    """The distribution for a run of ``kind`` (see :data:`KINDS`), or ``None`` for one device.

    ``data``: :class:`keras.distribution.DataParallel` over the first ``n_devices`` devices.
    ``model``: :class:`keras.distribution.ModelParallel` on a ``(batch, model)`` mesh of
    ``mesh_shape``, the GPT's weights laid out by :func:`gpt_layout_map`. ``mirrored``:
    ``tf.distribute.MirroredStrategy`` over the first ``n_devices`` (logical) CPU devices.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose from {KINDS}")
    if kind == "single":
        return None
    if kind == "mirrored":
        import tensorflow as tf

        names = [d.name for d in tf.config.list_logical_devices("CPU")]
        if len(names) < n_devices:
            raise ValueError(f"{n_devices} devices asked for, TensorFlow has {len(names)}")
        return tf.distribute.MirroredStrategy(names[:n_devices])
    import keras

    devices = keras.distribution.list_devices()
    if kind == "data":
        if len(devices) < n_devices:
            raise ValueError(f"{n_devices} devices asked for, JAX has {len(devices)}")
        return keras.distribution.DataParallel(devices=devices[:n_devices])
    if mesh_shape is None or len(mesh_shape) != 2:
        raise ValueError("a model-parallel run needs mesh_shape=(batch, model)")
    size = math.prod(mesh_shape)
    if len(devices) < size:
        raise ValueError(f"a {mesh_shape} mesh needs {size} devices, JAX has {len(devices)}")
    mesh = keras.distribution.DeviceMesh(tuple(mesh_shape), ("batch", "model"),
                                         devices=devices[:size])
    return keras.distribution.ModelParallel(layout_map=gpt_layout_map(mesh),
                                            batch_dim_name="batch")


def _scope(distribution):
    """``distribution.scope()`` (Keras) or ``strategy.scope()`` (TensorFlow); none for None."""
    return contextlib.nullcontext() if distribution is None else distribution.scope()


# --------------------------------------------------------------------------- the two models


def shakespeare_tokens() -> np.ndarray:
    """Tiny Shakespeare as character ids, as chapter 9 encodes it (65 distinct characters)."""
    from gdlbook import data

    text = data.load("tinyshakespeare")
    chars = sorted(set(text))
    lookup = np.zeros(128, dtype="int32")
    lookup[[ord(c) for c in chars]] = np.arange(len(chars))
    return lookup[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]


def celeba_images(n_images: int, image_size: int) -> np.ndarray:
    """The first ``n_images`` CelebA training faces as float32 squares in [0, 1] (chapter 8)."""
    from gdlbook import data, images

    raw = data.load("celeba", "train", subset=n_images, complete=False)
    return images.center_crop_resize(raw, image_size).astype("float32") / 255.0


def _build_gpt(cfg: dict):
    import keras

    from gdlbook import transformer

    model = transformer.build_gpt(cfg["vocab_size"], cfg["context"], cfg["n_layer"],
                                  cfg["n_head"], cfg["n_embd"], dropout=cfg.get("dropout", 0.0))
    model.compile(optimizer=keras.optimizers.AdamW(cfg["lr"]),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _build_diffusion(cfg: dict, x):
    import keras

    from gdlbook import diffusion

    network = diffusion.build_unet(cfg["image_size"], tuple(cfg["widths"]), cfg["block_depth"],
                                   cfg["embedding_dims"], norm_momentum=0.9)
    model = diffusion.DiffusionModel(network, schedule="offset_cosine", seed=cfg["seed"])
    model.normalizer.adapt(x)
    model.compile(optimizer=keras.optimizers.AdamW(cfg["lr"]))
    return model


class StepLog:
    """A Keras callback recording each training step's loss and wall time.

    ``fit()`` reports the running mean of the epoch's losses; the loss of step ``k`` (counted
    from 1) is ``k * mean_k - (k - 1) * mean_(k-1)``, recovered in float64.
    """

    def __new__(cls):
        import keras

        class _StepLog(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.losses, self.seconds, self._means = [], [], []

            def on_epoch_begin(self, epoch, logs=None):
                self._means = []

            def on_train_batch_begin(self, batch, logs=None):
                self._t0 = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                mean = float(logs["loss"])          # reading it waits for the step to finish
                self.seconds.append(time.perf_counter() - self._t0)
                k = len(self._means) + 1
                prev = self._means[-1] if self._means else 0.0
                self.losses.append(k * mean - (k - 1) * prev)
                self._means.append(mean)

        return _StepLog()


def train_steps(model_name: str, cfg: dict, distribution=None,
                save_to: str | Path | None = None) -> dict:
    """Build ``model_name`` (``gpt`` or ``diffusion``) under ``distribution`` and train it for
    ``cfg["steps"]`` steps of global batch ``cfg["batch"]`` with ``fit()``.

    The seed ``cfg["seed"]`` fixes the initial weights and the data, so runs that differ only
    in their distribution see the same model and the same batches. Returns the loss and the
    seconds of every step, the number of devices, and the sharding of every weight. With
    ``save_to`` (a ``.weights.h5`` path; GPT only) the trained weights are also saved and
    reloaded on one device (:func:`reload_on_one_device`), under the key ``reload``; with
    ``cfg["return_weights"]`` the trained weights come back too (for tests of tiny models).
    """
    import keras

    from gdlbook import transformer

    if model_name not in MODELS:
        raise ValueError(f"unknown model {model_name!r}; choose from {MODELS}")
    keras.utils.set_random_seed(cfg["seed"])
    log = StepLog()
    with _scope(distribution):
        if model_name == "gpt":
            tokens = shakespeare_tokens()
            cfg = {**cfg, "vocab_size": int(tokens.max()) + 1}
            model = _build_gpt(cfg)
            windows = transformer.RandomWindows(tokens, cfg["context"], cfg["batch"],
                                                cfg["steps"], seed=cfg["seed"])
            # the same global batches, in the same order, whatever the engine: plain arrays
            x, y = (np.concatenate(a) for a in zip(*(windows[i] for i in range(cfg["steps"]))))
            model.fit(x, y, batch_size=cfg["batch"], epochs=1, shuffle=False, verbose=0,
                      callbacks=[log])
        else:
            x = celeba_images(cfg["batch"] * cfg["steps"], cfg["image_size"])
            model = _build_diffusion(cfg, x)
            model.fit(x, batch_size=cfg["batch"], epochs=1, shuffle=False, verbose=0,
                      callbacks=[log])
        result = {"losses": log.losses, "step_seconds": log.seconds,
                  "n_devices": _n_devices(distribution), "shardings": weight_shardings(model),
                  "shapes": {w.path: list(w.shape) for w in model.weights},
                  "n_params": int(model.count_params())}
        if cfg.get("return_weights"):                 # small models only (the tests)
            result["weights"] = [keras.ops.convert_to_numpy(w.value).tolist()
                                 for w in model.weights]      # in order: layer names vary
        if save_to is not None:
            if model_name != "gpt":
                raise ValueError("save_to is for the GPT")
            model.save_weights(str(save_to))
            probe = x[:cfg["batch"]]
            logits = np.asarray(model.predict_on_batch(probe))
    if save_to is not None:
        result["reload"] = reload_on_one_device(cfg, save_to, probe, logits)
    return result


def _n_devices(distribution) -> int:
    if distribution is None:
        return 1
    if hasattr(distribution, "num_replicas_in_sync"):           # tf.distribute
        return int(distribution.num_replicas_in_sync)
    return int(math.prod(distribution.device_mesh.shape))


def weight_shardings(model) -> dict[str, str]:
    """How each weight is laid out: JAX's ``PartitionSpec`` (``P(None, 'model')`` is cut by
    columns over the ``model`` axis), or the devices TensorFlow mirrors it on."""
    out = {}
    for w in model.weights:
        value = w.value
        sharding = getattr(value, "sharding", None)            # a jax.Array
        if sharding is not None and hasattr(sharding, "spec"):
            out[w.path] = str(sharding.spec)
        elif hasattr(value, "values"):                         # a tf MirroredVariable
            out[w.path] = f"mirrored on {len(value.values)}"
        else:
            out[w.path] = "one device"
    return out


def reload_on_one_device(cfg: dict, path: str | Path, probe, logits) -> dict:
    """Load the GPT weights saved at ``path`` (perhaps by a sharded model) into a GPT built on
    one device, outside any distribution, and compare its logits on ``probe`` with ``logits``
    (those of the model that saved them).

    Returns the largest absolute difference of the logits before loading (fresh weights from
    another seed) and after, and the file's size in bytes.
    """
    import keras

    keras.utils.set_random_seed(cfg["seed"] + 1)                 # different initial weights
    single = _build_gpt(cfg)
    before = np.abs(np.asarray(single.predict_on_batch(probe)) - logits).max()
    single.load_weights(str(path))
    after = np.abs(np.asarray(single.predict_on_batch(probe)) - logits).max()
    return {"max_abs_diff": float(after), "max_abs_diff_before_load": float(before),
            "file_bytes": Path(path).stat().st_size,
            "shardings": weight_shardings(single)}


# --------------------------------------------------------------------------- the command


def run_spec(spec: dict, workdir: str | Path) -> dict:
    """Run every entry of ``spec["runs"]`` in this process, one after the other.

    An entry is ``{"name", "model", "kind", "devices", "mesh", **overrides}``; its configuration
    is ``spec["config"][model]`` updated with the overrides. An entry with ``"save_reload":
    true`` also saves the trained weights and reloads them on one device.
    """
    import keras

    out = {"backend": keras.backend.backend(), "runs": {}}
    if out["backend"] == "jax":
        import jax

        # with a partitionable random-number generator, a draw is the same array however it
        # is sharded: the diffusion model's noise does not depend on the number of devices
        out["threefry_partitionable"] = bool(jax.config.jax_threefry_partitionable)
    for run in spec["runs"]:
        model_name = run["model"]
        cfg = {**spec["config"][model_name],
               **{k: v for k, v in run.items()
                  if k not in ("name", "model", "kind", "devices", "mesh", "save_reload")}}
        distribution = make_distribution(run["kind"], run.get("devices", 1), run.get("mesh"))
        save_to = (Path(workdir) / f"{run['name']}.weights.h5") if run.get("save_reload") \
            else None
        result = train_steps(model_name, cfg, distribution, save_to=save_to)
        out["runs"][run["name"]] = {**result, "kind": run["kind"], "model": model_name}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gdlbook.distributed",
        description="Train the book's GPT and diffusion model under Keras distributions (JAX) "
                    "or tf.distribute (TensorFlow); write per-step losses as JSON.")
    parser.add_argument("spec", type=Path, help="JSON file: {'config': ..., 'runs': [...]}")
    parser.add_argument("out", type=Path, help="where to write the JSON result")
    args = parser.parse_args(argv)
    spec = json.loads(args.spec.read_text())
    if os.environ.get(TF_CPUS_VAR):                  # before TensorFlow runs anything
        split_cpu(int(os.environ[TF_CPUS_VAR]))
    result = run_spec(spec, args.out.parent)
    args.out.write_text(json.dumps(result))
    return 0


def launch(backend: str, n_devices: int, config: dict, runs: list[dict],
           virtual: bool = True, timeout: float = 900) -> dict:
    """Run ``runs`` in a fresh Python process on ``backend`` with ``n_devices`` devices.

    The child is ``python -m gdlbook.distributed`` with :func:`device_environment`; it returns
    the JSON of :func:`run_spec`, plus ``wall_seconds`` (the child's whole life, start-up
    included). A failing child raises :class:`DistributedRunError` with the end of its log.
    """
    with tempfile.TemporaryDirectory(prefix="gdl-distributed-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_path.write_text(json.dumps({"config": config, "runs": runs}))
        env = device_environment(backend, n_devices, virtual)
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        t0 = time.time()
        proc = subprocess.run([sys.executable, "-m", "gdlbook.distributed", str(spec_path),
                               str(out_path)], env=env, capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode != 0 or not out_path.exists():
            tail = (proc.stdout + proc.stderr)[-3000:]
            raise DistributedRunError(
                f"the {backend} run on {n_devices} devices failed (exit {proc.returncode}):\n"
                f"{tail}")
        result = json.loads(out_path.read_text())
    result["wall_seconds"] = time.time() - t0
    return result


if __name__ == "__main__":
    sys.exit(main())
