"""The Keras backends the book runs on: TensorFlow (default), PyTorch and JAX.

Each check runs in a fresh interpreter, because Keras fixes its backend at import time.
"""

import pytest

from backendrun import BACKENDS, run_with_backend


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_trains_seeds_and_detects_accelerators(backend):
    out = run_with_backend(backend, """
        import json
        import numpy as np, keras
        from gdlbook import profile, set_seed
        draws = []
        for seed in (123, 123, 124):
            set_seed(seed)
            draws.append(keras.ops.convert_to_numpy(keras.random.normal((4,))).tolist())
        set_seed(0)
        x = np.random.default_rng(0).normal(size=(256, 3)).astype("float32")
        y = x @ np.array([[1.0], [-2.0], [0.5]], dtype="float32") + 0.3
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(keras.optimizers.Adam(0.05), "mse")
        h = model.fit(x, y, epochs=20, batch_size=32, verbose=0).history["loss"]
        backend = keras.backend.backend()
        if backend == "torch":
            import torch; independent = torch.cuda.is_available()
        elif backend == "jax":
            import jax; independent = any(d.platform != "cpu" for d in jax.devices())
        else:
            import tensorflow as tf; independent = bool(tf.config.list_physical_devices("GPU"))
        print(json.dumps(dict(backend=backend, first=h[0], last=h[-1], draws=draws,
                              accel=profile.accelerator_available(), independent=independent)))
    """)
    assert out["backend"] == backend
    assert out["last"] < 0.1 * out["first"], "fit() did not train"
    assert out["draws"][0] == out["draws"][1] != out["draws"][2], "set_seed is not repeatable"
    assert out["accel"] == out["independent"]
