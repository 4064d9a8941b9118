r"""Flat minima and generalisation: one shared grid behind six chapters (paper Figs. 2-5, a causal test).

The paper's Section 6 asks which end-of-training quantity follows the **generalisation gap**:
the sharpness :math:`s=\lambda_{\max}(\nabla^2_\theta\mathcal L)` or the Jacobian statistics of the
input-output Jacobian over the training sample. Six chapters vary one thing each around **one
baseline** and measure, at the end of every run,

* the gaps: ``gap_loss`` :math:`=\mathcal L_{\text{test}}-\mathcal L_{\text{train}}` and
  ``gap_acc`` :math:`=\text{acc}_{\text{train}}-\text{acc}_{\text{test}}` (data loss, without
  penalties or L2; label-smoothed runs use their smoothed loss on both sets);
* the sharpness and the four Jacobian statistics (from :func:`sharpjac.training.train`'s record);
* end-of-training extras that need the trained network, computed here
  (:func:`end_measurements`): the **local variation** of the Jacobian
  :math:`V_i=\sup_{x'\in B(x_i,r)}\|Jf(x')-Jf(x_i)\|_2` at a fixed set of training points
  (:func:`sharpjac.jacobians.local_variation`; its maximum and mean), and the Jacobian statistics
  on test points (how far the sample maximum is from the Jacobian on unseen data);
* two **baseline predictors** of the gap that need neither the Hessian nor the Jacobian: the
  mean output norm ``logit_norm`` :math:`=\frac1N\sum_i\|f(x_i)\|_2` and the mean logit margin
  ``margin`` :math:`=\frac1N\sum_i\big(f(x_i)_{y_i}-\max_{k\ne y_i}f(x_i)_k\big)` over the
  training points (beside ``train_loss`` and ``param_norm`` of the training record).

Sharing runs
------------
Every chapter's config subclasses :class:`GeneralisationConfig`, whose fields are the baseline;
all presets of all six chapters share the same baseline values (:data:`BASE_PRESETS`), and
:meth:`GeneralisationConfig.train_config` builds a :class:`~sharpjac.training.TrainConfig` from the
baseline plus the changes of a grid point, canonically. So a grid point that coincides with one
of another chapter (the baseline, the learning-rate runs, the large-rate or small-batch runs...)
has the same TrainConfig, the same run key, and is trained **once** for the whole book.

The extras are stored beside the run record in the run store
(``<store>/<key>/end-<hash>.json``, ``hash`` of the extras' settings). A run whose record is
stored but whose extras are not (e.g. trained by another experiment) is trained again to get its
network (training is deterministic, so the record is the same) and the extras are added.

Budgets and measurements
------------------------
``budget="epochs"`` trains ``max_epochs`` epochs; ``budget="updates"`` trains as many SGD updates
as the baseline does (``max_epochs * ceil(n_train / batch_size)``; expressed in whole epochs when
it divides, so that the baseline's batch size gives the baseline itself). Every run is measured at
``measure_linear`` evenly spaced steps and ``measure_log`` log-spaced steps (plus step 0 and the
last), relative to its own number of updates.

Presets are the project's own choices (the paper's hyper-parameters are not known). ``quick``:
1,000 real MNIST digits, a 100-100 tanh MLP, softmax cross-entropy, plain SGD (batch 100, step
0.2) for 30 epochs; ``paper``: CIFAR-10 with ResNet-18 (a GPU and a local copy of CIFAR-10).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from ..training import TrainConfig
from . import register
from .base import ExperimentConfig, architecture_options, run_experiment

__all__ = [
    "GeneralisationConfig",
    "WeightDecayConfig",
    "SamAugmentationConfig",
    "BatchSizeConfig",
    "LearningRateConfig",
    "RegularisersConfig",
    "CausalTestConfig",
    "BASE_PRESETS",
    "END_COLUMNS",
    "EndMeasurements",
    "end_measurements",
    "nearest_neighbour_radius",
    "final_measurements",
    "run_grid",
    "PREDICTORS",
    "BASELINES",
    "paired_values",
    "describe_setting",
    "gap_predictors",
]

#: End-of-training quantities the flat-minima chapters compare as predictors of the gap.
PREDICTORS = ("sharpness", "jac_spectral_max", "jac_spectral_mean", "jac_frobenius_max", "jac_frobenius_mean")
#: Baseline predictors beside them: they need neither the Hessian nor the input Jacobian.
BASELINES = ("train_loss", "param_norm", "logit_norm", "margin")

#: Columns added by :func:`end_measurements` (filled on each run's last row only).
END_COLUMNS = (
    "local_variation_max",
    "local_variation_mean",
    "test_jac_spectral_max",
    "test_jac_spectral_mean",
    "test_jac_frobenius_max",
    "test_jac_frobenius_mean",
    "variation_radius",
    "train_loss_unsmoothed",
    "test_loss_unsmoothed",
    "gap_loss_unsmoothed",
    "logit_norm",
    "margin",
)

#: Changes a grid point may make to the baseline (TrainConfig field names).
_CHANGEABLE = (
    "lr",
    "momentum",
    "batch_size",
    "weight_decay",
    "label_smoothing",
    "sam_rho",
    "augment",
    "jacobian_penalty",
)

BUDGETS = ("epochs", "updates")

#: The baseline of every chapter, per preset (the project's own choices).
BASE_PRESETS: dict[str, dict[str, Any]] = {
    "smoke": dict(
        n_train=200,
        n_test=200,
        widths=(16,),
        batch_size=50,
        max_epochs=2,
        measure_linear=1,
        measure_log=1,
        variation_centres=8,
        variation_samples=4,
        variation_ascent_steps=0,
        test_jacobian_points=100,
        seeds=(0,),
    ),
    "quick": dict(seeds=(0, 1, 2, 3, 4)),
    "paper": dict(
        dataset="cifar10",
        n_train=50000,
        n_test=10000,
        model="resnet18",
        lr=0.05,
        momentum=0.9,
        batch_size=128,
        max_epochs=50,
        measure_linear=10,
        measure_log=6,
        sharpness_subset=2048,
        jacobian_subset=512,
        variation_centres=128,
        variation_samples=16,
        variation_ascent_steps=2,
        test_jacobian_points=512,
        seeds=(0, 1, 2),
    ),
}


def _presets(axes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p: {**BASE_PRESETS[p], **axes.get(p, {})} for p in BASE_PRESETS}


def _is_num(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


@dataclass(frozen=True)
class GeneralisationConfig(ExperimentConfig):
    """The shared baseline of the generalisation chapters (subclasses add the grid axes).

    Attributes:
        dataset, n_train, n_test: data (``data_seed`` splits it).
        model: ``"mlp"`` (uses widths, activation), ``"small_cnn"`` (channels) or ``"resnet18"``
            (resnet_width).
        loss: ``"ce"`` or ``"mse"``.
        lr, momentum, batch_size, weight_decay, label_smoothing, sam_rho, augment: the baseline's
            SGD run (constant step; coupled L2 weight decay; SAM off at ``sam_rho=0``).
        max_epochs: epochs of the baseline (and of every ``budget="epochs"`` run).
        measure_linear: evenly spaced measurements per run (``total_steps // measure_linear``).
        measure_log: log-spaced measurements per run (0: none).
        sharpness_subset, jacobian_subset: training points for the Hessian / the Jacobian
            statistics (None: all).
        lanczos_tol, lanczos_max_iter: accuracy of the sharpness.
        variation_centres: training points at which the local variation is estimated.
        variation_samples, variation_ascent_steps: search effort of
            :func:`sharpjac.jacobians.local_variation`.
        variation_radius: radius :math:`r` of the balls (None: the median distance from a test
            point to its nearest training point, :func:`nearest_neighbour_radius`).
        test_jacobian_points: test points for the test-set Jacobian statistics.
    """

    dataset: str = "mnist5k"
    n_train: int = 1000
    n_test: int = 2000
    model: str = "mlp"
    widths: tuple[int, ...] = (100, 100)
    activation: str = "tanh"
    channels: tuple[int, ...] = (16, 32)
    resnet_width: float = 1.0
    loss: str = "ce"
    lr: float = 0.2
    momentum: float = 0.0
    batch_size: int = 100
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    sam_rho: float = 0.0
    augment: bool = False
    max_epochs: int = 30
    measure_linear: int = 4
    measure_log: int = 4
    sharpness_subset: int | None = None
    jacobian_subset: int | None = None
    lanczos_tol: float = 1e-3
    lanczos_max_iter: int = 30
    variation_centres: int = 100
    variation_samples: int = 16
    variation_ascent_steps: int = 2
    variation_radius: float | None = None
    test_jacobian_points: int = 1000

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = BASE_PRESETS

    # -- validation ---------------------------------------------------------------------------

    def _check(self) -> None:
        from .. import data
        from ..models import ACTIVATIONS

        self._need(self.dataset in data.available(), "dataset", f"one of {sorted(data.available())}")
        self._need(self.model in ("mlp", "small_cnn", "resnet18"), "model", "'mlp', 'small_cnn' or 'resnet18'")
        self._need(self.loss in ("ce", "mse"), "loss", "'ce' or 'mse'")
        self._need_positive(
            "n_train",
            "n_test",
            "widths",
            "channels",
            "resnet_width",
            "lr",
            "batch_size",
            "max_epochs",
            "measure_linear",
            "lanczos_tol",
            "lanczos_max_iter",
            "variation_centres",
            "variation_samples",
            "test_jacobian_points",
        )
        self._need(self.activation in ACTIVATIONS, "activation", f"one of {ACTIVATIONS}")
        self._need(0 <= self.momentum < 1, "momentum", "a float in [0, 1)")
        self._need(self.weight_decay >= 0, "weight_decay", "a float >= 0")
        self._need(0 <= self.label_smoothing < 1, "label_smoothing", "a float in [0, 1)")
        self._need(self.sam_rho >= 0, "sam_rho", "a float >= 0")
        self._need(isinstance(self.augment, bool), "augment", "True or False")
        self._need(isinstance(self.measure_log, int) and self.measure_log >= 0, "measure_log", "an int >= 0")
        self._need(
            isinstance(self.variation_ascent_steps, int) and self.variation_ascent_steps >= 0,
            "variation_ascent_steps",
            "an int >= 0",
        )
        for name in ("sharpness_subset", "jacobian_subset"):
            v = getattr(self, name)
            self._need(v is None or (isinstance(v, int) and v >= 1), name, "None (all points) or an int >= 1")
        self._need(
            self.variation_radius is None or (_is_num(self.variation_radius) and self.variation_radius > 0),
            "variation_radius",
            "None (nearest-neighbour radius) or a float > 0",
        )
        self._check_axes()

    def _check_axes(self) -> None:  # overridden by the chapters
        pass

    def _need_values(self, name: str, ok, accepted: str) -> None:
        v = getattr(self, name)
        self._need(
            isinstance(v, tuple) and len(v) > 0 and all(ok(x) for x in v), name, f"a non-empty tuple of {accepted}"
        )

    # -- building runs ------------------------------------------------------------------------

    def model_options(self) -> dict[str, Any]:
        return architecture_options(
            self.model,
            widths=self.widths,
            activation=self.activation,
            channels=self.channels,
            resnet_width=float(self.resnet_width),
        )

    def steps_per_epoch(self, batch_size: int | None = None) -> int:
        b = self.batch_size if batch_size is None else int(batch_size)
        return math.ceil(self.n_train / min(b, self.n_train))

    def baseline_steps(self) -> int:
        """SGD updates of the baseline: ``max_epochs * ceil(n_train / batch_size)``."""
        return self.max_epochs * self.steps_per_epoch()

    def train_config(self, seed: int, *, budget: str = "epochs", **changes) -> TrainConfig:
        """The TrainConfig of the baseline with ``changes`` (canonical: equal inputs, equal run key).

        Args:
            seed: the run's seed (initialisation, batch order, augmentation, subsets).
            budget: ``"epochs"`` (``max_epochs`` epochs) or ``"updates"`` (the baseline's number of
                updates; whole epochs when that divides).
            changes: TrainConfig fields among ``lr, momentum, batch_size, weight_decay,
                label_smoothing, sam_rho, augment, jacobian_penalty``.
        """
        unknown = sorted(set(changes) - set(_CHANGEABLE))
        if unknown:
            raise ValueError(f"changes {unknown} are not supported; accepted: {_CHANGEABLE}")
        if budget not in BUDGETS:
            raise ValueError(f"budget={budget!r} is invalid; accepted: {BUDGETS}")
        p: dict[str, Any] = {k: getattr(self, k) for k in _CHANGEABLE if k != "jacobian_penalty"}
        p["jacobian_penalty"] = 0.0
        p.update(changes)
        spe = self.steps_per_epoch(p["batch_size"])
        if budget == "epochs":
            epochs, steps = self.max_epochs, None
            total = epochs * spe
        else:
            total = self.baseline_steps()
            epochs, steps = (total // spe, None) if total % spe == 0 else (None, total)
        return TrainConfig(
            dataset=self.dataset,
            dataset_options={"n_train": self.n_train, "n_test": self.n_test},
            data_seed=self.data_seed,
            model=self.model,
            model_options=self.model_options(),
            loss=self.loss,
            label_smoothing=float(p["label_smoothing"]),
            optimizer="sgd",
            lr=float(p["lr"]),
            momentum=float(p["momentum"]),
            weight_decay=float(p["weight_decay"]),
            batch_size=int(p["batch_size"]),
            sam_rho=float(p["sam_rho"]),
            augment=bool(p["augment"]),
            jacobian_penalty=float(p["jacobian_penalty"]),
            max_epochs=epochs,
            max_steps=steps,
            measure_every=max(1, total // self.measure_linear),
            measure_num=self.measure_log or None,
            sharpness_subset=self.sharpness_subset,
            jacobian_subset=self.jacobian_subset,
            lanczos_tol=self.lanczos_tol,
            lanczos_max_iter=self.lanczos_max_iter,
            seed=int(seed),
            dtype=self.dtype,
            device=self.device,
            threads=self.threads,
            checkpoint_every=max(1, total // 5),
        )

    def baseline(self, seed: int) -> TrainConfig:
        """The baseline run of ``seed`` (shared by every chapter)."""
        return self.train_config(seed)

    def grid(self) -> list[tuple[dict[str, Any], TrainConfig]]:
        """The baseline alone (one run per seed); the chapters override this."""
        return [({"seed": s}, self.baseline(s)) for s in self.seeds]

    def workload(self) -> dict[str, float]:
        """Size of the grid, for cost estimates: distinct runs, SGD updates and measurements.

        ``gradient_passes`` counts one per update, two with SAM (two gradients per step) and
        three with the Jacobian penalty (a double backward pass), times the batch size over the
        baseline's: a proxy for compute in units of one baseline update.
        """
        from ..training import measurement_steps

        seen: dict[str, TrainConfig] = {}
        for _, tc in self.grid():
            seen.setdefault(json.dumps(tc.to_dict(), sort_keys=True), tc)
        updates = passes = measurements = 0.0
        for tc in seen.values():
            spe = self.steps_per_epoch(tc.batch_size)
            total = tc.max_steps if tc.max_steps is not None else tc.max_epochs * spe
            factor = (2.0 if tc.sam_rho > 0 else 1.0) * (3.0 if tc.jacobian_penalty > 0 else 1.0)
            updates += total
            passes += total * factor * min(tc.batch_size, self.n_train) / self.batch_size
            measurements += len(measurement_steps(tc, total, spe))
        return {"runs": float(len(seen)), "updates": updates, "gradient_passes": passes, "measurements": measurements}

    def end_spec(self, radius: float) -> dict[str, Any]:
        """Settings of the end-of-training extras (their hash names the stored file)."""
        return {
            "radius": float(f"{radius:.6g}"),
            "centres": self.variation_centres,
            "samples": self.variation_samples,
            "ascent_steps": self.variation_ascent_steps,
            "test_points": self.test_jacobian_points,
            "version": 3,
        }


# ------------------------------------------------------------------------------------------------
# The six chapters
# ------------------------------------------------------------------------------------------------


def _positive(x) -> bool:
    return _is_num(x) and x > 0


def _non_negative(x) -> bool:
    return _is_num(x) and x >= 0


@dataclass(frozen=True)
class WeightDecayConfig(GeneralisationConfig):
    """Weight decay x learning rate (paper Fig. 2): final gap, sharpness and Jacobian.

    Attributes:
        weight_decays: L2 coefficients (>= 0; 0 is the baseline's).
        lrs: SGD step sizes.
    """

    weight_decays: tuple[float, ...] = (0.0, 0.001, 0.003)
    lrs: tuple[float, ...] = (0.05, 0.2, 0.8)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = _presets(
        {
            "smoke": dict(weight_decays=(0.0, 0.01), lrs=(0.2, 0.8)),
            "paper": dict(weight_decays=(0.0, 5e-4, 2e-3), lrs=(0.01, 0.05, 0.2)),
        }
    )

    def _check_axes(self) -> None:
        self._need_values("weight_decays", _non_negative, "floats >= 0")
        self._need_values("lrs", _positive, "floats > 0")

    def grid(self):
        return [
            ({"lr": float(lr), "weight_decay": float(wd), "seed": s}, self.train_config(s, lr=lr, weight_decay=wd))
            for lr in self.lrs
            for wd in self.weight_decays
            for s in self.seeds
        ]


@dataclass(frozen=True)
class SamAugmentationConfig(GeneralisationConfig):
    """SAM radii x data augmentation on/off (probably paper Fig. 3).

    Attributes:
        sam_rhos: SAM radii :math:`\\rho` (0: plain SGD, the baseline).
        augments: augmentation off/on (random shifts of up to 2 pixels for MNIST; crops and flips
            for CIFAR).
    """

    sam_rhos: tuple[float, ...] = (0.0, 0.05, 0.2)
    augments: tuple[bool, ...] = (False, True)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = _presets(
        {
            "smoke": dict(sam_rhos=(0.0, 0.1)),
            "paper": dict(sam_rhos=(0.0, 0.05, 0.1)),
        }
    )

    def _check_axes(self) -> None:
        self._need_values("sam_rhos", _non_negative, "floats >= 0")
        self._need_values("augments", lambda v: isinstance(v, bool), "booleans")

    def grid(self):
        return [
            ({"sam_rho": float(r), "augment": bool(a), "seed": s}, self.train_config(s, sam_rho=r, augment=a))
            for a in self.augments
            for r in self.sam_rhos
            for s in self.seeds
        ]


@dataclass(frozen=True)
class BatchSizeConfig(GeneralisationConfig):
    """Batch size at a fixed number of epochs and at a fixed number of updates (paper Fig. 4).

    Attributes:
        batch_sizes: mini-batch sizes (the baseline's is where both budgets meet).
        lrs: step sizes (the paper's exception is the large-batch, high-rate corner).
        budgets: ``"epochs"`` and/or ``"updates"`` (see :meth:`GeneralisationConfig.train_config`).
    """

    batch_sizes: tuple[int, ...] = (50, 100, 500)
    lrs: tuple[float, ...] = (0.2, 0.8)
    budgets: tuple[str, ...] = BUDGETS

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = _presets(
        {
            "smoke": dict(batch_sizes=(50, 100), lrs=(0.2, 0.8)),
            "paper": dict(batch_sizes=(32, 128, 512), lrs=(0.05, 0.2)),
        }
    )

    def _check_axes(self) -> None:
        self._need_values("batch_sizes", lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, "ints > 0")
        self._need_values("lrs", _positive, "floats > 0")
        self._need_values("budgets", lambda v: v in BUDGETS, f"values in {BUDGETS}")

    def grid(self):
        return [
            (
                {"budget": b, "batch_size": int(bs), "lr": float(lr), "seed": s},
                self.train_config(s, budget=b, batch_size=bs, lr=lr),
            )
            for b in self.budgets
            for lr in self.lrs
            for bs in self.batch_sizes
            for s in self.seeds
        ]


@dataclass(frozen=True)
class LearningRateConfig(GeneralisationConfig):
    """Several step sizes, measured over training (paper Fig. 5, ICLR version).

    Attributes:
        lrs: SGD step sizes.
    """

    lrs: tuple[float, ...] = (0.05, 0.2, 0.8)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = _presets(
        {
            "smoke": dict(lrs=(0.2, 0.8)),
            "paper": dict(lrs=(0.01, 0.05, 0.2)),
        }
    )

    def _check_axes(self) -> None:
        self._need_values("lrs", _positive, "floats > 0")

    def grid(self):
        return [({"lr": float(lr), "seed": s}, self.train_config(s, lr=lr)) for lr in self.lrs for s in self.seeds]


#: The six regularisers of the later revision's Fig. 5, as (name, TrainConfig field, config attribute).
REGULARISERS = (
    ("label smoothing", "label_smoothing", "label_smoothings"),
    ("weight decay", "weight_decay", "weight_decays"),
    ("SAM", "sam_rho", "sam_rhos"),
    ("augmentation", "augment", "augments"),
    ("larger rate", "lr", "larger_lrs"),
    ("smaller batch", "batch_size", "smaller_batches"),
)


@dataclass(frozen=True)
class RegularisersConfig(GeneralisationConfig):
    """Six regularisers vs the baseline (paper Fig. 5, later revision).

    Each attribute lists the strengths used for one regulariser, applied alone to the baseline.

    Attributes:
        label_smoothings, weight_decays, sam_rhos: values > 0.
        augments: ``(True,)`` (augmentation on) or ``()`` to leave it out.
        larger_lrs: step sizes larger than the baseline's.
        smaller_batches: batch sizes smaller than the baseline's.
    """

    label_smoothings: tuple[float, ...] = (0.1,)
    weight_decays: tuple[float, ...] = (0.003,)
    sam_rhos: tuple[float, ...] = (0.2,)
    augments: tuple[bool, ...] = (True,)
    larger_lrs: tuple[float, ...] = (0.8,)
    smaller_batches: tuple[int, ...] = (50,)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = _presets(
        {
            "smoke": dict(
                label_smoothings=(0.1,),
                weight_decays=(0.01,),
                sam_rhos=(0.1,),
                larger_lrs=(0.8,),
                smaller_batches=(25,),
            ),
            "paper": dict(weight_decays=(5e-4,), sam_rhos=(0.05,), larger_lrs=(0.2,), smaller_batches=(32,)),
        }
    )

    def _check_axes(self) -> None:
        self._need(all(0 < v < 1 for v in self.label_smoothings), "label_smoothings", "floats in (0, 1)")
        self._need(all(_positive(v) for v in self.weight_decays), "weight_decays", "floats > 0")
        self._need(all(_positive(v) for v in self.sam_rhos), "sam_rhos", "floats > 0")
        self._need(all(v is True for v in self.augments), "augments", "() or (True,)")
        self._need(
            all(_positive(v) and v > self.lr for v in self.larger_lrs),
            "larger_lrs",
            f"floats > the baseline lr={self.lr}",
        )
        self._need(
            all(isinstance(v, int) and 0 < v < self.batch_size for v in self.smaller_batches),
            "smaller_batches",
            f"ints in (0, batch_size={self.batch_size})",
        )

    def grid(self):
        out = [({"regulariser": "baseline", "strength": 0.0, "seed": s}, self.baseline(s)) for s in self.seeds]
        for name, field, attr in REGULARISERS:
            for v in getattr(self, attr):
                for s in self.seeds:
                    out.append(
                        ({"regulariser": name, "strength": float(v), "seed": s}, self.train_config(s, **{field: v}))
                    )
        return out


@dataclass(frozen=True)
class CausalTestConfig(GeneralisationConfig):
    """The Jacobian penalty of Hoffman et al. (2019) at several strengths (beyond the paper).

    Attributes:
        penalties: coefficients :math:`\\lambda_J\\ge0` of :math:`\\lambda_J\\widehat{\\|Jf\\|_F^2}`
            (0: the baseline).
    """

    penalties: tuple[float, ...] = (0.0, 0.03, 0.3, 1.0)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = _presets(
        {
            "smoke": dict(penalties=(0.0, 0.1)),
            "paper": dict(penalties=(0.0, 0.01, 0.1)),
        }
    )

    def _check_axes(self) -> None:
        self._need_values("penalties", _non_negative, "floats >= 0")

    def grid(self):
        return [
            ({"jacobian_penalty": float(p), "seed": s}, self.train_config(s, jacobian_penalty=p))
            for p in self.penalties
            for s in self.seeds
        ]


# ------------------------------------------------------------------------------------------------
# End-of-training measurements
# ------------------------------------------------------------------------------------------------


def nearest_neighbour_radius(
    x_train: torch.Tensor, x_test: torch.Tensor, *, points: int = 500, chunk_size: int = 256
) -> float:
    r"""Median over test points of the Euclidean distance to the nearest training point.

    An empirical scale for the covering radius :math:`\delta` of the theorems: a test point is
    typically within this distance of the training sample.

    Args:
        x_train: ``[N, *input_shape]``; x_test: ``[M, *input_shape]`` (the first ``points`` are used).
        points: number of test points (>= 1).
        chunk_size: test points per distance block.
    """
    if not (isinstance(points, int) and points >= 1):
        raise ValueError(f"points={points!r} is invalid; accepted: an int >= 1")
    if x_train.ndim < 2 or x_test.ndim < 2 or x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(
            f"x_train and x_test must be batches of equal input shape, got {tuple(x_train.shape)} "
            f"and {tuple(x_test.shape)}"
        )
    if len(x_train) == 0 or len(x_test) == 0:
        raise ValueError("x_train and x_test must be non-empty")
    a = x_train.flatten(1).double()
    b = x_test[:points].flatten(1).double()
    mins = torch.cat([torch.cdist(b[i : i + chunk_size], a).min(dim=1).values for i in range(0, len(b), chunk_size)])
    return float(mins.median())


@dataclass(frozen=True)
class EndMeasurements:
    """What :func:`end_measurements` returns (see there); ``as_dict()`` keys are :data:`END_COLUMNS`."""

    local_variation_max: float
    local_variation_mean: float
    test_jac_spectral_max: float
    test_jac_spectral_mean: float
    test_jac_frobenius_max: float
    test_jac_frobenius_mean: float
    variation_radius: float
    train_loss_unsmoothed: float
    test_loss_unsmoothed: float
    gap_loss_unsmoothed: float
    logit_norm: float
    margin: float

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


def end_measurements(
    model: torch.nn.Module,
    x_train: torch.Tensor,
    x_test: torch.Tensor,
    *,
    radius: float,
    centres: int,
    samples: int,
    ascent_steps: int,
    test_points: int,
    seed: int,
    y_train: torch.Tensor | None = None,
    y_test: torch.Tensor | None = None,
    loss: str | None = None,
    chunk_size: int = 2048,
) -> EndMeasurements:
    r"""Measurements of a trained network that its training record does not hold.

    * ``local_variation_max`` / ``_mean``: max / mean over ``centres`` training points (a seeded
      random subset) of :func:`sharpjac.jacobians.local_variation` with radius ``radius``
      (a lower estimate of :math:`\sup_{x'\in B(x_i,r)}\|Jf(x')-Jf(x_i)\|_2`);
    * ``test_jac_*``: :func:`sharpjac.jacobians.jacobian_stats` on the first ``test_points`` test
      points;
    * ``variation_radius``: ``radius``;
    * with ``loss`` and the labels: ``train_loss_unsmoothed``, ``test_loss_unsmoothed`` (mean
      data loss **without** label smoothing on the whole training / test set) and their difference
      ``gap_loss_unsmoothed``. The training record's losses are the objective's (smoothed for a
      label-smoothed run), so these put every run's gap on the same loss;
    * ``logit_norm``: :math:`\frac1N\sum_{i=1}^N\|f(x_i)\|_2` over the whole training set
      (outputs ``[N, K]``);
    * ``margin`` (needs ``y_train``; NaN without): :math:`\frac1N\sum_{i=1}^N\big(f(x_i)_{y_i}
      -\max_{k\ne y_i}f(x_i)_k\big)`, negative for a misclassified point.

    A model with batch norm is measured in eval mode (as the training record is) and put back in
    the mode it was in.

    Args:
        model: the trained network. x_train, x_test: inputs ``[N, *input_shape]`` (model's dtype
            and device). radius: r > 0. centres, samples, ascent_steps: see
            :func:`~sharpjac.jacobians.local_variation`. test_points: >= 1. seed: keyword-only.
        y_train, y_test: class labels ``[N]``, ``[M]`` (needed with ``loss``).
        loss: ``"ce"`` or ``"mse"`` (None: skip the unsmoothed losses, NaN).
        chunk_size: inputs per forward pass for the outputs and the losses.
    """
    from .. import jacobians
    from .. import losses as _losses
    from ..models import has_batch_norm

    if not (_is_num(radius) and radius > 0):
        raise ValueError(f"radius={radius!r} is invalid; accepted: a float > 0")
    for name, v in (("centres", centres), ("samples", samples), ("test_points", test_points)):
        if not (isinstance(v, int) and v >= 1):
            raise ValueError(f"{name}={v!r} is invalid; accepted: an int >= 1")
    g = torch.Generator().manual_seed(int(seed))
    idx = torch.randperm(len(x_train), generator=g)[:centres].sort().values.to(x_train.device)
    bn = has_batch_norm(model)
    was_training = model.training
    if bn:
        model.train(False)
    try:
        lv = jacobians.local_variation(
            model, x_train[idx], float(radius), num_samples=samples, ascent_steps=ascent_steps, seed=int(seed)
        )
        ts = jacobians.jacobian_stats(model, x_test[:test_points])
        with torch.no_grad():
            out_train = torch.cat(
                [model(x_train[a : a + chunk_size]).double() for a in range(0, len(x_train), chunk_size)]
            )
        logit_norm = float(out_train.flatten(1).norm(dim=1).mean())
        margin = float("nan")
        if y_train is not None and out_train.shape[1] > 1:
            yy = y_train.to(out_train.device).long()
            true = out_train.gather(1, yy[:, None])[:, 0]
            others = out_train.scatter(1, yy[:, None], float("-inf"))
            margin = float((true - others.max(dim=1).values).mean())
        plain = {}
        if loss is not None:
            if y_train is None or y_test is None:
                raise ValueError("loss given without y_train and y_test; accepted: both label tensors")
            fn = _losses.get_loss(loss, reduction="none")
            for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
                with torch.no_grad():
                    vals = torch.cat(
                        [
                            fn(model(x[a : a + chunk_size]), y[a : a + chunk_size]).double()
                            for a in range(0, len(x), chunk_size)
                        ]
                    )
                plain[name] = float(vals.mean())
    finally:
        if bn:
            model.train(was_training)
    lv = lv.double()
    nan = float("nan")
    return EndMeasurements(
        local_variation_max=float(lv.max()),
        local_variation_mean=float(lv.mean()),
        test_jac_spectral_max=float(ts.spectral_max),
        test_jac_spectral_mean=float(ts.spectral_mean),
        test_jac_frobenius_max=float(ts.frobenius_max),
        test_jac_frobenius_mean=float(ts.frobenius_mean),
        variation_radius=float(radius),
        train_loss_unsmoothed=plain.get("train", nan),
        test_loss_unsmoothed=plain.get("test", nan),
        gap_loss_unsmoothed=plain.get("test", nan) - plain.get("train", nan),
        logit_norm=logit_norm,
        margin=margin,
    )


def _nan_extras(radius: float) -> dict[str, float]:
    out = {c: float("nan") for c in END_COLUMNS}
    out["variation_radius"] = float(radius)
    return out


def _end_values(model, tc: TrainConfig, spec: dict[str, Any], tensors) -> dict[str, float]:
    """The :data:`END_COLUMNS` of a trained network (the end-of-training measurements)."""
    x_train, y_train, x_test, y_test = tensors
    dev = next(model.parameters()).device
    dt = next(model.parameters()).dtype
    out = end_measurements(
        model,
        x_train.to(device=dev, dtype=dt),
        x_test.to(device=dev, dtype=dt),
        radius=spec["radius"],
        centres=spec["centres"],
        samples=spec["samples"],
        ascent_steps=spec["ascent_steps"],
        test_points=spec["test_points"],
        seed=tc.seed,
        y_train=y_train.to(dev).long(),
        y_test=y_test.to(dev).long(),
        loss=tc.loss,
        chunk_size=tc.physical_batch_size or 2048,
    )
    return out.as_dict()


def _run_point(
    tc: TrainConfig, spec: dict[str, Any], tensors, *, store, force: bool, progress: bool
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Record and end-of-training values of one run.

    The record comes from :func:`sharpjac.runs.run` (the store keeps the final network); the end
    values are computed from that kept network once and stored beside the run as an artefact, so
    nothing is ever trained twice.
    """
    from ..runs import as_store, run
    from ..training import train

    st = as_store(store)
    if st is None:
        result = train(tc, progress=progress)
        frame = result.frame.copy()
        values = _nan_extras(spec["radius"]) if result.diverged else _end_values(result.model, tc, spec, tensors)
        return frame, values
    rec = run(tc, store=st, force=force, progress=progress)
    if rec.attrs.get("diverged"):
        return rec, _nan_extras(spec["radius"])
    values = st.artefact(tc, "end", spec, lambda: _end_values(st.load_model(tc), tc, spec, tensors))
    return rec, dict(values)


def run_grid(
    config: GeneralisationConfig, *, name: str, store=None, force: bool = False, progress: bool | None = None
) -> pd.DataFrame:
    """Run every grid point of ``config`` (reusing the store) and concatenate the records.

    Returns one row per measurement: the grid labels, the training record's columns, ``gap_loss``
    and ``gap_acc`` (every row), the :data:`END_COLUMNS` (on each run's last row; NaN elsewhere),
    ``status`` and ``run_key``. ``attrs``: ``experiment``, ``config``, ``variation_radius``.
    """
    from .. import data

    if not isinstance(config, GeneralisationConfig):
        raise TypeError(f"config must be a GeneralisationConfig, got {type(config).__name__}")
    ds = data.load(config.dataset, seed=config.data_seed, n_train=config.n_train, n_test=config.n_test)
    tensors = (ds.x_train, ds.y_train, ds.x_test, ds.y_test)
    radius = (
        float(config.variation_radius)
        if config.variation_radius is not None
        else nearest_neighbour_radius(ds.x_train, ds.x_test)
    )
    spec = config.end_spec(radius)

    def run_point(tc: TrainConfig, show: bool) -> tuple[pd.DataFrame, dict[str, float]]:
        record, values = _run_point(tc, spec, tensors, store=store, force=force, progress=show)
        attrs = dict(record.attrs)
        record = record.assign(
            gap_loss=record["test_loss"] - record["train_loss"], gap_acc=record["train_acc"] - record["test_acc"]
        )
        record.attrs = attrs
        return record, {c: values.get(c, np.nan) for c in END_COLUMNS}

    out = run_experiment(config, name=name, store=store, force=force, progress=progress, run_point=run_point)
    out.attrs["variation_radius"] = spec["radius"]
    return out


def final_measurements(records: pd.DataFrame, by=None) -> pd.DataFrame:
    """The last measurement of each run (one row per grid point and seed).

    Args:
        records: output of :func:`run_grid` (or any records with ``step`` and the grid labels).
        by: columns identifying a run (default: the grid labels, i.e. the columns before
            ``step``).

    Returns:
        DataFrame, one row per run, in grid order, index reset.
    """
    if "step" not in records:
        raise ValueError(f"records need a 'step' column; columns: {list(records.columns)}")
    if by is None:
        cols = list(records.columns)
        by = cols[: cols.index("step")]
    by = list(by)
    missing = [c for c in by if c not in records]
    if missing:
        raise ValueError(f"by={by}: columns {missing} are not in the records")
    if not by:
        raise ValueError("final_measurements needs at least one column identifying the runs (by=...)")
    idx = records.groupby(by, sort=False, dropna=False)["step"].idxmax()
    return records.loc[idx.to_numpy()].reset_index(drop=True)


def paired_values(
    final: pd.DataFrame, column: str, treated: dict[str, Any], control: dict[str, Any], *, pair_on=("seed",)
) -> tuple[np.ndarray, np.ndarray]:
    r"""The values of ``column`` for the treated and the control runs, aligned pair by pair.

    The runs matching every label of ``treated`` (e.g. ``{"weight_decay": 0.003}``) are paired
    with those matching ``control`` (e.g. ``{"weight_decay": 0.0}``) that share the values of
    ``pair_on`` (e.g. the seed, or the learning rate and the seed). The paired difference
    :math:`a_k-b_k` (or :math:`\log a_k-\log b_k`) is then the effect of the intervention on run
    pair :math:`k`, to be summarised by :func:`sharpjac.analysis.difference_ci` with ``paired=True``.

    Args:
        final: one row per run (:func:`final_measurements`), with the label and ``pair_on`` columns.
        column: the measured quantity.
        treated, control: label column -> value (floats compared with a relative tolerance of 1e-9).
        pair_on: columns that identify a pair (each pair must be unique on both sides).

    Returns:
        ``(a, b)``, float arrays of shape ``[n_pairs]`` in the order of ``pair_on`` (pairs missing a
        side are dropped).
    """
    pair_on = [pair_on] if isinstance(pair_on, str) else list(pair_on)
    for c in [column, *pair_on, *treated, *control]:
        if c not in final:
            raise ValueError(f"column {c!r} is not in the frame; columns: {list(final.columns)}")

    def select(labels: dict[str, Any]) -> pd.DataFrame:
        keep = np.ones(len(final), dtype=bool)
        for k, v in labels.items():
            col = final[k]
            if _is_num(v) and not isinstance(v, bool):
                keep &= np.isclose(col.to_numpy(float), float(v), rtol=1e-9, atol=0.0)
            else:
                keep &= (col == v).to_numpy()
        part = final.loc[keep, [*pair_on, column]]
        if part.duplicated(pair_on).any():
            raise ValueError(f"labels {labels} select several runs per {pair_on}; accepted: one run per pair")
        return part

    both = select(treated).merge(select(control), on=pair_on, suffixes=("_a", "_b")).sort_values(pair_on)
    return both[f"{column}_a"].to_numpy(float), both[f"{column}_b"].to_numpy(float)


_DATASET_WORDS = {"mnist5k": "real MNIST digits", "cifar10": "CIFAR-10 images"}
_LOSS_WORDS = {"ce": "softmax cross-entropy", "mse": "squared error"}


def describe_setting(config: GeneralisationConfig) -> str:
    """One Markdown sentence fragment describing a config's baseline, built from its fields.

    E.g. ``"1,000 real MNIST digits (`mnist5k`, 2,000 test points), an MLP with hidden widths
    100-100 (tanh), plain SGD (step 0.2, batch 100, softmax cross-entropy) for 30 epochs"``, so
    that a page never types a preset's numbers by hand.
    """
    if not isinstance(config, GeneralisationConfig):
        raise TypeError(f"config must be a GeneralisationConfig, got {type(config).__name__}")
    data = (
        f"{config.n_train:,} {_DATASET_WORDS.get(config.dataset, 'training points')} "
        f"(`{config.dataset}`, {config.n_test:,} test points)"
    )
    if config.model == "mlp":
        model = f"an MLP with hidden widths {'-'.join(str(w) for w in config.widths)} ({config.activation})"
    elif config.model == "small_cnn":
        model = f"a small CNN with channels {'-'.join(str(c) for c in config.channels)}"
    else:
        model = f"a ResNet-18 (width factor {config.resnet_width:g})"
    opt = "plain SGD" if config.momentum == 0 else f"SGD with momentum {config.momentum:g}"
    return (
        f"{data}, {model}, {opt} (step {config.lr:g}, batch {config.batch_size}, "
        f"{_LOSS_WORDS.get(config.loss, config.loss)}) for {config.max_epochs} epochs"
    )


def gap_predictors(
    final: pd.DataFrame,
    gaps,
    predictors,
    method: str,
    *,
    group,
    n_resamples: int,
    seed: int,
    control: str | None = "train_loss",
) -> pd.DataFrame:
    """:func:`sharpjac.analysis.predictor_table` for several gaps, stacked (a ``gap`` column first).

    Args:
        final: one row per run. gaps: target columns (e.g. ``("gap_loss", "gap_acc")``).
        predictors: columns (e.g. ``PREDICTORS + BASELINES``). method: ``"spearman"``/``"kendall"``.
        group: the cluster columns (the grid labels without the seed). n_resamples, seed: bootstrap.
        control: partial correlations given this column (None: none; the control's own row is NaN).

    Returns:
        one row per (gap, predictor): ``gap, predictor, estimate, low, high, n, method`` and, with
        ``control``, ``abs_estimate, partial, partial_low, partial_high``.
    """
    from .. import analysis

    parts = []
    for g in [gaps] if isinstance(gaps, str) else list(gaps):
        t = analysis.predictor_table(
            final, g, list(predictors), method, group=group, n_resamples=n_resamples, seed=seed, control=control
        )
        t.insert(0, "gap", g)
        parts.append(t)
    return pd.concat(parts, ignore_index=True)


# ------------------------------------------------------------------------------------------------
# Registration
# ------------------------------------------------------------------------------------------------

_CHAPTERS = {
    "weight_decay": (
        WeightDecayConfig,
        "weight decay x learning rate: final gap, sharpness, Jacobian",
        "Weight decay across learning rates (Fig. 2)",
    ),
    "sam_augmentation": (
        SamAugmentationConfig,
        "SAM radii x augmentation on/off: final gap, sharpness, Jacobian",
        "SAM and data augmentation (Fig. 3, probable)",
    ),
    "batch_size": (
        BatchSizeConfig,
        "batch size at fixed epochs and at fixed updates, with local variation",
        "Batch size (Fig. 4)",
    ),
    "learning_rate": (
        LearningRateConfig,
        "several step sizes: gap, sharpness and Jacobian over training",
        "Learning rate over training (Fig. 5, ICLR)",
    ),
    "regularisers": (
        RegularisersConfig,
        "six regularisers vs a baseline: Kendall's tau of the gap with each measure",
        "Six regularisers compared (Fig. 5, later revision)",
    ),
    "causal_test": (
        CausalTestConfig,
        "Jacobian penalty (Hoffman et al. 2019): does it lower sharpness and the gap?",
        "A causal test (beyond the paper)",
    ),
}


def _runner(name: str):
    def run(config=None, *, store=None, force: bool = False, progress: bool | None = None) -> pd.DataFrame:
        cls = _CHAPTERS[name][0]
        config = cls.preset("quick") if config is None else config
        return run_grid(config, name=name, store=store, force=force, progress=progress)

    run.__doc__ = f"Run the {name!r} grid (one stored run per grid point; shared runs trained once)."
    return run


EXPERIMENTS = {
    name: register(name, cls, desc, chapter=chapter, runner=_runner(name))
    for name, (cls, desc, chapter) in _CHAPTERS.items()
}
