"""Sharpness and Jacobian early in training, for several label-smoothing values (paper Fig. 1,
App. Figs 8-12).

Cross-entropy with label smoothing 0 / 0.1 / 0.2, mini-batch SGD with momentum; sharpness, the
Jacobian statistics and the mean output curvature :math:`\\overline{\\|C\\|}` measured over the
early phase. The paper reports that sharpness and Jacobian norm track each other early on, with
scales that drift apart as smoothing changes; :math:`\\overline{\\|C\\|}` (kept away from 0 by
smoothing) is the mediating factor that should explain the drift.

Presets are the project's own choices: ``quick`` uses 2,000 real MNIST digits, an MLP and five seeds;
``paper`` uses CIFAR-10 and ResNet-18 (a GPU and a local copy of CIFAR-10).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from ..training import TrainConfig
from . import register
from .base import ExperimentConfig, architecture_options, run_experiment

NAME = "label_smoothing_early"


@dataclass(frozen=True)
class LabelSmoothingEarlyConfig(ExperimentConfig):
    """SGD with cross-entropy at several label-smoothing values, early phase.

    Attributes:
        dataset, n_train, n_test: data.
        model: ``"mlp"`` (uses widths, activation), ``"small_cnn"`` (channels) or ``"resnet18"``
            (resnet_width).
        smoothings: label-smoothing values, each in [0, 1).
        lr, momentum, batch_size, weight_decay: the SGD run.
        augment: data augmentation.
        max_epochs: length of the early phase.
        measure_every: steps between measurements.
        sharpness_subset, jacobian_subset: training points for the Hessian and the Jacobians.
    """

    dataset: str = "mnist5k"
    n_train: int = 2000
    n_test: int = 1000
    model: str = "mlp"
    widths: tuple[int, ...] = (200, 200)
    activation: str = "tanh"
    channels: tuple[int, ...] = (16, 32)
    resnet_width: float = 1.0
    smoothings: tuple[float, ...] = (0.0, 0.1, 0.2)
    lr: float = 0.05
    momentum: float = 0.9
    batch_size: int = 100
    weight_decay: float = 0.0
    augment: bool = False
    max_epochs: int = 5
    measure_every: int = 10
    sharpness_subset: int = 500
    jacobian_subset: int = 200

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(
            n_train=200,
            n_test=100,
            widths=(16,),
            max_epochs=1,
            batch_size=50,
            measure_every=2,
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
            max_epochs=10,
            measure_every=50,
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
            "measure_every",
            "sharpness_subset",
            "jacobian_subset",
        )
        self._need(self.activation in ACTIVATIONS, "activation", f"one of {ACTIVATIONS}")
        self._need(
            len(self.smoothings) > 0 and all(isinstance(a, (int, float)) and 0 <= a < 1 for a in self.smoothings),
            "smoothings",
            "a non-empty tuple of floats in [0, 1)",
        )
        self._need(0 <= self.momentum < 1, "momentum", "a float in [0, 1)")
        self._need(self.weight_decay >= 0, "weight_decay", "a float >= 0")

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
                    measure_every=self.measure_every,
                    sharpness_subset=self.sharpness_subset,
                    jacobian_subset=self.jacobian_subset,
                    seed=seed,
                    dtype=self.dtype,
                    device=self.device,
                    threads=self.threads,
                    checkpoint_every=self.measure_every * 10,
                )
                out.append(({"label_smoothing": float(ls), "seed": seed}, tc))
        return out


def run(
    config: LabelSmoothingEarlyConfig | None = None, *, store=None, force: bool = False, progress: bool | None = None
) -> pd.DataFrame:
    """Run the grid (one stored run per smoothing value and seed)."""
    config = LabelSmoothingEarlyConfig.preset("quick") if config is None else config
    return run_experiment(config, name=NAME, store=store, force=force, progress=progress)


EXPERIMENT = register(
    NAME,
    LabelSmoothingEarlyConfig,
    "SGD + cross-entropy, label smoothing 0/0.1/0.2: sharpness and Jacobian early in training",
    chapter="Sharpness and Jacobian early in training (Fig. 1)",
    runner=run,
)
