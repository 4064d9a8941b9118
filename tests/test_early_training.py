"""The early_training chapter's statistics against hand-computed values on small synthetic runs,
and its one mapping from parameters to runs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sharpjac import experiments
from sharpjac.experiments import early_training as et


def _run(ls, seed, sharpness, jac, curvature=None) -> pd.DataFrame:
    n = len(sharpness)
    frame = {
        "label_smoothing": ls,
        "seed": seed,
        "step": np.arange(n) * 10,
        "epoch": np.arange(n) // 2,
        "sharpness": np.asarray(sharpness, float),
        "curvature_norm": np.ones(n) if curvature is None else np.asarray(curvature, float),
    }
    for i, stat in enumerate(("jac_spectral_max", "jac_spectral_mean", "jac_frobenius_max", "jac_frobenius_mean")):
        frame[stat] = np.asarray(jac, float) * (i + 1)
    return pd.DataFrame(frame)


def test_difference_correlations_hand_computed():
    # differences of x = 1 2 4 7 8 are 1 2 3 1, of y = x^2 are 3 12 33 15: Spearman 2 / sqrt(10) (see
    # test_progressive_sharpening); every statistic is a multiple of y, so all four are equal
    x = [1.0, 2.0, 4.0, 7.0, 8.0]
    runs = _run(0.1, 3, x, np.square(x)).sample(frac=1.0, random_state=1)  # shuffled rows: sorted by step
    d = et.difference_correlations(runs)
    assert list(d.columns) == ["label_smoothing", "seed", "statistic", "rho"] and len(d) == 4
    assert d["rho"].to_numpy() == pytest.approx([2 / math.sqrt(10)] * 4, rel=1e-12)


def test_fmt_interval_and_row_text():
    assert et.fmt_interval(0.5, 0.25, 0.75, 3) == "0.50 [0.25, 0.75]"
    assert et.fmt_interval(0.5, 0.5, 0.5, 1) == "0.50 (a degenerate interval: all resamples equal, 1 run(s))"
    assert et.fmt_interval(float("nan"), float("nan"), float("nan"), 0) == "not defined"
    tab = pd.DataFrame(
        {"label_smoothing": [0.0, 0.1], "statistic": ["jac_spectral_max"] * 2, "mean": [0.1, 0.9], "low": [0.0, 0.8]}
        | {"high": [0.2, 1.0], "runs": [2, 2]}
    )
    assert et.row_text(tab, 0.1) == "0.90 [0.80, 1.00]"


def test_after_peak_changes_and_late_sentence():
    # smoothing 0: sharpness peaks at 4 then ends at 2 (log 1/2), Jacobian 1 at the peak ends at e (log e = 1)
    runs = pd.concat(
        [_run(0.0, 0, [1.0, 4.0, 3.0, 2.0], [0.5, 1.0, 2.0, math.e]), _run(0.0, 1, [1.0, 4.0, 2.0], [0.5, 1.0, math.e])]
    )
    assert et.after_peak_changes(runs, 0.0) == pytest.approx([math.log(0.5), 1.0])
    raw = pd.DataFrame({"label_smoothing": [0.0, 0.1], "statistic": ["jac_spectral_max"] * 2, "high": [-0.1, 0.3]})
    text = et.late_sentence(runs, raw, [0.0, 0.1])
    assert text.startswith("With smoothing 0 the correlation over the whole early phase is negative: after the peak")
    assert "sharpness -0.69, Jacobian +1.00" in text
    raw["high"] = [0.1, 0.3]
    assert et.late_sentence(runs, raw, [0.0, 0.1]).startswith("No smoothing value")


def _last(curvature, ratio) -> pd.DataFrame:
    """One row per run at its end: seeds x 3 smoothing values, ``curvature[seed][k]``, ``ratio[seed][k]``."""
    rows = [
        {"label_smoothing": ls, "seed": s, "curvature_norm": c, "ratio": r}
        for s, (cs, rs) in enumerate(zip(curvature, ratio))
        for ls, c, r in zip((0.0, 0.1, 0.2), cs, rs)
    ]
    return pd.DataFrame(rows)


def test_scale_values_are_per_seed_correlations_with_a_t_interval():
    # seed 0: same order (rho 1); seed 1: one swap (rho 0.5); seed 2: same order (rho 1)
    last = _last([[1, 2, 3], [1, 2, 3], [1, 2, 3]], [[1, 2, 3], [2, 1, 3], [0.1, 0.2, 0.3]])
    assert et.scale_values(last) == pytest.approx({0: 1.0, 1: 0.5, 2: 1.0})
    iv = et.scale_effect(last)
    half = 4.302652729911275 * math.sqrt(1 / 12) / math.sqrt(3)  # sd of (1, .5, 1) is sqrt(1/12)
    assert (iv.estimate, iv.low, iv.high) == pytest.approx((5 / 6, 5 / 6 - half, 5 / 6 + half), rel=1e-9)
    assert iv.low > 0 and et.scale_sentence(iv).startswith("where the output curvature is larger")
    v = et.scale_verdict(last, preset="quick", n_seeds=3)
    assert v.outcome == "agree" and v.units_text == "3 seeds" and "t interval, 3 seeds" in v.evidence
    assert v.fragile is True  # two seeds left: no interval, so every seed carries the outcome
    assert et.scale_sentence(et.scale_effect(_last([[1, 2, 3]] * 3, [[1, 2, 3], [3, 2, 1], [1, 3, 2]]))).startswith(
        "the interval contains zero"
    )


def test_scale_sentence_reads_the_interval():
    up = et.scale_effect(_last([[1, 2, 3]] * 4, [[1, 2, 3], [1, 2, 3], [1, 3, 4], [2, 3, 5]]))
    assert up.low == pytest.approx(1.0) and et.scale_sentence(up).startswith("where the output curvature is larger")
    down = et.scale_effect(_last([[1, 2, 3]] * 4, [[3, 2, 1]] * 4))
    assert "*less*" in et.scale_sentence(down)
    few = et.scale_effect(_last([[1, 2, 3]] * 2, [[1, 2, 3]] * 2))
    assert few.too_few and et.scale_sentence(few).startswith("too few seeds (2)")


@pytest.mark.parametrize("claim_id", [et.TRACKS_CLAIM, et.SCALE_CLAIM])
def test_known_answers_at_the_quick_design(claim_id):
    """Each claim's rule on simulated records where the answer is known (60 data sets a case here;
    the book's rules page and tests/test_known_answers.py use 400)."""
    from sharpjac.claims.known_answers import known_answers, operating

    oc = operating(known_answers()[claim_id], n_trials=60, seed=4)
    assert oc.false_agree <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / 60), oc
    assert oc.power >= 0.5, oc


def test_trend_null_tells_a_shared_trend_from_a_link():
    rng = np.random.default_rng(1)
    sim = et.shared.simulate_trend_runs
    linked = et.trend_null_of(sim(rng, "label_smoothing", (0.0, 0.1, 0.2), coupled=True))  # 30 log-spaced steps
    assert linked.n_runs == 15 and linked.p_value <= 0.01
    v = et.tracks_verdict(linked, None, preset="quick", n_seeds=5)
    assert v.outcome == "agree" and v.units_text == "15 runs" and "smoothing value" in v.evidence


def test_chapter_configs_and_method_check():
    exp = experiments.get("early_training")
    (quick,) = exp.configs_for("quick", 2, n_seeds=3)
    assert quick.seeds == (2, 3, 4) and quick.data_seed == 2 and quick.measure_every == 5
    assert exp.configs_for("smoke", 0, n_seeds=9)[0] == exp.preset("smoke")
    assert exp.configs_for("paper", 1)[0].seeds == (1, 2, 3)
    with pytest.raises(ValueError, match=r"n_seeds=-1 is invalid; accepted: an int >= 1"):
        exp.configs_for("quick", 0, n_seeds=-1)
    with pytest.raises(ValueError, match=r"method='pearson'; accepted: \('spearman', 'kendall'\)"):
        et.check_method("pearson")


def test_summarise_and_evaluate_on_synthetic_runs():
    # two smoothing values x two seeds; the Jacobian is sharpness^2 (+ a seed offset), so every raw
    # correlation is 1; the curvature is larger with smoothing and so is sharpness / Jacobian
    frames = []
    for ls, c in ((0.0, 0.5), (0.1, 2.0)):
        for s in (0, 1):
            sharp = np.array([1.0, 2.0, 4.0, 7.0, 8.0]) * (1 + s)
            frames.append(_run(ls, s, sharp, np.square(sharp) / (1 + 10 * ls), curvature=np.full(5, c)))
    runs = pd.concat(frames, ignore_index=True)
    config = experiments.get("early_training").configs_for("smoke", 0)[0]
    summary = et.summarise(runs, config, preset="smoke", seed=0)
    assert summary.smoothings == [0.0, 0.1] and summary.n_boot == 200
    assert summary.numbers["n_runs"] == 4 and summary.numbers["n_meas"] == 5 and summary.numbers["n_steps"] == 40
    r = summary.raw[summary.raw.statistic == "jac_spectral_max"]
    assert r["mean"].to_numpy() == pytest.approx([1.0, 1.0])
    assert summary.numbers["c_ratio_change"] == pytest.approx(4.0)
    assert summary.pooled.estimate == pytest.approx(2 / math.sqrt(10))
    assert "(the steps co-move too)" in summary.markdown["corr_sentence"]
    v = et.evaluate(summary)
    assert set(v) == {"early_training.jacobian_tracks_sharpness", "early_training.curvature_explains_scale"}
    # two runs per smoothing value: 2! x 2! = 4 orderings, p >= 1/4: too few runs to decide
    assert v["early_training.jacobian_tracks_sharpness"].outcome == "inconclusive"
    assert "too few runs to decide" in v["early_training.jacobian_tracks_sharpness"].evidence
    assert v["early_training.curvature_explains_scale"].outcome == "inconclusive"  # 2 seeds


def test_epoch_means_average_over_seeds():
    # two measurements per epoch (steps 0, 10 in epoch 0): the mean over both seeds and both steps
    runs = et.prepared(pd.concat([_run(0.0, 0, [1.0, 3.0], [1.0, 1.0]), _run(0.0, 1, [3.0, 5.0], [2.0, 2.0])]))
    m = et.epoch_means(runs)
    assert list(m.columns) == ["label_smoothing", "epoch", "sharpness", "jac_spectral_max", "curvature_norm", "ratio"]
    assert len(m) == 1 and m.loc[0, "sharpness"] == 3.0 and m.loc[0, "jac_spectral_max"] == 1.5
    assert m.loc[0, "ratio"] == pytest.approx((1.0 + 3.0 + 1.5 + 2.5) / 4)
