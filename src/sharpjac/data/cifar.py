"""``cifar10`` / ``cifar100``: the standard python-pickle archives read from a local folder (md5
checked, extracted safely), downloaded only when ``download=True``.

Every form the data can take is verified before it is read: the archive against the published md5
of the archive, an extracted folder file by file against the published md5 of each batch (the
values torchvision also uses), or, for a folder this module extracted from a verified archive,
against the md5s it recorded then (``.sharpjac-verified.json``). A folder that does not match is
never read: a verified archive beside it is extracted in its place (the folder is moved aside to
``<folder>.mismatch-<n>``, nothing is deleted), else the load is refused in one line."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import pathlib
import pickle
import shutil
import tarfile
import tempfile
import types
import urllib.request
from typing import Any

import numpy as np
import torch

from .. import validation as V
from ._common import (
    Dataset,
    _check_classes,
    _label_noise,
    _noise_extras,
    _remap,
    _resolve_sizes,
    _stratified_pick,
    _torch_generator,
)

_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"
# md5 of the official archives; module-level so tests can patch it.
_CIFAR_MD5 = {
    "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
    "cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85",
}


# md5 of the files of the official extracted folders (published with the archives; torchvision's
# table); module-level so tests can patch it.
_CIFAR_FILE_MD5 = {
    "cifar-10-batches-py": {
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    },
    "cifar-100-python": {
        "train": "16019d7e3df5f24257cddd939b257f8d",
        "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
        "meta": "7973b15100ade9c7d40fb424638fde48",
    },
}
_VERIFIED = ".sharpjac-verified.json"
#: Written beside a toy CIFAR-10 by :func:`sharpjac.rehearsal.write_toy_cifar` (the md5 of each of its
#: files). It is honoured only while the paper rehearsal is on (``$SHARPJAC_REHEARSAL=1``, the value of
#: ``sharpjac.rehearsal.ENV``; a test checks they agree), so toy images never stand in for CIFAR-10.
TOY_MARKER = ".sharpjac-toy.json"
_REHEARSAL_ENV = "SHARPJAC_REHEARSAL"


@dataclasses.dataclass(frozen=True)
class _CifarLayout:
    archive: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    train_total: int
    test_total: int


_CIFAR = {
    "cifar10": _CifarLayout(
        "cifar-10-python.tar.gz",
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        "batches.meta",
        50000,
        10000,
    ),
    "cifar100": _CifarLayout(
        "cifar-100-python.tar.gz", "cifar-100-python", ("train",), ("test",), "meta", 50000, 10000
    ),
}


def _data_root(root: Any) -> tuple[pathlib.Path, str]:
    """(folder, how it was chosen)."""
    if root is not None:
        if not isinstance(root, (str, os.PathLike)):
            raise ValueError(f"root={root!r} must be a path (str or os.PathLike) or None")
        return pathlib.Path(root).expanduser(), "root= argument"
    env = os.environ.get("SHARPJAC_DATA")
    if env:
        return pathlib.Path(env).expanduser(), "SHARPJAC_DATA environment variable"
    return pathlib.Path("~/.cache/sharpjac/data").expanduser(), "default (SHARPJAC_DATA unset)"


def _md5(path: pathlib.Path) -> str:
    st = path.stat()
    return _md5_cached(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=64)
def _md5_cached(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify_archive(path: pathlib.Path) -> None:
    expected = _CIFAR_MD5[path.name]
    actual = _md5(path)
    if actual != expected:
        raise ValueError(
            f"checksum mismatch for {str(path)!r}: expected md5 {expected}, got {actual}; "
            "the file is corrupt or incomplete - delete it and provide a fresh copy"
        )


def _folder_mismatch(layout: _CifarLayout, folder: pathlib.Path) -> str | None:
    """None when every file of the extracted ``folder`` has its expected md5, else why not."""
    expected = dict(_CIFAR_FILE_MD5[layout.folder])
    if (folder / TOY_MARKER).is_file():
        if os.environ.get(_REHEARSAL_ENV, "").strip() != "1":
            return (
                f"{str(folder)!r} holds a toy CIFAR-10 written by the paper rehearsal; it is read only while "
                f"${_REHEARSAL_ENV}=1 (make rehearse)"
            )
        try:
            expected = dict(json.loads((folder / TOY_MARKER).read_text())["files"])
        except (OSError, ValueError, KeyError, TypeError):
            return f"{str(folder / TOY_MARKER)!r} cannot be read; write the toy data again (make rehearse)"
    try:
        marker = json.loads((folder / _VERIFIED).read_text())
        if marker.get("archive_md5") == _CIFAR_MD5[layout.archive] and isinstance(marker.get("files"), dict):
            expected = dict(marker["files"])  # extracted here from a verified archive
    except (OSError, ValueError, AttributeError):
        pass
    for name in layout.train_files + layout.test_files + (layout.meta_file,):
        path = folder / name
        if not path.is_file():
            if name == layout.meta_file:
                continue
            return f"{str(path)!r} is missing"
        actual = _md5(path)
        if actual != expected.get(name):
            return f"{str(path)!r} has md5 {actual}, expected {expected.get(name)} (published checksum)"
    return None


def _safe_extract(archive: pathlib.Path, dest: pathlib.Path, folder: str) -> pathlib.Path:
    """Extract ``archive`` into ``dest`` refusing links, devices, absolute paths and ``..``;
    extraction goes to a temporary folder first so an interrupted run leaves nothing half-made."""
    dest.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            base = tmp.resolve()
            for member in members:
                target = (base / member.name).resolve()
                if (
                    not (member.isfile() or member.isdir())
                    or os.path.isabs(member.name)
                    or ".." in pathlib.PurePosixPath(member.name).parts
                    or (target != base and base not in target.parents)
                ):
                    raise ValueError(f"unsafe member {member.name!r} in archive {str(archive)!r}; refusing to extract")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, members=members, filter="data")
            else:  # pragma: no cover - Python < 3.11.4
                tar.extractall(tmp, members=members)
        extracted = tmp / folder
        if not extracted.is_dir():
            raise ValueError(f"archive {str(archive)!r} does not contain the folder {folder!r}")
        record = {
            "archive": archive.name,
            "archive_md5": _md5(archive),
            "files": {p.name: _md5(p) for p in sorted(extracted.iterdir()) if p.is_file()},
        }
        (extracted / _VERIFIED).write_text(json.dumps(record, indent=1, sort_keys=True))
        final = dest / folder
        if not final.exists():
            os.replace(extracted, final)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _download(url: str, path: pathlib.Path) -> None:  # pragma: no cover - needs a network
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".download-", dir=path.parent)
    os.close(fd)
    try:
        urllib.request.urlretrieve(url, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _cifar_folder(layout: _CifarLayout, root: Any, download: bool) -> pathlib.Path:
    base, how = _data_root(root)
    candidates = [base / layout.folder]
    if base.name == layout.folder:  # root points at the extracted folder itself
        candidates.insert(0, base)
    mismatch = None
    for folder in candidates:
        if all((folder / f).is_file() for f in layout.train_files + layout.test_files):
            why = _folder_mismatch(layout, folder)
            if why is None:
                return folder
            mismatch = (folder, why)
            break
    archive = base / layout.archive
    if not archive.is_file() and download:
        _download(_CIFAR_URL + layout.archive, archive)
    if archive.is_file():
        _verify_archive(archive)
        if mismatch is not None and mismatch[0] == base / layout.folder:
            n = 1
            while (base / f"{layout.folder}.mismatch-{n}").exists():
                n += 1
            os.replace(mismatch[0], base / f"{layout.folder}.mismatch-{n}")  # kept, never read
        return _safe_extract(archive, base, layout.folder)
    if mismatch is not None:
        raise ValueError(
            f"the extracted CIFAR folder {str(mismatch[0])!r} does not match the published checksums: "
            f"{mismatch[1]}; delete it and provide a fresh copy, or the archive {layout.archive!r} beside it"
        )
    looked = [str(c) for c in candidates] + [str(archive)]
    raise FileNotFoundError(
        f"{layout.archive} not found. Looked in {looked} (data folder {str(base)!r} from the "
        f"{how}). Provide either the archive {layout.archive!r} or its extracted folder "
        f"{layout.folder!r} in a folder and set SHARPJAC_DATA to it or pass root=...; or pass "
        f"download=True where a network exists (fetches {_CIFAR_URL + layout.archive})."
    )


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler for the CIFAR batches: allows only what a numpy array needs."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module[len("numpy.core.") :]  # numpy 2 name, no warning
        return super().find_class(module, name)


def _read_batch(path: pathlib.Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            obj = _SafeUnpickler(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise ValueError(f"cannot read CIFAR batch {str(path)!r}: {err}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"CIFAR batch {str(path)!r} is not a dict")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _names(values: Any) -> tuple[str, ...]:
    return tuple(v.decode("latin1") if isinstance(v, bytes) else str(v) for v in values)


@functools.lru_cache(maxsize=2)
def _cifar_raw(folder: str, kind: str, label_key: str, stamp: tuple) -> dict[str, Any]:
    """Raw uint8 images [N, 3, 32, 32] and int64 labels of the official train and test sets."""
    layout = _CIFAR[kind]
    out: dict[str, Any] = {}
    for split, files in (("train", layout.train_files), ("test", layout.test_files)):
        xs, ys = [], []
        for f in files:
            path = pathlib.Path(folder) / f
            batch = _read_batch(path)
            if "data" not in batch or label_key not in batch:
                raise ValueError(f"CIFAR batch {str(path)!r} lacks 'data' or {label_key!r}; keys: {sorted(batch)}")
            data = np.asarray(batch["data"])
            labels = np.asarray(batch[label_key], dtype=np.int64)
            if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
                raise ValueError(
                    f"CIFAR batch {str(path)!r} has data {data.dtype} {data.shape} and "
                    f"{len(labels)} labels; expected uint8 [N, 3072] and N labels"
                )
            xs.append(data.reshape(-1, 3, 32, 32))
            ys.append(labels)
        x, y = np.concatenate(xs), np.concatenate(ys)
        x.setflags(write=False)
        y.setflags(write=False)
        out[split] = (x, y)
    meta_path = pathlib.Path(folder) / layout.meta_file
    names = None
    if meta_path.is_file():
        meta = _read_batch(meta_path)
        key = {"labels": "label_names", "fine_labels": "fine_label_names", "coarse_labels": "coarse_label_names"}[
            label_key
        ]
        if key in meta:
            names = _names(meta[key])
    out["names"] = names
    return out


def _channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-channel mean and (population) std of uint8 images ``[N, C, H, W]`` from
    256-bin histograms (no float copy of the data)."""
    levels = np.arange(256, dtype=np.float64)
    means, stds = [], []
    for c in range(x.shape[1]):
        counts = np.bincount(x[:, c].ravel(), minlength=256).astype(np.float64)
        total = counts.sum()
        mean = (counts * levels).sum() / total
        means.append(mean)
        stds.append(math.sqrt((counts * (levels - mean) ** 2).sum() / total))
    return np.array(means), np.array(stds)


def _load_cifar(name: str, seed: int, *, given: set[str], **opts: Any) -> Dataset:
    """``cifar10`` / ``cifar100`` from the official python-pickle archives in a local folder.

    Looks for the extracted folder (``cifar-10-batches-py`` / ``cifar-100-python``) in the data
    folder (``root=``, else ``$SHARPJAC_DATA``, else ``~/.cache/sharpjac/data``), then for the
    archive (``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``), whose md5 is checked before
    it is extracted (safely, next to it). ``download=True`` fetches the archive from
    ``https://www.cs.toronto.edu/~kriz/`` when neither is present.

    ``n_train`` / ``n_test`` take stratified random subsets of the official train (50,000) and
    test (10,000) sets. Standardisation is per channel with the training subset's statistics.

    extras: ``train_indices`` / ``test_indices`` (into the official train / test sets), ``mean``
    / ``std`` (per-channel tuples, 0..255 scale), ``standardized``, ``classes``, ``class_names``,
    ``folder`` (where the batches were read), ``label_mode`` (cifar100), ``label_noise``,
    ``noisy_mask``, ``y_train_clean``.
    """
    layout = _CIFAR[name]
    total_classes = 10
    label_key = "labels"
    label_mode = None
    if name == "cifar100":
        label_mode = V.one_of("label_mode", opts["label_mode"], ("fine", "coarse"))
        total_classes = 100 if label_mode == "fine" else 20
        label_key = f"{label_mode}_labels"
    classes = _check_classes(opts["classes"], total_classes, name)
    standardize = V.boolean("standardize", opts["standardize"])
    download = V.boolean("download", opts["download"])
    noise = V.fraction("label_noise", opts["label_noise"])
    for label in ("n_train", "n_test"):  # sizes that cannot be right whatever is on disk
        value = opts[label]
        cap = layout.train_total if label == "n_train" else layout.test_total
        if value is not None:
            value = V.positive_int(label, value)
        if value is not None and value > cap:
            raise ValueError(f"{label}={value!r} exceeds the {cap} images of {name!r}; accepted: 1..{cap}")
    dtype = opts["dtype"]

    folder = _cifar_folder(layout, opts["root"], download)
    files = layout.train_files + layout.test_files
    stamp = tuple(os.stat(folder / f).st_mtime_ns for f in files)
    raw = _cifar_raw(str(folder.resolve()), name, label_key, stamp)
    x_tr_all, y_tr_all = raw["train"]
    x_te_all, y_te_all = raw["test"]
    if y_tr_all.size and (y_tr_all.max() >= total_classes or y_tr_all.min() < 0):
        raise ValueError(f"labels in {str(folder)!r} fall outside 0..{total_classes - 1}")
    keep_tr, lab_tr = _remap(y_tr_all, classes)
    keep_te, lab_te = _remap(y_te_all, classes)
    num_classes = total_classes if classes is None else len(classes)
    n_train, n_test = _resolve_sizes(opts["n_train"], opts["n_test"], len(keep_tr), len(keep_te), name)
    gen = _torch_generator(seed, "split")
    tr = _stratified_pick(lab_tr, n_train, gen, num_classes)
    te = _stratified_pick(lab_te, n_test, gen, num_classes)
    train_idx, test_idx = keep_tr[tr], keep_te[te]
    xtr_u8, xte_u8 = x_tr_all[train_idx], x_te_all[test_idx]
    mean, std = _channel_stats(xtr_u8)
    xtr = torch.from_numpy(xtr_u8).to(dtype)
    xte = torch.from_numpy(xte_u8).to(dtype)
    if standardize:
        m_t = torch.tensor(mean, dtype=dtype).view(1, 3, 1, 1)
        s_t = torch.tensor(std, dtype=dtype).view(1, 3, 1, 1)
        xtr = (xtr - m_t) / s_t
        xte = (xte - m_t) / s_t
    y_clean = torch.from_numpy(lab_tr[tr].copy())
    ytr, mask = _label_noise(y_clean, num_classes, noise, seed)
    yte = torch.from_numpy(lab_te[te].copy())
    kept = tuple(range(total_classes)) if classes is None else classes
    all_names = raw["names"]
    class_names = (
        tuple(all_names[c] for c in kept) if all_names is not None and len(all_names) == total_classes else None
    )
    desc = (
        f"{name}: {n_train} train / {n_test} test images from {str(folder)!r}"
        + (f", {label_mode} labels" if label_mode else "")
        + f", {num_classes} classes, "
        + ("standardised per channel by train statistics" if standardize else "raw 0..255")
        + (f", {noise:.0%} train label noise" if noise else "")
    )
    extras = {
        "train_indices": torch.from_numpy(train_idx.copy()),
        "test_indices": torch.from_numpy(test_idx.copy()),
        "mean": tuple(float(v) for v in mean),
        "std": tuple(float(v) for v in std),
        "standardized": standardize,
        "classes": kept,
        "class_names": class_names,
        "folder": str(folder),
        **_noise_extras(y_clean, mask, noise),
    }
    if label_mode:
        extras["label_mode"] = label_mode
    return Dataset(name, xtr, ytr, xte, yte, num_classes, (3, 32, 32), desc, types.MappingProxyType(extras))
