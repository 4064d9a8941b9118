"""Configs of the progressive_sharpening, early_training and whole_run experiments: grids, horizons,
validation, and the trained runs' configs kept through the renames (no training)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from sharpjac import experiments


def test_registered_with_all_presets():
    for name in ("progressive_sharpening", "early_training", "whole_run"):
        exp = experiments.get(name)
        for preset in experiments.PRESET_NAMES:
            cfg = exp.preset(preset)
            assert len(cfg.grid()) > 0


def test_progressive_sharpening_equal_time_and_schedule():
    cfg = experiments.get("progressive_sharpening").preset("quick")
    points = cfg.grid()
    assert len(points) == (len(cfg.lrs_mse) + len(cfg.lrs_ce)) * len(cfg.seeds)
    for labels, tc in points:
        horizon = cfg.time_mse if labels["loss"] == "mse" else cfg.time_ce
        # ceil(T / eta) steps: the run covers time T, one step less would not
        assert tc.max_steps * tc.lr >= horizon - 1e-9
        assert (tc.max_steps - 1) * tc.lr < horizon
        assert tc.optimizer == "gd" and tc.batch_size is None and tc.loss == labels["loss"]
        assert tc.lr == labels["lr"] and tc.seed == labels["seed"]
        dt = cfg.measure_dt_mse if labels["loss"] == "mse" else cfg.measure_dt_ce
        assert tc.measure_every == min(max(1, round(dt / tc.lr)), tc.max_steps)
    assert cfg.steps("mse", 0.16) == math.ceil(cfg.time_mse / 0.16)


def test_progressive_sharpening_validation_names_the_field():
    exp = experiments.get("progressive_sharpening")
    with pytest.raises(ValueError, match="lrs_mse"):
        exp.preset("quick", lrs_mse=(0.1, -0.2))
    with pytest.raises(ValueError, match="losses"):
        exp.preset("quick", losses=("hinge",))
    with pytest.raises(ValueError, match="time_ce"):
        exp.preset("quick", time_ce=0.0)
    # a loss that is not run needs no valid step sizes
    cfg = exp.preset("quick", losses=("mse",), lrs_ce=())
    assert {lab["loss"] for lab, _ in cfg.grid()} == {"mse"}


def test_whole_run_grid_and_validation():
    exp = experiments.get("whole_run")
    cfg = exp.preset("quick")
    points = cfg.grid()
    assert len(points) == len(cfg.smoothings) * len(cfg.seeds)
    for labels, tc in points:
        assert tc.loss == "ce" and tc.optimizer == "sgd" and tc.label_smoothing == labels["label_smoothing"]
        assert tc.measure_num == cfg.measure_num and tc.max_epochs == cfg.max_epochs
    with pytest.raises(ValueError, match="smoothings"):
        exp.preset("quick", smoothings=(0.0, 1.0))
    with pytest.raises(ValueError, match="measure_every_epochs"):
        exp.preset("quick", measure_every_epochs=0)


@pytest.mark.parametrize("name", ["progressive_sharpening", "whole_run", "early_training"])
def test_quick_presets_use_at_least_five_seeds(name):
    # the book reports intervals over seeds: at least five per setting at the quick preset, one at smoke
    exp = experiments.get(name)
    assert len(exp.preset("quick").seeds) >= 5
    assert len(exp.preset("smoke").seeds) == 1


def test_sharpening_claims_are_registered_and_evaluated_by_their_chapters():
    # every claim of the sharpening group belongs to one of its four chapters and that chapter evaluates it by id
    from pathlib import Path

    from sharpjac import claims

    chapters = ("progressive_sharpening", "early_training", "whole_run", "learning_rate")
    mine = [c for c in claims.all_claims() if c.chapter in chapters]
    assert {c.chapter for c in mine} == set(chapters)
    root = Path(__file__).resolve().parents[1] / "notebooks"
    modules = Path(__file__).resolve().parents[1] / "src" / "sharpjac" / "experiments"
    for c in mine:
        text = (root / f"{c.chapter}.md").read_text(encoding="utf-8")
        assert f'"{c.id}"' in text, f"{c.id} is registered but {c.chapter}.md does not show it"
        # decided either in the chapter or by the evaluate() of the chapter's experiment module
        module = modules / f"{c.chapter}.py"
        code = module.read_text(encoding="utf-8") if module.is_file() else ""
        deciders = ("claims.evaluate(", "claims.from_clusters(", "shared.count_verdict(", "shared.permutation_verdict(")
        assert any(d in text or d in code for d in deciders)
    for chapter in chapters:
        text = (root / f"{chapter}.md").read_text(encoding="utf-8")
        # no hand-written verdict box is left
        assert "{admonition} Verdict" not in text and "**Agree?**" not in text


SNAPSHOT = Path(__file__).parent / "data" / "configs_before_rename.json"


def _non_default(tc) -> dict:
    """The fields of a TrainConfig that differ from TrainConfig's defaults, as JSON values."""
    from sharpjac.training import TrainConfig

    defaults = {}
    for f in dataclasses.fields(TrainConfig):
        if f.default is not dataclasses.MISSING:
            defaults[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            defaults[f.name] = f.default_factory()
    defaults = json.loads(json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in defaults.items()}))
    return {k: v for k, v in tc.to_dict().items() if k not in defaults or defaults[k] != v}


@pytest.mark.parametrize("name", ["progressive_sharpening", "early_training", "whole_run"])
@pytest.mark.parametrize("preset", ["smoke", "quick", "paper"])
def test_grids_equal_the_snapshot_taken_before_the_renames(name, preset):
    # tests/data/configs_before_rename.json holds, for every preset, the (labels, TrainConfig) grid of
    # the experiments as they were before `sharpening_eos` became `progressive_sharpening`,
    # `label_smoothing_early` became `early_training` and the two SGD experiments shared one base
    # class: the same TrainConfigs mean the same run keys, so no stored run is orphaned. (Only the
    # fields that differ from TrainConfig's defaults are kept, so a new TrainConfig field with a
    # default does not break the snapshot.)
    expected = json.loads(SNAPSHOT.read_text(encoding="utf-8"))[f"{name}/{preset}"]
    got = [[labels, _non_default(tc)] for labels, tc in experiments.get(name).preset(preset).grid()]
    assert json.loads(json.dumps(got)) == expected
    # the chapter's mapping at seed 0 asks for the preset's runs, except that the early_training chapter
    # measured every 5 steps at quick before the change as after it
    exp = experiments.get(name)
    chapter_overrides = {"measure_every": 5} if (name, preset) == ("early_training", "quick") else {}
    assert exp.configs_for(preset, 0) == [exp.preset(preset, **chapter_overrides)]
