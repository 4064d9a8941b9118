"""The paper rehearsal (``make rehearse``): the one shrinking rule, the toy CIFAR-10 read by the real
reader, and every chapter executed on the paper preset's path at toy size."""

from __future__ import annotations

from pathlib import Path

import pytest

from sharpjac import data, experiments, publish, rehearsal
from sharpjac.runs import config_key

ROOT = Path(__file__).resolve().parents[1]


def test_the_rule_keeps_the_paper_path_and_shrinks_the_sizes(monkeypatch):
    paper = experiments.get("weight_decay").preset("paper")
    monkeypatch.setenv(rehearsal.ENV, "1")
    toy = experiments.get("weight_decay").preset("paper")
    smoke = experiments.get("weight_decay").config_cls.PRESETS["smoke"]
    # rule 1: the paper's data set, model, optimiser and measurements
    for name in ("dataset", "model", "momentum", "lr"):
        assert getattr(toy, name) == getattr(paper, name)
    # rule 2: the smoke preset's grid and seeds; rule 3: capped sizes
    assert toy.weight_decays == smoke["weight_decays"] and toy.lrs == smoke["lrs"] and toy.seeds == (0,)
    # batch sizes scale with the training set (smoke: 50 of 200 points; here 16 of 64)
    assert (toy.n_train, toy.n_test, toy.max_epochs, toy.batch_size) == (64, 32, 1, 16)
    assert toy.sharpness_subset == 16 and toy.jacobian_subset == 8
    # other fields, other run keys: a store never mixes rehearsal runs with paper runs
    paper_keys = {config_key(tc) for _, tc in paper.grid()}
    toy_grid = toy.grid()
    assert not paper_keys & {config_key(tc) for _, tc in toy_grid}
    assert all(tc.model == "resnet18" and tc.dataset == "cifar10" for _, tc in toy_grid)
    # only the paper preset is shrunk
    quick = experiments.get("weight_decay").config_cls(**experiments.get("weight_decay").config_cls.PRESETS["quick"])
    assert experiments.get("weight_decay").preset("quick") == quick
    monkeypatch.delenv(rehearsal.ENV)
    assert experiments.get("weight_decay").preset("paper") == paper


def test_grids_of_batch_sizes_stay_distinct_and_fit_the_capped_training_set(monkeypatch):
    monkeypatch.setenv(rehearsal.ENV, "1")
    toy = experiments.get("batch_size").preset("paper")
    assert toy.batch_sizes == (16, 32) and max(toy.batch_sizes) <= toy.n_train  # smoke: (50, 100) of 200


def test_a_cap_the_experiment_refuses_keeps_its_smoke_value(monkeypatch):
    monkeypatch.setenv(rehearsal.ENV, "1")
    cls = experiments.get("hessian_structure").config_cls
    toy = cls.preset("paper")
    assert toy.steps == cls.PRESETS["smoke"]["steps"]  # its check needs >= 5 steps; 2 is refused
    assert toy.n_train == 64


def test_switch_is_checked(monkeypatch):
    monkeypatch.setenv(rehearsal.ENV, "yes")
    with pytest.raises(ValueError, match=r"\$SHARPJAC_REHEARSAL='yes' is invalid; accepted"):
        rehearsal.active()
    monkeypatch.delenv(rehearsal.ENV)
    with rehearsal.rehearsal():
        assert rehearsal.active()
    assert not rehearsal.active()


def test_toy_cifar_is_read_by_the_real_reader(tmp_path):
    folder = rehearsal.write_toy_cifar(tmp_path)
    assert folder.name == "cifar-10-batches-py"
    with rehearsal.rehearsal():
        ds = data.load("cifar10", seed=0, n_train=64, n_test=32, root=tmp_path)
    assert tuple(ds.x_train.shape) == (64, 3, 32, 32) and len(ds.x_test) == 32
    assert set(ds.y_train.tolist()) == set(range(10))  # stratified: every class


def test_toy_cifar_is_refused_outside_the_rehearsal(tmp_path, monkeypatch):
    """Toy images never stand in for CIFAR-10: without the rehearsal the toy folder is refused in one
    line, and a toy file changed after writing is refused even inside it."""
    from sharpjac.data import cifar

    assert cifar._REHEARSAL_ENV == rehearsal.ENV
    folder = rehearsal.write_toy_cifar(tmp_path)
    monkeypatch.delenv(rehearsal.ENV, raising=False)
    with pytest.raises(ValueError, match="toy CIFAR-10 written by the paper rehearsal"):
        data.load("cifar10", seed=0, n_train=64, n_test=32, root=tmp_path)
    (folder / "test_batch").write_bytes(b"changed")
    with rehearsal.rehearsal(), pytest.raises(ValueError, match="test_batch"):
        data.load("cifar10", seed=0, n_train=64, n_test=32, root=tmp_path)


@pytest.mark.book
def test_every_chapter_runs_on_the_paper_path(tmp_path):
    """`make rehearse` in the test suite: every chapter executes with preset="paper" at toy size
    (17 chapters in 204 s on 2 cores, measured with a load of about 2)."""
    results = rehearsal.rehearse(ROOT, tmp_path, log=lambda *_: None)
    assert [r.name for r in results] == publish.chapters(ROOT)
    assert all(r.status == "executed" for r in results)
