r"""Theorem T3 along training: low loss forces a large Jacobian.

For the book chapter *T3: low loss forces a large Jacobian*. Four full-batch gradient-descent runs
(heavy-ball momentum 0.9) of a small tanh MLP on two-class ``manifold`` data (:math:`d=2` in
:math:`\mathbb R^{16}`, float64): squared error (step size 0.05) and cross-entropy (0.1), each
with the true labels and with random labels (``label_noise=0.5``: every label a fair coin flip).
At each kept network, :func:`t3_track` evaluates the T3 bound on the hardest pairs (the closest
differently labelled training pairs, joined by paths in the support) and the Jacobians above it.

Presets are the project's own choices: ``smoke`` runs in seconds, ``quick`` in a few minutes on
a laptop CPU, ``paper`` trains wider networks on 1,000 points for 20,000 steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from .. import claims as _claims
from ..claims import choose
from ..training import TrainConfig
from . import register
from ._chapter import ChapterSummary, plural, seed_block
from ._chapter import evaluate as _evaluate
from .base import StudyConfig, trained_run

NAME = "t3_low_loss"
MOMENTUM = 0.9
LABELS = {"true": 0.0, "random": 0.5}  # label_noise of each labelling (two classes: 0.5 is a fair coin)


def _pairs(n: int) -> str:
    """``"1 (seed, loss) pair"``, ``"4 (seed, loss) pairs"``."""
    return f"{n} (seed, loss) pair" + ("" if n == 1 else "s")


def t3_track(
    models: Mapping[int, nn.Module],
    x: Tensor,
    labels: Tensor,
    latents: Tensor,
    generator: Callable[[Tensor], Tensor],
    *,
    loss: str = "mse",
    num_pairs: int = 10,
    path_points: int = 100,
    radius: float | None = None,
    lv_samples: int = 16,
    lv_ascent_steps: int = 2,
    seed: int = 0,
) -> pd.DataFrame:
    r"""Theorem T3 along training: the bound on the hardest pairs and the Jacobians above it.

    The ``num_pairs`` closest differently labelled training pairs
    (:func:`sharpjac.theory.hardest_pairs`) are joined by the paths
    :math:`\gamma_p(t)=g((1-t)z_i+tz_j)` in :math:`S`, of length :math:`D_p` (a polyline of
    ``path_points`` points; an upper bound on :math:`d_S`). For each network:

    * ``rho`` (MSE: :math:`\max_i\|f(x_i)-e_{y_i}\|`) or ``eta`` (CE: the largest per-sample loss);
    * ``bound_path``: the largest per-pair bound on :math:`\sup_{\gamma_p}\|Jf\|`,
      :math:`(\sqrt2-2\rho)/D_p` (MSE) or :math:`\sqrt2m(\eta)/D_p` (CE);
    * ``path_sup``: :math:`\sup_{\gamma_p}\|Jf\|` measured on the path points, for the pair with
      the largest bound, and ``path_margin`` = min over pairs of measured sup minus bound (>= 0
      up to the discretisation of the path when the theorem holds);
    * ``path_length``: :math:`D_p` of that pair;
    * ``sample_max`` :math:`\max_m\|Jf(x_m)\|`, ``sample_mean``, ``local_variation``
      :math:`\max_m\hat\phi_m` at radius :math:`\delta` (default: the largest nearest-neighbour
      distance of the sample, a proxy for the covering radius), and ``bound_theorem`` =
      ``bound_path - local_variation``, T3's lower bound on ``sample_max``;
    * ``train_loss`` (mean), ``train_acc``;
    * ``in_regime``: whether the bound is positive, i.e. the network is in the theorem's regime
      (MSE: :math:`\rho<1/\sqrt2`, every output within :math:`1/\sqrt2` of its one-hot label; CE:
      :math:`\eta<\log2`, every training point classified correctly with probability above 1/2)
      for the hardest pair; ``n_checked`` / ``n_violations``: pairs with a positive bound, and those
      whose measured ``sup`` falls below the bound by more than 1e-9 relative (should be none).

    Args:
        models: ``{step: network}`` (e.g. :attr:`sharpjac.experiments.TrainedRun.models`); not
            modified.
        x: training inputs ``[N, n]``; labels: int64 ``[N]`` (the labels trained on);
        latents: ``[N, d]`` with ``x == generator(latents)``; generator: :math:`g`.
        loss: ``"mse"`` (one-hot targets, the book's :math:`\frac1k\|z-e_y\|^2`) or ``"ce"``.
        num_pairs, path_points: the hardest pairs and the points of each path.
        radius, lv_samples, lv_ascent_steps, seed: the local-variation search
            (:func:`sharpjac.jacobians.local_variation`).

    Returns:
        DataFrame, one row per network, sorted by step.
    """
    from .. import jacobians as _jac
    from .. import losses as _losses
    from .. import theory
    from ..theory import knn_distances

    if loss not in ("mse", "ce"):
        raise ValueError(f"loss={loss!r} is invalid; accepted: 'mse', 'ce'")
    if not models:
        raise ValueError("models={} is invalid; accepted: a non-empty mapping {step: network}")
    pairs = theory.hardest_pairs(x, labels, num_pairs)
    with torch.no_grad():
        paths = theory.latent_path(generator, latents[pairs.i], latents[pairs.j], path_points).to(x.dtype)
        D = theory.polyline_length(paths).to(torch.float64)
    if radius is None:
        radius = float(knn_distances(x, 1, 1024)[:, 0].max())
    rows = []
    per_loss = _losses.get_loss(loss, reduction="none")
    for step in sorted(models):
        model = models[step]
        with torch.no_grad():
            out = model(x)
            per = per_loss(out, labels)
            if loss == "mse":
                onehot = torch.nn.functional.one_hot(labels, out.shape[1]).to(out.dtype)
                level = theory.residual_radius(out, onehot)
                bounds = theory.t3_lower_bound(torch.full_like(D, math.sqrt(2.0)), D, level, 0.0)
            else:
                level = float(per.max())
                # eta = 0 exactly (float underflow) would make the bound infinite; clamp to the tiniest double
                bounds = theory.t3_ce_bound(max(level, 1e-300), D)
            jp = _jac.jacobian_norms(model, paths.reshape(-1, paths.shape[-1])).reshape(paths.shape[:2])
            sup = jp.max(dim=1).values.to(torch.float64)
            js = _jac.jacobian_norms(model, x)
        phi = _jac.local_variation(model, x, radius, num_samples=lv_samples, ascent_steps=lv_ascent_steps, seed=seed)
        best = int(bounds.argmax())
        positive = bounds > 0
        # relative slack 1e-9: the path supremum is measured on the polyline's points, the bound uses its length
        below = positive & (sup < bounds * (1 - 1e-9))
        rows.append(
            {
                "step": int(step),
                "train_loss": float(per.mean()),
                "train_acc": float((out.argmax(1) == labels).double().mean()),
                ("rho" if loss == "mse" else "eta"): level,
                "bound_path": float(bounds[best]),
                "path_sup": float(sup[best]),
                "path_margin": float((sup - bounds).min()),
                "path_length": float(D[best]),
                "sample_max": float(js.max()),
                "sample_mean": float(js.mean()),
                "local_variation": float(phi.max()),
                "bound_theorem": float(bounds[best]) - float(phi.max()),
                "in_regime": bool(bounds[best] > 0),
                "n_checked": int(positive.sum()),
                "n_violations": int(below.sum()),
            }
        )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class T3Config(StudyConfig):
    r"""Theorem T3 along four runs: MSE and CE, true and random labels.

    ``data_seed`` draws the sample (and the random labels); each of ``seeds`` the initialisation
    and the local-variation search (the chapter uses one seed for both).

    Attributes:
        n_train: training points (10 test points).
        widths: hidden widths of the tanh MLP (two outputs).
        steps: gradient-descent steps.
        snapshots: steps at which the bound is evaluated (each in ``[0, steps]``).
        num_pairs: hardest pairs on which the bound is evaluated.
        lr_mse, lr_ce: step sizes of the squared-error and cross-entropy runs.
        chord_points: points of the paths whose length is compared with the Euclidean distance.
    """

    n_train: int = 100
    widths: tuple[int, ...] = (32, 32)
    steps: int = 1000
    snapshots: tuple[int, ...] = (0, 30, 100, 300, 1000)
    num_pairs: int = 10
    lr_mse: float = 0.05
    lr_ce: float = 0.1
    chord_points: int = 200
    device: str = "cpu"
    dtype: str = "float64"

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(n_train=60, widths=(16,), steps=60, snapshots=(0, 20, 60)),
        # quick: 4,000 steps and the squared-error step 0.2 take all four runs (random labels included) to
        # 100 % training accuracy, i.e. into the bound's regime (rho < 1/sqrt 2, eta < log 2) at the last step
        "quick": dict(n_train=100, widths=(32, 32), steps=4000, snapshots=(0, 100, 300, 1000, 4000), lr_mse=0.2),
        "paper": dict(
            n_train=1000, widths=(256, 256), steps=20000, snapshots=(0, 30, 100, 300, 1000, 3000, 10000, 20000)
        ),
    }

    def _check(self) -> None:
        self._need_positive("n_train", "widths", "steps", "num_pairs", "lr_mse", "lr_ce")
        self._need(self.n_train >= 2, "n_train", "an int >= 2")
        self._need(self.chord_points >= 2, "chord_points", "an int >= 2")
        self._need(
            len(self.snapshots) > 0
            and all(0 <= s <= self.steps for s in self.snapshots)
            and len(set(self.snapshots)) == len(self.snapshots),
            "snapshots",
            f"a non-empty tuple of distinct steps in [0, steps={self.steps}]",
        )

    def dataset_options(self, labels: str) -> dict[str, Any]:
        """Options of the two-class ``manifold`` data set for ``labels`` (``"true"`` or ``"random"``)."""
        return {
            "d": 2,
            "n": 16,
            "lipschitz": 30.0,
            "n_train": self.n_train,
            "n_test": 10,
            "label_noise": LABELS[labels],
        }

    def train_config(self, loss: str, labels: str, seed: int) -> TrainConfig:
        """Full-batch GD with momentum 0.9 on ``loss``, kept at ``snapshots``."""
        return TrainConfig(
            dataset="manifold",
            dataset_options=self.dataset_options(labels),
            data_seed=self.data_seed,
            model="mlp",
            model_options={"widths": list(self.widths), "activation": "tanh"},
            loss=loss,
            optimizer="gd",
            lr=self.lr_mse if loss == "mse" else self.lr_ce,
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

    def runs(self) -> list[tuple[dict[str, Any], TrainConfig]]:
        """``({"seed", "labels", "loss"}, TrainConfig)`` for every run, in the chapter's order."""
        return [
            ({"seed": seed, "labels": labels, "loss": loss}, self.train_config(loss, labels, seed))
            for seed in self.seeds
            for labels in LABELS
            for loss in ("mse", "ce")
        ]

    def trains(self) -> list[TrainConfig]:
        return [tc for _, tc in self.runs()]

    def compute(self, *, store, progress: bool | None) -> dict[str, pd.DataFrame]:
        """Tables:

        * ``track``: one row per run (``seed``, ``loss``, ``labels``) and kept step, with the
          columns of :func:`t3_track` (``rho`` for MSE runs, ``eta`` for CE runs, NaN otherwise);
        * ``chords``: for the ``num_pairs`` hardest pairs of the true-label sample,
          ``euclidean_distance``, ``path_length`` (the polyline of ``chord_points`` points of
          the latent path in :math:`S`) and their ``ratio``;
        * ``diverged``: the runs that diverged before the last kept step (``seed``, ``labels``,
          ``loss``, ``stopped_at``); they are left out of ``track``.
        """
        from .. import data, theory

        dt = getattr(torch, self.dtype)
        frames = []
        diverged: list[dict[str, Any]] = []
        for lab, tc in self.runs():
            run = trained_run(tc, store=store, progress=progress)
            ds = data.load("manifold", seed=self.data_seed, dtype=dt, **self.dataset_options(lab["labels"]))
            dev = next(run.final.parameters()).device
            missing = sorted(set(self.snapshots) - set(run.models))
            status = run.frame.attrs.get("status", "?")
            if missing and status == "diverged":
                # a run that diverged has no network at the later steps: it is left out of the
                # checks and listed in the ``diverged`` table, which the chapter reports
                diverged.append({**lab, "stopped_at": int(max(run.models))})
                continue
            if missing:
                raise RuntimeError(
                    f"run {lab} kept no network at steps {missing}: it stopped at step {max(run.models)} ({status})"
                )
            track = t3_track(
                {s: run.models[s] for s in sorted(set(self.snapshots))},
                ds.x_train.to(dev),
                ds.y_train.to(dev),
                ds.extras["latent_train"].to(dev),
                ds.extras["generator"],
                loss=lab["loss"],
                num_pairs=self.num_pairs,
                seed=lab["seed"],
            )
            for i, (k, v) in enumerate(lab.items()):
                track.insert(i, k, v)
            frames.append(track)
        if not frames:
            raise RuntimeError(f"every run diverged ({len(diverged)} runs): lower lr_mse / lr_ce")
        track = pd.concat(frames, ignore_index=True)
        ds = data.load("manifold", seed=self.data_seed, dtype=dt, **self.dataset_options("true"))
        pairs = theory.hardest_pairs(ds.x_train, ds.y_train, self.num_pairs)
        with torch.no_grad():
            paths = theory.latent_path(
                ds.extras["generator"],
                ds.extras["latent_train"][pairs.i],
                ds.extras["latent_train"][pairs.j],
                self.chord_points,
            )
            lengths = theory.polyline_length(paths)
        chords = pd.DataFrame(
            {
                "euclidean_distance": pairs.distance.numpy(),
                "path_length": lengths.numpy(),
                "ratio": (lengths / pairs.distance).numpy(),
            }
        )
        diverged_runs = pd.DataFrame(diverged, columns=["seed", "labels", "loss", "stopped_at"])
        return {
            "track": track,
            "chords": chords,
            "diverged": diverged_runs.astype({"seed": "int64", "stopped_at": "int64"}),
        }


def growth_values(final: pd.DataFrame) -> dict[int, float]:
    r"""One value per seed for ``t3_low_loss.random_labels_force_growth``: the mean over losses of
    :math:`\log(\max_i\|Jf(x_i)\|_{\text{random}}/\max_i\|Jf(x_i)\|_{\text{true}})` at the end of
    training, over the (seed, loss) pairs where both labellings are fitted (``in_regime``).

    Args:
        final: the last checkpoint of every run: ``seed, loss, labels`` ("true"/"random"),
            ``sample_max``, ``in_regime``.

    Returns:
        ``{seed: value}``; a seed with no fitted pair is left out.
    """
    rand = final[final["labels"] == "random"].set_index(["seed", "loss"])
    true = final[final["labels"] == "true"].set_index(["seed", "loss"])
    both = rand["in_regime"].astype(bool) & true["in_regime"].astype(bool)
    log_ratio = np.log(rand["sample_max"] / true["sample_max"])[both]
    return {int(k): float(v) for k, v in log_ratio.groupby(level="seed").mean().items()}


#: Spread of the per-seed growth values in the known-answer simulation: the per-(seed, loss) log
#: ratios have standard deviation 0.3 around the seed's mean (a stated assumption, see ``truth``).
GROWTH_NOISE = 0.3


def simulate_final(rng: np.random.Generator, log_effect: float) -> pd.DataFrame:
    r"""One simulated end of training at the quick design (3 seeds x 2 losses x 2 labellings, every run
    fitted): log sample maximum of the true-label run standard normal, of the random-label run
    that plus ``log_effect`` plus :math:`\mathcal N(0, 0.3^2)`."""
    seeds = seed_block("quick", 0)
    rows = []
    for s in seeds:
        for loss in ("mse", "ce"):
            base = rng.normal()
            rows.append({"seed": s, "loss": loss, "labels": "true", "sample_max": math.exp(base), "in_regime": True})
            jump = log_effect + GROWTH_NOISE * rng.normal()
            rows.append(
                {"seed": s, "loss": loss, "labels": "random", "sample_max": math.exp(base + jump), "in_regime": True}
            )
    return pd.DataFrame(rows)


def growth_outcome(final: pd.DataFrame) -> str:
    """The outcome of ``t3_low_loss.random_labels_force_growth`` from a final-checkpoint frame:
    :func:`growth_values`, then a t interval over seeds (:func:`sharpjac.claims.from_clusters`)."""
    return _claims.from_clusters(
        "t3_low_loss.random_labels_force_growth",
        growth_values(final),
        unit="seeds",
        evidence="simulated.",
        preset="quick",
        seeds=3,
    ).outcome


def track_panels(figure_runs: dict[tuple[str, str], pd.DataFrame]) -> dict[str, list[dict[str, Any]]]:
    """The T3 figure's lines, per loss (``"mse"``, ``"ce"``): for each labelling (solid: true, dashed:
    random) the sample maximum, the supremum on the hardest path and the T3 bound where positive,
    against the training loss; specifications for :func:`sharpjac.plotting.plot_series`."""
    curves = (
        ("sample_max", "o", 4, "jacobian", "max$_m\\|Jf(x_m)\\|$"),
        ("path_sup", "s", 3, "curvature", "sup on the path"),
        ("bound_path", "^", 4, "bound", "T3 bound"),
    )
    panels: dict[str, list[dict[str, Any]]] = {}
    for (loss, labels), t in sorted(figure_runs.items(), key=lambda kv: (kv[0][0], kv[0][1] != "true")):
        for column, marker, ms, concept, what in curves:
            keep = t[column] > 0 if column == "bound_path" else pd.Series(True, index=t.index)
            panels.setdefault(loss, []).append(
                {
                    "x": t.loc[keep, "train_loss"].to_numpy(),
                    "y": t.loc[keep, column].to_numpy(),
                    "fmt": "-" if labels == "true" else "--",
                    "marker": marker,
                    "ms": ms,
                    "concept": concept,
                    "label": f"{labels} labels: {what}",
                }
            )
    return panels


def summarise(results: dict[str, pd.DataFrame], config: T3Config) -> ChapterSummary:
    r"""Everything the T3 chapter shows, from the study's tables.

    Runs that diverged (table ``diverged``) are not in ``track`` and are named in ``t3_diverged``.

    Args:
        results: the study's tables (``track``, ``chords``, optionally ``diverged``).
        config: its config (``seeds``, ``num_pairs``, ``steps``, ``lr_mse``, ``lr_ce``).

    Returns:
        :class:`~sharpjac.experiments._chapter.ChapterSummary` with tables ``track`` (with a
        ``run`` label and ``level``, :math:`\rho` for MSE or :math:`\eta` for CE), ``final`` (the
        last step), ``figure_runs`` (a dict ``{(loss, labels): track}`` of the first seed with all
        four runs), ``explorer`` (``track`` with ``bound_positive``, the bound where positive) and
        ``chords``; the glued values and the inputs of the four claims. The growth claim is the
        mean over seeds of :func:`growth_values` (per seed: the mean log ratio of the final
        sample-maximum Jacobian, random over true labels, over the losses where both labellings are
        in the bound's regime), decided by :func:`sharpjac.claims.from_clusters` (95 % t interval over
        seeds).
    """
    seeds, num_pairs = config.seeds, config.num_pairs
    n_seeds = len(seeds)
    track = results["track"].copy()
    diverged = results.get("diverged", pd.DataFrame(columns=["seed", "labels", "loss", "stopped_at"]))
    n_runs = len(seeds) * 4
    v: dict[str, Any] = {}
    v["t3_diverged"] = (
        ""
        if diverged.empty
        else (
            f"{plural(len(diverged), 'run')} of {n_runs} diverged early and "
            + ("is" if len(diverged) == 1 else "are")
            + " left out of every table, figure and check below: "
            + "; ".join(
                f"{r.loss.upper()}, {r.labels} labels, seed {r.seed} (stopped at step {r.stopped_at})"
                for r in diverged.itertuples()
            )
            + "."
        )
    )
    track["run"] = track["loss"].str.upper() + ", " + track["labels"] + " labels, seed " + track["seed"].astype(str)
    track["level"] = track["rho"].fillna(track["eta"])
    final = track[track["step"] == track["step"].max()].reset_index(drop=True)
    init = track[track["step"] == track["step"].min()]
    v.update(num_pairs=num_pairs, steps=config.steps, lr_mse=config.lr_mse, lr_ce=config.lr_ce, n_seeds=n_seeds)
    complete = [s for s in seeds if track.loc[track["seed"] == s, ["loss", "labels"]].drop_duplicates().shape[0] == 4]
    fig_seed = complete[0] if complete else seeds[0]
    v["fig_seed"] = int(fig_seed)
    figure_runs = {
        key: t.reset_index(drop=True) for key, t in track[track["seed"] == fig_seed].groupby(["loss", "labels"])
    }
    claims: dict[str, dict[str, Any]] = {}
    for claim_id, mask, what in (
        ("t3_low_loss.mse_bound_holds", track["loss"] == "mse", "squared-error runs (true and random labels)"),
        ("t3_low_loss.ce_bound_holds", track["loss"] == "ce", "cross-entropy runs (true and random labels)"),
        ("t3_low_loss.random_labels_bound_holds", track["labels"] == "random", "random-label runs (both losses)"),
    ):
        sub = track[mask]
        viol, checks = int(sub["n_violations"].sum()), int(sub["n_checked"].sum())
        regime = sub["in_regime"].astype(bool)
        last = sub[sub["step"] == sub["step"].max()]
        claims[claim_id] = dict(
            evidence=(
                f"Over the {what}, {plural(n_seeds, 'seed')} and {sub['step'].nunique()} checkpoints, {checks} "
                f"(pair, checkpoint) cases have a positive bound and {viol} of them a measured path supremum below "
                f"it. At the last step {int(last['in_regime'].sum())} of {len(last)} runs are in the bound's regime "
                f"(training accuracy {last['train_acc'].min():.2f} to {last['train_acc'].max():.2f})."
            ),
            seeds=n_seeds,
            violations=viol,
            checks=checks,
            margin=choose(
                bool(regime.any()),
                f"smallest measured path supremum − bound = {sub.loc[regime, 'path_margin'].min():.3g} (fails below 0)",
                "no case in the bound's regime",
            ),
        )
    n_final, n_regime = len(final), int(final["in_regime"].sum())
    v["t3_regime_sentence"] = f"At the last step {n_regime} of the {n_final} runs are in the bound's regime" + choose(
        n_regime == n_final,
        ": every one, random labels included, was trained to interpolation.",
        "; the others ("
        + "; ".join(final.loc[~final["in_regime"].astype(bool), "run"])
        + ") were not fitted far enough, and their bound is still empty.",
    )
    positive = track["bound_path"] > 0
    min_margin = float(track.loc[positive, "path_margin"].min()) if positive.any() else float("nan")
    v["t3_margin_sentence"] = choose(
        math.isfinite(min_margin),
        f"Where the bound is positive, the smallest margin between the measured supremum and the bound, over all "
        f"{num_pairs} pairs, runs and checkpoints, is {min_margin:.3g}"
        + choose(min_margin >= 0, " (non-negative: the inequality holds on every path)", " (negative: a violation)")
        + ". "
        + choose(
            bool((init["bound_path"] <= 0).all()),
            "At initialisation the bound is negative, hence empty, in every run; it turns positive once the loss is "
            "small.",
            "The bound is already positive at initialisation in some run.",
        ),
        "The bound is never positive in these runs: none of them reached the regime where T3 says something.",
    )
    ce_true = final[(final["loss"] == "ce") & (final["labels"] == "true")]
    mse_true = final[(final["loss"] == "mse") & (final["labels"] == "true")]
    init_max = float(init["sample_max"].mean())
    v["init_sample_max"] = init_max
    ce_bound = float(ce_true["bound_path"].mean())
    v["t3_ce_sentence"] = (
        f"With the true labels, cross-entropy training ends (mean over {plural(n_seeds, 'seed')}) with a largest "
        f"per-sample loss $\\eta=$ {ce_true['eta'].mean():.2g}, so the bound on the hardest path (length "
        f"{ce_true['path_length'].mean():.3f}) is "
        + choose(ce_bound > 0, f"{ce_bound:.1f}", f"{ce_bound:.1f}, negative, hence empty ($\\eta\\ge\\log2$)")
        + f"; the measured supremum on that path is {ce_true['path_sup'].mean():.1f} and the sample maximum "
        f"{ce_true['sample_max'].mean():.1f}, against {init_max:.2f} at initialisation."
    )
    rho = float(mse_true["rho"].mean())
    v["t3_mse_sentence"] = (
        f"With squared error the residual radius ends at $\\rho=$ {rho:.3f} (mean), "
        + choose(
            bool(mse_true["in_regime"].all()),
            f"below $1/\\sqrt2\\approx0.707$ in every seed, so the squared-error bound is positive "
            f"({mse_true['bound_path'].mean():.2f}); the sample maximum, {mse_true['sample_max'].mean():.1f}, is "
            + choose(
                bool((mse_true["sample_max"] >= mse_true["bound_path"]).all()),
                "above it in every seed.",
                "below it in some seed.",
            ),
            f"not below $1/\\sqrt2\\approx0.707$ in every seed (a few points remain poorly fitted), so the "
            f"squared-error bound ({mse_true['bound_path'].mean():.2f}) is still empty in some run, although the "
            f"sample maximum has grown to {mse_true['sample_max'].mean():.1f}.",
        )
        + " Squared error saturates anyway: even at $\\rho=0$ its bound stops at $\\sqrt2/D$, while the "
        "cross-entropy bound keeps growing like $\\log(1/\\eta)$ as long as training continues."
    )
    rand = final[final["labels"] == "random"].set_index(["seed", "loss"])
    true = final[final["labels"] == "true"].set_index(["seed", "loss"])
    both = rand["in_regime"].astype(bool) & true["in_regime"].astype(bool)
    growth = growth_values(final)
    est = float(np.mean(list(growth.values()))) if growth else float("nan")
    shorter = (true["path_length"] / rand["path_length"]).mean()
    claims["t3_low_loss.random_labels_force_growth"] = dict(
        values=growth,
        unit="seeds",
        evidence=lambda iv: (
            f"Over {_pairs(int(both.sum()))} where both labellings are fitted (in the bound's regime), the "
            "log ratio of the final sample-maximum Jacobian, random over true labels, averaged over the losses of "
            "each seed, has mean "
            + choose(
                math.isfinite(iv.estimate),
                f"{iv.label()} (a factor {math.exp(iv.estimate):.2f})",
                "undefined",
            )
            + f"; the hardest random-label path is {shorter:.2f} times shorter than the true-label one."
        ),
        seeds=n_seeds,
        label="mean log(max‖Jf‖ random / true), per seed",
    )
    v["t3_random_sentence"] = (
        "Random labels put differently labelled points closer together (every neighbourhood now holds both "
        f"classes): the hardest pair's path is {shorter:.2f} times shorter than with the true labels (mean over "
        "seeds and losses), so at the same loss the bound is that many times larger. At the end of training the "
        f"random-label runs reach training accuracy {rand['train_acc'].min():.2f} to {rand['train_acc'].max():.2f}"
        + choose(
            math.isfinite(est),
            f", and their sample maximum is {math.exp(est):.2f} times that of the true-label runs (geometric mean "
            f"over the {_pairs(int(both.sum()))} where both labellings are fitted).",
            "; no (seed, loss) pair has both labellings fitted, so their Jacobians are not compared here.",
        )
    )
    ce_V = ce_true["local_variation"].mean()
    fitted = final[final["in_regime"].astype(bool)]
    v["t3_theorem_sentence"] = (
        f"Here the estimated $V$ (on balls of radius equal to the largest nearest-neighbour distance of the sample) "
        f"is {ce_V:.0f} against a sample maximum of {ce_true['sample_max'].mean():.0f} (cross-entropy, true labels, "
        f"mean), so the right-hand side is {ce_true['bound_theorem'].mean():.0f}: "
        + choose(
            bool((final["bound_theorem"] <= 0).all()),
            f"negative in every run. With {num_pairs} hardest pairs out of a sample this sparse, the theorem is true "
            "but empty for the sample maximum. The path form is the informative one.",
            f"positive in {int((final['bound_theorem'] > 0).sum())} of {len(final)} runs, where it bounds the sample "
            "maximum itself.",
        )
        + " "
        + choose(
            bool(fitted["in_regime"].any()) and bool((fitted["sample_max"] >= fitted["bound_path"]).all()),
            "The sample maximum sits above the path bound in every run in the regime at the end of training: the "
            "Jacobian *at the training points* has grown as the loss fell, which is the empirical content of the "
            "paper's argument.",
            choose(
                bool(fitted["in_regime"].any()),
                "The sample maximum is below the path bound in some run at the end of training: the steep part of "
                "the network lies between the training points, not at them.",
                "No run is in the regime at the end of training, so the path bound says nothing about the sample "
                "maximum here.",
            ),
        )
    )
    chords = results["chords"]
    rmin, rmax = float(chords["ratio"].min()), float(chords["ratio"].max())
    v["t3_chord_sentence"] = (
        f"On this surface the path length exceeds the Euclidean distance by a factor between {rmin:.3f} and "
        f"{rmax:.3f}"
        + choose(rmax < 1.1, " only, so the two versions nearly agree", ", so the two versions differ")
        + "; on a strongly folded support (two sheets of $S$ close in $\\mathbb R^n$ but far along $S$) the "
        "Euclidean version can exceed $\\sup_S\\|Jf\\|$ arbitrarily, because a network may be flat on each sheet and "
        "steep only in the gap between them, where there is no data."
    )
    from .. import theory

    v["ex3_b02"] = float(theory.t3_lower_bound([2**0.5], [0.05], 0.2)[0])
    v["ex3_b00"] = float(theory.t3_lower_bound([2**0.5], [0.05], 0.0)[0])
    return ChapterSummary(
        tables={
            "track": track,
            "final": final,
            "final_shown": final[
                ["loss", "labels", "seed", "train_acc", "level", "in_regime", "bound_path", "path_sup", "sample_max"]
            ].rename(columns={"level": "t3_level", "sample_max": "t3_sample_max"}),
            "explorer": track.assign(bound_positive=track["bound_path"].where(track["bound_path"] > 0)),
            "chords": chords,
        },
        values=v,
        claims=claims,
        series={"figure_runs": figure_runs, "track_panels": track_panels(figure_runs)},
    )


def evaluate(summary: ChapterSummary, preset: str) -> dict[str, Any]:
    """The chapter's verdicts, ``{claim id: Verdict}`` (see :func:`._chapter.evaluate`)."""
    return _evaluate(summary, preset)


def chapter_configs(preset: str, seed: int, n_seeds: int | None = None, num_pairs: int = 10) -> list[T3Config]:
    """The chapter's study: ``n_seeds`` training seeds from ``seed`` (default 1 at smoke, 3
    otherwise, although the preset says one), ``data_seed = seed``, ``num_pairs`` hardest pairs."""
    seeds = seed_block(preset, seed, n_seeds)
    return [T3Config.from_preset(preset, seeds=seeds, data_seed=seed, num_pairs=num_pairs)]


_claims.known_answer(
    "t3_low_loss.random_labels_force_growth",
    design="3 seeds x 2 losses, every run fitted; mean log ratio per seed, 95 % t interval over the 3 seeds",
    simulate_false=lambda rng: simulate_final(rng, 0.0),
    simulate_true=lambda rng: simulate_final(rng, math.log(2.0)),
    decide=growth_outcome,
    truth=(
        "false: the random-label sample maximum equals the true-label one on average (log ratio 0); true: twice it "
        f"(log ratio log 2); per-(seed, loss) log ratios with standard deviation {GROWTH_NOISE}"
    ),
)


EXPERIMENT = register(
    NAME,
    T3Config,
    "T3 along GD training (MSE/CE, true/random labels): low loss forces a large Jacobian",
    chapter="T3: low loss forces a large Jacobian",
    chapter_configs=chapter_configs,
)
