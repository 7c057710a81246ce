"""Run a snippet under each Keras backend (TensorFlow, PyTorch, JAX).

Keras fixes its backend at import time, so every backend-specific test runs its code in another
interpreter with ``KERAS_BACKEND`` set; the snippet prints one JSON object as its last line.
Importing a backend costs seconds (TensorFlow and PyTorch over ten on two cores), so one
interpreter per backend (``tests/backendworker.py``) is started on first use and runs every
snippet of the session, each in a fresh namespace with the environment and Keras's global
state restored after it. A snippet that hangs or kills its interpreter fails its test, and the
next snippet gets a new interpreter.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

BACKENDS = ("tensorflow", "torch", "jax")
WORKER = Path(__file__).with_name("backendworker.py")


# The snippets check what models compute, not how fast: XLA (JAX, and TensorFlow's jit_compile)
# compiles them with LLVM's cheap optimisation level. Compiling is most of a JAX test's time on
# a CPU (every eager op and every new shape compiles): the style-transfer test ran 27% quicker,
# the StyleGAN, MuseGAN and CLIP tests 5-8%.
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"


class _Worker:
    def __init__(self, backend: str):
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()
        read_fd, write_fd = os.pipe()
        self.log = tempfile.TemporaryFile(mode="w+")  # its stderr (and any C-level stdout)
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(write_fd)], env=env, pass_fds=(write_fd,),
            stdin=subprocess.PIPE, stdout=self.log, stderr=self.log, text=True)
        os.close(write_fd)
        self.replies = os.fdopen(read_fd, "r")

    def log_tail(self, n: int = 3000) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-n:]

    def run(self, code: str, timeout: float) -> dict | str:
        """The worker's reply to ``code``, or why there is none (it died, or did not answer)."""
        try:
            self.proc.stdin.write(json.dumps(code) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            return "its interpreter died"
        ready, _, _ = select.select([self.replies], [], [], timeout)
        if not ready:
            return f"no answer within {timeout:.0f} s"
        line = self.replies.readline()
        return json.loads(line) if line else "its interpreter died"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.replies.close()
        self.log.close()


_workers: dict[str, _Worker] = {}


@atexit.register
def _close_all() -> None:
    for worker in _workers.values():
        worker.close()
    _workers.clear()


def run_with_backend(backend: str, code: str, timeout: float = 300) -> dict:
    """Run ``code`` under ``KERAS_BACKEND=backend``; it must print one JSON object last."""
    worker = _workers.get(backend)
    if worker is None or worker.proc.poll() is not None:
        if worker is not None:
            worker.close()
        worker = _workers[backend] = _Worker(backend)
    reply = worker.run(textwrap.dedent(code), timeout)
    if isinstance(reply, str):  # hung or crashed: report it and start afresh next time
        tail = worker.log_tail()
        worker.close()
        del _workers[backend]
        raise AssertionError(f"{backend}: {reply}\n{tail}")
    assert reply["error"] is None, f"{backend}:\n{reply['error'][-3000:]}"
    return json.loads(reply["stdout"].strip().splitlines()[-1])


def run_snippets(backend: str, *snippets: str, timeout: float = 300) -> dict:
    """Run snippets one after another in one namespace under ``backend``; each adds its findings
    to the dict ``RESULT``, which comes back."""
    code = "import json\nRESULT = {}\n" + "".join(textwrap.dedent(s) for s in snippets)
    return run_with_backend(backend, code + "print(json.dumps(RESULT))\n", timeout=timeout)


def assert_same_as_reference(run: dict, grad_scale: float, n_grads: int | None = None) -> None:
    """Check a layer against the one it replaces. ``run["forward"][key]`` holds both outputs'
    shapes, the largest difference and the reference's largest value; ``run["grad"][key]`` the
    largest difference of each gradient and the size of the reference's, which must exceed
    ``grad_scale`` so that a vanishing gradient cannot pass."""
    assert run["forward"] and run["grad"].keys() == run["forward"].keys()
    for key, (shape_a, shape_b, err, scale) in run["forward"].items():
        assert shape_a == shape_b, key
        assert scale > 0.1, key
        assert err < 1e-5, (key, err)
    for key, (*errs, scale) in run["grad"].items():
        assert scale > grad_scale, key
        if n_grads is not None:
            assert len(errs) == n_grads, key
        assert max(errs) < 1e-4 * max(scale, 1.0), (key, errs, scale)
