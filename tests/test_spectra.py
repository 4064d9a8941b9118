"""Tests for sharpjac.spectra and the training run's snapshots against independent oracles.

Oracles: dense Hessians from ``torch.func.hessian`` in flat parameters, dense Gauss-Newton
matrices from forward-mode per-sample Jacobians (``torch.func.jacfwd``), ``eigvalsh``, the closed
form R = 0 for models linear in their parameters, hand-made spectra, and a hand-written
full-batch gradient-descent loop for the snapshots.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian, jacfwd

from sharpjac import data, losses, spectra
from sharpjac.experiments import trained_run
from sharpjac.models import build_model
from sharpjac.training import TrainConfig

DT = torch.float64


def _problem(seed=0, widths=(5,), k=3, N=12, n0=4):
    torch.manual_seed(seed)
    mods, prev = [], n0
    for w in widths:
        mods += [nn.Linear(prev, w), nn.Tanh()]
        prev = w
    mods.append(nn.Linear(prev, k))
    model = nn.Sequential(*mods).to(DT)
    g = torch.Generator().manual_seed(seed + 100)
    x = torch.randn(N, n0, generator=g, dtype=DT)
    y = torch.arange(N) % k
    return model, x, y


def _dense(model, loss_fn, x, y):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def f(th, xb):
        return functional_call(model, {n: c.view(s) for n, c, s in zip(names, torch.split(th, sizes), shapes)}, (xb,))

    H = hessian(lambda th: loss_fn(f(th, x), y))(theta)
    Phi = torch.stack([jacfwd(lambda th: f(th, xi[None])[0])(theta) for xi in x])
    z = model(x).detach().requires_grad_(True)
    C = torch.stack([hessian(lambda zi: loss_fn(zi[None], y[i : i + 1]))(z[i].detach()) for i in range(len(x))])
    G = torch.einsum("nkp,nkl,nlq->pq", Phi, C, Phi)  # loss_fn of one sample: mean = itself
    return H, G / len(x)


@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_top_spectra_against_dense(loss):
    model, x, y = _problem(widths=(6,), N=10)
    lf = losses.get_loss(loss)
    H, G = _dense(model, lf, x, y)
    res = spectra.top_spectra(model, lf, (x, y), 5, tol=1e-10, max_iter=200)
    assert np.allclose(res.hessian, torch.linalg.eigvalsh(H).flip(0)[:5].numpy(), rtol=1e-7, atol=1e-10)
    assert np.allclose(res.gauss_newton, torch.linalg.eigvalsh(G).flip(0)[:5].numpy(), rtol=1e-7, atol=1e-10)
    assert res.converged and res.hessian_vectors.shape == (H.shape[0], 5)
    assert np.allclose(res.relative_difference, np.abs(res.hessian - res.gauss_newton) / np.abs(res.hessian))


def test_residual_operator_and_extremes_against_dense():
    model, x, y = _problem(widths=(6, 4), N=9)
    lf = losses.get_loss("ce")
    H, G = _dense(model, lf, x, y)
    R = spectra.ResidualOperator(model, lf, (x, y))
    assert torch.allclose(R.to_dense(), H - G, atol=1e-12)
    v = torch.randn(R.shape[0], 3, dtype=DT)
    assert torch.allclose(R @ v, (H - G) @ v, atol=1e-12) and R.num_matvecs == 3
    hi, lo = spectra.residual_extremes(model, lf, (x, y), tol=1e-10, max_iter=200)
    ev = torch.linalg.eigvalsh(H - G)
    assert np.isclose(hi, float(ev[-1]), rtol=1e-7) and np.isclose(lo, float(ev[0]), rtol=1e-7)
    assert lo < 0 < hi  # an indefinite residual for a non-linear model away from a minimum
    with pytest.raises(ValueError, match="sign"):
        spectra.ResidualOperator(model, lf, (x, y), sign=2)


@pytest.mark.parametrize("loss", ["mse", "ce"])
@pytest.mark.parametrize("batch_size", [None, 4])
def test_residual_operator_direct_product_against_dense_difference(loss, batch_size):
    # R @ v is the Hessian product of the loss with its output gradient frozen, not H @ v - G @ v:
    # checked against the dense H - G of the oracles, also with uneven physical batches (9 = 4 + 4 + 1)
    model, x, y = _problem(seed=3, widths=(5, 4), N=9)
    lf = losses.get_loss(loss)
    H, G = _dense(model, lf, x, y)
    for sign in (1, -1):
        R = spectra.ResidualOperator(model, lf, (x, y), batch_size=batch_size, sign=sign)
        assert torch.allclose(R.to_dense(), sign * (H - G), atol=1e-12)
        v = torch.randn(R.shape[0], dtype=DT)
        assert torch.allclose(R @ v, sign * (H - G) @ v, atol=1e-12) and R.num_matvecs == 1
    assert (H - G).abs().max() > 1e-3  # a non-trivial residual: the check can fail


def test_residual_vanishes_for_linear_model():
    model, x, y = _problem(widths=(), N=8)
    for name in ("mse", "ce"):
        R = spectra.ResidualOperator(model, losses.get_loss(name), (x, y))
        assert R.to_dense().abs().max() < 1e-13


def test_outlier_gap():
    lam = np.array([10.0, 9.0, 8.0, 2.0, 1.9, 1.8])
    assert spectra.outlier_gap(lam) == (3, 4.0)
    lam2 = np.array([50.0, 10.0, 9.0, 8.0, 2.0, 1.9])
    assert spectra.outlier_gap(lam2)[0] == 1
    assert spectra.outlier_gap(lam2, skip=1) == (4, 4.0)
    # negative tail is ignored
    assert spectra.outlier_gap(np.array([3.0, 1.0, 0.5, -1.0]))[0] == 1
    with pytest.raises(ValueError, match="descending"):
        spectra.outlier_gap(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="skip"):
        spectra.outlier_gap(lam, skip=9)


def test_class_mean_overlap():
    model, x, y = _problem(widths=(5,), N=12)
    lf = losses.get_loss("ce")
    params = list(model.parameters())
    grads = []
    for c in range(3):
        g = torch.autograd.grad(lf(model(x[y == c]), y[y == c]), params)
        grads.append(torch.cat([t.reshape(-1) for t in g]))
    Gm = torch.stack(grads, 1)
    inside = Gm @ torch.tensor([1.0, -2.0, 0.5], dtype=DT)
    Q, _ = torch.linalg.qr(Gm)
    w = torch.randn(Gm.shape[0], dtype=DT)
    outside = w - Q @ (Q.T @ w)
    half = inside / inside.norm() + outside / outside.norm()
    ov = spectra.class_mean_overlap(model, lf, x, y, torch.stack([inside, outside, half], 1), num_classes=3)
    assert np.allclose(ov, [1.0, 0.0, 0.5], atol=1e-10)
    with pytest.raises(ValueError, match="vectors"):
        spectra.class_mean_overlap(model, lf, x, y, torch.zeros(3, 1, dtype=DT), num_classes=3)


def _tiny_config(**kw):
    base = dict(
        dataset="digits",
        dataset_options={"n_train": 40, "n_test": 20},
        model="mlp",
        model_options={"widths": [6]},
        loss="mse",
        optimizer="gd",
        lr=0.05,
        max_steps=6,
        measure_every=3,
        sharpness_subset=0,
        jacobian_subset=0,
        dtype="float64",
        device="cpu",
        seed=3,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_snapshots_match_handwritten_gradient_descent():
    cfg = _tiny_config(snapshot_steps=[0, 2])
    run = trained_run(cfg, store=None)
    assert sorted(run.models) == [0, 2, 6]  # the final network is always kept
    assert list(run.frame["step"]) == [0, 2, 3, 6]  # snapshot steps are measured too
    ds = data.load("digits", dtype=DT, n_train=40, n_test=20)
    x, y = ds.x_train, ds.y_train
    model = build_model("mlp", input_shape=(1, 8, 8), num_classes=10, seed=3, widths=[6]).to(DT)
    lf = losses.get_loss("mse")
    for step in range(7):
        if step in run.models:
            for p, q in zip(model.parameters(), run.models[step].parameters()):
                assert torch.allclose(p, q, atol=1e-8, rtol=0)  # one update moves them ~1e-4
        loss = lf(model(x), y)
        grads = torch.autograd.grad(loss, list(model.parameters()))
        with torch.no_grad():
            model = _step(model, grads, 0.05)
    # the recorded loss at step 6 is the loss of the step-6 snapshot
    with torch.no_grad():
        assert np.isclose(
            float(run.frame.loc[run.frame.step == 6, "train_loss"].iloc[0]), float(lf(run.models[6](x), y)), rtol=1e-10
        )
    # snapshots are independent copies
    assert not torch.equal(next(run.models[2].parameters()), next(run.models[6].parameters()))


def _step(model, grads, lr):
    import copy

    new = copy.deepcopy(model)
    for p, g in zip(new.parameters(), grads):
        p.sub_(lr * g)
    return new


def test_snapshots_validation():
    with pytest.raises(ValueError, match=r"snapshot_steps=\(-1,\).*>= 0"):
        _tiny_config(snapshot_steps=[-1])
    with pytest.raises(ValueError, match="snapshot_steps"):
        _tiny_config(snapshot_steps=[1.5])
