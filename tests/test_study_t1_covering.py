"""The ``t1_covering`` study: covering radius of manifold samples against N, and the cusp generator.

Oracles: T1's closed form :math:`2L_g\\sqrt d(\\log(N/\\varepsilon)/N)^{1/d}` written out with numpy,
``numpy.polyfit`` in log-log space for the slopes, exact power laws for the slope summary.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sharpjac import experiments, theory
from sharpjac.experiments import t1_covering as t1
from sharpjac.runs import RunStore

T1Config = t1.T1CoveringConfig


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("t1-store"))
    cfg = T1Config.preset("smoke")
    return store, cfg, experiments.get("t1_covering").run(cfg, store=store)


def test_smoke_tables_and_columns(smoke):
    _, cfg, tables = smoke
    assert set(tables) == {"samples", "slopes", "holder", "holder_summary"}
    samples = tables["samples"]
    assert list(samples.columns) == ["seed", "d", "N", "repeat", "radius", "bound", "lipschitz"]
    assert len(samples) == len(cfg.dims) * len(cfg.sizes) * cfg.repeats
    assert list(tables["slopes"].columns) == [
        "d",
        "slope",
        "stderr",
        "slope_rate",
        "expected",
        "fit_slope",
        "fit_low",
        "fit_high",
        "rate_slope",
        "rate_low",
        "rate_high",
        "samples",
        "target_rate",
        "violations",
        "checks",
        "max_ratio",
        "min_looseness",
    ]
    assert list(tables["holder"].columns) == ["seed", "N", "repeat", "radius", "bound_L1", "bound_L10", "bound_L100"]
    assert list(tables["holder_summary"].columns) == [
        "alpha",
        "slope",
        "stderr",
        "first_violation_L1",
        "first_violation_L10",
        "first_violation_L100",
    ]
    assert (samples["radius"] < samples["bound"]).all()  # T1 holds with room (it is loose)


def test_bound_column_is_t1_closed_form(smoke):
    _, cfg, tables = smoke
    s = tables["samples"]
    oracle = 2 * s["lipschitz"] * np.sqrt(s["d"]) * (np.log(s["N"] / cfg.epsilon) / s["N"]) ** (1 / s["d"])
    # same formula, different order of floating-point operations: agree to rounding
    np.testing.assert_allclose(s["bound"], oracle, rtol=1e-12)


def test_holder_summary_matches_polyfit_and_first_violation(smoke):
    _, _, tables = smoke
    holder, summary = tables["holder"], tables["holder_summary"].iloc[0]
    mean = holder.groupby("N")["radius"].mean()
    slope = np.polyfit(np.log(mean.index.values.astype(float)), np.log(mean.values), 1)[0]
    assert summary["slope"] == pytest.approx(slope, rel=1e-9)  # least squares solved two ways
    for L in ("L1", "L10", "L100"):
        over = holder.loc[holder["radius"] > holder[f"bound_{L}"], "N"]
        expected = over.min() if len(over) else np.nan
        assert summary[f"first_violation_{L}"] == pytest.approx(expected, nan_ok=True)


def test_second_run_computes_nothing(smoke, monkeypatch):
    store, cfg, first = smoke

    def fail(*a, **k):
        raise AssertionError("the stored study was computed again")

    monkeypatch.setattr("sharpjac.runs.train", fail)
    monkeypatch.setattr(T1Config, "compute", fail)
    again = experiments.get("t1_covering").run(cfg, store=store)
    for name, df in first.items():
        pd.testing.assert_frame_equal(again[name], df)


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"epsilon": 1.5}, "epsilon"),
        ({"alpha": 0.0}, "alpha"),
        ({"sizes": (100,)}, "sizes"),
        ({"dims": (0, 1)}, "dims"),
        ({"num_probe": 2.5}, "num_probe"),
    ],
)
def test_validation_names_the_field(kw, field):
    with pytest.raises(ValueError, match=rf"^T1CoveringConfig\.{field}=\S.*accepted: [^\n]*$"):
        T1Config.from_preset("smoke", **kw)


def test_covering_study_under_bound_and_slope():
    df = t1.covering_study([1, 2], [50, 200, 800], num_probe=4000, repeats=2, seed=0)
    assert set(df.columns) >= {"d", "N", "repeat", "radius", "bound"}
    assert (df["radius"] < df["bound"]).all()  # T1 holds with room (it is loose)
    for d in (1, 2):
        sub = df[df.d == d].groupby("N")["radius"].mean()
        slope = theory.fit_loglog_slope(sub.index.values, sub.values).slope
        # three sizes, two repeats: the fitted slope is noisy, so only its neighbourhood of -1/d is checked
        assert abs(slope + 1 / d) < 0.3, (d, slope)


def test_covering_slopes_on_exact_power_laws():
    N = np.array([100, 400, 1600, 6400])
    rows = [
        {"d": d, "N": n, "repeat": 0, "radius": 0.5 * n ** (-1 / d), "bound": n ** (-1 / d)} for d in (1, 2) for n in N
    ]
    out = t1.covering_slopes(pd.DataFrame(rows)).set_index("d")
    assert out.loc[1, "slope"] == pytest.approx(-1.0) and out.loc[2, "slope"] == pytest.approx(-0.5)
    assert out.loc[2, "expected"] == -0.5
    assert out.loc[1, "max_ratio"] == pytest.approx(0.5) and out.loc[1, "min_looseness"] == pytest.approx(2.0)
    assert (out["violations"] == 0).all() and (out["checks"] == len(N)).all()


def test_slope_interval_against_scipy_linregress():
    # oracle: scipy.stats.linregress on (log N, log r) of every sample, t-interval with n - 2 dof
    from scipy import stats

    rng = np.random.default_rng(0)
    N = np.repeat([100, 200, 400, 800], 3)
    r = N ** (-0.5) * np.exp(rng.normal(0, 0.1, N.size))
    out = t1.covering_slopes(pd.DataFrame({"d": 2, "N": N, "repeat": 0, "radius": r, "bound": 2 * r}))
    fit = stats.linregress(np.log(N), np.log(r))
    half = stats.t.ppf(0.975, N.size - 2) * fit.stderr
    row = out.iloc[0]
    # the same least-squares fit by two routes: equal to rounding
    assert row["fit_slope"] == pytest.approx(fit.slope, rel=1e-10)
    assert (row["fit_low"], row["fit_high"]) == pytest.approx((fit.slope - half, fit.slope + half), rel=1e-10)
    assert row["fit_low"] < -0.5 < row["fit_high"]  # the noise is small and the true slope -1/2


def test_holder_study_columns():
    df = t1.holder_study([50, 100], alpha=0.5, lipschitz_candidates=(1.0, 10.0), num_probe=1001, repeats=1)
    assert list(df.columns) == ["N", "repeat", "radius", "bound_L1", "bound_L10"]
    assert np.allclose(df["bound_L10"], 10 * df["bound_L1"])
    assert math.isclose(df["bound_L1"].iloc[0], theory.t1_covering_bound(50, 0.1, 1, 1.0))


# --- the chapter's mapping and statistics (issue 18) ---------------------------------------------


def test_seed_block_and_chapter_configs():
    from sharpjac.experiments._chapter import seed_block

    assert seed_block("smoke", 0) == (0,) and seed_block("quick", 0) == (0, 1, 2)
    assert seed_block("paper", 4) == (4, 5, 6) and seed_block("smoke", 2, n_seeds=2) == (2, 3)
    with pytest.raises(ValueError, match="n_seeds=0; accepted"):
        seed_block("quick", 0, n_seeds=0)
    with pytest.raises(ValueError, match="preset='fast'; accepted"):
        seed_block("fast", 0)
    exp = experiments.get("t1_covering")
    # seed 0 gives what the chapter built by hand before (3 seeds at quick and paper, although the preset says 1)
    for preset, n in (("smoke", 1), ("quick", 3), ("paper", 3)):
        assert T1Config.preset(preset).seeds == (0,)
        (cfg,) = exp.configs_for(preset, 0)
        assert cfg == T1Config.from_preset(preset, seeds=tuple(range(n)), epsilon=0.1, alpha=0.25)
    (cfg,) = exp.configs_for("quick", 3, n_seeds=2, epsilon=0.2, alpha=0.5)
    assert (cfg.seeds, cfg.data_seed, cfg.epsilon, cfg.alpha) == ((3, 4), 3, 0.2, 0.5)


def test_summarise_against_the_samples(smoke):
    t1m = t1

    _, cfg, tables = smoke
    s = t1m.summarise(tables, cfg)
    samples = tables["samples"]
    # independent of the slopes table: count the samples whose radius exceeds the bound
    c = s.claims["t1_covering.bound_holds"]
    assert c["checks"] == len(samples) and c["violations"] == int((samples["radius"] > samples["bound"]).sum())
    # the check's tightest margin is the largest radius/bound over every sample
    assert c["margin"] == f"largest radius / bound = {(samples['radius'] / samples['bound']).max():.3f} (fails above 1)"
    for d in cfg.dims:
        sub = samples[samples.d == d]
        # least squares on every sample, against T1's rate log(log N / N)
        slope = np.polyfit(np.log(np.log(sub["N"]) / sub["N"]), np.log(sub["radius"]), 1)[0]
        c = s.claims[f"t1_covering.rate_d{d}"]
        assert c["estimate"] == pytest.approx(slope, rel=1e-6)
        assert (c["unit"], c["n_units"]) == ("samples", len(sub))
        m = s.tables["means"].query("d == @d").set_index("N")["radius"]
        assert m.to_dict() == pytest.approx(sub.groupby("N")["radius"].mean().to_dict())
    assert "refuses it with a one-line error" in s.values["t1_n1_sentence"]
    from sharpjac.tables import LABELS

    assert all(set(s.tables[t].columns) <= set(LABELS) for t in ("slopes_shown",))  # every shown column has a label
    n = min(cfg.sizes)
    assert s.values["ex1_factor"] == pytest.approx((math.log(n / 1e-3) / math.log(n / 0.1)) ** (1 / min(cfg.dims)))
    assert set(t1m.evaluate(s, "smoke")) == {f"t1_covering.rate_d{d}" for d in cfg.dims} | {"t1_covering.bound_holds"}


def test_rate_fit_against_scipy_linregress():
    # oracle: scipy.stats.linregress on (log(log N / N), log r), 90 % t-interval with n - 2 dof
    from scipy import stats

    rng = np.random.default_rng(1)
    N = np.repeat([100, 200, 400, 800, 1600, 3200], 4)
    r = (np.log(N) / N) ** 0.25 * np.exp(rng.normal(0, 0.05, N.size))
    out = t1.rate_fit(pd.DataFrame({"N": N, "radius": r}))
    fit = stats.linregress(np.log(np.log(N) / N), np.log(r))
    half = stats.t.ppf(0.95, N.size - 2) * fit.stderr
    assert out["estimate"] == pytest.approx(fit.slope, rel=1e-10) and out["n"] == N.size
    assert (out["low"], out["high"]) == pytest.approx((fit.slope - half, fit.slope + half), rel=1e-10)
    # too few samples: no interval
    few = t1.rate_fit(pd.DataFrame({"N": [100, 200], "radius": [0.1, 0.08]}))
    assert math.isnan(few["low"]) and few["n"] == 2 and math.isfinite(few["estimate"])


def test_rate_rule_is_an_equivalence_band():
    from sharpjac import claims

    rule = claims.get("t1_covering.rate_d4").rule
    assert (rule.target, rule.tolerance) == (0.25, 0.025)  # half the gap to 1/5
    assert rule.decide(estimate=0.25, low=0.24, high=0.26) == "agree"
    assert rule.decide(estimate=0.29, low=0.28, high=0.30) == "disagree"
    assert rule.decide(estimate=0.27, low=0.26, high=0.28) == "inconclusive"  # straddles the edge
    assert rule.decide(estimate=0.25, low=float("nan"), high=0.3) == "inconclusive"
    with pytest.raises(ValueError, match="low=0.3 > high=0.2"):
        rule.decide(estimate=0.25, low=0.3, high=0.2)
    # the outcome of the chapter's path: exact T1 rate data agree, a rate of N^(-1/4) (no log) does not
    N = np.repeat([100, 200, 400, 800, 1600, 3200], 6)
    noise = np.exp(np.random.default_rng(0).normal(0, 0.01, N.size))
    exact = pd.DataFrame({"N": N, "radius": (np.log(N) / N) ** 0.25 * noise})
    assert t1.rate_outcome(exact, 4) == "agree"
    assert t1.rate_outcome(exact.assign(radius=N ** (-0.25) * noise), 4) == "disagree"


def test_rate_known_answers_hold_their_error_rates():
    from sharpjac.claims import known_answers
    from sharpjac.claims.known_answers import operating

    for d in (1, 4):
        entry = known_answers()[f"t1_covering.rate_d{d}"]
        oc = operating(entry, n_trials=200, seed=0)
        # two one-sided tests at 5 %: at the band's edge the rule agrees at most 5 % (+ 2 SE of 200 trials)
        assert oc.false_agree <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / 200)
        assert oc.power > 0.5
