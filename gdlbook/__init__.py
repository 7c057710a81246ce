"""gdlbook: the helper package of *Generative Deep Learning — the executable book*.

It holds what several chapters share: run profiles, the dataset registry, plotting, and (as the
book grows) layers, samplers, metrics and widgets. Chapters import from it; each helper's
docstring names the chapter that teaches it.
"""

from __future__ import annotations

import time as _time

__version__ = "0.1.0"

#: When the chapter's first code cell imported the package (:mod:`gdlbook.provenance`).
IMPORT_TIME = _time.time()


def set_seed(seed: int = 42) -> None:
    """Seed Python, NumPy and the Keras backend in one call (``keras.utils.set_random_seed``).

    Every chapter calls it before it trains, so it also sets up the backend the way the book
    trains: on TensorFlow, tf.data's autotuner is turned off for the arrays ``fit()`` gets
    (:func:`gdlbook.training.tf_data_autotune`: it halved the speed of whole epochs on two
    cores), unless ``GDL_TF_DATA_AUTOTUNE=1``. On a machine without a GPU, the C allocator keeps
    freed memory for reuse (:func:`gdlbook.allocator.keep_freed_memory`: XLA's scratch buffer
    is otherwise fresh memory at every step; chapter 9's benchmark at nanoGPT's CPU
    configuration on JAX took 69 and 76 ms per iteration without, 45 and 41 with, in session
    18), unless ``GDL_KEEP_FREED_MEMORY=0``.
    """
    import os

    import keras

    from gdlbook import allocator
    from gdlbook.profile import accelerator_available

    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        from gdlbook.training import tf_data_autotune

        tf_data_autotune(os.environ.get("GDL_TF_DATA_AUTOTUNE") == "1")
    if allocator.requested() and not accelerator_available():
        allocator.keep_freed_memory()


def glue(name: str, value, *, display: bool = False) -> None:
    """Make ``value`` available to the chapter's prose as ``{glue:text}`name```.

    Numbers quoted in the text come from the code that ran, not from a hand-typed copy. It
    returns nothing, so a cell that ends with a glue shows no stray output box on the page (with
    ``display=True`` the value is shown where the cell is). Outside a Jupyter Book build (Colab,
    a plain kernel without myst-nb) it only keeps the value in :data:`GLUED`.
    """
    GLUED[name] = value
    try:
        from myst_nb import glue as _glue
    except ImportError:
        return None
    _glue(name, value, display=display)
    return None


#: Every value glued in this kernel, by name (what :func:`show_glued` shows).
GLUED: dict = {}


def show_glued(names) -> None:
    """Show the glued values ``names`` as a list (the Colab notebooks of :mod:`gdlbook.colab`
    print the numbers of a paragraph with it, since plain Markdown cannot hold them)."""
    from IPython.display import Markdown, display

    def text(value) -> str:
        return str(getattr(value, "data", value)).strip()

    lines = [f"- `{n}`: {text(GLUED[n])}" if n in GLUED else
             f"- `{n}`: not computed yet" for n in names]
    display(Markdown("\n".join(lines)))
