"""The Keras backends the book runs on: TensorFlow (default), PyTorch and JAX.

Each check runs in another interpreter, because Keras fixes its backend at import time
(``backendrun``: one interpreter per backend, shared by the session's snippets).
"""

import os

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


def test_snippets_share_an_interpreter_but_not_its_state(tmp_path):
    set_env = """
        import json, os, keras
        os.environ["GDL_TEST_LEAK"] = "1"
        os.chdir({tmp!r})
        keras.config.set_floatx("float16")
        x = 42
        print(json.dumps(dict(pid=os.getpid())))
    """.replace("{tmp!r}", repr(str(tmp_path)))
    read_env = """
        import json, os, keras
        print("noise before the result")
        print(json.dumps(dict(pid=os.getpid(), leak=os.environ.get("GDL_TEST_LEAK"),
                              cwd=os.getcwd(), floatx=keras.config.floatx(),
                              x="x" in globals())))
    """
    first = run_with_backend("jax", set_env)
    second = run_with_backend("jax", read_env)
    assert second["pid"] == first["pid"], "a second interpreter was started"
    assert second == dict(pid=first["pid"], leak=None, cwd=os.getcwd(), floatx="float32",
                          x=False)


def test_a_failing_or_dying_snippet_fails_its_test_and_the_next_gets_a_new_interpreter():
    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        run_with_backend("jax", "1 / 0")
    pid = run_with_backend("jax", "import json, os; print(json.dumps(os.getpid()))")
    with pytest.raises(AssertionError, match="interpreter died"):
        run_with_backend("jax", "import os; os._exit(3)")
    with pytest.raises(AssertionError, match="no answer within 1 s"):
        run_with_backend("jax", "import time; time.sleep(30)", timeout=1)
    again = run_with_backend("jax", "import json, os; print(json.dumps(os.getpid()))")
    assert again != pid
