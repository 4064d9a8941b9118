"""The ``t3_low_loss`` study and :func:`t3_track`: tables, reuse of the store, validation, oracles.

Oracles: the largest per-sample cross-entropy recomputed from the kept network, the closed form
:func:`sharpjac.theory.t3_ce_bound` (itself tested on a linear model), the residual radius
:math:`\\rho=\\max_i\\|f(x_i)-e_{y_i}\\|` by hand, and the path inequality of T3 (the measured supremum
on a fine path lies above the bound).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from sharpjac import data, experiments, losses, runs, theory
from sharpjac.experiments.base import trained_run
from sharpjac.experiments.t3_low_loss import T3Config, t3_track
from sharpjac.runs import RunStore
from sharpjac.training import TrainConfig

NAME = "t3_low_loss"
TINY = dict(n_train=30, widths=(8,), steps=20, snapshots=(0, 20), num_pairs=4, chord_points=50)


@pytest.fixture(scope="module")
def computed(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("store"))
    cfg = T3Config.from_preset("smoke", **TINY)
    return store, cfg, experiments.get(NAME).run(cfg, store=store, progress=False)


def test_presets_are_the_chapter_settings():
    smoke, quick = (experiments.get(NAME).preset(p) for p in ("smoke", "quick"))
    assert (smoke.n_train, smoke.widths, smoke.steps, smoke.snapshots) == (60, (16,), 60, (0, 20, 60))
    assert (quick.n_train, quick.steps, quick.num_pairs, quick.snapshots[-1]) == (100, 4000, 10, 4000)
    tcs = {(lab["labels"], lab["loss"]): tc for lab, tc in quick.runs()}
    assert len(tcs) == 4 and tcs[("true", "mse")].lr == 0.2 and tcs[("random", "ce")].lr == 0.1
    assert tcs[("random", "ce")].dataset_options["label_noise"] == 0.5
    assert all(tc.optimizer == "gd" and tc.momentum == 0.9 and tc.dtype == "float64" for tc in tcs.values())


def test_tables_and_columns(computed):
    _, cfg, tables = computed
    assert set(tables) == {"track", "chords", "diverged"}
    assert tables["diverged"].empty and list(tables["diverged"].columns) == ["seed", "labels", "loss", "stopped_at"]
    t = tables["track"]
    assert list(t.columns[:4]) == ["seed", "labels", "loss", "step"]
    for col in (
        "train_loss",
        "train_acc",
        "rho",
        "eta",
        "bound_path",
        "path_sup",
        "path_margin",
        "path_length",
        "sample_max",
        "sample_mean",
        "local_variation",
        "bound_theorem",
    ):
        assert col in t.columns, col
    assert len(t) == 4 * 2 and set(t["labels"]) == {"true", "random"} and set(t["loss"]) == {"mse", "ce"}
    assert t.loc[t["loss"] == "mse", "eta"].isna().all() and t.loc[t["loss"] == "ce", "rho"].isna().all()
    assert np.allclose(t["bound_theorem"], t["bound_path"] - t["local_variation"])
    assert (t["in_regime"] == (t["bound_path"] > 0)).all()
    assert ((0 <= t["n_violations"]) & (t["n_violations"] <= t["n_checked"]) & (t["n_checked"] <= cfg.num_pairs)).all()
    # a violation is a positive bound above the measured supremum, so there is none where the margin is >= 0
    assert (t.loc[t["path_margin"] >= 0, "n_violations"] == 0).all()
    c = tables["chords"]
    assert list(c.columns) == ["euclidean_distance", "path_length", "ratio"] and len(c) == cfg.num_pairs
    # a path between two points is at least as long as the straight segment (rounding only)
    assert (c["ratio"] >= 1 - 1e-12).all() and (np.diff(c["euclidean_distance"]) >= 0).all()


def test_numbers_match_the_kept_networks(computed):
    store, cfg, tables = computed
    t = tables["track"].set_index(["labels", "loss", "step"])
    for lab, tc in cfg.runs():
        model = trained_run(tc, store=store).models[cfg.steps]
        ds = data.load("manifold", seed=cfg.data_seed, dtype=torch.float64, **cfg.dataset_options(lab["labels"]))
        row = t.loc[(lab["labels"], lab["loss"], cfg.steps)]
        with torch.no_grad():
            out = model(ds.x_train)
        if lab["loss"] == "ce":
            eta = float(losses.get_loss("ce", reduction="none")(out, ds.y_train).max())
            assert row["eta"] == pytest.approx(eta, rel=1e-12)  # float64, same operations
            assert row["bound_path"] == pytest.approx(float(theory.t3_ce_bound(eta, row["path_length"])), rel=1e-10)
        else:
            onehot = torch.nn.functional.one_hot(ds.y_train, 2).double()
            rho = float((out - onehot).norm(dim=1).max())
            assert row["rho"] == pytest.approx(rho, rel=1e-12)
            assert row["bound_path"] == pytest.approx((math.sqrt(2) - 2 * rho) / row["path_length"], rel=1e-10)


def test_t3_track_path_inequality_and_columns():
    # moved from the tests of sharpjac.theory; trained in memory through the one training loop
    tc = TrainConfig(
        dataset="manifold",
        dataset_options=dict(d=2, n=6, lipschitz=30.0, n_train=40, n_test=1),
        data_seed=1,
        model="mlp",
        model_options={"widths": [12], "activation": "tanh"},
        loss="ce",
        optimizer="gd",
        lr=0.1,
        momentum=0.9,
        max_steps=40,
        snapshot_steps=(0,),
        sharpness_subset=0,
        jacobian_subset=0,
        seed=1,
        dtype="float64",
        device="cpu",
    )
    run = trained_run(tc, store=False)
    ds = data.load("manifold", seed=1, d=2, n=6, lipschitz=30.0, n_train=40, n_test=1, dtype=torch.float64)
    df = t3_track(
        run.models,
        ds.x_train,
        ds.y_train,
        ds.extras["latent_train"],
        ds.extras["generator"],
        loss="ce",
        num_pairs=4,
        path_points=400,
        lv_samples=4,
        lv_ascent_steps=0,
    )
    assert list(df["step"]) == [0, 40]
    # the measured sup on each path is at least the bound (up to the path discretisation)
    assert (df["path_margin"] >= -1e-6 * df["path_sup"]).all()
    assert np.allclose(df["bound_theorem"], df["bound_path"] - df["local_variation"])
    with torch.no_grad():
        eta = float(losses.get_loss("ce", reduction="none")(run.final(ds.x_train), ds.y_train).max())
    assert df["eta"].iloc[-1] == pytest.approx(eta)
    assert df["bound_path"].iloc[-1] == pytest.approx(
        float(theory.t3_ce_bound(eta, df["path_length"].iloc[-1])), rel=1e-10
    )
    with pytest.raises(ValueError, match="loss='hinge' is invalid"):
        t3_track(run.models, ds.x_train, ds.y_train, ds.extras["latent_train"], ds.extras["generator"], loss="hinge")


def test_second_run_trains_and_computes_nothing(computed, monkeypatch):
    store, cfg, tables = computed
    monkeypatch.setattr(runs, "train", lambda *a, **k: pytest.fail("must reuse the stored runs"))
    monkeypatch.setattr(T3Config, "compute", lambda *a, **k: pytest.fail("must reuse the study"))
    again = experiments.get(NAME).run(cfg, store=store, progress=False)
    for name, df in tables.items():
        assert again[name].equals(df), name


@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(num_pairs=0), "num_pairs"),
        (dict(lr_ce=-0.1), "lr_ce"),
        (dict(snapshots=(0, 61)), "snapshots"),
        (dict(chord_points=1), "chord_points"),
    ],
)
def test_validation_names_the_field(kw, field):
    with pytest.raises(ValueError) as e:
        T3Config.from_preset("smoke", **kw)
    msg = str(e.value)
    assert f"T3Config.{field}=" in msg and "accepted" in msg and "\n" not in msg


def test_a_diverged_run_is_listed_and_left_out(tmp_path):
    """A step size far beyond 2/sharpness makes the squared-error runs diverge at once; the study still
    completes, lists them in ``diverged`` and checks only the cross-entropy runs."""
    store = RunStore(tmp_path)
    cfg = T3Config.from_preset("smoke", **{**TINY, "lr_mse": 1e4})
    with pytest.warns(RuntimeWarning, match="diverged"):
        tables = experiments.get(NAME).run(cfg, store=store, progress=False)
    diverged = tables["diverged"]
    assert sorted(diverged["loss"]) == ["mse", "mse"] and set(diverged["labels"]) == {"true", "random"}
    assert (diverged["stopped_at"] < cfg.snapshots[-1]).all()
    assert set(tables["track"]["loss"]) == {"ce"}


# --- the chapter's mapping and statistics (issue 18) ---------------------------------------------


def test_chapter_configs_seed_block():
    exp = experiments.get(NAME)
    for preset, n in (("smoke", 1), ("quick", 3)):
        (cfg,) = exp.configs_for(preset, 0)
        assert cfg == T3Config.from_preset(preset, seeds=tuple(range(n)), data_seed=0, num_pairs=10)
    (cfg,) = exp.configs_for("paper", 2, n_seeds=1, num_pairs=3)
    assert (cfg.seeds, cfg.data_seed, cfg.num_pairs) == ((2,), 2, 3)


def test_summarise_counts_and_diverged_runs(computed):
    import pandas as pd

    from sharpjac.experiments import t3_low_loss

    _, cfg, tables = computed
    track = tables["track"]
    s = t3_low_loss.summarise(tables, cfg)
    for claim_id, mask in (
        ("t3_low_loss.mse_bound_holds", track["loss"] == "mse"),
        ("t3_low_loss.ce_bound_holds", track["loss"] == "ce"),
        ("t3_low_loss.random_labels_bound_holds", track["labels"] == "random"),
    ):
        c = s.claims[claim_id]
        assert (c["violations"], c["checks"]) == (
            int(track.loc[mask, "n_violations"].sum()),
            int(track.loc[mask, "n_checked"].sum()),
        )
    assert len(s.tables["final"]) == 4 and (s.tables["final"]["step"] == track["step"].max()).all()
    assert s.values["t3_diverged"] == ""
    from sharpjac.tables import LABELS

    assert all(
        set(s.tables[t].columns) <= set(LABELS) for t in ("final_shown", "chords")
    )  # every shown column has a label
    assert set(s.series["figure_runs"]) == {("mse", "true"), ("mse", "random"), ("ce", "true"), ("ce", "random")}
    # a diverged run is named, and the study's tables are not changed by the summary
    diverged = pd.DataFrame({"seed": [0], "labels": ["random"], "loss": ["mse"], "stopped_at": [7]})
    s2 = t3_low_loss.summarise({**tables, "diverged": diverged}, cfg)
    assert s2.values["t3_diverged"].startswith("1 run of 4 diverged early and is left out")
    assert "MSE, random labels, seed 0 (stopped at step 7)" in s2.values["t3_diverged"]
    assert "run" not in tables["track"].columns
    # the exercise: a smaller residual radius rho gives a larger squared-error bound
    assert s.values["ex3_b00"] > s.values["ex3_b02"]


# --- the growth claim: one value per seed, a t interval over seeds (issue 19) -----------------------------------


def test_growth_values_are_per_seed_means_of_fitted_pairs():
    from sharpjac.experiments import t3_low_loss as t3

    rows = []
    # seed 0: both losses fitted, log ratios log 2 and log 4 -> mean log(2*4)/2; seed 1: the ce pair not fitted
    for seed, loss, true, rand, fitted in (
        (0, "mse", 1.0, 2.0, True),
        (0, "ce", 3.0, 12.0, True),
        (1, "mse", 2.0, 6.0, True),
        (1, "ce", 1.0, 9.0, False),
        (2, "mse", 1.0, 1.0, False),
        (2, "ce", 1.0, 1.0, False),
    ):
        rows.append({"seed": seed, "loss": loss, "labels": "true", "sample_max": true, "in_regime": True})
        rows.append({"seed": seed, "loss": loss, "labels": "random", "sample_max": rand, "in_regime": fitted})
    values = t3.growth_values(pd.DataFrame(rows))
    assert values == pytest.approx({0: (math.log(2) + math.log(4)) / 2, 1: math.log(3)})  # seed 2: no fitted pair


def test_growth_outcome_is_a_t_interval_over_seeds():
    from scipy import stats

    from sharpjac.experiments import t3_low_loss as t3

    final = t3.simulate_final(np.random.default_rng(3), math.log(2.0))
    values = np.array(list(t3.growth_values(final).values()))
    half = stats.t.ppf(0.975, 2) * values.std(ddof=1) / math.sqrt(3)  # the textbook interval, 2 df
    expected = "agree" if values.mean() - half > 0 else ("disagree" if values.mean() + half < 0 else "inconclusive")
    assert t3.growth_outcome(final) == expected
