"""The ``ansatz`` study (book chapter *The ansatz and its mediating factors*), smoke preset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from sharpjac import experiments, runs
from sharpjac.experiments.ansatz import BLIND_RUNS, AnsatzConfig, linear_model_sharpness
from sharpjac.runs import RunStore
from sharpjac.training import initial_model


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The smoke study computed once into a fresh store: (config, store, tables)."""
    store = RunStore(tmp_path_factory.mktemp("ansatz-store"))
    config = AnsatzConfig.preset("smoke")
    tables = experiments.get("ansatz").run(config, store=store, progress=False)
    return config, store, tables


def test_smoke_tables_have_the_expected_columns(study):
    config, _, t = study
    assert set(t) == {"bounds", "prop_record", "rescaling", "ce", "blind", "summary"}
    assert {
        "seed",
        "step",
        "lambda_max",
        "upper_phi",
        "upper_layers",
        "lower_phi",
        "lower_jacobian",
        "jacobian_max",
        "first_layer_norm",
        "holds",
    } <= set(t["bounds"].columns)
    assert sorted(t["bounds"]["step"]) == sorted(config.snapshot_steps)
    assert {"seed", "step", "sharpness", "gn_sharpness", "jac_spectral_max"} <= set(t["prop_record"].columns)
    assert {"seed", "layer", "alpha", "sharpness", "jac_spectral_max", "output_change"} <= set(t["rescaling"].columns)
    assert len(t["rescaling"]) == config.n_alphas
    assert {"label_smoothing", "curvature_norm", "curvature_floor", "sharpness"} <= set(t["ce"].columns)
    assert set(t["ce"]["label_smoothing"]) == {0.0, config.label_smoothing}
    assert set(t["blind"]["run"]) == set(BLIND_RUNS)
    assert list(t["summary"].columns) == [
        "seed",
        "num_classes",
        "proposition_a_holds",
        "linear_lr",
        "linear_sharpness_exact",
    ]
    # Proposition A is a theorem: it must hold at every snapshot
    assert t["bounds"]["holds"].all() and t["summary"]["proposition_a_holds"].all()


def test_second_run_trains_and_computes_nothing(study, monkeypatch):
    config, store, tables = study
    monkeypatch.setattr(runs, "train", lambda *a, **k: pytest.fail("must not train"))
    monkeypatch.setattr(AnsatzConfig, "compute", lambda *a, **k: pytest.fail("must not compute"))
    again = experiments.get("ansatz").run(config, store=store, progress=False)
    for name, df in tables.items():
        pd.testing.assert_frame_equal(df, again[name], check_exact=True)


def test_exact_gauss_newton_top_eigenvalue_matches_the_training_record(study):
    # two independent computations of lambda_max(G) at the same networks on the same data: the exact one
    # (eigvalsh of the explicit matrix, Proposition A) and the run's Lanczos estimate (gn_sharpness)
    _, _, t = study
    rec = t["prop_record"].set_index("step")
    for _, row in t["bounds"].iterrows():
        # Lanczos stops at a residual of 1e-3 (relative); the Ritz value is then far more accurate
        assert rec.loc[row.step, "gn_sharpness"] == pytest.approx(row.lambda_max, rel=1e-3)


def test_linear_model_sharpness_is_constant_and_matches_the_closed_form(study):
    _, _, t = study
    lin = t["blind"][t["blind"]["run"] == "linear model"]
    exact = float(t["summary"]["linear_sharpness_exact"].iloc[0])
    # Lanczos with relative tolerance 1e-3 on a constant Hessian
    assert lin["sharpness"].to_numpy() == pytest.approx(exact, rel=1e-3)
    assert float(t["summary"]["linear_lr"].iloc[0]) == pytest.approx(1 / exact, rel=1e-5)  # 6 significant digits


def test_linear_model_sharpness_against_autograd_hessian():
    # oracle: the Hessian of the mean squared error of f(x) = W x + b by autograd, on random data
    g = torch.Generator().manual_seed(0)
    N, n, k = 7, 4, 3
    x = torch.randn(N, n, generator=g, dtype=torch.float64)
    t = torch.randn(N, k, generator=g, dtype=torch.float64)

    def loss(theta):
        W, b = theta[: k * n].reshape(k, n), theta[k * n :]
        return ((x @ W.T + b - t) ** 2).mean()

    theta = torch.randn(k * n + k, generator=g, dtype=torch.float64)
    H = torch.autograd.functional.hessian(loss, theta)
    # eigvalsh in float64 of a 15 x 15 matrix: agreement to rounding
    assert linear_model_sharpness(x, k) == pytest.approx(float(torch.linalg.eigvalsh(H)[-1]), rel=1e-12)
    with pytest.raises(ValueError, match="num_outputs=0"):
        linear_model_sharpness(x, 0)


def test_first_layer_only_run_leaves_the_other_layers_at_initialisation(study):
    config, store, _ = study
    tc = config.blind_runs(config.seeds[0])["first layer only"]
    start, end = initial_model(tc).state_dict(), store.load_model(tc).state_dict()
    changed = {name for name in start if not torch.equal(start[name], end[name])}
    assert changed == {"1.weight", "1.bias"}, changed  # Sequential(Flatten, Linear, ReLU, ...): block 1


@pytest.mark.parametrize(
    "field, value, pattern",
    [
        ("label_smoothing", 0.0, r"AnsatzConfig\.label_smoothing=0\.0 is invalid; accepted: a float in \(0, 1\)"),
        ("rescaled_layer", 3, r"AnsatzConfig\.rescaled_layer=3 is invalid; accepted: an int in \[1, 2\]"),
        ("snapshot_steps", (0, 11), r"AnsatzConfig\.snapshot_steps=\(0, 11\) is invalid"),
        ("n_prop", 0, r"AnsatzConfig\.n_prop=0 is invalid"),
    ],
)
def test_bad_fields_give_one_line_errors(field, value, pattern):
    with pytest.raises(ValueError, match=pattern) as err:
        AnsatzConfig.from_preset("smoke", **{field: value})
    assert "\n" not in str(err.value)


def test_presets_and_runs():
    smoke, quick, paper = (AnsatzConfig.preset(p) for p in ("smoke", "quick", "paper"))
    assert smoke.steps == 10 and quick.steps == 600 and paper.steps == 2000
    assert quick.snapshot_steps == (0, 30, 100, 300, 600) and quick.lr == 0.5 and quick.dtype == "float64"
    runs_ = smoke.trains()
    assert len(runs_) == 7  # Proposition A, two cross-entropy, four blind-spot runs
    blind = smoke.blind_runs(0)
    assert [blind[n].trainable_layers for n in BLIND_RUNS] == [None, (1,), (3,), None]
    assert blind["linear model"].model == "linear"
    assert len(AnsatzConfig.from_preset("smoke", seeds=(0, 1)).trains()) == 14
    # the book's theory chapters use at least three seeds at quick (one at smoke, which must stay fast)
    assert smoke.seeds == (0,) and quick.seeds == (0, 1, 2) and paper.seeds == (0, 1, 2)
    assert len(quick.trains()) == 21


def test_chapter_claims_decided_from_the_smoke_tables(study):
    # Proposition A is a theorem: the chapter's Holds claim must agree on every snapshot of the smoke run;
    # the linear model's sharpness is constant, so its claim (spread <= 1e-3) agrees as well
    from sharpjac import claims

    _, _, t = study
    bounds = t["bounds"]
    v = claims.evaluate(
        "ansatz.proposition_a_holds",
        evidence="test",
        preset="smoke",
        seeds=1,
        violations=int((~bounds["holds"].astype(bool)).sum()),
        checks=len(bounds),
    )
    assert v.outcome == "agree"
    lin = t["blind"].query("run == 'linear model'")["sharpness"]
    spread = float((lin.max() - lin.min()) / lin.mean())
    assert claims.get("ansatz.linear_does_not_sharpen").rule.decide(value=spread) == "agree"
    ids = {c.id for c in claims.all_claims() if c.chapter == "ansatz"}
    assert len(ids) == 7 and all(i.startswith("ansatz.") for i in ids)


# ------------------------------------------------------------------------------------------------
# The chapter's statistics of the cross-entropy section, on hand-made records
# ------------------------------------------------------------------------------------------------


def _ce_run(seed, ls, curvature, sharpness, jac, floor=float("nan")):
    n = len(sharpness)
    return pd.DataFrame(
        {
            "seed": seed,
            "label_smoothing": ls,
            "step": [10 * i for i in range(n)],
            "curvature_norm": curvature,
            "sharpness": sharpness,
            "jac_spectral_max": jac,
            "train_loss": [1.0 / (i + 1) for i in range(n)],
            "curvature_floor": floor,
        }
    )


def test_saturation_signs_hand_made():
    from sharpjac.experiments import ansatz as an

    # curvature 1 -> 0.05 (< 0.1), sharpness peaks at 5 (step 20) and ends at 3, Jacobian 2 at the peak, 2.5 at the end
    sat = an.saturation(_ce_run(0, 0.0, [1.0, 0.5, 0.2, 0.05], [1.0, 4.0, 5.0, 3.0], [1.0, 1.5, 2.0, 2.5]))
    assert (sat.falls, sat.drops, sat.stays, sat.all) == (True, True, True, True)
    # curvature ends at exactly a tenth: not below; the last sharpness is the peak: no drop
    sat = an.saturation(_ce_run(0, 0.0, [1.0, 0.1], [1.0, 2.0], [1.0, 2.0]))
    assert (sat.falls, sat.drops, sat.stays, sat.all) == (False, False, True, False)
    # the Jacobian falls below its value at the sharpness peak (2.0 at step 10): stays is False
    sat = an.saturation(_ce_run(0, 0.0, [1.0, 0.01, 0.01], [1.0, 5.0, 2.0], [1.0, 2.0, 1.9]))
    assert (sat.falls, sat.drops, sat.stays) == (True, True, False)
    assert an.saturation_sentence(sat).startswith("The sharpness falls from its peak late in training, but so does")
    assert an.saturation_sentence(an.Saturation(True, True, True)).startswith("Sharpness and Jacobian part ways")
    assert an.saturation_sentence(an.Saturation(True, False, True)).startswith("In this run the sharpness does not")


def test_saturation_by_seed_keeps_and_claims():
    from sharpjac.experiments import ansatz as an

    plain0 = _ce_run(0, 0.0, [1.0, 0.5, 0.05], [1.0, 5.0, 3.0], [1.0, 2.0, 2.5])  # all three signs
    smooth0 = _ce_run(0, 0.1, [1.0, 0.6, 0.4], [1.0, 4.0, 4.0], [1.0, 2.0, 2.0], floor=0.6)  # 0.4 >= 0.3, > 0.05
    plain1 = _ce_run(1, 0.0, [1.0, 0.5, 0.5], [1.0, 5.0, 3.0], [1.0, 2.0, 2.5])  # curvature does not fall
    smooth1 = _ce_run(1, 0.1, [1.0, 0.6, 0.2], [1.0, 4.0, 4.0], [1.0, 2.0, 2.0], floor=0.6)  # 0.2 < 0.3
    ce = pd.concat([plain0, smooth0, plain1, smooth1], ignore_index=True)
    t = an.saturation_by_seed(ce, 0.1)
    assert list(t["seed"]) == [0, 1]
    assert list(t["all"]) == [True, False] and list(t["falls"]) == [True, False]
    assert list(t["keeps"]) == [True, False]
    assert an.smoothing_keeps_curvature(plain0, smooth0) and not an.smoothing_keeps_curvature(plain1, smooth1)
    numbers, markdown = an.ce_numbers(ce, seed=0, label_smoothing=0.1)
    assert numbers["an_ce_s_peak0"] == 5.0 and numbers["an_ce_s_peak_step"] == 10 and numbers["an_ce_j_peak0"] == 2.0
    assert numbers["an_ce_floor"] == 0.6 and numbers["an_ce_c_end1"] == 0.4
    assert markdown["an_ce_floor_side"] == "below" and markdown["an_ce_text"].startswith("Sharpness and Jacobian part")
    # parting: seed 0 peaks at 5 (Jacobian 2) and ends at 3 (Jacobian 2.5): log(3/5) - log(2.5/2)
    assert list(t["parting"]) == pytest.approx([np.log(3 / 5) - np.log(2.5 / 2)] * 2)
    assert list(t["keep_ratio"]) == pytest.approx([np.log(0.4 / 0.05), np.log(0.2 / 0.5)])
    v = an.evaluate_saturation(ce, label_smoothing=0.1, preset="smoke", n_seeds=2)
    sat, keep = v["ansatz.saturation_mediates"], v["ansatz.smoothing_keeps_curvature"]
    # two seeds: a t interval needs three, so both say so and are inconclusive
    assert sat.outcome == keep.outcome == "inconclusive" and "Too few seeds to decide (2)" in sat.evidence
    assert (sat.unit, sat.n_units, keep.n_units) == ("seeds", 2, 2)
    assert sat.estimate == pytest.approx(np.log(3 / 5) - np.log(2.5 / 2))
    assert "floor 0.600 in 1 of 2 seeds" in keep.evidence and "1 of 2 seeds show all three" in sat.evidence
    # a third seed like seed 0: every seed parts the same way, a zero-width interval below 0: agree
    plain2, smooth2 = plain0.assign(seed=2), smooth0.assign(seed=2)
    v3 = an.evaluate_saturation(pd.concat([ce, plain2, smooth2]), label_smoothing=0.1, preset="quick", n_seeds=3)
    assert v3["ansatz.saturation_mediates"].outcome == "agree" and v3["ansatz.saturation_mediates"].fragile is True


def test_chapter_configs_shift_the_seeds():
    exp = experiments.get("ansatz")
    (c,) = exp.configs_for("quick", 4, label_smoothing=0.3, rescaled_layer=2)
    assert c.seeds == (4, 5, 6) and c.data_seed == 4 and c.label_smoothing == 0.3 and c.rescaled_layer == 2
    assert exp.configs_for("quick", 0) == [AnsatzConfig.preset("quick")]
    assert exp.configs_for("smoke", 3)[0].seeds == (3,)


def test_per_seed_checks_hand_made():
    from sharpjac.experiments import ansatz as an

    # growth of the Jacobian 1 -> 3 over growth of sharpness 2 -> 3: 3 / 1.5 = 2
    assert an.growth_rate(pd.DataFrame({"jac_spectral_max": [1.0, 2.0, 3.0], "sharpness": [2.0, 1.0, 3.0]})) == 2.0
    bounds = pd.DataFrame(
        {
            "seed": [0, 0, 0, 1, 1, 1],
            "step": [0, 10, 20, 20, 0, 10],  # seed 1 out of order: sorted by step
            "lambda_max": [1.0, 2.0, 4.0, 3.0, 1.0, 2.0],
            "jacobian_max": [1.0, 1.5, 3.0, 1.0, 1.0, 2.0],  # seed 1: lambda rises 2 -> 3 while the Jacobian falls
        }
    )
    t = an.move_together(bounds)
    assert list(t["together"]) == [True, False]
    # seed 0: both rise twice (+1, +1); seed 1: both rise, then lambda rises while the Jacobian falls (+1, -1)
    assert list(t["concordance"]) == [1.0, 0.0]
    assert list(t["lam"]) == [4.0, 3.0] and list(t["jac"]) == [3.0, 1.0]
    resc = pd.DataFrame(
        {
            "seed": [0, 0, 1, 1],
            "sharpness": [1.0, 20.0, 1.0, 5.0],
            "output_change": [0.0, 1e-12, 0.0, 0.0],
            "jacobian_change": [0.0, 1e-9, 0.0, 0.0],
        }
    )
    r = an.rescaling_checks(resc)
    assert list(r["spread"]) == [20.0, 5.0] and list(r["ok"]) == [True, False]  # seed 1 spreads less than 10x

    def blind_run(seed, name, jac, sharp):
        return pd.DataFrame({"seed": seed, "run": name, "jac_spectral_max": jac, "sharpness": sharp})

    blind = pd.concat(
        [
            blind_run(0, "all layers", [1.0, 2.0], [1.0, 2.0]),
            blind_run(0, "first layer only", [1.0, 3.0], [1.0, 1.5]),  # rate 2
            blind_run(0, "last layer only", [1.0, 2.0], [1.0, 2.0]),  # rate 1
            blind_run(0, "linear model", [1.0, 2.0], [2.0, 2.2]),  # spread 0.2 / 2.1
        ]
    )
    b = an.blind_checks(blind)
    assert b.loc[0, "first"] == 2.0 and b.loc[0, "last"] == 1.0 and bool(b.loc[0, "ok"])
    assert b.loc[0, "margin"] == pytest.approx(np.log(2.0))  # min(log 2, log 2/1)
    assert b.loc[0, "lin_spread"] == pytest.approx(0.2 / 2.1)


def test_summarise_evaluate_and_sentences_on_the_smoke_study(study):
    from sharpjac.experiments import ansatz as an

    config, _, t = study
    summary = an.summarise(t, config, preset="smoke")
    verdicts = an.evaluate(summary)
    assert list(verdicts) == [
        "ansatz.proposition_a_holds",
        "ansatz.move_together",
        "ansatz.rescaling_mediates",
        "ansatz.saturation_mediates",
        "ansatz.smoothing_keeps_curvature",
        "ansatz.linear_does_not_sharpen",
        "ansatz.first_layer_blind_spot",
    ]
    assert verdicts["ansatz.proposition_a_holds"].outcome == "agree"  # a theorem
    assert verdicts["ansatz.linear_does_not_sharpen"].outcome == "agree"  # constant Hessian
    # every check states its tightest margin, computed from the same tables
    b = t["bounds"]
    closest = float((b["lambda_max"] / b["upper_phi"]).max())
    assert f"λ_max(G) / upper bound = {closest:.3f}" in verdicts["ansatz.proposition_a_holds"].margin
    assert closest <= 1 + 1e-12
    spread = float(summary.blind_checks["lin_spread"].max())
    assert verdicts["ansatz.linear_does_not_sharpen"].margin.startswith(f"largest relative spread = {spread:.1e}")
    assert "smallest sharpness spread" in verdicts["ansatz.rescaling_mediates"].margin
    assert summary.numbers["an_eos"] == 2 / config.lr and summary.markdown["an_holds"] == "holds"
    assert summary.numbers["an_b_lin_s"] == pytest.approx(1.0, abs=1e-6)
    words = an.verdict_sentences(summary, verdicts)
    assert words["an_bullet_prop"].startswith("Proposition A held at every snapshot")
    assert words["an_out_lin"] == "(verdict: Agree)"
    frame = an.explorer_frame(t, 0)
    assert frame["step"].min() >= 1 and "cross-entropy, smoothing 0.1" in set(frame["run"])


def test_known_answers_of_the_ansatz_claims():
    """Each empirical claim of the chapter has a known-answer simulation at the quick design (registered
    when the module is imported) whose rule keeps false-agree near or below 5 % and can agree on true data."""
    from sharpjac.claims import calibration
    from sharpjac.experiments import ansatz  # noqa: F401  (registers the known answers)

    t = calibration.table(n_trials=200, seed=1, only="ansatz")
    assert set(t["claim"]) == {
        "ansatz.move_together",
        "ansatz.saturation_mediates",
        "ansatz.smoothing_keeps_curvature",
        "ansatz.first_layer_blind_spot",
    }
    assert (t["design"] != "").all() and t["passes"].all(), t[["claim", "false_agree", "power"]].to_string()
