"""The flat-minima grids after the split of ``experiments/generalisation.py``: the same runs.

``data/flat_minima_grids.json.gz`` holds ``[labels, TrainConfig.to_dict()]`` for every grid point of
the six chapters at every preset, written from main at commit 0869e12 (before the split) by
``[(lab, tc.to_dict()) for lab, tc in experiments.get(name).preset(preset).grid()]``; fields equal
in every config are stored once under ``"common"``. Equal TrainConfigs mean equal run keys, so a
run store filled before the split is read, not retrained. One intended change since (issue 19,
item 4): each training seed draws its own training subset, ``data_seed = seed`` (the snapshot had
the block's first seed, 0, for every run).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from sharpjac import experiments
from sharpjac.training import TrainConfig

SNAPSHOT = json.loads(gzip.decompress((Path(__file__).parent / "data" / "flat_minima_grids.json.gz").read_bytes()))
CHAPTERS = ("weight_decay", "sam_augmentation", "batch_size", "learning_rate", "regularisers", "causal_test")


def _expected(name: str, preset: str) -> list[tuple[dict, dict]]:
    grid = SNAPSHOT["grids"][f"{name}/{preset}"]
    return [(lab, {**SNAPSHOT["common"], **fields, "data_seed": lab["seed"]}) for lab, fields in grid]


def test_each_seed_draws_its_own_training_subset():
    (cfg,) = experiments.get("weight_decay").configs_for("quick", 3, n_seeds=2)
    seeds = {(lab["seed"], tc.seed, tc.data_seed) for lab, tc in cfg.grid()}
    assert seeds == {(3, 3, 3), (4, 4, 4)}


@pytest.mark.parametrize("preset", ["smoke", "quick", "paper"])
@pytest.mark.parametrize("name", CHAPTERS)
def test_grid_configs_equal_the_snapshot_before_the_split(name, preset):
    want = _expected(name, preset)
    got = experiments.get(name).preset(preset).grid()
    assert len(got) == len(want) > 0
    for (lab, tc), (want_lab, want_tc) in zip(got, want):
        assert json.loads(json.dumps(lab)) == want_lab
        d = json.loads(json.dumps(tc.to_dict()))
        # a TrainConfig field added after the snapshot must keep its default (same run)
        new = {k: v for k, v in d.items() if k not in want_tc}
        defaults = {f: json.loads(json.dumps(TrainConfig.__dataclass_fields__[f].default)) for f in new}
        assert new == defaults, f"{name}/{preset}: fields not in the snapshot differ from their defaults"
        assert {k: d[k] for k in want_tc} == want_tc, f"{name}/{preset} {lab}"


@pytest.mark.parametrize("name", CHAPTERS)
def test_configs_for_at_seed_0_gives_the_snapshot(name):
    """The one mapping: the chapter's configs at seed 0 are the preset's, with n_seeds seeds at quick."""
    exp = experiments.get(name)
    for preset, n in (("smoke", 1), ("quick", 5), ("paper", 3)):
        (cfg,) = exp.configs_for(preset, 0, n_seeds=5)
        assert cfg == exp.preset(preset, seeds=tuple(range(n)))
    # a block starting at seed 3: training seeds 3.., data split 3
    (cfg,) = exp.configs_for("quick", 3, n_seeds=2)
    assert cfg.seeds == (3, 4) and cfg.data_seed == 3
    with pytest.raises(ValueError, match="n_seeds=0"):
        exp.configs_for("quick", 0, n_seeds=0)
    with pytest.raises(ValueError, match="preset='fast'"):
        exp.configs_for("fast", 0)
