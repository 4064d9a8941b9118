"""The SAM/augmentation chapter's statistics (``experiments.sam_augmentation``) on synthetic runs with
known effects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sharpjac.experiments import sam_augmentation as SA

COLS = (
    "train_acc",
    "test_acc",
    "train_loss",
    "gap_loss",
    "gap_acc",
    "sharpness",
    "jac_spectral_max",
    "jac_spectral_mean",
    "jac_frobenius_max",
    "jac_frobenius_mean",
    "test_jac_frobenius_mean",
    "local_variation_max",
    "param_norm",
    "logit_norm",
    "margin",
)


def _runs() -> pd.DataFrame:
    """End of training, by construction: SAM at rho = 0.1 halves the sharpness and lowers the gap by
    0.05; augmentation multiplies the Jacobian statistics by 0.8 and raises the gap by 0.02."""
    rows = []
    for aug in (False, True):
        for rho in (0.0, 0.1):
            for s in range(3):
                gap = 0.3 + 0.01 * s - 0.5 * rho + (0.02 if aug else 0.0)
                jac = (2.0 + s) * (0.8 if aug else 1.0)
                end = dict.fromkeys(COLS, 1.0) | {
                    "train_loss": 0.1 * (s + 1),
                    "gap_loss": gap,
                    "gap_acc": gap / 5,
                    "sharpness": (10.0 + s) * (0.5 if rho else 1.0),
                    "jac_spectral_max": jac,
                    "jac_frobenius_mean": jac,
                    "test_jac_frobenius_mean": jac,
                    "local_variation_max": 1.0 + s,
                    "train_acc": 0.95 if aug else 1.0,
                    "margin": 1.0 + s + rho,
                }
                rows.append({"sam_rho": rho, "augment": aug, "seed": s, "step": 30, **end})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def summary():
    cfg = SA.SamAugmentationConfig.from_preset("smoke", seeds=(0, 1, 2))
    return SA.summarise(_runs(), cfg, preset="smoke", method="spearman", seed=0)


def test_effects_are_the_constructed_ones(summary):
    e = summary.effects.set_index("intervention")
    assert list(e.index) == ["SAM ρ = 0.1", "augmentation"]
    assert e.loc["SAM ρ = 0.1", ["gap", "gap_low", "gap_high"]].tolist() == pytest.approx([-0.05] * 3)
    assert e.loc["SAM ρ = 0.1", ["s", "s_low", "s_high"]].tolist() == pytest.approx([0.5] * 3)
    assert e.loc["augmentation", ["j", "j_low", "j_high"]].tolist() == pytest.approx([0.8] * 3)
    assert e.loc["augmentation", "gap"] == pytest.approx(0.02)
    assert summary.control == {"sam_rho": 0.0, "augment": False}
    assert list(summary.panel_means["sharpness"].columns) == ["augmentation off", "augmentation on"]
    assert summary.linestyles == ["-", "--"]
    assert summary.panel_means["sharpness"].loc[1, "augmentation on"] == pytest.approx(5.5)
    assert set(summary.final["augmentation"]) == {"off", "on"}
    assert "0.800 times (95 % t interval [0.800, 0.800], 3 seeds)" in summary.text["sa_ex2"]


def test_verdicts_follow_the_constructed_effects(summary):
    v = SA.evaluate(summary)
    assert list(v) == [
        "sam_augmentation.sam_lowers_sharpness",
        "sam_augmentation.sam_lowers_jacobian",
        "sam_augmentation.sam_lowers_gap",
        "sam_augmentation.augmentation_lowers_jacobian",
        "sam_augmentation.augmentation_lowers_gap",
        "sam_augmentation.jacobian_beats_baselines_loss_gap",
        "sam_augmentation.jacobian_beats_baselines_acc_gap",
    ]
    assert v["sam_augmentation.sam_lowers_sharpness"].outcome == "agree"
    assert v["sam_augmentation.sam_lowers_sharpness"].estimate == pytest.approx(np.log(0.5))
    assert v["sam_augmentation.sam_lowers_gap"].outcome == "agree"
    assert v["sam_augmentation.augmentation_lowers_jacobian"].outcome == "agree"
    # augmentation raises both gaps (by 0.02 and 0.004) in every seed: disagree, decided over 3 seeds
    g = v["sam_augmentation.augmentation_lowers_gap"]
    assert g.outcome == "disagree" and g.n_units == 3 and g.unit == "seeds"
    assert "loss gap" in g.evidence and "accuracy gap" in g.evidence


def test_without_augmentation_only_sam_is_judged():
    runs = _runs()
    runs = runs[~runs.augment]
    cfg = SA.SamAugmentationConfig.from_preset("smoke", seeds=(0, 1, 2), augments=(False,))
    s = SA.summarise(runs, cfg, preset="smoke", seed=0)
    assert list(s.effects["intervention"]) == ["SAM ρ = 0.1"]
    assert len(SA.evaluate(s)) == 5  # three on SAM, two baseline claims
    assert s.text["sa_ex2"].startswith("This preset runs no augmented grid point")
    with pytest.raises(ValueError, match="method='pearson'"):
        SA.summarise(runs, cfg, preset="smoke", method="pearson")
