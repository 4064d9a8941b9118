"""Tests for sharpjac.conjugate against independent oracles (float64, tiny models).

Oracles: the dense Hessian from ``torch.func.hessian`` of the loss in flat parameters (equal to
G for models linear in their parameters), the matrix-free ``GaussNewtonOperator``, per-sample
parameter Jacobians from ``torch.func.jacfwd`` of a flat-parameter function (forward mode), random
factorisations A for the G/K identity, and the exact scaling laws of the input rescaling.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian, jacfwd

from sharpjac import conjugate as cj
from sharpjac import losses
from sharpjac.curvature import GaussNewtonOperator

DT = torch.float64


def _mlp(seed=0, act=nn.Tanh, n0=5, widths=(6, 4), k=3, bias=True):
    torch.manual_seed(seed)
    mods, prev = [nn.Flatten()], n0
    for w in widths:
        mods += [nn.Linear(prev, w, bias=bias), act()]
        prev = w
    mods.append(nn.Linear(prev, k, bias=bias))
    return nn.Sequential(*mods).to(DT)


def _data(N=7, n0=5, k=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, n0, generator=g, dtype=DT), torch.randint(0, k, (N,), generator=g)


def _flat_fn(model):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def f(th, x):
        ps = {n: c.view(s) for n, c, s in zip(names, torch.split(th, sizes), shapes)}
        return functional_call(model, ps, (x,))

    return f, theta, sizes


def _phi_jacfwd(model, x):
    f, theta, _ = _flat_fn(model)
    return torch.stack([jacfwd(lambda th: f(th, xi[None])[0])(theta) for xi in x])  # [N, k, P]


@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_gauss_newton_equals_dense_hessian_for_linear_model(loss):
    # a model linear in its parameters has R = 0, so H = G exactly
    model = _mlp(widths=(), seed=3)
    x, y = _data()
    loss_fn = losses.get_loss(loss)
    f, theta, _ = _flat_fn(model)
    H = hessian(lambda th: loss_fn(f(th, x), y))(theta)
    C = losses.output_curvature(loss, model(x), y)
    G = cj.gauss_newton_matrix(model, x, C)
    assert torch.allclose(G, H, atol=1e-12, rtol=1e-10)


def test_gauss_newton_matches_matrix_free_operator():
    model = _mlp(seed=4)
    x, y = _data()
    loss_fn = losses.get_loss("ce")
    C = losses.output_curvature("ce", model(x), y)
    G = cj.gauss_newton_matrix(model, x, C)
    Gop = GaussNewtonOperator(model, loss_fn, (x, y)).to_dense()
    assert torch.allclose(G, Gop, atol=1e-12)
    # and against the forward-mode Jacobian oracle
    Phi = _phi_jacfwd(model, x)
    G2 = torch.einsum("nkp,nkl,nlq->pq", Phi, C, Phi) / len(x)
    assert torch.allclose(G, G2, atol=1e-12)


def test_shared_curvature_broadcasts():
    model = _mlp(seed=5)
    x, _ = _data()
    k = 3
    C = 2.0 / k * torch.eye(k, dtype=DT)
    assert torch.allclose(cj.gauss_newton_matrix(model, x, C), cj.gauss_newton_matrix(model, x, C.expand(len(x), k, k)))
    with pytest.raises(ValueError, match="curvature must have shape"):
        cj.gauss_newton_matrix(model, x, torch.eye(4, dtype=DT))


def test_curvature_check_is_one_function_shared_with_proposition_a():
    from sharpjac import theory

    model = _mlp(seed=5)
    x, _ = _data()
    C = cj.check_curvature(torch.eye(3, dtype=DT), len(x), 3, DT, x.device)
    assert C.shape == (len(x), 3, 3) and torch.equal(C[4], torch.eye(3, dtype=DT))
    # Proposition A refuses a wrong curvature with the same errors as the conjugate matrix
    for bad, err in ((torch.eye(4, dtype=DT), ValueError), (np.eye(3), TypeError)):
        with pytest.raises(err, match="curvature must"):
            theory.proposition_a(model, x, bad)
        with pytest.raises(err, match="curvature must"):
            cj.gauss_newton_matrix(model, x, bad)


def test_layer_helpers_of_jacobians_are_public():
    from sharpjac import jacobians

    model = _mlp(seed=2)
    x, _ = _data(N=4)
    assert jacobians.probe(model, x) == 3
    assert [n for n, _ in jacobians.trainable(model)] == [n for n, _ in model.named_parameters()]
    blocks = jacobians.split_layers(model)
    feats = jacobians.layer_features(model, x)
    Js = jacobians.block_jacobians(blocks, feats)
    Ds = jacobians.block_param_jacobians(blocks, feats)
    # against the single-sample layer functions (independent: one sample at a time)
    for a, b in zip(Js, jacobians.layer_jacobians(model, x[2])):
        assert torch.allclose(a[2], b, atol=1e-12)
    for a, b in zip(Ds, jacobians.layer_parameter_jacobians(model, x[2])):
        assert torch.allclose(a[2], b, atol=1e-12)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        jacobians.check_batch(model, [1.0])
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        jacobians.check_model("mlp")


def test_compare_nonzero_spectra_random_factorisation():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(12, 30, generator=g, dtype=DT) @ torch.diag(torch.linspace(0.1, 3, 30, dtype=DT))
    A[-2:] = A[:2]  # rank 10
    res = cj.compare_nonzero_spectra(A.T @ A, A @ A.T)
    assert res.max_abs_diff < 1e-12
    assert res.rank == torch.linalg.matrix_rank(A).item() == 10
    assert res.zero_eigenvalues_g == 30 - 10
    assert len(res.eigenvalues_g) == 12 and np.all(np.diff(res.eigenvalues_g) <= 1e-12)
    # a wrong K is detected
    bad = cj.compare_nonzero_spectra(A.T @ A, A @ A.T + 1e-3 * torch.eye(12, dtype=DT))
    assert bad.max_abs_diff > 5e-4
    with pytest.raises(ValueError, match="square"):
        cj.compare_nonzero_spectra(A, A @ A.T)


@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_conjugate_identity_on_mlp(loss):
    model = _mlp(seed=6, act=nn.ReLU)
    x, y = _data(N=6)
    C = losses.output_curvature(loss, model(x), y)
    G = cj.gauss_newton_matrix(model, x, C)
    K = cj.conjugate_matrix(model, x, C)
    res = cj.compare_nonzero_spectra(G, K)
    assert res.max_rel_diff < 1e-10
    # CE: C_i has the null vector 1, so rank <= N (k - 1)
    if loss == "ce":
        assert res.rank <= len(x) * 2


def test_layer_shares_match_eigenvector_mass_of_g():
    model = _mlp(seed=7)
    x, y = _data(N=5)
    C = losses.output_curvature("ce", model(x), y)
    parts = cj.conjugate_matrix_by_layer(model, x, C)
    sh = cj.layer_shares(parts, top=4)
    assert np.allclose(sh.shares.sum(1), 1.0, atol=1e-10)
    assert np.all(sh.shares > -1e-12)
    assert np.isclose(sh.trace_shares.sum(), 1.0)
    G = cj.gauss_newton_matrix(model, x, C)
    ev, V = torch.linalg.eigh(G)
    assert np.allclose(sh.eigenvalues, ev.flip(0)[:4].numpy(), atol=1e-12)
    _, _, sizes = _flat_fn(model)
    # layer l holds weight + bias of the l-th Linear
    bounds = np.cumsum([0] + [sizes[2 * i] + sizes[2 * i + 1] for i in range(3)])
    for j in range(4):
        v = V[:, -1 - j]
        mass = [float((v[bounds[l] : bounds[l + 1]] ** 2).sum()) for l in range(3)]
        assert np.allclose(mass, sh.shares[j], atol=1e-8)
    # traces: trace K^(l) = trace of G's layer-l diagonal block
    for l in range(3):
        blk = G[bounds[l] : bounds[l + 1], bounds[l] : bounds[l + 1]]
        assert math.isclose(float(blk.trace()), sh.traces[l], rel_tol=1e-10)
    with pytest.raises(ValueError, match="top"):
        cj.layer_shares(parts, top=0)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("act", [nn.Tanh, nn.ReLU])
def test_first_layer_kernel_against_parameter_jacobian_oracle(bias, act):
    model = _mlp(seed=8, act=act, bias=bias)
    x, y = _data(N=6)
    C = losses.output_curvature("ce", model(x), y)
    K1 = cj.first_layer_kernel(model, x, C)
    Phi = _phi_jacfwd(model, x)
    p1 = model[1].weight.numel() + (model[1].bias.numel() if bias else 0)
    ev, U = torch.linalg.eigh(C)
    S = (U * ev.clamp_min(0).sqrt()[:, None, :]) @ U.mT
    A1 = (S @ Phi[:, :, :p1]).reshape(-1, p1) / math.sqrt(len(x))
    assert torch.allclose(K1, A1 @ A1.T, atol=1e-12)


def test_first_layer_kernel_needs_dense_first_layer():
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(8, 3)).to(DT)
    with pytest.raises(ValueError, match="first block"):
        cj.first_layer_kernel(conv, torch.randn(2, 1, 4, 4, dtype=DT), torch.eye(3, dtype=DT))


def test_input_rescaling_scaling_laws():
    model = _mlp(seed=9, n0=5, widths=(6, 4))
    x, y = _data(N=6)
    C = losses.output_curvature("ce", model(x), y)
    scales = [0.1, 1.0, 7.0]
    df = cj.input_rescaling(model, x, C, scales)
    assert list(df["scale"]) == scales
    assert df["output_change"].max() < 1e-12
    j1 = float(df.loc[df.scale == 1.0, "jac_spectral_max"].iloc[0])
    assert np.allclose(df["jac_spectral_max"] * df["scale"], j1, rtol=1e-10)
    assert np.allclose(df["lambda_max_later"], df["lambda_max_later"].iloc[0], rtol=1e-10)
    # first-layer term: Gram factor c^2 <x_i, x_j> + 1 replaces <x_i, x_j> + 1
    K1 = cj.first_layer_kernel(model, x, C)
    gram = torch.kron(x @ x.T, torch.ones(3, 3, dtype=DT))
    BB = K1 / (gram + 1)
    for c, lam1, lam in zip(scales, df["lambda_max_layer1"], df["lambda_max"]):
        K1c = (c**2 * gram + 1) * BB
        assert math.isclose(lam1, float(torch.linalg.eigvalsh(K1c)[-1]), rel_tol=1e-9)
        parts = cj.conjugate_matrix_by_layer(model, x, C)
        Kc = K1c + sum(parts[1:])
        assert math.isclose(lam, float(torch.linalg.eigvalsh(Kc)[-1]), rel_tol=1e-9)
    # the original model is untouched
    assert torch.allclose(model(x), _mlp(seed=9, n0=5, widths=(6, 4))(x))
    with pytest.raises(ValueError, match="scales"):
        cj.input_rescaling(model, x, C, [1.0, -2.0])
