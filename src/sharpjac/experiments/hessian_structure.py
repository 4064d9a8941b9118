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

from .. import inference
from ..claims import choose, get
from ..claims._structure import PER_CLASS_TOLERANCE
from ..training import TrainConfig
from . import register
from ._chapter import ChapterSummary
from ._chapter import evaluate as _evaluate
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
            snapshot_steps=tuple(sorted({0, self.steps // 5})),  # a set: distinct even if steps // 5 were 0
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


LOSS_NAME = {"ce": "cross-entropy", "mse": "squared error"}
#: the columns of the chapter's table of the three moments (labels in :data:`sharpjac.tables.LABELS`)
MOMENT_COLUMNS = (
    "moment",
    "step",
    "train_loss",
    "train_acc",
    "test_acc",
    "lambda1_H",
    "lambda1_G",
    "R_max",
    "R_min",
    "gap1_j",
    "class_directions",
    "converged",
)


def run_chapter(configs: list[HessianStructureConfig], *, store=None) -> dict[str, dict[str, pd.DataFrame]]:
    """Run the chapter's configs (one per loss, from :func:`chapter_configs`): ``{loss: tables}``,
    cross-entropy first."""
    from . import get

    exp = get(NAME)
    by_loss = {c.loss: c for c in configs}
    return {name: exp.run(by_loss[name], store=store) for name in ("ce", "mse") if name in by_loss}


def summarise(runs: dict[str, dict[str, pd.DataFrame]], config: HessianStructureConfig) -> ChapterSummary:
    r"""Everything the chapter shows, from the tables of both losses.

    Args:
        runs: ``{loss: tables of the study}`` (:func:`run_chapter`), both losses.
        config: the config of the loss the chapter describes (``config.loss``).

    Returns:
        :class:`~sharpjac.experiments._chapter.ChapterSummary` with tables ``moments`` (the
        described run's first seed, one row per moment), ``per_loss`` (median and range over
        seeds of :math:`\|R\|_2/\lambda_1(H)` with :math:`\|R\|_2=\max(|\lambda_{\max}(R)|,
        |\lambda_{\min}(R)|)`, per loss and moment), ``spectra_all`` (both losses' first-seed
        spectra, a ``curve`` label per loss and moment), ``density`` and ``density_summary``
        (first seed); series ``top`` (``{moment: spectrum}``, first seed); the glued values
        and the inputs of the three claims.
    """
    loss = config.loss
    seeds = config.seeds
    results = runs[loss]
    everything = pd.concat([r["summary"].assign(loss=name) for name, r in runs.items()], ignore_index=True)
    everything["R_norm"] = everything[["R_max", "R_min"]].abs().max(axis=1)
    everything["R_rel"] = everything["R_norm"] / everything["lambda1_H"]
    first = seeds[0]
    moments = results["summary"][lambda t: t["seed"] == first].set_index("moment")
    spectrum = results["spectrum"][lambda t: t["seed"] == first]
    top = {name: spectrum[spectrum.moment == name].sort_values("j") for name in moments.index}
    num_classes = int(moments["num_classes"].iloc[0])
    expected = {"ce": num_classes - 1, "mse": num_classes}
    v: dict[str, Any] = {}
    v["hs_P"] = int(moments["num_params"].iloc[0])
    v["hs_N"] = config.n_train
    v["hs_k"] = config.k
    v["hs_C"] = num_classes
    v["hs_seeds"] = len(seeds)
    v["hs_first"] = first
    v["hs_loss_name"] = LOSS_NAME[loss]
    v["hs_expected"] = expected[loss]
    for name, r in moments.iterrows():
        t = top[name]
        v[f"hs_gap_{name}"] = int(r["gap_j"])
        v[f"hs_gapratio_{name}"] = float(r["gap_ratio"])
        v[f"hs_gap1_{name}"] = int(r["gap1_j"])
        v[f"hs_gap1ratio_{name}"] = float(r["gap1_ratio"])
        v[f"hs_gapH1_{name}"] = int(r["gapH1_j"])
        v[f"hs_nclass_{name}"] = int(r["class_directions"])
        v[f"hs_conv_{name}"] = choose(bool(r["converged"]), "converged", "not fully converged")
        v[f"hs_s_{name}"] = float(r["lambda1_H"])
        v[f"hs_g_{name}"] = float(r["lambda1_G"])
        v[f"hs_rel1_{name}"] = 100 * float(t["relative_difference"].iloc[0])
        v[f"hs_relC_{name}"] = 100 * float(np.median(t["relative_difference"].iloc[: num_classes - 1]))
        v[f"hs_rhi_{name}"] = float(r["R_max"])
        v[f"hs_rlo_{name}"] = float(r["R_min"])
        v[f"hs_rrel_{name}"] = 100 * max(abs(r["R_max"]), abs(r["R_min"])) / float(r["lambda1_H"])
        v[f"hs_trainacc_{name}"] = 100 * float(r["train_acc"])
        v[f"hs_loss_{name}"] = float(r["train_loss"])
    v["hs_steps_mid"] = int(moments.loc["mid", "step"])
    v["hs_steps_end"] = int(moments.loc["end", "step"])
    end = moments.loc["end"]
    v["hs_gap_text"] = (
        f"At the end of training the largest ratio $\\lambda_j/\\lambda_{{j+1}}$ of $G$ is after eigenvalue "
        f"{int(end['gap_j'])} (ratio {float(end['gap_ratio']):.2f})"
        + choose(
            int(end["gap_j"]) == 1,
            ": the top eigenvalue detaches from the other outliers, so this count is fragile.",
            choose(
                abs(int(end["gap_j"]) - expected[loss]) <= 1,
                f", close to the {expected[loss]} outliers expected, but such a count is fragile: one detached "
                "eigenvalue moves it to 1.",
                f", not after the {expected[loss]} outliers expected: this count is fragile.",
            ),
        )
    )
    # does R add to the top of H (H above G) in this run?
    top_c = spectrum[spectrum.j <= num_classes - 1]
    above = (top_c.hessian > top_c.gauss_newton).groupby(top_c.moment).mean().astype(float)
    v["hs_sign_text"] = choose(
        bool((above == 1.0).all()),
        "At every moment each of the top $C-1$ eigenvalues of the Hessian is *larger* than the corresponding "
        "eigenvalue of $G$: here the residual term adds to the top rather than subtracting from it.",
        choose(
            bool((above == 0.0).all()),
            "At every moment each of the top $C-1$ eigenvalues of the Hessian is *smaller* than the "
            "corresponding eigenvalue of $G$: here the residual term subtracts from the top.",
            "The top $C-1$ eigenvalues of the Hessian lie above those of $G$ for a fraction "
            + ", ".join(f"{100 * above[m]:.0f}% ({m})" for m in MOMENTS)
            + " of them: the residual term shifts the top in both directions.",
        ),
    )
    ov_in = {name: float(np.mean(t["overlap"].iloc[: num_classes - 1])) for name, t in top.items()}
    ov_out = {name: float(np.mean(t["overlap"].iloc[num_classes - 1 :])) for name, t in top.items()}
    for name in top:
        v[f"hs_ov_in_{name}"] = ov_in[name]
        v[f"hs_ov_out_{name}"] = ov_out[name]
    v["hs_overlap_text"] = choose(
        all(ov_in[m] > 0.5 > ov_out[m] for m in ("mid", "end")),
        "Once training has started, the outliers are the class directions.",
        "In this run the top eigenvectors are not clearly separated from the next ones by their class overlap "
        "at every moment after initialisation.",
    )
    claims: dict[str, dict[str, Any]] = {}
    # the claim "about one outlier per class", over every seed and both losses, at the end of training
    ends = everything[everything.moment == "end"]
    claims["hessian_structure.outliers_per_class"] = per_class_inputs(ends, expected, n_seeds=len(seeds))
    per_loss = (
        everything.groupby(["loss", "moment"], sort=False)
        .agg(
            train_loss=("train_loss", "median"),
            R_rel=("R_rel", "median"),
            R_rel_min=("R_rel", "min"),
            R_rel_max=("R_rel", "max"),
            lambda1_H=("lambda1_H", "median"),
            lambda1_G=("lambda1_G", "median"),
        )
        .reset_index()
    )
    per_loss["loss"] = per_loss["loss"].map(LOSS_NAME)
    sentences = []
    for name in ("ce", "mse"):
        e = everything[everything.loss == name].pivot(index="seed", columns="moment", values="R_rel")
        lo_loss = float(everything[(everything.loss == name) & (everything.moment == "end")]["train_loss"].median())
        shrinks = int((e["end"] < e["init"]).sum())
        sentences.append(
            f"For {LOSS_NAME[name]}, $\\|R\\|_2/\\lambda_1(H)$ goes from {100 * float(e['init'].median()):.0f}% at "
            f"initialisation to {100 * float(e['mid'].median()):.0f}% mid-way and "
            f"{100 * float(e['end'].median()):.0f}% at the end (medians over seeds; final training loss "
            f"{lo_loss:.3f}): it is smaller at the end than at initialisation in {shrinks} of {len(e)} seeds, "
            + choose(
                float(e["end"].max()) <= 0.1,
                "and below 10% of the sharpness at the end in every seed, so near interpolation $R$ is small (the "
                "companion's line for small: by Weyl's inequality $R$ then moves the sharpness by less than a tenth).",
                "but it is still more than 10% of the sharpness at the end (the companion's line for small: by "
                "Weyl's inequality, below it $R$ moves the sharpness by less than a tenth) in "
                f"{int((e['end'] > 0.1).sum())} of {len(e)} seeds: at this training loss $R$ is not negligible.",
            )
        )
    v["hs_residual_text"] = " ".join(sentences)
    rel_end = pd.concat(
        [top_relative_differences(r["spectrum"], num_classes).assign(loss=name) for name, r in runs.items()],
        ignore_index=True,
    )
    claims["hessian_structure.outliers_from_gauss_newton"] = gauss_newton_inputs(rel_end, n_seeds=len(seeds))
    pairs = everything.pivot_table(index=["loss", "seed"], columns="moment", values="R_rel")
    claims["hessian_structure.residual_shrinks"] = residual_inputs(pairs, n_seeds=len(seeds))
    v["hs_bullet_residual"] = choose(
        float(pairs["init"].median()) > 0.1,
        "The residual term is not always negligible: at initialisation it is "
        f"{100 * float(pairs['init'].median()):.0f}% of the sharpness (median over runs), and it is where the "
        "negative eigenvalues come from.",
        "At initialisation the residual term is a small fraction of the sharpness "
        f"({100 * float(pairs['init'].median()):.0f}%, median over runs); it is where the negative eigenvalues "
        "come from.",
    )
    density_summary = results["density_summary"][lambda t: t["seed"] == first].set_index("moment")
    for name in ("init", "end"):
        v[f"hs_bulk_{name}"] = float(density_summary.loc[name, "bulk_median"])
        v[f"hs_neg_{name}"] = 100 * float(density_summary.loc[name, "negative_mass"])
        v[f"hs_ratio12_{name}"] = float(moments.loc[name, "lambda1_H"] / moments.loc[name, "lambda2_H"])
    if "mse" in runs:
        mse_end = runs["mse"]["summary"].query("moment == 'end'")
        v["hs_mse_counts"] = (
            "In this build, at the end of the squared-error runs, the largest gap of $G$ after $j>1$ is after "
            "eigenvalue "
            + ", ".join(str(int(c)) for c in mse_end["gap1_j"])
            + " and the class-direction count is "
            + ", ".join(str(int(c)) for c in mse_end["class_directions"])
            + f" (seeds {', '.join(str(int(s)) for s in mse_end['seed'])})."
        )
    spec_all = pd.concat(
        [r["spectrum"][lambda t: t["seed"] == first].assign(loss=LOSS_NAME[name]) for name, r in runs.items()],
        ignore_index=True,
    )
    spec_all["curve"] = spec_all["loss"] + ", " + spec_all["moment"]
    return ChapterSummary(
        tables={
            "moments": moments,
            "moments_shown": moments.reset_index()[list(MOMENT_COLUMNS)].rename(
                columns={"converged": "lanczos_converged"}
            ),
            "per_loss_shown": per_loss[
                ["loss", "moment", "train_loss", "lambda1_H", "lambda1_G", "R_rel", "R_rel_min", "R_rel_max"]
            ].rename(
                columns={
                    "train_loss": "train_loss_median",
                    "lambda1_H": "lambda1_H_median",
                    "lambda1_G": "lambda1_G_median",
                    "R_rel": "R_rel_median",
                }
            ),
            "per_loss": per_loss,
            "spectra_all": spec_all,
            # floored at 1e-12 for a log axis
            "density": results["density"][lambda t: t["seed"] == first].assign(
                density=lambda t: np.maximum(t["density"], 1e-12)
            ),
            "density_summary": density_summary,
        },
        values=v,
        claims=claims,
        series={
            "top": top,
            "expected": expected[loss],
            "num_classes": num_classes,
            **panel_series(moments, top),
        },
    )


def per_class_inputs(ends: pd.DataFrame, expected: dict[str, int], *, n_seeds: int) -> dict[str, Any]:
    """The inputs of ``hessian_structure.outliers_per_class`` (for :func:`sharpjac.claims.evaluate`).

    Args:
        ends: one row per (loss, seed) at the end of training, columns ``loss``, ``seed``, ``class_directions``.
        expected: ``{loss: expected count}`` (C-1 for cross-entropy, C for squared error).
        n_seeds: the seeds of the run (the verdict's ``seeds``).

    Returns:
        ``evidence``, ``seeds``, ``k`` (runs within :data:`PER_CLASS_TOLERANCE`
        of the expected count), ``n`` (runs), ``unit="seeds"``, ``n_units`` and the leave-one-seed-out
        ``fragility`` of the Count rule (None with one seed).
    """
    ok = (ends["class_directions"].astype(int) - ends["loss"].map(expected)).abs() <= PER_CLASS_TOLERANCE
    by_seed = list(dict.fromkeys(ends["seed"]))
    rule = get("hessian_structure.outliers_per_class").rule

    def decide(kept) -> str:
        mask = ends["seed"].isin(kept)
        return rule.decide(k=int(ok[mask].sum()), n=int(mask.sum()))

    counts_text = "; ".join(
        f"{LOSS_NAME[name]}: " + ", ".join(str(int(c)) for c in g["class_directions"]) + f" (expected {expected[name]})"
        for name, g in ends.groupby("loss", sort=False)
    )
    return dict(
        evidence=(
            f"At the end of training the number of top eigenvectors of $G$ mostly in the class-mean span is, per "
            f"seed, {counts_text}; {int(ok.sum())} of {len(ok)} runs are within one of the expected count."
        ),
        seeds=n_seeds,
        k=int(ok.sum()),
        n=len(ok),
        unit="seeds",
        n_units=len(by_seed),
        fragility=inference.leave_one_out(decide, by_seed) if len(by_seed) >= 2 else None,
    )


def top_relative_differences(spectrum: pd.DataFrame, num_classes: int) -> pd.DataFrame:
    r"""Per seed at the end of training: the median of :math:`|\lambda_j(H)-\lambda_j(G)|/\lambda_j(H)`
    over the top :math:`C-1` eigenvalues (``spectrum`` with ``seed``, ``moment``, ``j``,
    ``relative_difference``). Columns ``seed``, ``relative_difference``."""
    top = spectrum[(spectrum.moment == "end") & (spectrum.j <= num_classes - 1)]
    return top.groupby("seed", sort=False)["relative_difference"].median().reset_index()


def gauss_newton_inputs(rel_end: pd.DataFrame, *, n_seeds: int) -> dict[str, Any]:
    """The inputs of ``hessian_structure.outliers_from_gauss_newton``: the largest of the runs'
    :func:`top_relative_differences` (``rel_end`` with ``loss``, ``seed``, ``relative_difference``),
    decided against the tolerance, with its leave-one-seed-out fragility."""
    rule = get("hessian_structure.outliers_from_gauss_newton").rule
    worst = rel_end.loc[rel_end["relative_difference"].idxmax()]
    by_seed = list(dict.fromkeys(rel_end["seed"]))

    def decide(kept) -> str:
        return rule.decide(value=float(rel_end.loc[rel_end["seed"].isin(kept), "relative_difference"].max()))

    value = float(worst["relative_difference"])
    return dict(
        evidence=(
            f"At the end of training the median relative difference between the top $C-1$ eigenvalues of $H$ and "
            f"$G$ ranges from {100 * float(rel_end['relative_difference'].min()):.0f}% to {100 * value:.0f}% over "
            f"seeds and losses (largest: {LOSS_NAME[worst['loss']]}, seed {int(worst['seed'])})."
        ),
        seeds=n_seeds,
        value=value,
        estimate=value,
        label="median |λⱼ(H) − λⱼ(G)| / λⱼ(H), worst run",
        unit="seeds",
        n_units=len(by_seed),
        fragility=inference.leave_one_out(decide, by_seed) if len(by_seed) >= 2 else None,
    )


def residual_inputs(pairs: pd.DataFrame, *, n_seeds: int) -> dict[str, Any]:
    r"""The inputs of ``hessian_structure.residual_shrinks``.

    Per seed, :math:`\log` of :math:`\|R\|_2/\lambda_1(H)` at the end over its value at
    initialisation, averaged over the losses (the runs of one seed share their initialisation, so
    the seed is the unit); Student's t interval over the seeds (:func:`sharpjac.inference.t_interval`,
    inconclusive below 3 seeds) and its leave-one-seed-out fragility.

    Args:
        pairs: index ``(loss, seed)``, columns ``init`` and ``end`` (the relative residual norm).
    """
    rule = get("hessian_structure.residual_shrinks").rule
    logs = np.log(pairs["end"] / pairs["init"])
    per_seed = logs.groupby(level="seed", sort=False).mean()
    values = {int(k): float(v) for k, v in per_seed.items()}

    def interval(kept) -> inference.ClusterInterval:
        return inference.t_interval([values[k] for k in kept], unit="seeds")

    def decide(kept) -> str:
        iv = interval(kept)
        return rule.decide(estimate=iv.estimate, low=iv.low, high=iv.high)

    iv = interval(tuple(values))
    shrink = int((pairs["end"] < pairs["init"]).sum())
    evidence = (
        f"$\\|R\\|_2/\\lambda_1(H)$ is smaller at the end than at initialisation in {shrink} of {len(pairs)} runs "
        f"(both losses, {len(values)} seed{'s' if len(values) != 1 else ''}); at the end it is "
        f"{100 * float(pairs['end'].min()):.0f}% to {100 * float(pairs['end'].max()):.0f}% of the sharpness. "
        "Log ratio end / initialisation per seed (mean over the losses): "
        + "; ".join(f"{v:+.2f}" for v in values.values())
        + (
            f", mean {iv.estimate:+.2f}, 95 % t interval [{iv.low:+.2f}, {iv.high:+.2f}]."
            if not iv.too_few
            else f". Too few seeds to decide ({iv.n})."
        )
    )
    return dict(
        evidence=evidence,
        seeds=n_seeds,
        estimate=iv.estimate,
        low=iv.low,
        high=iv.high,
        label="log(‖R‖/λ₁ at the end / at initialisation), mean over seeds",
        k=shrink,
        n=len(pairs),
        unit="seeds",
        n_units=iv.n,
        fragility=inference.leave_one_out(decide, tuple(values)) if len(values) >= 2 else None,
    )


def panel_series(moments: pd.DataFrame, top: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """The ready-to-plot series of the chapter's panels, one panel per moment (first seed).

    Args:
        moments: the described run's first-seed summary, indexed by moment (``step``, ``gap1_j``,
            ``class_directions``).
        top: ``{moment: spectrum}``, each sorted by ``j`` (columns ``j``, ``hessian``, ``gauss_newton``, ``overlap``).

    Returns:
        ``spectrum``: the spectra in one long frame in moment order; ``titles``: ``{moment: "name
        (step s)"}``; ``gap_lines``: ``{moment: gap1_j + 0.5}`` (a line between the eigenvalues
        the largest gap of G after j = 1 separates); ``outlier_lines``: ``{moment: the top
        max(1, class_directions) eigenvalues of H}``.
    """
    return {
        "spectrum": pd.concat(list(top.values()), ignore_index=True),
        "titles": {name: f"{name} (step {moments.loc[name, 'step']})" for name in top},
        "gap_lines": {name: moments.loc[name, "gap1_j"] + 0.5 for name in top},
        "outlier_lines": {
            name: list(t["hessian"].iloc[: max(1, int(moments.loc[name, "class_directions"]))])
            for name, t in top.items()
        },
    }


#: the interactive explorer of the spectra: arguments of :func:`sharpjac.interactive.curves` (after the frame)
EXPLORER = dict(
    x="j",
    y={
        "eigenvalue λⱼ(H)": "hessian",
        "eigenvalue λⱼ(G)": "gauss_newton",
        "|λⱼ(H) − λⱼ(G)| / λⱼ(H)": "relative_difference",
        "fraction of uⱼ(G) in the class-mean span": "overlap",
    },
    group="curve",
    hover=["loss", "moment", "j", "hessian", "gauss_newton", "overlap"],
)


def evaluate(summary: ChapterSummary, preset: str) -> dict[str, Any]:
    """The chapter's verdicts, ``{claim id: Verdict}`` (see :func:`._chapter.evaluate`)."""
    return _evaluate(summary, preset)


def chapter_configs(preset: str, seed: int, loss: str = "ce") -> list[HessianStructureConfig]:
    """Both losses, the chapter's ``loss`` first: the chapter shows one and pools both in its claims.

    Training seeds are the preset's shifted by ``seed`` (``seed, seed + 1, seed + 2`` at quick);
    the data split uses ``data_seed = seed``.
    """
    from ..losses import LOSS_NAMES

    if loss not in LOSS_NAMES:
        raise ValueError(f"loss={loss!r}; accepted: {list(LOSS_NAMES)}")
    seeds = tuple(seed + s for s in HessianStructureConfig.preset(preset).seeds)
    order = [loss] + [name for name in ("ce", "mse") if name != loss]
    return [HessianStructureConfig.from_preset(preset, seeds=seeds, data_seed=seed, loss=name) for name in order]


EXPERIMENT = register(
    NAME,
    HessianStructureConfig,
    "top spectra of H, G and R=H-G at init, mid and end of an SGD run: outliers come from G",
    chapter="The structure of the Hessian",
    chapter_configs=chapter_configs,
)


# ------------------------------------------------------------------------------------------------
# Known answers (issue 19): each empirical rule on simulated data at the quick design, decided by
# the functions above (the same code path as the chapter, through _chapter.evaluate)
# ------------------------------------------------------------------------------------------------

#: the quick design: 3 seeds x 2 losses, 10 classes (digits), top 16 eigenvalues
KA_SEEDS, KA_CLASSES, KA_TOP = (0, 1, 2), 10, 16
KA_EXPECTED = {"ce": KA_CLASSES - 1, "mse": KA_CLASSES}


def _ka_decide(claim_id: str, inputs: dict[str, Any]) -> str:
    return _evaluate(ChapterSummary(claims={claim_id: inputs}), "quick")[claim_id].outcome


def _ka_counts(rng: np.random.Generator, offset: int) -> pd.DataFrame:
    """Class-direction counts at the end: expected + offset + noise (0 w.p. 0.6, +-1 w.p. 0.15 each,
    +-2 w.p. 0.05 each), one row per (loss, seed)."""
    noise = rng.choice([-2, -1, 0, 1, 2], size=len(KA_SEEDS) * 2, p=[0.05, 0.15, 0.6, 0.15, 0.05])
    rows = [(loss, s) for loss in ("ce", "mse") for s in KA_SEEDS]
    sign = rng.choice([-1, 1])
    return pd.DataFrame(
        {
            "loss": [r[0] for r in rows],
            "seed": [r[1] for r in rows],
            "class_directions": [KA_EXPECTED[r[0]] + sign * offset + int(n) for r, n in zip(rows, noise)],
        }
    )


def _ka_per_class(ends: pd.DataFrame) -> str:
    inputs = per_class_inputs(ends, KA_EXPECTED, n_seeds=len(KA_SEEDS))
    return _ka_decide("hessian_structure.outliers_per_class", inputs)


def _ka_spectra(rng: np.random.Generator, level: float) -> dict[str, pd.DataFrame]:
    """End-of-training spectra per loss: relative differences ``level`` x a run factor exp(N(0, 0.2)) x
    an eigenvalue factor exp(N(0, 0.3))."""
    out = {}
    for loss in ("ce", "mse"):
        rows = []
        for s in KA_SEEDS:
            run = level * np.exp(rng.normal(0.0, 0.2))
            rel = run * np.exp(rng.normal(0.0, 0.3, size=KA_TOP))
            rows.append(
                pd.DataFrame({"seed": s, "moment": "end", "j": np.arange(1, KA_TOP + 1), "relative_difference": rel})
            )
        out[loss] = pd.concat(rows, ignore_index=True)
    return out


def _ka_gauss_newton(spectra: dict[str, pd.DataFrame]) -> str:
    rel_end = pd.concat(
        [top_relative_differences(sp, KA_CLASSES).assign(loss=name) for name, sp in spectra.items()], ignore_index=True
    )
    return _ka_decide("hessian_structure.outliers_from_gauss_newton", gauss_newton_inputs(rel_end, n_seeds=3))


def _ka_residual_pairs(rng: np.random.Generator, log_ratio: float) -> pd.DataFrame:
    """Relative residual norms at initialisation and the end per (loss, seed): log(end / init) =
    ``log_ratio`` + a seed effect N(0, 0.3) + a run effect N(0, 0.2)."""
    seed_effect = {s: rng.normal(0.0, 0.3) for s in KA_SEEDS}
    rows = []
    for loss in ("ce", "mse"):
        for s in KA_SEEDS:
            init = 0.3 * np.exp(rng.normal(0.0, 0.3))
            end = init * np.exp(log_ratio + seed_effect[s] + rng.normal(0.0, 0.2))
            rows.append({"loss": loss, "seed": s, "init": init, "end": end})
    return pd.DataFrame(rows).set_index(["loss", "seed"])


def _ka_residual(pairs: pd.DataFrame) -> str:
    return _ka_decide("hessian_structure.residual_shrinks", residual_inputs(pairs, n_seeds=len(KA_SEEDS)))


def _register_known_answers() -> None:
    from .. import claims

    claims.known_answer(
        "hessian_structure.outliers_per_class",
        design="3 seeds x 2 losses, 10 classes; per run the count of class directions at the end; every run within "
        "one of the expected count",
        simulate_false=lambda rng: _ka_counts(rng, 2),
        simulate_true=lambda rng: _ka_counts(rng, 0),
        decide=_ka_per_class,
        truth="false: counts centred two away from the expected (just outside the tolerance); true: centred on it; "
        "noise 0 (60 %), ±1 (15 % each), ±2 (5 % each)",
    )
    claims.known_answer(
        "hessian_structure.outliers_from_gauss_newton",
        design="3 seeds x 2 losses, top 16 eigenvalues; per run the median relative difference over the top 9; the "
        "largest run against 0.25",
        simulate_false=lambda rng: _ka_spectra(rng, 0.25),
        simulate_true=lambda rng: _ka_spectra(rng, 0.10),
        decide=_ka_gauss_newton,
        truth="false: typical relative difference at the tolerance 0.25; true: 0.10 (run factor sd 0.2, eigenvalue "
        "factor sd 0.3 on the log scale)",
    )
    claims.known_answer(
        "hessian_structure.residual_shrinks",
        design="3 seeds x 2 losses; per seed the mean over losses of log(‖R‖/λ₁ end / init); t interval over seeds",
        simulate_false=lambda rng: _ka_residual_pairs(rng, 0.0),
        simulate_true=lambda rng: _ka_residual_pairs(rng, -0.7),
        decide=_ka_residual,
        truth="false: no change on average; true: the relative residual halves (log ratio -0.7), seed sd 0.3, run "
        "sd 0.2",
    )


_register_known_answers()
