r"""Several step sizes, measured over training (paper Fig. 5, ICLR version).

The ``learning_rate`` experiment of the book chapter *Learning rate over training (Fig. 5, ICLR)*.

The baseline, its checks and the runs are shared with the other flat-minima chapters
(:mod:`._grid`); this module states only the grid axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .. import analysis, claims, tables
from ._gap_stats import (
    BASELINES,
    JACOBIAN,
    Beats,
    Effect,
    at_loss_level,
    check_choice,
    decide_all,
    final_measurements,
    grid_labels,
    loss_level_for,
    n_resamples_for,
)
from ._grid import GeneralisationConfig, grid_presets, is_positive, register_grid

__all__ = [
    "LearningRateConfig",
    "NAME",
    "Summary",
    "summarise",
    "evaluate",
    "chapter_configs",
    "fmt_interval",
    "claim_specs",
    "trend_test",
    "trend_verdict",
]

NAME = "learning_rate"


@dataclass(frozen=True)
class LearningRateConfig(GeneralisationConfig):
    """Several step sizes, measured over training (paper Fig. 5, ICLR version).

    Attributes:
        lrs: SGD step sizes.
    """

    lrs: tuple[float, ...] = (0.05, 0.2, 0.8)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = grid_presets(
        {
            "smoke": dict(lrs=(0.2, 0.8)),
            "paper": dict(lrs=(0.01, 0.05, 0.2)),
        }
    )

    def _check_axes(self) -> None:
        self._need_values("lrs", is_positive, "floats > 0")

    def grid(self):
        return [({"lr": float(lr), "seed": s}, self.train_config(s, lr=lr)) for lr in self.lrs for s in self.seeds]


# ------------------------------------------------------------------------------------------------
# The chapter's statistics
# ------------------------------------------------------------------------------------------------

#: Quantities correlated with the loss gap within each run.
WITHIN_COLUMNS = ("sharpness", "jac_spectral_max", "jac_frobenius_mean", "train_loss")
#: The three within-run correlations: raw, of first differences, of detrended series.
WITHIN_KINDS = ("raw", "differences", "detrended")
#: Jacobian statistics among the predictors of the final gap.
JACOBIAN_COLUMNS = ("jac_spectral_max", "jac_spectral_mean", "jac_frobenius_max", "jac_frobenius_mean")
#: Quantities compared across step sizes (the figure of rates), with the glue keys of their effects.
RATE_COLUMNS = {"sharpness": "sharpness", "jac_spectral_max": "jacobian", "gap_loss": "gap"}
#: Labels of the table of within-run correlations.
WITHIN_LABELS = {
    "statistic": "quantity",
    "correlation": "correlation of",
    "interval": "mean over runs [95 % interval]",
    "runs": "runs",
}
#: Labels of the table of predictors of the final gap.
PREDICTOR_LABELS = {
    "predictor": "predictor",
    "estimate": "ρ with loss gap",
    "low": "95 % low",
    "high": "95 % high",
    "partial": "partial ρ | train loss",
    "partial_low": "partial low",
    "partial_high": "partial high",
    "acc_estimate": "ρ with accuracy gap",
}
_CLAIMS = {
    "sharpness": "learning_rate.larger_step_lower_sharpness",
    "jacobian": "learning_rate.larger_step_lower_jacobian",
    "gap": "learning_rate.larger_step_lower_gap",
}


def fmt_interval(i) -> str:
    """An interval in words: ``"0.12 [0.01, 0.30]"``, ``"not defined"`` for NaN, and says so when degenerate."""
    if not np.isfinite(i.estimate):
        return "not defined"
    if i.low == i.high:
        return f"{i.estimate:.2f} (degenerate interval: all resamples equal)"
    return f"{i.estimate:.2f} [{i.low:.2f}, {i.high:.2f}]"


def _pct(r) -> str:
    """A ratio as a relative change in per cent with its interval (said so when degenerate)."""
    text = f"{100 * (r.estimate - 1):+.1f} % [{100 * (r.low - 1):+.1f} %, {100 * (r.high - 1):+.1f} %]"
    return text + (" (a degenerate interval)" if r.low == r.high else "")


def _direction(r) -> str:
    return claims.choose(r.high < 1, "lower", claims.choose(r.low > 1, "higher", "not distinguishable"))


def within_run_correlations(runs: pd.DataFrame, method: str) -> pd.DataFrame:
    """Per run (lr, seed) and quantity of :data:`WITHIN_COLUMNS`: the rank correlation over training
    of the loss gap with the quantity (``raw``), and the two trend nulls of
    :func:`sharpjac.analysis.trend_null_correlation` (``differences``, ``detrended``; NaN with fewer
    than 4 measurements, the least that gives 3 differences)."""
    rows = []
    for (lr, s), g in runs.groupby(["lr", "seed"]):
        g = g.sort_values("step")
        x = g["gap_loss"].to_numpy(float)
        enough = len(g) >= 4
        for stat in WITHIN_COLUMNS:
            y = g[stat].to_numpy(float)
            rows.append(
                {
                    "lr": lr,
                    "seed": s,
                    "statistic": stat,
                    "raw": analysis.rank_correlation(x, y, method),
                    "differences": analysis.trend_null_correlation(x, y, method, kind="differences")
                    if enough
                    else np.nan,
                    "detrended": analysis.trend_null_correlation(x, y, method, kind="detrended") if enough else np.nan,
                }
            )
    return pd.DataFrame(rows)


def _curves(runs: pd.DataFrame, columns) -> tuple[dict, dict, list]:
    """Training curves ready to plot: per column, the first seed of each step size (``lead``, columns
    the step sizes) and the other seeds (``others``, columns ``(lr, seed)``), index the step."""
    r = runs[runs.step > 0]
    first = r.groupby("lr")["seed"].transform("min")
    lead = {c: r[r.seed == first].pivot_table(index="step", columns="lr", values=c, dropna=False) for c in columns}
    rest = r[r.seed != first]
    others = {c: rest.pivot_table(index="step", columns=["lr", "seed"], values=c, dropna=False) for c in columns}
    other_lrs = [lr for lr, _ in others[columns[0]].columns] if len(rest) else []
    if not len(rest):
        others = {c: pd.DataFrame(index=lead[c].index) for c in columns}
    return lead, others, other_lrs


def _within_interval(within_summary: pd.DataFrame, stat: str, value: str, n_resamples: int) -> analysis.Interval:
    w = within_summary
    r = w[(w.statistic == stat) & (w.correlation == value)].iloc[0]
    return analysis.Interval(float(r["mean"]), float(r["low"]), float(r["high"]), 0.95, int(r["runs"]), n_resamples)


@dataclass(frozen=True)
class Summary:
    """What the chapter shows, computed from the runs by :func:`summarise`.

    Attributes:
        preset, method, n_seeds, loss_level: the chapter's parameters (``loss_level`` as used).
        runs: every measurement; final: one row per run. lrs: the step sizes.
        n_meas, n_runs: fewest measurements of a run; number of runs.
        lead_curves, other_curves, other_lrs: training curves (see :func:`_curves`). curves_frame:
            the measurements after step 0 with a ``run`` label, for the interactive curves.
        within: :func:`within_run_correlations`; within_summary: their means over runs with
            bootstrap intervals (``correlation`` raw/differences/detrended); within_table: the same
            for display (labels, interval text).
        predictors: predictors of the final gap. table, table_acc: their predictor tables for the
            loss and accuracy gap; predictor_table: both, for display. cmp, cmp_acc: ``|r_J|-|r_s|``.
        at_level: :func:`._gap_stats.at_loss_level` of the gap, sharpness, Jacobian, loss and step.
            rate_means: ``{title: DataFrame}``, means per step size
            at the end of training and at the loss level.
        effects: ``{"sharpness"|"jacobian"|"gap": ratio of means, largest vs smallest step}``;
            acc_effect: difference of the accuracy gaps. numbers, text: ``{glue name: value}``.
    """

    preset: str
    method: str
    n_seeds: int
    loss_level: float
    runs: pd.DataFrame
    final: pd.DataFrame
    lrs: list
    n_meas: int
    n_runs: int
    lead_curves: dict
    other_curves: dict
    other_lrs: list
    curves_frame: pd.DataFrame
    within: pd.DataFrame
    within_summary: pd.DataFrame
    within_table: pd.DataFrame
    predictors: list
    table: pd.DataFrame
    table_acc: pd.DataFrame
    predictor_table: pd.DataFrame
    cmp: Any
    cmp_acc: Any
    at_level: pd.DataFrame
    rate_means: dict
    effects: dict
    acc_effect: Any
    numbers: dict
    text: dict

    def interval(self, stat: str, value: str) -> analysis.Interval:
        """The mean within-run correlation of the gap with ``stat`` (``value``: raw/differences/detrended)."""
        return _within_interval(self.within_summary, stat, value, n_resamples_for(self.preset))

    def other_colors(self, colors: dict) -> list:
        """The colour of each column of ``other_curves`` from ``{lr: colour}`` (black when there are none)."""
        return [colors[lr] for lr in self.other_lrs] or ["black"]

    @property
    def lr_labels(self) -> list[str]:
        return [f"$\\eta$ = {lr:g}" for lr in self.lrs]

    @property
    def lr_ticks(self) -> list[str]:
        return [f"{v:g}" for v in self.lrs]


def summarise(
    runs: pd.DataFrame,
    config: LearningRateConfig,
    *,
    preset: str,
    method: str = "spearman",
    loss_level: float = 0.25,
    seed: int = 0,
) -> Summary:
    """The chapter's tables, effects and sentences from the runs of ``config``.

    Args:
        runs: ``experiments.get("learning_rate").run(config)``. config: the chapter's config.
        preset: the preset it ran at (bootstrap replicates: 200 at smoke, else 2000).
        method: ``"spearman"`` or ``"kendall"``. loss_level: training loss of the "equal progress"
            comparison (:func:`._gap_stats.loss_level_for`). seed: the bootstrap seed (the chapter's first seed).
    """
    check_choice("method", method, analysis.METHODS)
    loss_level = loss_level_for(preset, loss_level)
    n_boot = n_resamples_for(preset)
    n_seeds = len(config.seeds)
    lrs = sorted(runs["lr"].unique())
    lead, others, other_lrs = _curves(runs, ("train_loss", "gap_loss", "sharpness", "jac_spectral_max"))
    curves_frame = runs[runs.step > 0].copy()
    curves_frame["run"] = [f"η = {lr:g}, seed {s}" for lr, s in zip(curves_frame["lr"], curves_frame["seed"])]

    within = within_run_correlations(runs, method)
    parts = []
    for value in WITHIN_KINDS:
        t = analysis.summarise_correlations(within, by=("statistic",), value=value, n_resamples=n_boot, seed=seed)
        t.insert(0, "correlation", value)
        # rows in the order of WITHIN_COLUMNS (sharpness first), not alphabetical; values unchanged
        parts.append(t.iloc[np.argsort([WITHIN_COLUMNS.index(st) for st in t["statistic"]], kind="stable")])
    within_summary = pd.concat(parts, ignore_index=True)
    tab = within_summary.copy()
    tab["statistic"] = tab["statistic"].map(lambda c: tables.LABELS.get(c, c))
    tab["interval"] = [
        fmt_interval(_within_interval(within_summary, st, v, n_boot))
        for st, v in zip(within_summary["statistic"], within_summary["correlation"])
    ]

    final = final_measurements(runs)
    baselines = [c for c in BASELINES if c in final]
    predictors = ["sharpness", *JACOBIAN_COLUMNS, *baselines]
    table = analysis.predictor_table(
        final, "gap_loss", predictors, method, group="seed", n_resamples=n_boot, seed=seed, control="train_loss"
    )
    table_acc = analysis.predictor_table(
        final, "gap_acc", predictors, method, group="seed", n_resamples=n_boot, seed=seed
    )
    show = table.copy()
    show["acc_estimate"] = table_acc.set_index("predictor").loc[show["predictor"], "estimate"].to_numpy()
    show["predictor"] = show["predictor"].map(lambda c: tables.LABELS.get(c, c))
    kw = dict(groups=final["seed"], n_resamples=n_boot, seed=seed)
    cmp = analysis.compare_predictors(final, "gap_loss", "jac_spectral_max", "sharpness", method, **kw)
    cmp_acc = analysis.compare_predictors(final, "gap_acc", "jac_spectral_max", "sharpness", method, **kw)

    eq = at_loss_level(
        runs, loss_level, by=["lr", "seed"], columns=("gap_loss", "sharpness", "jac_spectral_max", "train_loss", "step")
    )
    cols = ["gap_loss", "sharpness", "jac_spectral_max"]
    rate_means = {
        "end of training": final.groupby("lr")[cols].mean(),
        f"first time train loss <= {loss_level:g}": eq.groupby("lr")[cols].mean(),
    }
    lo, hi = lrs[0], lrs[-1]
    f_lo = final[final.lr == lo].sort_values("seed")
    f_hi = final[final.lr == hi].sort_values("seed")
    numbers: dict[str, float] = {
        "n_seeds": n_seeds,
        "n_meas": int(runs.groupby(["lr", "seed"]).size().min()),
        "n_runs": int(runs.groupby(["lr", "seed"]).ngroups),
        "loss_level": loss_level,
        "lr_lo": float(lo),
        "lr_hi": float(hi),
    }
    text: dict[str, str] = {}
    effects = {}
    for col, key in RATE_COLUMNS.items():
        r = analysis.ratio_ci(f_hi[col].to_numpy(), f_lo[col].to_numpy(), n_resamples=n_boot, seed=seed)
        effects[key] = r
        text[f"eff_{key}"] = _pct(r)
        numbers[f"end_{key}_lo"] = float(f_lo[col].mean())
        numbers[f"end_{key}_hi"] = float(f_hi[col].mean())
    acc = analysis.difference_ci(f_hi["gap_acc"].to_numpy(), f_lo["gap_acc"].to_numpy(), n_resamples=n_boot, seed=seed)
    text["eff_acc"] = f"{100 * acc.estimate:+.1f} [{100 * acc.low:+.1f}, {100 * acc.high:+.1f}] percentage points" + (
        " (a degenerate interval)" if acc.low == acc.high else ""
    )
    numbers["acc_lo"] = 100 * float(f_lo["test_acc"].mean())
    numbers["acc_hi"] = 100 * float(f_hi["test_acc"].mean())
    em = rate_means[f"first time train loss <= {loss_level:g}"]
    numbers["eq_j_lo"] = float(em.loc[lo, "jac_spectral_max"])
    numbers["eq_j_hi"] = float(em.loc[hi, "jac_spectral_max"])
    larger = bool(em.loc[hi, "jac_spectral_max"] > em.loc[lo, "jac_spectral_max"])
    text["eq_sentence"] = claims.choose(larger, "larger at the largest step", "smaller at the largest step") + (
        claims.choose(
            larger == bool(effects["jacobian"].estimate > 1),
            ", the same ordering as at the end of training, so it is not an artefact of comparing at equal step counts",
            ", the opposite ordering to the end of training",
        )
    )
    text["rates_sentence"] = (
        f"At the largest step the final sharpness is {_direction(effects['sharpness'])}, the final Jacobian "
        f"{_direction(effects['jacobian'])} and the final loss gap {_direction(effects['gap'])} than at the smallest "
        "(an interval that excludes no change decides)."
    )
    s = Summary(
        preset=preset,
        method=method,
        n_seeds=n_seeds,
        loss_level=loss_level,
        runs=runs,
        final=final,
        lrs=lrs,
        n_meas=numbers["n_meas"],
        n_runs=numbers["n_runs"],
        lead_curves=lead,
        other_curves=others,
        other_lrs=other_lrs,
        curves_frame=curves_frame,
        within=within,
        within_summary=within_summary,
        within_table=tab[["statistic", "correlation", "interval", "runs"]],
        predictors=predictors,
        table=table,
        table_acc=table_acc,
        predictor_table=show,
        cmp=cmp,
        cmp_acc=cmp_acc,
        at_level=eq,
        rate_means=rate_means,
        effects=effects,
        acc_effect=acc,
        numbers=numbers,
        text=text,
    )
    text["within_sentence"] = _within_sentence(s)
    text["across_sentence"] = _across_sentence(s)
    return s


def _within_sentence(s: Summary) -> str:
    jr, jd, jt = (s.interval("jac_spectral_max", v) for v in WITHIN_KINDS)
    sr, sd = s.interval("sharpness", "raw"), s.interval("sharpness", "differences")
    # First differences and detrending do not remove a trend the runs share (a saturating shared
    # trend alone gives a positive correlation of differences), so this sentence never judges the
    # co-movement: the cross-run trend null of the verdict does.
    trend_text = (
        "neither first differences nor detrending removes a trend that all runs of a step size share, so "
        "whether the co-movement is more than that trend is decided across runs, in the verdict below. "
    )
    if not np.isfinite(jd.estimate):
        trend_text = "the runs have too few measurements for a trend null. "
    return (
        f"Between the gap and $\\max_i\\|Jf(x_i)\\|_2$ the raw correlation is {fmt_interval(jr)}, that of first "
        f"differences {fmt_interval(jd)} and that of detrended series {fmt_interval(jt)}; "
        + trend_text
        + f"Between the gap and sharpness the raw correlation is {fmt_interval(sr)} and that of first differences "
        f"{fmt_interval(sd)}."
    )


def _best(s: Summary) -> str:
    sizes = s.table.set_index("predictor")["estimate"].abs().dropna()
    return sizes.idxmax() if len(sizes) else "train_loss"


def _across_sentence(s: Summary) -> str:
    t = s.table.set_index("predictor")
    cmp, best = s.cmp, _best(s)
    return (
        f"Over the runs, the final loss gap has $\\rho$ = {t.loc['jac_spectral_max', 'estimate']:.2f} with "
        f"$\\max_i\\|Jf(x_i)\\|_2$ and {t.loc['sharpness', 'estimate']:.2f} with sharpness; the difference of "
        f"their sizes $|\\rho_J|-|\\rho_s|$ is {fmt_interval(cmp)}"
        + claims.choose(
            bool(cmp.low > 0),
            ", larger in size for the Jacobian",
            claims.choose(
                bool(cmp.high < 0), ", larger in size for sharpness", ", an interval that contains zero in size"
            ),
        )
        + " (by size only: the verdict below counts the Jacobian only in the predicted direction, a larger "
        "Jacobian with a larger gap)." + f" The strongest single predictor by size is {tables.LABELS.get(best, best)} "
        f"($\\rho$ = {t.loc[best, 'estimate']:.2f}); the training loss alone has $\\rho$ = "
        f"{t.loc['train_loss', 'estimate']:.2f}. For the accuracy gap the difference is {fmt_interval(s.cmp_acc)}."
    )


def claim_specs(lrs) -> dict:
    """The claims decided from the final measurements (:func:`._gap_stats.decide`). With 3 step sizes a
    seed has too few runs for a correlation of its own, so the correlation claims take all runs at once
    with delete-one-seed jackknife pseudo-values as the per-seed values."""
    lo, hi = {"lr": min(lrs)}, {"lr": max(lrs)}
    what = f"η = {hi['lr']:g} against η = {lo['lr']:g}, paired by seed"
    return {
        "learning_rate.jacobian_beats_sharpness": Beats("gap_loss", rivals=("sharpness",), control=None, pooled=True),
        "learning_rate.larger_step_lower_sharpness": Effect("sharpness", hi, lo, log=True, what=what),
        "learning_rate.larger_step_lower_jacobian": Effect("jac_spectral_max", hi, lo, log=True, what=what),
        "learning_rate.larger_step_lower_gap": Effect("gaps", hi, lo, what=what),
        "learning_rate.jacobian_beats_baselines_loss_gap": Beats("gap_loss", pooled=True),
        "learning_rate.jacobian_beats_baselines_acc_gap": Beats("gap_acc", pooled=True),
    }


#: Permutations of the trend null in the chapter (the known-answer simulations use fewer, the same test).
N_PERMUTATIONS = 9999


def trend_test(runs: pd.DataFrame, *, method: str = "spearman", n_permutations: int = N_PERMUTATIONS, seed: int = 0):
    r"""Does the loss gap move with the Jacobian within runs beyond the trend all runs of a step size share?

    :func:`sharpjac.inference.stratified_trend_null` with one setting per step size: the statistic is
    the mean within-run rank correlation of the gap with :math:`\max_i\|Jf(x_i)\|_2` over the
    measurements, the null pairs one run's gap with another run's Jacobian of the same step size
    (same schedule, same trend), so a shared trend alone passes at most at the nominal rate.
    """
    from .. import inference

    settings = []
    for _, by_lr in runs.sort_values("step").groupby("lr"):
        series = [g for _, g in by_lr.groupby("seed")]
        settings.append(
            ([g["gap_loss"].to_numpy(float) for g in series], [g[JACOBIAN].to_numpy(float) for g in series])
        )
    return inference.stratified_trend_null(settings, method=method, n_permutations=n_permutations, seed=seed)


def trend_verdict(
    runs: pd.DataFrame, *, preset: str, n_permutations: int = N_PERMUTATIONS, fragility: bool = True
) -> claims.Verdict:
    """``learning_rate.gap_tracks_jacobian`` from the runs' measurements (:func:`trend_test`, rule
    ``Permutation``), with a leave-one-seed-out fragility (``fragility=False``: not assessed, the
    same outcome; the known-answer simulations skip it for speed)."""
    from .. import inference

    cid = "learning_rate.gap_tracks_jacobian"
    rule = claims.get(cid).rule
    if runs.groupby("lr")["seed"].nunique().min() < 2:
        nan = float("nan")
        return claims.evaluate(
            cid,
            evidence="The trend null pairs runs of the same step size: it needs at least 2 seeds per step size. "
            f"Too few runs to decide ({runs.groupby(['lr', 'seed']).ngroups}).",
            preset=preset,
            seeds=max(1, runs["seed"].nunique()),
            unit="runs",
            n_units=runs.groupby(["lr", "seed"]).ngroups,
            p_greater=nan,
            p_less=nan,
            min_p=nan,
        )
    tn = trend_test(runs, n_permutations=n_permutations)
    seeds = sorted(set(runs["seed"].tolist()))
    frag = None
    if fragility and len(seeds) >= 2 and all(runs.groupby("lr")["seed"].nunique() >= 3):
        frag = inference.leave_one_out(
            lambda kept: rule.decide(
                **trend_test(runs[runs["seed"].isin(kept)], n_permutations=n_permutations).numbers()
            ),
            seeds,
        )
    evidence = (
        f"Within runs, the mean rank correlation of the loss gap with $\\max_i\\|Jf(x_i)\\|_2$ over the "
        f"measurements is {tn.observed:.2f} over {tn.n_runs} runs; pairing each run's gap with another run's "
        f"Jacobian of the same step size (the shared trend alone) gives {tn.null_mean:.2f} on average; one-sided "
        f"permutation p = {tn.p_value:.3g} (smallest attainable {tn.min_p:.2g})."
    )
    return claims.evaluate(
        cid,
        evidence=evidence,
        preset=preset,
        seeds=max(1, len(seeds)),
        unit="runs",
        n_units=tn.n_runs,
        fragility=frag,
        estimate=tn.observed - tn.null_mean if np.isfinite(tn.null_mean) else float("nan"),
        label="mean within-run ρ(gap, max‖Jf‖) minus its trend-null mean",
        **tn.numbers(),
    )


def evaluate(summary: Summary) -> dict[str, claims.Verdict]:
    """The chapter's claims: the trend test over training and, from the final measurements, the rest."""
    out = {"learning_rate.gap_tracks_jacobian": trend_verdict(summary.runs, preset=summary.preset)}
    return out | decide_all(claim_specs(summary.lrs), summary.final, preset=summary.preset)


EXPERIMENT = register_grid(
    NAME,
    LearningRateConfig,
    "several step sizes: gap, sharpness and Jacobian over training",
    chapter="Learning rate over training (Fig. 5, ICLR)",
    known_answers=(
        lambda q: claim_specs(q.lrs),
        "5 seeds x 3 step sizes; paired effects per seed; the correlations over all 15 runs with delete-one-seed "
        "jackknife pseudo-values per seed (3 step sizes per seed are too few for a correlation within a seed); t "
        "interval over seeds",
    ),
)
#: The one mapping from the chapter's parameters to its config (:func:`._grid.grid_chapter_configs`).
chapter_configs = EXPERIMENT.chapter_configs


_QUICK = LearningRateConfig.preset("quick")


def _quick_curves(rng: np.random.Generator, coupling: float) -> pd.DataFrame:
    """Simulated measurements at the quick design: every run of a step size shares a saturating trend
    in the gap and the Jacobian; each run adds its own random walk to each, the gap's walk correlated
    with the Jacobian's by ``coupling`` (0: only the trend is shared)."""
    from ..training import measurement_steps

    cfg = _QUICK
    tc = cfg.train_config(0)
    steps = np.array(sorted(measurement_steps(tc, cfg.baseline_steps(), cfg.steps_per_epoch())), dtype=float)
    lab = grid_labels(cfg)
    n, k = len(lab), len(steps)
    trend = 1.0 - np.exp(-steps / steps[-1] * 4.0)
    walk_j = rng.standard_normal((n, k)).cumsum(axis=1) * 0.15
    walk_g = coupling * walk_j + np.sqrt(1 - coupling**2) * rng.standard_normal((n, k)).cumsum(axis=1) * 0.15
    return pd.DataFrame(
        {
            "lr": np.repeat(lab["lr"].to_numpy(), k),
            "seed": np.repeat(lab["seed"].to_numpy(), k),
            "step": np.tile(steps, n),
            "gap_loss": (trend + walk_g).ravel(),
            JACOBIAN: (trend + walk_j).ravel(),
        }
    )


claims.known_answer(
    "learning_rate.gap_tracks_jacobian",
    design="15 runs (5 seeds x 3 step sizes) measured on the quick schedule; mean within-run Spearman of gap and "
    "Jacobian against the runs of the same step size paired with each other (stratified trend null, 999 "
    "permutations in simulation)",
    simulate_false=lambda rng: _quick_curves(rng, 0.0),
    simulate_true=lambda rng: _quick_curves(rng, 0.6),
    decide=lambda runs: trend_verdict(runs, preset="quick", n_permutations=999, fragility=False).outcome,
    truth="true: each run's gap walk correlates 0.6 with its Jacobian walk; false: only a saturating trend is shared",
)
