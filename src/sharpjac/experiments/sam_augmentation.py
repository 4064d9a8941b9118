r"""SAM radii and data augmentation (probably paper Fig. 3).

The ``sam_augmentation`` experiment of the book chapter *SAM and data augmentation (Fig. 3, probable)*.

The baseline, its checks and the runs are shared with the other flat-minima chapters
(:mod:`._grid`); this module states only the grid axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from .. import analysis, claims, tables
from ..display import num_set
from ._chapter import plural
from ._gap_stats import (
    BASELINE_LABELS,
    BASELINES,
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
    final_measurements,
    gap_predictors,
    intervention_effects,
    labelled,
    n_resamples_for,
    paired_effect,
    ratio_text,
    split_verdicts,
    tracks_sentence,
)
from ._grid import (
    GeneralisationConfig,
    describe_setting,
    grid_presets,
    is_non_negative,
    register_grid,
)

__all__ = [
    "SamAugmentationConfig",
    "NAME",
    "Summary",
    "summarise",
    "evaluate",
    "paper_setting",
    "chapter_configs",
    "PREDICTORS",
    "BASELINES",
    "corr_labels",
    "labelled",
    "BASELINE_LABELS",
    "baselines_view",
    "claim_specs",
    "split_verdicts",
]

NAME = "sam_augmentation"


@dataclass(frozen=True)
class SamAugmentationConfig(GeneralisationConfig):
    """SAM radii x data augmentation on/off (probably paper Fig. 3).

    Attributes:
        sam_rhos: SAM radii :math:`\\rho` (0: plain SGD, the baseline).
        augments: augmentation off/on (random shifts of up to 2 pixels for MNIST; crops and flips
            for CIFAR).
    """

    sam_rhos: tuple[float, ...] = (0.0, 0.05, 0.2)
    augments: tuple[bool, ...] = (False, True)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = grid_presets(
        {
            "smoke": dict(sam_rhos=(0.0, 0.1)),
            "paper": dict(sam_rhos=(0.0, 0.05, 0.1)),
        }
    )

    def _check_axes(self) -> None:
        self._need_values("sam_rhos", is_non_negative, "floats >= 0")
        self._need_values("augments", lambda v: isinstance(v, bool), "booleans")

    def grid(self):
        return [
            ({"sam_rho": float(r), "augment": bool(a), "seed": s}, self.train_config(s, sam_rho=r, augment=a))
            for a in self.augments
            for r in self.sam_rhos
            for s in self.seeds
        ]


# ------------------------------------------------------------------------------------------------
# The chapter's statistics
# ------------------------------------------------------------------------------------------------

#: The gaps in words.
GAP_LABEL = {"gap_loss": "test − train loss", "gap_acc": "train − test accuracy"}
#: Columns of the table of grid-point means: the gaps and the sharpness first, then the Jacobian
#: statistics, then the baselines.
POINT_COLUMNS = (
    "gap_loss",
    "gap_acc",
    "sharpness",
    "jac_spectral_max",
    "jac_frobenius_mean",
    "train_loss",
    "train_acc",
    "test_acc",
    "margin",
)
#: Columns of the effects table: column -> (short name, reported as a ratio).
EFFECT_COLUMNS = {"gap_loss": ("gap", False), "sharpness": ("s", True), "jac_spectral_max": ("j", True)}
_GROUP = ["sam_rho", "augment"]
#: Labels of the table of effects.
EFFECT_LABELS = {
    "intervention": "",
    "gap": "change in the loss gap",
    "gap_low": "95 % low",
    "gap_high": "95 % high",
    "s": "sharpness ratio",
    "s_low": "sharpness, 95 % low",
    "s_high": "sharpness, 95 % high",
    "j": "Jacobian ratio",
    "j_low": "Jacobian, 95 % low",
    "j_high": "Jacobian, 95 % high",
}


@dataclass(frozen=True)
class Summary:
    """What the chapter shows, computed from the runs by :func:`summarise`.

    Attributes:
        preset, method, n_seeds: the chapter's parameters. final: one row per run, with an
            ``augmentation`` column ("off"/"on").
        rhos, augments: the grid axes (sorted). point_means: means of :data:`POINT_COLUMNS` per
            grid point. panel_means: ``{column: DataFrame}``, rows the radius index ``0, 1, ...``,
            one column per augmentation setting ("augmentation off"/"on"); ``linestyles`` matches
            the columns. points: ``final`` with ``rho_index``.
        interventions: name -> treated labels, against ``control`` (the smallest radius, no
            augmentation). effects: :func:`intervention_effects` of the gap, sharpness and
            Jacobian; intervals: their intervals (log scale for the ratios).
        corr: :func:`gap_predictors` of both gaps (cluster bootstrap; shown, not deciding). baselines:
            :func:`._gap_stats.baselines_tables` (per seed, then means with t intervals over seeds).
        text: ``{glue name: Markdown}``.
    """

    preset: str
    method: str
    n_seeds: int
    final: pd.DataFrame
    rhos: list
    augments: list
    point_means: pd.DataFrame
    panel_means: dict
    linestyles: list
    points: pd.DataFrame
    control: dict
    interventions: dict
    effects: pd.DataFrame
    intervals: dict
    corr: pd.DataFrame
    baselines: pd.DataFrame
    text: dict

    @property
    def method_word(self) -> str:
        return METHOD_WORDS[self.method]

    @property
    def rho_ticks(self) -> list[str]:
        """Tick labels of the radii (at positions ``0, 1, ...``)."""
        return [f"{r:g}" for r in self.rhos]


def paper_setting(paper: SamAugmentationConfig) -> str:
    """The paper preset's grid in words, for the page's "What this page runs" box."""
    return (
        f"{describe_setting(paper)}, SAM radius $\\rho\\in{num_set(paper.sam_rhos)}$, augmentation off/on (crops "
        f"and flips), {len(paper.seeds)} seeds"
    )


def summarise(
    runs: pd.DataFrame, config: SamAugmentationConfig, *, preset: str, method: str = "spearman", seed: int = 0
) -> Summary:
    """The chapter's tables, effects and sentences from the runs of ``config``.

    Args:
        runs: ``experiments.get("sam_augmentation").run(config)``. config: the chapter's config.
        preset: the preset it ran at (bootstrap replicates: 200 at smoke, else 2000).
        method: ``"spearman"`` or ``"kendall"``. seed: the bootstrap seed (the chapter's first seed).
    """
    check_choice("method", method, analysis.METHODS)
    n_boot = n_resamples_for(preset)
    n_seeds = len(config.seeds)
    final = final_measurements(runs)
    rhos = sorted(final["sam_rho"].unique())
    augs = sorted(final["augment"].unique())
    final["augmentation"] = final["augment"].map({False: "off", True: "on"})
    point_means = final.groupby(["augmentation", "sam_rho"], as_index=False, sort=False)[list(POINT_COLUMNS)].mean()
    cols = list(EFFECT_COLUMNS)
    means = final.groupby(["augment", "sam_rho"], as_index=False)[cols].mean()
    xpos = {r: i for i, r in enumerate(rhos)}
    means = means.assign(rho_index=means["sam_rho"].map(xpos))
    names = {False: "augmentation off", True: "augmentation on"}
    panel_means = {c: means.pivot(index="rho_index", columns="augment", values=c).rename(columns=names) for c in cols}
    linestyles = ["--" if a else "-" for a in augs]
    points = final.assign(rho_index=final["sam_rho"].map(xpos))

    control = {"sam_rho": rhos[0], "augment": False}
    interventions = {f"SAM ρ = {r:g}": {"sam_rho": r, "augment": False} for r in rhos[1:]}
    if True in augs:
        interventions["augmentation"] = {"sam_rho": rhos[0], "augment": True}
    effects, ivs = intervention_effects(final, interventions, control, EFFECT_COLUMNS)

    corr = gap_predictors(
        final,
        ("gap_loss", "gap_acc"),
        PREDICTORS + BASELINES,
        method,
        group=_GROUP,
        n_resamples=n_boot,
        seed=seed,
        control="train_loss",
    )
    if "augmentation" in interventions:
        tr = interventions["augmentation"]
        lines = []
        for c in ("jac_frobenius_mean", "test_jac_frobenius_mean", "local_variation_max"):
            iv = paired_effect(final, c, tr, control, log=True)
            lines.append(f"- {tables.label(c)}: {ratio_text(iv)}")
        ex2 = (
            "In this build, augmentation multiplies (paired by seed, geometric mean):\n\n"
            + "\n".join(lines)
            + "\n\nWhere the training-set and test-set ratios agree, augmentation's effect is not a difference "
            "between train and test points; what augmentation changes off the data, along the shifts it was trained "
            "on, none of these pointwise norms measures."
        )
    else:
        ex2 = "This preset runs no augmented grid point; run the quick preset to answer."
    baselines = baselines_tables(final)
    text = {
        "sa_setting": (
            f"This page was computed with the **{preset}** preset: {describe_setting(config)}, instead of the paper's "
            f"CIFAR-10 and ResNet-18; SAM radius $\\rho\\in{num_set(rhos)}$, augmentation "
            f"{' and '.join('on' if a else 'off' for a in augs)} (random shifts of up to two pixels; CIFAR would use "
            f"crops and flips), {plural(n_seeds, 'seed')} each ({SEED_DRAW}): {len(final)} runs."
        ),
        "sa_corr": tracks_sentence(final, "gap_loss"),
        "sa_baselines": baselines_text(baselines),
        "sa_ex2": ex2,
    }
    return Summary(
        preset=preset,
        method=method,
        n_seeds=n_seeds,
        final=final,
        rhos=rhos,
        augments=augs,
        point_means=point_means,
        panel_means=panel_means,
        linestyles=linestyles,
        points=points,
        control=control,
        interventions=interventions,
        effects=effects,
        intervals=ivs,
        corr=corr,
        baselines=baselines,
        text=text,
    )


def claim_specs(rhos, augments) -> dict:
    """The chapter's claims and how each is decided (:func:`._gap_stats.decide`), for the grid's radii and
    augmentation settings (the augmentation claims only where the grid has augmented runs)."""
    control = {"sam_rho": min(rhos), "augment": False}
    sam = {"sam_rho": max(rhos), "augment": False}
    what = f"SAM ρ = {max(rhos):g} against plain SGD, no augmentation, paired by seed"
    out = {
        "sam_augmentation.sam_lowers_sharpness": Effect("sharpness", sam, control, log=True, what=what),
        "sam_augmentation.sam_lowers_jacobian": Effect("jac_spectral_max", sam, control, log=True, what=what),
        "sam_augmentation.sam_lowers_gap": Effect("gaps", sam, control, what=what),
    }
    if True in set(augments):
        aug = {"sam_rho": min(rhos), "augment": True}
        what = "augmentation on against off, plain SGD, paired by seed"
        out["sam_augmentation.augmentation_lowers_jacobian"] = Effect(
            "jac_spectral_max", aug, control, log=True, what=what
        )
        out["sam_augmentation.augmentation_lowers_gap"] = Effect("gaps", aug, control, what=what)
    return out | {
        "sam_augmentation.jacobian_beats_baselines_loss_gap": Beats("gap_loss"),
        "sam_augmentation.jacobian_beats_baselines_acc_gap": Beats("gap_acc"),
    }


def evaluate(summary: Summary) -> dict[str, claims.Verdict]:
    """The chapter's claims, decided over seeds from ``summary.final`` (:func:`._gap_stats.decide`)."""
    return decide_all(claim_specs(summary.rhos, summary.augments), summary.final, preset=summary.preset)


EXPERIMENT = register_grid(
    NAME,
    SamAugmentationConfig,
    "SAM radii x augmentation on/off: final gap, sharpness, Jacobian",
    chapter="SAM and data augmentation (Fig. 3, probable)",
    known_answers=(
        lambda q: claim_specs(q.sam_rhos, q.augments),
        "5 seeds x 6 grid points (3 SAM radii x augmentation off/on); per seed a paired effect or a partial "
        "Spearman correlation across the 6 grid points; t interval over seeds",
    ),
)
#: The one mapping from the chapter's parameters to its config (:func:`._grid.grid_chapter_configs`).
chapter_configs = EXPERIMENT.chapter_configs
