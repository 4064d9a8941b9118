"""What the ``early_training`` and ``whole_run`` experiments share: mini-batch SGD with momentum
and softmax cross-entropy at several label-smoothing values, one stored run per (smoothing, seed).

:class:`SmoothedSGDConfig` declares the shared fields once (data, architecture, smoothing values,
the SGD run), checks them, and builds the grid; a subclass sets its own defaults and presets and
states only its measurement schedule (:meth:`SmoothedSGDConfig.schedule`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..training import TrainConfig
from .base import ExperimentConfig, architecture_options


@dataclass(frozen=True)
class SmoothedSGDConfig(ExperimentConfig):
    """SGD with momentum and cross-entropy at several label-smoothing values (shared fields).

    Attributes:
        dataset, n_train, n_test: data.
        model: ``"mlp"`` (uses widths, activation), ``"small_cnn"`` (channels) or ``"resnet18"``
            (resnet_width).
        smoothings: label-smoothing values, each in [0, 1).
        lr, momentum, batch_size, weight_decay, augment: the SGD run.
        max_epochs: length of the run.
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
    max_epochs: int = 5
    sharpness_subset: int = 300
    jacobian_subset: int = 100

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
        self._check_schedule()

    def _check_schedule(self) -> None:  # pragma: no cover - overridden
        pass

    def schedule(self) -> dict[str, Any]:  # pragma: no cover - overridden
        """The measurement and checkpoint fields of every run's :class:`TrainConfig`."""
        raise NotImplementedError

    def model_options(self) -> dict[str, Any]:
        return architecture_options(
            self.model,
            widths=self.widths,
            activation=self.activation,
            channels=self.channels,
            resnet_width=self.resnet_width,
        )

    def grid(self) -> list[tuple[dict[str, Any], TrainConfig]]:
        """One run per (label smoothing, seed), labelled ``{"label_smoothing", "seed"}``."""
        schedule = self.schedule()
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
                    sharpness_subset=self.sharpness_subset,
                    jacobian_subset=self.jacobian_subset,
                    seed=seed,
                    dtype=self.dtype,
                    device=self.device,
                    threads=self.threads,
                    **schedule,
                )
                out.append(({"label_smoothing": float(ls), "seed": seed}, tc))
        return out
