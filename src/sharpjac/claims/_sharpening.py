"""Claims tested by the sharpening chapters: progressive_sharpening, early_training, whole_run, learning_rate.

Each claim names the statistic its chapter computes and the decision rule that turns the numbers
into an outcome; the chapters pass the numbers to :func:`sharpjac.claims.evaluate`.
"""

from __future__ import annotations

from .registry import Claim, register
from .rules import CountOfRuns, Permutation, Sign

register(
    # ---------------------------------------------------------------- progressive_sharpening
    Claim(
        id="progressive_sharpening.edge_of_stability",
        chapter="progressive_sharpening",
        statement=(
            "The paper (after Cohen et al.) claims that under full-batch gradient descent with the squared error "
            "sharpness rises to about 2/η and then hovers there (the edge of stability)."
        ),
        statistic=(
            "share of squared-error runs (step sizes × seeds) whose final sharpness (median over the last fifth of "
            "the measurements) lies within [0.8, 1.2] × 2/η; the band is the companion's: ±20 % is wider than the "
            "oscillation of sharpness at the edge and narrower than the gap to a run that stalls below it; 80 % "
            "of the runs, not all, because one run in five may end on an excursion of the oscillation"
        ),
        rule=CountOfRuns(required=0.8),
    ),
    Claim(
        id="progressive_sharpening.edge_of_stability_ce",
        chapter="progressive_sharpening",
        statement=(
            "The paper (after Cohen et al.) claims that under full-batch gradient descent with cross-entropy "
            "sharpness rises to about 2/η and then hovers there (the edge of stability)."
        ),
        statistic=(
            "share of cross-entropy runs (step sizes × seeds) whose final sharpness (median over the last fifth of "
            "the measurements) lies within [0.8, 1.2] × 2/η (the band as for the squared error)"
        ),
        rule=CountOfRuns(required=0.8),
    ),
    Claim(
        id="progressive_sharpening.jacobian_rises_with_sharpness",
        chapter="progressive_sharpening",
        statement=(
            "The paper claims that during progressive sharpening, before the edge of stability, the Jacobian over "
            "the training sample rises together with sharpness."
        ),
        statistic=(
            "mean within-run rank correlation of sharpness and max‖Jf(xᵢ)‖₂ before sharpness reaches 0.9 × 2/η "
            "over the squared-error runs, against the same statistic with each run's Jacobian paired with another "
            "run's of the same step size (a shared trend and nothing else): one-sided permutation p-value"
        ),
        rule=Permutation(0.05),
    ),
    Claim(
        id="progressive_sharpening.larger_step_smaller_jacobian",
        chapter="progressive_sharpening",
        statement=(
            "The paper claims that the stability limit 2/η caps the Jacobian through the ansatz, so that under "
            "full-batch gradient descent a larger step ends with a smaller Jacobian."
        ),
        statistic=(
            "per seed, the relative change of the final max‖Jf(xᵢ)‖₂ from the smallest to the largest step size "
            "(squared error, equal time ηt, the same initialisation); mean over seeds with a 95 % t interval over "
            "seeds (at least 3)"
        ),
        rule=Sign(predicted=-1),
    ),
    # ---------------------------------------------------------------- early_training
    Claim(
        id="early_training.jacobian_tracks_sharpness",
        chapter="early_training",
        statement=(
            "The paper claims that early in training sharpness and the Jacobian norm over the training sample rise "
            "and fall together (tested here pooled over the label-smoothing values)."
        ),
        statistic=(
            "mean within-run rank correlation of sharpness and max‖Jf(xᵢ)‖₂ over the early phase, against the same "
            "statistic with each run's Jacobian paired with another run's of the same smoothing value (a shared "
            "trend and nothing else): one-sided permutation p-value"
        ),
        rule=Permutation(0.05),
    ),
    Claim(
        id="early_training.curvature_explains_scale",
        chapter="early_training",
        statement=(
            "The paper claims that the scale linking sharpness to the Jacobian drifts with label smoothing through "
            "the mean output curvature, the first of its mediating factors."
        ),
        statistic=(
            "per seed, the rank correlation across the smoothing values between the final mean output curvature "
            "and the final ratio sharpness / max‖Jf(xᵢ)‖₂; mean over seeds with a 95 % t interval over seeds "
            "(at least 3)"
        ),
        rule=Sign(predicted=+1),
    ),
    # ---------------------------------------------------------------- whole_run
    Claim(
        id="whole_run.link_weakens_late",
        chapter="whole_run",
        statement=(
            "The paper claims that over the whole run sharpness and the Jacobian are linked less tightly late in "
            "training than early on."
        ),
        statistic=(
            "per seed, the mean over smoothing values of ρ(after the sharpness peak) − ρ(up to the peak), rank "
            "correlation of sharpness and max‖Jf(xᵢ)‖₂ within a run; mean over seeds with a 95 % t interval over "
            "seeds (at least 3)"
        ),
        rule=Sign(predicted=-1),
    ),
    Claim(
        id="whole_run.mediators_account",
        chapter="whole_run",
        statement=(
            "The paper claims that where sharpness departs from the Jacobian late in training, a mediating factor "
            "(output curvature, feature norms, first-layer weights) accounts for it."
        ),
        statistic=(
            "share of runs in which a mediating factor moves, from the sharpness peak to the end, in the direction "
            "of the decoupling Δlog s − Δlog max‖Jf‖ by at least half its size (half: that factor alone then "
            "accounts for more of the decoupling than everything else together)"
        ),
        rule=CountOfRuns(required=1.0),
    ),
    # ---------------------------------------------------------------- learning_rate
    Claim(
        id="learning_rate.gap_tracks_jacobian",
        chapter="learning_rate",
        statement="The paper claims that over training the generalisation gap moves with the Jacobian.",
        statistic=(
            "mean over runs of the within-run rank correlation of the loss gap and max‖Jf(xᵢ)‖₂ over the "
            "measurements, against a stratified trend null (each run's gap paired with another run's Jacobian of "
            "the same step size, so a trend the runs share passes at most at the nominal rate); one-sided "
            "permutation test at 5 %, the usual level"
        ),
        rule=Permutation(0.05),
    ),
    Claim(
        id="learning_rate.jacobian_beats_sharpness",
        chapter="learning_rate",
        statement=(
            "The paper claims that across learning rates the Jacobian predicts the generalisation gap better than "
            "sharpness does."
        ),
        statistic=(
            "ρ(gap, max‖Jf(xᵢ)‖₂) − |ρ(gap, sharpness)| over the final measurements of all runs (the Jacobian "
            "counted only in the predicted direction), delete-one-seed jackknife pseudo-values, t interval over "
            "seeds; zero is the threshold because the claim is only that the Jacobian does better"
        ),
        rule=Sign(predicted=+1),
    ),
    Claim(
        id="learning_rate.larger_step_lower_sharpness",
        chapter="learning_rate",
        statement="The paper claims that a larger learning rate ends training at a lower sharpness.",
        statistic=(
            "per seed, log(final sharpness at the largest step / at the smallest), paired by seed; t interval "
            "over seeds (each seed draws its own training subset)"
            "; the threshold is no change (0), since the claim states only a direction"
        ),
        rule=Sign(predicted=-1),
    ),
    Claim(
        id="learning_rate.larger_step_lower_jacobian",
        chapter="learning_rate",
        statement=(
            "The paper claims that a larger learning rate regularises the Jacobian, ending training with a smaller "
            "Jacobian norm."
        ),
        statistic=(
            "per seed, log(final max‖Jf(xᵢ)‖₂ at the largest step / at the smallest), paired by seed; t interval "
            "over seeds"
            "; the threshold is no change (0), since the claim states only a direction"
        ),
        rule=Sign(predicted=-1),
    ),
    Claim(
        id="learning_rate.larger_step_lower_gap",
        chapter="learning_rate",
        statement="The paper claims that a larger learning rate ends training with a smaller generalisation gap.",
        statistic=(
            "per seed, final gap at the largest step minus at the smallest, paired by seed, on the loss gap and on "
            "the accuracy gap; t intervals over seeds; agree only when both gaps fall (a smaller gap means both)"
            "; the threshold is no change (0), since the claim states only a direction"
        ),
        rule=Sign(predicted=-1),
    ),
)
