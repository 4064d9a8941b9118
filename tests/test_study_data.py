"""The ``data`` study: the tables of the chapter *The data in this book*.

Oracles: ``numpy.bincount`` of the loaded labels, the manifold generator applied to the stored
latents, and a numpy SVD (``numpy.linalg.svd``) of the centred 16-dimensional surface.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sharpjac import data, experiments
from sharpjac.experiments.data import DataConfig
from sharpjac.runs import RunStore


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("data-store"))
    cfg = DataConfig.preset("smoke")
    return store, cfg, experiments.get("data").run(cfg, store=store)


def test_smoke_tables_and_columns(smoke):
    _, cfg, tables = smoke
    assert set(tables) == {"datasets", "class_counts", "curve", "surface", "principal_components", "explained"}
    ds = tables["datasets"].set_index("label")
    assert list(ds.index) == ["mnist5k", "digits", "curve", "surface", "surface16"]
    assert ds.loc["mnist5k", "n_train"] == cfg.n_train and ds.loc["mnist5k", "n_test"] == cfg.n_test
    assert ds.loc["digits", "n_train"] == min(cfg.n_train, 1400)
    assert ds.loc["mnist5k", "input_shape"] == "1x28x28" and ds.loc["surface16", "input_shape"] == "16"
    assert list(tables["curve"].columns) == ["x1", "x2", "label"] and len(tables["curve"]) == cfg.n_points
    assert list(tables["surface"].columns) == ["x1", "x2", "x3", "label"]
    assert list(tables["principal_components"].columns) == ["pc1", "pc2", "z1", "z2"]
    assert tables["explained"]["fraction"].between(0, 1).all()
    # the manifold generators are scaled to L_g = 1 (the data set's default); float rounding of the product
    np.testing.assert_allclose(ds.loc[["curve", "surface", "surface16"], "lipschitz"], 1.0, rtol=1e-12)


def test_class_counts_and_statistics_against_the_loader(smoke):
    _, cfg, tables = smoke
    mnist = data.load("mnist5k", seed=cfg.data_seed, n_train=cfg.n_train, n_test=cfg.n_test)
    counts = tables["class_counts"].query("label == 'mnist5k'")
    assert np.array_equal(counts["train"], np.bincount(mnist.y_train.numpy(), minlength=10))
    assert np.array_equal(counts["test"], np.bincount(mnist.y_test.numpy(), minlength=10))
    ds = tables["datasets"].set_index("label")
    assert ds.loc["mnist5k", "pixel_mean"] == float(mnist.extras["mean"])
    assert ds.loc["mnist5k", "pixel_std"] == float(mnist.extras["std"])


def test_principal_components_against_numpy_svd(smoke):
    _, cfg, tables = smoke
    high = data.load("manifold", seed=cfg.data_seed, d=2, n=16, n_train=cfg.n_points, n_test=10)
    z = high.extras["latent_train"].double()
    x = high.extras["generator"](z).numpy()  # the points are the generator at the stored latents
    x = x - x.mean(0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    pcs = tables["principal_components"]
    # a principal axis is defined up to sign; float32 data through the generator again: loose tolerance
    for j in range(2):
        ref = x @ vt[j]
        got = pcs[f"pc{j + 1}"].to_numpy()
        sign = np.sign(ref @ got)
        np.testing.assert_allclose(sign * got, ref, atol=1e-5 * np.abs(ref).max())
    np.testing.assert_allclose(tables["explained"]["fraction"], (s**2 / (s**2).sum())[:4], rtol=1e-4)
    np.testing.assert_allclose(pcs[["z1", "z2"]].to_numpy(), z.numpy(), rtol=0, atol=0)


def test_second_run_computes_nothing(smoke, monkeypatch):
    store, cfg, first = smoke

    def fail(*a, **k):
        raise AssertionError("the stored study was computed again")

    monkeypatch.setattr("sharpjac.runs.train", fail)
    monkeypatch.setattr(DataConfig, "compute", fail)
    again = experiments.get("data").run(cfg, store=store)
    for name, df in first.items():
        pd.testing.assert_frame_equal(again[name], df)


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"n_points": 0}, "n_points"),
        ({"n_train": 4500, "n_test": 1000}, "n_train"),
        ({"n_test": 1.5}, "n_test"),
    ],
)
def test_validation_names_the_field(kw, field):
    with pytest.raises(ValueError, match=rf"^DataConfig\.{field}=\S.*accepted: [^\n]*$"):
        DataConfig.from_preset("smoke", **kw)


def test_registered_with_its_chapter():
    exp = experiments.get("data")
    assert exp.chapter == "The data in this book" and exp.config_cls is DataConfig
    assert DataConfig.preset("quick").trains() == []  # nothing is trained


# --- the chapter's mapping and statistics (issue 18) ---------------------------------------------


def test_chapter_configs_and_summary(smoke):
    import torch

    from sharpjac.experiments import data as data_study

    _, cfg, tables = smoke
    assert experiments.get("data").configs_for("smoke", 0) == [DataConfig.preset("smoke")]
    assert experiments.get("data").configs_for("quick", 2)[0].data_seed == 2
    s = data_study.summarise(tables)
    counts = tables["class_counts"].query("label == 'mnist5k'")
    train, test = counts["train"].to_numpy(), counts["test"].to_numpy()
    assert s.values["max_share_diff"] == pytest.approx(100 * np.max(np.abs(train / train.sum() - test / test.sum())))
    assert s.values["mnist_train"] == cfg.n_train and isinstance(s.values["digits_description"], str)
    long = s.tables["counts_long"]  # the bars' frame: every (class, split) once, with the loader's count
    assert len(long) == 2 * len(counts) and list(long["split"].unique()) == ["train", "test"]
    assert long.query("split == 'test'")["images"].tolist() == test.tolist()
    assert s.tables["curve"]["label"].is_monotonic_increasing and len(s.tables["curve"]) == len(tables["curve"])
    from sharpjac.tables import LABELS

    assert all(set(s.tables[t].columns) <= set(LABELS) for t in ("datasets_shown",))  # every shown column has a label
    idx = data_study.examples_by_class(torch.tensor([2, 0, 1, 0, 2, 1]), 2, num_classes=3)
    assert idx.tolist() == [[1, 2, 0], [3, 5, 4]]
    with pytest.raises(ValueError, match="per_class=3; accepted: at most 2"):
        data_study.examples_by_class(torch.tensor([2, 0, 1, 0, 2, 1]), 3, num_classes=3)
    text = data_study.seed_solution(cfg, 0)
    # stratified splits keep the class counts; the generator's constant does not depend on the seed
    assert "the class counts are the same" in text and "$L_g$ is the same" in text
    assert "the MNIST training images differ" in text


def test_docstring_examples_of_the_chapter_helpers():
    import doctest

    from sharpjac.experiments import _chapter
    from sharpjac.experiments import data as data_study

    for module in (data_study, _chapter):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_class_images_are_the_first_of_each_class_rescaled():
    import torch

    from sharpjac import data
    from sharpjac.experiments import data as data_study

    ds = data.load("digits", seed=0, n_train=200, n_test=50)
    images = data_study.class_images(ds, 2)
    assert images.shape == (2, 10, 8, 8)
    assert images.min() == 0.0 and images.max() == 1.0
    first_seven = int(torch.nonzero(ds.y_train == 7).flatten()[1])  # row 1 is the second example
    raw = ds.x_train[first_seven, 0].double().numpy()
    assert np.allclose(images[1, 7], (raw - raw.min()) / (raw.max() - raw.min()))
