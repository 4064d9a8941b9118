"""The ``conjugate_matrix`` study (book chapter *The conjugate matrix*), smoke preset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from sharpjac import data, experiments, models, runs
from sharpjac.experiments import conjugate_matrix
from sharpjac.experiments.conjugate_matrix import ConjugateMatrixConfig
from sharpjac.runs import RunStore


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The smoke study computed once into a fresh store: (config, store, tables)."""
    store = RunStore(tmp_path_factory.mktemp("conjugate-store"))
    config = ConjugateMatrixConfig.preset("smoke")
    tables = experiments.get("conjugate_matrix").run(config, store=store, progress=False)
    return config, store, tables


def test_smoke_tables_have_the_expected_columns(study):
    config, _, t = study
    assert set(t) == {"comparison", "spectra", "shares", "rescaling", "summary"}
    assert list(t["comparison"].columns) == [
        "seed",
        "loss",
        "num_params",
        "n_points",
        "nk",
        "rank",
        "zero_eigenvalues_g",
        "max_abs_diff",
        "max_rel_diff",
        "lambda_max",
        "trace_g",
        "trace_k",
    ]
    assert set(t["comparison"]["loss"]) == {"ce", "mse"}
    assert list(t["spectra"].columns) == ["seed", "loss", "index", "eigenvalue_g", "eigenvalue_k"]
    assert list(t["shares"].columns) == ["seed", "loss", "label", "value", "layer_1", "layer_2", "layer_3"]
    assert list(t["shares"]["label"]) == [f"lambda_{j}" for j in range(1, config.top + 1)] + ["trace"]
    assert {"scale", "output_change", "jac_spectral_max", "lambda_max", "lambda_max_layer1", "lambda_max_later"} <= set(
        t["rescaling"].columns
    )
    assert len(t["rescaling"]) == config.n_scales
    assert list(t["summary"].columns) == [
        "seed",
        "loss",
        "num_params",
        "num_classes",
        "n_layers",
        "first_layer_diff",
        "first_layer_scale",
    ]


def test_share_bars_stack_by_hand():
    """A 2-bar, 2-layer table, stacked by hand: bottoms are the sums of the layers below."""
    shares = pd.DataFrame({"label": ["lambda_1", "trace"], "layer_1": [0.25, 0.5], "layer_2": [0.75, 0.5]})
    bars = conjugate_matrix.share_bars(shares)
    assert list(bars["position"]) == [0, 1, 0, 1]
    assert list(bars["layer"]) == [1, 1, 2, 2]
    assert list(bars["share"]) == [0.25, 0.5, 0.75, 0.5]
    assert list(bars["bottom"]) == [0.0, 0.0, 0.25, 0.5]


def test_second_run_computes_nothing(study, monkeypatch):
    config, store, tables = study
    monkeypatch.setattr(runs, "train", lambda *a, **k: pytest.fail("must not train"))
    monkeypatch.setattr(ConjugateMatrixConfig, "compute", lambda *a, **k: pytest.fail("must not compute"))
    again = experiments.get("conjugate_matrix").run(config, store=store, progress=False)
    for name, df in tables.items():
        pd.testing.assert_frame_equal(df, again[name], check_exact=True)
    assert config.trains() == []  # the study trains nothing


def test_identity_and_structure(study):
    config, _, t = study
    cmp = t["comparison"].set_index("loss")
    # G and K are built by different code from different factors: agreement to float64 rounding
    assert (cmp["max_abs_diff"] < 1e-10).all()
    assert np.allclose(cmp["trace_g"], cmp["trace_k"], rtol=1e-12, atol=0)  # rounding of a sum of ~100 terms
    # cross-entropy curvature annihilates the all-ones vector: rank K <= N (k - 1)
    assert cmp.loc["ce", "rank"] <= config.n_points * 9
    shares = t["shares"][["layer_1", "layer_2", "layer_3"]].to_numpy()
    assert (shares >= -1e-12).all() and np.allclose(shares.sum(1), 1, atol=1e-10)  # PSD terms, rounding only
    s = t["summary"].iloc[0]
    assert s.first_layer_diff < 1e-10 * max(1.0, s.first_layer_scale)
    assert (t["rescaling"]["output_change"] < 1e-10).all()  # the same function in rescaled coordinates


def test_mse_lambda_max_against_autograd_jacobians(study):
    # oracle: for C_i = (2/k) I, lambda_max(G) = 2/(N k) * sigma_max(Phi)^2 with Phi the [N k, P] stack of
    # per-sample parameter Jacobians, here by torch.autograd.functional.jacobian
    config, _, t = study
    ds = data.load("digits", seed=config.data_seed, n_train=config.n_points, n_test=config.n_test, dtype=torch.float64)
    model = models.MLP(
        input_shape=ds.input_shape,
        widths=config.widths,
        num_classes=ds.num_classes,
        activation=config.activation,
        seed=config.seeds[0],
    ).double()
    names = [n for n, _ in model.named_parameters()]
    params = tuple(p.detach() for p in model.parameters())

    def out(*ps):
        return torch.func.functional_call(model, dict(zip(names, ps)), (ds.x_train,)).reshape(-1)

    Phi = torch.cat([j.reshape(j.shape[0], -1) for j in torch.autograd.functional.jacobian(out, params)], dim=1)
    N, k = config.n_points, int(ds.num_classes)
    expected = 2.0 / (N * k) * float(torch.linalg.matrix_norm(Phi, ord=2)) ** 2
    got = float(t["comparison"].set_index("loss").loc["mse", "lambda_max"])
    assert got == pytest.approx(expected, rel=1e-10)  # float64 SVD against eigvalsh: rounding only


@pytest.mark.parametrize(
    "field, value, pattern",
    [
        ("loss", "hinge", r"ConjugateMatrixConfig\.loss='hinge' is invalid; accepted: one of \('mse', 'ce'\)"),
        ("activation", "swish", r"ConjugateMatrixConfig\.activation='swish' is invalid; accepted: one of"),
        ("top", 1000, r"ConjugateMatrixConfig\.top=1000 is invalid"),
        ("n_scales", 0, r"ConjugateMatrixConfig\.n_scales=0 is invalid"),
    ],
)
def test_bad_fields_give_one_line_errors(field, value, pattern):
    with pytest.raises(ValueError, match=pattern) as err:
        ConjugateMatrixConfig.from_preset("smoke", **{field: value})
    assert "\n" not in str(err.value)


def test_presets_carry_the_chapter_sizes():
    assert [
        (
            ConjugateMatrixConfig.preset(p).n_points,
            ConjugateMatrixConfig.preset(p).widths,
            ConjugateMatrixConfig.preset(p).n_scales,
        )
        for p in ("smoke", "quick", "paper")
    ] == [(12, (8, 8), 7), (40, (20, 20), 13), (50, (32, 32), 13)]


def test_chapter_claims_decided_from_the_smoke_tables(study):
    # the chapter's two claims, decided from the study's own numbers: the identity holds to float64 rounding
    # (~1e-15), far inside the claim's 1e-8, and a perturbed spectrum (1e-6) is rejected by the same rule
    from sharpjac import claims

    _, _, t = study
    ids = {c.id for c in claims.all_claims() if c.chapter == "conjugate_matrix"}
    assert ids == {"conjugate_matrix.equal_spectra", "conjugate_matrix.first_layer_absent"}
    worst = float(t["comparison"]["max_rel_diff"].max())
    v = claims.evaluate("conjugate_matrix.equal_spectra", evidence="test", preset="smoke", seeds=1, value=worst)
    assert v.outcome == "agree"
    assert claims.get("conjugate_matrix.equal_spectra").rule.decide(value=1e-6) == "disagree"
    resc = t["rescaling"]
    jc = resc["jac_spectral_max"] * resc["scale"]
    # the blind-spot checks of the chapter: c * max|Jf_c(c x)| is constant, the later layers' term too
    assert float(jc.max() - jc.min()) <= 1e-8 * float(jc.mean())
    later = resc["lambda_max_later"]
    assert float(later.max() - later.min()) <= 1e-8 * float(later.mean())


# --- the chapter's mapping and statistics (issue 18) ---------------------------------------------


def test_chapter_configs_one_initialisation():
    exp = experiments.get("conjugate_matrix")
    (cfg,) = exp.configs_for("quick", 0)
    assert cfg == ConjugateMatrixConfig.from_preset("quick", seeds=(0,), data_seed=0, activation="tanh", loss="ce")
    (cfg,) = exp.configs_for("smoke", 3, activation="relu", loss="mse")
    assert (cfg.seeds, cfg.data_seed, cfg.activation, cfg.loss) == ((3,), 3, "relu", "mse")


def test_summarise_checks_and_tables(study):

    config, _, tables = study
    s = conjugate_matrix.summarise(tables, config)
    c = s.claims["conjugate_matrix.equal_spectra"]
    assert c["value"] == pytest.approx(float(tables["comparison"]["max_rel_diff"].max()))
    # float64 at a tiny model: the five checks of the first-layer claim all pass (tolerance 1e-8 relative)
    c = s.claims["conjugate_matrix.first_layer_absent"]
    assert (c["violations"], c["checks"]) == (0, 5)
    resc = s.tables["rescaling"]
    assert np.allclose(resc["jac_times_c"], resc["jac_spectral_max"] * resc["scale"])
    pos = s.tables["positive"]
    assert (pos["loss"] == config.loss).all() and (pos["eigenvalue_k"] > 0).all()
    assert (s.tables["differences"]["difference"] >= 1e-20).all()
    from sharpjac.tables import LABELS

    assert all(set(s.tables[t].columns) <= set(LABELS) for t in ("comparison",))  # every shown column has a label
    L = s.series["n_layers"]
    bars = s.series["share_bars"]
    assert sorted(bars["layer"].unique()) == list(range(1, L + 1)) and len(bars) == L * len(tables["shares"])
    first, top = bars[bars["layer"] == 1], bars[bars["layer"] == L]
    assert np.allclose(first["bottom"], 0)  # the first layer's segment starts at 0
    # each bar's top segment ends at the sum of that bar's shares
    assert np.allclose(top["bottom"] + top["share"], tables["shares"][[f"layer_{k}" for k in range(1, L + 1)]].sum(1))
    assert s.series["share_labels"][0] == "$\\lambda_{1}$" and s.series["share_labels"][-1] == "trace"
    shares = tables["shares"]
    assert s.values["cm_share_top_1"] == pytest.approx(100 * float(shares.iloc[0]["layer_1"]))
    assert sum(s.values[f"cm_share_tr_{layer}"] for layer in range(1, L + 1)) == pytest.approx(100, rel=1e-6)
    verdicts = conjugate_matrix.evaluate(s, "smoke")
    assert verdicts["conjugate_matrix.first_layer_absent"].outcome == "agree"
