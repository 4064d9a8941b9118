r"""Batch size at fixed epochs and at fixed updates (paper Fig. 4).

The ``batch_size`` experiment of the book chapter *Batch size (Fig. 4)*.

The baseline, its checks and the runs are shared with the other flat-minima chapters
(:mod:`._grid`); this module states only the grid axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .. import analysis, claims
from ..display import num_list
from ._chapter import plural
from ._gap_stats import (
    BASELINE_LABELS,
    BASELINES,
    GAP_LABEL,
    METHOD_WORDS,
    PREDICTORS,
    SEED_DRAW,
    Beats,
    Rho,
    baselines_table,
    baselines_tables,
    baselines_text,
    baselines_view,
    check_choice,
    corr_labels,
    decide_all,
    final_measurements,
    gap_predictors,
    labelled,
    n_resamples_for,
    paired_effect,
    split_verdicts,
    tracks_sentence,
)
from ._grid import (
    BUDGETS,
    GeneralisationConfig,
    describe_setting,
    grid_presets,
    is_positive,
    register_grid,
)

__all__ = [
    "BatchSizeConfig",
    "NAME",
    "Summary",
    "summarise",
    "evaluate",
    "paper_setting",
    "chapter_configs",
    "PREDICTORS",
    "BASELINES",
    "EXTRA_PREDICTORS",
    "corr_labels",
    "labelled",
    "BASELINE_LABELS",
    "baselines_view",
    "GAP_LABEL",
    "claim_specs",
    "split_verdicts",
]

NAME = "batch_size"


@dataclass(frozen=True)
class BatchSizeConfig(GeneralisationConfig):
    """Batch size at a fixed number of epochs and at a fixed number of updates (paper Fig. 4).

    Attributes:
        batch_sizes: mini-batch sizes (the baseline's is where both budgets meet).
        lrs: step sizes (the paper's exception is the large-batch, high-rate corner).
        budgets: ``"epochs"`` and/or ``"updates"`` (see :meth:`GeneralisationConfig.train_config`).
    """

    batch_sizes: tuple[int, ...] = (50, 100, 500)
    lrs: tuple[float, ...] = (0.2, 0.8)
    budgets: tuple[str, ...] = BUDGETS

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = grid_presets(
        {
            "smoke": dict(batch_sizes=(50, 100), lrs=(0.2, 0.8)),
            "paper": dict(batch_sizes=(32, 128, 512), lrs=(0.05, 0.2)),
        }
    )

    def _check_axes(self) -> None:
        self._need_values("batch_sizes", lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, "ints > 0")
        self._need_values("lrs", is_positive, "floats > 0")
        self._need_values("budgets", lambda v: v in BUDGETS, f"values in {BUDGETS}")

    def grid(self):
        return [
            (
                {"budget": b, "batch_size": int(bs), "lr": float(lr), "seed": s},
                self.train_config(s, budget=b, batch_size=bs, lr=lr),
            )
            for b in self.budgets
            for lr in self.lrs
            for bs in self.batch_sizes
            for s in self.seeds
        ]


# ------------------------------------------------------------------------------------------------
# The chapter's statistics
# ------------------------------------------------------------------------------------------------

#: Predictors beside PREDICTORS and BASELINES: the local variation and the Jacobian plus it.
EXTRA_PREDICTORS = ("local_variation_max", "jac_plus_variation")
#: Columns of the table of grid-point means: the step reached (it names the grid point with the
#: budget), the gap and the sharpness, then the Jacobian and the local variation, then the baselines.
POINT_COLUMNS = (
    "step",
    "gap_loss",
    "sharpness",
    "jac_spectral_max",
    "local_variation_max",
    "train_loss",
    "train_acc",
    "test_acc",
)
#: The figure's panels, one row per budget.
PANEL_COLUMNS = ("gap_loss", "sharpness", "jac_spectral_max", "local_variation_max")
#: Columns of the table of changes: short name -> (column, reported as a ratio).
CHANGE_COLUMNS = {
    "gap": ("gap_loss", False),
    "trl": ("train_loss", False),
    "s": ("sharpness", True),
    "j": ("jac_spectral_max", True),
    "lv": ("local_variation_max", True),
}
_GROUP = ["lr", "batch_size"]
#: Labels of the table of changes.
CHANGE_LABELS = {
    "budget": "",
    "lr": "",
    "gap": "change in gap",
    "gap_low": "gap, 95 % low",
    "gap_high": "gap, 95 % high",
    "s": "sharpness ratio",
    "j": "Jacobian ratio",
    "j_low": "Jacobian, 95 % low",
    "j_high": "Jacobian, 95 % high",
    "lv": "local-variation ratio",
    "trl": "change in training loss",
    "direction": "gap vs Jacobian",
}


@dataclass(frozen=True)
class Summary:
    """What the chapter shows, computed from the runs by :func:`summarise`.

    Attributes:
        preset, method, n_seeds: the chapter's parameters. final: one row per run, with
            ``jac_plus_variation`` (max Jacobian + max local variation) and ``setting``
            ("fixed epochs, η = 0.2").
        batches, lrs, budgets: the grid axes. base_batch: the baseline's batch size; big: the
            largest. radius: the local variation's radius.
        point_means: means of :data:`POINT_COLUMNS` per grid point.
        panel_keys: ``(budget, column)`` in figure order (a row per budget); panel_means:
            ``{(budget, column): DataFrame}``, index the batch size, one column per step size.
        changes: per (budget, step size), the paired change from the baseline batch to the largest
            (gap, training loss; ratios of sharpness, Jacobian, local variation) and ``direction``
            of gap vs Jacobian ("same", "opposite", "unclear").
        corr: predictor tables per budget (``budget`` "fixed epochs"/"fixed updates").
        tracks: ``{budget: sentence}`` (:func:`._gap_stats.tracks_sentence`: per seed
            :math:`\rho_J-|\rho_s|`). baselines: :func:`._gap_stats.baselines_tables` at the first
            budget. exception: per seed, Spearman's rho of the loss gap with the Jacobian and the
            local variation across the batch sizes at the first budget and the largest step size,
            means and t intervals over seeds; high_lr, n_exception: that step size and its number
            of runs. text: ``{glue name: Markdown}``.
    """

    preset: str
    method: str
    n_seeds: int
    final: pd.DataFrame
    batches: list
    lrs: list
    budgets: list
    base_batch: int
    big: int
    radius: float
    point_means: pd.DataFrame
    panel_keys: list
    panel_means: dict
    changes: pd.DataFrame
    corr: pd.DataFrame
    tracks: dict
    baselines: pd.DataFrame
    exception: pd.DataFrame
    high_lr: float
    n_exception: int
    text: dict

    @property
    def method_word(self) -> str:
        return METHOD_WORDS[self.method]

    @property
    def lr_labels(self) -> list[str]:
        """Legend labels of the step sizes, in the order of the columns of ``panel_means``."""
        return [f"$\\eta$ = {lr:g}" for lr in self.lrs]

    @property
    def batch_ticks(self) -> list[str]:
        return [str(b) for b in self.batches]


def paper_setting(paper: BatchSizeConfig) -> str:
    """The paper preset's grid in words, for the page's "What this page runs" box."""
    return (
        f"{describe_setting(paper)}, batch sizes {num_list(paper.batch_sizes)} at step sizes {num_list(paper.lrs)}, "
        f"either for {paper.max_epochs} epochs or for the baseline's {paper.baseline_steps():,} updates, "
        f"{len(paper.seeds)} seeds"
    )


def _direction(r: dict) -> str:
    g_sign = 1 if r["gap_low"] > 0 else -1 if r["gap_high"] < 0 else 0
    j_sign = 1 if r["j_low"] > 1 else -1 if r["j_high"] < 1 else 0
    return "unclear" if g_sign * j_sign == 0 else ("same" if g_sign == j_sign else "opposite")


def _changes(final, budgets, lrs, big, base_batch, n_boot, seed) -> pd.DataFrame:
    rows = []
    for budget in budgets:
        for lr in lrs:
            sub = final[(final.budget == budget) & (final.lr == lr)]
            if not ((sub.batch_size == big).any() and (sub.batch_size == base_batch).any()):
                continue
            r: dict[str, Any] = {"budget": budget, "lr": lr}
            for key, (col, log) in CHANGE_COLUMNS.items():
                iv = paired_effect(sub, col, {"batch_size": big}, {"batch_size": base_batch}, log=log)
                f = np.exp if log else float
                r[key], r[f"{key}_low"], r[f"{key}_high"] = f(iv.estimate), f(iv.low), f(iv.high)
            r["direction"] = _direction(r)
            rows.append(r)
    return pd.DataFrame(rows)


def _changes_text(changes: pd.DataFrame, base_batch, big, n_seeds) -> str:
    opp = changes[changes.direction == "opposite"]
    same = changes[changes.direction == "same"]
    lines = [
        f"From batch {base_batch} to batch {big}, gap and Jacobian move in opposite directions (both intervals "
        f"excluding no change) in {len(opp)} of {len(changes)} (budget, step size) cases and in the same direction in "
        f"{len(same)}"
        + claims.choose(
            len(opp) + len(same) < len(changes),
            f"; {len(changes) - len(opp) - len(same)} are unclear at {plural(n_seeds, 'seed')}.",
            ".",
        )
    ]
    if len(opp):
        k = int(((opp.lv_low > 1) == (opp.gap_low > 0)).sum())
        lines.append(
            "Where they move apart ("
            + ", ".join(f"fixed {r.budget}, η = {r.lr:g}" for r in opp.itertuples())
            + f"), the local variation moves the way the gap does in {k} of {len(opp)}, "
            + claims.choose(k == len(opp), "as the paper's explanation requires.", "so it does not explain every case.")
        )
    fe, fu = changes[changes.budget == "epochs"], changes[changes.budget == "updates"]
    if len(fe) and len(fu):
        lines.append(
            f"The mean absolute change in the gap is {fe.gap.abs().mean():.3f} at fixed epochs and "
            f"{fu.gap.abs().mean():.3f} at fixed updates; "
            + claims.choose(
                bool(fu.gap.abs().mean() < fe.gap.abs().mean()),
                "so part of the batch-size effect of a fixed-epoch sweep is an effect of training length (the "
                "reviewers' confound).",
                "so training length does not explain the batch-size effect here.",
            )
        )
    return " ".join(lines)


def _exercise_full_batch(final: pd.DataFrame, config: BatchSizeConfig, lrs, big) -> str:
    caps = ", ".join(f"{2 / lr:g} at η = {lr:g}" for lr in lrs)
    fu_big = final[(final.budget == "updates") & (final.batch_size == big)]
    return (
        f"Batch {config.n_train:,} is the whole training set, so each update is a gradient-descent step and the "
        f"sharpness is capped near $2/\\eta$ (the edge of stability of the progressive-sharpening chapter): {caps}. "
        + (
            f"In this build the batch-{big} runs at fixed updates end with a mean sharpness of "
            + ", ".join(f"{fu_big[fu_big.lr == lr].sharpness.mean():.2f} at η = {lr:g}" for lr in lrs)
            + "; compare these with the caps: where the sharpness is well below its cap, full-batch training should "
            "differ little from batch " + f"{big}."
            if len(fu_big)
            else ""
        )
        + f" At a fixed number of epochs the full-batch runs make only {config.max_epochs} updates: look at their "
        "training accuracy before reading their gap."
    )


def summarise(
    runs: pd.DataFrame, config: BatchSizeConfig, *, preset: str, method: str = "spearman", seed: int = 0
) -> Summary:
    """The chapter's tables, effects and sentences from the runs of ``config``.

    Args:
        runs: ``experiments.get("batch_size").run(config)``. config: the chapter's config.
        preset: the preset it ran at (bootstrap replicates: 200 at smoke, else 2000).
        method: ``"spearman"`` or ``"kendall"``. seed: the bootstrap seed (the chapter's first seed).
    """
    check_choice("method", method, analysis.METHODS)
    n_boot = n_resamples_for(preset)
    n_seeds = len(config.seeds)
    final = final_measurements(runs)
    final["jac_plus_variation"] = final["jac_spectral_max"] + final["local_variation_max"]
    final["setting"] = final.budget.map(lambda b: f"fixed {b}") + ", η = " + final.lr.map("{:g}".format)
    batches, lrs = sorted(final["batch_size"].unique()), sorted(final["lr"].unique())
    base_batch, high_lr, big = config.batch_size, lrs[-1], batches[-1]
    budgets = [b for b in BUDGETS if b in set(final["budget"])]
    point_means = final.groupby(["budget", *_GROUP], as_index=False, sort=False)[list(POINT_COLUMNS)].mean()
    means = final.groupby(["budget", *_GROUP], as_index=False)[list(PANEL_COLUMNS)].mean()
    panel_keys = [(b, c) for b in budgets for c in PANEL_COLUMNS]
    panel_means = {
        (b, c): means[means.budget == b].pivot(index="batch_size", columns="lr", values=c) for b, c in panel_keys
    }
    changes = _changes(final, budgets, lrs, big, base_batch, n_boot, seed)

    tabs, cmp = [], {}
    for budget in budgets:
        sub = final[final.budget == budget]
        t = gap_predictors(
            sub,
            "gap_loss",
            PREDICTORS + BASELINES + EXTRA_PREDICTORS,
            method,
            group=_GROUP,
            n_resamples=n_boot,
            seed=seed,
            control="train_loss",
        )
        tabs.append(t.assign(budget=f"fixed {budget}"))
        cmp[budget] = tracks_sentence(sub, "gap_loss")
    hi_sub = final[(final.budget == budgets[0]) & (final.lr == high_lr)]
    exception = baselines_table(hi_sub, "gap_loss", ["jac_spectral_max", "local_variation_max"]).set_index("predictor")
    baselines = baselines_tables(final[final.budget == budgets[0]])
    text = {
        "bs_setting": (
            f"This page was computed with the **{preset}** preset: {describe_setting(config)} for the baseline, "
            f"instead of the paper's CIFAR-10 and ResNet-18; batch sizes {num_list(batches)} at step sizes "
            f"{num_list(lrs)}, "
            + " or ".join(
                f"for {config.max_epochs} epochs"
                if b == "epochs"
                else f"for the baseline's {config.baseline_steps():,} updates"
                for b in budgets
            )
            + f"; {plural(n_seeds, 'seed')} each ({SEED_DRAW}): {final['run_key'].nunique()} distinct runs."
        ),
        "bs_changes": _changes_text(changes, base_batch, big, n_seeds),
        "bs_baselines": baselines_text(baselines),
        "bs_ex1": _exercise_full_batch(final, config, lrs, big),
    }
    return Summary(
        preset=preset,
        method=method,
        n_seeds=n_seeds,
        final=final,
        batches=batches,
        lrs=lrs,
        budgets=budgets,
        base_batch=base_batch,
        big=big,
        radius=float(runs.attrs["variation_radius"]),
        point_means=point_means,
        panel_keys=panel_keys,
        panel_means=panel_means,
        changes=changes,
        corr=pd.concat(tabs, ignore_index=True),
        tracks=cmp,
        baselines=baselines,
        exception=exception,
        high_lr=high_lr,
        n_exception=len(hi_sub),
        text=text,
    )


def claim_specs(lrs, budgets) -> dict:
    """The chapter's claims and how each is decided (:func:`._gap_stats.decide`), for the grid's rates and budgets."""
    out = {
        cid: Beats("gap_loss", rivals=("sharpness",), control=None, where={"budget": b})
        for b, cid in (
            ("epochs", "batch_size.jacobian_tracks_gap_fixed_epochs"),
            ("updates", "batch_size.jacobian_tracks_gap_fixed_updates"),
        )
        if b in budgets
    }
    first = [b for b in BUDGETS if b in budgets][0]
    out["batch_size.high_rate_exception"] = Rho("gap_loss", where={"budget": first, "lr": max(lrs)})
    return out | {
        "batch_size.jacobian_beats_baselines_loss_gap": Beats("gap_loss", where={"budget": first}),
        "batch_size.jacobian_beats_baselines_acc_gap": Beats("gap_acc", where={"budget": first}),
    }


def evaluate(summary: Summary) -> dict[str, claims.Verdict]:
    """The chapter's claims, decided over seeds from ``summary.final`` (:func:`._gap_stats.decide`)."""
    return decide_all(claim_specs(summary.lrs, summary.budgets), summary.final, preset=summary.preset)


EXPERIMENT = register_grid(
    NAME,
    BatchSizeConfig,
    "batch size at fixed epochs and at fixed updates, with local variation",
    chapter="Batch size (Fig. 4)",
    known_answers=(
        lambda q: claim_specs(q.lrs, q.budgets),
        "5 seeds x 12 grid points (3 batch sizes x 2 step sizes x 2 budgets); per seed a Spearman correlation "
        "across the 6 grid points of one budget (3 batch sizes at the highest rate for the exception); t interval over "
        "seeds",
    ),
)
#: The one mapping from the chapter's parameters to its config (:func:`._grid.grid_chapter_configs`).
chapter_configs = EXPERIMENT.chapter_configs
