"""Every empirical decision rule, tried on data with a known answer (issue 19, item 2), and the
machinery that carries units, counts and fragility into the verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from sharpjac import claims, inference
from sharpjac.claims import calibration
from sharpjac.claims.known_answers import operating

TEST_CLAIM = "weight_decay.raises_sharpness"  # a Sign(+1) claim


def test_from_clusters_is_a_t_interval_over_the_clusters():
    values = {0: 0.4, 1: 0.5, 2: 0.45, 3: 0.6, 4: 0.55}
    v = claims.from_clusters(TEST_CLAIM, values, unit="seeds", evidence="e.", preset="quick", seeds=5, label="Δ")
    x = np.array(list(values.values()))
    half = stats.t.ppf(0.975, 4) * x.std(ddof=1) / math.sqrt(5)  # the textbook t interval, 4 df
    assert v.estimate == pytest.approx(x.mean(), rel=1e-12)
    assert (v.low, v.high) == pytest.approx((x.mean() - half, x.mean() + half), rel=1e-12)
    assert v.outcome == "agree" and v.units_text == "5 seeds"
    assert v.fragile is False and v.record()["unit"] == "seeds" and v.record()["n_units"] == 5
    assert "5 seeds" in v.markdown() and "robust to leaving out" in v.markdown()


def test_from_clusters_marks_an_outcome_one_seed_carries():
    # three small, steady effects and one outlier: with seed 3 the interval is wide and contains 0
    # (inconclusive); without it the interval is tight above 0 (agree): seed 3 alone flips it.
    carried = {0: 0.05, 1: 0.06, 2: 0.055, 3: 0.9}
    assert inference.t_interval(list(carried.values()), unit="seeds").low < 0
    assert inference.t_interval([0.05, 0.06, 0.055], unit="seeds").low > 0
    v = claims.from_clusters(TEST_CLAIM, carried, unit="seeds", evidence="e.", preset="quick", seeds=4)
    assert v.outcome == "inconclusive" and v.fragile is True and v.flips == ("3",)
    assert "fragile" in v.markdown() and v.record()["flips"] == ["3"]


def test_from_clusters_with_too_few_says_so():
    v = claims.from_clusters(TEST_CLAIM, {0: 0.5, 1: 0.7}, unit="seeds", evidence="e.", preset="smoke", seeds=2)
    assert v.outcome == "inconclusive" and "Too few seeds to decide (2)" in v.evidence
    assert math.isnan(v.low) and v.n_units == 2
    assert v.fragile is False  # inconclusive with either seed left out too


def test_three_seeds_that_all_agree_are_fragile_by_construction():
    v = claims.from_clusters(TEST_CLAIM, {0: 0.5, 1: 0.6, 2: 0.55}, unit="seeds", evidence="e.", preset="q", seeds=3)
    assert v.outcome == "agree" and v.fragile is True and len(v.flips) == 3


def test_evaluate_refuses_a_fragility_of_another_decision():
    wrong = inference.leave_one_out(lambda kept: "disagree", [0, 1, 2])
    with pytest.raises(ValueError, match="fragility.outcome"):
        claims.evaluate(TEST_CLAIM, evidence="e.", preset="q", seeds=3, estimate=1, low=0.5, high=1.5, fragility=wrong)
    with pytest.raises(ValueError, match="n_units"):
        claims.evaluate(TEST_CLAIM, evidence="e.", preset="q", seeds=3, estimate=1.0, low=0.5, high=1.5, unit="seeds")


def test_known_answer_refuses_a_check_and_measures_a_rule():
    check = next(c for c in claims.all_claims() if c.kind == "check")
    with pytest.raises(ValueError, match="kind"):
        claims.known_answer(check.id, design="d", simulate_false=lambda r: 0, simulate_true=lambda r: 0, decide=str)
    # A t interval over 5 seeds with a Sign rule: false-agree is one tail of a 95 % interval, 2.5 %.
    entry = claims.KnownAnswer(
        TEST_CLAIM,
        "5 seeds",
        "mean 1.5 sd",
        lambda rng: {s: rng.normal(0.0, 1.0) for s in range(5)},
        lambda rng: {s: rng.normal(1.5, 1.0) for s in range(5)},
        lambda d: claims.from_clusters(TEST_CLAIM, d, unit="seeds", evidence="e.", preset="q", seeds=5).outcome,
    )
    oc = operating(entry, n_trials=400, seed=1)
    assert abs(oc.false_agree - 0.025) <= 3 * math.sqrt(0.025 * 0.975 / 400)
    # power of a one-sided t test at effect 1.5 sd, 5 seeds, level 2.5 %: noncentral t, about 0.77
    power = 1 - stats.nct.cdf(stats.t.ppf(0.975, 4), 4, 1.5 * math.sqrt(5))
    assert abs(oc.power - power) <= 3 * math.sqrt(power * (1 - power) / 400)


def test_passes_allows_simulation_noise_and_needs_power():
    assert calibration.passes(0.06, 0.011, 0.5)  # within 2 SE of 5 %
    assert not calibration.passes(0.08, 0.011, 0.5)
    assert not calibration.passes(0.01, 0.005, 0.0)  # can never agree on true data
    assert not calibration.passes(float("nan"), float("nan"), float("nan"))


@pytest.fixture(scope="module")
def rules_table():
    return calibration.table(n_trials=calibration.N_TRIALS, seed=0)


def test_every_empirical_claim_has_a_known_answer(rules_table):
    missing = rules_table.loc[rules_table["design"] == "", "claim"].tolist()
    assert not missing, f"claims without a known-answer simulation: {missing}"


def test_every_empirical_rule_controls_false_agree_and_can_agree(rules_table):
    bad = rules_table.loc[~rules_table["passes"], ["claim", "false_agree", "power"]]
    assert bad.empty, f"rules to redesign (false-agree > 5 % + 2 SE, or power 0):\n{bad.to_string()}"


def test_rules_page_lists_every_claim_with_its_rates(rules_table, tmp_path):
    page = calibration.render(rules_table)
    assert page.startswith("# How the verdicts are decided")
    for claim_id in rules_table["claim"]:
        assert f"<code>{claim_id}</code>" in page.replace("<wbr>", "")
    assert f"{int(rules_table['passes'].sum())} of {len(rules_table)} rules pass" in page


def test_interval_coverage_table_shows_t_near_nominal_and_the_bootstrap_short():
    cov = calibration.interval_coverage(n_trials=800, seed=3)
    normal_t = cov[(cov.method == "t") & (cov.data == "normal")]
    # the t interval is exact for normal values: 95 % within 4 binomial SE (800 trials: 0.031)
    assert (abs(normal_t.coverage - 0.95) <= 4 * math.sqrt(0.95 * 0.05 / 800)).all()
    boot3 = cov[(cov.method == "percentile bootstrap") & (cov.clusters == 3)]
    assert (boot3.coverage < 0.85).all()  # about 0.70 in theory for 3 normal values
    page = calibration.render(calibration.table(n_trials=5, only="weight_decay"), cov)
    assert "## Intervals and their coverage" in page and "| t | 5 | skewed |" in page


def test_the_rules_table_is_computed_once_per_code_version(tmp_path, monkeypatch):
    monkeypatch.setenv(calibration.CACHE_ENV, str(tmp_path / "calibration"))
    calls = []
    small = calibration.table(n_trials=3, only="weight_decay")

    def compute(**kw):
        calls.append(kw)
        return small

    monkeypatch.setattr(calibration, "_compute", compute)
    first = calibration.table(n_trials=3)
    again = calibration.table(n_trials=3)
    assert len(calls) == 1 and first.equals(again)  # served from the cache, equal after the JSON round trip
    monkeypatch.setattr(calibration.codekey, "code_digest", lambda entries: "another-code-version")
    calibration.table(n_trials=3)
    assert len(calls) == 2  # other code: never the old table
    (cache,) = [p for p in (tmp_path / "calibration").iterdir() if p.name.startswith("another")]
    cache.write_text("{damaged", encoding="utf-8")
    calibration.table(n_trials=3)
    assert len(calls) == 3  # a damaged file is recomputed, not served


def test_coverage_sentence_is_chosen_by_the_table():
    import pandas as pd

    def frame(t_cov, boot_cov):
        rows = [("t", "normal", 0.95), ("t", "skewed", t_cov), ("percentile bootstrap", "normal", boot_cov)]
        return pd.DataFrame([{"method": m, "data": d, "coverage": c, "se": 0.005} for m, d, c in rows])

    good = calibration._coverage_sentence(frame(0.951, 0.949))  # noqa: SLF001 - the sentence under test
    assert "reaches its level in every row" in good and "falls short" not in good
    bad = calibration._coverage_sentence(frame(0.90, 0.80))  # noqa: SLF001
    assert "bootstrap falls short" in bad and "skewed values the *t* interval also falls short" in bad
