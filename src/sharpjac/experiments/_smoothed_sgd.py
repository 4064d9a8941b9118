"""What the sharpening chapters' experiments share.

``early_training`` and ``whole_run`` both run mini-batch SGD with momentum and softmax
cross-entropy at several label-smoothing values, one stored run per (smoothing, seed):
:class:`SmoothedSGDConfig` declares the shared fields once (data, architecture, smoothing values,
the SGD run), checks them, and builds the grid; a subclass sets its own defaults and presets
(from :data:`SMOKE` and :data:`PAPER`) and states only its measurement schedule
(:meth:`SmoothedSGDConfig.schedule`).

The three sharpening chapters (those two and ``progressive_sharpening``) also share how their
parameters become runs (:func:`block_configs`), their parameter checks, and the per-run statistics
of a window of measurements (:func:`peak_index`, :func:`window_correlations`, :func:`fmt_interval`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .. import analysis, claims, inference
from ..training import TrainConfig
from .base import ExperimentConfig, architecture_options

#: The smoke preset both SGD experiments start from (each adds its length and schedule).
SMOKE: dict[str, Any] = dict(
    n_train=200, n_test=100, widths=(16,), batch_size=50, sharpness_subset=50, jacobian_subset=20
)
#: The paper preset both SGD experiments start from: CIFAR-10, ResNet-18, SGD as in the paper's Fig. 1 setting.
PAPER: dict[str, Any] = dict(
    dataset="cifar10",
    n_train=50000,
    n_test=10000,
    model="resnet18",
    lr=0.05,
    momentum=0.9,
    batch_size=128,
    weight_decay=5e-4,
    augment=True,
    sharpness_subset=2048,
    jacobian_subset=512,
    seeds=(0, 1, 2),
)


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


# ------------------------------------------------------------------------------------------------
# What the three sharpening chapters share: parameters -> runs, checks, per-run window statistics
# ------------------------------------------------------------------------------------------------

#: Seeds per setting that the smoke and paper presets always use, whatever ``n_seeds`` says.
FIXED_SEEDS = {"smoke": 1, "paper": 3}


def block_configs(config_class, preset: str, seed: int, n_seeds: int, **overrides) -> list:
    """A chapter's one config: ``config_class`` at ``preset`` with training seeds ``seed, seed+1,
    ...`` (``n_seeds`` of them; :data:`FIXED_SEEDS` at smoke and paper), ``data_seed = seed`` and
    ``overrides``."""
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, int) or n_seeds < 1:
        raise ValueError(f"n_seeds={n_seeds!r} is invalid; accepted: an int >= 1")
    n = FIXED_SEEDS.get(preset, n_seeds)
    return [config_class.from_preset(preset, seeds=tuple(range(seed, seed + n)), data_seed=seed, **overrides)]


def check_method(method: str) -> None:
    """One-line ValueError unless ``method`` is ``"spearman"`` or ``"kendall"``."""
    if method not in analysis.METHODS:
        raise ValueError(f"method={method!r}; accepted: {analysis.METHODS}")


def boot_resamples(preset: str) -> int:
    """Bootstrap resamples of a chapter's intervals: 200 at smoke, else 2000."""
    return 200 if preset == "smoke" else 2000


def each_run(runs: pd.DataFrame, by) -> list[tuple[tuple, pd.DataFrame]]:
    """``[(key, rows in step order)]`` per run, a run told apart by the columns ``by``."""
    return [(k, g.sort_values("step")) for k, g in runs.groupby(list(by))]


def peak_index(run: pd.DataFrame, column: str = "sharpness") -> int:
    """Position (0-based, in the run's row order) of the first largest ``column`` value."""
    return int(np.nanargmax(run[column].to_numpy()))


def window_correlations(x, y, method: str = "spearman", kinds=("raw", "differences")) -> dict[str, float]:
    """The rank correlations of one window of paired measurements ``x``, ``y`` (shape ``[n]``).

    ``raw``: :func:`~sharpjac.analysis.rank_correlation` (NaN below 3 measurements);
    ``differences`` and ``detrended``: :func:`~sharpjac.analysis.trend_null_correlation` (NaN
    below 4: first differences of 4 give 3 pairs, the least a rank correlation needs).
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    out = {}
    for kind in kinds:
        if kind == "raw":
            out[kind] = analysis.rank_correlation(x, y, method) if len(x) >= 3 else np.nan
        else:
            out[kind] = analysis.trend_null_correlation(x, y, method, kind=kind) if len(x) >= 4 else np.nan
    return out


def fmt_interval(mean: float, low: float, high: float, n: int, runs: str = "runs") -> str:
    """``"m [lo, hi]"``; says so when undefined or degenerate (naming ``n`` and the noun ``runs``)."""
    if not np.isfinite(mean):
        return "not defined"
    if low == high:
        return f"{mean:.2f} (a degenerate interval: all resamples equal, {n} {runs})"
    return f"{mean:.2f} [{low:.2f}, {high:.2f}]"


def run_labels(frame: pd.DataFrame) -> list[str]:
    """``"smoothing 0.1, seed 2"`` per row of a label-smoothing frame."""
    return [f"smoothing {ls:g}, seed {s}" for ls, s in zip(frame["label_smoothing"], frame["seed"])]


#: The interactive figures' menu (reader label -> column): sharpness, the four Jacobian statistics,
#: the output curvature and the training loss.
CURVES_MENU = {
    "sharpness": "sharpness",
    "max ‖Jf(xᵢ)‖₂": "jac_spectral_max",
    "mean ‖Jf(xᵢ)‖₂": "jac_spectral_mean",
    "max ‖Jf(xᵢ)‖_F": "jac_frobenius_max",
    "mean ‖Jf(xᵢ)‖_F": "jac_frobenius_mean",
    "output curvature C̄": "curvature_norm",
    "training loss": "train_loss",
}


@dataclass(frozen=True)
class SharpeningSummary:
    """The parameters every sharpening chapter's summary carries.

    Attributes:
        preset, seed, n_seeds, method: the chapter's parameters (``n_seeds``: the seeds actually run).
        n_boot: bootstrap resamples (:func:`boot_resamples`).
    """

    preset: str
    seed: int
    n_seeds: int
    n_boot: int
    method: str


# ------------------------------------------------------------------------------------------------
# Verdicts: the cross-run trend null, fragility over seeds, and the known-answer simulators
# ------------------------------------------------------------------------------------------------


def trend_null(
    runs: pd.DataFrame,
    setting: str,
    *,
    window: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    x: str = "sharpness",
    y: str = "jac_spectral_max",
    method: str = "spearman",
    seed: int = 0,
    n_permutations: int = 9999,
) -> inference.TrendNull:
    """Does ``x`` co-move with ``y`` within a run more than across runs of the same ``setting``?

    The runs (seeds) of one value of ``setting`` (a step size, a smoothing value) share that
    setting's trend; pairing one run's ``x`` with another run's ``y`` keeps the trend and nothing
    else. :func:`sharpjac.inference.stratified_trend_null` permutes the runs within each setting
    and compares the mean within-run rank correlation over ``window(run)`` (default: the whole
    run) with those pairings. Runs whose window holds fewer than 3 measurements are left out, and
    a setting with fewer than 2 runs left.

    Returns:
        :class:`~sharpjac.inference.TrendNull` (``p_value`` NaN and ``n_runs`` 0 when no setting
        has 2 usable runs).
    """
    settings = []
    for _, g in runs.groupby(setting):
        xs, ys = [], []
        for _, r in each_run(g, ["seed"]):
            w = window(r) if window is not None else r
            if len(w) >= 3:
                xs.append(w[x].to_numpy(float))
                ys.append(w[y].to_numpy(float))
        if len(xs) >= 2:
            settings.append((xs, ys))
    if not settings:
        nan = float("nan")
        return inference.TrendNull(nan, nan, nan, nan, 0, 0, nan, True)
    return inference.stratified_trend_null(settings, method=method, n_permutations=n_permutations, seed=seed)


def trend_null_words(null: inference.TrendNull, setting: str = "step size", alpha: float = 0.05) -> str:
    """What :func:`trend_null` says, in words chosen by its numbers (``setting``: what the runs share)."""
    if null.n_runs == 0 or not math.isfinite(null.p_value):
        return (
            f"no {setting} has 2 runs with 3 or more measurements in the window, so there is no trend null: too few "
            "runs to decide"
        )
    head = (
        f"against the same {setting}'s other runs (a shared trend and nothing else) the mean within-run "
        f"correlation is {null.observed:.2f} and the mean cross-run one {null.null_mean:.2f}, permutation "
        f"p = {null.p_value:.3g} over {null.n_runs} runs"
    )
    if null.min_p > alpha:
        return head + f": too few runs to decide (the smallest attainable p is {null.min_p:.3g})"
    return head + claims.choose(
        bool(null.p_value <= alpha),
        ", so the co-movement is more than the trend the runs share",
        claims.choose(
            bool(null.p_lower <= alpha),
            ", so the runs co-move less than their shared trend alone would make them",
            ", so the co-movement is not shown to be more than the trend the runs share",
        ),
    )


def seed_fragility(decide: Callable[[tuple], str], seeds) -> inference.Fragility | None:
    """:func:`sharpjac.inference.leave_one_out` over the seeds (``decide(kept seeds) -> outcome``),
    or None with fewer than 2 seeds (not assessed)."""
    seeds = tuple(sorted(set(seeds)))
    return inference.leave_one_out(decide, seeds) if len(seeds) >= 2 else None


def count_verdict(
    claim_id: str,
    hits: pd.DataFrame,
    column: str,
    *,
    evidence: str,
    preset: str,
    n_seeds: int,
    label: str,
) -> claims.Verdict:
    """A :class:`~sharpjac.claims.rules.Count` claim over runs: ``k`` = runs whose boolean ``column``
    holds among the ``n`` rows of ``hits`` (one row per run, with a ``seed`` column), unit "runs",
    fragility leaving out each seed (all its runs) in turn."""
    rule = claims.get(claim_id).rule
    seeds, hit = hits["seed"].to_numpy(), hits[column].to_numpy(bool)

    def decide(kept) -> str:
        keep = np.isin(seeds, kept)
        return rule.decide(k=int(hit[keep].sum()), n=int(keep.sum()))

    k, n = int(hits[column].sum()), len(hits)
    return claims.evaluate(
        claim_id,
        evidence=evidence,
        preset=preset,
        seeds=n_seeds,
        unit="runs",
        n_units=n,
        fragility=seed_fragility(decide, hits["seed"]),
        k=k,
        n=n,
        estimate=k / n if n else float("nan"),
        label=label,
    )


def permutation_verdict(
    claim_id: str,
    null: inference.TrendNull,
    fragility: inference.Fragility | None,
    *,
    evidence: str,
    preset: str,
    n_seeds: int,
    label: str,
) -> claims.Verdict:
    """A :class:`~sharpjac.claims.rules.Permutation` claim decided by :func:`trend_null`, unit "runs"."""
    return claims.evaluate(
        claim_id,
        evidence=evidence,
        preset=preset,
        seeds=n_seeds,
        unit="runs",
        n_units=int(null.n_runs),
        fragility=fragility,
        **null.numbers(),
        estimate=null.observed,
        label=label,
    )


def trend_fragility(claim_id: str, runs: pd.DataFrame, null_of: Callable[[pd.DataFrame], inference.TrendNull]):
    """Leave-one-seed-out of a trend-null claim: ``null_of(runs of the kept seeds)`` decided by the claim's rule."""
    rule = claims.get(claim_id).rule

    def decide(kept) -> str:
        return rule.decide(**null_of(runs[runs["seed"].isin(kept)]).numbers())

    return seed_fragility(decide, runs["seed"])


def simulate_trend_runs(
    rng: np.random.Generator,
    setting: str,
    values,
    *,
    coupled: bool,
    n_seeds: int = 5,
    steps=None,
    extra: dict | None = None,
) -> pd.DataFrame:
    """Runs with a known answer for a trend-null claim, the chapters' records in miniature.

    Each value of ``setting`` has its own saturating trend :math:`(1-e^{-t/300})^{1+g}` (g its
    position), shared by its ``n_seeds`` runs. ``coupled=False`` (the claim is false): sharpness and
    Jacobian share only that trend (independent 1 % noise each), the case a first-difference or
    raw within-run correlation mistakes for a link. ``coupled=True`` (true): the Jacobian follows its
    own run's sharpness, fluctuations included (5 % fluctuations of sharpness, Jacobian = 2 x
    sharpness + 2 % noise). ``steps``: the measurement steps (default 30 log-spaced steps up to 2,000,
    as in ``tests/test_inference.py``). Columns: ``setting``, ``seed``, ``step``, ``sharpness``,
    ``jac_spectral_max`` and the constant columns of ``extra``.
    """
    steps = np.unique(np.geomspace(1, 2000, 30).astype(int)) if steps is None else np.asarray(steps)
    frames = []
    for g, value in enumerate(values):
        trend = (1 - np.exp(-(steps + 1.0) / 300.0)) ** (1.0 + g)
        for s in range(n_seeds):
            if coupled:
                x = trend * (1 + 0.05 * rng.normal(size=len(steps)))
                y = 2 * x + 0.02 * rng.normal(size=len(steps))
            else:
                x = trend * (1 + 0.01 * rng.normal(size=len(steps)))
                y = 2 * trend * (1 + 0.01 * rng.normal(size=len(steps)))
            frames.append(
                pd.DataFrame({setting: value, "seed": s, "step": steps, "sharpness": x, "jac_spectral_max": y})
            )
    out = pd.concat(frames, ignore_index=True)
    for k, v in (extra or {}).items():
        out[k] = v
    return out
