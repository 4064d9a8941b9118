"""``digits``: scikit-learn's 1,797 8x8 handwritten digits."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ._common import Dataset, _load_grey


@functools.lru_cache(maxsize=1)
def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as (float64 [1797, 64] in 0..16, int64 [1797]); cached, read-only."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = np.ascontiguousarray(bunch.data, dtype=np.float64)
    y = np.ascontiguousarray(bunch.target, dtype=np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _load_digits(name: str, seed: int, *, given: set[str], **opts: Any) -> Dataset:
    """``digits``: scikit-learn's 8x8 digits (1,797 images, pixel values 0..16). Same extras as
    ``mnist5k``; ``mean``/``std`` are in the 0..16 scale."""
    return _load_grey(name, seed, _digits_raw, None, 8, "scikit-learn 8x8 digits", opts)
