"""The ``t2_lipschitz`` study: table, reuse of the store, validation, and oracles.

Oracles: the sample-maximum Jacobian from ``torch.func.jacfwd`` per sample and ``numpy`` SVD;
the training loss at each kept step recomputed from the kept network (mean squared error);
the covering radius by :func:`sharpjac.theory.covering_radius` (itself tested against brute force).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import jacfwd

from sharpjac import data, experiments, runs, theory
from sharpjac.experiments.base import trained_run
from sharpjac.experiments.t2_lipschitz import T2Config
from sharpjac.runs import RunStore

NAME = "t2_lipschitz"
TINY = dict(n_train=30, widths=(8,), steps=20, snapshots=(0, 20), num_probe=200, num_paths=4, path_points=16)


@pytest.fixture(scope="module")
def computed(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("store"))
    cfg = T2Config.from_preset("smoke", **TINY)
    return store, cfg, experiments.get(NAME).run(cfg, store=store, progress=False)


def test_presets_are_the_chapter_settings():
    smoke, quick = (experiments.get(NAME).preset(p) for p in ("smoke", "quick"))
    assert (smoke.widths, smoke.steps, smoke.snapshots, smoke.num_probe) == ((16,), 40, (0, 40), 500)
    assert quick.snapshots == (0, 30, 100, 300, 1000) and quick.n_train == 100
    (tc,) = quick.trains()
    assert (tc.optimizer, tc.lr, tc.momentum, tc.loss, tc.dtype) == ("gd", 0.05, 0.9, "mse", "float64")
    assert tc.dataset == "manifold" and tc.dataset_options["task"] == "regression"


def test_table_columns_and_sandwich(computed):
    _, _, tables = computed
    assert set(tables) == {"sandwich"}
    s = tables["sandwich"]
    assert list(s["step"]) == [0, 20]
    assert list(s.columns) == [
        "seed",
        "step",
        "train_mse",
        "sample_max",
        "probe_sup",
        "local_variation",
        "upper",
        "upper_pointwise",
        "radius",
        "path_lipschitz",
        "path_slope",
        "num_probe",
        "num_paths",
        "layer_product",
        "holds",
        "margin",
    ]
    # the left side and the crude right side bracket the pointwise right side (exact orderings)
    assert (s["sample_max"] <= s["upper_pointwise"]).all() and (s["upper_pointwise"] <= s["upper"] + 1e-12).all()
    assert s["train_mse"].iloc[-1] < s["train_mse"].iloc[0]
    # the certified product of layer norms bounds every Jacobian estimate (rounding only)
    assert (s[["sample_max", "probe_sup"]].max(axis=1) <= s["layer_product"] * (1 + 1e-12)).all()


def test_numbers_match_independent_oracles(computed):
    store, cfg, tables = computed
    (tc,) = cfg.trains()
    run = trained_run(tc, store=store)
    ds = data.load("manifold", seed=cfg.data_seed, dtype=torch.float64, **cfg.dataset_options())
    probe = ds.extras["sample_support"](cfg.num_probe, seed=cfg.data_seed + 1)
    s = tables["sandwich"].set_index("step")
    for step in (0, 20):
        model = run.models[step]
        J = torch.stack([jacfwd(lambda v, m=model: m(v[None])[0])(xi) for xi in ds.x_train]).detach().numpy()
        # float64 throughout: only rounding separates the two computations
        assert s.loc[step, "sample_max"] == pytest.approx(np.linalg.norm(J, ord=2, axis=(1, 2)).max(), rel=1e-9)
        with torch.no_grad():
            mse = float(((model(ds.x_train) - ds.y_train) ** 2).mean())
        assert s.loc[step, "train_mse"] == pytest.approx(mse, rel=1e-9)
        assert s.loc[step, "radius"] == pytest.approx(theory.covering_radius(probe, ds.x_train), rel=1e-12)


def test_second_run_trains_and_computes_nothing(computed, monkeypatch):
    store, cfg, tables = computed
    monkeypatch.setattr(runs, "train", lambda *a, **k: pytest.fail("must reuse the stored run"))
    monkeypatch.setattr(T2Config, "compute", lambda *a, **k: pytest.fail("must reuse the study"))
    again = experiments.get(NAME).run(cfg, store=store, progress=False)
    assert again["sandwich"].equals(tables["sandwich"])


@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(n_train=0), "n_train"),
        (dict(snapshots=(0, 41)), "snapshots"),
        (dict(path_points=1), "path_points"),
        (dict(num_probe=-5), "num_probe"),
    ],
)
def test_validation_names_the_field(kw, field):
    with pytest.raises(ValueError) as e:
        T2Config.from_preset("smoke", **kw)
    msg = str(e.value)
    assert f"T2Config.{field}=" in msg and "accepted" in msg and "\n" not in msg


# --- the chapter's mapping and statistics (issue 18) ---------------------------------------------


def test_chapter_configs_seed_block():
    exp = experiments.get(NAME)
    for preset, n in (("smoke", 1), ("quick", 3), ("paper", 3)):
        (cfg,) = exp.configs_for(preset, 0)
        assert cfg == T2Config.from_preset(preset, seeds=tuple(range(n)), data_seed=0, n_train=100)
    (cfg,) = exp.configs_for("quick", 4, n_train=50)
    assert (cfg.seeds, cfg.data_seed, cfg.n_train) == ((4, 5, 6), 4, 50)


def test_summarise_on_a_hand_made_sandwich():
    import pandas as pd

    from sharpjac.experiments import t2_lipschitz

    cols = dict(
        seed=[0, 0, 1, 1],
        step=[0, 10, 0, 10],
        train_mse=[1.0, 0.1, 1.0, 0.2],
        sample_max=[1.0, 2.0, 1.0, 4.0],
        probe_sup=[1.5, 1.9, 1.0, 4.0],  # the probe exceeds the sample in one checkpoint, by 50 %
        local_variation=[1.0, 1.0, 1.0, 1.0],
        upper=[3.0, 4.0, 3.0, 6.0],
        upper_pointwise=[2.5, 3.0, 2.5, 5.0],
        radius=[0.1, 0.1, 0.1, 0.1],
        path_lipschitz=[0.5, 0.5, 0.5, 0.5],
        path_slope=[0.6, 0.6, 0.6, 0.6],
        num_probe=[10] * 4,
        num_paths=[2] * 4,
        layer_product=[10.0, 30.0, 10.0, 50.0],
        holds=[True, True, False, True],
        margin=[1.0, 1.0, 1.0, 1.0],
    )
    cfg = T2Config.from_preset("smoke", seeds=(0, 1))
    s = t2_lipschitz.summarise(pd.DataFrame(cols), cfg)
    c = s.claims["t2_lipschitz.sandwich_holds"]
    assert (c["violations"], c["checks"], c["seeds"]) == (1, 4, 2)
    assert "the sample maximum is 3.00 (mean over seeds)" in c["evidence"]  # (2 + 4) / 2 at the last step
    # certified / computed right side at the end: mean(30 / 3, 50 / 5) = 10 >= 2
    assert "10.0 times the computed right side" in s.values["t2_end_sentence"]
    assert s.values["t2_paths_sentence"].startswith("The path estimates are below the probe maximum")
    assert "in 1 of the 4 checkpoints, by up to 50 %" in s.values["t2_dropped_sentence"]
    assert list(s.tables["first"]["seed"]) == [0, 0] and set(s.tables["long"]["run"]) == {"seed 0", "seed 1"}
    from sharpjac.tables import LABELS

    assert all(set(s.tables[t].columns) <= set(LABELS) for t in ("shown",))  # every shown column has a label
    assert t2_lipschitz.evaluate(s, "smoke")["t2_lipschitz.sandwich_holds"].outcome == "disagree"
