"""One measurement per fresh process: the benchmarks run themselves as a worker and read back
the ``RESULT {json}`` line it prints (so no measurement inherits another's compiled graphs,
caches or memory)."""

from __future__ import annotations

import json
import subprocess
import time


def print_result(result: dict) -> None:
    """The worker's side: the one line the orchestrator reads."""
    print("RESULT " + json.dumps(result), flush=True)


def run_worker(cmd: list[str], env: dict, label: str) -> dict:
    """Run ``cmd`` and return its last ``RESULT`` as a dict, with ``wall_s`` added; a worker
    that fails or prints none raises, with the end of its stderr."""
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"{label} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    return dict(result, wall_s=round(time.perf_counter() - t0, 1))
