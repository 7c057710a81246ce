"""Progress of the long loops: samplers, evaluation sweeps, feature extraction.

At the ``laptop`` and ``full`` sizes a sampler (DDIM, a PixelCNN drawn pixel by pixel, Langevin
chains, autoregressive text) or a metric's feature extraction runs for minutes, and a reader
wants to see that it moves and when it will end. :func:`track` wraps such a loop in Keras's
``Progbar`` (a bar with the rate and an estimate of the time left, in a live notebook or a
terminal). A page built by the book, or recorded with ``make record``, should hold no bar at
all, only what the loop did: with ``GDL_PROGRESS=summary`` (set by the Makefile for builds,
records and tests) :func:`track` prints one line when the loop ends. ``GDL_PROGRESS=off`` prints
nothing.
"""

from __future__ import annotations

import os
import time
from typing import Iterable, Iterator, TypeVar

ENV_VAR = "GDL_PROGRESS"
MODES = ("bar", "summary", "off")

T = TypeVar("T")


def mode() -> str:
    """``bar`` (the default), ``summary`` or ``off``, from ``$GDL_PROGRESS``."""
    value = os.environ.get(ENV_VAR, "").strip().lower() or "bar"
    if value not in MODES:
        raise ValueError(f"Unknown {ENV_VAR}={value!r}; valid: {', '.join(MODES)}")
    return value


class Progress:
    """A progress report for ``total`` steps of ``desc``: ``update(n)`` as they are done.

    Used as a context manager, it ends (prints its summary line) on leaving the block.
    """

    def __init__(self, total: int | None, desc: str, unit: str = "step"):
        self.total, self.desc, self.unit = total, desc, unit
        self.mode = mode()
        self.done = 0
        self.t0 = time.perf_counter()
        self._bar = None
        self._closed = False
        if self.mode == "bar":
            import keras

            print(desc, flush=True)
            self._bar = keras.utils.Progbar(total, unit_name=unit)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(self.done, finalize=self.total is not None
                             and self.done >= self.total)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.mode == "summary":
            print(self.summary(), flush=True)

    def summary(self) -> str:
        seconds = time.perf_counter() - self.t0
        rate = self.done / seconds if seconds > 0 else float("inf")
        plural = "" if self.done == 1 else "s"
        return (f"{self.desc}: {self.done} {self.unit}{plural} in {seconds:.1f} s "
                f"({rate:.3g} {self.unit}s/s)")

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def track(iterable: Iterable[T], desc: str, total: int | None = None,
          unit: str = "step") -> Iterator[T]:
    """Iterate over ``iterable`` showing progress (see the module's docstring)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with Progress(total, desc, unit) as bar:
        for item in iterable:
            yield item
            bar.update(1)
