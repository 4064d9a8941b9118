"""Small helpers shared by the package's modules (seeds, devices, progress bars, JSON)."""

from __future__ import annotations

import math
import numbers
import os
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

_TAGS = {"init": 1, "batch": 2, "augment": 3, "jacpen": 4, "lanczos": 5, "subset": 6, "gn": 7}


def derive_seed(seed: int, tag: str, *counters: int) -> int:
    """A 63-bit seed derived from ``(seed, tag, *counters)`` (numpy SeedSequence; stable across runs).

    Randomness in training is drawn from generators seeded this way (e.g. the batch order of epoch
    ``e`` from ``(seed, "batch", e)``) rather than from one advancing stream, so a resumed run
    draws exactly what an uninterrupted one would.
    """
    seed = int(seed)
    if not 0 <= seed < 2**32:  # masking would alias seed and seed + 2**32
        raise ValueError(f"seed={seed} is invalid; accepted: an int in [0, 2**32)")
    ss = np.random.SeedSequence([seed, _TAGS[tag], *[int(c) for c in counters]])
    return int(ss.generate_state(1, dtype=np.uint64)[0]) >> 1


def generator(seed: int, tag: str, *counters: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`derive_seed`."""
    return torch.Generator().manual_seed(derive_seed(seed, tag, *counters))


def available_devices() -> list[str]:
    """The devices torch can use here: ``"cpu"`` and ``"cuda:k"`` for each visible GPU."""
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return ["cpu"] + [f"cuda:{k}" for k in range(n)]


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA if available else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:k"`` checked to exist.

    Raises:
        ValueError: one line naming the device and the devices available here.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device={device!r} is not a device name; accepted: 'auto', 'cpu', 'cuda', 'cuda:k'") from None
    if dev.type == "cpu":
        return dev
    have = available_devices()
    if dev.type != "cuda" or (dev.index or 0) >= len(have) - 1:
        why = "torch was built without CUDA" if not torch.backends.cuda.is_built() else "no such GPU is visible"
        raise ValueError(
            f"device={device!r} is not available on this machine ({why}); available: {', '.join(have)} (or 'auto')"
        )
    return dev


def progress_enabled(progress: bool | None) -> bool:
    """Whether to show a tqdm bar.

    ``progress=None`` (the default everywhere) means: on if stderr is a TTY, unless the
    environment sets ``SHARPJAC_PROGRESS=0`` or pytest is running.
    """
    if progress is not None:
        return bool(progress)
    if os.environ.get("SHARPJAC_PROGRESS", "") == "0" or "PYTEST_CURRENT_TEST" in os.environ:
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def jsonable(value: Any, *, nonfinite: str = "keep", other: str = "keep") -> Any:
    """``value`` as plain JSON data: the package's one JSON normaliser.

    Mappings become dicts with ``str`` keys, tuples and lists become lists, NumPy scalars and
    0-dimensional arrays become Python scalars (NumPy arrays become lists); ``bool``, ``int``, ``str``
    and ``None`` are kept.

    Args:
        value: what to normalise (nested).
        nonfinite: ``"keep"`` (NaN and infinities stay floats, for ``json.dumps(allow_nan=True)``:
            run keys, the run store) or ``"null"`` (they become ``None``: strict JSON, for notebook
            metadata and Plotly, where ``None`` leaves a gap).
        other: what becomes of any other object: ``"keep"`` (left as is, so ``json.dumps`` refuses
            it: a config that is not JSON is an error) or ``"str"`` (its ``str``).

    >>> jsonable({"a": (1, np.float32(0.5)), 2: [np.int64(3), float("nan")]}, nonfinite="null")
    {'a': [1, 0.5], '2': [3, None]}
    >>> jsonable({"lr": (0.1, float("inf"))})
    {'lr': [0.1, inf]}
    """
    if nonfinite not in ("keep", "null"):
        raise ValueError(f"nonfinite={nonfinite!r}; accepted: 'keep' or 'null'")
    if other not in ("keep", "str"):
        raise ValueError(f"other={other!r}; accepted: 'keep' or 'str'")
    return _jsonable(value, nonfinite == "null", other == "str")


def _jsonable(v: Any, null: bool, as_str: bool) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x, null, as_str) for k, x in v.items()}
    if isinstance(v, (tuple, list)):
        return [_jsonable(x, null, as_str) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.item() if v.ndim == 0 else v.tolist(), null, as_str)
    if isinstance(v, np.generic):
        v = v.item()
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        f = float(v)
        return None if null and not math.isfinite(f) else f
    return str(v) if as_str else v
