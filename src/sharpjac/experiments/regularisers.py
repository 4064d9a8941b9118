r"""Six regularisers against the baseline (paper Fig. 5, later revision).

The ``regularisers`` experiment of the book chapter *Six regularisers compared (Fig. 5, later revision)*.

The baseline, its checks and the runs are shared with the other flat-minima chapters
(:mod:`._grid`); this module states only the grid axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .. import analysis, claims, tables
from ._chapter import plural
from ._gap_stats import (
    BASELINE_LABELS,
    BASELINES,
    METHOD_WORDS,
    PREDICTORS,
    RIVALS,
    SEED_DRAW,
    Beats,
    EffectiveLower,
    baselines_tables,
    baselines_text,
    baselines_view,
    check_choice,
    corr_labels,
    decide_all,
    final_measurements,
    gap_predictors,
    grid_labels,
    intervention_effects,
    labelled,
    n_resamples_for,
    paired_effect,
    split_verdicts,
    strongest,
    tracks_sentence,
)
from ._grid import (
    GeneralisationConfig,
    describe_setting,
    grid_presets,
    is_positive,
    register_grid,
)

__all__ = [
    "RegularisersConfig",
    "NAME",
    "REGULARISERS",
    "Summary",
    "summarise",
    "evaluate",
    "paper_setting",
    "chapter_configs",
    "regulariser_words",
    "PREDICTORS",
    "BASELINES",
    "corr_labels",
    "labelled",
    "BASELINE_LABELS",
    "baselines_view",
    "claim_specs",
    "interventions_of",
    "split_verdicts",
]

NAME = "regularisers"


#: The six regularisers of the later revision's Fig. 5, as (name, TrainConfig field, config attribute).
REGULARISERS = (
    ("label smoothing", "label_smoothing", "label_smoothings"),
    ("weight decay", "weight_decay", "weight_decays"),
    ("SAM", "sam_rho", "sam_rhos"),
    ("augmentation", "augment", "augments"),
    ("larger rate", "lr", "larger_lrs"),
    ("smaller batch", "batch_size", "smaller_batches"),
)


@dataclass(frozen=True)
class RegularisersConfig(GeneralisationConfig):
    """Six regularisers vs the baseline (paper Fig. 5, later revision).

    Each attribute lists the strengths used for one regulariser, applied alone to the baseline.

    Attributes:
        label_smoothings, weight_decays, sam_rhos: values > 0.
        augments: ``(True,)`` (augmentation on) or ``()`` to leave it out.
        larger_lrs: step sizes larger than the baseline's.
        smaller_batches: batch sizes smaller than the baseline's.
    """

    label_smoothings: tuple[float, ...] = (0.1,)
    weight_decays: tuple[float, ...] = (0.003,)
    sam_rhos: tuple[float, ...] = (0.2,)
    augments: tuple[bool, ...] = (True,)
    larger_lrs: tuple[float, ...] = (0.8,)
    smaller_batches: tuple[int, ...] = (50,)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = grid_presets(
        {
            "smoke": dict(
                label_smoothings=(0.1,),
                weight_decays=(0.01,),
                sam_rhos=(0.1,),
                larger_lrs=(0.8,),
                smaller_batches=(25,),
            ),
            "paper": dict(weight_decays=(5e-4,), sam_rhos=(0.05,), larger_lrs=(0.2,), smaller_batches=(32,)),
        }
    )

    def _check_axes(self) -> None:
        self._need(all(0 < v < 1 for v in self.label_smoothings), "label_smoothings", "floats in (0, 1)")
        self._need(all(is_positive(v) for v in self.weight_decays), "weight_decays", "floats > 0")
        self._need(all(is_positive(v) for v in self.sam_rhos), "sam_rhos", "floats > 0")
        self._need(all(v is True for v in self.augments), "augments", "() or (True,)")
        self._need(
            all(is_positive(v) and v > self.lr for v in self.larger_lrs),
            "larger_lrs",
            f"floats > the baseline lr={self.lr}",
        )
        self._need(
            all(isinstance(v, int) and 0 < v < self.batch_size for v in self.smaller_batches),
            "smaller_batches",
            f"ints in (0, batch_size={self.batch_size})",
        )

    def grid(self):
        out = [({"regulariser": "baseline", "strength": 0.0, "seed": s}, self.baseline(s)) for s in self.seeds]
        for name, field, attr in REGULARISERS:
            for v in getattr(self, attr):
                for s in self.seeds:
                    out.append(
                        ({"regulariser": name, "strength": float(v), "seed": s}, self.train_config(s, **{field: v}))
                    )
        return out


# ------------------------------------------------------------------------------------------------
# The chapter's statistics
# ------------------------------------------------------------------------------------------------

#: The gap the chapter reads: the data loss without label smoothing (the same loss for every run).
GAP = "gap_loss_unsmoothed"
#: The gaps in words.
GAP_LABEL = {"gap_loss_unsmoothed": "test − train loss (plain CE)", "gap_acc": "train − test accuracy"}
_BASE = {"regulariser": "baseline"}
#: Labels of the table of effects.
EFFECT_LABELS = {
    "config": "regulariser",
    "gap": "change in gap",
    "gap_low": "95 % low",
    "gap_high": "95 % high",
    "s": "sharpness ratio",
    "s_low": "sharpness, 95 % low",
    "s_high": "sharpness, 95 % high",
    "j": "Jacobian ratio",
    "j_low": "Jacobian, 95 % low",
    "j_high": "Jacobian, 95 % high",
    "test_acc": "",
    "train_acc": "",
}


def regulariser_words(c: RegularisersConfig) -> str:
    """The regularisers of a config in words, e.g. ``"label smoothing 0.1, weight decay 0.003, ..."``."""
    parts = []
    for name, attr in (
        ("label smoothing", "label_smoothings"),
        ("weight decay", "weight_decays"),
        ("SAM with ρ", "sam_rhos"),
        ("step", "larger_lrs"),
        ("batch", "smaller_batches"),
    ):
        vals = getattr(c, attr)
        if vals:
            parts.append(f"{name} {', '.join(f'{v:g}' for v in vals)}")
    if c.augments:
        parts.insert(min(3, len(parts)), "augmentation")
    return ", ".join(parts)


def paper_setting(paper: RegularisersConfig) -> str:
    """The paper preset's grid in words, for the page's "What this page runs" box."""
    return (
        f"{describe_setting(paper)}; regularisers "
        f"{regulariser_words(paper).replace('augmentation', 'augmentation (crops and flips)')}; "
        f"{len(paper.seeds)} seeds"
    )


@dataclass(frozen=True)
class Summary:
    """What the chapter shows, computed from the runs by :func:`summarise`.

    Attributes:
        preset, method, jacobian, n_seeds: the chapter's parameters. final: one row per run, with
            ``config`` ("weight decay 0.003", "baseline", "augmentation").
        effects: per regulariser setting against the baseline, paired by seed: the change in the
            plain gap and the ratios of sharpness and of ``jacobian``, with the mean accuracies.
        corr: :func:`gap_predictors` of the plain loss gap and the accuracy gap (cluster
            bootstrap; shown, not deciding). baselines: :func:`._gap_stats.baselines_tables` (per
            seed, then means with t intervals). text: ``{glue name: Markdown}``.
    """

    preset: str
    method: str
    jacobian: str
    n_seeds: int
    final: pd.DataFrame
    effects: pd.DataFrame
    corr: pd.DataFrame
    baselines: pd.DataFrame
    text: dict

    @property
    def method_word(self) -> str:
        return METHOD_WORDS[self.method]

    @property
    def main_corr(self) -> pd.DataFrame:
        return self.corr[self.corr.gap == GAP].set_index("predictor")


def interventions_of(runs: pd.DataFrame) -> dict[str, dict]:
    """The regularised settings of a grid (one row per run, or its labels): name -> labels.

    The name is the regulariser and its strength (``"weight decay 0.003"``; ``"augmentation"``).
    """
    treated = runs[runs.regulariser != "baseline"].drop_duplicates(["regulariser", "strength"])
    return {
        (r if r == "augmentation" else f"{r} {v:g}"): {"regulariser": r, "strength": float(v)}
        for r, v in zip(treated["regulariser"], treated["strength"])
    }


def summarise(
    runs: pd.DataFrame,
    config: RegularisersConfig,
    *,
    preset: str,
    method: str = "kendall",
    jacobian: str = "jac_spectral_max",
    seed: int = 0,
) -> Summary:
    """The chapter's tables, effects and sentences from the runs of ``config``.

    Args:
        runs: ``experiments.get("regularisers").run(config)``. config: the chapter's config.
        preset: the preset it ran at (bootstrap replicates: 200 at smoke, else 2000).
        method: ``"kendall"`` or ``"spearman"``. jacobian: one of
            :data:`sharpjac.analysis.JACOBIAN_COLUMNS`. seed: the bootstrap seed.
    """
    check_choice("method", method, analysis.METHODS)
    check_choice("jacobian", jacobian, analysis.JACOBIAN_COLUMNS)
    n_boot = n_resamples_for(preset)
    n_seeds = len(config.seeds)
    final = final_measurements(runs)
    final["config"] = [
        r if r in ("baseline", "augmentation") else f"{r} {v:g}"
        for r, v in zip(final["regulariser"], final["strength"])
    ]
    interventions = interventions_of(final)
    cols = {GAP: ("gap", False), "sharpness": ("s", True), jacobian: ("j", True)}
    effects, _ = intervention_effects(final, interventions, _BASE, cols)
    effects = effects.rename(columns={"intervention": "config"})
    effects.insert(1, "regulariser", [tr["regulariser"] for tr in interventions.values()])
    acc = final.groupby("config", sort=False)[["test_acc", "train_acc"]].mean()
    effects["test_acc"] = acc.loc[effects["config"], "test_acc"].to_numpy()
    effects["train_acc"] = acc.loc[effects["config"], "train_acc"].to_numpy()

    corr = gap_predictors(
        final,
        (GAP, "gap_acc"),
        PREDICTORS + BASELINES,
        method,
        group="config",
        n_resamples=n_boot,
        seed=seed,
        control="train_loss",
    )
    main = corr[corr.gap == GAP].set_index("predictor")
    best_j = strongest(main.loc[list(analysis.JACOBIAN_COLUMNS)]).name
    if "augmentation" in interventions:
        moves = []
        for c in analysis.JACOBIAN_COLUMNS:
            iv = paired_effect(final, c, interventions["augmentation"], _BASE, log=True)
            moves.append(f"{tables.label(c)} {np.exp(iv.estimate):.2f} [{np.exp(iv.low):.2f}, {np.exp(iv.high):.2f}]")
        aug_text = (
            "Augmentation multiplies them (paired by seed, geometric mean, 95 % interval) by: " + "; ".join(moves) + "."
        )
    else:
        aug_text = "This preset has no augmented runs."
    sym = "\\tau" if method == "kendall" else "\\rho"
    baselines = baselines_tables(final, (jacobian, *RIVALS), gaps=(GAP, "gap_acc"))
    text = {
        "rg_setting": (
            f"This page was computed with the **{preset}** preset: a baseline of {describe_setting(config)}, instead "
            f"of the paper's CIFAR-10 and ResNet-18, and, one at a time, "
            f"{regulariser_words(config).replace('augmentation', 'augmentation (shifts of up to two pixels)')}; "
            f"{plural(n_seeds, 'seed')} each ({SEED_DRAW}): {len(final)} runs."
        ),
        "rg_method": METHOD_WORDS[method],
        "rg_tracks": tracks_sentence(final, GAP, jacobian=jacobian),
        "rg_baselines": baselines_text(baselines),
        "rg_ex1": (
            "The runs are read from the store; only the analysis changes. In this build the Jacobian statistic with "
            f"the largest $|{sym}|$ with the gap is {tables.label(best_j)} "
            f"({main.loc[best_j, 'estimate']:.2f}; all four are in the table). {aug_text}"
        ),
    }
    return Summary(
        preset=preset,
        method=method,
        jacobian=jacobian,
        n_seeds=n_seeds,
        final=final,
        effects=effects,
        corr=corr,
        baselines=baselines,
        text=text,
    )


def claim_specs(interventions: dict, jacobian: str = "jac_spectral_max") -> dict:
    """The chapter's claims and how each is decided (:func:`._gap_stats.decide`)."""
    return {
        "regularisers.effective_lower_jacobian": EffectiveLower(jacobian, interventions, _BASE, gaps=(GAP, "gap_acc")),
        "regularisers.jacobian_beats_sharpness": Beats(GAP, rivals=("sharpness",), control=None, jacobian=jacobian),
        "regularisers.jacobian_beats_baselines_loss_gap": Beats(GAP, jacobian=jacobian),
        "regularisers.jacobian_beats_baselines_acc_gap": Beats("gap_acc", jacobian=jacobian),
    }


def evaluate(summary: Summary) -> dict[str, claims.Verdict]:
    """The chapter's claims, decided over seeds from ``summary.final`` (:func:`._gap_stats.decide`)."""
    specs = claim_specs(interventions_of(summary.final), summary.jacobian)
    return decide_all(specs, summary.final, preset=summary.preset)


EXPERIMENT = register_grid(
    NAME,
    RegularisersConfig,
    "six regularisers vs a baseline: Kendall's tau of the gap with each measure",
    chapter="Six regularisers compared (Fig. 5, later revision)",
    known_answers=(
        lambda q: claim_specs(interventions_of(grid_labels(q))),
        "5 seeds x 7 settings (a baseline and six regularisers); per seed a paired effect against the baseline "
        "or a Spearman correlation across the 7 settings; t interval over seeds",
    ),
)
#: The one mapping from the chapter's parameters to its config (:func:`._grid.grid_chapter_configs`).
chapter_configs = EXPERIMENT.chapter_configs
