"""gdlbook.distributed: the environments it launches, the GPT's layout map, and the three
promises of appendix A, each in a fresh process: a data-parallel step on two virtual devices
(JAX, keras.distribution) and a MirroredStrategy step on two logical CPUs (TensorFlow) equal the
single-device step; a sharded GPT saves its weights and reloads them on one device."""

from __future__ import annotations

import re

import numpy as np
import pytest

from gdlbook import distributed

# a GPT small enough that a step costs milliseconds; the seed fixes weights and batches
TINY = {"gpt": dict(context=16, n_layer=1, n_head=2, n_embd=16, batch=8, steps=2, lr=1e-2,
                    seed=3, return_weights=True),
        "diffusion": dict(image_size=8, widths=[8, 16], block_depth=1, embedding_dims=8,
                          batch=8, steps=2, lr=1e-3, seed=3, return_weights=True)}


def test_device_environment():
    env = distributed.device_environment(
        "jax", 8, base={"XLA_FLAGS": "--xla_cpu_x=1 --xla_force_host_platform_device_count=2"})
    assert env["KERAS_BACKEND"] == "jax" and env["JAX_PLATFORMS"] == "cpu"
    assert env["XLA_FLAGS"].split() == ["--xla_cpu_x=1",
                                        "--xla_force_host_platform_device_count=8"]
    env = distributed.device_environment("tensorflow", 4, base={})
    assert env[distributed.TF_CPUS_VAR] == "4" and env["CUDA_VISIBLE_DEVICES"] == ""
    real = distributed.device_environment("jax", 8, virtual=False, base={})
    assert "XLA_FLAGS" not in real and "CUDA_VISIBLE_DEVICES" not in real
    with pytest.raises(ValueError, match="backend"):
        distributed.device_environment("torch", 2)
    with pytest.raises(ValueError, match="at least 1"):
        distributed.device_environment("jax", 0)
    with pytest.raises(ValueError, match="unknown kind"):
        distributed.make_distribution("pipeline")


def test_layout_map_shards_every_large_matrix_of_the_gpt():
    """The keys are matched against the real paths of the GPT's weights: every 2-D weight
    except the position table is cut over 'model', on a dimension four divides."""
    import keras

    from gdlbook import transformer

    gpt = transformer.build_gpt(65, 32, 2, 4, 64)
    paths = {w.path: tuple(w.shape) for w in gpt.weights}
    layout = distributed.gpt_layout_map(mesh=None)
    sharded = {}
    for path, shape in paths.items():
        axes = [k for k in layout if re.fullmatch(k, path)]
        assert len(axes) <= 1, (path, axes)
        if axes:
            sharded[path] = layout[axes[0]].axes
    for path, shape in paths.items():
        if len(shape) == 2 and "position" not in path:
            assert path in sharded, path
    for path, axes in sharded.items():
        [dim] = [i for i, a in enumerate(axes) if a == "model"]
        assert paths[path][dim] % 4 == 0, (path, paths[path])
    assert sharded["gpt/block_1/attn/qkv/kernel"] == (None, "model")
    assert sharded["gpt/block_1/fc_out/kernel"] == ("model", None)
    assert keras.backend.backend() in ("tensorflow", "torch", "jax")


def _close(a: list, b: list, atol: float):
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        np.testing.assert_allclose(np.array(x), np.array(y), atol=atol, err_msg=f"weight {i}")


@pytest.fixture(scope="module")
def jax_runs():
    """Every JAX run of these tests, in one process on four virtual devices (one start-up)."""
    runs = [dict(name="one", model="gpt", kind="single"),
            dict(name="two", model="gpt", kind="data", devices=2),
            dict(name="half", model="gpt", kind="single", batch=4),
            dict(name="d_one", model="diffusion", kind="single", steps=1),
            dict(name="d_two", model="diffusion", kind="data", devices=2, steps=1),
            dict(name="mp", model="gpt", kind="model", mesh=[2, 2], save_reload=True,
                 return_weights=False)]
    return distributed.launch("jax", 4, TINY, runs)["runs"]


def test_data_parallel_step_equals_the_single_device_step_jax(jax_runs):
    one, two, half = jax_runs["one"], jax_runs["two"], jax_runs["half"]
    assert two["n_devices"] == 2 and one["n_devices"] == 1
    assert set(two["shardings"].values()) <= {"P(None, None)", "P(None,)"}  # replicated
    np.testing.assert_allclose(one["losses"], two["losses"], atol=1e-5)
    _close(one["weights"], two["weights"], atol=1e-5)
    # the check can fail: half the batch (a per-device batch taken for the global one)
    # trains a different model
    assert max(np.abs(np.array(x) - np.array(y)).max()
               for x, y in zip(one["weights"], half["weights"])) > 1e-3
    # the diffusion model: same noise draws and batch statistics over the global batch
    np.testing.assert_allclose(jax_runs["d_one"]["losses"], jax_runs["d_two"]["losses"],
                               atol=1e-5)
    _close(jax_runs["d_one"]["weights"], jax_runs["d_two"]["weights"], atol=1e-5)


def test_mirrored_step_equals_the_single_device_step_tensorflow():
    runs = [dict(name="one", model="gpt", kind="single"),
            dict(name="two", model="gpt", kind="mirrored", devices=2)]
    out = distributed.launch("tensorflow", 2, TINY, runs)["runs"]
    assert out["two"]["n_devices"] == 2
    assert set(out["two"]["shardings"].values()) == {"mirrored on 2"}
    np.testing.assert_allclose(out["one"]["losses"], out["two"]["losses"], atol=1e-5)
    _close(out["one"]["weights"], out["two"]["weights"], atol=1e-5)


def test_sharded_gpt_saves_and_reloads_on_one_device(jax_runs):
    out = jax_runs["mp"]
    assert out["n_devices"] == 4
    assert out["shardings"]["gpt/block_0/attn/qkv/kernel"] == "P(None, 'model')"
    assert out["shardings"]["gpt/block_0/fc_out/kernel"] == "P('model', None)"
    reload = out["reload"]
    assert set(reload["shardings"].values()) == {"one device"}
    assert reload["max_abs_diff_before_load"] > 1e-2          # another model before loading
    assert reload["max_abs_diff"] < 1e-5                      # the same one after


def test_a_failing_run_reports_its_error():
    runs = [dict(name="mp", model="gpt", kind="model", mesh=[4, 4])]
    with pytest.raises(distributed.DistributedRunError, match="needs 16 devices"):
        distributed.launch("jax", 2, TINY, runs)
