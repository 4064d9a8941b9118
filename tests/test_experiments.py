"""Experiment registry, presets, validation, grids and the runner (smoke presets only)."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch

from sharpjac import experiments, runs
from sharpjac.experiments import parse_overrides
from sharpjac.experiments.early_training import EarlyTrainingConfig
from sharpjac.experiments.progressive_sharpening import ProgressiveSharpeningConfig
from sharpjac.runs import RunStore


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def test_registry_lists_the_builtin_experiments():
    names = experiments.names()
    assert {"progressive_sharpening", "early_training", "whole_run"} <= set(names)
    for n in names:
        exp = experiments.get(n)
        assert exp.description and exp.config_cls.preset("smoke") is not None
        text = experiments.describe(n)
        assert text.startswith(n) and "smoke" in text and "quick" in text and "paper" in text
    with pytest.raises(ValueError, match="unknown experiment 'nope'.*progressive_sharpening"):
        experiments.get("nope")


@pytest.mark.parametrize("cls", [ProgressiveSharpeningConfig, EarlyTrainingConfig])
def test_presets_are_frozen_valid_and_distinct(cls):
    smoke, quick, paper = (cls.preset(p) for p in ("smoke", "quick", "paper"))
    assert smoke != quick != paper
    with pytest.raises(dataclasses.FrozenInstanceError):
        smoke.seeds = (1,)
    assert paper.dataset == "cifar10"
    assert len(smoke.grid()) >= 1 and all(tc.device == smoke.device for _, tc in smoke.grid())
    over = cls.from_preset("smoke", seeds=(3, 4))
    assert over.seeds == (3, 4) and len(over.grid()) == 2 * len(smoke.grid())


def test_progressive_sharpening_grid_is_full_batch_gd_over_losses_and_rates():
    c = ProgressiveSharpeningConfig.preset("quick")
    grid = c.grid()
    assert len(grid) == (len(c.lrs_mse) + len(c.lrs_ce)) * len(c.seeds) == 30
    assert {tc.loss for _, tc in grid} == {"mse", "ce"}
    assert all(tc.optimizer == "gd" and tc.batch_size is None for _, tc in grid)
    assert sorted({lab["lr"] for lab, tc in grid if tc.loss == "mse"}) == sorted(c.lrs_mse)
    ls = EarlyTrainingConfig.preset("quick")
    smoothing = [lab["label_smoothing"] for lab, _ in ls.grid()]
    assert sorted(set(smoothing)) == [0.0, 0.1, 0.2] and len(smoothing) == 3 * len(ls.seeds)


@pytest.mark.parametrize(
    "cls, kw, pattern",
    [
        (ProgressiveSharpeningConfig, dict(lrs_mse=(0.1, -0.2)), r"lrs_mse=\(0.1, -0.2\).*positive"),
        (ProgressiveSharpeningConfig, dict(losses=("mse", "hinge")), r"losses=.*'mse', 'ce'"),
        (ProgressiveSharpeningConfig, dict(dataset="imagenet"), r"dataset='imagenet'.*mnist5k"),
        (ProgressiveSharpeningConfig, dict(seeds=()), r"seeds=\(\).*non-empty"),
        (EarlyTrainingConfig, dict(smoothings=(0.0, 1.2)), r"smoothings=.*\[0, 1\)"),
        (EarlyTrainingConfig, dict(lr=-1.0), r"lr=-1.0.*positive"),
        (EarlyTrainingConfig, dict(model="vgg"), r"model='vgg'.*'mlp'"),
        (EarlyTrainingConfig, dict(device="tpu"), r"device='tpu'"),
    ],
)
def test_validation_names_field_and_accepted_values(cls, kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        cls.from_preset("smoke", **kw)


def test_unknown_preset_and_field():
    with pytest.raises(ValueError, match=r"unknown preset='huge'.*\['paper', 'quick', 'smoke'\]"):
        ProgressiveSharpeningConfig.preset("huge")
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['optimiser'\]"):
        EarlyTrainingConfig.from_preset("smoke", optimiser="adam")


def test_unavailable_dataset_is_reported_before_any_training(tmp_path, monkeypatch):
    monkeypatch.setenv("SHARPJAC_DATA", str(tmp_path / "nodata"))
    cfg = ProgressiveSharpeningConfig.from_preset("smoke", dataset="cifar10")
    monkeypatch.setattr(runs, "train", lambda *a, **k: pytest.fail("trained before checking the data"))
    with pytest.raises(ValueError, match="cifar10.*not available"):
        experiments.get("progressive_sharpening").run(cfg, store=RunStore(tmp_path))


def test_parse_overrides_uses_field_types():
    o = parse_overrides(
        ProgressiveSharpeningConfig,
        ["lrs_mse=0.1,0.2", "time_mse=30", "measure_num_ce=7", "sharpness_subset=none", "losses=mse", "classes=[0, 1]"],
    )
    assert o == {
        "lrs_mse": (0.1, 0.2),
        "time_mse": 30.0,
        "measure_num_ce": 7,
        "sharpness_subset": None,
        "losses": ("mse",),
        "classes": (0, 1),
    }
    with pytest.raises(ValueError, match="unknown field 'lr_mse'"):
        parse_overrides(ProgressiveSharpeningConfig, ["lr_mse=0.1"])
    with pytest.raises(ValueError, match="measure_num_ce"):
        parse_overrides(ProgressiveSharpeningConfig, ["measure_num_ce=ten"])


def test_smoke_run_reuses_the_store_one_run_per_grid_point(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    cfg = EarlyTrainingConfig.from_preset("smoke", smoothings=(0.0, 0.2), seeds=(0, 1))
    df = experiments.get("early_training").run(cfg, store=store, progress=False)
    assert df["run_key"].nunique() == 4 and len([p for p in tmp_path.iterdir() if len(p.name) == 64]) == 4
    assert list(df.columns[:2]) == ["label_smoothing", "seed"]
    assert set(df["status"]) == {"completed"}
    assert df.groupby("run_key")["step"].min().eq(0).all()
    # label smoothing keeps the output curvature away from 0: mean ||C|| is larger with smoothing at the end
    last = df.sort_values("step").groupby(["label_smoothing", "seed"]).tail(1)
    assert (last["curvature_norm"] > 0).all()
    monkeypatch.setattr(runs, "train", lambda *a, **k: pytest.fail("must reuse the stored runs"))
    again = experiments.get("early_training").run(cfg, store=store, progress=False)
    pd.testing.assert_frame_equal(df, again, check_exact=True)


def test_progressive_sharpening_smoke_has_stability_limit_column(tmp_path):
    df = experiments.run(
        "progressive_sharpening", ProgressiveSharpeningConfig.preset("smoke"), store=RunStore(tmp_path), progress=False
    )
    assert set(df["loss"]) == {"mse", "ce"}
    assert (df["two_over_lr"] == 2 / df["lr"]).all()
    assert df["sharpness"].notna().all() and df["jac_spectral_max"].notna().all()


def test_progress_bar_is_silent_under_pytest_and_with_env(monkeypatch):
    from sharpjac._util import progress_enabled

    assert progress_enabled(None) is False  # PYTEST_CURRENT_TEST is set
    assert progress_enabled(True) is True and progress_enabled(False) is False
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    monkeypatch.setenv("SHARPJAC_PROGRESS", "0")
    assert progress_enabled(None) is False


@dataclasses.dataclass(frozen=True)
class _ThreadsStudy(experiments.StudyConfig):
    """A study whose one table is the torch thread count its compute ran with."""

    PRESETS = {"smoke": {}, "quick": {}, "paper": {}}

    def compute(self, *, store, progress):
        return {"threads": pd.DataFrame({"threads": [torch.get_num_threads()]})}


def _threads_runner(config, *, store, force, progress):
    return pd.DataFrame({"threads": [torch.get_num_threads()]})


def test_measurements_run_with_the_configs_threads_and_restore_the_count(tmp_path, monkeypatch):
    # a study's compute and a custom runner measure outside training: they must use config.threads,
    # not the process's count (two chapters at once with one thread per core each oversubscribe)
    from sharpjac.experiments.base import run_study

    # the store keys a study by the code of a sharpjac module: this test's study is computed, not kept
    monkeypatch.setattr(RunStore, "study", lambda self, name, spec, compute, code: compute())
    study = experiments.register("threads_test_study", _ThreadsStudy, "thread count of compute (test)")
    runner = experiments.register("threads_test_runner", _ThreadsStudy, "thread count (test)", runner=_threads_runner)
    try:
        torch.set_num_threads(2)
        for threads in (1, 3):
            cfg = _ThreadsStudy(threads=threads)
            assert study.run(cfg, store=None)["threads"]["threads"].item() == threads
            assert study.run(cfg, store=RunStore(tmp_path))["threads"]["threads"].item() == threads
            assert run_study(cfg, name="threads_test_study", store=None)["threads"]["threads"].item() == threads
            assert runner.run(cfg)["threads"].item() == threads
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
        experiments._REGISTRY.pop("threads_test_study", None)
        experiments._REGISTRY.pop("threads_test_runner", None)
