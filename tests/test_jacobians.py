"""Tests for sharpjac.jacobians against independent oracles (float64, small models).

Oracles: per-sample ``torch.func.jacfwd`` (forward mode, unlike the reverse-mode code under
test), central finite differences, numpy SVD, closed forms for dense layers, a dense Gauss-Newton
matrix built from a flat-parameter ``jacfwd``, and brute-force grids.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, jacfwd, vmap

from sharpjac import conjugate as cj
from sharpjac import jacobians as jj

DT = torch.float64


# ------------------------------------------------------------------------------------ fixtures


def _mlp_tanh(seed=0):
    torch.manual_seed(seed)
    # Flatten + 6 -> 8 -> 7 -> 3; inputs [2, 3]
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 7), nn.Tanh(), nn.Linear(7, 3)).to(
        DT
    ), (2, 3)


def _mlp_tanh_wide_in(seed=1):
    torch.manual_seed(seed)
    # n0 = 12 > n1 = 5 >= k = 3: exercises the W1 W1^T Gram fast path of the norms
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.Tanh(), nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)).to(
        DT
    ), (3, 4)


def _mlp_relu(seed=2):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 6), nn.ReLU(), nn.Linear(6, 2)).to(DT), (5,)


def _cnn(seed=3):
    torch.manual_seed(seed)
    # 1x5x5 -> 2x5x5 -> 2x2x2 -> 3
    return nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.Tanh(), nn.Conv2d(2, 2, 3, stride=2), nn.ELU(), nn.Flatten(), nn.Linear(8, 3)
    ).to(DT), (1, 5, 5)


MODELS = {"mlp_tanh": _mlp_tanh, "mlp_tanh_wide_in": _mlp_tanh_wide_in, "mlp_relu": _mlp_relu, "cnn": _cnn}


@pytest.fixture(params=list(MODELS))
def problem(request):
    model, shape = MODELS[request.param]()
    g = torch.Generator().manual_seed(123)
    x = torch.randn((6, *shape), generator=g, dtype=DT)
    return model, x


def _oracle_jacobians(model, x):
    """Per-sample forward-mode Jacobians [N, k, n0]."""
    J = vmap(jacfwd(lambda z: model(z.unsqueeze(0))[0].reshape(-1)))(x)
    return J.reshape(J.shape[0], J.shape[1], -1).detach()


def _fd_jacobians(model, x, eps=1e-6):
    N, n0 = x.shape[0], x[0].numel()
    cols = []
    with torch.no_grad():
        for j in range(n0):
            e = torch.zeros(n0, dtype=DT)
            e[j] = eps
            e = e.reshape(x.shape[1:])
            cols.append((model(x + e) - model(x - e)).reshape(N, -1) / (2 * eps))
    return torch.stack(cols, dim=-1)


# ------------------------------------------------------------------------ input Jacobians


def test_input_jacobians_match_jacfwd_and_finite_differences(problem):
    model, x = problem
    J = jj.input_jacobians(model, x)
    assert J.shape == (x.shape[0], model(x[:1]).shape[1], x[0].numel())
    assert not J.requires_grad
    torch.testing.assert_close(J, _oracle_jacobians(model, x), rtol=0, atol=1e-13)
    torch.testing.assert_close(J, _fd_jacobians(model, x), rtol=0, atol=1e-7)


def test_chunk_size_does_not_change_result(problem):
    model, x = problem
    ref = jj.input_jacobians(model, x, chunk_size=256)
    for cs in (1, 4):
        torch.testing.assert_close(jj.input_jacobians(model, x, chunk_size=cs), ref, rtol=0, atol=1e-14)
        torch.testing.assert_close(
            jj.jacobian_norms(model, x, chunk_size=cs), jj.jacobian_norms(model, x), rtol=1e-13, atol=0
        )


def test_norms_match_numpy_svd(problem):
    model, x = problem
    Jo = _oracle_jacobians(model, x).numpy()
    spec = np.linalg.svd(Jo, compute_uv=False)[:, 0]
    frob = np.sqrt((Jo**2).sum(axis=(1, 2)))
    np.testing.assert_allclose(jj.jacobian_norms(model, x, "spectral").numpy(), spec, rtol=1e-10)
    np.testing.assert_allclose(jj.jacobian_norms(model, x, "frobenius").numpy(), frob, rtol=1e-10)


@pytest.mark.parametrize("method", ["power", "lanczos"])
def test_matrix_free_methods_match_exact_for_many_outputs(method):
    torch.manual_seed(4)
    # k = 40 outputs > n0 = 30 inputs; the matrix-free methods never form Jf
    model = nn.Sequential(nn.Linear(30, 20), nn.Tanh(), nn.Linear(20, 40)).to(DT)
    x = torch.randn(7, 30, dtype=DT)
    exact = np.linalg.svd(_oracle_jacobians(model, x).numpy(), compute_uv=False)[:, 0]
    est = jj.jacobian_norms(model, x, method=method, chunk_size=3, seed=1).numpy()
    np.testing.assert_allclose(est, exact, rtol=1e-9)
    assert (est <= exact * (1 + 1e-12)).all()  # Rayleigh quotient / Ritz value: lower estimate
    # two steps: still a lower estimate, and visibly less accurate
    rough = jj.jacobian_norms(model, x, method=method, max_iter=2, seed=1).numpy()
    assert (rough <= exact * (1 + 1e-12)).all() and np.abs(rough - exact).max() > 1e-9


@pytest.mark.parametrize("method", ["power", "lanczos"])
def test_matrix_free_methods_on_cnn(method):
    model, shape = _cnn()
    x = torch.randn((5, *shape), dtype=DT)
    exact = np.linalg.svd(_oracle_jacobians(model, x).numpy(), compute_uv=False)[:, 0]
    np.testing.assert_allclose(jj.jacobian_norms(model, x, method=method).numpy(), exact, rtol=1e-9)


def test_lanczos_converges_when_power_stalls():
    """Close top singular values: Lanczos terminates in <= k + 1 steps, power does not."""
    torch.manual_seed(11)
    U = torch.linalg.qr(torch.randn(8, 8, dtype=DT))[0]
    V = torch.linalg.qr(torch.randn(8, 8, dtype=DT))[0]
    W = U @ torch.diag(torch.tensor([1.0, 0.999, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05], dtype=DT)) @ V.T
    model = nn.Sequential(nn.Linear(8, 8, bias=False)).to(DT)
    with torch.no_grad():
        model[0].weight.copy_(W)
    x = torch.randn(2, 8, dtype=DT)
    lz = jj.jacobian_norms(model, x, method="lanczos", max_iter=9)
    pw = jj.jacobian_norms(model, x, method="power", max_iter=9)
    torch.testing.assert_close(lz, torch.ones(2, dtype=DT), rtol=1e-12, atol=0)
    assert ((1 - pw) > 1e-6).all()


def test_stats_are_max_and_mean_of_norms(problem):
    model, x = problem
    st = jj.jacobian_stats(model, x, chunk_size=4)
    Jo = _oracle_jacobians(model, x).numpy()
    spec = np.linalg.svd(Jo, compute_uv=False)[:, 0]
    frob = np.linalg.norm(Jo, axis=(1, 2))
    expect = dict(
        spectral_max=spec.max(), spectral_mean=spec.mean(), frobenius_max=frob.max(), frobenius_mean=frob.mean()
    )
    d = st.as_dict()
    assert set(d) == set(expect)
    for key, val in expect.items():
        assert isinstance(d[key], float)
        assert d[key] == pytest.approx(val, rel=1e-10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        st.spectral_max = 0.0


def test_create_graph_gives_parameter_gradients():
    model, shape = _mlp_tanh_wide_in()
    x = torch.randn((4, *shape), dtype=DT)
    assert not jj.jacobian_norms(model, x).requires_grad
    n = jj.jacobian_norms(model, x, "frobenius", create_graph=True)
    (g,) = torch.autograd.grad(n.square().sum(), model[1].weight)
    # oracle: finite difference of sum_i ||Jf(x_i)||_F^2 along a random weight direction
    d = torch.randn_like(model[1].weight)
    eps = 1e-6

    def total(w):
        with torch.no_grad():
            old = model[1].weight.detach().clone()
            model[1].weight.copy_(w)
            val = _oracle_jacobians(model, x).square().sum()
            model[1].weight.copy_(old)
        return val

    w0 = model[1].weight.detach().clone()
    fd = (total(w0 + eps * d) - total(w0 - eps * d)) / (2 * eps)
    assert float((g * d).sum()) == pytest.approx(float(fd), rel=1e-6)


# ------------------------------------------------------------------------ layer structure


def test_split_layers_blocks():
    model, _ = _mlp_tanh()
    blocks = jj.split_layers(model)
    assert [list(b) for b in blocks] == [[model[0], model[1], model[2]], [model[3], model[4]], [model[5]]]

    class Wrapped(nn.Module):
        def __init__(self, layers):
            super().__init__()
            self.layers = layers

        def forward(self, x):
            return self.layers(x)

    assert len(jj.split_layers(Wrapped(model))) == 3
    cnn, _ = _cnn()
    assert [list(b) for b in jj.split_layers(cnn)] == [[cnn[0], cnn[1]], [cnn[2], cnn[3], cnn[4]], [cnn[5]]]
    with pytest.raises(TypeError, match="Sequential"):
        jj.split_layers(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="trainable"):
        jj.split_layers(nn.Sequential(nn.Flatten(), nn.Tanh()))


def test_features_and_layer_jacobian_product(problem):
    model, x = problem
    feats = jj.layer_features(model, x)
    assert len(feats) == len(jj.split_layers(model)) + 1
    torch.testing.assert_close(feats[-1], model(x), rtol=0, atol=0)
    Jo = _oracle_jacobians(model, x)
    for i in (0, 3):
        Js = jj.layer_jacobians(model, x[i])
        n = [f[0].numel() for f in feats]
        assert [tuple(J.shape) for J in Js] == [(n[l + 1], n[l]) for l in range(len(Js))]
        P = jj.partial_products(Js)
        torch.testing.assert_close(P[0], Jo[i], rtol=0, atol=1e-13)
        torch.testing.assert_close(P[-1], torch.eye(n[-1], dtype=DT), rtol=0, atol=0)
        # each partial product is the Jacobian of the tail of the network (oracle: jacfwd)
        blocks = jj.split_layers(model)
        for l in range(1, len(blocks)):
            tail = nn.Sequential(*blocks[l:])
            z = feats[l][i]
            Jt = jacfwd(lambda v: tail(v.unsqueeze(0))[0].reshape(-1))(z).reshape(n[-1], -1)
            torch.testing.assert_close(P[l], Jt, rtol=0, atol=1e-13)


def _flat_param_jacobian(model, x):
    """Oracle Phi [N, k, P] by forward mode over one flat parameter vector."""
    names = [n for n, p in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def f(th, xi):
        parts, o = {}, 0
        for n, s in zip(names, shapes):
            parts[n] = th[o : o + math.prod(s)].reshape(s)
            o += math.prod(s)
        return functional_call(model, parts, (xi.unsqueeze(0),)).reshape(-1)

    return torch.stack([jacfwd(f)(theta, xi) for xi in x]).detach()


def test_parameter_jacobian_blocks(problem):
    model, x = problem
    Phi = jj.per_sample_parameter_jacobians(model, x, chunk_size=4)
    torch.testing.assert_close(Phi, _flat_param_jacobian(model, x), rtol=0, atol=1e-13)
    blocks = jj.split_layers(model)
    sizes = [sum(p.numel() for p in b.parameters()) for b in blocks]
    offs = np.concatenate([[0], np.cumsum(sizes)])
    for i in (1, 4):
        P = jj.partial_products(jj.layer_jacobians(model, x[i]))
        Ds = jj.layer_parameter_jacobians(model, x[i])
        assert [D.shape[1] for D in Ds] == sizes
        for l, D in enumerate(Ds, start=1):
            torch.testing.assert_close(Phi[i][:, offs[l - 1] : offs[l]], P[l] @ D, rtol=0, atol=1e-13)


def test_dense_layer_parameter_kernel_closed_form():
    model, shape = _mlp_tanh()
    x = torch.randn((2, *shape), dtype=DT)
    feats = jj.layer_features(model, x)
    D0 = jj.layer_parameter_jacobians(model, x[0])
    D1 = jj.layer_parameter_jacobians(model, x[1])
    linears = [model[1], model[3], model[5]]
    for l in range(3):
        a, b = feats[l][0].reshape(-1), feats[l][1].reshape(-1)
        if l < 2:  # tanh block: D = diag(1 - tanh(h)^2)
            da = 1 - torch.tanh(linears[l](a)) ** 2
            db = 1 - torch.tanh(linears[l](b)) ** 2
        else:
            da = db = torch.ones(3, dtype=DT)
        closed = (a @ b + 1) * torch.diag(da * db)
        torch.testing.assert_close(D0[l] @ D1[l].T, closed.detach(), rtol=0, atol=1e-13)


def _mse_curvature(N, k):
    return (2.0 / k) * torch.eye(k, dtype=DT).expand(N, k, k).clone()


def _ce_curvature(model, x):
    with torch.no_grad():
        p = torch.softmax(model(x), dim=1)
    return torch.diag_embed(p) - p[:, :, None] * p[:, None, :]


@pytest.mark.parametrize("loss", ["mse", "ce"])
@pytest.mark.parametrize("name", ["mlp_tanh", "cnn"])
def test_conjugate_matrix_spectrum_equals_gauss_newton(loss, name):
    model, shape = MODELS[name]()
    N = 5
    x = torch.randn((N, *shape), dtype=DT)
    k = model(x[:1]).shape[1]
    C = _mse_curvature(N, k) if loss == "mse" else _ce_curvature(model, x)
    parts = cj.conjugate_matrix_by_layer(model, x, C)
    K = cj.conjugate_matrix(model, x, C)
    assert K.shape == (N * k, N * k) and len(parts) == len(jj.split_layers(model))
    torch.testing.assert_close(K, sum(parts), rtol=0, atol=1e-14)
    torch.testing.assert_close(K, K.T, rtol=0, atol=1e-14)
    # explicit Gauss-Newton matrix from the oracle Phi
    Phi = _flat_param_jacobian(model, x)
    G = sum(Phi[i].T @ C[i] @ Phi[i] for i in range(N)) / N
    ek = np.sort(np.linalg.eigvalsh(K.numpy()))[::-1]
    eg = np.sort(np.linalg.eigvalsh(G.numpy()))[::-1]
    assert G.shape[0] > N * k
    np.testing.assert_allclose(ek, eg[: N * k], rtol=0, atol=1e-8 * max(1.0, eg[0]))
    np.testing.assert_allclose(eg[N * k :], 0, atol=1e-8 * max(1.0, eg[0]))
    if loss == "ce":  # C_i 1 = 0: K has (at least) N zero eigenvalues
        assert np.sum(np.abs(ek) < 1e-10) >= N


def test_first_layer_weights_absent_from_conjugate_matrix():
    """Mediating factor 3: K sees W_1 only through the first-layer pre-activations W_1 x_i + b_1.

    With N < n_0 samples, a perturbation E of W_1 with E x_i = 0 for all i (E maps the data span
    to 0) leaves every pre-activation, feature and hence K unchanged, but it changes the input
    Jacobians Jf(x_i) = Jf_{L:2} D_1 (W_1 + E) - by a lot. The same kind of perturbation of W_2
    (E_2 x^(1)_i = 0) does change K, through the partial product Jf_{L:2} of the layer-1 term.
    """
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(10, 12), nn.Tanh(), nn.Linear(12, 9), nn.Tanh(), nn.Linear(9, 3)).to(DT)
    N = 4
    x = torch.randn(N, 10, dtype=DT)
    C = _ce_curvature(model, x)
    parts0 = cj.conjugate_matrix_by_layer(model, x, C)
    K0 = sum(parts0)
    J0 = jj.jacobian_norms(model, x)

    def null_perturbation(Z, rows, scale):
        # E = M (I - Z^+ Z): E z = 0 for every row z of Z
        proj = torch.eye(Z.shape[1], dtype=DT) - torch.linalg.pinv(Z) @ Z
        return scale * torch.randn(rows, Z.shape[1], dtype=DT) @ proj

    W1 = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight += null_perturbation(x, 12, 5.0)
    K1 = cj.conjugate_matrix(model, x, C)
    J1 = jj.jacobian_norms(model, x)
    torch.testing.assert_close(K1, K0, rtol=0, atol=1e-12)
    assert (J1 > 3 * J0).all()  # the Jacobian changed a lot, K did not

    with torch.no_grad():
        model[0].weight.copy_(W1)
        h1 = jj.layer_features(model, x)[1]
        model[2].weight += null_perturbation(h1, 9, 5.0)
    parts2 = cj.conjugate_matrix_by_layer(model, x, C)
    # layers 2, 3: features, D_l and Jf_3 unchanged -> same parts; layer 1: Jf_{L:2} = Jf_3 D_2 W_2
    # changed -> its part changes
    for l in (1, 2):
        torch.testing.assert_close(parts2[l], parts0[l], rtol=0, atol=1e-12)
    assert (parts2[0] - parts0[0]).abs().max() > 1e-2 * parts0[0].abs().max()


# ------------------------------------------------------------------- Lipschitz and variation


def test_lipschitz_bounds_sandwich_finite_difference_ratios():
    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 16), nn.ELU(alpha=1.5), nn.Linear(16, 2)).to(DT)
    x = torch.randn(20, 4, dtype=DT)
    lower = jj.lipschitz_lower_bound(model, x)
    upper = jj.lipschitz_upper_bound(model)
    ws = [m.weight.detach().numpy() for m in model if isinstance(m, nn.Linear)]
    closed = np.prod([np.linalg.svd(w, compute_uv=False)[0] for w in ws]) * 1.5
    assert upper == pytest.approx(closed, rel=1e-12)
    g = torch.Generator().manual_seed(0)
    a = 3 * torch.randn(2000, 4, generator=g, dtype=DT)
    b = a + torch.randn(2000, 4, generator=g, dtype=DT) * torch.rand(2000, 1, generator=g, dtype=DT)
    with torch.no_grad():
        ratios = (model(a) - model(b)).norm(dim=1) / (a - b).norm(dim=1)
        # pairs at the sample along each top right-singular vector: ratio -> ||Jf(x_i)||_2
        J = _oracle_jacobians(model, x)
        v = torch.linalg.svd(J)[2][:, 0, :]
        h = 1e-5
        near = (model(x + h * v) - model(x - h * v)).norm(dim=1) / (2 * h)
    assert ratios.max() <= upper and near.max() <= upper
    assert lower <= upper
    assert float(near.max()) == pytest.approx(lower, rel=1e-8)  # the lower bound is attained
    assert lower >= 0.5 * float(ratios.max())  # and is not vacuous on this model


def test_conv_operator_norm_matches_dense_matrix():
    torch.manual_seed(7)
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1).to(DT)
    shape = (2, 7, 7)
    A = (
        jacfwd(lambda z: F.conv2d(z.unsqueeze(0), conv.weight, None, 2, 1)[0].reshape(-1))(torch.zeros(shape, dtype=DT))
        .reshape(-1, math.prod(shape))
        .detach()
        .numpy()
    )
    dense = np.linalg.svd(A, compute_uv=False)[0]
    est = jj.lipschitz_upper_bound(nn.Sequential(conv), input_shape=shape)
    assert est == pytest.approx(dense, rel=1e-9)
    cnn, cshape = _cnn()
    ub = jj.lipschitz_upper_bound(cnn, input_shape=cshape)
    x = torch.randn((10, *cshape), dtype=DT)
    assert jj.lipschitz_lower_bound(cnn, x) <= ub
    with pytest.raises(ValueError, match="input_shape"):
        jj.lipschitz_upper_bound(cnn)
    with pytest.raises(NotImplementedError, match="LayerNorm"):
        jj.lipschitz_upper_bound(nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3)).to(DT))


def test_local_variation_linear_tanh_and_radius():
    torch.manual_seed(8)
    lin = nn.Sequential(nn.Linear(5, 8), nn.Linear(8, 3)).to(DT)
    x = torch.randn(4, 5, dtype=DT)
    assert jj.local_variation(lin, x, 1.0, num_samples=8).abs().max() <= 1e-12
    tanh = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).to(DT)
    v_small = jj.local_variation(tanh, x, 0.05, num_samples=8, seed=1)
    v_big = jj.local_variation(tanh, x, 0.5, num_samples=8, seed=1)
    assert v_small.shape == (4,)
    assert (v_small > 0).all() and (v_big > v_small).all()
    # radius 0: the same Jacobian is computed twice, but inside batches of different composition,
    # and float64 rounding may differ with the batch layout (6.8e-17 was seen, not 0): compare to a
    # few hundred ulps of the Jacobian's own norm instead of to exact zero.
    scale = 1e3 * torch.finfo(DT).eps * jj.jacobian_norms(tanh, x)
    assert (jj.local_variation(tanh, x, 0.0) <= scale).all()
    no_ascent = jj.local_variation(tanh, x, 0.5, num_samples=8, ascent_steps=0, seed=1)
    assert (v_big >= no_ascent).all()  # ascent only ever improves the estimate


def test_local_variation_against_brute_force_grid():
    """One-dimensional input: the ball is an interval, so the supremum is found on a grid."""
    torch.manual_seed(9)
    model = nn.Sequential(nn.Linear(1, 6), nn.Tanh(), nn.Linear(6, 2)).to(DT)
    with torch.no_grad():
        model[0].weight.mul_(3)
    x = torch.tensor([[0.1], [-0.7]], dtype=DT)
    r = 0.4
    est = jj.local_variation(model, x, r, num_samples=4, ascent_steps=10, seed=0)
    for i in range(2):
        grid = x[i, 0] + torch.linspace(-r, r, 4001, dtype=DT)[:, None]
        Jg = _oracle_jacobians(model, grid)
        J0 = _oracle_jacobians(model, x[i : i + 1])
        sup = torch.linalg.matrix_norm(Jg - J0, ord=2).max()
        assert est[i] <= sup * (1 + 1e-9) + 1e-12  # a lower estimate
        assert est[i] >= 0.97 * sup  # and a good one


# ------------------------------------------------------------------------------ errors


def test_errors_name_shapes_and_values():
    model, shape = _mlp_tanh()
    x = torch.randn((3, *shape), dtype=DT)
    with pytest.raises(ValueError, match=r"empty.*\(0, 2, 3\)"):
        jj.input_jacobians(model, x[:0])
    with pytest.raises(ValueError, match=r"\(6,\)"):
        jj.jacobian_norms(model, torch.randn(6, dtype=DT))
    with pytest.raises(ValueError, match=r"\(3, 2, 4\)"):
        jj.input_jacobians(model, torch.randn(3, 2, 4, dtype=DT))
    with pytest.raises(ValueError, match="trainable parameter"):
        jj.input_jacobians(nn.Sequential(nn.Flatten(), nn.Tanh()), x)
    with pytest.raises(TypeError, match="dtype"):
        jj.input_jacobians(model, x.float())
    with pytest.raises(ValueError, match="norm"):
        jj.jacobian_norms(model, x, "nuclear")
    with pytest.raises(ValueError, match="power"):
        jj.jacobian_norms(model, x, "frobenius", method="power")
    with pytest.raises(ValueError, match="method"):
        jj.jacobian_norms(model, x, method="svd")
    with pytest.raises(ValueError, match="chunk_size"):
        jj.input_jacobians(model, x, chunk_size=0)
    with pytest.raises(ValueError, match=r"\[3, 3, 3\]"):
        cj.conjugate_matrix(model, x, torch.eye(4, dtype=DT))
    with pytest.raises(ValueError, match="semi-definite"):
        cj.conjugate_matrix(model, x, -torch.eye(3, dtype=DT))
    with pytest.raises(ValueError, match="radius"):
        jj.local_variation(model, x, -1.0)
    with pytest.raises(ValueError, match=r"jacobians\[1\] has shape \(2, 2\)"):
        jj.partial_products([torch.eye(3), torch.eye(2)])


def test_batchnorm_train_mode_is_rejected_and_mode_untouched():
    torch.manual_seed(10)
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Tanh(), nn.Linear(5, 2)).to(DT)
    x = torch.randn(6, 4, dtype=DT)
    model(x)  # populate running statistics
    model.train()
    with pytest.raises(ValueError, match=r"eval\(\)"):
        jj.input_jacobians(model, x)
    assert model.training and model[1].training
    model.eval()
    torch.testing.assert_close(jj.input_jacobians(model, x), _oracle_jacobians(model, x), rtol=0, atol=1e-13)
    assert not model.training
