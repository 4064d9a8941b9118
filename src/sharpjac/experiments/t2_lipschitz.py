r"""Theorem T2 along training: the sample-maximum Jacobian against the Lipschitz constant on the data.

For the book chapter *T2: the sample Jacobian controls the Lipschitz constant on the data*. A tanh
MLP is trained by full-batch gradient descent with heavy-ball momentum (0.9, step size 0.05) on a
smooth regression target :math:`f^*(x)=\sin(w^\top x+c)` over :math:`N` points of the ``manifold``
data set (a surface :math:`S=g([0,1]^2)\subset\mathbb R^{16}`, float64). At each kept network,
:func:`sharpjac.theory.t2_sandwich` evaluates both sides of

.. math:: \max_i\|Jf(x_i)\|\ \le\ \sup_{x\in S}\|Jf(x)\|\ \le\ \max_i\big(\|Jf(x_i)\|+\hat\phi_i\big),

with a dense probe of :math:`S`, path-wise Lipschitz estimates along random paths in :math:`S`,
and the local variation :math:`\hat\phi_i` on balls of radius the covering radius of the sample.

Presets are the project's own choices: ``smoke`` runs in seconds, ``quick`` in about a minute on
a laptop CPU, ``paper`` trains a wider network longer with a denser probe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd
import torch

from ..training import TrainConfig
from . import register
from .base import StudyConfig, trained_run

NAME = "t2_lipschitz"
LR = 0.05
MOMENTUM = 0.9


@dataclass(frozen=True)
class T2Config(StudyConfig):
    r"""Theorem T2's sandwich at several steps of one gradient-descent run per seed.

    ``data_seed`` draws the sample and the probe (seed ``data_seed + 1``); each of ``seeds`` the
    initialisation, the paths and the local-variation search (the chapter uses one seed for all).

    Attributes:
        n_train: sample size :math:`N` (smaller :math:`N`: larger covering radius and local
            variation); 10 test points.
        widths: hidden widths of the tanh MLP (one output).
        steps: gradient-descent steps.
        snapshots: steps at which the sandwich is evaluated (each in ``[0, steps]``).
        num_probe: points of the dense probe of :math:`S`.
        num_paths, path_points: random paths in :math:`S` and points of each polyline.
    """

    n_train: int = 100
    widths: tuple[int, ...] = (32, 32)
    steps: int = 1000
    snapshots: tuple[int, ...] = (0, 30, 100, 300, 1000)
    num_probe: int = 4000
    num_paths: int = 64
    path_points: int = 128
    device: str = "cpu"
    dtype: str = "float64"

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(widths=(16,), steps=40, snapshots=(0, 40), num_probe=500, num_paths=8, path_points=32),
        "quick": dict(
            widths=(32, 32),
            steps=1000,
            snapshots=(0, 30, 100, 300, 1000),
            num_probe=4000,
            num_paths=64,
            path_points=128,
        ),
        "paper": dict(
            widths=(128, 128),
            steps=5000,
            snapshots=(0, 30, 100, 300, 1000, 3000, 5000),
            num_probe=20000,
            num_paths=256,
            path_points=256,
        ),
    }

    def _check(self) -> None:
        self._need_positive("n_train", "widths", "steps", "num_probe", "num_paths")
        self._need(self.n_train >= 2, "n_train", "an int >= 2")
        self._need(self.path_points >= 2, "path_points", "an int >= 2")
        self._need(
            len(self.snapshots) > 0 and all(0 <= s <= self.steps for s in self.snapshots),
            "snapshots",
            f"a non-empty tuple of steps in [0, steps={self.steps}]",
        )

    def dataset_options(self) -> dict[str, Any]:
        """Options of the ``manifold`` data set: :math:`d=2` in :math:`\\mathbb R^{16}`, regression."""
        return {"d": 2, "n": 16, "lipschitz": 30.0, "n_train": self.n_train, "n_test": 10, "task": "regression"}

    def train_config(self, seed: int) -> TrainConfig:
        """Full-batch GD with momentum on the squared error (mean over samples), kept at ``snapshots``."""
        return TrainConfig(
            dataset="manifold",
            dataset_options=self.dataset_options(),
            data_seed=self.data_seed,
            model="mlp",
            model_options={"widths": list(self.widths), "activation": "tanh"},
            loss="mse",
            optimizer="gd",
            lr=LR,
            momentum=MOMENTUM,
            max_steps=self.steps,
            sharpness_subset=0,
            jacobian_subset=0,
            snapshot_steps=tuple(sorted(set(self.snapshots))),
            seed=seed,
            dtype=self.dtype,
            device=self.device,
            threads=self.threads,
        )

    def trains(self) -> list[TrainConfig]:
        return [self.train_config(s) for s in self.seeds]

    def compute(self, *, store, progress: bool | None) -> dict[str, pd.DataFrame]:
        """One table, ``sandwich``: a row per seed and snapshot step.

        Columns: ``seed``, ``step``, ``train_mse`` (the training loss at that step), the fields of
        :class:`sharpjac.theory.T2Sandwich` (``sample_max``, ``probe_sup``, ``local_variation``,
        ``upper``, ``upper_pointwise``, ``radius``, ``path_lipschitz``, ``path_slope``,
        ``num_probe``, ``num_paths``), ``holds`` and ``margin``.
        """
        from .. import data, theory

        rows = []
        for seed in self.seeds:
            tc = self.train_config(seed)
            run = trained_run(tc, store=store, progress=progress)
            ds = data.load("manifold", seed=self.data_seed, dtype=getattr(torch, self.dtype), **self.dataset_options())
            dev = next(run.final.parameters()).device
            x = ds.x_train.to(dev)
            probe = ds.extras["sample_support"](self.num_probe, seed=self.data_seed + 1).to(dev)
            losses = dict(zip(run.frame["step"].astype(int), run.frame["train_loss"].astype(float)))
            for step in sorted(set(self.snapshots)):
                if step not in run.models:
                    raise RuntimeError(
                        f"run {tc.seed=} kept no network at step {step}: it stopped at step "
                        f"{max(run.models)} ({run.frame.attrs.get('status', '?')})"
                    )
                res = theory.t2_sandwich(
                    run.models[step],
                    x,
                    probe,
                    generator=ds.extras["generator"],
                    num_paths=self.num_paths,
                    path_points=self.path_points,
                    seed=seed,
                )
                rows.append(
                    {
                        "seed": seed,
                        "step": int(step),
                        "train_mse": losses.get(int(step), float("nan")),
                        **res.as_dict(),
                        "holds": res.holds,
                        "margin": res.margin,
                    }
                )
        return {"sandwich": pd.DataFrame(rows)}


EXPERIMENT = register(
    NAME,
    T2Config,
    "T2 along GD training: sample-max Jacobian <= sup on the data <= sample max + local variation",
    chapter="T2: the sample Jacobian controls the Lipschitz constant on the data",
)
