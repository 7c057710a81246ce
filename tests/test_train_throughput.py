"""The throughput benchmark (benchmarks/train_throughput.py) runs, and refuses bad arguments."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "train_throughput.py"


def _run(*argv, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, str(SCRIPT), *argv], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_tiny_mode_times_two_loops(tmp_path):
    out = tmp_path / "t.json"
    proc = _run("--tiny", "--loops", "vae,gpt", "--backends", "tensorflow", "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "vae      ours, tensorflow" in proc.stdout and "gpt      ours, tensorflow" in proc.stdout
    results = json.loads(out.read_text())["results"]
    vae = results["vae      ours, tensorflow"][0]
    assert vae["params"] == 347_141   # chapter 3's VAE, as many weights as Foster's
    # warm-up plus one timed epoch, each of 3 steps; the timed rate is the second epoch's
    assert len(vae["epoch_steps_per_s"]) == 2
    assert abs(vae["steps_per_s"] - vae["epoch_steps_per_s"][1]) < 1e-2 * vae["steps_per_s"]
    assert "loss" in vae["last_logs"] and vae["last_logs"]["loss"] > 0


def test_refuses_unknown_loops_backends_and_a_lone_foster_or_same_process():
    for argv, message in ((["--loops", "vea"], "unknown loop"),
                          (["--backends", "tensorflow,mxnet"], "unknown backend"),
                          (["--foster", "/nonexistent"], "go together"),
                          (["--same-process"], "needs --foster")):
        proc = _run(*argv, timeout=60)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-2000:]


def test_framework_floor_computes_the_same_vae_step_everywhere():
    """benchmarks/vae_step_floor.py writes chapter 3's VAE in each framework without Keras; from
    the same weights and batch, the three must give the same loss before and after training."""
    script = ROOT / "benchmarks" / "vae_step_floor.py"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, str(script), "--rounds", "1", "--steps", "2",
                           "--repeats", "1", "--warmup", "2"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses = {}
    for line in proc.stdout.splitlines():
        if line.startswith("round 1"):
            name = line.split()[2]
            first, last = line.split("loss ")[1].split(" -> ")
            losses[name] = (float(first), float(last))
    assert set(losses) == {"tensorflow", "torch", "jax"}, proc.stdout
    firsts = [f for f, _ in losses.values()]
    lasts = [last for _, last in losses.values()]
    assert max(firsts) - min(firsts) < 0.05 and max(lasts) - min(lasts) < 0.5, losses
    assert all(last < first - 1.0 for first, last in losses.values()), losses   # Adam descends


def test_xla_residual_backward_computes_the_same_stack_on_every_side():
    """benchmarks/xla_residual_backward.py builds the same residual stack in JAX (products on
    3-D tensors and on 2-D views) and in PyTorch; it stops with an error when their outputs
    differ (a tanh GELU on one side is enough), and prints one row per depth, with the size
    of the JAX step's scratch buffer last."""
    script = ROOT / "benchmarks" / "xla_residual_backward.py"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, str(script), "--depths", "1,2", "--rounds", "1"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split() for line in proc.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [r[0] for r in rows] == ["1", "2"], proc.stdout
    assert all(len(r) == 10 and float(x) > 0 for r in rows for x in r[1:]), proc.stdout
    # the last column, XLA's scratch buffer for the step, grows with the depth
    assert float(rows[1][-1]) > float(rows[0][-1]), proc.stdout
