"""Tests of sharpjac.analysis against scipy.stats, hand cases and a coverage simulation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from sharpjac import analysis as A

# ------------------------------------------------------------------------------------------------
# ranks and rank correlations
# ------------------------------------------------------------------------------------------------


def test_rankdata_matches_scipy_with_ties():
    a = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0, 5.0])
    np.testing.assert_allclose(A.rankdata(a), scipy.stats.rankdata(a))


def test_spearman_hand_cases():
    x = [1, 2, 3, 4, 5]
    assert A.spearman(x, [10, 20, 30, 40, 50]) == pytest.approx(1.0)
    assert A.spearman(x, [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    # monotone but non-linear: still exactly 1
    assert A.spearman(x, np.exp(x)) == pytest.approx(1.0)
    # one swapped adjacent pair among 4: rho = 1 - 6*2/(4*15) = 0.8
    assert A.spearman([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(0.8)


def test_kendall_hand_cases():
    # one discordant pair of 6: tau = (5 - 1) / 6
    assert A.kendall([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(4 / 6)
    assert A.kendall([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # ties: x=[1,1,2], y=[1,2,3]: pairs (1,2) tied in x, (1,3),(2,3) concordant
    # tau_b = 2 / sqrt((3-1)*(3-0))
    assert A.kendall([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")
@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=3, max_value=40), st.integers(min_value=0, max_value=10_000), st.booleans())
def test_correlations_match_scipy(n, seed, ties):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = 0.5 * x + rng.normal(size=n)
    if ties:  # coarse rounding produces ties in both variables
        x, y = np.round(x), np.round(y)
    ref_s = scipy.stats.spearmanr(x, y).statistic
    ref_k = scipy.stats.kendalltau(x, y).statistic
    got_s, got_k = A.spearman(x, y), A.kendall(x, y)
    if np.isnan(ref_s):
        assert np.isnan(got_s)
    else:
        assert got_s == pytest.approx(ref_s, abs=1e-12)
    if np.isnan(ref_k):
        assert np.isnan(got_k)
    else:
        assert got_k == pytest.approx(ref_k, abs=1e-12)


def test_nonfinite_pairs_dropped_and_degenerate_cases_nan():
    x = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0])
    y = np.array([2.0, 1.0, 3.0, np.inf, 6.0, 5.0])
    keep = [0, 1, 4, 5]
    assert A.spearman(x, y) == pytest.approx(scipy.stats.spearmanr(x[keep], y[keep]).statistic)
    assert A.kendall(x, y) == pytest.approx(scipy.stats.kendalltau(x[keep], y[keep]).statistic)
    assert np.isnan(A.spearman([1, 2], [1, 2]))
    assert np.isnan(A.kendall([1, 1, 1, 1], [1, 2, 3, 4]))
    assert np.isnan(A.spearman([1, 2, 3], [5, 5, 5]))


def test_bad_inputs_raise_naming_the_parameter():
    with pytest.raises(ValueError, match="same length"):
        A.spearman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="method='pearson'"):
        A.rank_correlation([1, 2, 3], [1, 2, 3], "pearson")
    with pytest.raises(ValueError, match="one-dimensional"):
        A.kendall(np.ones((2, 2)), np.ones((2, 2)))


# ------------------------------------------------------------------------------------------------
# bootstrap
# ------------------------------------------------------------------------------------------------


def test_bootstrap_is_seeded_and_contains_estimate():
    v = np.random.default_rng(7).normal(size=12)
    a = A.bootstrap_ci(v, n_resamples=300, seed=3)
    b = A.bootstrap_ci(v, n_resamples=300, seed=3)
    assert a == b
    assert a.estimate == pytest.approx(v.mean())
    assert v.min() <= a.low <= a.estimate <= a.high <= v.max()
    assert A.bootstrap_ci(v, n_resamples=300, seed=4) != a
    assert f"{a:.2f}".startswith(f"{v.mean():.2f} [")


def test_bootstrap_median_and_callable_agree():
    v = np.random.default_rng(0).normal(size=15)
    named = A.bootstrap_ci(v, "median", n_resamples=500, seed=1)
    func = A.bootstrap_ci(v, np.median, n_resamples=500, seed=1)
    assert named.low == pytest.approx(func.low) and named.high == pytest.approx(func.high)


def test_bootstrap_percentiles_by_brute_force():
    # two values: the replicate means are k/m mixtures; with m=2 the means are a, (a+b)/2, b
    # with probabilities 1/4, 1/2, 1/4, so the 10%..90% interval is [(a+b)/2, (a+b)/2]
    ci = A.bootstrap_ci([0.0, 1.0], level=0.5, n_resamples=20000, seed=0)
    assert ci.low == pytest.approx(0.5) and ci.high == pytest.approx(0.5)
    ci = A.bootstrap_ci([0.0, 1.0], level=0.9, n_resamples=20000, seed=0)
    assert ci.low == pytest.approx(0.0) and ci.high == pytest.approx(1.0)


def test_bootstrap_degenerate_and_bad_inputs():
    one = A.bootstrap_ci([0.3], seed=0)
    assert one.low == one.high == one.estimate == pytest.approx(0.3) and one.n == 1
    empty = A.bootstrap_ci([np.nan], seed=0)
    assert np.isnan(empty.estimate) and empty.n == 0
    with pytest.raises(ValueError, match="level=1.5"):
        A.bootstrap_ci([1.0, 2.0], level=1.5, seed=0)
    with pytest.raises(ValueError, match="n_resamples=0"):
        A.bootstrap_ci([1.0, 2.0], n_resamples=0, seed=0)
    with pytest.raises(ValueError, match="statistic='mode'"):
        A.bootstrap_ci([1.0, 2.0], "mode", seed=0)


def test_bootstrap_interval_coverage_on_a_synthetic_case():
    """The nominal 90 % interval of a normal mean (n=40) covers the truth about 90 % of the time."""
    rng = np.random.default_rng(123)
    reps, hits = 300, 0
    for r in range(reps):
        v = rng.normal(loc=2.0, scale=1.5, size=40)
        ci = A.bootstrap_ci(v, level=0.9, n_resamples=500, seed=r)
        hits += ci.low <= 2.0 <= ci.high
    coverage = hits / reps
    # binomial sd at p=0.9, n=300 is 0.017; the percentile bootstrap undercovers slightly at n=40
    assert 0.82 <= coverage <= 0.96


# ------------------------------------------------------------------------------------------------
# edge of stability
# ------------------------------------------------------------------------------------------------


def test_edge_index_and_before_edge():
    s = np.array([1.0, 5.0, 8.9, np.nan, 9.1, 10.2, 9.8])
    # 2/lr = 10, threshold 0.9 * 10 = 9
    assert A.edge_index(s, 0.2) == 4
    assert A.edge_index(s, 0.2, fraction=1.0) == 5
    assert A.edge_index(s, 0.1) is None  # 2/lr = 20
    df = pd.DataFrame({"step": np.arange(7) * 10, "sharpness": s, "lr": 0.2})
    head = A.before_edge(df)
    assert list(head["step"]) == [0, 10, 20, 30]
    assert len(A.before_edge(df, lr=0.1)) == 7
    with pytest.raises(ValueError, match="lr=-1"):
        A.edge_index(s, -1)
    with pytest.raises(ValueError, match="column='sharp'"):
        A.before_edge(df, column="sharp")


def test_edge_summary_hand_case():
    steps = np.arange(10) * 100
    s = np.array([1, 2, 4, 6, 8, 9.5, 10.5, 9.9, 10.1, 9.7])
    e = A.edge_summary(steps, s, lr=0.2, tail=0.2)
    assert e.two_over_lr == pytest.approx(10.0)
    assert e.final_sharpness == pytest.approx(np.median([10.1, 9.7]))
    assert e.ratio == pytest.approx(e.final_sharpness / 10.0)
    assert e.edge_step == 500 and e.reached
    assert e.max_sharpness == pytest.approx(10.5)
    assert e.fraction_at_edge == pytest.approx(1.0)
    low = A.edge_summary(steps, s / 4, lr=0.2)
    assert not low.reached and low.edge_step is None and np.isnan(low.fraction_at_edge)


def test_rolling_correlation_against_direct_windows():
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=30))
    y = np.r_[x[:15], -x[15:]] + 0.1 * rng.normal(size=30)
    w = 7
    r = A.rolling_correlation(x, y, w)
    assert np.isnan(r[:3]).all() and np.isnan(r[-3:]).all()
    for t in range(3, 27):
        assert r[t] == pytest.approx(scipy.stats.spearmanr(x[t - 3 : t + 4], y[t - 3 : t + 4]).statistic)
    rk = A.rolling_correlation(x, y, 6, "kendall")
    assert rk[3] == pytest.approx(scipy.stats.kendalltau(x[0:6], y[0:6]).statistic)
    # the sign flip in the middle of the run shows
    assert r[8] > 0.5 and r[22] < -0.5
    with pytest.raises(ValueError, match="window=2"):
        A.rolling_correlation(x, y, 2)


# ------------------------------------------------------------------------------------------------
# tables
# ------------------------------------------------------------------------------------------------


def _fake_runs():
    rows = []
    for seed in range(3):
        for lr in (0.1, 0.2):
            for t in range(12):
                s = 1.0 + t * (1 + seed)  # rises without bound
                rows.append(
                    {
                        "seed": seed,
                        "lr": lr,
                        "step": t * 10,
                        "sharpness": s,
                        "jac_spectral_max": s**2 + 0.01 * seed,
                        "jac_frobenius_mean": -s,
                    }
                )
    return pd.DataFrame(rows)


def test_run_correlations_and_summary():
    df = _fake_runs()
    tab = A.run_correlations(df, ys=("jac_spectral_max", "jac_frobenius_mean"), by=("lr", "seed"))
    assert len(tab) == 2 * 3 * 2
    assert np.allclose(tab.loc[tab.statistic == "jac_spectral_max", "rho"], 1.0)
    assert np.allclose(tab.loc[tab.statistic == "jac_frobenius_mean", "rho"], -1.0)
    # before the edge: with lr=0.2 (edge 9 at fraction 0.9) seed 0 has s = 1..8 before, 8 points
    tab2 = A.run_correlations(df, ys=("jac_spectral_max",), by=("lr", "seed"), window="before_edge", method="kendall")
    row = tab2[(tab2.lr == 0.2) & (tab2.seed == 0)].iloc[0]
    assert row.n == 8 and row.last_step == 70
    # peak windows: y rises then falls while x rises then falls at another time
    bump = pd.DataFrame(
        {
            "seed": 0,
            "step": np.arange(9),
            "sharpness": [1, 2, 3, 4, 5, 4, 3, 2, 1.0],
            "jac_spectral_max": [1, 2, 3, 4, 5, 6, 7, 8, 9.0],
        }
    )
    early = A.run_correlations(bump, ys=("jac_spectral_max",), window="before_peak").iloc[0]
    late = A.run_correlations(bump, ys=("jac_spectral_max",), window="after_peak").iloc[0]
    assert early.rho == pytest.approx(1.0) and early.n == 5 and early.last_step == 4
    assert late.rho == pytest.approx(-1.0) and late.n == 5
    summ = A.summarise_correlations(tab, by=("statistic",), seed=0)
    assert set(summ.statistic) == {"jac_spectral_max", "jac_frobenius_mean"}
    assert (summ.runs == 6).all()
    assert summ.set_index("statistic").loc["jac_spectral_max", "mean"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="window='late'"):
        A.run_correlations(df, window="late")


def test_log_changes_and_dominant_mediator():
    df = pd.DataFrame(
        {
            "step": [0, 50, 100],
            "sharpness": [10.0, 8.0, 5.0],
            "jac_spectral_max": [1.0, 2.0, 2.0],
            "curvature_norm": [0.2, 0.1, 0.05],
            "feature_norm": [3.0, 3.0, 3.3],
            "first_layer_norm": [1.0, 1.0, 1.1],
        }
    )
    ch = A.log_changes(df, list(df.columns[1:]), 0, 95)
    assert ch["sharpness"] == pytest.approx(math.log(0.5))
    assert ch["curvature_norm"] == pytest.approx(math.log(0.25))
    name, r, contrib = A.dominant_mediator(ch)
    assert r == pytest.approx(math.log(0.5) - math.log(2.0))
    assert name == "curvature_norm"
    assert contrib["first_layer_norm"] == pytest.approx(-math.log(1.1))
    # no factor moves with the decoupling: None
    ch2 = {
        "sharpness": 0.0,
        "jac_spectral_max": 1.0,
        "curvature_norm": 0.5,
        "feature_norm": 0.1,
        "first_layer_norm": -0.2,
    }
    assert A.dominant_mediator(ch2)[0] is None


def test_value_when():
    df = pd.DataFrame({"step": [0, 10, 20, 30], "train_loss": [1.0, 0.5, 0.2, 0.1], "jac": [1.0, 2.0, 3.0, 4.0]})
    assert A.value_when(df, "jac", at="train_loss", threshold=0.3) == 3.0
    assert A.value_when(df, "jac", at="train_loss", threshold=0.5) == 2.0
    assert np.isnan(A.value_when(df, "jac", at="train_loss", threshold=0.01))
    assert A.value_when(df, "train_loss", at="jac", threshold=2.5, below=False) == 0.2
    with pytest.raises(ValueError, match="'loss'"):
        A.value_when(df, "jac", at="loss", threshold=0.1)


# ------------------------------------------------------------------------------------------------
# correlations across runs (paired / cluster bootstrap; added for the generalisation chapters)
# ------------------------------------------------------------------------------------------------


def test_paired_bootstrap_estimate_matches_scipy_and_is_seeded():
    rng = np.random.default_rng(5)
    x = rng.normal(size=25)
    y = x + rng.normal(size=25)
    ci = A.paired_bootstrap_ci(x, y, "kendall", n_resamples=400, seed=1)
    assert ci.estimate == pytest.approx(scipy.stats.kendalltau(x, y).statistic)
    assert ci.low <= ci.estimate <= ci.high and ci.n == 25
    assert ci == A.paired_bootstrap_ci(x, y, "kendall", n_resamples=400, seed=1)
    sp = A.paired_bootstrap_ci(x, y, "spearman", n_resamples=400, seed=1)
    assert sp.estimate == pytest.approx(scipy.stats.spearmanr(x, y).statistic)


def test_paired_bootstrap_replicates_by_brute_force():
    """Same index draws, replicates recomputed with scipy: the quantiles agree."""
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=12), rng.normal(size=12)
    B = 300
    idx = np.random.default_rng(9).integers(0, 12, size=(B, 12))
    reps = []
    for i in idx:
        t = scipy.stats.kendalltau(x[i], y[i]).statistic
        if np.isfinite(t):
            reps.append(t)
    lo, hi = np.quantile(reps, [0.05, 0.95])
    ci = A.paired_bootstrap_ci(x, y, "kendall", level=0.9, n_resamples=B, seed=9)
    assert ci.low == pytest.approx(lo) and ci.high == pytest.approx(hi)


def test_paired_bootstrap_keeps_pairs_together():
    # a perfectly monotone relation stays perfect in every resample (replicates with fewer than 3
    # distinct pairs are undefined and dropped), so the interval is the point [1, 1]
    x = np.arange(10.0)
    ci = A.paired_bootstrap_ci(x, 2 * x + 1, "kendall", n_resamples=200, seed=0)
    assert ci.estimate == ci.low == ci.high == pytest.approx(1.0)


def test_cluster_bootstrap_resamples_whole_groups():
    # groups of two identical runs: resampling groups is resampling 5 distinct points twice;
    # the interval must equal the one obtained on the 5 distinct points duplicated per replicate
    rng = np.random.default_rng(2)
    x5, y5 = rng.normal(size=5), rng.normal(size=5)
    x, y, g = np.repeat(x5, 2), np.repeat(y5, 2), np.repeat(np.arange(5), 2)
    got = A.paired_bootstrap_ci(x, y, "spearman", groups=g, n_resamples=300, seed=4)
    picks = np.random.default_rng(4).integers(0, 5, size=(300, 5))
    reps = [A.spearman(np.repeat(x5[p], 2), np.repeat(y5[p], 2)) for p in picks]
    reps = np.array([r for r in reps if np.isfinite(r)])
    lo, hi = np.quantile(reps, [0.025, 0.975])
    assert got.low == pytest.approx(lo) and got.high == pytest.approx(hi)
    # resampling single runs instead gives a different (narrower-looking) interval
    assert A.paired_bootstrap_ci(x, y, "spearman", n_resamples=300, seed=4) != got


def test_paired_bootstrap_coverage_bivariate_normal():
    """Kendall's tau of a bivariate normal is (2/pi) arcsin(r); the 90 % interval covers it."""
    r = 0.6
    truth = 2 / math.pi * math.asin(r)
    rng = np.random.default_rng(321)
    reps, hits = 80, 0
    cov = [[1, r], [r, 1]]
    for k in range(reps):
        xy = rng.multivariate_normal([0, 0], cov, size=50)
        ci = A.paired_bootstrap_ci(xy[:, 0], xy[:, 1], "kendall", level=0.9, n_resamples=300, seed=k)
        hits += ci.low <= truth <= ci.high
    assert 0.75 <= hits / reps <= 0.99  # binomial sd at 0.9 and 80 trials is 0.034


def test_correlation_difference_hand_case_and_sign():
    rng = np.random.default_rng(8)
    t = rng.normal(size=30)
    good, bad = t + 0.1 * rng.normal(size=30), rng.normal(size=30)
    d = A.correlation_difference_ci(t, good, bad, "kendall", n_resamples=400, seed=0)
    assert d.estimate == pytest.approx(A.kendall(t, good) - A.kendall(t, bad))
    assert d.low > 0
    rev = A.correlation_difference_ci(t, bad, good, "kendall", n_resamples=400, seed=0)
    assert rev.estimate == pytest.approx(-d.estimate)
    assert rev.low == pytest.approx(-d.high) and rev.high == pytest.approx(-d.low)
    # identical predictors: the difference is exactly 0 in every replicate
    z = A.correlation_difference_ci(t, good, good, n_resamples=100, seed=0)
    assert z.estimate == z.low == z.high == 0.0


def test_predictor_table_and_bad_inputs():
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"gap": rng.normal(size=20), "cfg": np.repeat(np.arange(10), 2)})
    df["j"] = df["gap"] + 0.2 * rng.normal(size=20)
    df["s"] = rng.normal(size=20)
    df.loc[3, "s"] = np.nan
    tab = A.predictor_table(df, "gap", ["j", "s"], "kendall", group="cfg", n_resamples=200, seed=0)
    assert list(tab["predictor"]) == ["j", "s"]
    assert tab.loc[0, "estimate"] == pytest.approx(A.kendall(df["gap"], df["j"]))
    assert tab.loc[1, "n"] == 19  # the NaN row is dropped
    same = A.paired_bootstrap_ci(df["gap"], df["j"], groups=df["cfg"].astype(str), n_resamples=200, seed=0)
    assert tab.loc[0, "low"] == pytest.approx(same.low)
    with pytest.raises(ValueError, match="column 'nope'"):
        A.predictor_table(df, "gap", ["nope"], seed=0)
    with pytest.raises(ValueError, match="method='pearson'"):
        A.paired_bootstrap_ci([1, 2, 3], [1, 2, 3], "pearson", seed=0)
    with pytest.raises(ValueError, match="same length"):
        A.correlation_difference_ci([1, 2, 3], [1, 2], [1, 2, 3], seed=0)
    with pytest.raises(ValueError, match="groups must have shape"):
        A.paired_bootstrap_ci([1, 2, 3], [1, 2, 3], groups=[0, 1], seed=0)
    with pytest.raises(ValueError, match="level=0"):
        A.paired_bootstrap_ci([1, 2, 3], [1, 2, 3], level=0, seed=0)
    nan = A.paired_bootstrap_ci([1.0, 2.0], [1.0, 2.0], seed=0)
    assert np.isnan(nan.estimate) and np.isnan(nan.low) and nan.n == 2
