"""Claims of the theory chapters T1-T4 (the companion's formulations of the paper's theorems).

Each claim is decided in its chapter from computed numbers (``claims.evaluate``); the statements
say "the companion's formulation" where the book proves a formulation of its own.
"""

from __future__ import annotations

from .registry import Claim, register
from .rules import AtMost, Contains, Holds, Sign

_T1_DIMS = (1, 2, 3, 4)

register(
    *(
        Claim(
            id=f"t1_covering.rate_d{d}",
            chapter="t1_covering",
            statement=(
                f"For data made by a Lipschitz generator of intrinsic dimension d = {d}, the covering radius "
                f"of an N-sample decays with slope close to -1/d = {-1 / d:.2f} on a log-log plot against N."
            ),
            statistic=(
                f"least-squares slope of log(covering radius) on log N over every sample (all seeds and "
                f"repeats), with its 95 % t-interval; target -1/{d}"
            ),
            rule=Contains(-1.0 / d),
            source="paper",
        )
        for d in _T1_DIMS
    ),
    Claim(
        id="t1_covering.bound_holds",
        kind="check",
        chapter="t1_covering",
        statement=(
            "The companion's formulation of Theorem T1: for N >= log(N/eps) >= 1 the covering radius of an "
            "N-sample of g#Unif[0,1]^d is at most 2 L_g sqrt(d) (log(N/eps)/N)^(1/d) (with probability 1 - eps)."
        ),
        statistic="samples (every d, N, seed and repeat) whose measured covering radius exceeds T1's bound",
        rule=Holds(),
        source="companion",
    ),
    Claim(
        id="t2_lipschitz.sandwich_holds",
        kind="check",
        chapter="t2_lipschitz",
        statement=(
            "The companion's formulation of Theorem T2: on the covering event, max_i ||Jf(x_i)|| <= "
            "sup_S ||Jf|| <= max_i ||Jf(x_i)|| + max_i V_B(x_i, delta)(Jf), and every Lipschitz ratio along S "
            "is at most the right side."
        ),
        statistic=(
            "checkpoints (every seed) where an estimate of sup_S ||Jf|| (dense probe, path slopes) lies outside "
            "[sample max, sample max + searched local variation]"
        ),
        rule=Holds(),
        source="companion",
    ),
    Claim(
        id="t3_low_loss.mse_bound_holds",
        kind="check",
        chapter="t3_low_loss",
        statement=(
            "The companion's formulation of Theorem T3 for squared error: once every output is within rho of its "
            "one-hot label, sup ||Jf|| on a path of length D between differently labelled points is at least "
            "(sqrt 2 - 2 rho)/D."
        ),
        statistic=(
            "hardest pairs x checkpoints x seeds with a positive bound (rho < 1/sqrt 2, true and random labels) "
            "where the measured path supremum is below it"
        ),
        rule=Holds(),
        source="companion",
    ),
    Claim(
        id="t3_low_loss.ce_bound_holds",
        kind="check",
        chapter="t3_low_loss",
        statement=(
            "The companion's formulation of Theorem T3 for cross-entropy: once every per-sample loss is at most "
            "eta < log 2, sup ||Jf|| on a path of length D between differently labelled points is at least "
            "sqrt 2 log(1/(e^eta - 1))/D."
        ),
        statistic=(
            "hardest pairs x checkpoints x seeds with a positive bound (eta < log 2, true and random labels) "
            "where the measured path supremum is below it"
        ),
        rule=Holds(),
        source="companion",
    ),
    Claim(
        id="t3_low_loss.random_labels_bound_holds",
        kind="check",
        chapter="t3_low_loss",
        statement=(
            "The companion's formulation of Theorem T3 holds for random labels too, once they are fitted: the "
            "bound on the hardest (closest differently labelled) pairs stays below the measured path supremum."
        ),
        statistic=(
            "hardest pairs x checkpoints x seeds of the random-label runs (both losses) with a positive bound "
            "where the measured path supremum is below it"
        ),
        rule=Holds(),
        source="companion",
    ),
    Claim(
        id="t3_low_loss.random_labels_force_growth",
        chapter="t3_low_loss",
        statement="Random labels force more growth of the Jacobian than the true labels once both are fitted.",
        statistic=(
            "mean over seeds and losses of log(max_i ||Jf(x_i)|| random / true) at the end of training, "
            "paired by seed and loss, cluster bootstrap over seeds, 95 %"
        ),
        rule=Sign(+1),
        source="paper",
    ),
    Claim(
        id="t4_generalisation.bound_holds_measured",
        kind="check",
        chapter="t4_generalisation",
        statement=(
            "The companion's formulation of Theorem T4: the expected loss is at most the Voronoi-weighted "
            "training loss plus delta [K (max_i ||Jf(x_i)|| + V) + K' L*], here with delta the measured "
            "covering radius."
        ),
        statistic="runs (every d, run and seed) whose test loss on the probe exceeds the bound",
        rule=Holds(),
        source="companion",
    ),
    Claim(
        id="t4_generalisation.bound_holds_t1",
        kind="check",
        chapter="t4_generalisation",
        statement=(
            "The companion's formulation of Theorem T4 with delta = delta(N, eps) from T1 (the theorem's "
            "probabilistic statement): the expected loss is at most the bound with probability at least 1 - eps."
        ),
        statistic="runs (every d, run and seed) whose test loss on the probe exceeds the bound with T1's delta",
        rule=Holds(),
        source="companion",
    ),
    Claim(
        id="t4_generalisation.bound_informative",
        kind="information",
        chapter="t4_generalisation",
        statement=(
            "Information, not a claim of the paper (which never evaluates its bound): T4's bound with the "
            "measured covering radius is non-vacuous, i.e. below the test loss of the best constant predictor, "
            "for at least one run."
        ),
        statistic="smallest ratio bound / (test loss of the best constant predictor) over all runs",
        rule=AtMost(1.0),
        source="companion",
    ),
    Claim(
        id="t4_generalisation.bound_ranks_runs",
        chapter="t4_generalisation",
        statement=(
            "A small empirical Jacobian (through T4's bound) orders the runs by test loss better than sharpness does."
        ),
        statistic=(
            "Kendall tau(bound, test loss) - tau(sharpness, test loss) over all runs, paired cluster bootstrap "
            "over (seed, d) groups, 95 %"
        ),
        rule=Sign(+1),
        source="paper",
    ),
)
