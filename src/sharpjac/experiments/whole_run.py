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

from . import register
from ._smoothed_sgd import SmoothedSGDConfig
from .base import run_experiment

NAME = "whole_run"


@dataclass(frozen=True)
class WholeRunConfig(SmoothedSGDConfig):
    """SGD with cross-entropy to convergence, log-spaced measurements.

    The shared fields are those of :class:`~sharpjac.experiments._smoothed_sgd.SmoothedSGDConfig`
    (data, model, ``smoothings``, the SGD run, ``max_epochs``: the length of the run,
    ``sharpness_subset``, ``jacobian_subset``); this experiment adds

    Attributes:
        measure_num: number of log-spaced measurement steps (plus step 0 and the last step).
        measure_every_epochs: also measure every that many epochs (None: only the log grid).
    """

    max_epochs: int = 40
    measure_num: int = 20
    measure_every_epochs: int | None = 8

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

    def _check_schedule(self) -> None:
        self._need_positive("measure_num")
        self._need(
            self.measure_every_epochs is None
            or (isinstance(self.measure_every_epochs, int) and self.measure_every_epochs >= 1),
            "measure_every_epochs",
            "None or an int >= 1",
        )

    def schedule(self) -> dict[str, Any]:
        steps = self.max_epochs * -(-self.n_train // self.batch_size)
        return {
            "measure_num": self.measure_num,
            "measure_every_epochs": self.measure_every_epochs,
            "checkpoint_every": max(1, steps // 10),
        }


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
