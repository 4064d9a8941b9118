"""The batch-size chapter's statistics (``experiments.batch_size``) on synthetic runs with known effects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sharpjac.experiments import batch_size as B

OTHER = ("jac_spectral_mean", "jac_frobenius_max", "jac_frobenius_mean", "param_norm", "logit_norm", "margin")


def _runs() -> pd.DataFrame:
    """End of training, by construction: from batch 100 to 500 the gap rises by 0.2 (fixed epochs) or
    0.1 (fixed updates); the Jacobian falls (gap and Jacobian move apart); the local variation rises
    with the gap."""
    rows = []
    for budget, slope in (("epochs", 0.0005), ("updates", 0.00025)):
        for lr in (0.2, 0.8):
            for bs in (50, 100, 500):
                for s in range(3):
                    end = dict.fromkeys(OTHER, 1.0) | {
                        "train_acc": 1.0,
                        "test_acc": 0.8,
                        "train_loss": 0.1 + 0.01 * s,
                        "gap_loss": 0.2 + slope * bs + 0.01 * s,
                        "gap_acc": 0.2,
                        "sharpness": (1 + s) * 10 / bs,
                        "jac_spectral_max": 2 + s - 0.001 * bs,
                        "local_variation_max": 1 + 0.002 * bs,
                        "run_key": f"{budget}-{lr}-{bs}-{s}",
                    }
                    rows.append({"budget": budget, "batch_size": bs, "lr": lr, "seed": s, "step": 90, **end})
    out = pd.DataFrame(rows)
    out.attrs["variation_radius"] = 3.5
    return out


@pytest.fixture(scope="module")
def summary():
    cfg = B.BatchSizeConfig.from_preset("quick", seeds=(0, 1, 2))
    return B.summarise(_runs(), cfg, preset="smoke", method="spearman", seed=0)


def test_changes_are_the_constructed_ones(summary):
    c = summary.changes
    assert (summary.base_batch, summary.big, summary.budgets, summary.radius) == (100, 500, ["epochs", "updates"], 3.5)
    assert c[["budget", "lr"]].values.tolist() == [["epochs", 0.2], ["epochs", 0.8], ["updates", 0.2], ["updates", 0.8]]
    np.testing.assert_allclose(c["gap"], [0.2, 0.2, 0.1, 0.1], atol=1e-12)
    np.testing.assert_allclose(c["trl"], 0.0, atol=1e-12)
    np.testing.assert_allclose(c["s"], 0.2, rtol=1e-12)  # sharpness 10 (1 + s) / bs: ratio 100 / 500
    np.testing.assert_allclose(c["lv"], 2.0 / 1.2, rtol=1e-12)
    want_j = np.exp(np.mean(np.log((1.5 + np.arange(3)) / (1.9 + np.arange(3)))))
    np.testing.assert_allclose(c["j"], want_j, rtol=1e-12)
    assert (c["direction"] == "opposite").all()
    text = summary.text["bs_changes"]
    assert "in 4 of 4 (budget, step size) cases and in the same direction in 0." in text
    assert "the local variation moves the way the gap does in 4 of 4, as the paper's explanation requires." in text
    assert "0.200 at fixed epochs and 0.100 at fixed updates; so part of the batch-size effect" in text
    assert summary.panel_keys[:2] == [("epochs", "gap_loss"), ("epochs", "sharpness")]
    assert summary.panel_means[("updates", "gap_loss")].loc[500, 0.8] == pytest.approx(0.2 + 0.125 + 0.01)
    assert set(summary.final["setting"]) == {
        "fixed epochs, η = 0.2",
        "fixed epochs, η = 0.8",
        "fixed updates, η = 0.2",
        "fixed updates, η = 0.8",
    }


def test_direction_rule():
    assert B._direction({"gap_low": 0.1, "gap_high": 0.2, "j_low": 1.1, "j_high": 1.2}) == "same"
    assert B._direction({"gap_low": 0.1, "gap_high": 0.2, "j_low": 0.8, "j_high": 0.9}) == "opposite"
    assert B._direction({"gap_low": -0.1, "gap_high": 0.2, "j_low": 0.8, "j_high": 0.9}) == "unclear"


def test_verdicts(summary):
    v = B.evaluate(summary)
    assert list(v) == [
        "batch_size.jacobian_tracks_gap_fixed_epochs",
        "batch_size.jacobian_tracks_gap_fixed_updates",
        "batch_size.high_rate_exception",
        "batch_size.jacobian_beats_baselines_loss_gap",
        "batch_size.jacobian_beats_baselines_acc_gap",
    ]
    # at the high rate and fixed epochs, the gap rises and the Jacobian falls with the batch within every
    # seed: rho = -1 in each of the 3 seeds, so the exception agrees (a zero-width t interval at -1)
    e = v["batch_size.high_rate_exception"]
    assert (e.estimate, e.low, e.high, e.outcome, e.n_units) == (-1.0, -1.0, -1.0, "agree", 3)
    assert summary.exception.loc["jac_spectral_max", "estimate"] == pytest.approx(-1.0)
    assert summary.exception.loc["local_variation_max", "estimate"] == pytest.approx(1.0)
    assert summary.n_exception == 9 and summary.high_lr == 0.8
    # within a seed and budget the Jacobian (2 + s - 0.001 bs) falls with the batch while the gap rises
    # (rho = -1) and sharpness 10 (1 + s) / bs falls too (rho = -1): rho_J - |rho_s| = -2, disagree
    t = v["batch_size.jacobian_tracks_gap_fixed_epochs"]
    assert t.estimate == pytest.approx(-2.0) and t.outcome == "disagree"
    assert "in favour of sharpness" in summary.tracks["epochs"]
