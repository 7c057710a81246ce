"""gdlbook.allocator: a large buffer freed and allocated again reuses its pages, or not.

Each case runs in its own Python process (mallopt changes the whole process, and the test
workers run other tests after this one).
"""

import json
import subprocess
import sys
import textwrap

import pytest

from gdlbook import allocator

pytestmark = pytest.mark.skipif(allocator._mallopt() is None, reason="needs glibc")

# Allocate a 64 MiB buffer (above glibc's largest mmap threshold), write every page, free it;
# then count the page faults of doing the same again: with freed memory kept, the second buffer
# lies in pages the process already has.
PROBE = textwrap.dedent("""
    import ctypes, json, resource, sys
    from gdlbook import allocator
    took = allocator.keep_freed_memory(sys.argv[1] == "keep") if sys.argv[1] != "default" else None
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    size = 64 << 20

    def round_trip():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        p = libc.malloc(size)
        ctypes.memset(p, 1, size)
        libc.free(p)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    round_trip()
    print(json.dumps({"took": took, "kept": allocator.kept, "faults": round_trip(),
                      "pages": size // resource.getpagesize()}))
""")


def probe(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def test_a_large_buffer_freed_is_fresh_memory_by_default():
    for mode in ("default", "restore"):      # glibc's own settings, and keep_freed_memory(False)
        result = probe(mode)
        assert result["faults"] > 0.9 * result["pages"], (mode, result)
        assert result["kept"] is False


def test_keep_freed_memory_reuses_the_pages_of_a_freed_buffer():
    result = probe("keep")
    assert result["took"] is result["kept"] is True
    assert result["faults"] < 0.01 * result["pages"], result


@pytest.mark.parametrize("setting, expected", [(None, True), ("0", False)])
def test_set_seed_keeps_freed_memory_on_a_cpu_unless_told_not_to(setting, expected):
    """Every chapter calls gdlbook.set_seed before it trains: on a machine without a GPU it
    turns the setting on, and GDL_KEEP_FREED_MEMORY=0 leaves glibc's default."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "GDL_KEEP_FREED_MEMORY"}
    env["KERAS_BACKEND"] = "numpy"       # no accelerator, and the quickest backend to import
    if setting is not None:
        env["GDL_KEEP_FREED_MEMORY"] = setting
    code = ("import gdlbook; from gdlbook import allocator; assert not allocator.kept; "
            "gdlbook.set_seed(0); print(allocator.kept)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    assert out.stdout.strip().splitlines()[-1] == str(expected)
