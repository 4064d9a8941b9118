r"""The Jacobian penalty of Hoffman et al. (2019): a causal test (beyond the paper).

The ``causal_test`` experiment of the book chapter *A causal test (beyond the paper)*.

The baseline, its checks and the runs are shared with the other flat-minima chapters
(:mod:`._grid`); this module states only the grid axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from .. import claims
from ..display import num_set
from ._chapter import plural
from ._gap_stats import (
    BASELINE_LABELS,
    BASELINES,
    PREDICTORS,
    SEED_DRAW,
    Beats,
    Effect,
    at_loss_level,
    baselines_tables,
    baselines_text,
    baselines_view,
    corr_labels,
    decide_all,
    final_measurements,
    gap_predictors,
    labelled,
    loss_level_for,
    n_resamples_for,
    paired_effect,
)
from ._grid import (
    GeneralisationConfig,
    describe_setting,
    grid_presets,
    is_non_negative,
    register_grid,
)

__all__ = [
    "CausalTestConfig",
    "NAME",
    "Summary",
    "summarise",
    "evaluate",
    "conclusion",
    "paper_setting",
    "chapter_configs",
    "PREDICTORS",
    "BASELINES",
    "corr_labels",
    "labelled",
    "BASELINE_LABELS",
    "baselines_view",
    "claim_specs",
]

NAME = "causal_test"


@dataclass(frozen=True)
class CausalTestConfig(GeneralisationConfig):
    """The Jacobian penalty of Hoffman et al. (2019) at several strengths (beyond the paper).

    Attributes:
        penalties: coefficients :math:`\\lambda_J\\ge0` of :math:`\\lambda_J\\widehat{\\|Jf\\|_F^2}`
            (0: the baseline).
    """

    penalties: tuple[float, ...] = (0.0, 0.03, 0.3, 1.0)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = grid_presets(
        {
            "smoke": dict(penalties=(0.0, 0.1)),
            "paper": dict(penalties=(0.0, 0.01, 0.1)),
        }
    )

    def _check_axes(self) -> None:
        self._need_values("penalties", is_non_negative, "floats >= 0")

    def grid(self):
        return [
            ({"jacobian_penalty": float(p), "seed": s}, self.train_config(s, jacobian_penalty=p))
            for p in self.penalties
            for s in self.seeds
        ]


# ------------------------------------------------------------------------------------------------
# The chapter's statistics
# ------------------------------------------------------------------------------------------------

#: The gaps in words.
GAP_LABEL = {"gap_loss": "test − train loss", "gap_acc": "train − test accuracy"}
#: Columns of the table of means per penalty strength (``s_per_c`` is added: sharpness / ‖C‖).
MEAN_COLUMNS = (
    "gap_loss",
    "gap_acc",
    "sharpness",
    "jac_spectral_max",
    "jac_frobenius_mean",
    "curvature_norm",
    "train_loss",
    "train_acc",
    "test_acc",
)
#: Columns read where the training loss first reaches the chapter's level.
LEVEL_COLUMNS = (
    "step",
    "train_loss",
    "gap_loss",
    "gap_acc",
    "test_acc",
    "sharpness",
    "jac_frobenius_mean",
    "curvature_norm",
)
#: Training curves of the first seed.
CURVE_COLUMNS = ("jac_frobenius_mean", "sharpness", "train_loss")


def paper_setting(paper: CausalTestConfig) -> str:
    """The paper preset's grid in words, for the page's "What this page runs" box."""
    return f"{describe_setting(paper)}, $\\lambda_J\\in{num_set(paper.penalties)}$, {len(paper.seeds)} seeds"


@dataclass(frozen=True)
class Summary:
    """What the chapter shows, computed from the runs by :func:`summarise`.

    Attributes:
        preset, n_seeds, loss_level: the chapter's parameters (``loss_level`` as used).
        final: one row per run. penalties: the strengths (sorted); lo, hi: the smallest and largest.
        means: means of :data:`MEAN_COLUMNS` per strength and ``s_per_c`` (mean of sharpness / ‖C‖).
        points: ``final`` with ``pen_index`` (the strength's position).
        curves: ``{column: DataFrame}``, index the step, one column per strength (first seed).
        curves_frame: the measurements after step 0 with a ``run`` label.
        jac_effect, sharp_effect: paired log ratios, largest strength vs none; gap_effect: change
            (t intervals over seeds, :func:`._gap_stats.paired_effect`).
        at_level: per run, :data:`LEVEL_COLUMNS` where the training loss first reaches the level;
            level_means: their means per strength. level_effect: the paired log sharpness ratio
            there over the ``n_level`` seeds where both runs reach it.
        corr: :func:`gap_predictors` of both gaps (Spearman, cluster bootstrap; shown, not
            deciding). baselines: :func:`._gap_stats.baselines_tables`. text: ``{glue name: Markdown}``.
    """

    preset: str
    n_seeds: int
    loss_level: float
    final: pd.DataFrame
    penalties: list
    lo: float
    hi: float
    means: pd.DataFrame
    points: pd.DataFrame
    curves: dict
    curves_frame: pd.DataFrame
    jac_effect: Any
    sharp_effect: Any
    gap_effect: Any
    at_level: pd.DataFrame
    level_means: pd.DataFrame
    level_effect: Any
    n_level: int
    corr: pd.DataFrame
    baselines: pd.DataFrame
    text: dict

    @property
    def pen_ticks(self) -> list[str]:
        return [f"{p:g}" for p in self.penalties]

    @property
    def pen_labels(self) -> list[str]:
        return [f"$\\lambda_J$ = {p:g}" for p in self.penalties]


def summarise(runs: pd.DataFrame, config: CausalTestConfig, *, preset: str, loss_level: float = 0.25, seed: int = 0):
    """The chapter's tables, effects and sentences from the runs of ``config``.

    Args:
        runs: ``experiments.get("causal_test").run(config)``. config: the chapter's config.
        preset: the preset it ran at (bootstrap replicates: 200 at smoke, else 2000).
        loss_level: training loss of the "equal progress" comparison (at least 2.0 at smoke).
        seed: the bootstrap seed and the seed whose training curves are drawn (the chapter's first).
    """
    loss_level = loss_level_for(preset, loss_level)
    n_boot = n_resamples_for(preset)
    n_seeds = len(config.seeds)
    final = final_measurements(runs)
    pens = sorted(final["jacobian_penalty"].unique())
    lo, hi = pens[0], pens[-1]
    means = final.groupby("jacobian_penalty")[list(MEAN_COLUMNS)].mean()
    means["s_per_c"] = final.assign(r=final.sharpness / final.curvature_norm).groupby("jacobian_penalty")["r"].mean()
    xpos = {p: i for i, p in enumerate(pens)}
    points = final.assign(pen_index=final["jacobian_penalty"].map(xpos))
    first = runs[(runs.seed == seed) & (runs.step > 0)]
    curves = {c: first.pivot_table(index="step", columns="jacobian_penalty", values=c) for c in CURVE_COLUMNS}
    curves_frame = runs[runs.step > 0].assign(
        run=lambda d: "λ_J=" + d.jacobian_penalty.map("{:g}".format) + ", seed " + d.seed.astype(str)
    )
    treated, control = {"jacobian_penalty": hi}, {"jacobian_penalty": lo}
    j_iv = paired_effect(final, "jac_frobenius_mean", treated, control, log=True)
    s_iv = paired_effect(final, "sharpness", treated, control, log=True)
    g_iv = paired_effect(final, "gap_loss", treated, control)
    eq_runs = at_loss_level(runs, loss_level, by=["jacobian_penalty", "seed"], columns=LEVEL_COLUMNS)
    eq = eq_runs.groupby("jacobian_penalty", as_index=False).mean().drop(columns="seed")
    e_iv = paired_effect(eq_runs, "sharpness", treated, control, log=True)
    kw = dict(n_resamples=n_boot, seed=seed)
    corr = gap_predictors(
        final,
        ("gap_loss", "gap_acc"),
        PREDICTORS + BASELINES,
        "spearman",
        group="jacobian_penalty",
        control="train_loss",
        **kw,
    )
    baselines = baselines_tables(final)
    text = {
        "ct_baselines": baselines_text(baselines),
        "ct_setting": (
            f"This page was computed with the **{preset}** preset: {describe_setting(config)}, instead of the paper's "
            f"CIFAR-10 and ResNet-18, with penalty strengths $\\lambda_J\\in{num_set(pens)}$, one random "
            f"projection per sample, {plural(n_seeds, 'seed')} each ({SEED_DRAW}): {len(final)} runs."
        ),
    }
    return Summary(
        preset=preset,
        n_seeds=n_seeds,
        loss_level=loss_level,
        final=final,
        penalties=pens,
        lo=lo,
        hi=hi,
        means=means,
        points=points,
        curves=curves,
        curves_frame=curves_frame,
        jac_effect=j_iv,
        sharp_effect=s_iv,
        gap_effect=g_iv,
        at_level=eq_runs,
        level_means=eq,
        level_effect=e_iv,
        n_level=int(e_iv.n),
        corr=corr,
        baselines=baselines,
        text=text,
    )


def claim_specs(penalties) -> dict:
    """The chapter's claims and how each is decided (:func:`._gap_stats.decide`); ``"at_level"`` claims
    read the runs where the training loss first reaches the chapter's level (:attr:`Summary.at_level`)."""
    lo, hi = {"jacobian_penalty": min(penalties)}, {"jacobian_penalty": max(penalties)}
    what = f"λ_J = {hi['jacobian_penalty']:g} against none, paired by seed"
    at = what + ", read where the training loss first reaches the common level"
    return {
        "causal_test.penalty_lowers_jacobian": Effect("jac_frobenius_mean", hi, lo, log=True, what=what),
        "causal_test.penalty_lowers_sharpness": Effect("sharpness", hi, lo, log=True, what=what),
        "causal_test.penalty_lowers_gap": Effect("gaps", hi, lo, what=at, frame="at_level"),
        "causal_test.penalty_raises_test_accuracy": Effect("test_acc", hi, lo, what=what + ", end of training"),
        "causal_test.sharpness_at_equal_loss": Effect("sharpness", hi, lo, log=True, what=at, frame="at_level"),
        "causal_test.jacobian_beats_baselines_loss_gap": Beats("gap_loss"),
        "causal_test.jacobian_beats_baselines_acc_gap": Beats("gap_acc"),
    }


def evaluate(summary: Summary) -> dict[str, claims.Verdict]:
    """The chapter's claims, decided over seeds (:func:`._gap_stats.decide`) from the final measurements
    and, for the gaps and the sharpness at equal progress, from the runs read at the loss level."""
    frames = {"final": summary.final, "at_level": summary.at_level}
    return decide_all(claim_specs(summary.penalties), frames, preset=summary.preset)


def conclusion(summary: Summary, verdicts: dict[str, claims.Verdict]) -> str:
    """The chapter's closing paragraph, chosen by the four verdicts' outcomes."""
    m, lo, hi = summary.means, summary.lo, summary.hi
    words = {cid.split(".")[1]: v.outcome for cid, v in verdicts.items()}
    gap_ok = words["penalty_lowers_gap"] == "agree"
    acc = words.get("penalty_raises_test_accuracy", "inconclusive")
    s_end, s_eq = words["penalty_lowers_sharpness"], words["sharpness_at_equal_loss"]
    parts = [
        claims.choose(
            gap_ok,
            "The Jacobian-to-generalisation link (T4) passes this direct test: at equal training loss, lowering the "
            "Jacobian lowered both gaps.",
            "The Jacobian-to-generalisation link (T4) is not confirmed by this test: at equal training loss the "
            "intervals of the two gaps do not both lie below zero.",
        ),
        {
            "agree": "The penalty also raised the test accuracy at the end of training.",
            "disagree": "The penalty lowered the test accuracy at the end of training.",
            "inconclusive": "Its effect on the test accuracy at the end of training is not resolved.",
        }[acc],
    ]
    if s_end == "agree":
        parts.append(
            "The Jacobian-to-sharpness link (the ansatz) holds at the end of training: sharpness fell with it."
        )
    elif s_eq == "agree":
        c_lo, c_hi = m.loc[lo, "curvature_norm"], m.loc[hi, "curvature_norm"]
        t_lo, t_hi = m.loc[lo, "train_loss"], m.loc[hi, "train_loss"]
        parts.append(
            "The Jacobian-to-sharpness link (the ansatz) "
            + claims.choose(s_end == "disagree", "fails", "is not confirmed")
            + " at the end of training but holds at equal training loss. At the end the penalised runs have a "
            + claims.choose(bool(t_hi > t_lo), "larger", "smaller")
            + f" training loss ({t_hi:.3f} against {t_lo:.3f}) and a "
            + claims.choose(bool(c_hi > c_lo), "larger", "smaller")
            + f" output curvature ({c_hi:.3f} against {c_lo:.3f})"
            + claims.choose(
                bool(t_hi > t_lo and c_hi > c_lo),
                ": they have fitted less, and the output curvature is the first mediating factor the ansatz allows "
                "for.",
                ".",
            )
        )
    else:
        parts.append(
            "The Jacobian-to-sharpness link (the ansatz) is not confirmed at the end of training nor at equal training "
            "loss (see the two verdicts above for which way the intervals lie)."
        )
    return " ".join(parts)


EXPERIMENT = register_grid(
    NAME,
    CausalTestConfig,
    "Jacobian penalty (Hoffman et al. 2019): does it lower sharpness and the gap?",
    chapter="A causal test (beyond the paper)",
    known_answers=(
        lambda q: claim_specs(q.penalties),
        "5 seeds x 4 penalty strengths; per seed the paired effect of the strongest penalty (at the end of "
        "training, or read at a common training loss) or a partial Spearman correlation across the 4 strengths; t "
        "interval over seeds",
    ),
)
#: The one mapping from the chapter's parameters to its config (:func:`._grid.grid_chapter_configs`).
chapter_configs = EXPERIMENT.chapter_configs
