r"""The data sets of the book (book chapter *The data in this book*): summaries, class counts and
the generated ``manifold`` sets in coordinates that can be drawn.

Nothing is trained. The study loads ``mnist5k``, ``digits`` and three ``manifold`` sets (a curve
:math:`d=1` in :math:`\mathbb R^2`, a surface :math:`d=2` in :math:`\mathbb R^3`, and a surface
:math:`d=2` in :math:`\mathbb R^{16}`) through :func:`sharpjac.data.load` and tabulates what the
chapter shows. CIFAR is not part of the study: whether its archives are present is a property of
the machine, not of the configuration, so the chapter asks the loader directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from ..claims import choose
from . import register
from ._chapter import ChapterSummary
from .base import StudyConfig

NAME = "data"


@dataclass(frozen=True)
class DataConfig(StudyConfig):
    r"""Sizes of the data sets the chapter loads.

    Attributes:
        n_train, n_test: ``mnist5k`` split (``digits`` uses at most 1,400 / 397 of them).
        n_points: training points of each generated ``manifold`` set.
        data_seed: seed of the splits and of the generated latents. ``seeds``, ``device`` and
            ``threads`` are not used (nothing is trained); ``dtype`` is that of the loaded inputs.
    """

    n_train: int = 4000
    n_test: int = 1000
    n_points: int = 2000

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(n_train=500, n_test=200, n_points=400),
        "quick": dict(n_train=4000, n_test=1000, n_points=2000),
        "paper": dict(n_train=4000, n_test=1000, n_points=2000),
    }

    def _check(self) -> None:
        self._need_positive("n_train", "n_test", "n_points")
        self._need(
            self.n_train + self.n_test <= 5000,
            "n_train",
            f"an int with n_train + n_test <= 5000 (mnist5k has 5,000 images; n_test={self.n_test})",
        )

    def _loads(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """``{label: (data set, options)}`` of everything the study loads."""
        pts = {"n_train": self.n_points, "n_test": 10}
        return {
            "mnist5k": ("mnist5k", {"n_train": self.n_train, "n_test": self.n_test}),
            "digits": ("digits", {"n_train": min(self.n_train, 1400), "n_test": min(self.n_test, 397)}),
            "curve": ("manifold", {"d": 1, "n": 2, **pts}),
            "surface": ("manifold", {"d": 2, "n": 3, **pts}),
            "surface16": ("manifold", {"d": 2, "n": 16, **pts}),
        }

    def compute(self, *, store, progress: bool | None) -> dict[str, pd.DataFrame]:
        r"""Tables:

        * ``datasets``: one row per loaded set (``label``: mnist5k, digits, curve, surface,
          surface16): ``name, n_train, n_test, num_classes, input_shape, description``,
          ``pixel_mean, pixel_std`` (the raw training statistics used to standardise the image
          sets; NaN for generated data), ``d, n, lipschitz`` (:math:`L_g`) and
          ``target_lipschitz`` (:math:`L^*`) for generated data (NaN otherwise);
        * ``class_counts``: ``label, class, train, test`` (images per class in each split);
        * ``curve``: the curve's training points ``x1, x2, label``;
        * ``surface``: the surface's training points ``x1, x2, x3, label``;
        * ``principal_components``: the 16-dimensional surface projected on its first two
          principal components of the (centred) training points, ``pc1, pc2``, with the latent
          coordinates ``z1, z2`` of each point;
        * ``explained``: ``component`` (1..4) and ``fraction`` of the variance it carries.
        """
        from .. import data as _data

        dt = getattr(torch, self.dtype)
        loaded = {
            label: _data.load(name, seed=self.data_seed, dtype=dt, **opts)
            for label, (name, opts) in self._loads().items()
        }
        rows, counts = [], []
        for label, ds in loaded.items():
            ex = ds.extras
            generated = "generator" in ex
            rows.append(
                {
                    "label": label,
                    "name": ds.name,
                    "n_train": len(ds.y_train),
                    "n_test": len(ds.y_test),
                    "num_classes": int(ds.num_classes),
                    "input_shape": "x".join(str(int(s)) for s in ds.input_shape),
                    "description": ds.description,
                    "pixel_mean": np.nan if generated else float(ex["mean"]),
                    "pixel_std": np.nan if generated else float(ex["std"]),
                    "d": int(ex["d"]) if generated else -1,
                    "n": int(ex["n"]) if generated else -1,
                    "lipschitz": float(ex["lipschitz"]) if generated else np.nan,
                    "target_lipschitz": float(ex["target_lipschitz"]) if generated else np.nan,
                }
            )
            if not generated:
                train = np.bincount(ds.y_train.numpy(), minlength=ds.num_classes)
                test = np.bincount(ds.y_test.numpy(), minlength=ds.num_classes)
                counts += [
                    {"label": label, "class": c, "train": int(train[c]), "test": int(test[c])}
                    for c in range(ds.num_classes)
                ]
        curve, surface, high = loaded["curve"], loaded["surface"], loaded["surface16"]
        curve_df = pd.DataFrame(curve.x_train.double().numpy(), columns=["x1", "x2"])
        curve_df["label"] = curve.y_train.numpy()
        surface_df = pd.DataFrame(surface.x_train.double().numpy(), columns=["x1", "x2", "x3"])
        surface_df["label"] = surface.y_train.numpy()
        x = high.x_train.double()
        x = x - x.mean(0)
        _, s, vt = torch.linalg.svd(x, full_matrices=False)
        pcs = (x @ vt[:2].T).numpy()
        z = high.extras["latent_train"].double().numpy()
        explained = (s**2 / (s**2).sum())[:4].numpy()
        return {
            "datasets": pd.DataFrame(rows),
            "class_counts": pd.DataFrame(counts),
            "curve": curve_df,
            "surface": surface_df,
            "principal_components": pd.DataFrame({"pc1": pcs[:, 0], "pc2": pcs[:, 1], "z1": z[:, 0], "z2": z[:, 1]}),
            "explained": pd.DataFrame({"component": np.arange(1, len(explained) + 1), "fraction": explained}),
        }


def examples_by_class(labels: torch.Tensor, per_class: int, num_classes: int = 10) -> np.ndarray:
    """Indices of the first ``per_class`` examples of each class, ``[per_class, num_classes]``.

    >>> examples_by_class(torch.tensor([1, 0, 1, 0, 0]), 2, num_classes=2).tolist()
    [[1, 0], [3, 2]]
    """
    out = np.empty((per_class, num_classes), dtype=int)
    for c in range(num_classes):
        found = torch.nonzero(labels == c).flatten()[:per_class]
        if len(found) < per_class:
            raise ValueError(f"per_class={per_class}; accepted: at most {len(found)} (class {c} has that many)")
        out[:, c] = found.numpy()
    return out


def class_images(ds, per_class: int) -> np.ndarray:
    """The first ``per_class`` training images of each class, ready to draw.

    Returns:
        ``[per_class, num_classes, H, W]`` for one channel, ``[per_class, num_classes, H, W, 3]``
        for RGB; each image rescaled to [0, 1] by its own minimum and maximum.
    """
    index = examples_by_class(ds.y_train, per_class, int(ds.num_classes))
    x = ds.x_train[torch.as_tensor(index.ravel())].double()
    x = x[:, 0] if x.shape[1] == 1 else x.permute(0, 2, 3, 1)
    lo = x.flatten(1).min(1).values.view(-1, *[1] * (x.ndim - 1))
    hi = x.flatten(1).max(1).values.view(-1, *[1] * (x.ndim - 1))
    x = (x - lo) / (hi - lo).clamp_min(torch.finfo(x.dtype).tiny)
    return x.numpy().reshape(per_class, int(ds.num_classes), *x.shape[1:])


def summarise(results: dict[str, pd.DataFrame]) -> ChapterSummary:
    """The numbers the data chapter glues, from the study's tables.

    Returns:
        :class:`~sharpjac.experiments._chapter.ChapterSummary` with tables ``datasets`` (by
        label), ``counts`` (mnist5k's class counts; ``counts_long`` the same with columns ``class``,
        ``split``, ``images``), ``curve`` and ``surface`` (sorted by class) and
        ``principal_components``; values: the
        mnist5k sizes and raw pixel statistics, the largest difference (percentage points)
        between a class's share of the training and of the test split, the generators' constants,
        the digits description and the variance share of the first two principal components (%).
    """
    summary = results["datasets"].set_index("label")
    counts = results["class_counts"].query("label == 'mnist5k'")
    shares = counts["train"] / counts["train"].sum() - counts["test"] / counts["test"].sum()
    values: dict[str, Any] = {
        "mnist_train": int(summary.loc["mnist5k", "n_train"]),
        "mnist_test": int(summary.loc["mnist5k", "n_test"]),
        "mnist_mean": float(summary.loc["mnist5k", "pixel_mean"]),
        "mnist_std": float(summary.loc["mnist5k", "pixel_std"]),
        "max_share_diff": 100 * float(shares.abs().max()),
        "digits_description": str(summary.loc["digits", "description"]),
        "curve_lg": float(summary.loc["curve", "lipschitz"]),
        "surface_lg": float(summary.loc["surface", "lipschitz"]),
        "surface_lstar": float(summary.loc["surface", "target_lipschitz"]),
        "pc_explained": float(results["explained"]["fraction"].iloc[:2].sum()) * 100,
    }
    return ChapterSummary(
        tables={
            "datasets_shown": results["datasets"][
                ["label", "n_train", "n_test", "num_classes", "input_shape", "lipschitz", "target_lipschitz"]
            ].rename(
                columns={
                    "label": "data_set",
                    "lipschitz": "lipschitz_generated",
                    "target_lipschitz": "target_lipschitz_generated",
                }
            ),
            "datasets": summary,
            "counts": counts,
            # the same counts, one row per class and split, for side-by-side bars
            "counts_long": counts.melt(
                id_vars="class", value_vars=["train", "test"], var_name="split", value_name="images"
            ),
            # the generated sets' training points in class order (so that class 0 comes first in a legend)
            "curve": results["curve"].sort_values("label", kind="stable"),
            "surface": results["surface"].sort_values("label", kind="stable"),
            "principal_components": results["principal_components"],
        },
        values=values,
    )


def cifar_status(seed: int):
    """``(data set or None, Markdown sentence)``: whether CIFAR-10 can be loaded on this machine."""
    from .. import data as _data

    try:
        cifar = _data.load("cifar10", seed=seed, n_train=5000, n_test=1000)
    except FileNotFoundError:
        cifar = None
    text = (
        "CIFAR-10 is not available on the machine that built this page, so no CIFAR images are shown. "
        "To provide it, put the python-pickle archive `cifar-10-python.tar.gz` (or its extracted folder) in "
        "a folder named by `SHARPJAC_DATA`, pass `root=` to `sharpjac.data.load`, or allow "
        "`download=True` on a machine with network access."
        if cifar is None
        else f"CIFAR-10 is available on the machine that built this page: {cifar.description}"
    )
    return cifar, text


def seed_solution(config: DataConfig, seed: int) -> str:
    """The exercise's answer, computed: what changes between the loads of ``seed`` and another seed
    (3, or 4 when ``seed`` is 3), for mnist5k (split, class counts) and the surface (latents,
    :math:`L_g`)."""
    from .. import data as _data

    other = 3 if seed != 3 else 4
    mnist = _data.load("mnist5k", seed=seed, n_train=config.n_train, n_test=config.n_test)
    mnist_other = _data.load("mnist5k", seed=other, n_train=config.n_train, n_test=config.n_test)
    surface_other = _data.load("manifold", seed=other, d=2, n=3, n_train=config.n_points, n_test=10)
    surface_this = _data.load("manifold", seed=seed, d=2, n=3, n_train=config.n_points, n_test=10)
    same_counts = bool(
        (torch.bincount(mnist_other.y_train, minlength=10) == torch.bincount(mnist.y_train, minlength=10)).all()
    )
    same_split = bool(torch.equal(mnist_other.x_train, mnist.x_train))
    same_lipschitz = float(surface_other.extras["lipschitz"]) == float(surface_this.extras["lipschitz"])
    same_latents = bool(torch.equal(surface_other.extras["latent_train"], surface_this.extras["latent_train"]))
    return (
        f"Computed for seed {seed} against seed {other}: the MNIST training images "
        + choose(same_split, "are the same", "differ")
        + ", the class counts "
        + choose(same_counts, "are the same (the split is stratified)", "differ")
        + ", the surface's latent points "
        + choose(same_latents, "are the same", "differ")
        + ", and its generator constant $L_g$ "
        + choose(same_lipschitz, "is the same", "differs")
        + ". $L_g$ and $L^*$ depend on the generator's own seed (`generator_seed`), not on `seed`."
    )


def chapter_configs(preset: str, seed: int) -> list[DataConfig]:
    """The chapter's one study: the preset's sizes, splits and latents drawn with ``data_seed = seed``."""
    return [DataConfig.from_preset(preset, data_seed=seed)]


EXPERIMENT = register(
    NAME,
    DataConfig,
    "the book's data sets: sizes, class counts, pixel statistics, the generated manifolds",
    chapter="The data in this book",
    chapter_configs=chapter_configs,
)
