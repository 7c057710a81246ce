"""The C allocator's settings for XLA on a CPU (the GPT of chapter 9 on JAX, and every model
compiled with XLA on a machine without a GPU).

On a CPU, XLA runs a compiled step with one scratch buffer that holds all of the step's
intermediate results, allocated with the C library's ``malloc`` when the step starts and freed
when it ends. glibc's ``malloc`` (the C library of most Linux systems) serves a request above its
``mmap`` threshold with fresh pages from the kernel and gives them back at ``free``; the threshold
adapts to the sizes a program frees, but never above 32 MiB on a 64-bit system (``man 3
mallopt``). A scratch buffer larger than that is therefore new memory at every step, which the
kernel must map and zero page by page. For a training step of chapter 9's GPT at nanoGPT's CPU
configuration (4 blocks, batch 12, context 64, on JAX 0.10.2) XLA reports a scratch buffer of
49.6 MiB; with 2 blocks, 25.5 MiB.

:func:`keep_freed_memory` asks glibc to serve large requests from its heap too and to keep what is
freed there for the next request, so that every step after the first reuses the same pages.
This module imports nothing but the standard library (``benchmarks/xla_residual_backward.py``
uses it without Keras).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# mallopt parameters, from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
# glibc's defaults, restored by keep_freed_memory(False)
DEFAULT_MMAP_MAX = 65536
DEFAULT_TRIM_THRESHOLD = 128 * 1024
# keep up to 1 GiB of freed memory at the top of the heap (the largest value mallopt takes is
# INT_MAX; a step's scratch buffer is far smaller)
KEPT_BYTES = 1 << 30

#: Whether :func:`keep_freed_memory` is in effect in this process (what the benchmarks print).
kept = False


def _mallopt():
    """glibc's ``mallopt``, or None where the C library is not glibc (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version       # noqa: B018  (glibc only)
        return libc.mallopt
    except (OSError, AttributeError):
        return None


def requested() -> bool:
    """Whether the book should keep freed memory: yes, unless ``GDL_KEEP_FREED_MEMORY=0``
    (:func:`gdlbook.set_seed` and the benchmark's nanoGPT run both ask here)."""
    return os.environ.get("GDL_KEEP_FREED_MEMORY") != "0"


def environment() -> dict[str, str]:
    """The settings of :func:`keep_freed_memory` as glibc's environment variables, for a child
    process that does not call it (``benchmarks/gpt_shakespeare.py`` runs nanoGPT with them, so
    that both sides of its comparison use the allocator the same way)."""
    return {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(KEPT_BYTES)}


def keep_freed_memory(enabled: bool = True) -> bool:
    """Keep memory that is freed for reuse instead of returning it to the kernel (glibc only).

    ``enabled=True`` sets ``M_MMAP_MAX`` to 0 (no request is served by ``mmap``) and
    ``M_TRIM_THRESHOLD`` to 1 GiB (the heap is not shrunk while less than that is free at its
    top); ``enabled=False`` restores glibc's default values (with the threshold then fixed rather
    than adaptive). The process then holds on to its peak heap: the price is memory the kernel
    could have taken back, the gain a training step that does not fault in and zero its scratch
    buffer every time. Returns whether the settings took effect: False where the C library is
    not glibc, and nothing changes there.
    """
    global kept
    mallopt = _mallopt()
    if mallopt is None:
        return False
    mmap_max, trim = (0, KEPT_BYTES) if enabled else (DEFAULT_MMAP_MAX, DEFAULT_TRIM_THRESHOLD)
    mmap_set = mallopt(M_MMAP_MAX, mmap_max) == 1
    trim_set = mallopt(M_TRIM_THRESHOLD, trim) == 1
    kept = enabled and mmap_set and trim_set
    return mmap_set and trim_set
