r"""Argument checks and seed derivation shared by the theory modules."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import validation


def _as_points(name: str, x: Any) -> Tensor:
    """A floating tensor of points [M, n] (extra dimensions flattened)."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [M, n], got {type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(f"{name} must have shape [M, n] (a batch of points), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}; need at least one point")
    if not x.is_floating_point():
        x = x.to(torch.float64)
    return x.reshape(x.shape[0], -1)


def _check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    return validation.integer(name, value, minimum=minimum)


def _check_nonneg(name: str, value: Any) -> float:
    return validation.non_negative(name, value)


def derive_seed(*keys: int) -> int:
    """A non-negative 31-bit seed derived from integer keys (numpy SeedSequence)."""
    return int(np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in keys]).generate_state(1)[0] >> 1)
