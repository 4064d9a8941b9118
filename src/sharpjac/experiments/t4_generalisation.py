r"""Theorem T4 evaluated: a generalisation bound from the sample Jacobian (book chapter *T4: a
generalisation bound from the sample Jacobian*).

For each intrinsic dimension :math:`d`, a few small tanh MLPs are trained by full-batch gradient
descent with momentum on the ``manifold`` regression task (:math:`f^*(x)=\sin(w^\top x+c)`,
:math:`L^*=\|w\|` known): a baseline, a smaller learning rate, weight decay, and Gaussian noise on
the training targets. For every trained network the four terms of T4's bound are computed for the
loss :math:`\ell(z,y)=|z-y|` (:math:`K=K'=1`):

.. math:: \sum_i\mu(\mathcal V_i)\,\ell(f(x_i),y_i)+\delta\big[\max_i\|Jf(x_i)\|+V+L^*\big],

with Voronoi weights, covering radius :math:`\delta` and test loss measured on a probe of fresh
points of the support; the runs are then ranked by the bound, by the sample Jacobian and by the
sharpness against their test loss (Kendall's :math:`\tau_b`, :func:`sharpjac.analysis.kendall`).
Finally the intrinsic dimension of MNIST images (``mnist5k``) is estimated, to show what the rate
:math:`(\log N/N)^{1/d}` of T1 and T4 means for real data.

All training goes through :func:`sharpjac.training.train` (via the run store); the tables are
cached as a study.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from .. import analysis, inference
from .. import claims as _claims
from .. import jacobians as _jac
from ..claims import choose
from ..theory import (
    covering_radius,
    derive_seed,
    levina_bickel_dimension,
    t1_covering_bound,
    t4_bound,
    twonn_dimension,
    voronoi_weights,
)
from ..training import TrainConfig
from . import register
from ._chapter import ChapterSummary, plural, seed_block
from ._chapter import evaluate as _evaluate
from .base import StudyConfig, trained_run

NAME = "t4_generalisation"

#: the sample sizes of the ``rates`` table (the rate of T1 and T4 against N).
RATE_SIZES = (1e3, 1e4, 1e5, 1e6, 1e7)


@dataclass(frozen=True)
class T4GeneralisationConfig(StudyConfig):
    r"""T4's bound for a few regression runs on generated data, and MNIST's intrinsic dimension.

    Attributes:
        steps: full-batch gradient-descent steps of every run.
        num_probe: fresh points of the support (Voronoi weights, :math:`\delta`, test loss).
        widths: hidden widths of the tanh MLPs.
        dims: intrinsic dimensions :math:`d` of the ``manifold`` data.
        mnist: MNIST images used for the intrinsic-dimension estimates (a fifth of them, at most
            1,000, come from the loader's test split).
        n_train: training points :math:`N`.
        n: ambient dimension; lipschitz: :math:`L_g` of the generator.
        run_names, lrs, weight_decays, label_noises: one entry per run (same lengths): its name,
            learning rate, weight decay (coupled L2) and the standard deviation of the Gaussian
            noise added to its training targets.
        momentum: heavy-ball momentum of every run.
        lv_samples, lv_ascent_steps: search of the local variation
            (:func:`sharpjac.jacobians.local_variation`).
        epsilon: failure probability used for the ``rates`` table (T1's :math:`\varepsilon`).
        seeds: seeds of the networks' initialisation; data_seed: seed of the data (training
            latents, target noise, probe, MNIST split). dtype: of the runs (float64 by default).
    """

    steps: int = 1000
    num_probe: int = 4000
    widths: tuple[int, ...] = (32, 32)
    dims: tuple[int, ...] = (1, 2)
    mnist: int = 5000
    n_train: int = 100
    n: int = 16
    lipschitz: float = 30.0
    run_names: tuple[str, ...] = ("baseline", "small lr", "weight decay", "label noise")
    lrs: tuple[float, ...] = (0.05, 0.01, 0.05, 0.05)
    weight_decays: tuple[float, ...] = (0.0, 0.0, 3e-3, 0.0)
    label_noises: tuple[float, ...] = (0.0, 0.0, 0.0, 0.3)
    momentum: float = 0.9
    lv_samples: int = 16
    lv_ascent_steps: int = 2
    epsilon: float = 0.1
    dtype: str = "float64"

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(steps=30, num_probe=500, widths=(16,), dims=(1, 2), mnist=500),
        "quick": dict(steps=1000, num_probe=4000, widths=(32, 32), dims=(1, 2), mnist=5000),
        "paper": dict(steps=5000, num_probe=20000, widths=(128, 128), dims=(1, 2, 3), mnist=5000),
    }

    def _check(self) -> None:
        self._need_positive("steps", "num_probe", "widths", "dims", "n_train", "n", "lipschitz", "lrs", "lv_samples")
        self._need(10 <= self.mnist <= 5000, "mnist", "an int in [10, 5000] (mnist5k has 5,000 images)")
        self._need(
            len(self.run_names) > 0 and len(set(self.run_names)) == len(self.run_names),
            "run_names",
            "a non-empty tuple of distinct names",
        )
        for name in ("lrs", "weight_decays", "label_noises"):
            self._need(
                len(getattr(self, name)) == len(self.run_names),
                name,
                f"a tuple with one entry per run ({len(self.run_names)}, like run_names)",
            )
        for name in ("weight_decays", "label_noises"):
            self._need(all(v >= 0 for v in getattr(self, name)), name, "numbers >= 0")
        self._need(0 <= self.momentum < 1, "momentum", "a number in [0, 1)")
        self._need(self.lv_ascent_steps >= 0, "lv_ascent_steps", "an int >= 0")
        self._need(0 < self.epsilon < 1, "epsilon", "a number in (0, 1)")

    # -- the runs -------------------------------------------------------------------------------

    def _data_options(self, d: int, noise: float = 0.0) -> dict[str, Any]:
        opts: dict[str, Any] = {
            "d": int(d),
            "n": self.n,
            "n_train": self.n_train,
            "n_test": 1,
            "task": "regression",
            "lipschitz": self.lipschitz,
        }
        if noise:
            opts["target_noise"] = float(noise)
        return opts

    def train_config(self, d: int, run: int, seed: int) -> TrainConfig:
        """The :class:`~sharpjac.training.TrainConfig` of run ``run`` (an index into ``run_names``)."""
        return TrainConfig(
            dataset="manifold",
            dataset_options=self._data_options(d, self.label_noises[run]),
            data_seed=self.data_seed,
            model="mlp",
            model_options={"widths": list(self.widths), "activation": "tanh"},
            loss="mse",
            optimizer="gd",
            lr=float(self.lrs[run]),
            momentum=float(self.momentum),
            weight_decay=float(self.weight_decays[run]),
            max_steps=self.steps,
            sharpness_subset=None,
            jacobian_subset=None,
            lanczos_tol=1e-6,
            lanczos_max_iter=100,
            eval_test=False,
            seed=seed,
            dtype=self.dtype,
            device=self.device,
            threads=self.threads,
        )

    def trains(self) -> list[TrainConfig]:
        return [self.train_config(d, r, s) for s in self.seeds for d in self.dims for r in range(len(self.run_names))]

    # -- the tables -----------------------------------------------------------------------------

    def compute(self, *, store, progress: bool | None) -> dict[str, pd.DataFrame]:
        r"""Tables:

        * ``runs``: one row per (seed, d, run): ``seed, d, name, lr, weight_decay, label_noise,
          train_mse`` (on the training targets, noisy for the label-noise run), ``status``,
          ``test_loss`` (:math:`\mathbb E_\mu|f-f^*|` on the probe), ``empirical`` (Voronoi-weighted
          loss on the clean targets :math:`f^*(x_i)`, as the theorem requires),
          ``empirical_noisy`` (on the noisy training targets), ``jacobian, variation, target,
          total`` (T4's terms and bound, clean), ``total_noisy``, ``dominant`` (largest term),
          ``delta, jac_max, local_variation, sharpness`` (top Hessian eigenvalue of the training
          MSE at the end, from the run's record), ``trivial`` (test loss of the best constant
          predictor, the sample mean of :math:`f^*`), ``vacuous`` (``total >= trivial``),
          ``L_star``; and the bound with T1's covering function instead of the measured radius:
          ``delta_t1`` (:math:`\delta(N,\varepsilon)=2L_g\sqrt d(\log(N/\varepsilon)/N)^{1/d}`,
          ``epsilon`` and the generator's :math:`L_g`), ``local_variation_t1`` (searched on balls of
          that radius), ``total_t1``, ``vacuous_t1``;
        * ``by_dim``: one row per (seed, d): ``delta``, ``n_runs``, ``n_vacuous``, ``best_ratio``
          (smallest bound / test loss), ``dominant`` (the runs' largest terms, comma-joined),
          ``holds`` (test loss <= bound in every run), ``tau_bound``, ``tau_jacobian``,
          ``tau_sharpness`` (Kendall's :math:`\tau_b` of the bound, the sample-maximum Jacobian and
          the sharpness against the test loss), ``delta_t1``, ``n_vacuous_t1``, ``holds_t1``;
        * ``mnist``: one row per seed (the same numbers: they depend on ``data_seed`` only):
          ``n_images``, ``d_twonn``, ``d_levina_bickel``, ``d_rate``
          (the TwoNN estimate rounded, at least 1), ``shrink_1e3_1e6`` (the factor by which
          :math:`(\log(N/\varepsilon)/N)^{1/d}` shrinks from :math:`N=10^3` to :math:`10^6` at
          that ``d_rate``);
        * ``rates``: the rate :math:`(\log(N/\varepsilon)/N)^{1/d}` against N for d = 1, 2 and
          ``d_rate`` (first seed): ``d, label, N, rate``.
        """
        from .. import data as _data

        dt = getattr(torch, self.dtype)
        run_rows, dim_rows = [], []
        for seed in self.seeds:
            for d in self.dims:
                ds = _data.load("manifold", seed=self.data_seed, dtype=dt, **self._data_options(d))
                x, y_clean = ds.x_train, ds.y_train
                probe = ds.extras["sample_support"](self.num_probe, seed=derive_seed(self.data_seed, 4))
                y_probe = ds.extras["target_fn"](probe)
                delta = covering_radius(probe, x)
                # T1's covering function for this generator: the theorem's probabilistic statement
                delta_t1 = t1_covering_bound(self.n_train, self.epsilon, int(d), float(ds.extras["lipschitz"]))
                weights = voronoi_weights(x, probe)
                L_star = float(ds.extras["target_lipschitz"])
                trivial = float((y_probe - y_clean.mean()).abs().mean())
                rows = []
                for r, name in enumerate(self.run_names):
                    tc = self.train_config(d, r, seed)
                    tr = trained_run(tc, store=store, progress=progress)
                    y_train = y_clean
                    if self.label_noises[r]:
                        y_train = _data.load(
                            "manifold", seed=self.data_seed, dtype=dt, **self._data_options(d, self.label_noises[r])
                        ).y_train
                    rows.append(
                        self._evaluate(
                            tr, x, y_clean, y_train, probe, y_probe, delta, weights, L_star, trivial, seed=seed
                        )
                        | self._evaluate_t1(tr, x, y_clean, weights, delta_t1, L_star, trivial, seed=seed)
                        | {"seed": seed, "d": int(d), "name": name}
                    )
                frame = pd.DataFrame(rows)
                run_rows += rows
                dim_rows.append(
                    {
                        "seed": seed,
                        "d": int(d),
                        "delta": delta,
                        "n_runs": len(frame),
                        "n_vacuous": int(frame["vacuous"].sum()),
                        "best_ratio": float((frame["total"] / frame["test_loss"]).min()),
                        "dominant": ", ".join(sorted(set(frame["dominant"]))),
                        "holds": bool((frame["test_loss"] <= frame["total"]).all()),
                        "tau_bound": analysis.kendall(frame["total"], frame["test_loss"]),
                        "tau_jacobian": analysis.kendall(frame["jac_max"], frame["test_loss"]),
                        "tau_sharpness": analysis.kendall(frame["sharpness"], frame["test_loss"]),
                        "delta_t1": delta_t1,
                        "n_vacuous_t1": int(frame["vacuous_t1"].sum()),
                        "holds_t1": bool((frame["test_loss"] <= frame["total_t1"]).all()),
                    }
                )
        mnist_dim = self._mnist_dimension()  # depends on data_seed only: computed once, one row per seed
        mnist_rows = [{"seed": seed} | mnist_dim for seed in self.seeds]
        runs = pd.DataFrame(run_rows)
        lead = ["seed", "d", "name"]
        runs = runs[lead + [c for c in runs.columns if c not in lead]]
        mnist = pd.DataFrame(mnist_rows)
        return {
            "runs": runs,
            "by_dim": pd.DataFrame(dim_rows),
            "mnist": mnist,
            "rates": self._rates(int(mnist["d_rate"].iloc[0])),
        }

    def _evaluate(
        self,
        tr,
        x,
        y_clean,
        y_train,
        probe,
        y_probe,
        delta: float,
        weights,
        L_star: float,
        trivial: float,
        *,
        seed: int,
    ) -> dict[str, Any]:
        """T4's terms for one trained run (the network at its last step)."""
        model = tr.final
        dev = next(model.parameters()).device
        x_d = x.to(dev)
        last = tr.frame.iloc[-1]
        with torch.no_grad():
            out = model(x_d).cpu()
            test_loss = float((model(probe.to(dev)).cpu() - y_probe).abs().mean())
        jn = _jac.jacobian_norms(model, x_d)
        phi = _jac.local_variation(
            model, x_d, delta, num_samples=self.lv_samples, ascent_steps=self.lv_ascent_steps, seed=seed
        )
        jac_max, lv = float(jn.max()), float(phi.max())
        clean = t4_bound((out - y_clean).abs()[:, 0], weights, delta, 1.0, 1.0, L_star, jac_max, lv, vacuous_at=trivial)
        noisy = t4_bound((out - y_train).abs()[:, 0], weights, delta, 1.0, 1.0, L_star, jac_max, lv, vacuous_at=trivial)
        return {
            "lr": tr.config.lr,
            "weight_decay": tr.config.weight_decay,
            "label_noise": float(dict(tr.config.dataset_options).get("target_noise", 0.0)),
            "train_mse": float(last["train_loss"]),
            "status": str(tr.frame.attrs.get("status", "")),
            "test_loss": test_loss,
            "empirical": clean.empirical,
            "empirical_noisy": noisy.empirical,
            "jacobian": clean.jacobian,
            "variation": clean.variation,
            "target": clean.target,
            "total": clean.total,
            "total_noisy": noisy.total,
            "dominant": clean.dominant,
            "delta": delta,
            "jac_max": jac_max,
            "local_variation": lv,
            "sharpness": float(last["sharpness"]),
            "trivial": trivial,
            "vacuous": bool(clean.vacuous),
            "L_star": L_star,
        }

    def _evaluate_t1(
        self, tr, x, y_clean, weights, delta_t1: float, L_star: float, trivial: float, *, seed: int
    ) -> dict[str, Any]:
        r"""T4 with :math:`\delta=\delta(N,\varepsilon)` from T1 (the theorem's probabilistic statement).

        The local variation is searched on the balls :math:`B(x_i,\delta(N,\varepsilon))`; the
        Voronoi weights are the probe's (they do not depend on :math:`\delta`).
        """
        model = tr.final
        dev = next(model.parameters()).device
        x_d = x.to(dev)
        with torch.no_grad():
            out = model(x_d).cpu()
        jac_max = float(_jac.jacobian_norms(model, x_d).max())
        phi = _jac.local_variation(
            model, x_d, delta_t1, num_samples=self.lv_samples, ascent_steps=self.lv_ascent_steps, seed=seed
        )
        b = t4_bound(
            (out - y_clean).abs()[:, 0],
            weights,
            delta_t1,
            1.0,
            1.0,
            L_star,
            jac_max,
            float(phi.max()),
            vacuous_at=trivial,
        )
        return {
            "delta_t1": delta_t1,
            "local_variation_t1": float(phi.max()),
            "total_t1": b.total,
            "vacuous_t1": bool(b.vacuous),
        }

    def _mnist_dimension(self) -> dict[str, Any]:
        """TwoNN and Levina-Bickel estimates of the intrinsic dimension of ``mnist`` MNIST images."""
        from .. import data as _data

        n_test = min(self.mnist // 5, 1000)
        ds = _data.load("mnist5k", seed=self.data_seed, n_train=self.mnist - n_test, n_test=n_test, dtype=torch.float64)
        images = torch.cat([ds.x_train, ds.x_test])
        d_twonn = twonn_dimension(images)
        d_rate = max(1, round(d_twonn))
        rate = [(math.log(N / self.epsilon) / N) ** (1 / d_rate) for N in (1e3, 1e6)]
        return {
            "n_images": int(images.shape[0]),
            "d_twonn": float(d_twonn),
            "d_levina_bickel": float(levina_bickel_dimension(images, 10, 20)),
            "d_rate": d_rate,
            "shrink_1e3_1e6": rate[1] / rate[0],
        }

    def _rates(self, d_rate: int) -> pd.DataFrame:
        r""":math:`(\log(N/\varepsilon)/N)^{1/d}` (T1's covering function without :math:`2L_g\sqrt d`)."""
        rows = []
        for d, label in ((1, "d = 1"), (2, "d = 2"), (d_rate, f"d = {d_rate} (MNIST, TwoNN)")):
            for N in RATE_SIZES:
                rows.append(
                    {
                        "d": d,
                        "label": label,
                        "N": N,
                        "rate": t1_covering_bound(int(N), self.epsilon, d, 1.0) / (2 * np.sqrt(d)),
                    }
                )
        return pd.DataFrame(rows)


MEAN_COLUMNS = (
    "train_mse",
    "test_loss",
    "empirical",
    "jacobian",
    "variation",
    "target",
    "total",
    "delta",
    "total_t1",
    "trivial",
    "jac_max",
    "sharpness",
)


def _fmt_interval(i) -> str:
    text = f"{i.estimate:.2f} [{i.low:.2f}, {i.high:.2f}]"
    return text + (" (a degenerate interval: every resample gave the same value)" if i.degenerate else "")


#: Monte Carlo permutations of :func:`ranking_test` (its smallest p-value is 1/1000).
RANK_PERMUTATIONS = 999


def ranking_test(
    runs: pd.DataFrame,
    *,
    x: str = "jacobian",
    y: str = "test_loss",
    given: str = "train_mse",
    by: str = "d",
    n_permutations: int = RANK_PERMUTATIONS,
    seed: int = 0,
) -> dict[str, float]:
    r"""Does ``x`` order the runs by ``y`` at equal ``given``, within each ``by`` stratum?

    Statistic: the mean over strata (dimensions :math:`d`) of the partial Spearman correlation
    :math:`\rho(y, x\mid \text{given})`, the Pearson correlation of the rank residuals of :math:`x` and
    :math:`y` after a least-squares fit on the ranks of ``given``
    (:func:`sharpjac.analysis.partial_rank_correlation`'s closed form). Null: no association at equal
    ``given``; :math:`x` is permuted within each stratum and the partial correlation recomputed
    (``n_permutations`` Monte Carlo orderings, one-sided :math:`p=(k+1)/(B+1)` each way; permuting the
    residuals instead agreed 7.5 % of the time on null data with 12 runs per stratum). The runs of every seed of a
    stratum are its units; the data set is the one ``data_seed`` draws, so the test is conditional on it.

    Returns:
        ``{"estimate", "p_greater", "p_less", "min_p", "n"}`` (NaN statistic and p-values when a
        stratum has fewer than 4 runs or a constant residual).
    """
    rng = np.random.default_rng(seed)
    observed, nulls, n = [], [], 0
    for _, sub in runs.groupby(by, sort=True):
        rx, rz = analysis.rankdata(sub[x].to_numpy(float)), analysis.rankdata(sub[given].to_numpy(float))
        A = np.stack([np.ones_like(rz), rz], axis=1)
        resid = np.eye(len(rz)) - A @ np.linalg.pinv(A)  # residual maker of the fit on the ranks of `given`
        ey = resid @ analysis.rankdata(sub[y].to_numpy(float))
        n += len(sub)
        ex = resid @ rx
        if len(sub) < 4 or float(ex @ ex) * float(ey @ ey) <= 1e-12:
            observed.append(float("nan"))
            continue
        observed.append(float(ex @ ey) / math.sqrt(float(ex @ ex) * float(ey @ ey)))
        # permute x itself (not its residuals), then take the partial correlation again: under the null the
        # permuted x is independent of (y, given), and the fit on `given` costs the same degree of freedom
        perms = np.argsort(rng.random((n_permutations, len(sub))), axis=1)
        ex_null = rx[perms] @ resid.T
        with np.errstate(invalid="ignore", divide="ignore"):
            nulls.append((ex_null @ ey) / np.sqrt((ex_null**2).sum(axis=1) * float(ey @ ey)))
    nan = float("nan")
    if not observed or any(math.isnan(o) for o in observed):
        return {"estimate": nan, "p_greater": nan, "p_less": nan, "min_p": nan, "n": n}
    t, null = float(np.mean(observed)), np.mean(nulls, axis=0)
    tol = 1e-12
    return {
        "estimate": t,
        "p_greater": (1 + int(np.sum(null >= t - tol))) / (n_permutations + 1),
        "p_less": (1 + int(np.sum(null <= t + tol))) / (n_permutations + 1),
        "min_p": 1 / (n_permutations + 1),
        "n": n,
    }


def ranking_outcome(runs: pd.DataFrame) -> str:
    """The outcome of ``t4_generalisation.bound_ranks_runs`` from a frame of runs (:func:`ranking_test`,
    then the claim's own rule)."""
    test = ranking_test(runs)
    return _claims.get("t4_generalisation.bound_ranks_runs").rule.decide(
        p_greater=test["p_greater"], p_less=test["p_less"], min_p=test["min_p"]
    )


def within_rho(runs: pd.DataFrame, x: str, y: str = "test_loss", by: str = "d") -> float:
    """Mean over strata of Spearman's :math:`\rho(x, y)` (a baseline beside :func:`ranking_test`)."""
    return float(np.mean([analysis.spearman(sub[x], sub[y]) for _, sub in runs.groupby(by, sort=True)]))


def simulate_runs(rng: np.random.Generator, effect: float) -> pd.DataFrame:
    r"""One simulated study at the quick design (2 dimensions x 4 runs x 3 seeds): per run a
    training loss, a Jacobian term correlated with it (:math:`\rho\approx0.5`, as runs that fit less
    also stay smoother or not), and a test loss :math:`=` training loss :math:`+\,` ``effect``
    :math:`\times` Jacobian term :math:`+` noise (all standard normal; ``effect = 0`` is the null of no
    association at equal training loss)."""
    cfg = T4GeneralisationConfig.preset("quick")
    seeds = seed_block("quick", 0)
    grid = pd.MultiIndex.from_product([seeds, cfg.dims, cfg.run_names], names=["seed", "d", "name"]).to_frame(
        index=False
    )
    m = len(grid)
    train = rng.normal(size=m)
    jac = 0.5 * train + math.sqrt(0.75) * rng.normal(size=m)
    grid["train_mse"], grid["jacobian"] = train, jac
    grid["test_loss"] = train + effect * jac + rng.normal(size=m)
    return grid


def summarise(results: dict[str, pd.DataFrame], config: T4GeneralisationConfig) -> ChapterSummary:
    r"""Everything the T4 chapter shows, from the study's tables.

    Args:
        results: the study's tables (``runs``, ``by_dim``, ``mnist``, ``rates``).
        config: its config (``seeds``, ``dims``, ``run_names``, ``n_train``, ``epsilon``, ...).

    Returns:
        :class:`~sharpjac.experiments._chapter.ChapterSummary` with tables ``runs`` (with
        ``ratio`` = bound / constant predictor's test loss), ``mean`` (:data:`MEAN_COLUMNS`
        averaged over seeds per ``d`` and run) and ``rates``; the glued values; and the inputs of
        the four claims. The ranking claim is the difference of Kendall's :math:`\tau` with the
        test loss, bound minus sharpness, with a 95 % interval from a paired cluster bootstrap over
        (seed, d) groups (:func:`sharpjac.analysis.compare_predictors`, bootstrap seed 0).
    """
    seeds, dims = config.seeds, list(config.dims)
    n_seeds = len(seeds)
    t4 = results["runs"].copy()
    t4["ratio"] = t4["total"] / t4["trivial"]
    v: dict[str, Any] = {
        "n_train": config.n_train,
        "num_probe": config.num_probe,
        "n_seeds": n_seeds,
        "epsilon": config.epsilon,
        "lipschitz_g": config.lipschitz,
        "noise_std": max(config.label_noises),
        "n_runs": len(config.run_names),
    }
    mean = t4.groupby(["d", "name"], sort=False, as_index=False)[list(MEAN_COLUMNS)].mean()
    claims: dict[str, dict[str, Any]] = {}
    viol = int((t4["test_loss"] > t4["total"]).sum())
    claims["t4_generalisation.bound_holds_measured"] = dict(
        evidence=(
            f"{viol} of {len(t4)} runs ({len(dims)} dimensions, {len(config.run_names)} runs, "
            f"{plural(n_seeds, 'seed')}) have a test loss above the bound with the measured covering radius; the "
            f"bound is {(t4['total'] / t4['test_loss']).min():.1f} to {(t4['total'] / t4['test_loss']).max():.1f} "
            "times the test loss."
        ),
        seeds=n_seeds,
        violations=viol,
        checks=len(t4),
        margin=f"largest test loss / bound = {(t4['test_loss'] / t4['total']).max():.3f} (fails above 1)",
    )
    viol1 = int((t4["test_loss"] > t4["total_t1"]).sum())
    claims["t4_generalisation.bound_holds_t1"] = dict(
        evidence=(
            f"With $\\delta(N,\\varepsilon)$ from T1 ($\\varepsilon={config.epsilon}$, $L_g={config.lipschitz:g}$: "
            + ", ".join(f"{t4.loc[t4.d == d, 'delta_t1'].iloc[0]:.2f} for $d={d}$" for d in dims)
            + ", against measured radii "
            + ", ".join(f"{t4.loc[t4.d == d, 'delta'].iloc[0]:.3f}" for d in dims)
            + f"), {viol1} of {len(t4)} runs have a test loss above the bound; it is vacuous in "
            f"{int(t4['vacuous_t1'].sum())} of {len(t4)} runs."
        ),
        seeds=n_seeds,
        violations=viol1,
        checks=len(t4),
        margin=f"largest test loss / bound = {(t4['test_loss'] / t4['total_t1']).max():.3f} (fails above 1)",
    )
    best = t4.loc[t4["ratio"].idxmin()]
    claims["t4_generalisation.bound_informative"] = dict(
        evidence=(
            f"The smallest ratio of the bound (measured $\\delta$) to the constant predictor's test loss is "
            f"{best['ratio']:.2f} ({best['name']}, $d={int(best['d'])}$, seed {int(best['seed'])}); the bound is "
            f"vacuous in {int(t4['vacuous'].sum())} of {len(t4)} runs."
        ),
        seeds=n_seeds,
        value=float(best["ratio"]),
        label="min bound / constant predictor",
    )
    sentences = []
    for d in dims:
        sub = t4[t4.d == d]
        dominant = sub["dominant"].value_counts()
        sentences.append(
            f"For $d={d}$ the covering radius is $\\delta=$ {sub['delta'].iloc[0]:.3f}; the bound is at best "
            f"{(sub['total'] / sub['test_loss']).min():.1f} times the true test loss and is vacuous in "
            f"{int(sub['vacuous'].sum())} of {len(sub)} runs; its largest term is most often the "
            f"{dominant.index[0]} term ({dominant.iloc[0]} of {len(sub)} runs)."
        )
    emp_ratio = float((t4["empirical"] / t4["test_loss"]).median())
    v["t4_dims_sentence"] = (
        " ".join(sentences)
        + f" The empirical term alone is {emp_ratio:.2f} times the test loss (median over runs): "
        + choose(
            emp_ratio > 0.5,
            "close to it, so the Lipschitz budget multiplied by $\\delta$ is what makes the bound large.",
            "well below it, so the empirical term alone would underestimate the test loss.",
        )
    )
    t1_ratio = float((t4["total_t1"] / t4["total"]).median())
    v["t4_t1_sentence"] = (
        f"With T1's $\\delta(N,\\varepsilon)$ instead of the measured radius the bound is {t1_ratio:.0f} times "
        f"larger (median over runs) and vacuous in {int(t4['vacuous_t1'].sum())} of {len(t4)} runs: the theorem's "
        "own covering function pays for the worst-case constant $2L_g\\sqrt d$ and for holding with probability "
        "$1-\\varepsilon$ without looking at the data."
    )
    rank = ranking_test(t4)
    sharp = ranking_test(t4, x="sharpness")
    base = within_rho(t4, "train_mse")
    seeds_present = tuple(sorted(t4["seed"].unique()))
    fragility = (
        inference.leave_one_out(lambda kept: ranking_outcome(t4[t4.seed.isin(kept)]), seeds_present)
        if len(seeds_present) >= 2
        else None
    )
    per_d = t4.groupby("d").size()
    claims["t4_generalisation.bound_ranks_runs"] = dict(
        evidence=(
            f"Within each dimension ({', '.join(f'{n} runs for $d={d}$' for d, n in per_d.items())}: "
            f"{len(config.run_names)} settings × {plural(n_seeds, 'seed')}), the partial Spearman correlation of the "
            f"test loss with T4's Jacobian term $\\delta\\max_i\\|Jf(x_i)\\|$ at equal training loss is "
            f"{rank['estimate']:.2f} (mean over $d$; permutation test, one-sided p = {rank['p_greater']:.3f}, "
            f"{RANK_PERMUTATIONS} permutations of the Jacobian term within $d$). "
            f"Beside it: the training loss alone gives $\\rho=${base:.2f} with the test loss, and sharpness at "
            "equal training loss "
            f"{sharp['estimate']:.2f} (p = {sharp['p_greater']:.3f})."
        ),
        seeds=n_seeds,
        p_greater=rank["p_greater"],
        p_less=rank["p_less"],
        min_p=rank["min_p"],
        estimate=rank["estimate"],
        label="partial ρ(test loss, Jacobian term | training loss), mean over d",
        unit="runs",
        n_units=int(rank["n"]),
        fragility=fragility,
    )
    v["t4_rank_sentence"] = (
        f"Within each dimension, at equal training loss, T4's Jacobian term and the test loss have a partial Spearman "
        f"correlation of {rank['estimate']:.2f} (mean over $d$, permutation p = {rank['p_greater']:.3f}); sharpness "
        f"has {sharp['estimate']:.2f} (p = {sharp['p_greater']:.3f}), and the training loss alone, the baseline, "
        f"has $\\rho=${base:.2f} with the test loss. "
        + choose(
            bool(rank["p_greater"] <= _claims.get("t4_generalisation.bound_ranks_runs").rule.alpha),
            "At equal training loss the Jacobian term still orders the runs, beyond what the training loss gives. ",
            "Most of the ordering comes from the training loss: at equal training loss the Jacobian term's "
            "association with the test loss is not distinguishable from chance in these runs. ",
        )
        + f"The runs share one data set per dimension, so the test is conditional on it; with "
        f"{len(config.run_names)} settings × {plural(n_seeds, 'seed')} per dimension these are few runs, and the "
        "experiment chapters compare the predictors across many more."
    )
    noisy = t4[t4.label_noise > 0]
    base = t4[t4.name == config.run_names[0]].set_index(["seed", "d"])
    nz = noisy.set_index(["seed", "d"])
    below = int((noisy["total_noisy"] < noisy["test_loss"]).sum())
    worse = float((nz["test_loss"] / base["test_loss"]).median())
    v["t4_noise_sentence"] = (
        f"For the label-noise runs (mean over {plural(n_seeds, 'seed')} and both dimensions) the Voronoi-weighted "
        f"loss on the noisy targets is {noisy['empirical_noisy'].mean():.3f}, on the clean targets "
        f"{noisy['empirical'].mean():.3f}, and the true test loss {noisy['test_loss'].mean():.3f}, "
        f"{worse:.1f} times the baseline's (median ratio). "
        + choose(
            noisy["empirical_noisy"].mean() < noisy["empirical"].mean(),
            "The network fits the noise better than the function: its noisy training loss is the smaller one. ",
            "The network does not fit the noise: its loss on the noisy targets is the larger one. ",
        )
        + f"The version of the bound with noisy targets ({noisy['total_noisy'].mean():.3f}, mean) "
        + choose(
            below > 0,
            f"falls below the test loss in {below} of {len(noisy)} runs: without $y_i=f^*(x_i)$ it is not a bound.",
            f"stays above the test loss in all {len(noisy)} runs here, but only because the Lipschitz budget times "
            "$\\delta$ is large; nothing in the proof guarantees it, and a run that fits the noise with a smaller "
            "Jacobian could cross it.",
        )
        + " Only the clean-target version is guaranteed; the theorem covers noisy labels only through $f^*$ (make "
        "the noise part of the target, which destroys its Lipschitz constant)."
    )
    dims_mnist = results["mnist"].iloc[0]
    v["d_twonn"] = float(dims_mnist["d_twonn"])
    v["d_lb"] = float(dims_mnist["d_levina_bickel"])
    v["n_mnist"] = int(dims_mnist["n_images"])
    v["shrink_1e3_1e6"] = float(dims_mnist["shrink_1e3_1e6"])
    n_vac_all = int(t4["vacuous"].sum())
    d_hat = float(dims_mnist["d_twonn"])
    v["t4_mnist_sentence"] = (
        f"On {int(dims_mnist['n_images'])} MNIST images the estimates are $\\hat d_{{\\mathrm{{TwoNN}}}}=$ "
        f"{d_hat:.1f} and $\\hat d_{{\\mathrm{{LB}}}}=$ {float(dims_mnist['d_levina_bickel']):.1f}: "
        + choose(d_hat < 784 / 10, "far below the 784 pixels", "not far below the 784 pixels")
        + f", and {d_hat / max(dims):.0f} times the largest $d={max(dims)}$ of the generated data, where "
        f"{config.n_train} points left the bound (measured $\\delta$) vacuous in {n_vac_all} of {len(t4)} runs. At "
        f"$d={int(dims_mnist['d_rate'])}$ (the TwoNN estimate rounded), a thousand times more data shrinks "
        f"$(\\log(N/\\varepsilon)/N)^{{1/d}}$ only to {float(dims_mnist['shrink_1e3_1e6']):.2f} of its value "
        "(from $N=10^3$ to $10^6$)."
    )
    for d in (1, 2):
        r0 = (math.log(config.n_train / config.epsilon) / config.n_train) ** (1 / d)
        r1 = (math.log(400 / config.epsilon) / 400) ** (1 / d)
        v[f"ex1_d{d}"] = r1 / r0
    return ChapterSummary(
        tables={
            "mean_shown": mean.rename(
                columns={"name": "run", "jac_max": "jac_spectral_max"}
                | {c: f"t4_{c}" for c in ("empirical", "jacobian", "variation", "target", "total", "delta")}
                | {"total_t1": "t4_total_t1", "trivial": "t4_trivial"}
            ),
            "runs": t4,
            "mean": mean,
            "rates": results["rates"],
            # one bar per (d, run): the four terms stacked (legend names), the test loss, the constant predictor
            "bars": mean.assign(bar=[f"d={d}: {n}" for d, n in zip(mean["d"], mean["name"])])
            .set_index("bar")[["empirical", "jacobian", "variation", "target", "test_loss", "trivial"]]
            .rename(columns={c: f"term: {c}" for c in ("empirical", "jacobian", "variation", "target")}),
        },
        values=v,
        claims=claims,
        series={
            # the rate per label (column order as in the table), indexed by N: one plot call
            "rates_wide": results["rates"].pivot(index="N", columns="label", values="rate")[
                list(dict.fromkeys(results["rates"]["label"]))
            ]
        },
    )


def evaluate(summary: ChapterSummary, preset: str) -> dict[str, Any]:
    """The chapter's verdicts, ``{claim id: Verdict}`` (see :func:`._chapter.evaluate`)."""
    return _evaluate(summary, preset)


def chapter_configs(
    preset: str, seed: int, n_seeds: int | None = None, n_train: int = 100
) -> list[T4GeneralisationConfig]:
    """The chapter's study: ``n_seeds`` training seeds from ``seed`` (default 1 at smoke, 3
    otherwise, although the preset says one), ``data_seed = seed``, ``n_train`` points."""
    seeds = seed_block(preset, seed, n_seeds)
    return [T4GeneralisationConfig.from_preset(preset, seeds=seeds, data_seed=seed, n_train=n_train)]


_claims.known_answer(
    "t4_generalisation.bound_ranks_runs",
    design=(
        "24 runs (2 dimensions x 4 settings x 3 seeds), partial Spearman of test loss and Jacobian term given the "
        "training loss within d, mean over d, 999 within-d permutations, one-sided at 4 %"
    ),
    simulate_false=lambda rng: simulate_runs(rng, 0.0),
    simulate_true=lambda rng: simulate_runs(rng, 1.0),
    decide=ranking_outcome,
    truth=(
        "false: the test loss depends on the training loss only (Jacobian term correlated 0.5 with it); true: "
        "test loss = training loss + 1.0 x Jacobian term + noise (partial correlation about 0.6)"
    ),
)


EXPERIMENT = register(
    NAME,
    T4GeneralisationConfig,
    "T4: the generalisation bound evaluated term by term on manifold regression runs; MNIST's intrinsic dimension",
    chapter="T4: a generalisation bound from the sample Jacobian",
    chapter_configs=chapter_configs,
)
