"""The on-disk store of training runs, and :func:`run` (train once, then load).

Keys
----
A run is keyed by the SHA-256 of the canonical JSON (sorted keys, no spaces) of
``{"config": TrainConfig.to_dict(), "version": sharpjac.__version__, "device": "cpu"|"cuda",
"code": code_digest("sharpjac.training")}``: changing any config field, the package version, the
kind of device or the code a run executes (:mod:`sharpjac.codekey`: the normalised source of the
training loop, models, losses, data, measurement hooks, curvature and Jacobian modules; comments,
docstrings and formatting do not count) gives a new run. Studies and artefacts are keyed likewise
by the code of the module that computes them. Runs of other code are never read: their folders
are simply other keys; ``python -m sharpjac store list-stale`` shows them and ``... store prune``
deletes them. The store
lives in ``$SHARPJAC_CACHE`` (default ``~/.cache/sharpjac/runs``)::

    <root>/<key>/record.parquet          the DataFrame (one row per measurement)
    <root>/<key>/model-<step>.pt         the network's state dict after <step> updates (the final
                                         state and every requested snapshot step)
    <root>/<key>/meta.json               config, versions, status, wall times, and the SHA-256 of
                                         every file above; written LAST
    <root>/<key>/artefacts/<name>-<h>.json   derived values of the run (:meth:`RunStore.artefact`)
    <root>/<key>/checkpoint-<step>.pt    the two newest checkpoints while the run is in progress,
    <root>/<key>/checkpoint-<step>.pt.sha256   each with a SHA-256 sidecar
    <root>/studies/<name>-<key16>/       derived tables that train nothing (:meth:`RunStore.study`):
                                         one parquet per table and a meta.json with checksums
    <root>/.locks/<key>.lock             the per-run lock

Guarantees
----------
*Atomic*: every file is written to a temporary file in the same folder, flushed and
``fsync``-ed, then moved over its target with ``os.replace`` (and the folder fsync-ed), so a crash
leaves the old file or the new one, never a torn one. A run counts as stored once ``meta.json``
exists, and ``meta.json`` is written after everything it describes.

*Verified*: ``meta.json`` holds a ``"files"`` map ``{filename: sha256}`` and a self-checksum
(``"meta_sha256"``, the SHA-256 of the canonical JSON of the meta without that field); it must
also be byte-for-byte the form it was written in. Every load checks the bytes against the
recorded SHA-256 *before* parsing them, so a flipped byte in any stored file (record, networks,
meta, study tables, artefacts) is a :class:`StoreError` naming the file and the remedy, never a
silently different result. Networks and checkpoints are parsed with
``torch.load(weights_only=True)`` (no pickled code is ever run); tables with parquet; the rest is
JSON.

*Resumable*: a run killed (even with SIGKILL) resumes from its newest good checkpoint and ends
with the same record as an uninterrupted run (see :mod:`sharpjac.training`). A checkpoint that
is unreadable, fails its checksum, is refused by ``weights_only`` or belongs to another config
is moved aside to ``<name>.damaged-<n>`` with a ``RuntimeWarning`` and the previous generation
(else a fresh start) is used: damage never causes a crash loop.

*Served only as what it is*: a run is loaded only when the key in its ``meta.json`` equals its
folder's name and the key of the asked configuration, and the recorded configuration equals the
asked one (a folder copied or renamed under another key is refused, never served as that run);
``meta.json`` also records a SHA-256 of the arrays the run trained and was tested on
(``data_sha256``), and a run is served only when it equals the digest of the data the asked
configuration loads now (:func:`sharpjac.training.data_digest`); otherwise it is refused like a
run copied under another key. A
checkpoint that passes its checksum but does not fit the model and optimiser it is loaded into is
set aside like a damaged one.

*Shared by a group*: stored files follow the umask (``os.replace`` of a ``mkstemp`` file would
otherwise leave them 0600): with ``umask 002`` and a setgid group folder, every member of the group
can read the runs and add to the store.

*Waits that say so*: a process waiting for another's lock prints (stderr) who holds it (pid,
host) and since when, and gives up after ``$SHARPJAC_LOCK_TIMEOUT`` seconds (default 21600, six
hours) with a one-line :class:`StoreError`.

*Locked and checked up front*: :func:`run` checks that the store is writable before any
training and holds a per-run file lock while it trains, so a second process asking for the same
run waits and then reuses the stored result. Reading a stored run writes nothing, so a
read-only store can still be read.

Wall times live in ``meta.json`` only, never in the record.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import filelock
import numpy as np
import pandas as pd
import torch
from torch import nn

from . import __version__
from ._util import resolve_device
from .codekey import RUN_ENTRY, code_digest
from .training import TrainConfig, TrainResult, data_digest, train

__all__ = ["RunStore", "StoreError", "atomic_write", "config_key", "default_root", "run", "stale_entries"]

CACHE_ENV = "SHARPJAC_CACHE"
LOCK_TIMEOUT_ENV = "SHARPJAC_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT_S = 6 * 3600.0
#: the module whose import closure keys a study or artefact whose computing module is unknown:
#: every experiment (an over-approximation: a change anywhere recomputes, never serves stale numbers)
ALL_EXPERIMENTS = "sharpjac.experiments"
META = "meta.json"
RECORD = "record.parquet"
META_CHECKSUM = "meta_sha256"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MODEL_RE = re.compile(r"^model-(\d+)\.pt$")
_CKPT_RE = re.compile(r"^checkpoint-(\d+)\.pt$")


class StoreError(RuntimeError):
    """A stored file is damaged or unreadable, or the store cannot be written.

    The message is one line naming the file or folder and what to do about it.
    """


def default_root() -> Path:
    """``$SHARPJAC_CACHE`` or ``~/.cache/sharpjac/runs``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sharpjac" / "runs"


def _canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def config_key(config: TrainConfig) -> str:
    """SHA-256 hex digest of the config, the package version and the resolved device type."""
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    payload = {
        "config": config.to_dict(),
        "version": __version__,
        "device": resolve_device(config.device).type,
        "code": code_digest(RUN_ENTRY),
    }
    return _sha256(_canonical_json(payload).encode())


def _code_modules(code: Any, compute: Callable | None) -> tuple[str, ...]:
    """The modules whose code keys a study or artefact: ``code`` (a module name or names), else the
    module defining ``compute`` when it is a ``sharpjac`` module, else every experiment."""
    if code is None:
        module = getattr(compute, "__module__", None) or ""
        code = module if module.startswith("sharpjac.") else ALL_EXPERIMENTS
    names = (code,) if isinstance(code, str) else tuple(code)
    if not names or not all(isinstance(n, str) and (n == "sharpjac" or n.startswith("sharpjac.")) for n in names):
        raise ValueError(f"code={code!r} is invalid; accepted: a sharpjac module name or a list of them")
    return tuple(sorted(set(names)))


def _umask() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old


def _file_mode() -> int:
    """The mode a plain new file gets under the current umask (what ``open`` would give)."""
    return 0o666 & ~_umask()


def _os_error(e: OSError, what: str, remedy: str) -> StoreError:
    """A one-line StoreError for an OSError met while ``what`` (names the path and a remedy)."""
    import errno

    path = e.filename or what
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        why = "the disk (or quota) is full"
        remedy = f"free space there or set ${CACHE_ENV} / --cache to a folder on another disk; {remedy}"
    elif e.errno == errno.EFBIG:
        why = "the file is larger than the file system allows"
        remedy = f"set ${CACHE_ENV} / --cache to a folder on another file system; {remedy}"
    elif e.errno == errno.ENAMETOOLONG:
        why = "the path is too long"
        remedy = f"set ${CACHE_ENV} / --cache to a shorter folder; {remedy}"
    elif e.errno in (errno.ENOTDIR, errno.EEXIST):
        why = "a part of the path is a file, not a folder"
        remedy = f"move that file away or set ${CACHE_ENV} / --cache to another folder; {remedy}"
    elif e.errno == errno.ELOOP:
        why = "the path is a symbolic link loop (or a link where none is allowed)"
        remedy = f"remove the link; {remedy}"
    else:
        why = e.strerror or type(e).__name__
    return StoreError(f"{what}: cannot use {path} ({why}); {remedy}")


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
        os.fchmod(fd, _file_mode())  # mkstemp makes 0600; the store follows the umask (shared stores)
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


def _write_bytes(path: Path, data: bytes) -> str:
    """Atomically write ``data``; return its SHA-256."""
    atomic_write(path, lambda f: f.write(data))
    return _sha256(data)


# -- verified JSON ------------------------------------------------------------------------------


def _json_text(obj: Mapping) -> str:
    """The one written form of a verified JSON file (pretty, sorted keys, trailing newline)."""
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=True) + "\n"


def _write_verified_json(path: Path, obj: Mapping) -> None:
    """Write ``obj`` plus its self-checksum field ``meta_sha256`` atomically."""
    body = {k: v for k, v in obj.items() if k != META_CHECKSUM}
    body[META_CHECKSUM] = _sha256(_canonical_json(body).encode())
    atomic_write(path, lambda f: f.write(_json_text(body).encode()))


def _read_verified_json(path: Path, remedy: str) -> dict:
    """Read a file written by :func:`_write_verified_json`; StoreError unless it is intact.

    Intact means: valid UTF-8 JSON object, its self-checksum matches, and the bytes are exactly
    the written form (so even a change that keeps the parsed content equal is caught).
    """
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise StoreError(f"cannot read {path} ({e.strerror or e}); {remedy}") from None
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise StoreError(f"{path} is damaged (not valid JSON); {remedy}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get(META_CHECKSUM), str):
        raise StoreError(f"{path} has no checksum (damaged, or written by an older sharpjac); {remedy}")
    body = {k: v for k, v in obj.items() if k != META_CHECKSUM}
    if _sha256(_canonical_json(body).encode()) != obj[META_CHECKSUM] or _json_text(obj).encode() != raw:
        raise StoreError(f"{path} is damaged (fails its SHA-256 check); {remedy}")
    return body


def _read_checked(path: Path, expected: str | None, remedy: str) -> bytes:
    """Bytes of ``path`` after checking them against the SHA-256 ``expected``."""
    if expected is None:
        raise StoreError(f"{path} has no recorded checksum in {META}; {remedy}")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise StoreError(f"cannot read {path} ({e.strerror or e}); {remedy}") from None
    if _sha256(data) != expected:
        raise StoreError(f"{path} is damaged (fails its SHA-256 check); {remedy}")
    return data


def _parquet_bytes(df: pd.DataFrame, *, index: bool | None) -> bytes:
    frame = df.copy()
    frame.attrs = {}
    buf = io.BytesIO()
    frame.to_parquet(buf, index=index)
    return buf.getvalue()


def _torch_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"{what}={name!r} is invalid; accepted: a non-empty string of letters, digits, '_', '.', "
            "'-' starting with a letter or digit"
        )
    return name


def _spec_json(spec: Any, what: str) -> Any:
    """``spec`` as plain JSON data (tuples become lists); TypeError/ValueError if not a JSON mapping."""
    if not isinstance(spec, Mapping):
        raise TypeError(f"{what}={spec!r} is invalid; accepted: a mapping of JSON-serialisable values")
    try:
        return json.loads(_canonical_json(dict(spec)))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}={spec!r} is invalid ({e}); accepted: a mapping of JSON-serialisable values") from None


def _json_safe_attrs(attrs: Mapping) -> dict:
    """The entries of ``attrs`` that survive a JSON round trip (others are dropped)."""
    out = {}
    for k, v in attrs.items():
        try:
            out[str(k)] = json.loads(_canonical_json(v))
        except (TypeError, ValueError):
            continue
    return out


# -- checkpoints --------------------------------------------------------------------------------


def _set_aside(path: Path) -> Path:
    """Move ``path`` to the first free ``<name>.damaged-<n>`` beside it (evidence is kept)."""
    n = 1
    while (path.parent / f"{path.name}.damaged-{n}").exists():
        n += 1
    target = path.parent / f"{path.name}.damaged-{n}"
    os.replace(path, target)
    return target


class _FileCheckpointer:
    """Checkpoints of one run: ``checkpoint-<step>.pt`` with a ``.sha256`` sidecar, two generations.

    ``save`` writes the checkpoint, then its sidecar (each atomically), then removes all but the
    two newest generations. ``load`` tries the newest generation first: if it has no sidecar, is
    unreadable, fails its checksum, is refused by ``torch.load(weights_only=True)`` or belongs
    to another config, it is moved aside (``<name>.damaged-<n>``) with a ``RuntimeWarning`` and
    the previous generation is tried; ``None`` (start fresh) when none is good.

    Args:
        folder: the run folder.
        config: the run's ``TrainConfig.to_dict()`` (None: accept any config).
    """

    KEEP = 2

    def __init__(self, folder: Path, config: Mapping | None = None):
        self.folder = Path(folder)
        self.config = None if config is None else dict(config)

    def path_for(self, step: int) -> Path:
        """The checkpoint file of ``step`` (its sidecar is ``<path>.sha256``)."""
        return self.folder / f"checkpoint-{int(step):09d}.pt"

    def generations(self) -> list[Path]:
        """Checkpoint files present, newest (highest step) first."""
        if not self.folder.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.folder.iterdir() if (m := _CKPT_RE.match(p.name))]
        return [p for _, p in sorted(found, reverse=True)]

    def _try_load(self, path: Path) -> tuple[dict | None, str]:
        side = path.with_name(path.name + ".sha256")
        try:
            expected = side.read_text().split()[0]
        except (OSError, IndexError, UnicodeDecodeError):
            return None, "has no readable SHA-256 sidecar"
        try:
            data = path.read_bytes()
        except OSError as e:
            return None, f"is unreadable ({e.strerror or e})"
        if _sha256(data) != expected:
            return None, "fails its SHA-256 check"
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any refusal or parse error means: not usable
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            return None, f"was refused by torch.load(weights_only=True) ({first[:200]})"
        if not isinstance(state, dict) or "step" not in state:
            return None, "is not a checkpoint dict"
        if self.config is not None and state.get("config") != self.config:
            return None, "belongs to a different config"
        return state, ""

    def _aside(self, path: Path, why: str, more: bool) -> None:
        aside = _set_aside(path)
        side = path.with_name(path.name + ".sha256")
        if side.exists():
            _set_aside(side)
        then = "falling back to the previous checkpoint" if more else "starting afresh"
        warnings.warn(f"checkpoint {path} {why}; moved aside to {aside.name}, {then}", RuntimeWarning, stacklevel=3)

    def load(self) -> dict | None:
        gens = self.generations()
        self.loaded = None
        for i, path in enumerate(gens):
            state, why = self._try_load(path)
            if state is not None:
                self.loaded = path
                return state
            self._aside(path, why, i + 1 < len(gens))
        return None

    def reject(self, why: str) -> None:
        """Set the checkpoint last returned by :meth:`load` aside (it passed its checksum but cannot
        be used, e.g. it does not fit the model); the next :meth:`load` tries the previous one."""
        path = getattr(self, "loaded", None)
        if path is not None and path.exists():
            self._aside(path, why, len(self.generations()) > 1)
        self.loaded = None

    def save(self, state: dict) -> None:
        path = self.path_for(int(state["step"]))
        digest = _write_bytes(path, _torch_bytes(state))
        atomic_write(path.with_name(path.name + ".sha256"), lambda f: f.write(f"{digest}  {path.name}\n".encode()))
        for old in self.generations()[self.KEEP :]:
            old.unlink(missing_ok=True)
            old.with_name(old.name + ".sha256").unlink(missing_ok=True)

    def clear(self) -> None:
        for p in self.generations():
            p.unlink(missing_ok=True)
            p.with_name(p.name + ".sha256").unlink(missing_ok=True)


def _study_key(name: Any, spec_j: Any, modules: tuple[str, ...]) -> str:
    payload = {"name": name, "spec": spec_j, "version": __version__, "code": code_digest(modules)}
    return _sha256(_canonical_json(payload).encode())


def _artefact_hash(name: str, spec_j: Any, modules: tuple[str, ...]) -> str:
    return _sha256(_canonical_json({"name": name, "spec": spec_j, "code": code_digest(modules)}).encode())[:16]


_KEY_RE = re.compile(r"^[0-9a-f]{64}$")


def _plain_json(path: Path) -> dict | None:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def stale_entries(root: str | os.PathLike) -> list[tuple[Path, str]]:  # noqa: C901 - one branch per kind of stored entry and reason
    """Runs, studies and artefacts under ``root`` that the current code never reads, with why.

    A run folder is stale when the key its ``meta.json`` configuration gives *now* (same config,
    device kind, current package version and code digest) is not its name; a study or an artefact
    likewise. Folders without a readable meta (runs in progress, damaged ones) are left out: they
    are not "other code", and :func:`run` already handles them.
    """
    root = Path(root)
    out: list[tuple[Path, str]] = []
    if not root.is_dir():
        return out
    run_code = code_digest(RUN_ENTRY)
    for folder in sorted(root.iterdir()):
        if not (folder.is_dir() and _KEY_RE.match(folder.name)):
            continue
        meta = _plain_json(folder / META)
        if meta is None or not isinstance(meta.get("config"), dict):
            continue
        try:
            device = torch.device(str(meta.get("device", "cpu"))).type
        except (RuntimeError, TypeError):
            device = str(meta.get("device"))
        payload = {"config": meta["config"], "version": __version__, "device": device, "code": run_code}
        if _sha256(_canonical_json(payload).encode()) != folder.name:
            why = (
                f"sharpjac {meta.get('sharpjac_version')}"
                if meta.get("sharpjac_version") != __version__
                else ("other code" if meta.get("code_digest") != run_code else "other key")
            )
            out.append((folder, f"run of {why} (finished {meta.get('finished_at', '?')})"))
            continue
        for art in sorted((folder / "artefacts").glob("*.json")):
            a = _plain_json(art)
            code = a.get("code") if a else None
            if not a or not isinstance(code, list):
                out.append((art, "artefact of older code (no code digest)"))
                continue
            try:
                h = _artefact_hash(a.get("name"), a.get("spec"), tuple(code))
            except ValueError:
                h = None
            if art.stem != f"{a.get('name')}-{h}":
                out.append((art, "artefact of other code"))
    studies = root / "studies"
    if studies.is_dir():
        for folder in sorted(studies.iterdir()):
            meta = _plain_json(folder / META) if folder.is_dir() else None
            if meta is None:
                continue
            code = meta.get("code")
            if not isinstance(code, list):
                out.append((folder, "study of older code (no code digest)"))
                continue
            try:
                key = _study_key(meta.get("name"), meta.get("spec"), tuple(code))
            except ValueError:
                key = None
            if key is None or folder.name != f"{meta.get('name')}-{key[:16]}":
                out.append((folder, "study of other code"))
    return out


class _WaitingLock:
    """A file lock that says who holds it while waiting, and gives up after a timeout.

    The holder writes ``<lock>.owner`` (pid, host, since); a waiter prints one line to stderr
    naming them (again every ten minutes) and raises :class:`StoreError` after ``timeout``
    seconds (None: ``$SHARPJAC_LOCK_TIMEOUT``, else :data:`DEFAULT_LOCK_TIMEOUT_S`). A lock path
    that is a symbolic link, or not a file, is refused.
    """

    POLL_S = 0.5
    REPEAT_S = 600.0

    def __init__(self, path: Path, timeout: float | None = None):
        self.path = Path(path)
        self.owner = self.path.with_name(self.path.name + ".owner")
        self.timeout = timeout
        self._lock: filelock.FileLock | None = None

    def _limit(self) -> float:
        if self.timeout is not None:
            return float(self.timeout)
        raw = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
        if not raw:
            return DEFAULT_LOCK_TIMEOUT_S
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not (value >= 0 and value != float("inf")):
            raise StoreError(f"${LOCK_TIMEOUT_ENV}={raw!r} is invalid; accepted: seconds, a finite number >= 0")
        return value

    def _holder(self) -> str:
        info = _plain_json(self.owner) or {}
        if not info:
            return "another process (no owner file)"
        return f"pid {info.get('pid', '?')} on {info.get('host', '?')} since {info.get('since', '?')}"

    def __enter__(self) -> _WaitingLock:
        limit = self._limit()
        remedy = f"if no process uses the store, delete {self.path}"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _os_error(e, "run store lock folder", f"the locks live in {self.path.parent}") from None
        if self.path.is_symlink() or (self.path.exists() and not self.path.is_file()):
            raise StoreError(f"lock {self.path} is not a plain file (a link or a folder); {remedy}")
        lock = filelock.FileLock(str(self.path), mode=_file_mode())
        start = time.monotonic()
        told: float | None = None
        while True:
            waited = time.monotonic() - start
            try:
                lock.acquire(timeout=max(0.0, min(self.POLL_S, limit - waited)))
                break
            except filelock.Timeout:
                pass
            except OSError as e:
                raise _os_error(e, "run store lock", remedy) from None
            waited = time.monotonic() - start
            if waited >= limit:
                raise StoreError(
                    f"gave up after {waited:.0f} s waiting for {self.path}, held by {self._holder()}; wait for "
                    f"it, set ${LOCK_TIMEOUT_ENV} (seconds) to wait longer, or {remedy}"
                ) from None
            if told is None or waited - told >= self.REPEAT_S:
                print(
                    f"waiting for {self.path}: held by {self._holder()} (gives up after {limit:.0f} s, "
                    f"${LOCK_TIMEOUT_ENV})",
                    file=sys.stderr,
                    flush=True,
                )
                told = waited
        self._lock = lock
        info = {"pid": os.getpid(), "host": platform.node(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        try:
            atomic_write(self.owner, lambda f: f.write(json.dumps(info).encode()))
        except OSError:
            pass  # a read-only lock folder: the lock still works, the owner is just not named
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.owner.unlink(missing_ok=True)
        except OSError:
            pass
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # filelock-compatible names used by callers and tests
    def acquire(self, timeout: float | None = None) -> _WaitingLock:
        if timeout is not None:
            self.timeout = timeout
        return self.__enter__()

    def release(self) -> None:
        self.__exit__(None, None, None)

    @property
    def is_locked(self) -> bool:
        return self._lock is not None and self._lock.is_locked


def _build_model(config: TrainConfig) -> nn.Module:
    """The run's initial model, exactly as :func:`~sharpjac.training.train` builds it."""
    from .training import initial_model

    return initial_model(config)


class RunStore:
    """A folder of stored runs, keyed by :func:`config_key` (layout and guarantees: module docstring).

    Args:
        root: folder (default :func:`default_root`).
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root).expanduser() if root is not None else default_root()

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    # -- locations and checks ------------------------------------------------------------------

    def path(self, config: TrainConfig) -> Path:
        """Folder of the run of ``config``."""
        return self.root / config_key(config)

    def _remedy(self, folder: Path) -> str:
        return f"delete {folder} or use force=True / --force"

    def check_writable(self) -> None:
        """Create the root if needed and prove a file can be written there; StoreError otherwise."""
        root = self.root
        hint = f"set ${CACHE_ENV} or --cache to a writable folder"
        if root.exists() and not root.is_dir():
            raise StoreError(f"run store {root} is a file, not a folder; {hint}")
        try:
            root.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=root)
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            raise StoreError(f"run store {root} is not writable ({e.strerror or e}); {hint}") from None

    def lock(self, config: TrainConfig, timeout: float | None = None) -> _WaitingLock:
        """The per-run lock ``<root>/.locks/<key>.lock`` (use as a context manager).

        Args:
            timeout: seconds to wait for another holder (None: ``$SHARPJAC_LOCK_TIMEOUT``, else
                six hours); then a one-line :class:`StoreError`.
        """
        return self._lock(config_key(config), timeout)

    def _lock(self, name: str, timeout: float | None = None) -> _WaitingLock:
        return _WaitingLock(self.root / ".locks" / f"{name}.lock", timeout)

    def checkpointer(self, config: TrainConfig) -> _FileCheckpointer:
        """The checkpointer :func:`run` gives :func:`~sharpjac.training.train` for ``config``."""
        return _FileCheckpointer(self.path(config), config.to_dict())

    # -- runs ----------------------------------------------------------------------------------

    def has(self, config: TrainConfig) -> bool:
        """Whether the run is stored (its ``meta.json`` exists; :meth:`load` verifies it)."""
        path = self.path(config) / META
        try:
            return path.is_file()
        except OSError as e:
            raise _os_error(e, "run store", f"the store is {self.root}") from None

    def _missing(self, config: TrainConfig) -> KeyError:
        return KeyError(f"no stored run for this config in {self.root} (key {config_key(config)[:12]})")

    def meta(self, config: TrainConfig) -> dict:
        """The verified ``meta.json`` (versions, status, wall times, file checksums).

        Besides its checksums, the meta must describe *this* run: its key equals the folder's name
        and the key of ``config``, and its configuration equals ``config``; a folder copied or
        renamed under another run's key is a :class:`StoreError`, never served as that run. So is
        a run whose recorded data digest (``data_sha256``) is not the digest of the data this
        config loads now (:func:`sharpjac.training.data_digest`, computed once per process and
        data set): a run on other data is never served as this one.
        """
        if not self.has(config):
            raise self._missing(config)
        p = self.path(config)
        meta = _read_verified_json(p / META, self._remedy(p))
        if not isinstance(meta.get("files"), dict) or RECORD not in meta["files"]:
            raise StoreError(f"{p / META} lists no file checksums (written by an older sharpjac); {self._remedy(p)}")
        if meta.get("key") != p.name or meta.get("config") != config.to_dict():
            raise StoreError(
                f"{p / META} describes another run (key {str(meta.get('key'))[:12]}, folder {p.name[:12]}: "
                f"copied or renamed under this key?); {self._remedy(p)}"
            )
        now = data_digest(config)
        if meta.get("data_sha256") != now:
            raise StoreError(
                f"{p / META} records a run on other data (data SHA-256 {str(meta.get('data_sha256'))[:12]}, "
                f"this config's data now {now[:12]}: the data set changed since it was stored?); {self._remedy(p)}"
            )
        return meta

    def load(self, config: TrainConfig) -> pd.DataFrame:
        """The verified record; ``attrs``: config, status, diverged, diverged_at_step, key, sharpness_points,
        jacobian_points (points each measurement used), source="store".

        Raises:
            KeyError: not stored. StoreError: a file is damaged or unreadable.
        """
        meta = self.meta(config)
        p = self.path(config)
        data = _read_checked(p / RECORD, meta["files"].get(RECORD), self._remedy(p))
        try:
            df = pd.read_parquet(io.BytesIO(data))
        except Exception as e:  # noqa: BLE001 - checksum matched but parquet refused: still a damaged run
            raise StoreError(
                f"{p / RECORD} cannot be read as parquet ({type(e).__name__}); {self._remedy(p)}"
            ) from None
        df.attrs = {
            "config": meta["config"],
            "status": meta["status"],
            "diverged": meta["diverged"],
            "diverged_at_step": meta.get("diverged_at_step"),
            "key": meta["key"],
            "sharpness_points": meta.get("sharpness_points"),
            "jacobian_points": meta.get("jacobian_points"),
            "source": "store",
        }
        return df

    def model_steps(self, config: TrainConfig) -> list[int]:
        """The steps whose network state is stored (the final step is always among them)."""
        return [int(s) for s in self.meta(config).get("model_steps", [])]

    def load_state(self, config: TrainConfig, step: int | None = None) -> dict[str, torch.Tensor]:
        """The verified state dict (CPU tensors) after ``step`` updates (None: the final state)."""
        meta = self.meta(config)
        p = self.path(config)
        stored = [int(s) for s in meta.get("model_steps", [])]
        if step is None:
            step = meta.get("final_step")
            if step is None:
                raise StoreError(f"{p / META} records no final network; {self._remedy(p)}")
        if not isinstance(step, (int, np.integer)) or isinstance(step, bool) or int(step) not in stored:
            raise ValueError(f"step={step!r} is not stored for this run; accepted: None (final) or one of {stored}")
        name = f"model-{int(step)}.pt"
        data = _read_checked(p / name, meta["files"].get(name), self._remedy(p))
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            raise StoreError(f"{p / name} cannot be loaded safely ({type(e).__name__}); {self._remedy(p)}") from None
        if not isinstance(state, dict):
            raise StoreError(f"{p / name} is not a state dict; {self._remedy(p)}")
        return state

    def load_model(self, config: TrainConfig, step: int | None = None) -> nn.Module:
        """The run's network after ``step`` updates (None: final), on the config's device and dtype."""
        state = self.load_state(config, step)
        model = _build_model(config)
        model.load_state_dict(state)
        return model

    def save(self, config: TrainConfig, result: TrainResult) -> Path:
        """Write the record and every network snapshot, then the meta (atomic each); drop checkpoints."""
        p = self.path(config)
        p.mkdir(parents=True, exist_ok=True)
        files = {RECORD: _write_bytes(p / RECORD, _parquet_bytes(result.frame, index=False))}
        steps = []
        for step, state in sorted(result.snapshots.items()):
            cpu = {k: (v.detach().cpu().clone() if isinstance(v, torch.Tensor) else v) for k, v in state.items()}
            name = f"model-{int(step)}.pt"
            files[name] = _write_bytes(p / name, _torch_bytes(cpu))
            steps.append(int(step))
        meta = {
            "key": config_key(config),
            "config": config.to_dict(),
            "code_digest": code_digest(RUN_ENTRY),
            "data_sha256": result.frame.attrs.get("data_sha256"),
            "sharpness_points": result.frame.attrs.get("sharpness_points"),
            "jacobian_points": result.frame.attrs.get("jacobian_points"),
            "files": files,
            "model_steps": steps,
            "final_step": int(result.steps) if int(result.steps) in steps else None,
            "sharpjac_version": __version__,
            "torch_version": torch.__version__,
            "numpy_version": np.__version__,
            "pandas_version": pd.__version__,
            "python_version": sys.version.split()[0],
            "platform": platform.platform(),
            "device": str(resolve_device(config.device)),
            "status": result.status,
            "diverged": bool(result.diverged),
            "diverged_at_step": result.frame.attrs.get("diverged_at_step"),
            "message": result.message,
            "steps": int(result.steps),
            "rows": len(result.frame),
            "wall_time_s": result.wall_time_s,
            "measure_time_s": result.measure_time_s,
            "resumed_from": result.resumed_from,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        _write_verified_json(p / META, meta)
        self.checkpointer(config).clear()
        return p

    def delete(self, config: TrainConfig) -> None:
        """Forget the run (record, networks, meta, artefacts and checkpoints)."""
        shutil.rmtree(self.path(config), ignore_errors=True)

    # -- runs and studies of other code ----------------------------------------------------------

    def stale(self) -> list[tuple[Path, str]]:
        """``(folder or file, why)`` of everything in the store that the current code never reads:
        runs, studies and artefacts of another code version (or package version, or damaged
        beyond reading their meta). Nothing is changed. See :meth:`prune`."""
        return stale_entries(self.root)

    def prune(self) -> list[tuple[Path, str]]:
        """Delete what :meth:`stale` lists (each under its lock); return it."""
        gone = []
        for path, why in self.stale():
            if path.parent.name == "studies":
                name = f"study-{path.name}"
            else:
                name = path.name if path.is_dir() else path.parent.parent.name
            with self._lock(name, timeout=60):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            gone.append((path, why))
        return gone

    # -- derived results -----------------------------------------------------------------------

    def study(
        self,
        name: str,
        spec: Mapping,
        compute: Callable[[], pd.DataFrame | Mapping[str, pd.DataFrame]],
        *,
        code: str | tuple[str, ...] | None = None,
    ) -> pd.DataFrame | dict[str, pd.DataFrame]:
        """A derived table (or tables) that trains nothing, computed once and then loaded, verified.

        Keyed by the SHA-256 of the canonical JSON of ``{name, spec, sharpjac version}`` and kept in
        ``<root>/studies/<name>-<key16>/``: one parquet per table and a ``meta.json`` holding their
        checksums and each table's JSON-serialisable ``attrs`` (others are dropped).

        Args:
            name: a file-name-safe label (letters, digits, ``_ . -``).
            spec: JSON-serialisable mapping of everything the result depends on.
            compute: builds the result: a DataFrame or a mapping ``{table name: DataFrame}``.
            code: the module(s) whose code computes it (their import closure is in the key,
                :mod:`sharpjac.codekey`); default: ``compute``'s module when it is a ``sharpjac``
                module, else every experiment.

        Returns:
            The same kind of object ``compute`` returns (read back from the store).
        """
        modules = _code_modules(code, compute)
        digest = code_digest(modules)
        folder, key, spec_j = self.study_folder(name, spec, code=modules)
        if (folder / META).is_file():
            return self._load_study(folder)
        self.check_writable()
        with self._lock(f"study-{name}-{key[:16]}"):
            if (folder / META).is_file():
                return self._load_study(folder)
            result = compute()
            if code_digest(modules) != digest:
                # the package was edited while compute() ran: the result may mix two versions of the
                # code, and the key names only the first, so it is not stored under it
                raise StoreError(
                    f"study {name!r}: the package's code changed while it was computed (was it edited "
                    "meanwhile?); the result is not stored: run again"
                )
            if isinstance(result, pd.DataFrame):
                kind, tables = "frame", {"frame": result}
            elif isinstance(result, Mapping) and all(isinstance(v, pd.DataFrame) for v in result.values()):
                kind, tables = "tables", {_check_name(k, "table name"): v for k, v in result.items()}
            else:
                raise ValueError(
                    f"study {name!r}: compute() returned {type(result).__name__}; accepted: a DataFrame "
                    "or a mapping of table names to DataFrames"
                )
            folder.mkdir(parents=True, exist_ok=True)
            files = {
                f"{t}.parquet": _write_bytes(folder / f"{t}.parquet", _parquet_bytes(df, index=None))
                for t, df in tables.items()
            }
            meta = {
                "name": name,
                "spec": spec_j,
                "code": list(modules),
                "code_digest": digest,
                "key": key,
                "kind": kind,
                "tables": list(tables),
                "files": files,
                "attrs": {t: _json_safe_attrs(df.attrs) for t, df in tables.items()},
                "sharpjac_version": __version__,
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            _write_verified_json(folder / META, meta)
        return self._load_study(folder)

    def study_folder(self, name: str, spec: Mapping, code: Any = None) -> tuple[Path, str, Any]:
        """Where :meth:`study` keeps ``(name, spec)`` computed by ``code``: ``(folder, key, spec as
        JSON)``; nothing is read."""
        _check_name(name, "name")
        spec_j = _spec_json(spec, "spec")
        key = _study_key(name, spec_j, _code_modules(code, None))
        return self.root / "studies" / f"{name}-{key[:16]}", key, spec_j

    def delete_study(self, name: str, spec: Mapping, *, code: Any = None) -> None:
        """Forget a cached study (the next :meth:`study` call computes it again)."""
        folder, key, _ = self.study_folder(name, spec, code=code)
        with self._lock(f"study-{name}-{key[:16]}"):
            shutil.rmtree(folder, ignore_errors=True)

    def _load_study(self, folder: Path) -> pd.DataFrame | dict[str, pd.DataFrame]:
        remedy = f"delete {folder}"
        meta = _read_verified_json(folder / META, remedy)
        code = meta.get("code")
        if isinstance(code, list) and meta.get("code_digest") not in (None, code_digest(tuple(code))):
            raise StoreError(
                f"{folder / META} was computed by other code than the package's now (was the package edited "
                f"while it ran?); nothing is read from it: run again, or {remedy}"
            )
        if (
            not isinstance(code, list)
            or meta.get("key") != _study_key(meta.get("name"), meta.get("spec"), tuple(code))
            or folder.name != f"{meta.get('name')}-{str(meta.get('key'))[:16]}"
        ):
            raise StoreError(f"{folder / META} describes another study (copied or renamed?); {remedy}")
        out = {}
        for t in meta["tables"]:
            fname = f"{t}.parquet"
            data = _read_checked(folder / fname, meta["files"].get(fname), remedy)
            try:
                df = pd.read_parquet(io.BytesIO(data))
            except Exception as e:  # noqa: BLE001
                raise StoreError(f"{folder / fname} cannot be read as parquet ({type(e).__name__}); {remedy}") from None
            df.attrs = dict(meta["attrs"].get(t, {}))
            out[t] = df
        return out["frame"] if meta["kind"] == "frame" else out

    def artefact(
        self,
        config: TrainConfig,
        name: str,
        spec: Mapping,
        compute: Callable[[], Mapping[str, Any]],
        *,
        code: str | tuple[str, ...] | None = None,
    ) -> dict:
        """Derived values of a stored run (e.g. end-of-training measurements of its network), cached.

        Kept in ``<root>/<key>/artefacts/<name>-<h>.json`` (``h``: 16 hex digits of the SHA-256 of
        ``{name, spec, code}``, ``code`` the digest of the computing module's import closure, as for
        :meth:`study`) with a self-checksum; computed under the run's lock.

        Args:
            config: a stored run (KeyError if it is not stored).
            name: a file-name-safe label; spec: JSON-serialisable mapping the values depend on.
            compute: returns a mapping of JSON-serialisable values (NaN allowed).

        Returns:
            The values as a dict (read back from the store).
        """
        _check_name(name, "name")
        spec_j = _spec_json(spec, "spec")
        if not self.has(config):
            raise self._missing(config)
        modules = _code_modules(code, compute)
        h = _artefact_hash(name, spec_j, modules)
        path = self.path(config) / "artefacts" / f"{name}-{h}.json"
        remedy = f"delete {path}"
        if path.is_file():
            return _read_verified_json(path, remedy)["values"]
        self.check_writable()
        with self.lock(config):
            if not path.is_file():
                values = compute()
                if not isinstance(values, Mapping):
                    raise ValueError(
                        f"artefact {name!r}: compute() returned {type(values).__name__}; accepted: a "
                        "mapping of JSON-serialisable values"
                    )
                values_j = _spec_json(values, f"artefact {name!r} values")
                _write_verified_json(
                    path,
                    {
                        "name": name,
                        "spec": spec_j,
                        "code": list(modules),
                        "values": values_j,
                        "sharpjac_version": __version__,
                    },
                )
        return _read_verified_json(path, remedy)["values"]


def as_store(store) -> RunStore | None:
    """The store meant by a ``store=`` argument: None -> the default store, False -> None (keep
    nothing), a path -> a :class:`RunStore` there, a :class:`RunStore` -> itself."""
    if store is None:
        return RunStore()
    if store is False:
        return None
    if isinstance(store, RunStore):
        return store
    if isinstance(store, (str, os.PathLike)):
        return RunStore(store)
    raise TypeError(
        f"store must be a RunStore, a path, None (default store) or False (no store), got {type(store).__name__}"
    )


def run(config: TrainConfig, *, store=None, force: bool = False, progress: bool | None = None) -> pd.DataFrame:
    """Return the record of ``config``: from the store when present, else by training (and storing).

    A stored run is verified and loaded without writing anything. Otherwise the store is checked
    writable before any training, the per-run lock is taken, the store is checked again (another
    process may have finished the run meanwhile), and the run is trained (resuming from its
    newest good checkpoint) and saved.

    Args:
        config: the run.
        store: a :class:`RunStore`, a folder path, None (the default store) or False (train and
            keep nothing).
        force: retrain even if stored (discarding the stored run and any checkpoint).
        progress: tqdm bar (None: automatic).

    Returns:
        The DataFrame; ``attrs``: config, status, diverged, diverged_at_step, key, and ``source``
        (``"store"`` if loaded, ``"trained"`` if trained by this call).

    Raises:
        StoreError: the stored run is damaged (delete its folder or use ``force=True``), or the
            store is not writable when training is needed.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    st = as_store(store)
    if st is None:
        df = train(config, progress=progress).frame
        df.attrs["source"] = "trained"
        return df
    if not force and st.has(config):
        return st.load(config)
    st.check_writable()
    try:
        with st.lock(config):
            if force:
                st.delete(config)
            elif st.has(config):  # another process stored it while we waited
                return st.load(config)
            result = train(config, checkpointer=st.checkpointer(config), progress=progress)
            st.save(config, result)
            df = st.load(config)
    except OSError as e:
        p = st.path(config)
        raise _os_error(e, "run store", f"the run resumes from its last checkpoint in {p} when run again") from None
    df.attrs["source"] = "trained"
    return df
