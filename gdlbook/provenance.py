"""What run a chapter page shows: profile, backend, versions, hardware, time, date, commit.

Every chapter ends with a hidden cell that calls :func:`glue_run`; the line it glues is shown
at the top of the page (``{glue:md}`run_provenance```), so each page says, from code, which run
it shows: a run recorded with ``make record`` (the published book) or the build's own execution
(CI's smoke build, a reader's ``make book``). The clock starts when ``gdlbook`` is imported,
in the chapter's first code cell.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import time
from pathlib import Path

import gdlbook

#: Set by ``make record`` (:mod:`gdlbook.records`) in the kernel it runs a chapter in.
RECORD_ENV = "GDL_RECORD"
COMMIT_ENV = "GDL_RECORD_COMMIT"


def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo``, else ``platform``), e.g. 'Intel Xeon …'."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_count() -> int:
    """The cores this process may use (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def accelerator_name() -> str | None:
    """The name of the first accelerator the Keras backend sees, or ``None`` on a CPU."""
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "torch":
            import torch

            if torch.cuda.is_available():
                return torch.cuda.get_device_name(0)
        elif backend == "jax":
            import jax

            devices = [d for d in jax.devices() if d.platform != "cpu"]
            if devices:
                return devices[0].device_kind
        elif backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                details = tf.config.experimental.get_device_details(gpus[0])
                return details.get("device_name", gpus[0].name)
    except Exception:  # a broken driver: report the CPU
        return None
    return None


def device() -> str:
    """The hardware in words: the accelerator's name, or the CPU model and its core count."""
    accel = accelerator_name()
    if accel:
        return accel
    n = cpu_count()
    return f"{cpu_name()}, {n} core{'s' if n != 1 else ''}"


def versions() -> dict[str, str]:
    """The Keras backend and the versions of Keras and of the backend's library."""
    import importlib

    import keras

    backend = keras.backend.backend()
    module = {"tensorflow": "tensorflow", "torch": "torch", "jax": "jax"}.get(backend, backend)
    try:
        backend_version = importlib.import_module(module).__version__
    except Exception:
        backend_version = "?"
    return {"backend": backend, "keras": keras.__version__, "backend_version": backend_version}


def commit(root: str | os.PathLike | None = None) -> str | None:
    """The commit a run comes from, marked ``+changes`` when the chapters or the package differ
    from it: ``$GDL_RECORD_COMMIT`` (set by ``make record``), else ``git`` in ``root`` (default:
    this package's checkout), else ``None`` (e.g. in Colab)."""
    value = os.environ.get(COMMIT_ENV, "").strip()
    if value:
        return value
    root = Path(root) if root is not None else Path(__file__).resolve().parent

    def git(*args: str) -> str:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                                 timeout=30)
        except (OSError, subprocess.SubprocessError):
            return ""
        return out.stdout.strip() if out.returncode == 0 else ""

    head = git("rev-parse", "--short=10", "HEAD")
    if not head:
        return None
    top = git("rev-parse", "--show-toplevel")
    dirty = git("-C", top, "status", "--porcelain", "--", "chapters", "gdlbook") if top else ""
    return head + ("+changes" if dirty else "")


def run_info(profile: str) -> dict:
    """Everything :func:`sentence` says, as a dictionary (also stored with a record)."""
    return {
        "profile": profile,
        **versions(),
        "device": device(),
        "wall_s": round(time.time() - gdlbook.IMPORT_TIME, 1),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"),
        "commit": commit(),
        "recorded": os.environ.get(RECORD_ENV, "") == "1",
    }


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


_BACKEND_NAMES = {"tensorflow": "TensorFlow", "torch": "PyTorch", "jax": "JAX"}


def sentence(info: dict) -> str:
    """One Markdown sentence saying which run a page shows."""
    what = ("a recorded run" if info["recorded"] else "this build's own execution")
    backend = _BACKEND_NAMES.get(info["backend"], info["backend"])
    commit = f", from commit `{info['commit']}`" if info.get("commit") else ""
    text = (f"This page shows {what} of the chapter in the **{info['profile']}** profile: "
            f"{backend} {info['backend_version']} with Keras {info['keras']}, on "
            f"{info['device']}, {_duration(info['wall_s'])}, on {info['date']}{commit}.")
    if info["profile"] == "smoke":
        text += (" The smoke profile only checks that the code and the text agree: its models "
                 "are tiny and its pictures are not meant to be good.")
    return text


def glue_run(profile: str, name: str = "run_provenance") -> None:
    """Glue the sentence of this run as Markdown, shown at the top of the page by

    ``{glue:md}`` (the chapter's last, hidden cell calls this when everything else has run)."""
    from IPython.display import Markdown

    gdlbook.glue(name, Markdown(sentence(run_info(profile))))
