"""Timing of a call inside one process, shared by the benchmarks' reproductions."""

from __future__ import annotations

import statistics
import time


def median_ms(call, rounds: int, warmup: int = 1) -> float:
    """Median wall time of ``call()`` over ``rounds`` calls after ``warmup`` untimed ones, in ms.

    ``call`` must wait for its own result (``block_until_ready`` on JAX, ``.numpy()`` on
    TensorFlow), or the clock reads dispatch, not work.
    """
    for _ in range(warmup):
        call()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)
