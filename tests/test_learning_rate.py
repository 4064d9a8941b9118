"""The learning-rate chapter's statistics (``experiments.learning_rate``) on synthetic training curves
with a known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sharpjac import analysis, tables
from sharpjac.experiments import _gap_stats as S
from sharpjac.experiments import learning_rate as L

LRS, SEEDS, STEPS = (0.1, 0.4), (0, 1, 2), np.arange(6)


def _gap(lr, s, k):
    return 0.01 * k**2 * (1 + lr) + 0.001 * s


def _runs() -> pd.DataFrame:
    """Over training: the gap grows as k^2, max ||Jf|| = 3 gap + 1 (equal ranks, also of differences),
    the sharpness falls; the training loss 2 - 0.3 k (1 + lr) first reaches 1.0 at k = 4 (lr 0.1) or
    k = 3 (lr 0.4)."""
    rows = []
    for lr in LRS:
        for s in SEEDS:
            for k in STEPS:
                gap = _gap(lr, s, k)
                rows.append(
                    {
                        "lr": lr,
                        "seed": s,
                        "step": int(k),
                        "gap_loss": gap,
                        "gap_acc": gap / 2,
                        "train_loss": 2 - 0.3 * k * (1 + lr),
                        "test_acc": 0.9 - lr / 10,
                        "sharpness": 10 / (1 + k) / (1 + lr) + 0.01 * s,
                        "jac_spectral_max": 3 * gap + 1,
                        "jac_spectral_mean": 2 * gap + 1,
                        "jac_frobenius_max": gap + 2,
                        "jac_frobenius_mean": 5 * gap + 1,
                        "param_norm": 1 + k + s,
                        "logit_norm": 1 + lr * k,
                        "margin": 1 + s * k,
                    }
                )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def summary():
    cfg = L.LearningRateConfig.from_preset("quick", seeds=SEEDS, lrs=LRS)
    return L.summarise(_runs(), cfg, preset="quick", method="spearman", loss_level=1.0, seed=0)


def test_within_run_correlations(summary):
    w = summary.within.set_index(["lr", "seed", "statistic"])
    assert len(w) == len(LRS) * len(SEEDS) * len(L.WITHIN_COLUMNS)
    # the Jacobian is an increasing function of the gap: raw and differences correlations are 1
    np.testing.assert_allclose(w.xs("jac_spectral_max", level="statistic")[["raw", "differences"]], 1.0)
    np.testing.assert_allclose(w.xs("sharpness", level="statistic")["raw"], -1.0)
    jd = summary.interval("jac_spectral_max", "differences")
    assert (jd.estimate, jd.low, jd.high, jd.n) == (pytest.approx(1.0), pytest.approx(1.0), pytest.approx(1.0), 6)
    assert "(degenerate interval: all resamples equal)" in summary.text["within_sentence"]
    # the sentence never judges the co-movement by a within-run null (it cannot remove a shared trend)
    assert "decided across runs, in the verdict below" in summary.text["within_sentence"]
    assert "survives" not in summary.text["within_sentence"]
    # the table lists the quantities in the order of WITHIN_COLUMNS (sharpness first) for each kind
    order = summary.within_summary.groupby("correlation", sort=False)["statistic"].apply(list)
    assert all(stats == list(L.WITHIN_COLUMNS) for stats in order), order
    assert list(summary.within_table["statistic"][: len(L.WITHIN_COLUMNS)]) == [
        tables.label(c) for c in L.WITHIN_COLUMNS
    ]


def test_end_of_training_effects(summary):
    lo = np.array([_gap(0.1, s, 5) for s in SEEDS])
    hi = np.array([_gap(0.4, s, 5) for s in SEEDS])
    assert summary.effects["gap"].estimate == pytest.approx(hi.mean() / lo.mean())
    assert summary.numbers["end_gap_lo"] == pytest.approx(lo.mean())
    assert summary.numbers["end_jacobian_hi"] == pytest.approx(3 * hi.mean() + 1)
    assert summary.acc_effect.estimate == pytest.approx((hi.mean() - lo.mean()) / 2)
    assert summary.numbers["acc_hi"] == pytest.approx(100 * 0.86)
    assert (summary.numbers["n_meas"], summary.numbers["n_runs"]) == (6, 6)
    assert summary.text["rates_sentence"].startswith("At the largest step the final sharpness is lower")
    v = L.evaluate(summary)
    assert v["learning_rate.larger_step_lower_gap"].outcome == "disagree"  # the gap is larger at the larger step
    assert v["learning_rate.larger_step_lower_sharpness"].outcome == "agree"
    # every run's gap and Jacobian share one rising trend: any pairing of runs gives rho = 1, so the
    # stratified trend null cannot tell a run's own co-movement from the trend: inconclusive
    t = v["learning_rate.gap_tracks_jacobian"]
    assert t.outcome == "inconclusive" and t.numbers["p_greater"] == pytest.approx(1.0)
    assert t.unit == "runs" and t.n_units == 6


def test_trend_test_sees_a_run_s_own_co_movement():
    # each run adds its own wiggle to the gap, which the Jacobian (3 gap + 1) follows: the identity
    # pairing alone reaches rho = 1; 3! x 3! = 36 orderings, so p = 1/36 < 0.05: agree
    runs = _runs()
    wiggle = np.sin(runs["step"] * (1.3 + runs["seed"] + 2 * runs["lr"])) * 0.05
    runs = runs.assign(gap_loss=runs.gap_loss + wiggle)
    runs = runs.assign(jac_spectral_max=3 * runs.gap_loss + 1)
    tn = L.trend_test(runs)
    assert tn.observed == pytest.approx(1.0) and tn.p_value == pytest.approx(1 / 36) and tn.exact
    assert L.trend_verdict(runs, preset="quick").outcome == "agree"


def test_equal_progress(summary):
    eq = summary.at_level.set_index(["lr", "seed"])
    # first k with 2 - 0.3 k (1 + lr) <= 1: k = 4 at lr 0.1, k = 3 at lr 0.4
    assert eq.loc[(0.1, 0), "step"] == 4 and eq.loc[(0.4, 2), "step"] == 3
    assert eq.loc[(0.4, 1), "gap_loss"] == pytest.approx(_gap(0.4, 1, 3))
    # at equal loss the larger step has the smaller gap (0.126 against 0.176), so the smaller Jacobian;
    # at the end of training it has the larger one
    assert summary.text["eq_sentence"] == "smaller at the largest step, the opposite ordering to the end of training"


def test_curves_are_ready_to_plot(summary):
    lead, others = summary.lead_curves["gap_loss"], summary.other_curves["gap_loss"]
    assert list(lead.columns) == [0.1, 0.4] and list(lead.index) == [1, 2, 3, 4, 5]
    assert lead.loc[5, 0.4] == pytest.approx(_gap(0.4, 0, 5))
    assert summary.other_lrs == [0.1, 0.1, 0.4, 0.4]
    assert others.loc[2, (0.4, 2)] == pytest.approx(_gap(0.4, 2, 2))
    assert summary.other_colors({0.1: "a", 0.4: "b"}) == ["a", "a", "b", "b"]


def test_helpers():
    assert S.loss_level_for("smoke", 0.25) == 2.0 and S.loss_level_for("quick", 0.25) == 0.25
    with pytest.raises(ValueError, match="loss_level=-1"):
        S.loss_level_for("quick", -1)
    assert L.fmt_interval(analysis.Interval(np.nan, np.nan, np.nan, 0.95, 0, 10)) == "not defined"
    assert L.fmt_interval(analysis.Interval(0.5, 0.25, 0.75, 0.95, 3, 10)) == "0.50 [0.25, 0.75]"


def test_trend_verdict_with_one_seed_says_too_few_runs():
    runs = _runs()
    v = L.trend_verdict(runs[runs.seed == 0], preset="smoke")
    assert v.outcome == "inconclusive" and "Too few runs to decide (2)" in v.evidence
