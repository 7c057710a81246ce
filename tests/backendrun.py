"""Run a snippet under each Keras backend (TensorFlow, PyTorch, JAX) in a fresh interpreter.

Keras fixes its backend at import time, so every backend-specific test runs its code in a
subprocess with ``KERAS_BACKEND`` set; the snippet prints one JSON object as its last line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

BACKENDS = ("tensorflow", "torch", "jax")


def run_with_backend(backend: str, code: str, timeout: float = 300) -> dict:
    """Run ``code`` under ``KERAS_BACKEND=backend``; it must print one JSON object last."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{backend}:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])
