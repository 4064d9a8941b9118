r"""Progressive sharpening and the edge of stability, on equal *time* :math:`\eta t` per step size.

Full-batch gradient descent (Cohen et al. 2021; the paper's Section 5) at three step sizes, with
squared error and with cross-entropy, on a tanh MLP. Each loss has a time horizon :math:`T` (in
units of :math:`\eta t`, the time of the gradient flow that GD discretises), a run with step
:math:`\eta` takes :math:`\lceil T/\eta\rceil` steps, and measurements are log-spaced (dense
early, where sharpness rises fast) plus one every :math:`\Delta T/\eta` steps. Equal time makes
runs with different step sizes comparable: before the edge they follow the same gradient-flow
path, so what differs at the end is the effect of the stability cap :math:`2/\eta`.

Presets are the project's own choices (the paper's are not known): ``quick`` uses 250 real MNIST
digits (``mnist5k``), whose tanh MLP starts with sharpness 7 to 8 under squared error (3.5 to 4.2
under cross-entropy, which peaks near 9), hence step sizes whose :math:`0.9\cdot2/\eta` lies
above the initial sharpness and within reach; ``paper`` uses 5,000 CIFAR-10 images and a
wider MLP, Cohen et al.'s setting in spirit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from ..training import TrainConfig
from . import register
from .base import ExperimentConfig, run_experiment

NAME = "progressive_sharpening"


@dataclass(frozen=True)
class ProgressiveSharpeningConfig(ExperimentConfig):
    r"""Full-batch GD, MSE and CE, several step sizes, equal time :math:`\eta t`.

    Attributes:
        dataset, n_train, n_test: data (all ``n_train`` points are in every gradient step).
        classes: optional subset of class ids.
        widths, activation: the MLP.
        losses: subset of ``("mse", "ce")``.
        lrs_mse, lrs_ce: step sizes for each loss.
        time_mse, time_ce: horizon :math:`T` per loss; a run takes :math:`\lceil T/\eta\rceil` steps.
        measure_num_mse, measure_num_ce: log-spaced measurement steps per run (dense early; cross-entropy
            sharpens within a few steps, so it needs more of them).
        measure_dt_mse, measure_dt_ce: also measure every :math:`\Delta T/\eta` steps (time units).
        sharpness_subset: training points in the Hessian (None: all, the full-batch loss).
        jacobian_subset: training points for the Jacobian statistics.
        lanczos_tol: relative residual tolerance of the warm-started Lanczos.
    """

    dataset: str = "mnist5k"
    n_train: int = 250
    n_test: int = 100
    classes: tuple[int, ...] | None = None
    widths: tuple[int, ...] = (100, 100)
    activation: str = "tanh"
    losses: tuple[str, ...] = ("mse", "ce")
    lrs_mse: tuple[float, ...] = (0.16, 0.19, 0.22)
    lrs_ce: tuple[float, ...] = (0.22, 0.3, 0.4)
    time_mse: float = 85.0
    time_ce: float = 30.0
    measure_num_mse: int = 8
    measure_num_ce: int = 20
    measure_dt_mse: float = 10.0
    measure_dt_ce: float = 3.0
    sharpness_subset: int | None = None
    jacobian_subset: int = 100
    lanczos_tol: float = 1e-3

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(
            n_train=100,
            n_test=50,
            widths=(16,),
            lrs_mse=(0.2,),
            lrs_ce=(0.3,),
            time_mse=2.0,
            time_ce=2.0,
            measure_num_mse=3,
            measure_num_ce=3,
            measure_dt_mse=1.0,
            measure_dt_ce=1.0,
            jacobian_subset=10,
        ),
        "quick": dict(seeds=(0, 1, 2, 3, 4)),
        "paper": dict(
            dataset="cifar10",
            n_train=5000,
            n_test=2000,
            widths=(200, 200),
            lrs_mse=(0.1, 0.14, 0.2),
            lrs_ce=(0.03, 0.05, 0.08),
            time_mse=400.0,
            time_ce=200.0,
            measure_num_mse=30,
            measure_num_ce=40,
            measure_dt_mse=4.0,
            measure_dt_ce=2.0,
            jacobian_subset=1000,
            seeds=(0, 1, 2),
        ),
    }

    def _check(self) -> None:
        from .. import data
        from ..models import ACTIVATIONS

        self._need(self.dataset in data.available(), "dataset", f"one of {sorted(data.available())}")
        self._need_positive(
            "n_train",
            "n_test",
            "widths",
            "measure_num_mse",
            "measure_num_ce",
            "measure_dt_mse",
            "measure_dt_ce",
            "jacobian_subset",
            "lanczos_tol",
        )
        self._need(self.activation in ACTIVATIONS, "activation", f"one of {ACTIVATIONS}")
        self._need(
            len(self.losses) > 0 and set(self.losses) <= {"mse", "ce"},
            "losses",
            "a non-empty tuple drawn from ('mse', 'ce')",
        )
        if "mse" in self.losses:
            self._need_positive("lrs_mse", "time_mse")
        if "ce" in self.losses:
            self._need_positive("lrs_ce", "time_ce")
        self._need(
            self.sharpness_subset is None or (isinstance(self.sharpness_subset, int) and self.sharpness_subset > 0),
            "sharpness_subset",
            "None (all training points) or an int > 0",
        )

    def steps(self, loss: str, lr: float) -> int:
        r""":math:`\lceil T/\eta\rceil` for ``loss``'s horizon."""
        horizon = self.time_mse if loss == "mse" else self.time_ce
        return max(1, math.ceil(horizon / lr - 1e-9))

    def grid(self) -> list[tuple[dict[str, Any], TrainConfig]]:
        opts: dict[str, Any] = {"n_train": self.n_train, "n_test": self.n_test}
        if self.classes is not None:
            opts["classes"] = list(self.classes)
        out = []
        for loss in self.losses:
            for lr in self.lrs_mse if loss == "mse" else self.lrs_ce:
                steps = self.steps(loss, lr)
                dt = self.measure_dt_mse if loss == "mse" else self.measure_dt_ce
                every = max(1, round(dt / lr))
                for seed in self.seeds:
                    tc = TrainConfig(
                        dataset=self.dataset,
                        dataset_options=opts,
                        data_seed=self.data_seed,
                        model="mlp",
                        model_options={"widths": list(self.widths), "activation": self.activation},
                        loss=loss,
                        optimizer="gd",
                        lr=float(lr),
                        max_steps=steps,
                        measure_every=min(every, steps),
                        measure_num=self.measure_num_mse if loss == "mse" else self.measure_num_ce,
                        sharpness_subset=self.sharpness_subset,
                        jacobian_subset=self.jacobian_subset,
                        lanczos_tol=self.lanczos_tol,
                        seed=seed,
                        dtype=self.dtype,
                        device=self.device,
                        threads=self.threads,
                        checkpoint_every=max(1, steps // 5),
                    )
                    out.append(({"loss": loss, "lr": float(lr), "seed": seed}, tc))
        return out


def run(
    config: ProgressiveSharpeningConfig | None = None, *, store=None, force: bool = False, progress: bool | None = None
) -> pd.DataFrame:
    r"""Run the grid; adds ``two_over_lr`` (:math:`2/\eta`) and ``time`` (:math:`\eta t`)."""
    config = ProgressiveSharpeningConfig.preset("quick") if config is None else config
    df = run_experiment(config, name=NAME, store=store, force=force, progress=progress)
    if len(df):
        df["two_over_lr"] = 2.0 / df["lr"]
        df["time"] = df["lr"] * df["step"]
    return df


EXPERIMENT = register(
    NAME,
    ProgressiveSharpeningConfig,
    "full-batch GD, MSE and CE, 3 step sizes on equal time eta*t: sharpness to 2/lr, Jacobian",
    chapter="Progressive sharpening and the edge of stability",
    runner=run,
)
