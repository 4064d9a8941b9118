"""What every data source shares: the :class:`Dataset` type, seeding, stratified splits, label
noise, class subsets, and the loader of the grey-level image sets.

Private to :mod:`sharpjac.data`; see the book's chapter *The data in this book*.
"""

from __future__ import annotations

import dataclasses
import hashlib
import types
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from .. import validation as V

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


# ---------------------------------------------------------------------------------------------
# Seeding, sizes, splits, label noise and class subsets
# ---------------------------------------------------------------------------------------------


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
    n_train = None if n_train is None else V.positive_int("n_train", n_train)
    n_test = None if n_test is None else V.positive_int("n_test", n_test)
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
            f"n_test={n_test!r} exceeds the {available_test} test items of {name!r}; accepted: 1..{available_test}"
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


def _stratified_pick(
    labels: np.ndarray, count: int, gen: torch.Generator, num_classes: int, skip: np.ndarray | None = None
) -> np.ndarray:
    """Indices of a stratified random subset of ``count`` items (class shares kept to within one
    item); ``skip[c]`` items of class ``c`` are reserved (the first ones of its permutation)."""
    members = [np.flatnonzero(labels == c) for c in range(num_classes)]
    sizes = np.array([len(m) for m in members], dtype=np.float64)
    quota = _largest_remainder(count, sizes)
    picked = []
    for c, m in enumerate(members):
        perm = torch.randperm(len(m), generator=gen).numpy()
        start = 0 if skip is None else int(skip[c])
        picked.append(m[perm[start : start + quota[c]]])
    out = np.concatenate(picked)
    return out[torch.randperm(len(out), generator=gen).numpy()]


def _stratified_split(
    labels: np.ndarray, n_train: int, n_test: int, gen: torch.Generator, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
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
        test.append(perm[train_q[c] : train_q[c] + test_q[c]])
    train_idx, test_idx = np.concatenate(train), np.concatenate(test)
    train_idx = train_idx[torch.randperm(len(train_idx), generator=gen).numpy()]
    test_idx = test_idx[torch.randperm(len(test_idx), generator=gen).numpy()]
    return train_idx, test_idx


def _label_noise(y: torch.Tensor, num_classes: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
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


def _noise_extras(y_clean: torch.Tensor, mask: torch.Tensor, fraction: float) -> dict[str, Any]:
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
# Grey-level images (mnist5k and digits)
# ---------------------------------------------------------------------------------------------


def _load_grey(
    name: str,
    seed: int,
    raw_fn: Callable[[], tuple[np.ndarray, np.ndarray]],
    counts: tuple[int, ...] | None,
    side: int,
    source: str,
    opts: dict[str, Any],
) -> Dataset:
    """Shared loader of the grey-level sets; ``counts`` (images per class, if known without
    reading the data) lets the sizes be checked before anything is read."""
    classes = _check_classes(opts["classes"], 10, name)
    standardize = V.boolean("standardize", opts["standardize"])
    noise = V.fraction("label_noise", opts["label_noise"])
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
        + (f"standardised by train mean {mean:.2f} and std {std:.2f}" if standardize else "raw grey levels")
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
    return Dataset(name, xtr, ytr, xte, yte, num_classes, shape, desc, types.MappingProxyType(extras))
