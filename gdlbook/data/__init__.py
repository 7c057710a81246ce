"""The dataset registry (see :mod:`gdlbook.data.registry` for the lookup order).

>>> from gdlbook import data
>>> x, y = data.load("fashion_mnist", "test", subset=1000)   # doctest: +SKIP
"""

from . import catalog as _catalog  # noqa: F401  (registers the datasets)
from .registry import (
    REGISTRY,
    CorruptDataError,
    DataError,
    DataNotFoundError,
    Dataset,
    File,
    Format,
    UnsafeArchiveError,
    cache_dir,
    dataset,
    load,
    register,
    safe_extract,
)


def names() -> list[str]:
    """The names of every registered dataset."""
    return sorted(REGISTRY)


__all__ = [
    "CorruptDataError", "DataError", "DataNotFoundError", "Dataset", "File", "Format",
    "UnsafeArchiveError", "cache_dir", "dataset", "load", "names", "register", "safe_extract",
]

from .shapes import Scenes, captioned_shapes  # noqa: E402  (chapter 13's generated data)
