r"""The structure of the Hessian: outliers, the Gauss-Newton part and the residual term.

For the book chapter *The structure of the Hessian*. One mini-batch SGD run of a tanh MLP on real
MNIST digits keeps its network at initialisation, at one fifth of the run ("mid") and at the end.
At each of the three moments, on the whole training set:

* the top-:math:`k` eigenvalues of the Hessian :math:`H=\nabla^2_\theta\mathcal L` and of the
  Gauss-Newton matrix :math:`G=\frac1N\sum_i\Phi_i^\top C_i\Phi_i` by Lanczos
  (:func:`sharpjac.spectra.top_spectra`, relative residual tolerance :math:`10^{-2}`);
* the extreme eigenvalues of the residual term :math:`R=H-G`
  (:func:`sharpjac.spectra.residual_extremes`), which bound :math:`|\lambda_j(H)-\lambda_j(G)|`
  by Weyl's inequality;
* the fraction of each top eigenvector of :math:`G` in the span of the class-mean gradients
  (:func:`sharpjac.spectra.class_mean_overlap`);
* at initialisation and at the end, the spectral density of :math:`H` by stochastic Lanczos
  quadrature (:func:`sharpjac.curvature.spectral_density`).

Presets are the project's own choices: ``smoke`` runs in seconds (one seed), ``quick`` uses three
seeds, 300 digits and a two-hidden-layer MLP (whole top-16 spectra at three moments on a laptop CPU), ``paper`` 4,000
digits and a wider network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from ..training import TrainConfig
from . import register
from .base import StudyConfig, trained_run

NAME = "hessian_structure"
MOMENTS = ("init", "mid", "end")
CLASS_DIRECTION = 0.5  # an eigenvector of G "is a class direction" when more than half of it lies in the span


@dataclass(frozen=True)
class HessianStructureConfig(StudyConfig):
    r"""Top spectra of :math:`H`, :math:`G` and :math:`R` at three moments of one SGD run.

    Attributes:
        loss: ``"ce"`` (cross-entropy) or ``"mse"`` (squared error).
        n_train: training digits (``mnist5k``; 500 test digits).
        widths: hidden widths of the tanh MLP.
        steps: SGD steps; the "mid" network is the one after ``steps // 5`` steps.
        batch: mini-batch size.
        lr: step size.
        k: number of top eigenvalues of :math:`H` and :math:`G` (Lanczos, at most ``3k + 30``
            iterations).
        residual_iter: Lanczos iterations for each extreme eigenvalue of :math:`R`.
        density_iter, density_runs: Lanczos steps and random probes of the spectral density.
    """

    loss: str = "ce"
    n_train: int = 300
    widths: tuple[int, ...] = (50, 50)
    steps: int = 300
    batch: int = 50
    lr: float = 0.1
    k: int = 16
    residual_iter: int = 40
    density_iter: int = 40
    density_runs: int = 2
    device: str = "cpu"

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(
            n_train=100,
            widths=(16,),
            steps=10,
            batch=50,
            lr=0.1,
            k=6,
            residual_iter=20,
            density_iter=15,
            density_runs=1,
        ),
        "quick": dict(
            seeds=(0, 1, 2),
            n_train=300,
            widths=(50, 50),
            steps=300,
            batch=50,
            lr=0.1,
            k=16,
            residual_iter=40,
            density_iter=40,
            density_runs=2,
        ),
        "paper": dict(
            seeds=(0, 1, 2),
            n_train=4000,
            widths=(200, 200),
            steps=2000,
            batch=100,
            lr=0.1,
            k=30,
            residual_iter=40,
            density_iter=100,
            density_runs=10,
        ),
    }

    def _check(self) -> None:
        from ..losses import LOSS_NAMES

        self._need(self.loss in LOSS_NAMES, "loss", f"one of {LOSS_NAMES}")
        self._need_positive(
            "n_train", "widths", "steps", "batch", "lr", "k", "residual_iter", "density_iter", "density_runs"
        )
        self._need(self.batch <= self.n_train, "batch", f"an int in [1, n_train={self.n_train}]")
        self._need(self.steps >= 5, "steps", "an int >= 5 (the 'mid' network is the one after steps // 5 steps)")

    def moments(self) -> dict[str, int]:
        """``{"init": 0, "mid": steps // 5, "end": steps}``."""
        return {"init": 0, "mid": self.steps // 5, "end": self.steps}

    def train_config(self, seed: int) -> TrainConfig:
        """The SGD run of ``seed`` (its data split uses ``data_seed``)."""
        return TrainConfig(
            dataset="mnist5k",
            dataset_options={"n_train": self.n_train, "n_test": 500},
            data_seed=self.data_seed,
            model="mlp",
            model_options={"widths": list(self.widths), "activation": "tanh"},
            loss=self.loss,
            optimizer="sgd",
            lr=self.lr,
            batch_size=self.batch,
            max_steps=self.steps,
            measure_every=max(1, self.steps // 5),
            sharpness_subset=0,
            jacobian_subset=0,
            seed=seed,
            snapshot_steps=(0, self.steps // 5),
            dtype=self.dtype,
            device=self.device,
            threads=self.threads,
        )

    def trains(self) -> list[TrainConfig]:
        return [self.train_config(s) for s in self.seeds]

    def compute(self, *, store, progress: bool | None) -> dict[str, pd.DataFrame]:
        r"""Tables (every one has a ``seed`` column; ``moment`` is ``init``/``mid``/``end``).

        * ``summary``: one row per seed and moment: ``step``, ``train_loss``, ``train_acc``,
          ``test_acc``, ``lambda1_H``, ``lambda1_G``, ``lambda2_H``, ``R_max``, ``R_min``,
          ``gap_j``/``gap_ratio`` (largest :math:`\lambda_j/\lambda_{j+1}` of :math:`G`),
          ``gap1_j``/``gap1_ratio`` (same for :math:`j>1`), ``gapH1_j`` (same for :math:`H`),
          ``class_directions`` (top eigenvectors of :math:`G` more than half in the span of the
          class-mean gradients), ``converged`` (both Lanczos runs), ``num_params``,
          ``num_classes``;
        * ``spectrum``: one row per seed, moment and index ``j`` (1..k): ``hessian``,
          ``gauss_newton``, ``relative_difference`` :math:`|\lambda_j(H)-\lambda_j(G)|/|\lambda_j(H)|`,
          ``overlap`` (of the :math:`j`-th eigenvector of :math:`G` with the class-mean span);
        * ``density``: the spectral density of :math:`H` at ``init`` and ``end`` on its grid
          (``eigenvalue``, ``density``);
        * ``density_summary``: per seed and moment (``init``, ``end``): ``bulk_median`` (median
          Ritz node), ``negative_mass`` (quadrature mass below :math:`-5\%` of the sharpness, in
          [0, 1]).
        """
        from .. import curvature, data, losses, spectra

        summary, spectrum, density, dsum = [], [], [], []
        for seed in self.seeds:
            tc = self.train_config(seed)
            run = trained_run(tc, store=store, progress=progress)
            ds = data.load(tc.dataset, seed=tc.data_seed, dtype=getattr(torch, tc.dtype), **dict(tc.dataset_options))
            dev = next(run.final.parameters()).device
            x, y = ds.x_train.to(dev), ds.y_train.to(dev).long()
            loss_fn = losses.get_loss(self.loss)
            num_classes = int(ds.num_classes)
            num_params = sum(p.numel() for p in run.final.parameters())
            for name, step in self.moments().items():
                model = run.models[step]
                top = spectra.top_spectra(model, loss_fn, (x, y), self.k, tol=1e-2, max_iter=3 * self.k + 30, seed=seed)
                r_hi, r_lo = spectra.residual_extremes(
                    model, loss_fn, (x, y), tol=1e-2, max_iter=self.residual_iter, seed=seed
                )
                overlap = spectra.class_mean_overlap(
                    model, loss_fn, x, y, top.gauss_newton_vectors, num_classes=num_classes
                )
                row = run.frame.loc[run.frame.step == step].iloc[0]
                gj, gr = spectra.outlier_gap(top.gauss_newton)
                gj1, gr1 = spectra.outlier_gap(top.gauss_newton, skip=1)
                summary.append(
                    {
                        "seed": seed,
                        "moment": name,
                        "step": int(step),
                        "train_loss": float(row.train_loss),
                        "train_acc": float(row.train_acc),
                        "test_acc": float(row.test_acc),
                        "lambda1_H": float(top.hessian[0]),
                        "lambda1_G": float(top.gauss_newton[0]),
                        "lambda2_H": float(top.hessian[1]) if self.k > 1 else float("nan"),
                        "R_max": float(r_hi),
                        "R_min": float(r_lo),
                        "gap_j": int(gj),
                        "gap_ratio": float(gr),
                        "gap1_j": int(gj1),
                        "gap1_ratio": float(gr1),
                        "gapH1_j": int(spectra.outlier_gap(top.hessian, skip=1)[0]),
                        "class_directions": int((overlap > CLASS_DIRECTION).sum()),
                        "converged": bool(top.converged),
                        "num_params": int(num_params),
                        "num_classes": num_classes,
                    }
                )
                rel = top.relative_difference
                for j in range(self.k):
                    spectrum.append(
                        {
                            "seed": seed,
                            "moment": name,
                            "j": j + 1,
                            "hessian": float(top.hessian[j]),
                            "gauss_newton": float(top.gauss_newton[j]),
                            "relative_difference": float(rel[j]),
                            "overlap": float(overlap[j]),
                        }
                    )
                if name in ("init", "end"):
                    H = curvature.HessianOperator(model, loss_fn, (x, y))
                    dens = curvature.spectral_density(
                        H, num_iter=self.density_iter, num_runs=self.density_runs, seed=seed
                    )
                    grid = np.asarray(dens.grid, dtype=float)
                    values = dens.density.detach().double().cpu().numpy()
                    density += [
                        {"seed": seed, "moment": name, "eigenvalue": float(g), "density": float(v)}
                        for g, v in zip(grid, values)
                    ]
                    nodes, weights = dens.nodes.detach().double().cpu(), dens.weights.detach().double().cpu()
                    negative = nodes < -0.05 * float(top.hessian[0])
                    dsum.append(
                        {
                            "seed": seed,
                            "moment": name,
                            "bulk_median": float(np.quantile(nodes.numpy().ravel(), 0.5)),
                            "negative_mass": float(weights[negative].sum() / weights.sum()),
                        }
                    )
        return {
            "summary": pd.DataFrame(summary),
            "spectrum": pd.DataFrame(spectrum),
            "density": pd.DataFrame(density),
            "density_summary": pd.DataFrame(dsum),
        }


EXPERIMENT = register(
    NAME,
    HessianStructureConfig,
    "top spectra of H, G and R=H-G at init, mid and end of an SGD run: outliers come from G",
    chapter="The structure of the Hessian",
)
