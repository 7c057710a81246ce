"""Run profiles: ``smoke`` (small, on a CPU, in CI) and ``full`` (the book's results, on a GPU).

``GDL_PROFILE`` selects the profile. Unset, the profile is ``full`` when an accelerator is
visible to the Keras backend and ``smoke`` otherwise. Any other value is an error.

A chapter's parameters cell calls :func:`select` with both configurations, so the reader sees
what each profile does and which one is running.
"""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any, Mapping

PROFILES = ("smoke", "full")
ENV_VAR = "GDL_PROFILE"


class ProfileError(ValueError):
    """An unknown profile name, or a configuration that does not fit the profiles."""


def accelerator_available() -> bool:
    """True when the active Keras backend can see a GPU (or another accelerator)."""
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return bool(tf.config.list_physical_devices("GPU"))
        if backend == "torch":
            import torch

            return bool(torch.cuda.is_available()) or bool(
                getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
            )
        if backend == "jax":
            import jax

            return any(d.platform != "cpu" for d in jax.devices())
    except Exception:  # a broken driver is no accelerator
        return False
    return False


def current(value: str | None = None) -> str:
    """The active profile: ``value`` if given, else ``$GDL_PROFILE``, else by the hardware."""
    if value is None:
        value = os.environ.get(ENV_VAR, "").strip()
        if not value:
            return "full" if accelerator_available() else "smoke"
        source = f"{ENV_VAR}={value!r}"
    else:
        source = f"profile {value!r}"
    name = value.strip().lower()
    if name not in PROFILES:
        raise ProfileError(
            f"Unknown {source}. Valid profiles: {', '.join(PROFILES)} "
            f"(or leave {ENV_VAR} unset: 'full' with an accelerator, 'smoke' without)."
        )
    return name


def _fmt(v: Any) -> str:
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10_000:
        return f"{v:,}"
    return repr(v) if isinstance(v, str) else str(v)


def table(smoke: Mapping[str, Any], full: Mapping[str, Any], active: str) -> str:
    """The two configurations side by side, as plain text, the active one marked."""
    keys = list(smoke)
    heads = ("parameter", "smoke" + (" *" if active == "smoke" else ""),
             "full" + (" *" if active == "full" else ""))
    rows = [(k, _fmt(smoke[k]), _fmt(full[k])) for k in keys]
    widths = [max(len(r[i]) for r in rows + [heads]) for i in range(3)]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    out = [line(heads), line(tuple("-" * w for w in widths))] + [line(r) for r in rows]
    out.append(f"* running the {active!r} profile (set {ENV_VAR}=smoke|full to choose)")
    return "\n".join(out)


def select(smoke: Mapping[str, Any], full: Mapping[str, Any], *, profile: str | None = None,
           show: bool = True) -> SimpleNamespace:
    """Pick the configuration of the active profile.

    Both configurations must name the same parameters. With ``show`` the two are printed side
    by side, so the reader sees what the other profile would do. The result is a namespace with
    the parameters as attributes plus ``profile``.
    """
    if set(smoke) != set(full):
        missing = sorted(set(smoke) ^ set(full))
        raise ProfileError(f"smoke and full configurations differ in their keys: {missing}")
    if "profile" in smoke:
        raise ProfileError("'profile' is reserved; name the parameter differently")
    name = current(profile)
    if show:
        print(table(smoke, full, name))
    chosen = smoke if name == "smoke" else full
    return SimpleNamespace(profile=name, **chosen)
