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

from . import register
from ._smoothed_sgd import SmoothedSGDConfig
from .base import run_experiment

NAME = "early_training"


@dataclass(frozen=True)
class EarlyTrainingConfig(SmoothedSGDConfig):
    """SGD with cross-entropy at several label-smoothing values, early phase.

    The shared fields are those of :class:`~sharpjac.experiments._smoothed_sgd.SmoothedSGDConfig`
    (data, model, ``smoothings``, the SGD run, ``max_epochs``: the length of the early phase,
    ``sharpness_subset``, ``jacobian_subset``); this experiment adds

    Attributes:
        measure_every: steps between measurements.
    """

    n_train: int = 2000
    n_test: int = 1000
    widths: tuple[int, ...] = (200, 200)
    smoothings: tuple[float, ...] = (0.0, 0.1, 0.2)
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

    def _check_schedule(self) -> None:
        self._need_positive("measure_every")

    def schedule(self) -> dict[str, Any]:
        return {"measure_every": self.measure_every, "checkpoint_every": self.measure_every * 10}


def run(
    config: EarlyTrainingConfig | None = None, *, store=None, force: bool = False, progress: bool | None = None
) -> pd.DataFrame:
    """Run the grid (one stored run per smoothing value and seed)."""
    config = EarlyTrainingConfig.preset("quick") if config is None else config
    return run_experiment(config, name=NAME, store=store, force=force, progress=progress)


EXPERIMENT = register(
    NAME,
    EarlyTrainingConfig,
    "SGD + cross-entropy, label smoothing 0/0.1/0.2: sharpness and Jacobian early in training",
    chapter="Sharpness and Jacobian early in training (Fig. 1)",
    runner=run,
)
