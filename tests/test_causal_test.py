"""The causal-test chapter's statistics (``experiments.causal_test``) on synthetic runs with known effects."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from sharpjac.experiments import causal_test as C

OTHER = (
    "train_acc",
    "jac_spectral_mean",
    "jac_frobenius_max",
    "param_norm",
    "logit_norm",
    "margin",
)


def _runs() -> pd.DataFrame:
    """Steps 0..4. The penalty (0.1) halves the Jacobian at every step, lowers the final gap by 0.02, and
    trains more slowly: loss 2 - 0.4 k without, 2 - 0.3 k with it. Sharpness 5 + k (+ 1 with the
    penalty): larger with the penalty at the end (10 against 9) and where the loss first reaches 1.0
    (k = 4 with, k = 3 without the penalty: 10 against 8)."""
    rows = []
    for pen in (0.0, 0.1):
        for s in range(3):
            for k in range(5):
                rows.append(
                    {
                        "jacobian_penalty": pen,
                        "seed": s,
                        "step": k,
                        **dict.fromkeys(OTHER, 1.0),
                        "train_loss": 2 - (0.3 if pen else 0.4) * k,
                        "gap_loss": 0.1 + 0.01 * k + 0.001 * s - (0.02 if pen and k == 4 else 0.0),
                        "sharpness": 5.0 + k + (1.0 if pen else 0.0) + 0.01 * s,
                        "jac_frobenius_mean": (2.0 + k + s) * (0.5 if pen else 1.0),
                        "jac_spectral_max": 2.0 + k,
                        "gap_acc": 0.05 + 0.001 * s - (0.01 if pen else 0.0),
                        "test_acc": 0.8 + 0.001 * s + (0.01 if pen else 0.0),
                        "curvature_norm": 1.0 + 0.1 * k,
                    }
                )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def summary():
    cfg = C.CausalTestConfig.from_preset("quick", seeds=(0, 1, 2), penalties=(0.0, 0.1))
    return C.summarise(_runs(), cfg, preset="quick", loss_level=1.0, seed=0)


def test_effects(summary):
    assert (summary.lo, summary.hi) == (0.0, 0.1)
    assert (summary.jac_effect.estimate, summary.jac_effect.low) == pytest.approx((np.log(0.5), np.log(0.5)))
    assert summary.gap_effect.estimate == pytest.approx(-0.02)
    want_s = np.mean(np.log((10.0 + 0.01 * np.arange(3)) / (9.0 + 0.01 * np.arange(3))))
    assert summary.sharp_effect.estimate == pytest.approx(want_s)
    eq = summary.at_level.set_index(["jacobian_penalty", "seed"])
    # the loss first reaches 1.0 at k = 3 (2 - 1.2 = 0.8) without and k = 4 (0.8) with the penalty
    assert eq.loc[(0.0, 0), "step"] == 3 and eq.loc[(0.1, 0), "step"] == 4
    want_eq = np.mean(np.log((10.0 + 0.01 * np.arange(3)) / (8.0 + 0.01 * np.arange(3))))
    assert summary.level_effect.estimate == pytest.approx(want_eq) and summary.n_level == 3
    assert summary.means.loc[0.1, "s_per_c"] == pytest.approx(np.mean((10.0 + 0.01 * np.arange(3)) / 1.4))
    assert list(summary.curves["sharpness"].columns) == [0.0, 0.1]
    assert summary.curves["sharpness"].loc[2, 0.1] == pytest.approx(8.0)  # seed 0 only
    assert summary.points["pen_index"].tolist()[:3] == [0, 0, 0]


def test_verdicts_and_conclusion(summary):
    v = C.evaluate(summary)
    assert v["causal_test.penalty_lowers_jacobian"].outcome == "agree"
    # at the level (k = 4 with, k = 3 without): loss gap 0.12 against 0.13, accuracy gap 0.01 lower: both fall
    g = v["causal_test.penalty_lowers_gap"]
    assert g.outcome == "agree" and g.n_units == 3
    assert g.estimate == pytest.approx(-0.01)  # both fall by 0.01; the one closer to 0 decides
    assert v["causal_test.penalty_raises_test_accuracy"].outcome == "agree"
    assert v["causal_test.penalty_raises_test_accuracy"].estimate == pytest.approx(0.01)
    assert v["causal_test.penalty_lowers_sharpness"].outcome == "disagree"
    assert v["causal_test.sharpness_at_equal_loss"].outcome == "disagree"
    text = C.conclusion(summary, v)
    assert text.startswith("The Jacobian-to-generalisation link (T4) passes this direct test")
    assert "at equal training loss, lowering the Jacobian lowered both gaps" in text
    assert "The penalty also raised the test accuracy" in text
    assert "is not confirmed at the end of training nor at equal training loss" in text


@pytest.mark.parametrize(
    ("end", "eq", "want"),
    [
        ("agree", "disagree", "holds at the end of training: sharpness fell with it."),
        ("disagree", "agree", "fails at the end of training but holds at equal training loss."),
        ("inconclusive", "agree", "is not confirmed at the end of training but holds at equal training loss."),
    ],
)
def test_conclusion_branches(summary, end, eq, want):
    outcomes = {
        "causal_test.penalty_lowers_jacobian": "agree",
        "causal_test.penalty_lowers_gap": "inconclusive",
        "causal_test.penalty_lowers_sharpness": end,
        "causal_test.sharpness_at_equal_loss": eq,
    }
    text = C.conclusion(summary, {k: SimpleNamespace(outcome=o) for k, o in outcomes.items()})
    assert "is not confirmed by this test" in text and want in text
    if eq == "agree" and end != "agree":
        # penalised runs end with a larger loss (0.8 against 0.4) and the same curvature (1.4)
        assert "a larger training loss (0.800 against 0.400) and a smaller output curvature" in text
