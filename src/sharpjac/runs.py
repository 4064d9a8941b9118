"""The on-disk store of training runs, and :func:`run` (train once, then load).

A run is keyed by the SHA-256 of the canonical JSON (sorted keys, no spaces) of
``{"config": TrainConfig.to_dict(), "version": sharpjac.__version__, "device": "cpu"|"cuda"}``:
changing any config field, the package version or the kind of device gives a new run. The store
lives in ``$SHARPJAC_CACHE`` (default ``~/.cache/sharpjac/runs``), one folder per key::

    <root>/<key>/record.parquet   the DataFrame (one row per measurement)
    <root>/<key>/meta.json        config, versions, status, wall times (written last)
    <root>/<key>/checkpoint.pt    the latest checkpoint while the run is in progress

Every file is written atomically: to a temporary file in the same folder, flushed and
``fsync``-ed, then moved over the target with ``os.replace`` (and the folder fsync-ed), so a
crash leaves either the old file or the new one, never a torn one. A run counts as stored once
``meta.json`` exists. A run killed (even with SIGKILL) and started again resumes from its last
checkpoint and ends with the same record as an uninterrupted run (see
:mod:`sharpjac.training`). Wall times live in ``meta.json`` only, never in the record.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from . import __version__
from ._util import resolve_device
from .training import TrainConfig, TrainResult, train

__all__ = ["RunStore", "run", "config_key", "atomic_write", "default_root"]

CACHE_ENV = "SHARPJAC_CACHE"


def default_root() -> Path:
    """``$SHARPJAC_CACHE`` or ``~/.cache/sharpjac/runs``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sharpjac" / "runs"


def _canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def config_key(config: TrainConfig) -> str:
    """SHA-256 hex digest of the config, the package version and the resolved device type."""
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    payload = {"config": config.to_dict(), "version": __version__,
               "device": resolve_device(config.device).type}
    return hashlib.sha256(_canonical_json(payload).encode()).hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], *, binary: bool = True) -> None:
    """Write ``path`` atomically: ``write(fileobj)`` into a temp file beside it, fsync, ``os.replace``.

    If anything fails (including ``os.replace``), the temp file is removed and the previous
    content of ``path`` (if any) is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


class _FileCheckpointer:
    """Checkpoints of one run in ``<run dir>/checkpoint.pt`` (atomic ``torch.save``)."""

    def __init__(self, path: Path):
        self.path = path

    def load(self) -> dict | None:
        if not self.path.exists():
            return None
        return torch.load(self.path, map_location="cpu", weights_only=False)

    def save(self, state: dict) -> None:
        atomic_write(self.path, lambda f: torch.save(state, f))

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


class RunStore:
    """A folder of stored runs, keyed by :func:`config_key`.

    Args:
        root: folder (default :func:`default_root`).
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root).expanduser() if root is not None else default_root()

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    def path(self, config: TrainConfig) -> Path:
        """Folder of the run of ``config``."""
        return self.root / config_key(config)

    def has(self, config: TrainConfig) -> bool:
        p = self.path(config)
        return (p / "meta.json").exists() and (p / "record.parquet").exists()

    def load(self, config: TrainConfig) -> pd.DataFrame:
        """The stored record (``attrs``: config, status, diverged, key); KeyError if absent."""
        if not self.has(config):
            raise KeyError(f"no stored run for this config in {self.root} (key {config_key(config)[:12]})")
        p = self.path(config)
        df = pd.read_parquet(p / "record.parquet")
        meta = self.meta(config)
        df.attrs = {"config": meta["config"], "status": meta["status"], "diverged": meta["diverged"],
                    "diverged_at_step": meta.get("diverged_at_step"), "key": meta["key"]}
        return df

    def meta(self, config: TrainConfig) -> dict:
        """The stored ``meta.json`` (versions, status, wall times)."""
        with open(self.path(config) / "meta.json") as f:
            return json.load(f)

    def checkpointer(self, config: TrainConfig) -> _FileCheckpointer:
        return _FileCheckpointer(self.path(config) / "checkpoint.pt")

    def save(self, config: TrainConfig, result: TrainResult) -> Path:
        """Write the record, then the meta (atomic each); remove the checkpoint."""
        p = self.path(config)
        p.mkdir(parents=True, exist_ok=True)
        df = result.frame.copy()
        df.attrs = {}
        atomic_write(p / "record.parquet", lambda f: df.to_parquet(f, index=False))
        meta = {
            "key": config_key(config),
            "config": config.to_dict(),
            "sharpjac_version": __version__,
            "torch_version": torch.__version__,
            "numpy_version": np.__version__,
            "pandas_version": pd.__version__,
            "python_version": sys.version.split()[0],
            "platform": platform.platform(),
            "device": str(resolve_device(config.device)),
            "status": result.status,
            "diverged": result.diverged,
            "diverged_at_step": result.frame.attrs.get("diverged_at_step"),
            "message": result.message,
            "steps": result.steps,
            "rows": len(result.frame),
            "wall_time_s": result.wall_time_s,
            "measure_time_s": result.measure_time_s,
            "resumed_from": result.resumed_from,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        atomic_write(p / "meta.json", lambda f: f.write(json.dumps(meta, indent=2, sort_keys=True)), binary=False)
        self.checkpointer(config).clear()
        return p

    def delete(self, config: TrainConfig) -> None:
        """Forget the run (record, meta and checkpoint)."""
        shutil.rmtree(self.path(config), ignore_errors=True)


def _as_store(store) -> RunStore | None:
    if store is None:
        return RunStore()
    if store is False:
        return None
    if isinstance(store, RunStore):
        return store
    if isinstance(store, (str, os.PathLike)):
        return RunStore(store)
    raise TypeError(f"store must be a RunStore, a path, None (default store) or False (no store), "
                    f"got {type(store).__name__}")


def run(config: TrainConfig, *, store=None, force: bool = False, progress: bool | None = None) -> pd.DataFrame:
    """Return the record of ``config``: from the store when present, else by training (and storing).

    Args:
        config: the run.
        store: a :class:`RunStore`, a folder path, None (the default store) or False (train and
            keep nothing).
        force: retrain even if stored (discarding any checkpoint).
        progress: tqdm bar (None: automatic).

    Returns:
        The DataFrame (``attrs``: config, status, diverged, key).
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    st = _as_store(store)
    if st is None:
        return train(config, progress=progress).frame
    if force:
        st.delete(config)
    elif st.has(config):
        return st.load(config)
    ck = st.checkpointer(config)
    result = train(config, checkpointer=ck, progress=progress)
    st.save(config, result)
    return st.load(config)
