"""Progressive sharpening and the edge of stability (Cohen et al. 2021; the paper's Section 5).

Full-batch gradient descent at three step sizes, with squared error and with cross-entropy, on a
tanh MLP. Tracked: sharpness against the stability limit :math:`2/\\eta` (column ``two_over_lr``),
the four Jacobian statistics, and the mediating factors. Expected: sharpness rises (progressive
sharpening) until about :math:`2/\\eta` and then hovers there; the Jacobian rises with it.

Presets are the project's own choices (the paper's are not known): ``smoke`` runs in seconds;
``quick`` uses 500 real MNIST digits (``mnist5k``) and takes a few minutes on a 2-core CPU;
``paper`` is Cohen et al.'s setting in spirit: 5,000 CIFAR-10 images and a wider tanh MLP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from ..training import TrainConfig
from . import register
from .base import ExperimentConfig, run_experiment

NAME = "progressive_sharpening"


@dataclass(frozen=True)
class ProgressiveSharpeningConfig(ExperimentConfig):
    """Full-batch GD, MSE and CE, several step sizes.

    Attributes:
        dataset, n_train, n_test: data (``n_train`` points are trained on by full-batch GD).
        classes: optional subset of class ids.
        widths, activation: the MLP.
        losses: subset of ``("mse", "ce")``.
        lrs_mse, lrs_ce: step sizes for each loss.
        max_steps: GD steps per run.
        measure_every: steps between measurements.
        measure_num: that many extra log-spaced measurement steps (resolve the fast early phase;
            cross-entropy on small data sharpens, then saturates, within a few dozen steps).
        sharpness_subset: training points in the Hessian (None: all, the full-batch loss).
        jacobian_subset: training points for the Jacobian statistics.
        measure_gn: also track the top Gauss-Newton eigenvalue.
        lanczos_tol: relative residual tolerance of the warm-started Lanczos.
    """

    dataset: str = "mnist5k"
    n_train: int = 500
    n_test: int = 500
    classes: tuple[int, ...] | None = None
    widths: tuple[int, ...] = (100, 100)
    activation: str = "tanh"
    losses: tuple[str, ...] = ("mse", "ce")
    lrs_mse: tuple[float, ...] = (0.15, 0.2, 0.25)
    lrs_ce: tuple[float, ...] = (0.1, 0.2, 0.4)
    max_steps: int = 1000
    measure_every: int = 50
    measure_num: int | None = 12
    sharpness_subset: int | None = None
    jacobian_subset: int = 200
    measure_gn: bool = False
    lanczos_tol: float = 1e-3

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(
            n_train=100,
            n_test=100,
            widths=(16,),
            lrs_mse=(0.1,),
            lrs_ce=(0.1,),
            max_steps=10,
            measure_every=5,
            measure_num=None,
            jacobian_subset=20,
        ),
        "quick": dict(),
        "paper": dict(
            dataset="cifar10",
            n_train=5000,
            n_test=2000,
            widths=(200, 200),
            lrs_mse=(0.01, 0.02, 0.04),
            lrs_ce=(0.01, 0.02, 0.04),
            max_steps=10000,
            measure_every=50,
            measure_num=30,
            sharpness_subset=None,
            jacobian_subset=1000,
            measure_gn=True,
            seeds=(0, 1, 2),
        ),
    }

    def _check(self) -> None:
        from .. import data
        from ..models import ACTIVATIONS

        self._need(self.dataset in data.available(), "dataset", f"one of {sorted(data.available())}")
        self._need_positive(
            "n_train", "n_test", "widths", "max_steps", "measure_every", "jacobian_subset", "lanczos_tol"
        )
        self._need(self.activation in ACTIVATIONS, "activation", f"one of {ACTIVATIONS}")
        self._need(
            len(self.losses) > 0 and set(self.losses) <= {"mse", "ce"},
            "losses",
            "a non-empty tuple drawn from ('mse', 'ce')",
        )
        if "mse" in self.losses:
            self._need_positive("lrs_mse")
        if "ce" in self.losses:
            self._need_positive("lrs_ce")
        self._need(
            self.measure_num is None or (isinstance(self.measure_num, int) and self.measure_num > 0),
            "measure_num",
            "None or an int > 0",
        )
        self._need(
            self.sharpness_subset is None or (isinstance(self.sharpness_subset, int) and self.sharpness_subset > 0),
            "sharpness_subset",
            "None (all training points) or an int > 0",
        )

    def grid(self) -> list[tuple[dict[str, Any], TrainConfig]]:
        opts: dict[str, Any] = {"n_train": self.n_train, "n_test": self.n_test}
        if self.classes is not None:
            opts["classes"] = list(self.classes)
        out = []
        for loss in self.losses:
            for lr in self.lrs_mse if loss == "mse" else self.lrs_ce:
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
                        max_steps=self.max_steps,
                        measure_every=self.measure_every,
                        measure_num=self.measure_num,
                        sharpness_subset=self.sharpness_subset,
                        jacobian_subset=self.jacobian_subset,
                        measure_gn=self.measure_gn,
                        lanczos_tol=self.lanczos_tol,
                        seed=seed,
                        dtype=self.dtype,
                        device=self.device,
                        threads=self.threads,
                        checkpoint_every=max(self.measure_every, self.max_steps // 10),
                    )
                    out.append(({"loss": loss, "lr": float(lr), "seed": seed}, tc))
        return out


def run(
    config: ProgressiveSharpeningConfig | None = None, *, store=None, force: bool = False, progress: bool | None = None
) -> pd.DataFrame:
    """Run the grid; adds ``two_over_lr`` (the stability limit :math:`2/\\eta`)."""
    config = ProgressiveSharpeningConfig.preset("quick") if config is None else config
    df = run_experiment(config, name=NAME, store=store, force=force, progress=progress)
    if len(df):
        df["two_over_lr"] = 2.0 / df["lr"]
    return df


EXPERIMENT = register(
    NAME,
    ProgressiveSharpeningConfig,
    "full-batch GD at 3 step sizes, MSE and CE: sharpness rises to 2/lr, Jacobian with it",
    chapter="Progressive sharpening and the edge of stability",
    runner=run,
)
