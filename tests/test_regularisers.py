"""The regularisers chapter's statistics (``experiments.regularisers``) on synthetic runs with known effects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sharpjac.experiments import regularisers as R

# (regulariser, strength, change in the plain gap, sharpness factor, Jacobian factor)
SETTINGS = (
    ("baseline", 0.0, 0.0, 1.0, 1.0),
    ("label smoothing", 0.1, -0.05, 1.5, 0.5),
    ("weight decay", 0.003, -0.02, 2.0, 1.25),
    ("augmentation", 1.0, 0.03, 0.8, 0.9),
)
JAC = ("jac_spectral_max", "jac_spectral_mean", "jac_frobenius_max", "jac_frobenius_mean")


def _runs() -> pd.DataFrame:
    rows = []
    for reg, v, dgap, fs, fj in SETTINGS:
        for s in range(3):
            gap = 0.4 + 0.01 * s + dgap
            rows.append(
                {
                    "regulariser": reg,
                    "strength": v,
                    "seed": s,
                    "step": 60,
                    "gap_loss_unsmoothed": gap,
                    "gap_loss": gap,
                    "gap_acc": gap / 4,
                    "train_acc": 1.0 - 0.1 * (reg == "augmentation"),
                    "test_acc": 0.8,
                    "train_loss": 0.05 + 0.001 * s,
                    "sharpness": (20.0 + s) * fs,
                    **{c: (3.0 + s) * fj for c in JAC},
                    "param_norm": 10.0 + s,
                    "logit_norm": 4.0 + s,
                    "margin": 2.0 + s,
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def summary():
    cfg = R.RegularisersConfig.from_preset("quick", seeds=(0, 1, 2))
    return R.summarise(_runs(), cfg, preset="smoke", method="kendall", jacobian="jac_spectral_max", seed=0)


def test_effects_against_the_baseline(summary):
    e = summary.effects.set_index("config")
    assert list(e.index) == ["label smoothing 0.1", "weight decay 0.003", "augmentation"]
    assert list(summary.effects.columns[:2]) == ["config", "regulariser"]
    np.testing.assert_allclose(e[["gap", "gap_low", "gap_high"]].to_numpy().T, [[-0.05, -0.02, 0.03]] * 3, atol=1e-12)
    np.testing.assert_allclose(e["s"], [1.5, 2.0, 0.8], rtol=1e-12)
    np.testing.assert_allclose(e["j_high"], [0.5, 1.25, 0.9], rtol=1e-12)
    assert e.loc["augmentation", "train_acc"] == pytest.approx(0.9)
    # augmentation multiplies all four Jacobian statistics by exactly 0.9
    assert summary.text["rg_ex1"].count("0.90 [0.90, 0.90]") == 4
    assert summary.text["rg_method"] == "Kendall's τ_b"


def test_verdicts(summary):
    v = R.evaluate(summary)
    eff = v["regularisers.effective_lower_jacobian"]
    # two settings lower the gap (label smoothing, weight decay); only label smoothing lowers the Jacobian
    assert (eff.numbers["k"], eff.numbers["n"]) == (1, 2)
    assert "(not: weight decay 0.003)." in eff.evidence
    assert eff.outcome == "disagree" and eff.unit == "seeds" and eff.n_units == 3
    # with 3 seeds, leaving one out leaves 2: no interval, nothing effective, inconclusive: fragile
    assert eff.fragile is True
    assert list(v)[1:] == [
        "regularisers.jacobian_beats_sharpness",
        "regularisers.jacobian_beats_baselines_loss_gap",
        "regularisers.jacobian_beats_baselines_acc_gap",
    ]
    assert "plain cross-entropy" in v["regularisers.jacobian_beats_baselines_loss_gap"].evidence


def test_parameters_are_checked():
    cfg = R.RegularisersConfig.from_preset("quick", seeds=(0, 1, 2))
    with pytest.raises(ValueError, match="jacobian='jac'; accepted: 'jac_spectral_max'"):
        R.summarise(_runs(), cfg, preset="smoke", jacobian="jac")
    assert R.regulariser_words(R.RegularisersConfig.preset("quick")) == (
        "label smoothing 0.1, weight decay 0.003, SAM with ρ 0.2, augmentation, step 0.8, batch 50"
    )
