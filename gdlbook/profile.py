"""Run profiles: how big every run of a chapter is.

- ``smoke``: the whole chapter in about a minute on 2 CPU cores, on a small real subset. It
  proves that the code and the text agree (CI runs it); its pictures are not meant to be pretty.
- ``laptop``: results worth looking at on a laptop-class CPU, in at most about 30 minutes per
  chapter on 2 cores, with data available offline. The published book shows recorded ``laptop``
  runs (``make record``, see :mod:`gdlbook.records`).
- ``full``: the book's sizes for one GPU (a Colab T4 and up), downloading full datasets.

``GDL_PROFILE`` selects the profile. Unset, the profile is ``full`` when an accelerator is
visible to the Keras backend and ``smoke`` otherwise. Any other value is an error.

A chapter's parameters cell calls :func:`select` with the configurations side by side, so the
reader sees what each profile does and which one is running.
"""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any, Mapping

PROFILES = ("smoke", "laptop", "full")
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


def table(configs: Mapping[str, Mapping[str, Any]], active: str) -> str:
    """The configurations (profile name -> parameters) side by side, the active one marked."""
    names = list(configs)
    keys = list(configs[names[0]])
    heads = ("parameter", *(n + (" *" if n == active else "") for n in names))
    rows = [(k, *(_fmt(configs[n][k]) for n in names)) for k in keys]
    widths = [max(len(r[i]) for r in rows + [heads]) for i in range(len(heads))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    out = [line(heads), line(tuple("-" * w for w in widths))] + [line(r) for r in rows]
    out.append(f"* running the {active!r} profile (set {ENV_VAR}={'|'.join(names)} to choose)")
    return "\n".join(out)


def select(smoke: Mapping[str, Any], full: Mapping[str, Any],
           laptop: Mapping[str, Any] | None = None, *, profile: str | None = None,
           show: bool = True) -> SimpleNamespace:
    """Pick the configuration of the active profile.

    All configurations must name the same parameters. With ``show`` they are printed side by
    side, so the reader sees what the other profiles would do. The result is a namespace with
    the parameters as attributes plus ``profile``. A chapter that has no ``laptop``
    configuration refuses that profile with an error (it never runs another size silently).
    """
    configs = {"smoke": smoke, **({"laptop": laptop} if laptop is not None else {}),
               "full": full}
    for name, config in configs.items():
        if set(config) != set(smoke):
            missing = sorted(set(smoke) ^ set(config))
            raise ProfileError(f"smoke and {name} configurations differ in their keys: {missing}")
    if "profile" in smoke:
        raise ProfileError("'profile' is reserved; name the parameter differently")
    name = current(profile)
    if name not in configs:
        raise ProfileError(
            f"This chapter has no {name!r} configuration; its profiles are "
            f"{', '.join(configs)} (set {ENV_VAR} to one of them).")
    if show:
        print(table(configs, name))
    return SimpleNamespace(profile=name, **configs[name])
