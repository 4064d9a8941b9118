r"""Claims of the flat-minima chapters: weight decay, SAM and augmentation, batch size, six regularisers,
causal test, and the baseline claims of the learning-rate chapter (its other claims are in
``_sharpening.py``).

Each claim is decided by its chapter from end-of-training measurements of a grid of runs, with the
**seed** as the unit: each seed is one independent replicate of the whole grid (its own training
subset, initialisation and batch order). Per seed the chapter computes one value (the paired
effect of an intervention averaged over the grid; a Spearman correlation across the grid points;
the Jacobian's partial correlation given the training loss minus the largest of its rivals), and
the claim reads Student's t interval over the seeds (:func:`sharpjac.claims.from_clusters`; no
interval below 3 seeds). Claims that an intervention lowers "the gap" agree only when both the
loss gap and the accuracy gap fall. Every rule's false-agree rate and power are measured on
simulated data at the quick design (:func:`sharpjac.experiments._gap_stats.register_known_answer`).
"""

from __future__ import annotations

from .registry import Claim, register
from .rules import Count, Sign

_LOG_RATIO = (
    "per seed, log({q} with / {q} without), paired by seed (averaged over the other grid labels); t interval over "
    "seeds (each seed one replicate of the grid); the threshold is no change (0), since the claim states only a "
    "direction"
)
_DIRECTION = "; the threshold is no change (0), since the claim states only a direction"
_TRACKS = (
    "per seed, rho(gap, max‖Jf‖) - |rho(gap, sharpness)| (Spearman across the grid points of that seed): the "
    "Jacobian counts only in the predicted direction (larger Jacobian, larger gap), sharpness in either; t interval "
    "over seeds; zero is the threshold because the claim is only that the Jacobian does better"
)


def _beats(chapter: str, grid: str, source: str = "companion", pooled: bool = False) -> list[Claim]:
    """The two baseline claims of a flat-minima chapter (loss gap and accuracy gap); ``pooled``: over all
    runs with delete-one-seed jackknife pseudo-values (a grid with too few points per seed)."""
    where = (
        "over the final measurements of all runs, delete-one-seed jackknife pseudo-values"
        if pooled
        else "across the grid points of the seed"
    )
    return [
        Claim(
            id=f"{chapter}.jacobian_beats_baselines_{g}",
            chapter=chapter,
            statement=f"Across {grid}, the Jacobian predicts the {words} better than sharpness and better than each "
            "baseline (training loss, parameter norm, output norm, margin), with the training loss held fixed.",
            statistic=f"per seed, partial Spearman rho({words}, max‖Jf‖ | train loss) minus the largest |partial rho| "
            f"among sharpness, parameter norm, output norm and margin (rank residuals, {where}); t interval over "
            "seeds; zero is the threshold: above it the Jacobian, in the predicted direction, says more than every "
            "rival",
            rule=Sign(+1),
            source=source,
        )
        for g, words in (("loss_gap", "loss gap"), ("acc_gap", "accuracy gap"))
    ]


register(
    # -- weight decay (paper Fig. 2) -------------------------------------------------------------
    Claim(
        id="weight_decay.raises_sharpness",
        chapter="weight_decay",
        statement="The paper reports that weight decay raises the sharpness at the end of training.",
        statistic="per seed, the mean over learning rates of log(sharpness at the largest decay / sharpness without "
        "decay), paired by (rate, seed); t interval over seeds (each seed one replicate of the grid)" + _DIRECTION,
        rule=Sign(+1),
    ),
    Claim(
        id="weight_decay.lowers_gap",
        chapter="weight_decay",
        statement="The paper reports that weight decay improves generalisation (lowers the generalisation gap).",
        statistic="per seed, the mean over learning rates of gap(largest decay) - gap(no decay), paired by (rate, "
        "seed), on the loss gap and on the accuracy gap; t intervals over seeds; agree only when both gaps fall "
        "(generalising better means both: a lower loss gap with a flat accuracy gap is only better calibration)"
        + _DIRECTION,
        rule=Sign(-1),
    ),
    Claim(
        id="weight_decay.jacobian_tracks_gap",
        chapter="weight_decay",
        statement="The paper reports that across weight decays and learning rates the Jacobian, not sharpness, "
        "follows the generalisation gap.",
        statistic=_TRACKS,
        rule=Sign(+1),
    ),
    *_beats("weight_decay", "weight decays and learning rates"),
    # -- SAM and augmentation (paper Fig. 3, probable) -------------------------------------------
    Claim(
        id="sam_augmentation.sam_lowers_sharpness",
        chapter="sam_augmentation",
        statement="The paper reports that SAM is the regulariser that lowers sharpness directly.",
        statistic=_LOG_RATIO.format(q="sharpness") + " (largest SAM radius, no augmentation)",
        rule=Sign(-1),
    ),
    Claim(
        id="sam_augmentation.sam_lowers_jacobian",
        chapter="sam_augmentation",
        statement="The paper reports that effective regularisers, SAM among them, lower the Jacobian.",
        statistic=_LOG_RATIO.format(q="max‖Jf‖") + " (largest SAM radius, no augmentation)",
        rule=Sign(-1),
    ),
    Claim(
        id="sam_augmentation.sam_lowers_gap",
        chapter="sam_augmentation",
        statement="SAM improves generalisation (lowers the generalisation gap), as the paper's account of flat "
        "minima expects.",
        statistic="per seed, gap(largest SAM radius) - gap(SGD), no augmentation, on the loss gap and on the "
        "accuracy gap; t intervals over seeds; agree only when both gaps fall (generalising better means both)"
        + _DIRECTION,
        rule=Sign(-1),
    ),
    Claim(
        id="sam_augmentation.augmentation_lowers_jacobian",
        chapter="sam_augmentation",
        statement="The paper reports that effective regularisers, data augmentation among them, lower the Jacobian.",
        statistic=_LOG_RATIO.format(q="max‖Jf‖") + " (augmentation on vs off, plain SGD)",
        rule=Sign(-1),
    ),
    Claim(
        id="sam_augmentation.augmentation_lowers_gap",
        chapter="sam_augmentation",
        statement="Data augmentation improves generalisation (lowers the generalisation gap), as the paper assumes "
        "of a regulariser.",
        statistic="per seed, gap(augmentation on) - gap(off), plain SGD, on the loss gap and on the accuracy gap; "
        "t intervals over seeds; agree only when both gaps fall (generalising better means both)" + _DIRECTION,
        rule=Sign(-1),
    ),
    *_beats("sam_augmentation", "SAM radii and augmentation"),
    # -- batch size (paper Fig. 4) ---------------------------------------------------------------
    Claim(
        id="batch_size.jacobian_tracks_gap_fixed_epochs",
        chapter="batch_size",
        statement="The paper reports that across batch sizes trained for a fixed number of epochs the Jacobian "
        "follows the generalisation gap better than sharpness does.",
        statistic=_TRACKS.replace("grid points", "fixed-epoch grid points"),
        rule=Sign(+1),
    ),
    Claim(
        id="batch_size.jacobian_tracks_gap_fixed_updates",
        chapter="batch_size",
        statement="The companion's formulation of the batch-size finding at a fixed number of updates (the "
        "reviewers' confound removed): the Jacobian still follows the gap better than sharpness does.",
        statistic=_TRACKS.replace("grid points", "fixed-update grid points"),
        rule=Sign(+1),
        source="companion",
    ),
    Claim(
        id="batch_size.high_rate_exception",
        chapter="batch_size",
        statement="The paper reports an exception at large batch and high learning rate: there the Jacobian and "
        "the gap move in opposite directions.",
        statistic="per seed, Spearman rho(loss gap, max‖Jf‖) across the batch sizes at the highest rate, fixed "
        "epochs; t interval over seeds; zero is the threshold (negative: opposite directions, the sign the paper "
        "reports)",
        rule=Sign(-1),
    ),
    *_beats("batch_size", "batch sizes and learning rates (fixed epochs)"),
    # -- six regularisers (paper Fig. 5, later revision) -----------------------------------------
    Claim(
        id="regularisers.jacobian_beats_sharpness",
        chapter="regularisers",
        statement="The paper reports that across six regularisers and a baseline the Jacobian predicts the "
        "generalisation gap better than sharpness.",
        statistic=_TRACKS.replace("grid points", "7 settings").replace("gap,", "plain cross-entropy loss gap,", 1),
        rule=Sign(+1),
    ),
    Claim(
        id="regularisers.effective_lower_jacobian",
        chapter="regularisers",
        statement="The paper reports that all effective regularisers lower the Jacobian.",
        statistic="k of n: n regularisers are effective (both gaps, plain cross-entropy loss gap and accuracy gap, "
        "lower than the baseline's with t intervals over seeds below 0, paired by seed), k of them also lower "
        "max‖Jf‖ (log ratio interval below 0); agree when k = n > 0 ('all' in the statement is the threshold)",
        rule=Count(1.0),
    ),
    *_beats("regularisers", "six regularisers and a baseline"),
    # -- causal test (beyond the paper) ----------------------------------------------------------
    Claim(
        id="causal_test.penalty_lowers_jacobian",
        chapter="causal_test",
        statement="The companion's causal test: a Jacobian penalty (Hoffman et al. 2019) lowers the Jacobian it "
        "penalises.",
        statistic=_LOG_RATIO.format(q="mean ‖Jf‖_F") + " (strongest penalty vs none)",
        rule=Sign(-1),
        source="companion",
    ),
    Claim(
        id="causal_test.penalty_lowers_sharpness",
        chapter="causal_test",
        statement="The companion's formulation of the ansatz as a causal prediction: lowering the Jacobian with a "
        "penalty lowers the sharpness at the end of training.",
        statistic=_LOG_RATIO.format(q="sharpness") + " (strongest penalty vs none)",
        rule=Sign(-1),
        source="companion",
    ),
    Claim(
        id="causal_test.penalty_lowers_gap",
        chapter="causal_test",
        statement="The companion's formulation of T4 as a causal prediction: lowering the Jacobian with a penalty "
        "lowers the generalisation gap, compared at equal training loss (the penalty slows the fit, and a run that "
        "has fitted less has a smaller gap for that reason alone).",
        statistic="per seed, gap(strongest penalty) - gap(none), each run read where its training loss first "
        "reaches a common level, on the loss gap and on the accuracy gap; t intervals over seeds; agree only when "
        "both gaps fall (a run that never reaches the level is left out)" + _DIRECTION,
        rule=Sign(-1),
        source="companion",
    ),
    Claim(
        id="causal_test.penalty_raises_test_accuracy",
        chapter="causal_test",
        statement="The companion's formulation of T4 as a causal prediction, on what a user sees: the Jacobian "
        "penalty raises the test accuracy at the end of training.",
        statistic="per seed, test accuracy(strongest penalty) - test accuracy(none) at the end of training, paired by "
        "seed; t interval over seeds; zero is the threshold (any rise counts as better generalisation)",
        rule=Sign(+1),
        source="companion",
    ),
    Claim(
        id="causal_test.sharpness_at_equal_loss",
        chapter="causal_test",
        statement="The companion's formulation of the ansatz at equal progress: read where each run's training "
        "loss first reaches a common level, the penalised runs have the lower sharpness.",
        statistic=_LOG_RATIO.format(q="sharpness at the common training-loss level")
        + " (strongest penalty vs none; a run that never reaches the level is left out)",
        rule=Sign(-1),
        source="companion",
    ),
    *_beats("causal_test", "Jacobian-penalty strengths"),
    *_beats("learning_rate", "learning rates", pooled=True),
)
