"""The ``t4_generalisation`` study: Theorem T4's bound for a few trained regression networks.

Oracles: a numpy brute-force nearest-neighbour assignment for the Voronoi-weighted empirical term
(recomputed from the stored network), ``scipy.stats.kendalltau`` for the rankings, and the
closed-form rate :math:`(\\log(N/\\varepsilon)/N)^{1/d}`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import kendalltau

from sharpjac import data, experiments
from sharpjac.experiments.t4_generalisation import T4GeneralisationConfig
from sharpjac.runs import RunStore
from sharpjac.theory import derive_seed

T4Config = T4GeneralisationConfig


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("t4-store"))
    cfg = T4Config.preset("smoke")
    return store, cfg, experiments.get("t4_generalisation").run(cfg, store=store)


def test_smoke_tables_and_columns(smoke):
    _, cfg, tables = smoke
    assert set(tables) == {"runs", "by_dim", "mnist", "rates"}
    runs = tables["runs"]
    assert len(runs) == len(cfg.dims) * len(cfg.run_names)
    assert {
        "seed",
        "d",
        "name",
        "lr",
        "weight_decay",
        "label_noise",
        "train_mse",
        "status",
        "test_loss",
        "empirical",
        "empirical_noisy",
        "jacobian",
        "variation",
        "target",
        "total",
        "total_noisy",
        "dominant",
        "delta",
        "jac_max",
        "local_variation",
        "sharpness",
        "trivial",
        "vacuous",
        "L_star",
        "delta_t1",
        "local_variation_t1",
        "total_t1",
        "vacuous_t1",
    } == set(runs.columns)
    assert list(tables["by_dim"].columns) == [
        "seed",
        "d",
        "delta",
        "n_runs",
        "n_vacuous",
        "best_ratio",
        "dominant",
        "holds",
        "tau_bound",
        "tau_jacobian",
        "tau_sharpness",
        "delta_t1",
        "n_vacuous_t1",
        "holds_t1",
    ]
    assert list(tables["mnist"].columns) == [
        "seed",
        "n_images",
        "d_twonn",
        "d_levina_bickel",
        "d_rate",
        "shrink_1e3_1e6",
    ]
    assert tables["mnist"]["n_images"].iloc[0] == cfg.mnist
    # sums of four floats computed in another order: equal to rounding
    np.testing.assert_allclose(
        runs["total"], runs[["empirical", "jacobian", "variation", "target"]].sum(axis=1), rtol=1e-12
    )
    assert (runs["test_loss"] <= runs["total"]).all()  # T4 on the probe's covering event
    # T1's delta(N, eps): the closed form with the generator's L_g, the same for every run of a dimension
    for d, sub in runs.groupby("d"):
        lg = cfg.lipschitz
        expected = 2 * lg * np.sqrt(d) * (np.log(cfg.n_train / cfg.epsilon) / cfg.n_train) ** (1 / d)
        np.testing.assert_allclose(sub["delta_t1"], expected, rtol=1e-12)
    # the T1 bound differs from the measured-radius bound only through delta and the local variation
    np.testing.assert_allclose(
        runs["total_t1"],
        runs["empirical"] + runs["delta_t1"] * (runs["jac_max"] + runs["local_variation_t1"] + runs["L_star"]),
        rtol=1e-12,
    )
    assert (runs["vacuous_t1"] == (runs["total_t1"] >= runs["trivial"])).all()
    assert (runs["status"] == "completed").all() and (runs["sharpness"] > 0).all()
    clean, noisy = runs[runs.label_noise == 0], runs[runs.label_noise > 0]
    assert np.array_equal(clean["empirical"], clean["empirical_noisy"])
    assert (noisy["empirical"] != noisy["empirical_noisy"]).all()


def test_empirical_term_against_brute_force_voronoi(smoke):
    store, cfg, tables = smoke
    d, run = cfg.dims[0], 0
    runs = tables["runs"]
    row = runs[(runs.d == d) & (runs.name == cfg.run_names[run])].iloc[0]
    ds = data.load("manifold", seed=cfg.data_seed, dtype=torch.float64, **cfg._data_options(d))
    probe = ds.extras["sample_support"](cfg.num_probe, seed=derive_seed(cfg.data_seed, 4)).numpy()
    x = ds.x_train.numpy()
    dist = np.sqrt(((probe[:, None, :] - x[None, :, :]) ** 2).sum(-1))  # [M, N] double loop in numpy
    weights = np.bincount(dist.argmin(1), minlength=len(x)) / len(probe)
    tc = cfg.train_config(d, run, cfg.seeds[0])
    model = store.load_model(tc, max(store.model_steps(tc)))
    with torch.no_grad():
        residual = (model(ds.x_train) - ds.y_train).abs()[:, 0].numpy()
    # the same weighted sum, accumulated in another order: equal to rounding
    assert row["empirical"] == pytest.approx(float(weights @ residual), rel=1e-10)
    assert row["delta"] == pytest.approx(dist.min(1).max(), rel=1e-12)


def test_rankings_are_kendall_tau_b(smoke):
    _, _, tables = smoke
    runs, by_dim = tables["runs"], tables["by_dim"].set_index("d")
    for d, sub in runs.groupby("d"):
        for col, tau in (("total", "tau_bound"), ("jac_max", "tau_jacobian"), ("sharpness", "tau_sharpness")):
            expected = kendalltau(sub[col], sub["test_loss"]).statistic
            assert by_dim.loc[d, tau] == pytest.approx(expected, abs=1e-12), (d, tau)


def test_rates_table_is_the_closed_form(smoke):
    _, cfg, tables = smoke
    r = tables["rates"]
    np.testing.assert_allclose(r["rate"], (np.log(r["N"] / cfg.epsilon) / r["N"]) ** (1 / r["d"]), rtol=1e-12)
    d_rate = int(tables["mnist"]["d_rate"].iloc[0])
    assert set(r["d"]) == {1, 2, d_rate}


def test_second_run_trains_and_computes_nothing(smoke, monkeypatch):
    store, cfg, first = smoke

    def fail(*a, **k):
        raise AssertionError("the stored study was trained or computed again")

    monkeypatch.setattr("sharpjac.runs.train", fail)
    monkeypatch.setattr(T4Config, "compute", fail)
    again = experiments.get("t4_generalisation").run(cfg, store=store)
    for name, df in first.items():
        pd.testing.assert_frame_equal(again[name], df)


def test_training_runs_are_the_configured_regression_runs():
    cfg = T4Config.preset("smoke")
    tcs = cfg.trains()
    assert len(tcs) == len(cfg.dims) * len(cfg.run_names)
    tc = cfg.train_config(1, 3, 0)
    assert tc.dataset == "manifold" and tc.dataset_options["task"] == "regression"
    assert tc.dataset_options["target_noise"] == 0.3 and tc.loss == "mse" and tc.optimizer == "gd"
    assert tc.momentum == 0.9 and tc.max_steps == cfg.steps and tc.dtype == "float64"
    assert cfg.train_config(1, 2, 0).weight_decay == 3e-3


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"lrs": (0.1,)}, "lrs"),
        ({"label_noises": (0.0, 0.0, 0.0, -0.3)}, "label_noises"),
        ({"momentum": 1.0}, "momentum"),
        ({"mnist": 6000}, "mnist"),
        ({"run_names": ("a", "a", "b", "c")}, "run_names"),
        ({"steps": 0}, "steps"),
    ],
)
def test_validation_names_the_field(kw, field):
    with pytest.raises(ValueError, match=rf"^T4GeneralisationConfig\.{field}=\S.*accepted: [^\n]*$"):
        T4Config.from_preset("smoke", **kw)


def test_manifold_target_noise_option():
    kw = dict(task="regression", n_train=4000, n_test=50, seed=3, dtype=torch.float64)
    clean, noisy = data.load("manifold", **kw), data.load("manifold", target_noise=0.3, **kw)
    assert torch.equal(clean.x_train, noisy.x_train) and torch.equal(clean.y_test, noisy.y_test)
    assert torch.equal(noisy.extras["y_train_clean"], clean.y_train)
    eps = (noisy.y_train - clean.y_train).flatten()
    # 4000 Gaussian draws: the sample std is within 5 % of 0.3 with overwhelming probability
    assert float(eps.std()) == pytest.approx(0.3, rel=0.05) and abs(float(eps.mean())) < 0.03
    with pytest.raises(ValueError, match="target_noise.*regression"):
        data.load("manifold", target_noise=0.1)
    with pytest.raises(ValueError, match="target_noise=-1"):
        data.load("manifold", task="regression", target_noise=-1)


# --- the chapter's mapping and statistics (issue 18) ---------------------------------------------


def test_chapter_configs_seed_block():
    exp = experiments.get("t4_generalisation")
    for preset, n in (("smoke", 1), ("quick", 3), ("paper", 3)):
        (cfg,) = exp.configs_for(preset, 0)
        assert cfg == T4Config.from_preset(preset, seeds=tuple(range(n)), data_seed=0, n_train=100)
    (cfg,) = exp.configs_for("quick", 1, n_train=60)
    assert (cfg.seeds, cfg.data_seed, cfg.n_train) == ((1, 2, 3), 1, 60)


def test_summarise_against_the_runs_table(smoke):
    import math

    from sharpjac.experiments import t4_generalisation

    _, cfg, tables = smoke
    runs = tables["runs"]
    s = t4_generalisation.summarise(tables, cfg)
    test, total, total_t1 = (runs[c].to_numpy() for c in ("test_loss", "total", "total_t1"))
    c = s.claims["t4_generalisation.bound_holds_measured"]
    assert (c["violations"], c["checks"]) == (int(np.sum(test > total)), len(runs))
    assert s.claims["t4_generalisation.bound_holds_t1"]["violations"] == int(np.sum(test > total_t1))
    ratio = runs["total"] / runs["trivial"]
    assert s.claims["t4_generalisation.bound_informative"]["value"] == pytest.approx(float(ratio.min()))
    rank = s.claims["t4_generalisation.bound_ranks_runs"]
    assert (rank["unit"], rank["n_units"]) == ("runs", len(runs))
    means = s.tables["mean"].set_index(["d", "name"])
    for (d, name), g in runs.groupby(["d", "name"]):
        assert means.loc[(d, name), "total"] == pytest.approx(g["total"].mean())
    rate = [(math.log(n / cfg.epsilon) / n) ** (1 / 2) for n in (cfg.n_train, 400)]  # T1's rate at d = 2
    assert s.values["ex1_d2"] == pytest.approx(rate[1] / rate[0])
    assert "ratio" not in tables["runs"].columns  # the study's table is left as it was
    from sharpjac.tables import LABELS

    assert all(set(s.tables[t].columns) <= set(LABELS) for t in ("mean_shown",))  # every shown column has a label


def _partial_spearman(sub):
    # oracle: the closed form on scipy's Spearman correlations
    from scipy.stats import spearmanr

    def r(a, b):
        return spearmanr(sub[a], sub[b]).statistic

    xy, xz, yz = r("jacobian", "test_loss"), r("jacobian", "train_mse"), r("test_loss", "train_mse")
    return (xy - xz * yz) / math.sqrt((1 - xz**2) * (1 - yz**2))


def test_ranking_test_finds_a_partial_association_and_holds_its_level():
    import math

    from sharpjac.experiments import t4_generalisation

    rng = np.random.default_rng(0)
    frame = t4_generalisation.simulate_runs(rng, 0.5)
    expected = np.mean([_partial_spearman(sub) for _, sub in frame.groupby("d")])
    assert t4_generalisation.ranking_test(frame)["estimate"] == pytest.approx(expected, abs=1e-10)
    # the Jacobian term drives the test loss at equal training loss: p small
    strong = t4_generalisation.simulate_runs(rng, 2.0)
    assert t4_generalisation.ranking_test(strong)["p_greater"] < 0.01
    assert t4_generalisation.ranking_outcome(strong) == "agree"
    # no association at equal training loss (the Jacobian term correlated with the training loss only)
    null = t4_generalisation.simulate_runs(rng, 0.0)
    p = [
        t4_generalisation.ranking_test(t4_generalisation.simulate_runs(rng, 0.0), seed=i)["p_greater"]
        for i in range(300)
    ]
    # a valid one-sided test: p uniform-ish; the share below 0.04 stays near 4 % (3 SE of 300 trials)
    assert np.mean(np.array(p) <= 0.04) <= 0.04 + 3 * math.sqrt(0.04 * 0.96 / 300)
    assert t4_generalisation.ranking_test(null)["min_p"] == pytest.approx(1 / 1000)
    # too few runs in a stratum: no test
    few = strong[strong.seed == 0].iloc[:3]
    assert math.isnan(t4_generalisation.ranking_test(few)["p_greater"])
