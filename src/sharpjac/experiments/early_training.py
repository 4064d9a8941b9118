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

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .. import analysis, claims, inference
from ..analysis import Interval
from . import _smoothed_sgd as shared
from . import register
from ._smoothed_sgd import (
    PAPER,
    SMOKE,
    SharpeningSummary,
    SmoothedSGDConfig,
    boot_resamples,
    check_method,
    each_run,
    peak_index,
)
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
        "smoke": {**SMOKE, "max_epochs": 1, "measure_every": 2},
        "quick": dict(seeds=(0, 1, 2, 3, 4)),
        "paper": {**PAPER, "max_epochs": 10, "measure_every": 50},
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


# ------------------------------------------------------------------------------------------------
# The chapter: its parameters become runs here, and its statistics are computed here
# ------------------------------------------------------------------------------------------------

#: What the chapter changes in a preset: at quick it measures every 5 steps instead of 10, to
#: resolve the first rise of both curves.
CHAPTER_OVERRIDES: dict[str, dict[str, Any]] = {"quick": {"measure_every": 5}}


def chapter_configs(preset: str, seed: int, n_seeds: int = 5) -> list[EarlyTrainingConfig]:
    """The chapter's one config: ``n_seeds`` training seeds ``seed, seed+1, ...`` per smoothing value
    (1 at smoke, 3 at paper), ``data_seed = seed``, and :data:`CHAPTER_OVERRIDES`."""
    return shared.block_configs(EarlyTrainingConfig, preset, seed, n_seeds, **CHAPTER_OVERRIDES.get(preset, {}))


#: The chapter's claims.
TRACKS_CLAIM = "early_training.jacobian_tracks_sharpness"
SCALE_CLAIM = "early_training.curvature_explains_scale"
#: Reader labels of the table at the end of the early phase.
END_LABELS = {"label_smoothing": "", "curvature_norm": "final C̄", "ratio": "final sharpness / max ‖Jf(xᵢ)‖₂"}
#: The Jacobian statistics as the correlation figure's rows name them.
STAT_NAMES = {
    "jac_spectral_max": "spectral, max",
    "jac_spectral_mean": "spectral, mean",
    "jac_frobenius_max": "Frobenius, max",
    "jac_frobenius_mean": "Frobenius, mean",
}
#: How the correlation figure draws a table of intervals per (smoothing, statistic) with its runs
#: (:func:`sharpjac.plotting.interval_dots`): one row per statistic, one colour per smoothing value.
DOT_STYLE: dict[str, Any] = {
    "rows": "statistic",
    "order": tuple(STAT_NAMES),
    "by": "label_smoothing",
    "step": 0.22,
    "label": "smoothing {label_smoothing:g}",
}
#: The interactive figure's menu (reader label -> column) and hover columns.
CURVES_MENU = shared.CURVES_MENU
CURVES_HOVER = ["label_smoothing", "seed", "step", "train_acc"]


def prepared(runs: pd.DataFrame) -> pd.DataFrame:
    r"""A copy of the runs with a float ``epoch``, ``ratio`` = sharpness / :math:`\max_i\|Jf(x_i)\|_2`
    and a ``run`` label (``"smoothing 0.1, seed 2"``), ready to plot."""
    out = runs.copy()
    out["epoch"] = out["epoch"].astype(float)
    out["ratio"] = out["sharpness"] / out["jac_spectral_max"]
    out["run"] = shared.run_labels(out)
    return out


def epoch_means(runs: pd.DataFrame) -> pd.DataFrame:
    """Means over seeds per (label smoothing, epoch) of sharpness, :math:`\\max_i\\|Jf(x_i)\\|_2`,
    the output curvature and their ratio (columns ``label_smoothing``, ``epoch`` and those four),
    from :func:`prepared` runs: the figures' thick lines."""
    cols = ["sharpness", "jac_spectral_max", "curvature_norm", "ratio"]
    return runs.groupby(["label_smoothing", "epoch"])[cols].mean().reset_index()


def difference_correlations(runs: pd.DataFrame, *, method: str = "spearman") -> pd.DataFrame:
    """Per run and Jacobian statistic: the rank correlation of the first differences of sharpness and
    the statistic (:func:`~sharpjac.analysis.trend_null_correlation`), columns ``label_smoothing``,
    ``seed``, ``statistic``, ``rho``."""
    rows = []
    for (ls, s), g in each_run(runs, ["label_smoothing", "seed"]):
        for stat in analysis.JACOBIAN_COLUMNS:
            rho = analysis.trend_null_correlation(g["sharpness"], g[stat], method, kind="differences")
            rows.append({"label_smoothing": ls, "seed": s, "statistic": stat, "rho": rho})
    return pd.DataFrame(rows)


def fmt_interval(mean: float, low: float, high: float, n: int) -> str:
    """``"m [lo, hi]"``; says so when undefined or degenerate (:func:`._smoothed_sgd.fmt_interval`)."""
    return shared.fmt_interval(mean, low, high, n, "run(s)")


def row_text(table: pd.DataFrame, ls: float, stat: str = "jac_spectral_max") -> str:
    """:func:`fmt_interval` of the (smoothing, statistic) row of a ``summarise_correlations`` table."""
    r = table[(table.label_smoothing == ls) & (table.statistic == stat)].iloc[0]
    return fmt_interval(r["mean"], r["low"], r["high"], int(r["runs"]))


def after_peak_changes(runs: pd.DataFrame, ls: float) -> np.ndarray:
    """Mean over the seeds of smoothing ``ls`` of the log change of sharpness and of
    :math:`\\max_i\\|Jf(x_i)\\|_2` from the (first) sharpness peak to the end: shape ``[2]``."""
    d = []
    for _, g in each_run(runs[runs.label_smoothing == ls], ["seed"]):
        p = peak_index(g)
        d.append(
            (
                np.log(g["sharpness"].iloc[-1] / g["sharpness"].iloc[p]),
                np.log(g["jac_spectral_max"].iloc[-1] / g["jac_spectral_max"].iloc[p]),
            )
        )
    return np.mean(d, axis=0)


def late_sentence(runs: pd.DataFrame, raw: pd.DataFrame, smoothings) -> str:
    """The sentence on smoothing values whose whole-phase correlation interval lies below zero."""
    late_neg = [
        ls
        for ls in smoothings
        if raw[(raw.label_smoothing == ls) & (raw.statistic == "jac_spectral_max")]["high"].iloc[0] < 0
    ]
    after = {ls: after_peak_changes(runs, ls) for ls in late_neg}
    opposite = bool(late_neg) and all(after[ls][0] < 0 < after[ls][1] for ls in late_neg)
    return claims.choose(
        bool(late_neg),
        "With smoothing " + ", ".join(f"{v:g}" for v in late_neg) + " the correlation over the whole early phase "
        "is negative"
        + claims.choose(
            opposite,
            ": after the peak sharpness falls while the Jacobian keeps rising (mean log changes from the peak to "
            "the end: "
            + "; ".join(f"sharpness {after[ls][0]:+.2f}, Jacobian {after[ls][1]:+.2f}" for ls in late_neg)
            + "), and that later stretch dominates the window.",
            ".",
        ),
        "No smoothing value has a whole-phase correlation whose interval lies below zero.",
    )


def scale_values(last: pd.DataFrame, *, method: str = "spearman") -> dict[int, float]:
    """Per seed: the rank correlation across the smoothing values between the final output curvature
    ``curvature_norm`` and the final ``ratio`` (sharpness / max‖Jf‖), from one row per run at its
    last measurement (NaN, and so left out of the interval, when either ties throughout)."""
    return {
        int(s): analysis.rank_correlation(g["curvature_norm"].to_numpy(float), g["ratio"].to_numpy(float), method)
        for s, g in last.groupby("seed")
    }


def scale_effect(last: pd.DataFrame, *, method: str = "spearman") -> inference.ClusterInterval:
    """The mean of :func:`scale_values` with a 95 % t interval over seeds (none below 3 seeds)."""
    return inference.t_interval(list(scale_values(last, method=method).values()), unit="seeds")


def scale_sentence(link: inference.ClusterInterval) -> str:
    """What the curvature-ratio correlation says about the paper's explanation of the drift in scale."""
    if link.too_few:
        return f"too few seeds ({link.n}) to say whether the ratio follows the output curvature"
    return claims.choose(
        bool(link.low > 0),
        "where the output curvature is larger, each unit of Jacobian buys more sharpness, which is the drift in "
        "scale that the paper reports across smoothing values",
        claims.choose(
            bool(link.high < 0),
            "where the output curvature is larger, each unit of Jacobian buys *less* sharpness, the opposite of "
            "the paper's explanation",
            "the interval contains zero, so these runs do not tie the ratio to the output curvature",
        ),
    )


@dataclass(frozen=True)
class Summary(SharpeningSummary):
    """Everything the chapter shows, computed from its runs (see :func:`summarise`).

    Attributes:
        preset, seed, n_seeds, n_boot, method: the chapter's parameters (``n_boot``: 200 at smoke, else 2000).
        runs: :func:`prepared` runs; means: their :func:`epoch_means`; smoothings: the smoothing values, sorted.
        per_run, diffs: per-run raw and first-difference correlations with each Jacobian statistic.
        raw, differences, to_peak: their means over seeds per (smoothing, statistic) with intervals,
            and the raw ones up to the sharpness peak.
        correlation_rows: the table of intervals (``max ‖Jf‖₂``) per smoothing value.
        pooled: the first-difference correlation pooled over all runs (the claim's number).
        end: means at the end of the early phase per smoothing (``curvature_norm``, ``ratio``).
        n_last: runs at the end; link: :func:`scale_effect` of those runs (a t interval over seeds).
        last: one row per run at its last measurement.
        null, fragility: the claim's cross-run trend null (:func:`trend_null_of`) and its outcome with
            each seed left out.
        numbers, markdown: the glued values and sentences.
    """

    runs: pd.DataFrame
    means: pd.DataFrame
    smoothings: list[float]
    per_run: pd.DataFrame
    diffs: pd.DataFrame
    raw: pd.DataFrame
    differences: pd.DataFrame
    to_peak: pd.DataFrame
    correlation_rows: pd.DataFrame
    pooled: Interval
    end: pd.DataFrame
    n_last: int
    link: inference.ClusterInterval
    last: pd.DataFrame
    null: inference.TrendNull
    fragility: inference.Fragility | None
    numbers: dict[str, Any] = field(default_factory=dict)
    markdown: dict[str, str] = field(default_factory=dict)


def summarise(
    runs: pd.DataFrame, config: EarlyTrainingConfig, *, preset: str, seed: int = 0, method: str = "spearman"
) -> Summary:
    """Every table, number and sentence of the chapter from its runs (the output of :func:`run` on
    ``config``, the config :func:`chapter_configs` gave)."""
    check_method(method)
    n_boot = boot_resamples(preset)
    runs = prepared(runs)
    smoothings = sorted(runs["label_smoothing"].unique())
    by = ("label_smoothing", "statistic")
    per_run = analysis.run_correlations(runs, by=("label_smoothing", "seed"), method=method)
    diffs = difference_correlations(runs, method=method)
    raw = analysis.summarise_correlations(per_run, by=by, n_resamples=n_boot, seed=seed)
    dif = analysis.summarise_correlations(diffs, by=by, n_resamples=n_boot, seed=seed)
    to_peak = analysis.summarise_correlations(
        analysis.run_correlations(
            runs, ys=("jac_spectral_max",), by=("label_smoothing", "seed"), method=method, window="before_peak"
        ),
        by=by,
        n_resamples=n_boot,
        seed=seed,
    )
    rows = pd.DataFrame(
        [
            {
                "label smoothing": ls,
                "raw, early phase": row_text(raw, ls),
                "first differences, early phase": row_text(dif, ls),
                "raw, up to the sharpness peak": row_text(to_peak, ls),
            }
            for ls in smoothings
        ]
    )
    groups = runs.groupby(["label_smoothing", "seed"])
    peak_epochs = runs.loc[groups["sharpness"].idxmax(), "epoch"]
    last = runs.loc[groups["step"].idxmax()].reset_index(drop=True)
    end = last.groupby("label_smoothing")[["curvature_norm", "ratio"]].mean()
    link = scale_effect(last, method=method)
    null = trend_null_of(runs, method=method, seed=seed)
    fragility = shared.trend_fragility(TRACKS_CLAIM, runs, lambda r: trend_null_of(r, method=method, seed=seed))
    pooled = analysis.bootstrap_ci(
        diffs[diffs.statistic == "jac_spectral_max"]["rho"].to_numpy(float), "mean", n_resamples=n_boot, seed=seed
    )
    numbers: dict[str, Any] = {
        "n_seeds": len(config.seeds),
        "n_runs": int(groups.ngroups),
        "n_meas": int(groups.size().min()),
        "n_epochs": float(runs["epoch"].max()),
        "n_steps": int(runs["step"].max()),
        "peak_epoch_min": float(peak_epochs.min()),
        "peak_epoch_max": float(peak_epochs.max()),
        "c_ratio_change": float(end["curvature_norm"].iloc[-1] / end["curvature_norm"].iloc[0]),
        "ratio_change": float(end["ratio"].iloc[-1] / end["ratio"].iloc[0]),
        "ls_lo": float(smoothings[0]),
        "ls_hi": float(smoothings[-1]),
    }
    for k, ls in enumerate(smoothings):
        numbers[f"c_end_{k}"] = float(end.loc[ls, "curvature_norm"])
        numbers[f"ratio_end_{k}"] = float(end.loc[ls, "ratio"])
    sent = []
    for ls in smoothings:
        r_raw = raw[(raw.label_smoothing == ls) & (raw.statistic == "jac_spectral_max")].iloc[0]
        r_dif = dif[(dif.label_smoothing == ls) & (dif.statistic == "jac_spectral_max")].iloc[0]
        sent.append(
            f"with smoothing {ls:g} the raw correlation is {row_text(raw, ls)} and that of first differences "
            f"{row_text(dif, ls)}"
            + claims.choose(
                bool(r_dif["low"] > 0),
                " (the steps co-move too)",
                claims.choose(
                    bool(r_raw["low"] > 0) and not bool(r_dif["low"] > 0),
                    " (the steps do not visibly co-move)",
                    "",
                ),
            )
        )
    markdown = {
        "corr_sentence": "Over the early phase, " + "; ".join(sent) + ".",
        "peak_sentence": "; ".join(f"{row_text(to_peak, ls)} for smoothing {ls:g}" for ls in smoothings),
        "late_sentence": late_sentence(runs, raw, smoothings),
        "c_ratio_rho": link.label(),
        "null_sentence": "Against the trend the runs of one smoothing value share, "
        + shared.trend_null_words(null, "smoothing value")
        + ".",
        "scale_sentence": scale_sentence(link),
    }
    return Summary(
        preset=preset,
        seed=seed,
        n_seeds=len(config.seeds),
        n_boot=n_boot,
        method=method,
        runs=runs,
        means=epoch_means(runs),
        smoothings=smoothings,
        per_run=per_run,
        diffs=diffs,
        raw=raw,
        differences=dif,
        to_peak=to_peak,
        correlation_rows=rows,
        pooled=pooled,
        end=end.reset_index(),
        n_last=len(last),
        link=link,
        last=last,
        null=null,
        fragility=fragility,
        numbers=numbers,
        markdown=markdown,
    )


def trend_null_of(runs: pd.DataFrame, *, method: str = "spearman", seed: int = 0, n_permutations: int = 9999):
    """The co-movement claim's test: :func:`~sharpjac.experiments._smoothed_sgd.trend_null` of
    sharpness and max‖Jf‖ over the early phase, runs permuted within each smoothing value."""
    return shared.trend_null(runs, "label_smoothing", method=method, seed=seed, n_permutations=n_permutations)


def tracks_verdict(null, fragility, *, preset: str, n_seeds: int, extra: str = "") -> claims.Verdict:
    """The co-movement claim decided by :func:`trend_null_of` (``extra``: more evidence)."""
    evidence = (
        f"Over the early phase, {shared.trend_null_words(null, 'smoothing value')} (runs permuted within each "
        f"smoothing value).{extra}"
    )
    return shared.permutation_verdict(
        TRACKS_CLAIM,
        null,
        fragility,
        evidence=evidence,
        preset=preset,
        n_seeds=n_seeds,
        label="mean within-run ρ(sharpness, max‖Jf‖)",
    )


def scale_verdict(last: pd.DataFrame, *, preset: str, n_seeds: int, method: str = "spearman") -> claims.Verdict:
    """The output-curvature claim: :func:`scale_values` per seed, a t interval over seeds."""
    end = last.groupby("label_smoothing")[["curvature_norm", "ratio"]].mean()
    lo, hi = end.index.min(), end.index.max()

    def evidence(iv: inference.ClusterInterval) -> str:
        return (
            "Per seed, across the smoothing values, the rank correlation between $\\overline{\\|C\\|}$ and "
            f"sharpness / $\\max_i\\|Jf(x_i)\\|_2$ at the end of the early phase is {iv.label()} (mean over "
            f"seeds); from smoothing {lo:g} to {hi:g} the curvature changes by a factor "
            f"{float(end['curvature_norm'][hi] / end['curvature_norm'][lo]):.1f} and the ratio by "
            f"{float(end['ratio'][hi] / end['ratio'][lo]):.1f}."
        )

    return claims.from_clusters(
        SCALE_CLAIM,
        scale_values(last, method=method),
        unit="seeds",
        evidence=evidence,
        preset=preset,
        seeds=n_seeds,
        label="ρ(C̄, sharpness / max‖Jf‖) across smoothing values",
    )


def evaluate(summary: Summary) -> dict[str, claims.Verdict]:
    """The chapter's two claims decided from ``summary`` (:func:`sharpjac.claims.evaluate`), by claim id."""
    sm, common = summary.smoothings, {"preset": summary.preset, "n_seeds": summary.n_seeds}
    extra = (
        " The first-difference correlation (shown for comparison; it does not remove a shared trend) is "
        + "; ".join(f"{row_text(summary.differences, ls)} (smoothing {ls:g})" for ls in sm)
        + "; up to the sharpness peak the raw correlation is "
        + "; ".join(f"{row_text(summary.to_peak, ls)} (smoothing {ls:g})" for ls in sm)
        + "."
    )
    return {
        TRACKS_CLAIM: tracks_verdict(summary.null, summary.fragility, extra=extra, **common),
        SCALE_CLAIM: scale_verdict(summary.last, method=summary.method, **common),
    }


# ------------------------------------------------------------------------------------------------
# Known answers: each claim's rule on simulated records at the quick design (3 smoothings x 5 seeds)
# ------------------------------------------------------------------------------------------------

_SMOOTHINGS = EarlyTrainingConfig.smoothings
#: The quick chapter's measurement steps: 5 epochs of 20 SGD steps, measured every 5 steps.
_QUICK_STEPS = np.arange(0, 101, 5)


def simulate_last(rng: np.random.Generator, *, linked: bool, n_seeds: int = 5) -> pd.DataFrame:
    """One row per quick run at its last measurement (3 smoothing values x ``n_seeds`` seeds).

    The mean output curvature grows threefold per smoothing step (0.02, 0.06, 0.18) with 30 %
    run-to-run noise; the ratio sharpness / max‖Jf‖ is proportional to its square root with 30 %
    noise (``linked=True``, the claim true) or varies by the same amount independently of it (false).
    """
    rows = []
    for seed in range(n_seeds):
        for k, ls in enumerate(_SMOOTHINGS):
            c = 0.02 * 3.0**k * np.exp(0.3 * rng.normal())
            ratio = (np.sqrt(c) if linked else np.sqrt(0.02 * 3.0 ** rng.integers(0, 3))) * np.exp(0.3 * rng.normal())
            rows.append({"label_smoothing": ls, "seed": seed, "curvature_norm": c, "ratio": ratio})
    return pd.DataFrame(rows)


claims.known_answer(
    TRACKS_CLAIM,
    design="3 smoothing values x 5 seeds, 21 measurements over the early phase; runs permuted within a smoothing "
    "value (999 permutations in the simulation, 9999 in the chapter)",
    truth="true: the Jacobian follows its own run's sharpness (5 % fluctuations, 2 % noise); false: the two share "
    "only their smoothing value's trend (1 % noise each)",
    simulate_false=lambda rng: shared.simulate_trend_runs(
        rng, "label_smoothing", _SMOOTHINGS, coupled=False, steps=_QUICK_STEPS
    ),
    simulate_true=lambda rng: shared.simulate_trend_runs(
        rng, "label_smoothing", _SMOOTHINGS, coupled=True, steps=_QUICK_STEPS
    ),
    decide=lambda runs: (
        tracks_verdict(trend_null_of(runs, n_permutations=999), None, preset="quick", n_seeds=5).outcome
    ),
)

claims.known_answer(
    SCALE_CLAIM,
    design="3 smoothing values x 5 seeds; per seed the Spearman correlation across the smoothing values of the "
    "final C̄ and sharpness / max‖Jf‖; t interval over the 5 seeds",
    truth="true: the ratio ∝ √C̄, C̄ threefold per smoothing step, 30 % noise on each; false: the ratio varies as "
    "much but independently of C̄",
    simulate_false=lambda rng: simulate_last(rng, linked=False),
    simulate_true=lambda rng: simulate_last(rng, linked=True),
    decide=lambda last: scale_verdict(last, preset="quick", n_seeds=5).outcome,
)


EXPERIMENT = register(
    NAME,
    EarlyTrainingConfig,
    "SGD + cross-entropy, label smoothing 0/0.1/0.2: sharpness and Jacobian early in training",
    chapter="Sharpness and Jacobian early in training (Fig. 1)",
    runner=run,
    chapter_configs=chapter_configs,
)
