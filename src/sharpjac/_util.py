"""Small private helpers shared by training, runs and experiments."""

from __future__ import annotations

import os
import sys

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
