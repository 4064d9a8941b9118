"""The whole_run chapter's statistics against hand-computed values on small synthetic runs, and its
one mapping from parameters to runs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sharpjac import experiments
from sharpjac.experiments import whole_run as wr


def _run(ls, seed, sharpness, jac, **cols) -> pd.DataFrame:
    n = len(sharpness)
    frame = {
        "label_smoothing": ls,
        "seed": seed,
        "step": np.arange(n) * 10,
        "sharpness": np.asarray(sharpness, float),
        "jac_spectral_max": np.asarray(jac, float),
        "curvature_norm": np.ones(n),
        "feature_norm": np.ones(n),
        "first_layer_norm": np.ones(n),
        "train_acc": np.ones(n),
    }
    frame.update({k: np.asarray(v, float) for k, v in cols.items()})
    return pd.DataFrame(frame)


def test_phase_correlations_hand_computed():
    # sharpness 1 3 5 4 2 peaks at the third measurement; the Jacobian 1..5 rises throughout.
    # before the peak (1 3 5 vs 1 2 3): raw 1, too short for differences; after it (5 4 2 vs 3 4 5): -1;
    # all: rank differences 0 1 2 0 -3, sum of squares 14: rho = 1 - 6 * 14 / (5 * 24) = 0.3;
    # the Jacobian's differences are constant: no correlation
    runs = _run(0.0, 0, [1, 3, 5, 4, 2], [1, 2, 3, 4, 5]).sample(frac=1.0, random_state=2)
    t = wr.phase_correlations(runs).set_index("phase")
    assert list(t.index) == list(wr.PHASES) and list(t["n"]) == [3, 3, 5]
    assert t.loc["before_peak", "raw"] == pytest.approx(1.0) and np.isnan(t.loc["before_peak", "differences"])
    assert t.loc["after_peak", "raw"] == pytest.approx(-1.0)
    assert t.loc["all", "raw"] == pytest.approx(0.3) and np.isnan(t.loc["all", "differences"])


def test_summarise_phases_and_texts():
    per_run = pd.DataFrame(
        {
            "label_smoothing": [0.0] * 6,
            "seed": [0, 1, 0, 1, 0, 1],
            "phase": ["before_peak", "before_peak", "after_peak", "after_peak", "all", "all"],
            "n": [3, 5, 4, 4, 7, 9],
            "raw": [0.8, 0.8, -0.2, -0.6, 0.3, 0.3],
            "differences": [np.nan, 0.5, 0.1, 0.1, 0.2, 0.4],
        }
    )
    s = wr.summarise_phases(per_run, n_boot=100, seed=0)
    assert wr.phase_text(s, "before_peak", 0.0) == "0.80 (a degenerate interval: all resamples equal, 2 runs)"
    assert wr.phase_text(s, "after_peak", 0.0).startswith("-0.40 [")
    assert wr.phase_text(s, "before_peak", 0.0, "differences").startswith("0.50 (a degenerate")
    table = wr.phase_table(s, per_run, [0.0])
    assert list(table["phase"]) == ["before peak", "after peak", "all"]
    assert list(table["median measurements"]) == [4.0, 4.0, 8.0]
    assert table["first differences"].iloc[2].startswith("0.30 [")
    assert wr.fmt_interval(float("nan"), 0.0, 0.0, 0) == "not defined"


def test_mediator_table_hand_computed():
    # from the peak (step 10: sharpness 4) to the end sharpness halves while the Jacobian stays: the
    # decoupling is log(1/2); the output curvature halves too (contribution +log(1/2), same sign, full
    # size): it is the dominant factor and accounts for the decoupling
    runs = _run(0.1, 0, [1.0, 4.0, 3.0, 2.0], [1.0, 1.0, 1.0, 1.0], curvature_norm=[2.0, 1.0, 0.8, 0.5])
    # second run: sharpness halves but no factor moves: nothing accounts for it
    runs = pd.concat([runs, _run(0.1, 1, [1.0, 4.0, 2.0], [1.0, 1.0, 1.0])])
    m = wr.mediator_table(runs)
    a, b = m.iloc[0], m.iloc[1]
    assert a["peak_step"] == 10 and a["decoupling"] == pytest.approx(math.log(0.5))
    assert a["dominant"] == "curvature_norm" and bool(a["accounts"])
    assert a["dlog_curvature_norm"] == pytest.approx(math.log(0.5)) and a["dlog_feature_norm"] == 0.0
    assert pd.isna(b["dominant"]) and not bool(b["accounts"])
    f = wr.after_peak_factors(runs)  # first seed only, from the peak on, relative to the peak
    assert list(f["step"]) == [10, 20, 30] and list(f["sharpness"]) == pytest.approx([1.0, 0.75, 0.5])


def test_window_accuracy_and_params():
    assert wr.effective_window(7, 20) == 7 and wr.effective_window(7, 6) == 4 and wr.effective_window(7, 4) == 3
    runs = pd.concat(
        [_run(0.0, 0, [1, 2, 3], [1, 2, 3]), _run(0.0, 1, [1, 2, 3], [1, 2, 3], train_acc=[0.5, 0.9, 0.9])]
    )
    assert wr.accuracy_sentence(runs) == "1 of 2 runs reach 100 % training accuracy within 20 steps."
    assert wr.accuracy_sentence(runs[runs.seed == 0]).startswith("Every run reaches 100 % training accuracy, at the")
    with pytest.raises(ValueError, match=r"window=2; accepted: an int >= 3"):
        wr.check_params(window=2, method="spearman")
    with pytest.raises(ValueError, match=r"method='x'; accepted"):
        wr.check_params(window=7, method="x")
    exp = experiments.get("whole_run")
    (c,) = exp.configs_for("quick", 5, n_seeds=2)
    assert c.seeds == (5, 6) and c.data_seed == 5
    assert exp.configs_for("paper", 0, n_seeds=8)[0].seeds == (0, 1, 2)


def test_summarise_and_evaluate_on_synthetic_runs():
    frames = []
    for ls in (0.0, 0.1):
        for s in (0, 1, 2):
            sharp = [1.0, 2.0, 3.0, 5.0, 4.0, 3.0, 2.0 + 0.1 * s]
            jac = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
            frames.append(_run(ls, s, sharp, jac, curvature_norm=[1, 1, 1, 1, 0.8, 0.6, 0.4]))
    runs = pd.concat(frames, ignore_index=True)
    config = experiments.get("whole_run").configs_for("smoke", 0)[0]
    summary = wr.summarise(runs, config, preset="smoke", seed=0, window=9)
    assert summary.window == 5 and summary.numbers["n_meas"] == 7 and summary.numbers["n_runs"] == 6
    # before the peak both rise (raw 1), after it they move apart (raw -1): the change is -2 in every run
    assert summary.weak.estimate == pytest.approx(-2.0) and summary.weak.high == pytest.approx(-2.0)
    assert summary.markdown["weak_sentence"].startswith("the link is weaker after the peak, and in most runs")
    v = wr.evaluate(summary)
    weak = v["whole_run.link_weakens_late"]
    assert weak.outcome == "agree" and weak.units_text == "3 seeds" and weak.fragile is True  # 2 seeds: too few
    med = v["whole_run.mediators_account"]
    assert med.numbers["k"] == 6 and med.units_text == "6 runs" and med.outcome == "agree"
    # the sentence counts the same table the chapter shows: curvature accounts in all 3 runs of each value
    assert (
        "**the output curvature** accounts for at least half of it in 3 of 3 runs"
        in summary.markdown["mediator_sentence"]
    )


def test_mediator_counts_and_sentence_read_the_accounts_column():
    # the item-8 case: the first-layer weights are the dominant factor in 4 of 5 runs but account for
    # at least half the decoupling in only 1 of them; the sentence must say 1, not 4
    m = pd.DataFrame(
        {
            "label_smoothing": 0.0,
            "seed": range(5),
            "dominant": ["first_layer_norm"] * 4 + ["curvature_norm"],
            "accounts": [True, False, False, False, True],
            "decoupling": -1.0,
            "dlog_sharpness": -0.5,
            "dlog_jac_spectral_max": 0.5,
            "dlog_curvature_norm": -0.1,
            "dlog_feature_norm": 0.0,
            "dlog_first_layer_norm": 0.3,
        }
    )
    c = wr.mediator_counts(m).iloc[0]
    assert (c["runs"], c["accounts"], c["top_runs"]) == (5, 2, 1)
    text = wr._mediator_sentence(m, [0.0])
    assert "in 1 of 5 runs (another factor does in 1 more)" in text and "4 of 5" not in text
    v = wr.mediator_verdict(m, preset="quick", n_seeds=5)
    assert v.outcome == "disagree" and v.numbers["k"] == 2 and v.numbers["n"] == 5 and v.fragile is True
    assert v.flips == ("0", "1", "2", "3", "4")  # 4 runs left are too few to decide


def test_weak_values_average_smoothings_per_seed():
    per_run = pd.DataFrame(
        {
            "label_smoothing": [0.0, 0.0, 0.1, 0.1] * 2,
            "seed": [0, 0, 0, 0, 1, 1, 1, 1],
            "phase": ["before_peak", "after_peak"] * 4,
            "raw": [1.0, 0.0, 0.8, 0.4, 1.0, -1.0, 0.5, np.nan],
        }
    )
    # seed 0: (0 - 1 + 0.4 - 0.8) / 2 = -0.7; seed 1: only smoothing 0 is defined, -2
    assert wr.weak_values(per_run) == pytest.approx({0: -0.7, 1: -2.0})


@pytest.mark.parametrize("claim_id", [wr.WEAK_CLAIM, wr.MEDIATOR_CLAIM])
def test_known_answers_at_the_quick_design(claim_id):
    """Each claim's rule on simulated records where the answer is known (60 data sets a case here;
    the book's rules page and tests/test_known_answers.py use 400)."""
    from sharpjac.claims.known_answers import known_answers, operating

    oc = operating(known_answers()[claim_id], n_trials=60, seed=5)
    assert oc.false_agree <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / 60), oc
    assert oc.power >= 0.5, oc
