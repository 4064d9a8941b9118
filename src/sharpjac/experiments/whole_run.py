"""Sharpness and the Jacobian over the whole run, with the mediating factors (paper App. Fig. 29).

The setting of Fig. 1 (mini-batch SGD with momentum, softmax cross-entropy) trained to
convergence instead of for a few epochs, and measured on a log-spaced schedule so that both the
early phase and the long late phase are resolved. The record carries the three mediating factors
of the paper's Section 3 (mean output curvature ``curvature_norm``, ``first_layer_norm``,
``feature_norm``), which the chapter uses to explain where the sharpness-Jacobian link weakens.
Two label-smoothing values are compared by default: without smoothing the cross-entropy
saturates (:math:`\\overline{\\|C\\|}\\to0`), with smoothing it cannot.

Presets are the project's own choices (the paper's are not known): ``quick`` uses 1,000 real MNIST
digits and a 100-100 tanh MLP; ``paper`` uses CIFAR-10 and ResNet-18 (a GPU and a local copy of CIFAR-10).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from ..training import TrainConfig
from . import register
from .base import ExperimentConfig, architecture_options, run_experiment

NAME = "whole_run"


@dataclass(frozen=True)
class WholeRunConfig(ExperimentConfig):
    """SGD with cross-entropy to convergence, log-spaced measurements.

    Attributes:
        dataset, n_train, n_test: data.
        model: ``"mlp"`` (uses widths, activation), ``"small_cnn"`` (channels) or ``"resnet18"``
            (resnet_width).
        smoothings: label-smoothing values, each in [0, 1).
        lr, momentum, batch_size, weight_decay, augment: the SGD run.
        max_epochs: length of the run.
        measure_num: number of log-spaced measurement steps (plus step 0 and the last step).
        measure_every_epochs: also measure every that many epochs (None: only the log grid).
        sharpness_subset, jacobian_subset: training points for the Hessian and the Jacobians.
    """

    dataset: str = "mnist5k"
    n_train: int = 1000
    n_test: int = 500
    model: str = "mlp"
    widths: tuple[int, ...] = (100, 100)
    activation: str = "tanh"
    channels: tuple[int, ...] = (16, 32)
    resnet_width: float = 1.0
    smoothings: tuple[float, ...] = (0.0, 0.1)
    lr: float = 0.05
    momentum: float = 0.9
    batch_size: int = 100
    weight_decay: float = 0.0
    augment: bool = False
    max_epochs: int = 40
    measure_num: int = 20
    measure_every_epochs: int | None = 8
    sharpness_subset: int = 300
    jacobian_subset: int = 100

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(
            n_train=200,
            n_test=100,
            widths=(16,),
            max_epochs=2,
            batch_size=50,
            measure_num=4,
            measure_every_epochs=None,
            sharpness_subset=50,
            jacobian_subset=20,
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
            weight_decay=5e-4,
            augment=True,
            max_epochs=100,
            measure_num=60,
            measure_every_epochs=5,
            sharpness_subset=2048,
            jacobian_subset=512,
            seeds=(0, 1, 2),
        ),
    }

    def _check(self) -> None:
        from .. import data
        from ..models import ACTIVATIONS

        self._need(self.dataset in data.available(), "dataset", f"one of {sorted(data.available())}")
        self._need(self.model in ("mlp", "small_cnn", "resnet18"), "model", "'mlp', 'small_cnn' or 'resnet18'")
        self._need_positive(
            "n_train",
            "n_test",
            "widths",
            "channels",
            "resnet_width",
            "lr",
            "batch_size",
            "max_epochs",
            "measure_num",
            "sharpness_subset",
            "jacobian_subset",
        )
        self._need(self.activation in ACTIVATIONS, "activation", f"one of {ACTIVATIONS}")
        self._need(
            len(self.smoothings) > 0
            and all(isinstance(a, (int, float)) and not isinstance(a, bool) and 0 <= a < 1 for a in self.smoothings),
            "smoothings",
            "a non-empty tuple of floats in [0, 1)",
        )
        self._need(0 <= self.momentum < 1, "momentum", "a float in [0, 1)")
        self._need(self.weight_decay >= 0, "weight_decay", "a float >= 0")
        self._need(
            self.measure_every_epochs is None
            or (isinstance(self.measure_every_epochs, int) and self.measure_every_epochs >= 1),
            "measure_every_epochs",
            "None or an int >= 1",
        )

    def model_options(self) -> dict[str, Any]:
        return architecture_options(
            self.model,
            widths=self.widths,
            activation=self.activation,
            channels=self.channels,
            resnet_width=self.resnet_width,
        )

    def grid(self) -> list[tuple[dict[str, Any], TrainConfig]]:
        out = []
        for ls in self.smoothings:
            for seed in self.seeds:
                tc = TrainConfig(
                    dataset=self.dataset,
                    dataset_options={"n_train": self.n_train, "n_test": self.n_test},
                    data_seed=self.data_seed,
                    model=self.model,
                    model_options=self.model_options(),
                    loss="ce",
                    label_smoothing=float(ls),
                    optimizer="sgd",
                    lr=self.lr,
                    momentum=self.momentum,
                    batch_size=self.batch_size,
                    weight_decay=self.weight_decay,
                    augment=self.augment,
                    max_epochs=self.max_epochs,
                    measure_num=self.measure_num,
                    measure_every_epochs=self.measure_every_epochs,
                    sharpness_subset=self.sharpness_subset,
                    jacobian_subset=self.jacobian_subset,
                    seed=seed,
                    dtype=self.dtype,
                    device=self.device,
                    threads=self.threads,
                    checkpoint_every=max(1, (self.max_epochs * -(-self.n_train // self.batch_size)) // 10),
                )
                out.append(({"label_smoothing": float(ls), "seed": seed}, tc))
        return out


def run(
    config: WholeRunConfig | None = None, *, store=None, force: bool = False, progress: bool | None = None
) -> pd.DataFrame:
    """Run the grid (one stored run per smoothing value and seed)."""
    config = WholeRunConfig.preset("quick") if config is None else config
    return run_experiment(config, name=NAME, store=store, force=force, progress=progress)


EXPERIMENT = register(
    NAME,
    WholeRunConfig,
    "SGD + cross-entropy to convergence: sharpness, Jacobian and mediating factors over the whole run",
    chapter="The whole run (App. Fig. 29)",
    runner=run,
)
