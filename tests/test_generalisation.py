"""The shared generalisation grid: presets, canonical run configs, end-of-training extras, run sharing."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from sharpjac import experiments, runs
from sharpjac.experiments._end_of_run import END_COLUMNS, EndMeasurements, end_measurements, nearest_neighbour_radius
from sharpjac.experiments._gap_stats import final_measurements, gap_predictors, paired_values
from sharpjac.experiments._grid import describe_setting
from sharpjac.experiments.batch_size import BatchSizeConfig
from sharpjac.experiments.causal_test import CausalTestConfig
from sharpjac.experiments.learning_rate import LearningRateConfig
from sharpjac.experiments.regularisers import REGULARISERS, RegularisersConfig
from sharpjac.experiments.sam_augmentation import SamAugmentationConfig
from sharpjac.experiments.weight_decay import WeightDecayConfig
from sharpjac.runs import RunStore, config_key

CHAPTERS = ("weight_decay", "sam_augmentation", "batch_size", "learning_rate", "regularisers", "causal_test")


# ------------------------------------------------------------------------------------------------
# presets and canonical configs
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["smoke", "quick", "paper"])
def test_every_chapter_has_the_same_baseline_and_contains_it(preset):
    keys = set()
    for name in CHAPTERS:
        cfg = experiments.get(name).preset(preset)
        base = cfg.baseline(cfg.seeds[0])
        keys.add(config_key(base))
        grid_keys = {config_key(tc) for _, tc in cfg.grid()}
        assert config_key(base) in grid_keys, name
    assert len(keys) == 1


def test_quick_grids_share_runs_across_chapters():
    owners: dict[str, set] = {}
    total = 0
    for name in CHAPTERS:
        for _, tc in experiments.get(name).preset("quick").grid():
            owners.setdefault(config_key(tc), set()).add(name)
            total += 1
    assert len(owners) < total
    # the learning-rate runs are the weight-decay grid's wd=0 column
    lr = {config_key(tc) for _, tc in experiments.get("learning_rate").preset("quick").grid()}
    assert all("weight_decay" in owners[k] for k in lr)
    # every regulariser run but label smoothing comes from another chapter
    for lab, tc in experiments.get("regularisers").preset("quick").grid():
        if lab["regulariser"] != "label smoothing":
            assert len(owners[config_key(tc)]) > 1, lab


def test_train_config_budgets_and_measurements():
    c = BatchSizeConfig.preset("quick")
    base = c.baseline(0)
    assert base.max_epochs == c.max_epochs and base.max_steps is None
    assert c.train_config(0, budget="updates") == base  # the baseline batch meets both budgets
    steps = c.baseline_steps()
    assert steps == c.max_epochs * -(-c.n_train // c.batch_size)
    for b in (7, 20, 300, 500):
        tc = c.train_config(0, budget="updates", batch_size=b)
        spe = -(-c.n_train // b)
        total = tc.max_steps if tc.max_steps is not None else tc.max_epochs * spe
        assert total == steps
        assert (tc.max_steps is None) == (steps % spe == 0)
        fe = c.train_config(0, budget="epochs", batch_size=b)
        assert fe.max_epochs == c.max_epochs and fe.measure_every == max(1, c.max_epochs * spe // c.measure_linear)
    tc = c.train_config(3, lr=0.5, sam_rho=0.1, augment=True, jacobian_penalty=0.2)
    assert (tc.seed, tc.lr, tc.sam_rho, tc.augment, tc.jacobian_penalty) == (3, 0.5, 0.1, True, 0.2)
    assert tc.optimizer == "sgd" and tc.measure_num == c.measure_log
    with pytest.raises(ValueError, match=r"changes \['optimizer'\]"):
        c.train_config(0, optimizer="gd")
    with pytest.raises(ValueError, match="budget='steps'"):
        c.train_config(0, budget="steps")


def test_grids_cover_their_axes():
    wd = WeightDecayConfig.preset("quick")
    g = wd.grid()
    assert len(g) == len(wd.lrs) * len(wd.weight_decays) * len(wd.seeds) >= 9 * 2
    assert {(lab["lr"], lab["weight_decay"]) for lab, _ in g} == {(a, b) for a in wd.lrs for b in wd.weight_decays}
    assert all(tc.lr == lab["lr"] and tc.weight_decay == lab["weight_decay"] for lab, tc in g)
    bs = BatchSizeConfig.preset("quick")
    assert {lab["budget"] for lab, _ in bs.grid()} == {"epochs", "updates"}
    reg = RegularisersConfig.preset("quick")
    names = {lab["regulariser"] for lab, _ in reg.grid()}
    assert names == {"baseline", *(n for n, _, _ in REGULARISERS)}
    for lab, tc in reg.grid():
        if lab["regulariser"] == "smaller batch":
            assert tc.batch_size < reg.batch_size and tc.max_epochs == reg.max_epochs
        if lab["regulariser"] == "larger rate":
            assert tc.lr > reg.lr
    causal = CausalTestConfig.preset("quick")
    assert sorted({tc.jacobian_penalty for _, tc in causal.grid()}) == sorted(causal.penalties)


@pytest.mark.parametrize(
    "cls, kw, pattern",
    [
        (WeightDecayConfig, dict(weight_decays=(0.0, -1.0)), r"weight_decays=.*floats >= 0"),
        (WeightDecayConfig, dict(lrs=()), r"lrs=\(\).*non-empty"),
        (BatchSizeConfig, dict(budgets=("epochs", "steps")), r"budgets=.*'epochs', 'updates'"),
        (BatchSizeConfig, dict(batch_sizes=(10, 2.5)), r"batch_sizes=\(10, 2.5\).*accepted: a tuple of int"),
        (RegularisersConfig, dict(larger_lrs=(0.1,)), r"larger_lrs=\(0.1,\).*> the baseline lr"),
        (RegularisersConfig, dict(smaller_batches=(500,)), r"smaller_batches=\(500,\)"),
        (RegularisersConfig, dict(sam_rhos=(0.0,)), r"sam_rhos=\(0.0,\).*> 0"),
        (CausalTestConfig, dict(penalties=(-0.1,)), r"penalties="),
        (SamAugmentationConfig, dict(augments=(1,)), r"augments=\(1,\).*(booleans|tuple of bool)"),
        (LearningRateConfig, dict(variation_radius=-1.0), r"variation_radius=-1.0"),
        (LearningRateConfig, dict(sharpness_subset=0), r"sharpness_subset=0"),
        (LearningRateConfig, dict(loss="hinge"), r"loss='hinge'"),
    ],
)
def test_validation_names_the_field(cls, kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        cls.from_preset("quick", **kw)


# ------------------------------------------------------------------------------------------------
# end-of-training measurements
# ------------------------------------------------------------------------------------------------


def test_nearest_neighbour_radius_brute_force():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(40, 2, 3, generator=g), torch.randn(15, 2, 3, generator=g)
    d = np.linalg.norm(b.reshape(15, 1, 6).numpy() - a.reshape(1, 40, 6).numpy(), axis=2).min(1)
    assert nearest_neighbour_radius(a, b, chunk_size=4) == pytest.approx(float(np.median(d)), rel=1e-6)
    assert nearest_neighbour_radius(a, b, points=5) == pytest.approx(float(np.median(d[:5])), rel=1e-6)
    with pytest.raises(ValueError, match="equal input shape"):
        nearest_neighbour_radius(a, torch.randn(3, 5))
    with pytest.raises(ValueError, match="points=0"):
        nearest_neighbour_radius(a, b, points=0)


def test_end_measurements_linear_model_and_dense_oracle():
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(6, 3)).double()
    x = torch.randn(20, 2, 3, dtype=torch.float64)
    res = end_measurements(lin, x, x, radius=1.5, centres=5, samples=4, ascent_steps=1, test_points=7, seed=0)
    assert isinstance(res, EndMeasurements) and tuple(res.as_dict()) == END_COLUMNS
    out = res.as_dict()
    W = lin[1].weight.detach()
    # a linear model's Jacobian is W everywhere: no local variation, every norm is ||W||
    assert out["local_variation_max"] == pytest.approx(0.0, abs=1e-10)
    assert out["test_jac_spectral_max"] == pytest.approx(float(torch.linalg.matrix_norm(W, 2)))
    assert out["test_jac_frobenius_mean"] == pytest.approx(float(torch.linalg.matrix_norm(W)))
    assert out["variation_radius"] == 1.5
    # a tanh network against dense Jacobians by torch.func.jacfwd
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    out = end_measurements(net, x, x, radius=0.5, centres=6, samples=4, ascent_steps=0, test_points=9, seed=1).as_dict()
    J = torch.stack([torch.func.jacfwd(lambda z: net(z[None])[0])(xi).reshape(3, 6) for xi in x[:9]])
    s = torch.linalg.matrix_norm(J.detach(), 2)
    assert out["test_jac_spectral_max"] == pytest.approx(float(s.max()), rel=1e-8)
    assert out["test_jac_spectral_mean"] == pytest.approx(float(s.mean()), rel=1e-8)
    assert 0 < out["local_variation_mean"] <= out["local_variation_max"]
    with pytest.raises(ValueError, match="radius=0"):
        end_measurements(net, x, x, radius=0, centres=2, samples=2, ascent_steps=0, test_points=2, seed=0)
    with pytest.raises(ValueError, match="centres=0"):
        end_measurements(net, x, x, radius=1.0, centres=0, samples=2, ascent_steps=0, test_points=2, seed=0)


def test_end_measurements_unsmoothed_losses_against_torch():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 4)).double()
    x, xt = torch.randn(30, 6, dtype=torch.float64), torch.randn(11, 6, dtype=torch.float64)
    y, yt = torch.randint(0, 4, (30,)), torch.randint(0, 4, (11,))
    out = end_measurements(
        net,
        x,
        xt,
        radius=1.0,
        centres=3,
        samples=2,
        ascent_steps=0,
        test_points=5,
        seed=0,
        y_train=y,
        y_test=yt,
        loss="ce",
        chunk_size=7,
    ).as_dict()
    with torch.no_grad():
        ce_tr = float(nn.functional.cross_entropy(net(x), y))
        ce_te = float(nn.functional.cross_entropy(net(xt), yt))
        mse_te = float(((net(xt) - nn.functional.one_hot(yt, 4)) ** 2).mean())
    assert out["train_loss_unsmoothed"] == pytest.approx(ce_tr)
    assert out["gap_loss_unsmoothed"] == pytest.approx(ce_te - ce_tr)
    mse = end_measurements(
        net,
        x,
        xt,
        radius=1.0,
        centres=3,
        samples=2,
        ascent_steps=0,
        test_points=5,
        seed=0,
        y_train=y,
        y_test=yt,
        loss="mse",
    ).as_dict()
    assert mse["test_loss_unsmoothed"] == pytest.approx(mse_te)
    assert np.isnan(
        end_measurements(
            net, x, xt, radius=1.0, centres=3, samples=2, ascent_steps=0, test_points=5, seed=0
        ).gap_loss_unsmoothed
    )
    with pytest.raises(ValueError, match="y_train and y_test"):
        end_measurements(net, x, xt, radius=1.0, centres=3, samples=2, ascent_steps=0, test_points=5, seed=0, loss="ce")


def test_end_measurements_restore_batch_norm_mode():
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2 * 16, 3))
    x = torch.randn(6, 1, 4, 4)
    net.train(True)
    end_measurements(net, x, x, radius=0.1, centres=2, samples=2, ascent_steps=0, test_points=3, seed=0)
    assert net.training and net[1].training


# ------------------------------------------------------------------------------------------------
# running: store, extras, sharing
# ------------------------------------------------------------------------------------------------


@pytest.fixture()
def count_training(monkeypatch):
    import sharpjac.training as T

    calls = []
    real = T.train

    def counting(config, **kw):
        calls.append(config_key(config))
        return real(config, **kw)

    monkeypatch.setattr(T, "train", counting)
    monkeypatch.setattr(runs, "train", counting)  # runs.py imported the name
    return calls


def test_run_grid_stores_extras_and_reuses_everything(tmp_path, count_training):
    store = RunStore(tmp_path)
    cfg = WeightDecayConfig.preset("smoke")
    df = experiments.run("weight_decay", cfg, store=store)
    n = len(cfg.grid())
    assert len(count_training) == n and df["run_key"].nunique() == n
    np.testing.assert_allclose(df["gap_loss"], df["test_loss"] - df["train_loss"])
    np.testing.assert_allclose(df["gap_acc"], df["train_acc"] - df["test_acc"])
    last = df.groupby("run_key")["step"].transform("max") == df["step"]
    assert df.loc[last, "local_variation_max"].notna().all()
    assert df.loc[~last, list(END_COLUMNS)].isna().all().all()
    assert (df.loc[last, "variation_radius"] == df.attrs["variation_radius"]).all()
    # no label smoothing here: the unsmoothed gap is the record's gap
    np.testing.assert_allclose(df.loc[last, "gap_loss_unsmoothed"], df.loc[last, "gap_loss"], rtol=1e-5, atol=1e-6)
    # every run folder has its extras file, with the spec it was computed with
    files = list(tmp_path.glob("*/artefacts/end-*.json"))
    assert len(files) == n and json.loads(files[0].read_text())["spec"]["centres"] == cfg.variation_centres
    again = experiments.run("weight_decay", cfg, store=store)
    assert len(count_training) == n  # nothing retrained
    pd.testing.assert_frame_equal(again, df)
    fin = final_measurements(df)
    assert len(fin) == n and list(fin.columns[:3]) == ["lr", "weight_decay", "seed"]
    assert (fin["step"].to_numpy() == df.groupby("run_key", sort=False)["step"].max().to_numpy()).all()


def test_chapters_share_the_baseline_and_missing_extras_are_added(tmp_path, count_training):
    store = RunStore(tmp_path)
    lr = LearningRateConfig.preset("smoke")
    # a record stored by someone else (plain runs.run): no extras yet
    base = lr.baseline(0)
    runs.run(base, store=store)
    assert len(count_training) == 1
    df = experiments.run("learning_rate", lr, store=store)
    keys = [config_key(tc) for _, tc in lr.grid()]
    # the baseline's end values come from its kept network (never retrained); the other rate trains once
    assert sorted(count_training) == sorted([config_key(base)] + [k for k in keys if k != config_key(base)])
    assert df.groupby("run_key")["local_variation_max"].max().notna().all()
    before = len(count_training)
    causal = experiments.run("causal_test", CausalTestConfig.preset("smoke"), store=store)
    assert len(count_training) == before + 1  # only the penalised run is new
    assert config_key(base) in set(causal["run_key"])


def test_batch_size_grid_trains_the_shared_point_once(tmp_path, count_training):
    cfg = BatchSizeConfig.from_preset("smoke", lrs=(0.2,))
    df = experiments.run("batch_size", cfg, store=False)
    assert len(count_training) == len({config_key(tc) for _, tc in cfg.grid()}) == len(cfg.grid()) - 1
    fin = final_measurements(df)
    assert len(fin) == len(cfg.grid())
    per_budget = fin.groupby("budget")["step"].apply(list).to_dict()
    assert len(set(per_budget["updates"])) == 1  # same number of updates for every batch size


def test_workload_counts_distinct_runs_updates_and_measurements(tmp_path):
    cfg = BatchSizeConfig.preset("smoke")
    w = cfg.workload()
    assert w["runs"] == len(cfg.grid()) - len(cfg.lrs)  # the baseline batch meets both budgets
    lr = LearningRateConfig.preset("smoke")
    df = experiments.run("learning_rate", lr, store=RunStore(tmp_path))
    wl = lr.workload()
    assert wl["runs"] == len(lr.grid()) and wl["measurements"] == len(df)
    assert wl["updates"] == wl["gradient_passes"] == df.groupby("run_key")["step"].max().sum()
    sam = SamAugmentationConfig.preset(
        "smoke",
    ).workload()
    assert sam["gradient_passes"] > sam["updates"]


def test_end_measurements_baselines_logit_norm_and_margin_against_loops():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Flatten(), nn.Linear(5, 3)).double()
    x, xt = torch.randn(13, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (13,))
    kw = dict(radius=1.0, centres=2, samples=2, ascent_steps=0, test_points=3, seed=0, chunk_size=4)
    out = end_measurements(net, x, xt, y_train=y, y_test=torch.zeros(4, dtype=torch.long), loss="ce", **kw)
    norms, margins = [], []
    with torch.no_grad():
        for i in range(len(x)):
            f = net(x[i : i + 1])[0].tolist()
            norms.append(sum(v * v for v in f) ** 0.5)
            margins.append(f[int(y[i])] - max(v for k, v in enumerate(f) if k != int(y[i])))
    # float64 throughout: only summation order differs from the loop
    assert out.logit_norm == pytest.approx(sum(norms) / len(norms), rel=1e-12)
    assert out.margin == pytest.approx(sum(margins) / len(margins), rel=1e-12, abs=1e-12)
    # labelled by the network's own prediction, the margin is the gap between the top two outputs
    with torch.no_grad():
        top2 = net(x).topk(2, dim=1).values
    own = end_measurements(net, x, xt, y_train=net(x).argmax(dim=1), **kw).margin
    assert own == pytest.approx(float((top2[:, 0] - top2[:, 1]).mean()), rel=1e-12) and own > out.margin
    # the output norm needs no labels; the margin does
    bare = end_measurements(net, x, xt, **kw)
    assert bare.logit_norm == pytest.approx(out.logit_norm, rel=1e-12) and np.isnan(bare.margin)
    assert set(out.as_dict()) == set(END_COLUMNS)


def test_paired_values_aligns_treated_and_control_runs():
    final = pd.DataFrame(
        {
            "lr": [0.2, 0.2, 0.2, 0.2, 0.8, 0.8, 0.8],
            "weight_decay": [0.0, 0.0, 0.003, 0.003, 0.0, 0.003, 0.003],
            "seed": [1, 0, 0, 1, 0, 0, 1],
            "s": [10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0],
        }
    )
    a, b = paired_values(final, "s", {"weight_decay": 0.003}, {"weight_decay": 0.0}, pair_on=["lr", "seed"])
    # pairs (lr, seed): (0.2, 0) -> 12 vs 11, (0.2, 1) -> 13 vs 10, (0.8, 0) -> 15 vs 14; (0.8, 1) has no control
    assert a.tolist() == [12.0, 13.0, 15.0] and b.tolist() == [11.0, 10.0, 14.0]
    a, b = paired_values(final[final.lr == 0.2], "s", {"weight_decay": 0.003}, {"weight_decay": 0.0})
    assert a.tolist() == [12.0, 13.0] and b.tolist() == [11.0, 10.0]
    with pytest.raises(ValueError, match="one run per pair"):
        paired_values(final, "s", {"weight_decay": 0.003}, {"weight_decay": 0.0})
    with pytest.raises(ValueError, match="column 'x'"):
        paired_values(final, "x", {"weight_decay": 0.003}, {"weight_decay": 0.0})


def test_describe_setting_is_built_from_the_config():
    c = WeightDecayConfig.from_preset("quick", n_train=321, max_epochs=7, lr=0.3, batch_size=64)
    text = describe_setting(c)
    for piece in (
        "321 real MNIST digits",
        "`mnist5k`",
        "hidden widths 100-100 (tanh)",
        "step 0.3",
        "batch 64",
        "7 epochs",
    ):
        assert piece in text, piece
    paper = WeightDecayConfig.preset("paper")
    assert "ResNet-18" in describe_setting(paper) and "momentum 0.9" in describe_setting(paper)
    with pytest.raises(TypeError, match="GeneralisationConfig"):
        describe_setting(object())


def test_gap_predictors_stacks_predictor_tables():
    from sharpjac import analysis

    rng = np.random.default_rng(0)
    final = pd.DataFrame(
        {
            "g1": rng.normal(size=24),
            "g2": rng.normal(size=24),
            "a": rng.normal(size=24),
            "b": rng.normal(size=24),
            "train_loss": rng.normal(size=24),
            "point": np.repeat(np.arange(8), 3),
        }
    )
    out = gap_predictors(final, ("g1", "g2"), ["a", "b"], "spearman", group="point", n_resamples=50, seed=1)
    assert out["gap"].tolist() == ["g1", "g1", "g2", "g2"] and out["predictor"].tolist() == ["a", "b", "a", "b"]
    direct = analysis.predictor_table(
        final, "g2", ["a", "b"], "spearman", group="point", n_resamples=50, seed=1, control="train_loss"
    )
    # the same function on the same resamples: identical numbers
    np.testing.assert_array_equal(
        out.iloc[2:][["estimate", "low", "high", "partial"]].to_numpy(),
        direct[["estimate", "low", "high", "partial"]].to_numpy(),
    )
    assert "partial" not in gap_predictors(
        final, "g1", ["a"], "kendall", group=None, n_resamples=10, seed=0, control=None
    )
