"""The statistics shared by the six flat-minima chapters (``experiments._gap_stats``), on small frames
with a known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sharpjac.experiments import _gap_stats as S


def _frame() -> pd.DataFrame:
    # 2 learning rates x 2 weight decays x 4 seeds; treated - control = 0.1 * (1 + lr) exactly, and
    # the sharpness ratio treated / control = 2 exactly.
    rows = []
    for lr in (0.1, 0.5):
        for wd in (0.0, 0.01):
            for s in range(4):
                base = 1.0 + s + lr
                rows.append(
                    {
                        "lr": lr,
                        "weight_decay": wd,
                        "seed": s,
                        "gap": base + (0.1 * (1 + lr) if wd else 0.0),
                        "sharpness": base * (2.0 if wd else 1.0),
                    }
                )
    return pd.DataFrame(rows)


def test_paired_effect_equals_the_mean_paired_difference():
    f = _frame()
    iv = S.paired_effect(f, "gap", {"weight_decay": 0.01}, {"weight_decay": 0.0}, pair_on=["lr", "seed"])
    # per seed the mean of 0.11 and 0.15 (the two rates), equal in every seed: a zero-width t interval
    assert (iv.estimate, iv.low, iv.high) == pytest.approx((0.13,) * 3, abs=1e-12) and iv.n == 4
    # a seed-dependent effect: the t interval over the 4 seeds' values, by hand
    g = f.assign(gap=f.gap + f.weight_decay * 10 * f.seed)  # seed s adds 0.1 s to the treated runs
    iv = S.paired_effect(g, "gap", {"weight_decay": 0.01}, {"weight_decay": 0.0}, pair_on=["lr", "seed"])
    per = 0.13 + 0.1 * np.arange(4)
    half = 3.182446305284263 * per.std(ddof=1) / 2  # t_{0.975, 3} from tables
    assert (iv.estimate, iv.low, iv.high) == pytest.approx((per.mean(), per.mean() - half, per.mean() + half))
    lg = S.paired_effect(
        f, "sharpness", {"weight_decay": 0.01}, {"weight_decay": 0.0}, pair_on=["lr", "seed"], log=True
    )
    # every pair has ratio 2: the log effect is log 2 and the interval has no width
    assert (lg.estimate, lg.low, lg.high) == pytest.approx((np.log(2),) * 3, abs=1e-12)


def test_paired_values_refuses_an_ambiguous_pairing():
    with pytest.raises(ValueError, match="several runs per"):
        S.paired_values(_frame(), "gap", {"weight_decay": 0.01}, {"weight_decay": 0.0}, pair_on=["seed"])


def test_effects_by_holds_one_column_fixed():
    t = S.effects_by(
        _frame(),
        "lr",
        {"gap": False, "sharpness": True},
        {"weight_decay": 0.01},
        {"weight_decay": 0.0},
    )
    assert list(t.columns) == ["lr", "gap", "gap_low", "gap_high", "sharpness", "sharpness_low", "sharpness_high"]
    assert t["lr"].tolist() == [0.1, 0.5]
    # within one lr every seed has the same difference: estimate and interval are that difference
    np.testing.assert_allclose(t[["gap", "gap_low", "gap_high"]].to_numpy(), [[0.11] * 3, [0.15] * 3], atol=1e-12)
    np.testing.assert_allclose(t[["sharpness", "sharpness_low", "sharpness_high"]].to_numpy(), 2.0, atol=1e-12)
    with pytest.raises(ValueError, match="by='batch'"):
        S.effects_by(_frame(), "batch", {"gap": False}, {}, {})


def test_final_measurements_keeps_the_last_step_of_each_run():
    rec = pd.DataFrame({"lr": [0.1, 0.1, 0.2, 0.2], "seed": [0, 0, 0, 0], "step": [0, 5, 0, 7], "x": [1, 2, 3, 4]})
    out = S.final_measurements(rec)
    assert out[["lr", "step", "x"]].values.tolist() == [[0.1, 5, 2], [0.2, 7, 4]]


def test_strongest_kind_choice_and_resamples():
    t = pd.DataFrame({"estimate": [0.3, -0.8, 0.5]}, index=["a", "b", "c"])
    assert S.strongest(t).name == "b"
    assert [S.predictor_kind(p) for p in ("sharpness", "jac_spectral_max", "margin")] == [
        "sharpness",
        "jacobian",
        "baseline",
    ]
    with pytest.raises(ValueError, match=r"^method='pearson'; accepted: 'spearman', 'kendall'$"):
        S.check_choice("method", "pearson", ("spearman", "kendall"))
    assert (S.n_resamples_for("smoke"), S.n_resamples_for("quick")) == (200, 2000)


def test_gap_predictors_stacks_one_table_per_gap():
    rng = np.random.default_rng(0)
    f = pd.DataFrame({"g": np.repeat([0, 1, 2, 3, 4, 5], 2), "x": np.arange(12.0), "y": rng.normal(size=12)})
    f["gap_a"] = f["x"] * 2.0  # perfectly ordered by x
    f["gap_b"] = -f["x"]  # perfectly reversed
    t = S.gap_predictors(
        f, ("gap_a", "gap_b"), ["x", "y"], "spearman", group=["g"], n_resamples=50, seed=0, control=None
    )
    assert t["gap"].tolist() == ["gap_a", "gap_a", "gap_b", "gap_b"]
    assert t.set_index(["gap", "predictor"]).loc[("gap_a", "x"), "estimate"] == pytest.approx(1.0)
    assert t.set_index(["gap", "predictor"]).loc[("gap_b", "x"), "estimate"] == pytest.approx(-1.0)


def test_intervention_effects_table_and_intervals():
    f = _frame()
    table, ivs = S.intervention_effects(
        f,
        {"decay": {"weight_decay": 0.01, "lr": 0.5}},
        {"weight_decay": 0.0, "lr": 0.5},
        {"gap": ("g", False), "sharpness": ("s", True)},
    )
    assert list(table.columns) == ["intervention", "g", "g_low", "g_high", "s", "s_low", "s_high"]
    assert table.loc[0, ["g", "g_low", "g_high"]].tolist() == pytest.approx([0.15] * 3)
    assert table.loc[0, "s"] == pytest.approx(2.0)
    assert ivs["decay"]["sharpness"].estimate == pytest.approx(np.log(2.0))  # the interval stays on the log scale
    assert S.ratio_text(ivs["decay"]["sharpness"]) == "2.000 times (95 % t interval [2.000, 2.000], 4 seeds)"


def test_comparison_words_read_the_interval():
    from sharpjac.analysis import Interval

    assert S.comparison_words(Interval(0.3, 0.1, 0.5, 0.95, 9, 10)) == "in favour of the Jacobian."
    assert S.comparison_words(Interval(-0.3, -0.5, -0.1, 0.95, 9, 10)) == "in favour of sharpness."
    assert S.comparison_words(Interval(0.1, -0.1, 0.3, 0.95, 9, 10)) == "which does not separate them."


def test_at_loss_level_reads_the_first_crossing():
    runs = pd.DataFrame(
        {
            "lr": [0.1] * 4 + [0.2] * 4,
            "seed": [0] * 8,
            "step": [3, 0, 1, 2] * 2,  # unsorted on purpose
            "train_loss": [0.5, 2.0, 1.5, 0.9, 0.1, 2.0, 1.8, 1.7],
            "x": [30.0, 0.0, 10.0, 20.0, 31.0, 1.0, 11.0, 21.0],
        }
    )
    eq = S.at_loss_level(runs, 1.0, by=["lr", "seed"], columns=("step", "x"))
    assert eq.to_dict("list") == {"lr": [0.1, 0.2], "seed": [0, 0], "step": [2.0, 3.0], "x": [20.0, 31.0]}
    assert S.loss_level_for("smoke", 0.25) == 2.0 and S.loss_level_for("paper", 0.25) == 0.25


def test_display_helpers_for_predictor_tables():
    corr = pd.DataFrame({"gap": ["gap_loss"], "predictor": ["sharpness"], "estimate": [0.5]})
    out = S.labelled(corr, {"gap_loss": "test − train loss"})
    assert out.columns.tolist() == ["gap", "predictor", "estimate"]
    assert out.loc[0, "gap"] == "test − train loss" and out.loc[0, "predictor"] != "sharpness"
    assert S.labelled(corr).loc[0, "gap"] == "gap_loss"
    labels = S.corr_labels("ρ", "")
    assert list(labels)[:3] == ["gap", "predictor", "estimate"] and labels["estimate"] == "ρ"
    assert "gap" not in S.corr_labels("ρ", gap=None)


@pytest.mark.parametrize("name", ["weight_decay", "sam_augmentation", "batch_size", "regularisers", "causal_test"])
def test_chapter_modules_export_the_names_their_chapters_use(name):
    import importlib

    mod = importlib.import_module(f"sharpjac.experiments.{name}")
    for attr in ("summarise", "evaluate", "chapter_configs", "labelled", "corr_labels", "PREDICTORS", "BASELINES"):
        assert attr in mod.__all__ and hasattr(mod, attr), attr


# -- per-seed statistics (the seed is the unit) ---------------------------------------------------


def test_seed_effects_average_the_pairs_of_each_seed():
    # per seed: mean over the two rates of 0.1 * (1 + lr) = 0.1 * (1 + 0.3) = 0.13; log ratio log 2
    f = _frame()
    d = S.seed_effects(f, "gap", {"weight_decay": 0.01}, {"weight_decay": 0.0}, pair_on=("lr", "seed"))
    assert list(d) == [0, 1, 2, 3]
    np.testing.assert_allclose(list(d.values()), 0.13, rtol=1e-12)
    r = S.seed_effects(f, "sharpness", {"weight_decay": 0.01}, {"weight_decay": 0.0}, log=True, pair_on=("lr", "seed"))
    np.testing.assert_allclose(list(r.values()), np.log(2.0), rtol=1e-12)
    with pytest.raises(ValueError, match="pair_on"):
        S.seed_effects(f, "gap", {"weight_decay": 0.01}, {"weight_decay": 0.0}, pair_on=("lr",))


def test_rank_correlation_matches_scipy_and_the_partial_formula():
    from scipy import stats

    rng = np.random.default_rng(3)
    x, y, z = rng.normal(size=(3, 12))
    x[2] = x[3]  # a tie
    assert S.rank_correlation(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    rxy, rxz, ryz = (stats.spearmanr(a, b).statistic for a, b in ((x, y), (x, z), (y, z)))
    want = (rxy - rxz * ryz) / np.sqrt((1 - rxz**2) * (1 - ryz**2))
    assert S.rank_correlation(x, y, z) == pytest.approx(want, abs=1e-12)
    x[0] = np.nan  # rows with a NaN are dropped
    assert S.rank_correlation(x, y) == pytest.approx(stats.spearmanr(x[1:], y[1:]).statistic, abs=1e-12)
    assert np.isnan(S.rank_correlation(np.ones(5), y[:5]))  # constant: undefined


def test_seed_correlations_are_one_per_seed_and_predictor():
    from scipy import stats

    rng = np.random.default_rng(0)
    f = pd.DataFrame({"seed": np.repeat([5, 6], 9), "g": rng.normal(size=18), "a": rng.normal(size=18)})
    f["t"] = rng.normal(size=18)
    t = S.seed_correlations(f, "g", ["a", "t", "absent"], control="t")
    assert list(t.index) == [5, 6] and np.isnan(t["t"]).all() and np.isnan(t["absent"]).all()
    for s in (5, 6):
        p = f[f.seed == s]
        assert t.loc[s, "a"] == pytest.approx(S.rank_correlation(p.a, p.g, p.t), abs=1e-12)
    raw = S.seed_correlations(f, "g", ["a"])
    assert raw.loc[6, "a"] == pytest.approx(stats.spearmanr(f.a[9:], f.g[9:]).statistic, abs=1e-12)


def test_jacobian_margin_is_the_partial_minus_the_strongest_rival():
    rng = np.random.default_rng(1)
    n = 9
    f = pd.DataFrame({"seed": np.repeat([0, 1], n)})
    for c in ("gap_loss", "jac_spectral_max", "sharpness", "margin", "train_loss"):
        f[c] = rng.normal(size=2 * n)
    d = S.jacobian_margin(f, "gap_loss", rivals=("sharpness", "margin", "param_norm"))  # param_norm absent
    t = S.seed_correlations(f, "gap_loss", ["jac_spectral_max", "sharpness", "margin"], control="train_loss")
    for s in (0, 1):
        want = t.loc[s, "jac_spectral_max"] - max(abs(t.loc[s, "sharpness"]), abs(t.loc[s, "margin"]))
        assert d[s] == pytest.approx(want, abs=1e-12)


def test_baselines_table_means_and_t_intervals_over_seeds():
    from scipy import stats

    rng = np.random.default_rng(2)
    f = pd.DataFrame({"seed": np.repeat(range(4), 6), "g": rng.normal(size=24), "a": rng.normal(size=24)})
    f["train_loss"] = rng.normal(size=24)
    t = S.baselines_table(f, "g", ["a"]).iloc[0]
    per = [stats.spearmanr(f.a[f.seed == s], f.g[f.seed == s]).statistic for s in range(4)]
    half = stats.t.ppf(0.975, 3) * np.std(per, ddof=1) / 2
    assert t.estimate == pytest.approx(np.mean(per)) and t.high - t.estimate == pytest.approx(half)
    assert t.n_seeds == 4


def test_simulated_frames_have_the_stated_structure():
    labels = pd.DataFrame({"lr": np.tile([0.1, 0.2, 0.4], 400), "seed": np.repeat(range(400), 3)})
    f = S.simulate_final(np.random.default_rng(0), labels, rho={"jac_spectral_max": 0.7})
    r = np.corrcoef(np.log(f.jac_spectral_max), f.gap_loss)[0, 1]
    assert abs(r - 0.7) < 0.05  # 1,200 runs: the sample r's sd is about 0.015
    g = S.simulate_final(np.random.default_rng(0), labels, effects=(("sharpness", {"lr": 0.4}, -1.0),))
    shift = np.log(g.sharpness[g.lr == 0.4]).mean() - np.log(g.sharpness[g.lr == 0.1]).mean()
    assert abs(shift + 1.0) < 0.2  # 400 runs per side: sd of the difference about 0.07


def test_seed_correlations_all_at_once_equal_one_by_one():
    # the vectorised path (every value recorded) and the pairwise path (a NaN in one column) agree
    rng = np.random.default_rng(4)
    f = pd.DataFrame(rng.normal(size=(18, 4)), columns=["g", "a", "b", "t"]).assign(seed=np.repeat([0, 1], 9))
    f.loc[0, "b"] = f.loc[1, "b"]  # a tie
    fast = S.seed_correlations(f, "g", ["a", "b"], control="t")
    f.loc[17, "a"] = np.nan  # seed 1 now takes the pairwise path
    slow = S.seed_correlations(f, "g", ["a", "b"], control="t")
    p = f[f.seed == 0]
    assert fast.loc[0, "b"] == pytest.approx(S.rank_correlation(p.b, p.g, p.t), abs=1e-12)
    assert slow.loc[0, "b"] == pytest.approx(fast.loc[0, "b"], abs=1e-12)
    assert slow.loc[1, "b"] == pytest.approx(fast.loc[1, "b"], abs=1e-12)
    q = f[f.seed == 1]
    assert slow.loc[1, "a"] == pytest.approx(S.rank_correlation(q.a, q.g, q.t), abs=1e-12)


def test_jackknife_values_of_a_mean_are_the_seed_means():
    # for the mean of all runs (equal runs per seed) the pseudo-values are the seeds' own means, whose
    # mean is the statistic itself: the values are the seed means
    f = pd.DataFrame({"seed": np.repeat([0, 1, 2, 3], 3), "x": np.arange(12.0) ** 1.5})
    v = S.jackknife_values(f, lambda d: d["x"].mean())
    want = f.groupby("seed")["x"].mean()
    np.testing.assert_allclose([v[s] for s in range(4)], want.to_numpy(), rtol=1e-12)
    assert S.jackknife_values(f[f.seed == 0], lambda d: d["x"].mean()) == {0: pytest.approx(want[0])}
    # a nonlinear statistic: centred on theta, with the spread of the pseudo-values (by hand)
    v = S.jackknife_values(f, lambda d: d["x"].max())
    theta = f.x.max()
    pseudo = np.array([4 * theta - 3 * f[f.seed != s].x.max() for s in range(4)])
    np.testing.assert_allclose(list(v.values()), theta + pseudo - pseudo.mean(), rtol=1e-12)
    assert np.mean(list(v.values())) == pytest.approx(theta)


def test_baselines_text_says_when_a_rival_wins_and_skips_thin_ones():
    def table(partials, ns):
        rows = [
            {"gap": "gap_loss", "predictor": p, "partial": v, "partial_low": v - 0.1, "partial_high": v + 0.1}
            | {"partial_n": n}
            for (p, v), n in zip(partials.items(), ns)
        ]
        return pd.DataFrame(rows)

    won = S.baselines_text(table({"jac_spectral_max": 0.8, "sharpness": -0.3, "margin": 0.5}, [5, 5, 5]))
    assert won.startswith("On the loss gap, the Jacobian has the largest") and "wins" not in won
    lost = S.baselines_text(table({"jac_spectral_max": 0.2, "sharpness": -0.6, "margin": 0.5}, [5, 5, 5]))
    assert "says more about the gap than the Jacobian" in lost and "a rival, not the Jacobian, wins" in lost
    # a margin defined in 2 seeds only does not win over a Jacobian defined in 5
    thin = S.baselines_text(table({"jac_spectral_max": 0.4, "sharpness": 0.1, "margin": 0.9}, [5, 5, 2]))
    assert "the Jacobian has the largest" in thin


@pytest.mark.parametrize(
    ("acc_shift", "want", "decides"),
    [(-0.01, "agree", "accuracy gap"), (0.0, "inconclusive", "accuracy gap"), (0.02, "disagree", "accuracy gap")],
)
def test_a_gap_claim_agrees_only_when_both_gaps_fall(acc_shift, want, decides):
    # 4 seeds x 2 arms; the loss gap falls by 0.1 (+ a seed wobble) in every seed; the accuracy gap moves
    # by acc_shift (+ a smaller wobble): both fall -> agree, flat -> inconclusive, rises -> disagree
    rows = []
    for s in range(4):
        w = 0.01 * (s - 1.5)
        for treated in (0, 1):
            rows.append(
                {
                    "arm": treated,
                    "seed": s,
                    "gap_loss": 1.0 - treated * (0.1 + w),
                    "gap_acc": 0.1 + treated * (acc_shift + w / 10) if acc_shift else 0.1 + treated * w / 10,
                }
            )
    f = pd.DataFrame(rows)
    v = S.decide("weight_decay.lowers_gap", S.Effect("gaps", {"arm": 1}, {"arm": 0}, what="t"), f)
    assert v.outcome == want and v.n_units == 4 and f"The {decides} decides" in v.evidence


def test_known_answer_of_an_effect_claim_is_honest_at_a_small_design():
    # 5 seeds, 1 pair each: false-agree is one tail of a 95 % t interval (2.5 %), power > 0
    from sharpjac.claims.known_answers import KnownAnswer, operating

    labels = pd.DataFrame({"arm": np.tile([0, 1], 5), "seed": np.repeat(range(5), 2)})
    spec = S.Effect("sharpness", {"arm": 1}, {"arm": 0}, log=True)
    cid = "weight_decay.raises_sharpness"
    entry = KnownAnswer(
        cid,
        "5 seeds",
        "",
        lambda rng: S.simulate_final(rng, labels),
        lambda rng: S.simulate_final(rng, labels, effects=(("sharpness", {"arm": 1}, 2.0),)),
        lambda d: S.decide(cid, spec, d).outcome,
    )
    oc = operating(entry, n_trials=200, seed=0)
    assert oc.false_agree <= 0.025 + 3 * np.sqrt(0.025 * 0.975 / 200)  # 3 binomial SE above the nominal tail
    assert oc.power > 0.3  # effect 2 sd / sqrt(2) per pair, 5 seeds: a noncentral t gives about 0.6
