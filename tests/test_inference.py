"""sharpjac.inference: intervals, permutation tests and the trend null, checked against scipy and
by simulation at the chapters' designs (3, 5 and 9 clusters; 5 runs of 30 log-spaced steps).

Monte Carlo tolerances: a rate estimated from n trials has standard error sqrt(p(1-p)/n); the
bounds below sit 4 standard errors from the nominal value, so a correct method fails them with
probability below 1e-4 per check, and the simulations are seeded, so they never flake.
"""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from sharpjac import analysis, inference


def _four_se(p: float, n: int) -> float:
    return 4 * math.sqrt(p * (1 - p) / n)


# ------------------------------------------------------------------------------------------------
# t intervals
# ------------------------------------------------------------------------------------------------


def test_t_interval_equals_scipy():
    v = np.array([0.3, 0.9, 0.55, 0.71, 0.42])
    iv = inference.t_interval(v, unit="seeds", level=0.9)
    lo, hi = stats.t.interval(0.9, len(v) - 1, loc=v.mean(), scale=stats.sem(v))
    assert iv.estimate == pytest.approx(v.mean(), rel=1e-15)
    # scipy computes the same closed form; agreement to rounding (1e-12 relative)
    assert (iv.low, iv.high) == pytest.approx((lo, hi), rel=1e-12)
    assert (iv.n, iv.unit, iv.method, iv.too_few) == (5, "seeds", "t", False)


def test_t_interval_drops_non_finite_and_says_too_few():
    iv = inference.t_interval([1.0, float("nan"), 2.0], unit="grid points")
    assert iv.too_few and iv.n == 2 and iv.estimate == 1.5
    assert math.isnan(iv.low) and math.isnan(iv.high)
    assert not iv.excludes(0.0)  # no interval, so it excludes nothing
    assert "too few grid points" in iv.label()


def test_t_interval_label_names_unit_and_count():
    iv = inference.t_interval([0.1, 0.2, 0.3], unit="seeds")
    assert iv.label() == "0.20 [-0.05, 0.45] (95 % t interval, 3 seeds)"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"unit": ""}, "unit="),
        ({"unit": "seeds", "level": 1.0}, "level=1.0"),
        ({"unit": "seeds", "min_clusters": 1}, "min_clusters=1"),
    ],
)
def test_t_interval_refuses_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        inference.t_interval([1.0, 2.0, 3.0], **kwargs)


@pytest.mark.parametrize("m", [3, 5, 9])
def test_t_interval_covers_at_the_chapters_cluster_counts(m):
    n = 4000
    cov = inference.coverage(
        lambda v: inference.t_interval(v, unit="seeds"),
        lambda rng: rng.normal(0.3, 0.2, size=m),
        0.3,
        n_trials=n,
        seed=m,
    )
    assert abs(cov - 0.95) <= _four_se(0.95, n), cov


@pytest.mark.parametrize(("m", "upper"), [(3, 0.85), (5, 0.90)])
def test_percentile_bootstrap_undercovers_at_few_clusters(m, upper):
    """Why the verdicts do not use the percentile bootstrap of a mean at 3 or 5 clusters."""
    n = 1500
    cov = inference.coverage(
        lambda v: analysis.bootstrap_ci(v, "mean", n_resamples=400, seed=1),
        lambda rng: rng.normal(0.0, 1.0, size=m),
        0.0,
        n_trials=n,
        seed=m,
    )
    assert cov < upper, cov


def test_coverage_counts_a_missing_interval_as_a_miss():
    cov = inference.coverage(
        lambda v: inference.t_interval(v, unit="seeds", min_clusters=5),
        lambda rng: rng.normal(size=3),
        0.0,
        n_trials=50,
        seed=0,
    )
    assert cov == 0.0


# ------------------------------------------------------------------------------------------------
# permutation test of a rank correlation
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alternative", ["greater", "less"])
def test_exact_permutation_p_equals_brute_force_with_scipy(alternative):
    rng = np.random.default_rng(3)
    x = rng.normal(size=6)
    y = rng.normal(size=6) + 0.8 * x
    ours = inference.permutation_correlation_test(x, y, alternative=alternative, seed=0)
    rho = stats.spearmanr(x, y).statistic
    null = np.array([stats.spearmanr(x, np.array(p)).statistic for p in itertools.permutations(y)])
    # ties between pairings with equal rho are counted as "at least as extreme" (1e-12 slack)
    expected = np.mean(null >= rho - 1e-12) if alternative == "greater" else np.mean(null <= rho + 1e-12)
    assert ours.exact and ours.n_permutations == math.factorial(6)
    assert ours.estimate == pytest.approx(rho, abs=1e-12)
    assert ours.p_value == pytest.approx(expected, abs=1e-15)


def test_kendall_permutation_is_exact_and_matches_brute_force():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    y = np.array([1.0, 3.0, 2.0, 4.0])
    res = inference.permutation_correlation_test(x, y, method="kendall", seed=0)
    taus = [stats.kendalltau(x, np.array(p)).statistic for p in itertools.permutations(y)]
    expected = np.mean(np.array(taus) >= res.estimate - 1e-12)
    assert res.p_value == pytest.approx(expected, abs=1e-15)
    assert res.min_p == pytest.approx(1 / 24)


@pytest.mark.parametrize("m", [5, 9])
def test_permutation_test_rejects_at_most_nominally_under_independence(m):
    rng = np.random.default_rng(m)
    n = 800
    rejections = sum(
        inference.permutation_correlation_test(
            rng.normal(size=m), rng.normal(size=m), n_permutations=499, seed=int(rng.integers(1 << 30))
        ).p_value
        <= 0.05
        for _ in range(n)
    )
    assert rejections / n <= 0.05 + _four_se(0.05, n)


def test_permutation_test_says_when_it_cannot_reach_alpha():
    res = inference.permutation_correlation_test([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], seed=0)
    assert res.p_value == pytest.approx(1 / 6) and res.min_p == pytest.approx(1 / 6)
    assert not res.can_reach(0.05)


# ------------------------------------------------------------------------------------------------
# the cross-run trend null
# ------------------------------------------------------------------------------------------------

STEPS = np.unique(np.geomspace(1, 2000, 30).astype(int)).astype(float)  # log-spaced schedule


def _shared_trend_runs(rng, n_runs=5, noise=0.01):
    """Runs whose two series share only a saturating trend (independent 1 % noise)."""
    trend = 1 - np.exp(-STEPS / 300.0)
    xs = [trend * (1 + noise * rng.normal(size=len(STEPS))) for _ in range(n_runs)]
    ys = [2 * trend * (1 + noise * rng.normal(size=len(STEPS))) for _ in range(n_runs)]
    return xs, ys


def _random_walk_runs(rng, n_runs=5):
    """Independent drifting random walks, sampled on the log-spaced schedule."""
    n = int(STEPS[-1])
    idx = STEPS.astype(int) - 1
    walk = lambda: np.cumsum(0.05 + rng.normal(size=n))[idx]  # noqa: E731
    return [walk() for _ in range(n_runs)], [walk() for _ in range(n_runs)]


def _coupled_runs(rng, n_runs=5):
    """Runs whose second series follows the first's own fluctuations (a real within-run link)."""
    xs, _ = _shared_trend_runs(rng, n_runs, noise=0.05)
    ys = [2 * x + 0.02 * rng.normal(size=len(x)) for x in xs]
    return xs, ys


def test_first_differences_do_not_remove_a_shared_trend():
    """The issue's finding, reproduced: the old null sees a link where there is only a trend."""
    rng = np.random.default_rng(0)
    rhos = []
    for _ in range(50):
        xs, ys = _shared_trend_runs(rng, n_runs=1)
        rhos.append(analysis.trend_null_correlation(xs[0], ys[0]))
    assert np.mean(rhos) > 0.3 and np.mean(np.array(rhos) > 0) > 0.9


@pytest.mark.parametrize("simulate", [_shared_trend_runs, _random_walk_runs], ids=["saturating", "random-walks"])
def test_cross_run_null_passes_a_shared_trend_at_most_nominally(simulate):
    rng = np.random.default_rng(11)
    n = 300
    passes = sum(inference.cross_run_trend_null(*simulate(rng)).beats_trend(0.05) is True for _ in range(n))
    assert passes / n <= 0.05 + _four_se(0.05, n), passes / n


def test_cross_run_null_detects_a_within_run_link():
    rng = np.random.default_rng(12)
    n = 100
    passes = sum(inference.cross_run_trend_null(*_coupled_runs(rng)).beats_trend(0.05) is True for _ in range(n))
    assert passes / n >= 0.9, passes / n


def test_cross_run_null_statistic_by_hand():
    xs = [np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 4.0])]
    ys = [np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 4.0])]
    res = inference.cross_run_trend_null(xs, ys)
    # within-run rho are 1 and 1; across runs rho(x0, y1) = rho(x1, y0) = 0.8
    assert res.observed == pytest.approx(1.0)
    assert res.null_mean == pytest.approx(0.8)
    assert res.p_value == pytest.approx(0.5) and res.min_p == pytest.approx(0.5)
    assert res.beats_trend(0.05) is None  # 2 runs can never reach 0.05


def test_cross_run_null_cuts_to_the_common_length_and_checks_shapes():
    res = inference.cross_run_trend_null([[1, 2, 3, 4], [1, 2, 3]], [[2, 1, 3, 9], [1, 3, 2]])
    assert res.n_steps == 3
    with pytest.raises(ValueError, match="same number of runs"):
        inference.cross_run_trend_null([[1, 2, 3]], [[1, 2, 3], [3, 2, 1]])
    with pytest.raises(ValueError, match="at least 2 runs"):
        inference.cross_run_trend_null([[1, 2, 3]], [[1, 2, 3]])


# ------------------------------------------------------------------------------------------------
# fragility and the operating-characteristics harness
# ------------------------------------------------------------------------------------------------


def test_leave_one_out_marks_an_outcome_that_one_cluster_carries():
    values = {"s0": 0.9, "s1": 0.1, "s2": 0.2, "s3": -0.1}

    def decide(kept):
        return "agree" if np.mean([values[k] for k in kept]) > 0.2 else "disagree"

    res = inference.leave_one_out(decide, list(values))
    assert res.outcome == "agree" and res.fragile and res.flips == ("s0",)
    steady = inference.leave_one_out(lambda kept: "agree", list(values))
    assert not steady.fragile and steady.flips == ()
    with pytest.raises(ValueError, match="distinct"):
        inference.leave_one_out(decide, ["s0", "s0"])


def test_operating_characteristics_of_a_one_sided_t_test():
    """A rule with a known false-agree rate (alpha = 0.05) is measured as such."""

    def rule(v):
        return stats.ttest_1samp(v, 0.0, alternative="greater").pvalue <= 0.05

    oc = inference.operating_characteristics(
        rule, lambda rng: rng.normal(0.0, 1.0, 5), lambda rng: rng.normal(2.0, 1.0, 5), n_trials=1000, seed=5
    )
    assert abs(oc.false_agree - 0.05) <= _four_se(0.05, 1000)
    assert oc.power > 0.85 and oc.n_trials == 1000


# ------------------------------------------------------------------------------------------------
# the stratified trend null (runs permuted within a setting), at the sharpening chapter's design
# ------------------------------------------------------------------------------------------------


def _settings(rng, simulate, n_settings=3, n_runs=5):
    """Settings with their own trend (time scale), each with ``n_runs`` runs."""
    out = []
    for g in range(n_settings):
        xs, ys = simulate(rng, n_runs)
        scale = 1.0 + g  # a different trend per setting: runs of different settings are not exchangeable
        out.append(([x**scale for x in xs], [y**scale for y in ys]))
    return out


def test_stratified_null_with_one_setting_is_the_cross_run_null():
    rng = np.random.default_rng(4)
    xs, ys = _coupled_runs(rng, n_runs=4)
    a = inference.cross_run_trend_null(xs, ys)
    b = inference.stratified_trend_null([(xs, ys)])
    assert a == b and a.exact and a.min_p == pytest.approx(1 / 24)


def test_stratified_null_enumerates_within_settings_only():
    rng = np.random.default_rng(5)
    settings = _settings(rng, lambda r, n: _shared_trend_runs(r, n_runs=n), n_settings=2, n_runs=3)
    res = inference.stratified_trend_null(settings)
    assert res.exact and res.n_runs == 6 and res.min_p == pytest.approx(1 / 36)  # 3! * 3! orderings


def test_stratified_null_passes_shared_trends_at_most_nominally_at_the_chapter_design():
    """3 step sizes x 5 seeds, 30 log-spaced steps: the sharpening chapter's quick design."""
    rng = np.random.default_rng(21)
    n = 200
    passes = sum(
        inference.stratified_trend_null(
            _settings(rng, lambda r, k: _shared_trend_runs(r, n_runs=k)), n_permutations=499, seed=i
        ).beats_trend(0.05)
        is True
        for i in range(n)
    )
    assert passes / n <= 0.05 + _four_se(0.05, n), passes / n


def test_stratified_null_detects_a_within_run_link_at_the_chapter_design():
    rng = np.random.default_rng(22)
    n = 60
    passes = sum(
        inference.stratified_trend_null(
            _settings(rng, lambda r, k: _coupled_runs(r, n_runs=k)), n_permutations=499, seed=i
        ).beats_trend(0.05)
        is True
        for i in range(n)
    )
    assert passes / n >= 0.9, passes / n


def test_permutation_rule_outcomes():
    from sharpjac.claims import Permutation

    rule = Permutation(0.05)
    assert rule.decide(p_greater=0.01, p_less=0.99, min_p=0.001) == "agree"
    assert rule.decide(p_greater=0.99, p_less=0.02, min_p=0.001) == "disagree"
    assert rule.decide(p_greater=0.30, p_less=0.70, min_p=0.001) == "inconclusive"
    assert rule.decide(p_greater=1 / 6, p_less=1.0, min_p=1 / 6) == "inconclusive"  # 3 runs: too few
    assert rule.decide(p_greater=float("nan"), p_less=0.5, min_p=0.01) == "inconclusive"
    with pytest.raises(ValueError, match="p_greater=1.5 is invalid"):
        rule.decide(p_greater=1.5, p_less=0.5, min_p=0.01)
    with pytest.raises(ValueError, match="alpha=0 is invalid"):
        Permutation(0)


def test_permutation_rule_operating_characteristics_at_the_sharpening_design():
    """The rule that decides progressive_sharpening.jacobian_rises_with_sharpness, on data with a
    known answer: runs that share only their setting's trend (claim false) and runs whose Jacobian
    follows their own sharpness (claim true), 3 step sizes x 5 seeds, 30 log-spaced steps."""
    from sharpjac.claims import Permutation

    rule = Permutation(0.05)

    def says(settings):
        res = inference.stratified_trend_null(settings, n_permutations=499, seed=0)
        return rule.decide(**res.numbers()) == "agree"

    oc = inference.operating_characteristics(
        says,
        lambda rng: _settings(rng, lambda r, k: _shared_trend_runs(r, n_runs=k)),
        lambda rng: _settings(rng, lambda r, k: _coupled_runs(r, n_runs=k)),
        n_trials=200,
        seed=8,
    )
    assert oc.false_agree <= 0.05 + _four_se(0.05, 200), oc
    assert oc.power >= 0.9, oc
