"""gdlbook.training: an interrupted fit() resumes from its last saved epoch, on every backend."""

import pytest

from backendrun import BACKENDS, run_snippets, run_with_backend

RESUME = """
    import json, os
    import numpy as np, keras
    from gdlbook import set_seed, training

    os.environ["GDL_RUN_DIR"] = {run_root!r}
    x = np.random.default_rng(0).normal(size=(128, 4)).astype("float32")
    y = x @ np.array([[1.0], [-1.0], [2.0], [0.5]], dtype="float32")

    def build():
        set_seed(0)
        m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1)])
        m.compile(keras.optimizers.Adam(0.01), "mse")
        return m

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 3:
                raise KeyboardInterrupt("the Colab session ended")

    model = build()
    first = training.resumable("test", "dense", profile="smoke")
    try:
        model.fit(x, y, epochs=6, batch_size=32, verbose=0, callbacks=[first, Interrupt()])
    except KeyboardInterrupt:
        pass
    backup = sorted(os.listdir(first.backup_dir))

    model = build()                      # a new session: fresh weights
    cb = training.resumable("test", "dense", profile="smoke")
    history = model.fit(x, y, epochs=6, batch_size=32, verbose=0, callbacks=[cb])
    print(json.dumps(dict(
        backup=backup, resumed_from=cb.resumed_from, epochs=history.epoch,
        loss=history.history["loss"], left=os.path.exists(cb.backup_dir))))
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_interrupted_fit_resumes_from_saved_epoch(backend, tmp_path):
    out = run_with_backend(backend, RESUME.format(run_root=str(tmp_path)))
    assert "latest.weights.h5" in out["backup"] and "history.json" in out["backup"]
    assert out["resumed_from"] == 3, "did not resume at the epoch after the last saved one"
    assert out["epochs"] == list(range(6)), "history of the resumed run is incomplete"
    assert len(out["loss"]) == 6
    # the restored weights carry on: the first resumed epoch continues the falling curve
    assert out["loss"][3] < out["loss"][0]
    assert not out["left"], "the backup must be deleted once the run completes"


def test_run_dir_separates_profiles(tmp_path, monkeypatch):
    from gdlbook import training
    monkeypatch.setenv("GDL_RUN_DIR", str(tmp_path))
    smoke = training.run_dir("ch03", "vae", profile="smoke")
    full = training.run_dir("ch03", "vae", profile="full")
    assert smoke != full and smoke.parent == full.parent == tmp_path / "ch03"


def test_resume_into_another_architecture_says_what_to_do(tmp_path, monkeypatch):
    import keras
    import numpy as np
    from gdlbook import training
    monkeypatch.setenv("GDL_RUN_DIR", str(tmp_path))
    x = np.zeros((8, 4), "float32")

    def model(width):
        m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(width), keras.layers.Dense(1)])
        m.compile("adam", "mse")
        return m

    class Stop(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model(3).fit(x, x[:, :1], epochs=3, verbose=0,
                     callbacks=[training.resumable("t", "m", profile="smoke"), Stop()])
    with pytest.raises(RuntimeError, match="Delete that folder"):
        model(5).fit(x, x[:, :1], epochs=3, verbose=0,
                     callbacks=[training.resumable("t", "m", profile="smoke")])


def test_time_budget_stops_after_the_epoch_that_crosses_it():
    import time

    import keras
    import numpy as np

    from gdlbook.training import TimeBudget

    class Slow(keras.callbacks.Callback):     # runs before the budget: records when epochs end
        def on_train_begin(self, logs=None):
            self.t0, self.ends = time.perf_counter(), []

        def on_epoch_end(self, epoch, logs=None):
            time.sleep(0.2)
            self.ends.append(time.perf_counter() - self.t0)

    x = np.zeros((8, 2), "float32")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.05), "mse")
    slow, budget = Slow(), TimeBudget(0.7)
    history = model.fit(x, x[:, :1], epochs=100, verbose=0, callbacks=[slow, budget])
    assert len(history.epoch) == budget.epochs_run == len(slow.ends)
    assert slow.ends[-1] >= 0.7 - 0.05 and all(t < 0.7 + 0.05 for t in slow.ends[:-1]), slow.ends
    assert budget.seconds_used >= 0.7
    with pytest.raises(ValueError):
        TimeBudget(0)


def test_epoch_timer_counts_training_and_leaves_out_validation(monkeypatch):
    import time

    import keras
    import numpy as np

    from gdlbook.training import EpochTimer

    clock = [0.0]       # a clock that moves only when a batch ends: exact, even on a busy machine
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])

    class Slow(keras.callbacks.Callback):   # 1 s per training batch, 10 s per validation batch
        def on_train_batch_end(self, batch, logs=None):
            clock[0] += 1.0

        def on_test_batch_end(self, batch, logs=None):
            clock[0] += 10.0

    x = np.zeros((8, 2), "float32")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.05), "mse")
    timer = EpochTimer()
    model.fit(x, x[:, :1], batch_size=4, epochs=3, validation_data=(x, x[:, :1]),
              validation_batch_size=8, verbose=0, callbacks=[Slow(), timer])
    assert timer.train_seconds == [2.0, 2.0, 2.0]      # two batches an epoch, validation left out
    timer.train_seconds[0] += 5.0                      # as if the first epoch had compiled
    assert timer.steady_seconds() == 2.0
    model.evaluate(x, x[:, :1], verbose=0, callbacks=[timer])    # outside fit(): not an epoch
    assert len(timer.train_seconds) == 3
    with pytest.raises(ValueError):
        EpochTimer().steady_seconds()


TF_DATA = """
    import os
    import numpy as np, keras
    import gdlbook
    from gdlbook.training import tf_data_autotune
    from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter

    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter
    from gdlbook.transformer import RandomWindows

    def autotune():
        arrays = ArrayDataAdapter(np.zeros((40, 3), "float32"), batch_size=8,
                                  shuffle=True).get_tf_dataset()
        windows = PyDatasetAdapter(RandomWindows(np.arange(100), 8, 4, 3),
                                   shuffle=False).get_tf_dataset()
        settings = {arrays.options().autotune.enabled, windows.options().autotune.enabled}
        return settings.pop() if len(settings) == 1 else "differ"
    tf_data_autotune(True)      # Keras's own setting (another test may have called set_seed)
    out = {"keras_default": autotune()}
    gdlbook.set_seed(0)
    out["after_set_seed"] = autotune()
    gdlbook.set_seed(1)                    # twice: still one wrapper, still off
    out["twice"] = autotune()
    os.environ["GDL_TF_DATA_AUTOTUNE"] = "1"
    gdlbook.set_seed(0)
    out["opted_out"] = autotune()
    del os.environ["GDL_TF_DATA_AUTOTUNE"]
    import warnings
    from keras.src.trainers.data_adapters import array_data_adapter as module
    saved = module.ArrayDataAdapter
    del module.ArrayDataAdapter            # as if a later Keras had moved it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tf_data_autotune(False)            # warns and changes nothing; set_seed must not fail
    module.ArrayDataAdapter = saved
    out["warned"] = any("could not set" in str(w.message) for w in caught)
    out["after_warning"] = autotune()
    tf_data_autotune(False)
    x = np.random.default_rng(0).normal(size=(256, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.05), "mse")
    h = model.fit(x, x.sum(1, keepdims=True), batch_size=32, epochs=3, shuffle=True, verbose=0)
    out["losses"] = [float(v) for v in h.history["loss"]]
    RESULT.update(out)
"""


def test_set_seed_turns_tf_data_autotune_off_for_arrays_and_py_datasets_on_tensorflow():
    out = run_snippets("tensorflow", TF_DATA)
    assert out["keras_default"] is not False      # Keras leaves tf.data's default (autotune on)
    assert out["after_set_seed"] is False and out["twice"] is False
    assert out["opted_out"] is not False
    assert out["warned"] and out["after_warning"] is not False
    losses = out["losses"]                         # fit() still trains on the wrapped pipeline
    assert losses[-1] < 0.5 * losses[0], losses
