"""Training runs that survive an interruption (taught in chapter 3, used by every chapter that trains).

A full-profile run can take an hour on a Colab GPU, and Colab sessions end without warning.
:func:`resumable` returns a Keras ``BackupAndRestore`` callback that saves the model, the optimizer
and the epoch number at the end of every epoch; calling ``fit()`` again with the same callback
(in a new session, on a freshly built model) continues from the last saved epoch instead of
starting over. It also keeps the per-epoch history of the epochs run before the interruption, so
the training curves of a resumed run are complete. When ``fit()`` finishes, the backup is deleted.

Backups live in :func:`run_dir`: ``$GDL_RUN_DIR`` (default ``<user cache>/runs``), one folder per
chapter, run and profile, so a smoke run never resumes from a full one.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import keras

from gdlbook.data.registry import cache_dir
from gdlbook import profile as _profile

HISTORY_FILE = "history.json"


def tf_data_autotune(enabled: bool) -> None:
    """Turn tf.data's autotuner on or off for the pipelines ``fit()`` builds on TensorFlow.

    On TensorFlow, ``fit()`` wraps in-memory arrays (and a ``keras.utils.PyDataset``, such as
    chapter 9's :class:`gdlbook.transformer.RandomWindows`) in a ``tf.data`` pipeline, and
    tf.data's autotuner (on by default) tunes its buffers and parallelism from a background
    thread. For batches that are a slice of an array there is nothing to tune, and on a two-core
    machine whole epochs then ran at about half speed: chapter 3's VAE took 128 ms per step in
    roughly two epochs of five and 65-75 ms in the others, in the same process, while with
    autotuning off every epoch ran at 65-75 ms (``benchmarks/tf_data_autotune.py`` reproduces
    it in plain TensorFlow, without Keras). :func:`gdlbook.set_seed`, which every chapter calls
    before it trains, turns it off; ``GDL_TF_DATA_AUTOTUNE=1`` leaves tf.data's default alone.
    A ``tf.data.Dataset`` passed to ``fit()`` keeps its own options; other backends do not use
    tf.data for arrays.
    """
    try:   # Keras's internal modules: if a later Keras moves them, train as Keras would
        from keras.src.trainers.data_adapters import array_data_adapter, py_dataset_adapter

        adapters = (array_data_adapter.ArrayDataAdapter, py_dataset_adapter.PyDatasetAdapter)
        for adapter in adapters:
            adapter.get_tf_dataset      # noqa: B018  (present on every adapter)
    except (ImportError, AttributeError) as err:
        warnings.warn(f"gdlbook could not set tf.data's autotuning ({err}); fit() keeps "
                      "Keras's default", RuntimeWarning, stacklevel=2)
        return
    for adapter in adapters:
        original = getattr(adapter.get_tf_dataset, "_gdlbook_original", adapter.get_tf_dataset)
        adapter.get_tf_dataset = original if enabled else _without_autotune(original)


def _without_autotune(get_tf_dataset):
    def wrapped(self):
        import tensorflow as tf

        options = tf.data.Options()
        options.autotune.enabled = False
        return get_tf_dataset(self).with_options(options)

    wrapped._gdlbook_original = get_tf_dataset
    return wrapped


def run_dir(chapter: str, run: str, *, profile: str | None = None) -> Path:
    """The folder of one training run's backup: ``<root>/<chapter>/<run>-<profile>``."""
    root = Path(os.environ.get("GDL_RUN_DIR") or cache_dir() / "runs")
    return root / chapter / f"{run}-{_profile.current(profile)}"


class ResumableBackup(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` that says when it resumes and keeps the history of earlier epochs.

    ``resumed_from`` is the epoch training restarted at (0 for a fresh run). After ``fit()``
    the returned ``History`` holds every epoch of the run, those before the interruption
    included.
    """

    def __init__(self, backup_dir: str | os.PathLike, **kwargs):
        super().__init__(str(backup_dir), **kwargs)
        self.resumed_from = 0
        self._past: dict[str, list[float]] = {}

    @property
    def _history_path(self) -> Path:
        return Path(self.backup_dir) / HISTORY_FILE

    def on_train_begin(self, logs=None):
        if not self.model.built:
            raise ValueError(
                f"{self.model.name} must be built before fit() can back it up: call it once on "
                "a batch of data first, e.g. model(x[:1]).")
        try:
            super().on_train_begin(logs)
        except ValueError as err:  # weights of another architecture, e.g. after a config change
            raise RuntimeError(
                f"Cannot resume from the backup in {self.backup_dir}: it does not fit this model "
                f"({err}). Delete that folder to start this run from scratch.") from err
        self.resumed_from = int(getattr(self.model, "_initial_epoch", None) or 0)
        self._past = {}
        if self.resumed_from and self._history_path.exists():
            past = json.loads(self._history_path.read_text())
            self._past = {k: v[: self.resumed_from] for k, v in past.items()}
        if self.resumed_from:
            print(f"Resuming from the backup in {self.backup_dir}: "
                  f"epochs 1-{self.resumed_from} are done, continuing at epoch "
                  f"{self.resumed_from + 1}.")

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self._past.setdefault(key, []).append(float(value))
        os.makedirs(self.backup_dir, exist_ok=True)
        tmp = self._history_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._past))
        os.replace(tmp, self._history_path)
        super().on_epoch_end(epoch, logs)

    def on_train_end(self, logs=None):
        history = getattr(self.model, "history", None)
        if self.resumed_from and history is not None:
            n = self.resumed_from
            for key, values in self._past.items():
                history.history[key] = values[:n] + list(history.history.get(key, []))
            history.epoch = list(range(n)) + list(history.epoch)
        super().on_train_end(logs)
        if self.delete_checkpoint and os.path.isdir(self.backup_dir):
            shutil.rmtree(self.backup_dir, ignore_errors=True)


def resumable(chapter: str, run: str, *, profile: str | None = None,
              **kwargs) -> ResumableBackup:
    """A backup-and-restore callback for ``fit()``, kept in ``run_dir(chapter, run)``.

    Keyword arguments go to ``keras.callbacks.BackupAndRestore`` (``save_freq``,
    ``double_checkpoint``, ``delete_checkpoint``).
    """
    return ResumableBackup(run_dir(chapter, run, profile=profile), **kwargs)


class StatefulStepModel(keras.Model):
    """Base of the models whose ``train_step`` updates their own variables, on every backend.

    The GANs of chapter 4 (two players, two optimizers) and the energy-based model of chapter 7
    (a replay buffer written during the step) write ``train_step`` the stateful way that
    TensorFlow and PyTorch expect: compute gradients with :func:`gdlbook.gradients.value_and_grad`,
    apply them with an optimizer, assign variables. JAX's ``fit()`` instead calls a pure
    ``train_step(state, data) -> (logs, state)``. On JAX, :meth:`compile` therefore wraps the
    stateful step in :meth:`_jax_train_step` and runs it eagerly: correct, the same code, but not
    jit-compiled (slower than TensorFlow or PyTorch on a GPU).
    """

    def compile(self, **kwargs) -> None:
        if keras.backend.backend() == "jax":
            kwargs.update(run_eagerly=True, jit_compile=False)
            self._stateful_train_step = type(self).train_step.__get__(self)  # the class's step
            self.train_step = self._jax_train_step
        super().compile(**kwargs)

    def _jax_train_step(self, state, data):
        """JAX only: the trainer's pure ``(state, data) -> (logs, state)`` around ``train_step``.

        The state (the model's variables, the compiled optimizer's and the metrics') is written
        into the variables, the ordinary stateful step runs eagerly (extra optimizers keep their
        own state), and the new values are read back.
        """
        groups = (self.trainable_variables, self.non_trainable_variables,
                  self.optimizer.variables if self.optimizer is not None else [],
                  self.metrics_variables)
        for variables, values in zip(groups, state):
            for v, value in zip(variables, values):
                v.assign(value)
        logs = self._stateful_train_step(data)
        return logs, tuple([v.value for v in variables] for variables in groups)


class TimeBudget(keras.callbacks.Callback):
    """Stop ``fit()`` at the end of the first epoch that ends after ``seconds`` of training.

    Chapter 10 gives two models the same training time, not the same number of epochs: run
    ``fit(..., epochs=<a large number>, callbacks=[TimeBudget(s)])``. Whole epochs are kept, so
    a run may overshoot by up to one epoch; ``seconds_used`` and ``epochs_run`` say what it
    took. A resumed run (:func:`resumable`) gets the whole budget again for its remaining epochs.
    """

    def __init__(self, seconds: float):
        super().__init__()
        if seconds <= 0:
            raise ValueError(f"seconds must be positive, got {seconds}")
        self.seconds = float(seconds)
        self.seconds_used = 0.0
        self.epochs_run = 0

    def on_train_begin(self, logs=None):
        import time

        self._start, self.seconds_used, self.epochs_run = time.perf_counter(), 0.0, 0

    def on_epoch_end(self, epoch, logs=None):
        import time

        self.seconds_used = time.perf_counter() - self._start
        self.epochs_run += 1
        if self.seconds_used >= self.seconds:
            self.model.stop_training = True


class EpochTimer(keras.callbacks.Callback):
    """Time the training part of every epoch of ``fit()``, validation left out.

    ``train_seconds[i]`` runs from the start of epoch ``i`` to the start of its validation (or
    to the end of the epoch when there is none), once the epoch's last step has finished (on
    JAX, ``fit()`` runs ahead of the computation). :meth:`steady_seconds` is their mean without
    the first epoch, which includes tracing and compiling the training step; chapter 9 reports
    it per iteration, beside nanoGPT's figure from the benchmark. In a run resumed from a backup
    (:func:`resumable`), the epochs are the ones this ``fit()`` ran.
    """

    def __init__(self):
        super().__init__()
        self.train_seconds: list[float] = []
        self._t0 = None

    def on_epoch_begin(self, epoch, logs=None):
        import time

        self._t0 = time.perf_counter()

    def _stop(self):
        import time

        if self._t0 is None:
            return
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            # wait for the epoch's last step: JAX dispatches steps without waiting for them, and
            # fit() hands the optimizer its step counter back before validation and epoch end
            keras.ops.convert_to_numpy(optimizer.iterations)
        self.train_seconds.append(time.perf_counter() - self._t0)
        self._t0 = None

    def on_test_begin(self, logs=None):
        self._stop()        # validation inside fit(); an evaluate() outside an epoch does nothing

    def on_epoch_end(self, epoch, logs=None):
        self._stop()

    def steady_seconds(self) -> float:
        """Mean training seconds per epoch after the first (the only one if there is one)."""
        if not self.train_seconds:
            raise ValueError("no epoch has been timed: pass the timer to fit() first")
        steady = self.train_seconds[1:] or self.train_seconds
        return sum(steady) / len(steady)
