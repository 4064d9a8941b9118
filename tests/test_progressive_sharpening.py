"""The progressive_sharpening chapter's statistics (windows, trend nulls, edge table, step effect),
against hand-computed values on small synthetic runs; and its one mapping from parameters to runs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sharpjac import experiments
from sharpjac.analysis import Interval
from sharpjac.experiments import progressive_sharpening as ps


def _run(loss, lr, seed, sharpness, **cols) -> pd.DataFrame:
    n = len(sharpness)
    base = {
        "loss": loss,
        "lr": lr,
        "seed": seed,
        "step": np.arange(n),
        "sharpness": np.asarray(sharpness, float),
        "curvature_norm": np.ones(n),
        "train_acc": np.linspace(0.5, 1.0, n),
        "train_loss": np.linspace(1.0, 0.1, n),
    }
    for stat in ps.JACOBIAN_STATS:
        base[stat] = np.asarray(cols.pop("jac", sharpness), float) if stat == "jac_spectral_max" else np.arange(n) + 1.0
    base.update(cols)
    return pd.DataFrame(base)


def test_windowed_before_edge_and_before_peak():
    # lr 0.5: 2/eta = 4, 0.9 * 4 = 3.6 is first reached at the 4th measurement (3.7); rows come shuffled
    run = _run("mse", 0.5, 0, [1.0, 2.0, 3.0, 3.7, 5.0, 4.5]).sample(frac=1.0, random_state=0)
    assert list(ps.windowed(run, "before_edge", fraction=0.9)["sharpness"]) == [1.0, 2.0, 3.0]
    assert list(ps.windowed(run, "before_edge", fraction=0.5)["sharpness"]) == [1.0]  # 0.5 * 4 = 2 reached at 2.0
    assert list(ps.windowed(run, "before_peak")["step"]) == [0, 1, 2, 3, 4]  # up to and including the peak 5.0
    with pytest.raises(ValueError, match=r"window='after_edge'; accepted: \('before_edge', 'before_peak'\)"):
        ps.windowed(run, "after_edge")


def test_trend_null_runs_hand_computed():
    # lr 0.01: the edge 2/eta = 200 is never reached, the whole run is the window.
    # sharpness x = 1 2 4 7 8, jacobian y = x^2 = 1 4 16 49 64: raw rank correlation 1.
    # differences 1 2 3 1 and 3 12 33 15: ranks (1.5 3 4 1.5), (1 2 4 3): rho = 3 / sqrt(4.5 * 5) = 2 / sqrt(10).
    # detrended (least squares on t = 0..4): x - (0.6 + 1.9 t) = .4 -.5 -.4 .7 -.2, ranks 4 1 2 5 3;
    # y - (-7.4 + 17.1 t) = 8.4 -5.7 -10.8 5.1 3.0, ranks 5 2 1 4 3; sum d^2 = 4: rho = 1 - 6*4/(5*24) = 0.8.
    x = [1.0, 2.0, 4.0, 7.0, 8.0]
    runs = pd.concat(
        [
            _run("mse", 0.01, 0, x, jac=np.square(x)),
            _run("mse", 0.01, 1, [1.0, 2.0, 3.0]),  # 3 measurements: raw only
            _run("ce", 0.01, 0, [1.0, 2.0]),  # 2 measurements: nothing
        ]
    )
    t = ps.trend_null_runs(runs, "before_edge", stats=("jac_spectral_max",))
    assert list(t.columns) == ["loss", "lr", "seed", "statistic", "n", "raw", "differences", "detrended"]
    full = t[(t.loss == "mse") & (t.seed == 0)].iloc[0]
    assert full["n"] == 5 and full["raw"] == pytest.approx(1.0)
    assert full["differences"] == pytest.approx(2 / math.sqrt(10), rel=1e-12)
    assert full["detrended"] == pytest.approx(0.8, rel=1e-12)
    short = t[(t.loss == "mse") & (t.seed == 1)].iloc[0]
    assert short["raw"] == pytest.approx(1.0) and np.isnan(short["differences"]) and np.isnan(short["detrended"])
    assert np.isnan(t[t.loss == "ce"].iloc[0]["raw"])
    # Kendall's tau-b of the differences: pairs of (1 2 3 1), (3 12 33 15): 4 concordant, 1 discordant, 1 tie in x
    kt = ps.trend_null_runs(runs, "before_edge", method="kendall", stats=("jac_spectral_max",))
    tau = kt[(kt.loss == "mse") & (kt.seed == 0)].iloc[0]["differences"]
    assert tau == pytest.approx((4 - 1) / math.sqrt((6 - 1) * 6), rel=1e-12)


def test_summarise_trend_nulls_means_over_runs():
    per_run = pd.DataFrame(
        {
            "loss": ["mse"] * 3 + ["ce"] * 2,
            "statistic": ["jac_spectral_max"] * 5,
            "raw": [0.2, 0.4, 0.9, 0.5, 0.5],
            "differences": [0.1, np.nan, 0.3, -0.2, -0.2],
            "detrended": [0.0, 0.0, 0.6, np.nan, np.nan],
        }
    )
    s = ps.summarise_trend_nulls(per_run, n_boot=300, seed=0)
    assert list(s.columns) == ["correlation", "loss", "statistic", "mean", "low", "high", "runs"]
    assert len(s) == 3 * 2

    def row(loss, value):
        return s[(s.loss == loss) & (s.correlation == value)].iloc[0]

    assert row("mse", "raw")["mean"] == pytest.approx(0.5) and row("mse", "raw")["runs"] == 3
    assert 0.2 <= row("mse", "raw")["low"] < 0.5 < row("mse", "raw")["high"] <= 0.9
    assert row("mse", "differences")["mean"] == pytest.approx(0.2) and row("mse", "differences")["runs"] == 2
    assert row("mse", "detrended")["mean"] == pytest.approx(0.2)
    # two equal values: every resample gives the same mean, a degenerate interval
    ce = row("ce", "differences")
    assert ce["mean"] == ce["low"] == ce["high"] == pytest.approx(-0.2)
    assert row("ce", "detrended")["runs"] == 0 and np.isnan(row("ce", "detrended")["mean"])
    i = ps.correlation_interval(s, "ce", "differences", n_boot=300)
    assert isinstance(i, Interval) and i.n == 2 and i.n_resamples == 300
    assert ps.fmt_correlation(i) == "-0.20 (a degenerate interval: every resample gives the same value, 2 run(s))"
    assert ps.fmt_correlation(ps.correlation_interval(s, "ce", "detrended", n_boot=300)).startswith("not defined")
    assert ps.fmt_correlation(Interval(0.5, 0.25, 0.75, 0.95, 3, 300)) == "0.50 [0.25, 0.75]"


def test_edges_and_edge_table_hand_computed():
    # lr 0.5: limit 4. Ten measurements, the last fifth is the last 2 (4.2 and 3.8): median 4.0, ratio 1.0.
    s1 = [1.0, 2.0, 3.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.2, 3.8]
    c1 = [1.0] * 8 + [2.0, 1.0]  # curvature 2 at the sharpness peak, 1 at the end: log(1/2)
    # second seed ends at 2.0 (ratio 0.5, does not hover), peak 3.7 >= 3.6 = 0.9 * 4 (reached)
    s2 = [1.5, 2.0, 3.7, 3.0, 2.5, 2.0, 2.0, 2.0, 2.0, 2.0]
    runs = pd.concat([_run("mse", 0.5, 0, s1, curvature_norm=c1), _run("mse", 0.5, 1, s2)])
    e = ps.edges(runs, fraction=0.9)
    a, b = e.iloc[0], e.iloc[1]
    assert a["two_over_lr"] == 4.0 and a["final_sharpness"] == pytest.approx(4.0) and a["ratio"] == pytest.approx(1.0)
    assert bool(a["hovers"]) and bool(a["reached"]) and a["max_sharpness"] == 4.2
    assert a["dlog_curvature"] == pytest.approx(math.log(0.5)) and a["initial_sharpness"] == 1.0
    assert a["final_train_acc"] == pytest.approx(1.0)
    assert b["ratio"] == pytest.approx(0.5) and not bool(b["hovers"]) and bool(b["reached"])
    assert b["dlog_curvature"] == pytest.approx(0.0)
    t = ps.edge_table(e)
    assert t.iloc[0]["loss"] == "squared error" and t.iloc[0]["ratio"] == pytest.approx(0.75)
    assert t.iloc[0]["hovers"] == pytest.approx(0.5) and t.iloc[0]["reached"] == pytest.approx(1.0)
    o = ps.overview(runs)
    assert o.iloc[0]["seeds"] == 2 and o.iloc[0]["measurements"] == 10 and o.iloc[0]["steps"] == 9


def test_finals_level_and_step_effect():
    # final Jacobian 2 at the small step, 1 at the large one (both seeds): ratio 0.5, a change of -50 %
    runs = pd.concat(
        [
            _run("mse", lr, s, [1.0, 1.0, 1.0], jac=jac, train_loss=loss)
            for lr, s, jac, loss in [
                (0.1, 0, [1.0, 1.5, 2.0], [1.0, 0.5, 0.2]),
                (0.1, 1, [1.0, 1.5, 2.0], [1.0, 0.5, 0.2]),
                (0.2, 0, [1.0, 0.8, 1.0], [1.0, 0.4, 0.3]),
                (0.2, 1, [1.0, 0.8, 1.0], [1.0, 0.4, 0.3]),
            ]
        ]
    )
    fin, level = ps.finals(runs)
    assert level["mse"] == pytest.approx(0.3)  # the largest final loss: every run reaches it
    # the small step first falls to <= 0.3 at its last measurement (0.2): jac 2.0; the large at 0.4 -> 0.3: jac 1.0
    assert list(fin["jac_at_level"]) == pytest.approx([2.0, 2.0, 1.0, 1.0])
    assert ps.step_changes(fin, "mse") == pytest.approx({0: -0.5, 1: -0.5})
    r = ps.step_effect(fin, "mse")  # two seeds: too few for a t interval
    assert r.too_few and r.estimate == pytest.approx(-0.5) and r.n == 2
    assert ps.fmt_change(r) == "-50.0 % (too few seeds for an interval: 2)"


def test_step_effect_is_a_t_interval_over_seeds():
    # per-seed changes -10 %, -20 %, -30 %: mean -20 %, sd 10 %, t(0.975, 2) = 4.3027
    fin = pd.DataFrame(
        {
            "loss": "mse",
            "lr": [0.1] * 3 + [0.2] * 3,
            "seed": [0, 1, 2] * 2,
            "final_jac": [1.0, 2.0, 4.0, 0.9, 1.6, 2.8],
        }
    )
    r = ps.step_effect(fin, "mse")
    half = 4.302652729911275 * 0.1 / math.sqrt(3)
    assert (r.estimate, r.low, r.high) == pytest.approx((-0.2, -0.2 - half, -0.2 + half), rel=1e-9)
    assert ps.fmt_change(r) == "-20.0 % [-44.8 %, +4.8 %] (3 seeds)"
    v = ps.step_verdict(fin, preset="quick", n_seeds=3)
    assert v.outcome == "inconclusive" and v.units_text == "3 seeds" and v.fragile is not None


def test_chapter_configs_seed_block_and_fixed_seeds():
    exp = experiments.get("progressive_sharpening")
    (quick,) = exp.configs_for("quick", 3, n_seeds=2)
    assert quick.seeds == (3, 4) and quick.data_seed == 3
    assert exp.configs_for("quick", 0) == [exp.preset("quick")]  # seed 0, 5 seeds: the preset itself
    assert exp.configs_for("smoke", 2, n_seeds=7)[0].seeds == (2,)
    assert exp.configs_for("paper", 0, n_seeds=7)[0].seeds == (0, 1, 2)
    with pytest.raises(ValueError, match=r"n_seeds=0 is invalid; accepted: an int >= 1"):
        exp.configs_for("quick", 0, n_seeds=0)
    with pytest.raises(ValueError, match="preset='huge'"):
        exp.configs_for("huge", 0)


def test_check_params_one_line_errors():
    ps.check_params(fraction=0.7, method="kendall")
    with pytest.raises(ValueError, match=r"method='pearson'; accepted: \('spearman', 'kendall'\)"):
        ps.check_params(fraction=0.9, method="pearson")
    with pytest.raises(ValueError, match=r"fraction=1.5; accepted: a number in \(0, 1\]"):
        ps.check_params(fraction=1.5, method="spearman")


def test_summarise_and_evaluate_on_synthetic_runs():
    # every run hovers (its sharpness rises to 2/eta and stays) and its Jacobian is sharpness^2
    frames = []
    for loss, lrs in (("mse", (0.4, 0.5)), ("ce", (0.4, 0.5))):
        for lr in lrs:
            for s in (0, 1):
                limit = 2 / lr
                sharp = [0.2 * limit, 0.4 * limit, 0.6 * limit, 0.8 * limit, 0.85 * limit, limit, limit, limit]
                f = _run(loss, lr, s, sharp, jac=np.square(sharp) * (1 + 0.01 * s))
                f["time"] = f["step"] * lr
                f["two_over_lr"] = limit
                frames.append(f)
    runs = pd.concat(frames, ignore_index=True)
    config = experiments.get("progressive_sharpening").configs_for("smoke", 0)[0]
    summary = ps.summarise(runs, config, preset="smoke", seed=0)
    assert summary.losses == ["mse", "ce"] and summary.n_boot == 200 and summary.n_seeds == 1
    assert summary.numbers["mse_hovers"] == 4 and summary.numbers["mse_runs"] == 4
    assert summary.numbers["mse_ratio_min"] == pytest.approx(1.0)
    assert summary.markdown["ce_stay_sentence"] == "and most of them stay there"
    assert "does not fall" in summary.markdown["ce_curvature_sentence"]  # curvature is constant
    # final Jacobian (2/eta)^2: at eta 0.5 it is (4/5)^2 of that at eta 0.4, a change of -36 %
    assert summary.effects["mse"].estimate == pytest.approx(-0.36, rel=1e-3)
    assert summary.markdown["mse_direction"] == "too few seeds to say in which direction"  # two seeds
    verdicts = ps.evaluate(summary)
    assert set(verdicts) == {
        "progressive_sharpening.edge_of_stability",
        "progressive_sharpening.edge_of_stability_ce",
        "progressive_sharpening.jacobian_rises_with_sharpness",
        "progressive_sharpening.larger_step_smaller_jacobian",
    }
    # 4 of 4 runs hover, but 4 runs are too few to decide; 2 seeds are too few for a t interval
    edge = verdicts["progressive_sharpening.edge_of_stability"]
    assert edge.outcome == "inconclusive" and edge.units_text == "4 runs" and edge.fragile is False
    step = verdicts["progressive_sharpening.larger_step_smaller_jacobian"]
    assert step.outcome == "inconclusive" and "Too few seeds to decide (2)" in step.evidence
    trend = verdicts["progressive_sharpening.jacobian_rises_with_sharpness"]
    assert trend.unit == "runs" and trend.fragile is not None


def test_edge_verdict_counts_runs_and_leaves_out_seeds():
    # 3 step sizes x 2 seeds: seed 0 hovers at every step size, seed 1 at one of three: 4 of 6 runs
    e = pd.DataFrame({"loss": "mse", "lr": [0.1, 0.2, 0.3] * 2, "seed": [0] * 3 + [1] * 3, "ratio": 1.0})
    e["reached"] = True
    e["hovers"] = [True, True, True, True, False, False]
    v = ps.edge_verdict(e, "mse", preset="quick", n_seeds=2, fraction=0.9)
    assert v.outcome == "disagree" and v.numbers["k"] == 4 and v.numbers["n"] == 6  # 67 % < 80 %
    # leaving out either seed leaves 3 runs, too few to decide: both flip the outcome
    assert v.fragile is True and v.flips == ("0", "1")
    # 3 seeds: 7 of 9 runs hover (78 % < 80 %); without seed 2 all 6 do: seed 2 alone flips it
    e3 = pd.concat([e, e[e.seed == 0].assign(seed=2)], ignore_index=True)
    e3["hovers"] = [True] * 3 + [True] * 3 + [True, False, False]
    v3 = ps.edge_verdict(e3, "mse", preset="quick", n_seeds=3, fraction=0.9)
    assert v3.outcome == "disagree" and v3.flips == ("2",) and v3.units_text == "9 runs"


@pytest.mark.parametrize("claim_id", sorted(ps.EDGE_CLAIMS.values()) + [ps.TREND_CLAIM, ps.STEP_CLAIM])
def test_known_answers_at_the_quick_design(claim_id):
    """Each claim's rule on simulated records where the answer is known (60 data sets a case here;
    the book's rules page and tests/test_known_answers.py use 400)."""
    from sharpjac.claims.known_answers import known_answers, operating

    oc = operating(known_answers()[claim_id], n_trials=60, seed=3)
    assert oc.false_agree <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / 60), oc
    assert oc.power >= 0.5, oc


def _trend_runs(rng, coupled: bool, lrs=(0.01, 0.02), seeds=range(5), n=20):
    """Runs far from the edge (2/eta >= 100) whose sharpness follows their step size's trend; the
    Jacobian follows the same trend (claim false) or the run's own sharpness (claim true)."""
    t = np.linspace(0, 1, n)
    frames = []
    for lr in lrs:
        trend = 1 + 10 * lr * (1 - np.exp(-4 * t))
        for s in seeds:
            sharp = trend * (1 + 0.05 * rng.normal(size=n))
            jac = 2 * sharp + 0.01 * rng.normal(size=n) if coupled else 2 * trend * (1 + 0.05 * rng.normal(size=n))
            frames.append(_run("mse", lr, s, sharp, jac=jac))
    return pd.concat(frames, ignore_index=True)


def test_cross_run_null_tells_a_shared_trend_from_a_link():
    rng = np.random.default_rng(0)
    linked = ps.cross_run_null(_trend_runs(rng, coupled=True), "mse")
    assert linked.n_runs == 10 and linked.p_value <= 0.01 and linked.observed > linked.null_mean
    assert "more than the trend the runs share" in ps.trend_null_words(linked)
    trend_only = [ps.cross_run_null(_trend_runs(rng, coupled=False), "mse", seed=i).p_value for i in range(20)]
    assert np.mean(np.array(trend_only) <= 0.05) <= 0.25  # nominal 5 %; 20 draws, loose bound
    # windows shorter than 3 measurements, and step sizes with fewer than 2 runs, are left out
    short = ps.cross_run_null(_trend_runs(rng, coupled=True, n=2), "mse")
    assert short.n_runs == 0 and "no step size has 2 runs" in ps.trend_null_words(short)
    few = ps.cross_run_null(_trend_runs(rng, coupled=True, lrs=(0.01,), seeds=range(3)), "mse")
    assert few.min_p == pytest.approx(1 / 6) and "too few runs to decide" in ps.trend_null_words(few)
