"""The weight-decay chapter's statistics (``experiments.weight_decay.summarise`` / ``evaluate``) on
synthetic runs whose answer is known by construction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sharpjac import experiments
from sharpjac.experiments import weight_decay as W


def _runs(n_seeds: int = 3) -> pd.DataFrame:
    """Two records per run (step 0 and the end); at the end, by construction:

    gap = 0.5 + 0.1 lr + 0.01 seed - 10 wd (decay lowers it by exactly 0.1 at wd = 0.01),
    sharpness = (1 + lr) exp(20 wd) (decay multiplies it by exactly e^0.2),
    max ||Jf|| = 3 gap + 1 (it orders the runs exactly as the gap).
    """
    rows = []
    for lr in (0.2, 0.8):
        for wd in (0.0, 0.01):
            for s in range(n_seeds):
                gap = 0.5 + 0.1 * lr + 0.01 * s - 10 * wd
                end = {
                    "train_acc": 0.9,
                    "test_acc": 0.9 - gap / 10,
                    "train_loss": 0.2 + 0.01 * s,
                    "gap_loss": gap,
                    "gap_acc": gap / 10,
                    "sharpness": (1 + lr) * np.exp(20 * wd),
                    "jac_spectral_max": 3 * gap + 1,
                    "jac_spectral_mean": gap + 1,
                    "jac_frobenius_max": 4 * gap + 1,
                    "jac_frobenius_mean": 2 * gap + 1,
                    "param_norm": 10 - 100 * wd + s,
                    "logit_norm": 5 + s - lr,
                    "margin": 2 + s,
                    "first_layer_norm": 2 - 50 * wd,
                    "curvature_norm": 1 + 30 * wd,
                }
                start = {k: np.nan for k in end}
                rows.append({"lr": lr, "weight_decay": wd, "seed": s, "step": 0, **start})
                rows.append({"lr": lr, "weight_decay": wd, "seed": s, "step": 40, **end})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def summary():
    cfg = W.WeightDecayConfig.from_preset("smoke", seeds=(0, 1, 2), weight_decays=(0.0, 0.01), lrs=(0.2, 0.8))
    return W.summarise(_runs(), cfg, preset="smoke", method="spearman", gap="gap_loss", seed=0)


def test_summary_effects_are_the_constructed_ones(summary):
    assert summary.lrs == [0.2, 0.8] and summary.weight_decays == [0.0, 0.01] and len(summary.final) == 12
    w = summary.within
    np.testing.assert_allclose(w[["gap_change", "gap_low", "gap_high"]].to_numpy(), -0.1, atol=1e-12)
    np.testing.assert_allclose(w[["s_ratio", "s_low", "s_high"]].to_numpy(), np.exp(0.2), rtol=1e-12)
    # the Jacobian ratio is the geometric mean over seeds of the per-seed ratios
    gaps = 0.5 + 0.1 * np.array([[0.2], [0.8]]) + 0.01 * np.arange(3)
    want = np.exp(np.log((3 * (gaps - 0.1) + 1) / (3 * gaps + 1)).mean(axis=1))
    np.testing.assert_allclose(w["j_ratio"].to_numpy(), want, rtol=1e-12)
    assert (summary.n_gap_down, summary.n_sharp_up, summary.n_jac_down) == (2, 2, 2)
    # point means: one row per grid point, the mean over the three seeds (seed term 0.01 * mean(0, 1, 2))
    pm = summary.point_means.set_index(["lr", "weight_decay"])
    assert pm.loc[(0.8, 0.0), "gap_loss"] == pytest.approx(0.5 + 0.08 + 0.01)
    assert summary.panel_means["sharpness"].loc[1, 0.8] == pytest.approx(1.8 * np.exp(0.2))
    # the Jacobian is a monotone function of the gap: rank correlation exactly 1
    assert summary.main_corr.loc["jac_spectral_max", "estimate"] == pytest.approx(1.0)
    assert summary.acc_span == pytest.approx(100 * (0.59 + 0.02 - 0.43) / 10)


def test_summary_sentences_and_verdicts(summary):
    assert (
        "at 2 of 2 step sizes; the sharpness is larger at 2 of them, and the Jacobian smaller at 2 of them."
        in (summary.text["wd_within"])
    )
    assert "(at the other step sizes" not in summary.text["wd_within"]
    assert "falls at 2 of 2 step sizes" in summary.text["wd_ex3"]  # first layer 2 - 50 wd falls
    assert "rises at 2 of 2" in summary.text["wd_ex3"]  # curvature 1 + 30 wd rises
    v = W.evaluate(summary)
    # per seed the sharpness ratio is exactly e^0.2 and both gaps fall (by 0.1 and 0.01) in every seed
    assert v["weight_decay.raises_sharpness"].outcome == "agree"
    assert v["weight_decay.raises_sharpness"].estimate == pytest.approx(0.2)
    assert v["weight_decay.lowers_gap"].outcome == "agree" and v["weight_decay.lowers_gap"].n_units == 3
    # the accuracy gap (the smaller fall, closer to 0) decides
    assert v["weight_decay.lowers_gap"].estimate == pytest.approx(-0.01)
    # the Jacobian is a monotone function of the gap within every seed: rho = 1. By hand, the gap ranks the
    # points (lr, wd) = (.2, 0), (.2, .01), (.8, 0), (.8, .01) as 3, 1, 4, 2 and the sharpness as 1, 2, 3, 4:
    # sum d^2 = 10, rho = 1 - 6 * 10 / (4 * 15) = 0, so d = 1 - |0| = 1
    assert v["weight_decay.jacobian_tracks_gap"].estimate == pytest.approx(1.0)
    assert v["weight_decay.jacobian_tracks_gap"].outcome == "agree"
    assert set(v) == set(W.claim_specs((0.0, 0.01)))


def test_baselines_table_and_sentence(summary):
    b = summary.baselines.set_index(["gap", "predictor"])
    assert b.loc[("gap_loss", "jac_spectral_max"), "estimate"] == pytest.approx(1.0)
    assert b.loc[("gap_loss", "sharpness"), "estimate"] == pytest.approx(0.0, abs=1e-12)
    # the margin (2 + seed) is constant within a seed: no correlation, no seed counted
    assert (b["n_seeds"].drop(index="margin", level="predictor") == 3).all() and (
        b.xs("margin", level=1).n_seeds == 0
    ).all()
    # with the training loss constant within a seed the partial correlation is the plain one:
    # the Jacobian (rho 1) is the strongest on both gaps
    assert "the Jacobian has the largest mean partial correlation" in summary.text["wd_baselines"]
    assert "wins" not in summary.text["wd_baselines"]


def test_parameters_are_checked():
    cfg = W.WeightDecayConfig.preset("smoke")
    with pytest.raises(ValueError, match="method='pearson'; accepted"):
        W.summarise(_runs(), cfg, preset="smoke", method="pearson")
    with pytest.raises(ValueError, match="gap='gap'; accepted: 'gap_loss', 'gap_acc'"):
        W.summarise(_runs(), cfg, preset="smoke", gap="gap")


def test_chapter_configs_are_the_mapping():
    (cfg,) = experiments.get("weight_decay").configs_for("quick", 2, n_seeds=2)
    assert cfg.seeds == (2, 3) and cfg.data_seed == 2 and isinstance(cfg, W.WeightDecayConfig)
