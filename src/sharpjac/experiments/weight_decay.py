r"""Weight decay across learning rates (paper Fig. 2).

The ``weight_decay`` experiment of the book chapter *Weight decay across learning rates (Fig. 2)*.

The baseline, its checks and the runs are shared with the other flat-minima chapters
(:mod:`._grid`); this module states only the grid axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from .. import analysis, claims, tables
from ..display import fmt_iv, num_set
from ._chapter import plural
from ._gap_stats import (
    BASELINE_LABELS,
    BASELINES,
    GAPS,
    METHOD_WORDS,
    PREDICTORS,
    SEED_DRAW,
    Beats,
    Effect,
    baselines_tables,
    baselines_text,
    baselines_view,
    check_choice,
    corr_labels,
    decide_all,
    effects_by,
    final_measurements,
    gap_predictors,
    labelled,
    n_resamples_for,
    predictor_kind,
)
from ._grid import (
    GeneralisationConfig,
    describe_setting,
    grid_presets,
    is_non_negative,
    is_positive,
    register_grid,
)

__all__ = [
    "WeightDecayConfig",
    "NAME",
    "Summary",
    "summarise",
    "evaluate",
    "paper_setting",
    "chapter_configs",
    "PREDICTORS",
    "BASELINES",
    "predictor_kind",
    "corr_labels",
    "labelled",
    "BASELINE_LABELS",
    "baselines_view",
    "claim_specs",
]

NAME = "weight_decay"


@dataclass(frozen=True)
class WeightDecayConfig(GeneralisationConfig):
    """Weight decay x learning rate (paper Fig. 2): final gap, sharpness and Jacobian.

    Attributes:
        weight_decays: L2 coefficients (>= 0; 0 is the baseline's).
        lrs: SGD step sizes.
    """

    weight_decays: tuple[float, ...] = (0.0, 0.001, 0.003)
    lrs: tuple[float, ...] = (0.05, 0.2, 0.8)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = grid_presets(
        {
            "smoke": dict(weight_decays=(0.0, 0.01), lrs=(0.2, 0.8)),
            "paper": dict(weight_decays=(0.0, 5e-4, 2e-3), lrs=(0.01, 0.05, 0.2)),
        }
    )

    def _check_axes(self) -> None:
        self._need_values("weight_decays", is_non_negative, "floats >= 0")
        self._need_values("lrs", is_positive, "floats > 0")

    def grid(self):
        return [
            ({"lr": float(lr), "weight_decay": float(wd), "seed": s}, self.train_config(s, lr=lr, weight_decay=wd))
            for lr in self.lrs
            for wd in self.weight_decays
            for s in self.seeds
        ]


# ------------------------------------------------------------------------------------------------
# The chapter's statistics
# ------------------------------------------------------------------------------------------------

#: The gaps in words.
GAP_LABEL = {"gap_loss": "test loss − train loss", "gap_acc": "train accuracy − test accuracy"}
#: Columns of the table of grid-point means: the gaps and the sharpness first, then the Jacobian,
#: then the baselines.
POINT_COLUMNS = (
    "gap_loss",
    "gap_acc",
    "sharpness",
    "jac_spectral_max",
    "train_loss",
    "train_acc",
    "test_acc",
    "margin",
)
_GROUP = ["lr", "weight_decay"]
#: Labels of the table of effects within one learning rate.
WITHIN_LABELS = {
    "lr": "",
    "gap_change": "change in the gap",
    "gap_low": "gap, 95 % low",
    "gap_high": "gap, 95 % high",
    "s_ratio": "sharpness ratio",
    "s_low": "sharpness, 95 % low",
    "s_high": "sharpness, 95 % high",
    "j_ratio": "Jacobian ratio",
    "j_low": "Jacobian, 95 % low",
    "j_high": "Jacobian, 95 % high",
}


@dataclass(frozen=True)
class Summary:
    """What the chapter shows, computed from the runs by :func:`summarise`.

    Attributes:
        preset, method, gap, n_seeds: the chapter's parameters. final: one row per run.
        lrs, weight_decays: the grid axes (sorted). point_means: means of :data:`POINT_COLUMNS` per
            grid point. panel_means: ``{column: DataFrame}``, rows the weight-decay index
            ``0, 1, ...``, one column per step size (means over seeds), for the gap, sharpness and
            Jacobian panels. points: ``final`` with ``wd_index`` (the weight decay's position).
        corr: :func:`gap_predictors` of both gaps (the chosen one first), cluster bootstrap (shown,
            not deciding). baselines: per gap and predictor, the mean over seeds of the per-seed
            Spearman and partial correlations with t intervals (:func:`._gap_stats.baselines_tables`).
        within: per step size, the paired change of the gap and the ratios of sharpness and
            Jacobian from no decay to the largest (:func:`effects_by`).
        n_gap_down, n_sharp_up, n_jac_down: step sizes whose interval is below 0 / above 1 / below 1.
        acc_span, acc_sd: span of the accuracy gap over all runs, mean within-point standard
            deviation (percentage points). text: ``{glue name: Markdown}``.
    """

    preset: str
    method: str
    gap: str
    n_seeds: int
    final: pd.DataFrame
    lrs: list
    weight_decays: list
    point_means: pd.DataFrame
    panel_means: dict
    points: pd.DataFrame
    corr: pd.DataFrame
    baselines: pd.DataFrame
    within: pd.DataFrame
    n_gap_down: int
    n_sharp_up: int
    n_jac_down: int
    acc_span: float
    acc_sd: float
    text: dict

    @property
    def method_word(self) -> str:
        return METHOD_WORDS[self.method]

    @property
    def lr_labels(self) -> list[str]:
        """Legend labels of the step sizes, in the order of the columns of ``panel_means``."""
        return [f"$\\eta$ = {lr:g}" for lr in self.lrs]

    @property
    def wd_ticks(self) -> list[str]:
        """Tick labels of the weight decays (at positions ``0, 1, ...``)."""
        return [f"{v:g}" for v in self.weight_decays]

    @property
    def main_corr(self) -> pd.DataFrame:
        """The predictor table of the chosen gap, indexed by predictor."""
        return self.corr[self.corr.gap == self.gap].set_index("predictor")


def paper_setting(paper: WeightDecayConfig) -> str:
    """The paper preset's grid in words, for the page's "What this page runs" box."""
    return (
        f"{describe_setting(paper)}, weight decay $\\lambda\\in{num_set(paper.weight_decays)}$ at step sizes "
        f"$\\eta\\in{num_set(paper.lrs)}$, {len(paper.seeds)} seeds: {paper.workload()['runs']:.0f} runs"
    )


def summarise(
    runs: pd.DataFrame,
    config: WeightDecayConfig,
    *,
    preset: str,
    method: str = "spearman",
    gap: str = "gap_loss",
    seed: int = 0,
) -> Summary:
    """The chapter's tables, effects and sentences from the runs of ``config``.

    Args:
        runs: ``experiments.get("weight_decay").run(config)``. config: the chapter's config.
        preset: the preset it ran at (sets the bootstrap replicates, 200 at smoke, else 2000).
        method: ``"spearman"`` or ``"kendall"``. gap: ``"gap_loss"`` or ``"gap_acc"``.
        seed: the bootstrap seed (the chapter's first seed).
    """
    check_choice("method", method, analysis.METHODS)
    check_choice("gap", gap, GAPS)
    n_boot = n_resamples_for(preset)
    n_seeds = len(config.seeds)
    other = {"gap_loss": "gap_acc", "gap_acc": "gap_loss"}[gap]
    final = final_measurements(runs)
    lrs, wds = sorted(final["lr"].unique()), sorted(final["weight_decay"].unique())
    lo_wd, hi_wd = wds[0], wds[-1]
    point_means = final.groupby(_GROUP, as_index=False)[list(POINT_COLUMNS)].mean()
    means = final.groupby(_GROUP, as_index=False)[[gap, "sharpness", "jac_spectral_max"]].mean()
    xpos = {wd: i for i, wd in enumerate(wds)}
    means = means.assign(wd_index=means["weight_decay"].map(xpos))
    panel_means = {
        c: means.pivot(index="wd_index", columns="lr", values=c) for c in (gap, "sharpness", "jac_spectral_max")
    }
    points = final.assign(wd_index=final["weight_decay"].map(xpos))
    corr = gap_predictors(
        final,
        (gap, other),
        PREDICTORS + BASELINES,
        method,
        group=_GROUP,
        n_resamples=n_boot,
        seed=seed,
        control="train_loss",
    )
    hi, lo = {"weight_decay": hi_wd}, {"weight_decay": lo_wd}
    within = effects_by(final, "lr", {gap: False, "sharpness": True, "jac_spectral_max": True}, hi, lo)
    within.columns = [
        "lr",
        "gap_change",
        "gap_low",
        "gap_high",
        "s_ratio",
        "s_low",
        "s_high",
        "j_ratio",
        "j_low",
        "j_high",
    ]
    n_lr = len(lrs)
    n_gap_down = int((within["gap_high"] < 0).sum())
    n_sharp_up = int((within["s_low"] > 1).sum())
    n_jac_down = int((within["j_high"] < 1).sum())
    baselines = baselines_tables(final)
    acc_span = 100 * (final["gap_acc"].max() - final["gap_acc"].min())
    acc_sd = 100 * final.groupby(_GROUP)["gap_acc"].std().mean()

    text = {
        "wd_setting": (
            f"This page was computed with the **{preset}** preset: {describe_setting(config)}, instead of the "
            f"paper's CIFAR-10/100 and ResNet-18; weight decay $\\lambda\\in{num_set(wds)}$ (coupled L2) at step "
            f"sizes $\\eta\\in{num_set(lrs)}$, {plural(n_seeds, 'seed')} each ({SEED_DRAW}): {len(final)} runs."
        ),
        "wd_within": (
            f"With the largest decay ($\\lambda={hi_wd:g}$), the gap is smaller than without decay, with an interval "
            f"excluding no change, at {n_gap_down} of {n_lr} step sizes; the sharpness is larger at {n_sharp_up} of "
            f"them, and the Jacobian smaller at {n_jac_down} of them"
            + claims.choose(
                min(n_gap_down, n_sharp_up, n_jac_down) < n_lr,
                " (at the other step sizes the interval includes no change or the change goes the other way; see the "
                "table).",
                ".",
            )
        ),
        "wd_acc_note": (
            f"The accuracy gap spans {acc_span:.1f} percentage points over all runs"
            + (
                f", against a mean seed-to-seed standard deviation of {acc_sd:.1f} points within a grid point"
                if n_seeds > 1
                else ""
            )
            + "; its correlations (the rows of the second gap in the table) are read on that scale."
        ),
        "wd_baselines": baselines_text(baselines),
        "wd_ex1": _exercise_rank_methods(final, n_boot, seed),
        "wd_ex3": _exercise_first_layer(final, lrs, lo_wd, hi_wd),
    }
    return Summary(
        preset=preset,
        method=method,
        gap=gap,
        n_seeds=n_seeds,
        final=final,
        lrs=lrs,
        weight_decays=wds,
        point_means=point_means,
        panel_means=panel_means,
        points=points,
        corr=corr,
        baselines=baselines,
        within=within,
        n_gap_down=n_gap_down,
        n_sharp_up=n_sharp_up,
        n_jac_down=n_jac_down,
        acc_span=float(acc_span),
        acc_sd=float(acc_sd),
        text=text,
    )


def _exercise_rank_methods(final: pd.DataFrame, n_boot: int, seed: int) -> str:
    """Exercise 1's answer: Spearman and Kendall, both gaps, sharpness and Jacobian."""
    kw = dict(group=_GROUP, n_resamples=n_boot, seed=seed, control=None)
    both = ("gap_loss", "gap_acc")
    ken = gap_predictors(final, both, ["sharpness", "jac_spectral_max"], "kendall", **kw).set_index(
        ["gap", "predictor"]
    )
    sp = gap_predictors(final, both, ["sharpness", "jac_spectral_max"], "spearman", **kw).set_index(
        ["gap", "predictor"]
    )
    lines = []
    for g in both:
        for p in ("sharpness", "jac_spectral_max"):
            a, b = sp.loc[(g, p)], ken.loc[(g, p)]
            lines.append(
                f"- {GAP_LABEL[g]} with {tables.label(p)}: Spearman {fmt_iv(a.estimate, a.low, a.high)}, "
                f"Kendall {fmt_iv(b.estimate, b.low, b.high)}"
            )
    acc_range = 100 * (final["gap_acc"].max() - final["gap_acc"].min())
    return (
        "The runs do not change (they come from the run store), only the summary. In this build:\n\n"
        + "\n".join(lines)
        + f"\n\nThe accuracy gap spans {acc_range:.1f} percentage points over all runs. Compare the signs and "
        "whether each interval contains zero: a conclusion changes where one of them does."
    )


def _exercise_first_layer(final: pd.DataFrame, lrs, lo_wd, hi_wd) -> str:
    """Exercise 3's answer: does the first layer carry the Jacobian's fall with weight decay?"""
    fl = final.groupby(_GROUP)[["first_layer_norm", "jac_spectral_max", "curvature_norm"]].mean()
    fl["later"] = fl["jac_spectral_max"] / fl["first_layer_norm"]
    n_lr = len(lrs)
    n_fl_down = sum(fl.loc[(lr, hi_wd), "first_layer_norm"] < fl.loc[(lr, lo_wd), "first_layer_norm"] for lr in lrs)
    n_later_down = sum(fl.loc[(lr, hi_wd), "later"] < fl.loc[(lr, lo_wd), "later"] for lr in lrs)
    n_curv_up = sum(fl.loc[(lr, hi_wd), "curvature_norm"] > fl.loc[(lr, lo_wd), "curvature_norm"] for lr in lrs)
    return (
        'Compare `final.groupby(["lr", "weight_decay"])[["first_layer_norm", "jac_spectral_max", '
        '"curvature_norm"]].mean()`. In this build (means over seeds, largest decay against none): '
        f"$\\|W_1\\|_2$ falls at {n_fl_down} of {n_lr} step sizes; the ratio of the Jacobian to $\\|W_1\\|_2$ "
        f"(roughly what the later layers contribute) falls at {n_later_down} of {n_lr}; the mean output "
        f"curvature $\\overline{{\\|C\\|}}$ (`curvature_norm`, the first mediating factor, which sharpness sees "
        f"and the Jacobian does not) rises at {n_curv_up} of {n_lr}. Where the first layer falls while the "
        "later-layer ratio does not, the first layer carries the Jacobian's fall, a part sharpness cannot see."
    )


def claim_specs(weight_decays, gap: str = "gap_loss") -> dict:
    """The chapter's claims and how each is decided (:func:`._gap_stats.decide`), for the grid's decays."""
    lo, hi = {"weight_decay": min(weight_decays)}, {"weight_decay": max(weight_decays)}
    what = f"λ = {hi['weight_decay']:g} against λ = {lo['weight_decay']:g}, paired by step size and seed"
    return {
        "weight_decay.jacobian_tracks_gap": Beats(gap, rivals=("sharpness",), control=None),
        "weight_decay.raises_sharpness": Effect("sharpness", hi, lo, log=True, pair_on=("lr", "seed"), what=what),
        "weight_decay.lowers_gap": Effect("gaps", hi, lo, pair_on=("lr", "seed"), what=what),
        "weight_decay.jacobian_beats_baselines_loss_gap": Beats("gap_loss"),
        "weight_decay.jacobian_beats_baselines_acc_gap": Beats("gap_acc"),
    }


def evaluate(summary: Summary) -> dict[str, claims.Verdict]:
    """The chapter's claims, decided over seeds from ``summary.final`` (:func:`._gap_stats.decide`)."""
    specs = claim_specs(summary.weight_decays, summary.gap)
    return decide_all(specs, summary.final, preset=summary.preset)


EXPERIMENT = register_grid(
    NAME,
    WeightDecayConfig,
    "weight decay x learning rate: final gap, sharpness, Jacobian",
    chapter="Weight decay across learning rates (Fig. 2)",
    known_answers=(
        lambda q: claim_specs(q.weight_decays),
        "5 seeds x 9 grid points (3 decays x 3 step sizes); per seed a paired effect averaged over the "
        "step sizes or a Spearman correlation across the 9 grid points; t interval over seeds",
    ),
)
#: The one mapping from the chapter's parameters to its config (:func:`._grid.grid_chapter_configs`).
chapter_configs = EXPERIMENT.chapter_configs
