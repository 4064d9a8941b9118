"""Tests of sharpjac.curvature against independent oracles (float64, small models).

Oracles: dense ``torch.func.hessian`` (forward-over-reverse) of the full-batch loss as a function
of the flattened parameters; central finite differences of the gradient; the explicit
Gauss-Newton sum with ``torch.func.jacrev`` Jacobians and closed-form output curvatures; the
closed form of linear regression; ``torch.linalg.eigvalsh`` of dense matrices.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.func import functional_call
from torch.utils.data import DataLoader, TensorDataset

from sharpjac.curvature import (
    EigenResult,
    GaussNewtonOperator,
    HessianOperator,
    lanczos,
    power_iteration,
    sharpness,
    spectral_density,
    trace,
)

DT = torch.float64


def mse(z, y):
    """Mean squared error written with elementary ops (== F.mse_loss, reduction='mean')."""
    return ((z - y) ** 2).mean()


def ce(z, y):
    return F.cross_entropy(z, y)


# --------------------------------------------------------------------------------------------
# Problems (fixtures)
# --------------------------------------------------------------------------------------------


def _make(name: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    N = 20
    if name == "mlp_tanh_mse":
        model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
        x = torch.randn(N, 4, generator=g, dtype=DT)
        y = torch.randn(N, 3, generator=g, dtype=DT)
        loss, kind = mse, "mse"
    elif name == "mlp_relu_ce":
        model = nn.Sequential(nn.Linear(4, 7), nn.ReLU(), nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 3))
        x = torch.randn(N, 4, generator=g, dtype=DT)
        y = torch.randint(0, 3, (N,), generator=g)
        loss, kind = ce, "ce"
    elif name == "cnn_tanh_ce":
        model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(2 * 3 * 3, 3))
        N = 12
        x = torch.randn(N, 1, 5, 5, generator=g, dtype=DT)
        y = torch.randint(0, 3, (N,), generator=g)
        loss, kind = ce, "ce"
    elif name == "cnn_relu_mse":
        model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
        N = 10
        x = torch.randn(N, 2, 4, 4, generator=g, dtype=DT)
        y = torch.randn(N, 2, generator=g, dtype=DT)
        loss, kind = mse, "mse"
    else:  # pragma: no cover
        raise KeyError(name)
    return model.to(DT), loss, x, y, kind


PROBLEMS = ["mlp_tanh_mse", "mlp_relu_ce", "cnn_tanh_ce", "cnn_relu_mse"]


def _flat(model):
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    theta0 = torch.cat([p.detach().reshape(-1) for _, p in named])

    def unflatten(theta):
        out, i = {}, 0
        for n, p in named:
            out[n] = theta[i : i + p.numel()].view(p.shape)
            i += p.numel()
        return out

    return theta0, unflatten


def dense_hessian(model, loss_fn, x, y):
    theta0, unflatten = _flat(model)

    def L(theta):
        return loss_fn(functional_call(model, unflatten(theta), (x,)), y)

    return torch.func.hessian(L)(theta0)


def dense_gauss_newton(model, x, y, kind):
    """(1/N) sum_i Phi_i^T C_i Phi_i with jacrev Jacobians and closed-form C_i."""
    theta0, unflatten = _flat(model)
    z = model(x).detach()
    N, k = z.shape
    Phi = torch.func.jacrev(lambda t: functional_call(model, unflatten(t), (x,)))(theta0)  # [N,k,P]
    if kind == "ce":
        p = torch.softmax(z, dim=1)
        C = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    else:
        C = (2.0 / k) * torch.eye(k, dtype=DT).expand(N, k, k)
    return torch.einsum("nkp,nkl,nlq->pq", Phi, C, Phi) / N


def grad_at(model, loss_fn, x, y, theta):
    _, unflatten = _flat(model)
    t = theta.clone().requires_grad_(True)
    loss = loss_fn(functional_call(model, unflatten(t), (x,)), y)
    return torch.autograd.grad(loss, t)[0]


def assert_rel_close(a, b, rtol):
    err = float(torch.linalg.norm(a - b))
    scale = float(torch.linalg.norm(b))
    assert err <= rtol * max(scale, 1e-300), f"relative error {err / scale:.3e} > {rtol:.1e}"


def sym_matrix(eigs, seed=0):
    g = torch.Generator().manual_seed(seed)
    eigs = torch.as_tensor(eigs, dtype=DT)
    Q, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), generator=g, dtype=DT))
    A = Q @ torch.diag(eigs) @ Q.T
    return (A + A.T) / 2, Q


# --------------------------------------------------------------------------------------------
# Hessian products
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROBLEMS)
@pytest.mark.parametrize("method", ["double_backward", "forward_over_reverse"])
def test_hessian_products_match_dense_hessian(name, method):
    model, loss_fn, x, y, _ = _make(name)
    H_ref = dense_hessian(model, loss_fn, x, y)
    op = HessianOperator(model, loss_fn, (x, y), batch_size=7, method=method)
    P = H_ref.shape[0]
    assert op.shape == (P, P) and op.dtype == DT and op.device == x.device
    g = torch.Generator().manual_seed(1)
    v = torch.randn(P, generator=g, dtype=DT)
    V = torch.randn(P, 3, generator=g, dtype=DT)
    assert_rel_close(op @ v, H_ref @ v, 1e-10)
    assert_rel_close(op @ V, H_ref @ V, 1e-10)
    assert op.num_matvecs == 4
    if name.startswith("mlp"):  # (CPU float64 convolution double backward is slow: skip on CNNs)
        assert_rel_close(op.to_dense(), H_ref, 1e-10)


@pytest.mark.parametrize("name", ["mlp_tanh_mse", "cnn_tanh_ce"])
def test_hessian_product_matches_finite_differences_of_gradient(name):
    model, loss_fn, x, y, _ = _make(name)
    theta0, _ = _flat(model)
    v = torch.randn(theta0.numel(), generator=torch.Generator().manual_seed(3), dtype=DT)
    eps = 1e-5
    fd = (grad_at(model, loss_fn, x, y, theta0 + eps * v) - grad_at(model, loss_fn, x, y, theta0 - eps * v)) / (2 * eps)
    hv = HessianOperator(model, loss_fn, (x, y)) @ v
    # central differences: truncation O(eps^2 |g'''|) ~ 1e-10, rounding O(1e-16/eps) ~ 1e-11
    assert_rel_close(hv, fd, 1e-7)


def test_linear_regression_closed_form():
    g = torch.Generator().manual_seed(0)
    N, d = 30, 5
    X = torch.randn(N, d, generator=g, dtype=DT)
    y = torch.randn(N, 1, generator=g, dtype=DT)
    model = nn.Linear(d, 1, bias=False).to(DT)
    H_closed = 2.0 / N * X.T @ X
    for op in (
        HessianOperator(model, F.mse_loss, (X, y), batch_size=8),
        HessianOperator(model, mse, (X, y), method="forward_over_reverse"),
        GaussNewtonOperator(model, F.mse_loss, (X, y), batch_size=11),
    ):
        assert_rel_close(op.to_dense(), H_closed, 1e-12)
    top = torch.linalg.eigvalsh(H_closed)[-1]
    assert abs(sharpness(model, F.mse_loss, (X, y), tol=1e-12) - float(top)) <= 1e-10 * float(top)


def test_forward_over_reverse_reports_torch_mse_limitation_or_works():
    model, _, x, y, _ = _make("mlp_tanh_mse")
    op = HessianOperator(model, F.mse_loss, (x, y), method="forward_over_reverse")
    v = torch.ones(op.shape[0], dtype=DT)
    try:
        hv = op @ v
    except RuntimeError as err:  # torch's forward AD of mse_loss_backward
        assert "double_backward" in str(err)
    else:
        assert_rel_close(hv, HessianOperator(model, mse, (x, y)) @ v, 1e-10)


# --------------------------------------------------------------------------------------------
# Gauss-Newton products
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROBLEMS)
def test_gauss_newton_matches_explicit_sum(name):
    model, loss_fn, x, y, kind = _make(name)
    G_ref = dense_gauss_newton(model, x, y, kind)
    op = GaussNewtonOperator(model, loss_fn, (x, y), batch_size=6)
    P = G_ref.shape[0]
    V = torch.randn(P, 2, generator=torch.Generator().manual_seed(2), dtype=DT)
    assert_rel_close(op @ V, G_ref @ V, 1e-10)
    assert_rel_close(op @ V[:, 0], G_ref @ V[:, 0], 1e-10)
    assert op.num_matvecs == 3
    if name.startswith("mlp"):
        G = op.to_dense()
        assert_rel_close(G, G_ref, 1e-10)
        ev = torch.linalg.eigvalsh(G)
        assert ev[0] >= -1e-10 * ev[-1]  # PSD


def test_gauss_newton_with_torch_mse_loss():
    model, _, x, y, _ = _make("mlp_tanh_mse")
    G_ref = dense_gauss_newton(model, x, y, "mse")
    assert_rel_close(GaussNewtonOperator(model, F.mse_loss, (x, y)).to_dense(), G_ref, 1e-10)


# --------------------------------------------------------------------------------------------
# Batching, data input, model state
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [HessianOperator, GaussNewtonOperator])
def test_batching_and_dataloader_do_not_change_results(cls):
    model, loss_fn, x, y, _ = _make("mlp_relu_ce")
    P = sum(p.numel() for p in model.parameters())
    V = torch.randn(P, 2, generator=torch.Generator().manual_seed(4), dtype=DT)
    ref = cls(model, loss_fn, (x, y)) @ V
    loader = DataLoader(TensorDataset(x, y), batch_size=6, shuffle=False)
    variants = [
        cls(model, loss_fn, (x, y), batch_size=1),
        cls(model, loss_fn, (x, y), batch_size=7),
        cls(model, loss_fn, loader),
        cls(model, loss_fn, loader, batch_size=4),
        cls(model, loss_fn, [(x[:3], y[:3]), (x[3:], y[3:])]),
        cls(model, loss_fn, ((x[i : i + 9], y[i : i + 9]) for i in range(0, len(x), 9))),  # one-shot
    ]
    for op in variants:
        assert op.num_data == len(x)
        assert_rel_close(op @ V, ref, 1e-12)
        assert_rel_close(op @ V, ref, 1e-12)  # re-iterable: a second pass gives the same


@pytest.mark.parametrize("training", [True, False])
def test_operators_leave_mode_buffers_and_grads_alone(training):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.Tanh(), nn.Dropout(0.0), nn.Linear(5, 2)).to(DT)
    model.train(training)
    x = torch.randn(16, 3, dtype=DT)
    y = torch.randn(16, 2, dtype=DT)
    modes = [m.training for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    P = sum(p.numel() for p in model.parameters())
    for op in (HessianOperator(model, mse, (x, y)), GaussNewtonOperator(model, mse, (x, y))):
        out = op @ torch.randn(P, 2, dtype=DT)
        assert torch.isfinite(out).all()
    fr = HessianOperator(model, mse, (x, y), method="forward_over_reverse")
    if training:  # torch.func refuses in-place buffer updates: a clear error instead
        with pytest.raises(RuntimeError, match="double_backward"):
            fr @ torch.randn(P, dtype=DT)
    else:
        H = HessianOperator(model, mse, (x, y)).to_dense()
        assert_rel_close(fr.to_dense(), H, 1e-10)
    assert [m.training for m in model.modules()] == modes
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k  # running stats and parameters untouched
    assert all(p.grad is None for p in model.parameters())


def test_frozen_parameters_are_excluded():
    model, loss_fn, x, y, _ = _make("mlp_tanh_mse")
    model[0].weight.requires_grad_(False)
    H_ref = dense_hessian(model, loss_fn, x, y)  # _flat skips frozen parameters too
    op = HessianOperator(model, loss_fn, (x, y))
    assert op.shape == (6 + 18 + 3, 6 + 18 + 3) == tuple(H_ref.shape)
    assert_rel_close(op.to_dense(), H_ref, 1e-10)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def test_error_messages_name_shapes():
    model, loss_fn, x, y, _ = _make("mlp_tanh_mse")
    op = HessianOperator(model, loss_fn, (x, y))
    P = op.shape[0]
    with pytest.raises(ValueError, match=rf"\({P}, {P}\).*\({P + 1},\)"):
        op @ torch.zeros(P + 1, dtype=DT)
    with pytest.raises(ValueError, match=rf"\(2, {P}\)"):
        op @ torch.zeros(2, P, dtype=DT)
    with pytest.raises(ValueError, match=r"k=3 .*\(2, 2\)"):
        lanczos(torch.eye(2, dtype=DT), k=3)
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        lanczos(torch.zeros(3, 4, dtype=DT))
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        power_iteration(torch.zeros(3, 4, dtype=DT))
    with pytest.raises(ValueError, match=r"v0 .*\[3\].*\(4,\)"):
        lanczos(torch.eye(3, dtype=DT), v0=torch.ones(4, dtype=DT))
    with pytest.raises(ValueError, match="empty"):
        HessianOperator(model, loss_fn, (x[:0], y[:0]))
    with pytest.raises(ValueError, match="empty"):
        GaussNewtonOperator(model, loss_fn, [])
    with pytest.raises(ValueError, match=r"\(20, 4\).*\(19, 3\)"):
        HessianOperator(model, loss_fn, (x, y[:19]))
    frozen = nn.Linear(2, 2).to(DT).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        HessianOperator(frozen, loss_fn, (x, y))
    for cls in (HessianOperator, GaussNewtonOperator):
        bad = cls(model, lambda z, t: (z - t) ** 2, (x, y))
        with pytest.raises(ValueError, match=r"scalar.*\(20, 3\)"):
            bad @ torch.zeros(P, dtype=DT)
    with pytest.raises(ValueError, match="method"):
        HessianOperator(model, loss_fn, (x, y), method="finite_differences")
    with pytest.raises(ValueError, match="batch_size"):
        HessianOperator(model, loss_fn, (x, y), batch_size=0)


# --------------------------------------------------------------------------------------------
# Lanczos
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mlp_tanh_mse", "cnn_tanh_ce"])
def test_lanczos_top_k_on_hessian(name):
    model, loss_fn, x, y, _ = _make(name)
    op = HessianOperator(model, loss_fn, (x, y), batch_size=5)
    H = dense_hessian(model, loss_fn, x, y)
    evals, evecs = torch.linalg.eigh(H)
    res = lanczos(op, k=3, tol=1e-10, max_iter=op.shape[0])
    assert isinstance(res, EigenResult) and res.converged
    expected = evals.flip(0)[:3]
    assert torch.allclose(res.eigenvalues, expected, rtol=0, atol=1e-8 * float(expected[0]))
    assert res.num_matvecs == op.num_matvecs <= op.shape[0]
    U = res.eigenvectors
    assert torch.allclose(U.T @ U, torch.eye(3, dtype=DT), atol=1e-8)
    true_res = torch.linalg.norm(H @ U - U * res.eigenvalues, dim=0)
    assert torch.all(true_res <= 1e-10 * expected.abs() * 10)
    assert torch.all(res.residuals <= 1e-10 * res.eigenvalues.abs())


def test_lanczos_nearly_equal_top_eigenvalues_and_algebraic_order():
    eigs = [10.0, 10.0 - 1e-6, 9.5, 3.0, 1.0] + list(np.linspace(-12.0, 0.5, 55))  # |-12| dominates
    A, _ = sym_matrix(eigs, seed=1)
    ref = torch.linalg.eigvalsh(A).flip(0)
    res = lanczos(A, k=3, tol=1e-10)
    assert res.converged
    assert torch.allclose(res.eigenvalues, ref[:3], rtol=0, atol=1e-8)
    assert torch.all(res.eigenvalues[:-1] >= res.eigenvalues[1:])
    # the largest-magnitude eigenvalue is -12; power iteration finds it, lanczos does not
    pw = power_iteration(A, max_iter=2000, tol=1e-12)
    assert abs(float(pw.eigenvalues[0]) + 12.0) < 1e-6


@pytest.mark.parametrize("kind", ["tensor", "numpy", "scipy"])
def test_lanczos_accepts_generic_operators(kind):
    A, _ = sym_matrix(np.linspace(0.0, 5.0, 30) ** 2, seed=2)
    op = {"tensor": A, "numpy": A.numpy(), "scipy": spla.aslinearoperator(A.numpy())}[kind]
    res = lanczos(op, k=2, tol=1e-10)
    assert torch.allclose(res.eigenvalues, torch.tensor([25.0, (5 - 5 / 29) ** 2], dtype=DT), atol=1e-8)


def test_lanczos_invariant_subspaces_and_warm_start():
    # low rank: the Krylov space of a random vector is invariant after rank + 1 steps
    g = torch.Generator().manual_seed(0)
    U, _ = torch.linalg.qr(torch.randn(50, 3, generator=g, dtype=DT))
    A = U @ torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=DT)) @ U.T
    res = lanczos(A, k=2, tol=1e-12)
    assert res.converged and res.num_matvecs <= 4
    assert torch.allclose(res.eigenvalues, torch.tensor([3.0, 2.0], dtype=DT), atol=1e-10)
    # an exact eigenvector as warm start: one product
    res = lanczos(A, k=1, v0=U[:, 0])
    assert res.num_matvecs == 1 and res.converged and abs(float(res.eigenvalues[0]) - 3.0) < 1e-12
    # ... and with k = 2 the run restarts from a random orthogonal vector instead of stopping
    res = lanczos(A, k=2, v0=U[:, 0], tol=1e-12)
    assert torch.allclose(res.eigenvalues, torch.tensor([3.0, 2.0], dtype=DT), atol=1e-10)
    # identity: every vector is an eigenvector
    res = lanczos(torch.eye(10, dtype=DT), k=3)
    assert torch.allclose(res.eigenvalues, torch.ones(3, dtype=DT)) and res.converged
    assert torch.allclose(res.eigenvectors.T @ res.eigenvectors, torch.eye(3, dtype=DT), atol=1e-12)
    # warm start near the top eigenvector needs fewer products than a cold start
    B, Q = sym_matrix([5.0, 4.8, 4.5] + list(np.linspace(0, 4, 97)), seed=3)
    cold = lanczos(B, tol=1e-8)
    v0 = Q[:, 0] + 1e-3 * torch.randn(100, generator=g, dtype=DT)
    warm = lanczos(B, tol=1e-8, v0=v0)
    assert abs(float(warm.eigenvalues[0]) - 5.0) < 1e-7 and abs(float(cold.eigenvalues[0]) - 5.0) < 1e-7
    assert warm.num_matvecs < cold.num_matvecs


def test_lanczos_not_converged_flag():
    A, _ = sym_matrix(np.linspace(0.0, 1.0, 200), seed=4)
    res = lanczos(A, k=1, tol=1e-12, max_iter=5)
    assert not res.converged and res.num_matvecs == 5
    assert float(res.residuals[0]) > 1e-12 * float(res.eigenvalues[0])


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(min_value=2, max_value=25),
    k=st.integers(min_value=1, max_value=3),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_lanczos_property_random_symmetric(n, k, seed):
    k = min(k, n)
    g = torch.Generator().manual_seed(seed)
    M = torch.randn(n, n, generator=g, dtype=DT)
    A = (M + M.T) / 2
    ref = torch.linalg.eigvalsh(A).flip(0)[:k]
    res = lanczos(A, k=k, tol=1e-11, max_iter=n, seed=seed)
    scale = float(torch.linalg.matrix_norm(A, ord=2))
    assert torch.allclose(res.eigenvalues, ref, rtol=0, atol=1e-8 * scale)


# --------------------------------------------------------------------------------------------
# Power iteration, spectral density, trace
# --------------------------------------------------------------------------------------------


def test_power_iteration_on_hessian_and_its_pitfall():
    model, loss_fn, x, y, _ = _make("mlp_tanh_mse")
    H = dense_hessian(model, loss_fn, x, y)
    ev = torch.linalg.eigvalsh(H)
    op = HessianOperator(model, loss_fn, (x, y))
    pw = power_iteration(op, max_iter=5000, tol=1e-14)
    assert pw.converged
    assert abs(float(pw.eigenvalues[0]) - float(ev[-1])) <= 1e-6 * float(ev[-1])
    v = pw.eigenvectors[:, 0]
    assert abs(float(torch.linalg.norm(H @ v - pw.eigenvalues[0] * v)) - float(pw.residuals[0])) < 1e-10
    # pitfall: nearly equal top eigenvalues, relative-change stop at 1e-3 -> converged but off
    A, _ = sym_matrix([1.0, 0.95, 0.9] + list(np.linspace(0, 0.5, 47)), seed=5)
    pw = power_iteration(A, tol=1e-3)
    la = lanczos(A, tol=1e-8)
    assert pw.converged and abs(float(pw.eigenvalues[0]) - 1.0) > 1e-3
    assert abs(float(la.eigenvalues[0]) - 1.0) < 1e-10


def _density_moments(sd):
    g, d = sd.grid.numpy(), sd.density.numpy()
    return [float(np.trapezoid(d * g**p, g)) for p in (0, 1, 2)]


def test_spectral_density_full_lanczos_recovers_spectrum():
    eigs = torch.tensor([-1.0, 0.0, 0.0, 0.5, 2.0, 2.0, 2.0, 7.0] + list(np.linspace(0.1, 0.4, 22)), dtype=DT)
    A, _ = sym_matrix(eigs, seed=6)
    sd = spectral_density(A, num_iter=40, num_runs=3, seed=1)
    assert sd.nodes.shape == sd.weights.shape == (3, 30)
    assert torch.allclose(sd.weights.sum(dim=1), torch.ones(3, dtype=DT), atol=1e-12)
    for r in range(3):
        used = sd.nodes[r][sd.weights[r] > 1e-10]
        dist = (used[:, None] - eigs[None, :]).abs().min(dim=1).values
        assert torch.all(dist < 1e-8)
    m0, m1, m2 = _density_moments(sd)
    assert abs(m0 - 1) < 1e-10
    # quadrature moments are unbiased estimates of tr(A^p)/P (exact Gauss quadrature, p <= 3)
    P = len(eigs)
    for p, mom in ((1, m1), (2, m2 - sd.sigma**2)):  # smoothing adds sigma^2 to the 2nd moment
        Ap = torch.linalg.matrix_power(A, p)
        se = math.sqrt(2 * (float((Ap**2).sum()) - float((Ap.diagonal() ** 2).sum())) / 3) / P
        assert abs(sd.moment(p) - float(Ap.trace()) / P) <= 4 * se
        assert abs(mom - sd.moment(p)) < 1e-6 * max(1.0, abs(sd.moment(p)))


def test_spectral_density_of_hessian_moments():
    model, loss_fn, x, y, _ = _make("cnn_tanh_ce")
    H = dense_hessian(model, loss_fn, x, y)
    P = H.shape[0]
    op = HessianOperator(model, loss_fn, (x, y))
    R = 20
    sd = spectral_density(op, num_iter=12, num_runs=R, seed=0)
    assert sd.num_matvecs == 12 * R == op.num_matvecs
    m0, m1, m2 = _density_moments(sd)
    assert abs(m0 - 1) < 1e-10
    # Tolerance: the density's moments are Hutchinson estimates of tr(H^p)/P with probes
    # r/sqrt(P), r Rademacher; Var(r^T M r) = 2 sum_{i != j} M_ij^2, so the standard error of the
    # mean over R runs is sqrt(2 sum_{i!=j} M_ij^2 / R) / P. We allow 4 standard errors (a
    # false alarm has probability < 1e-4 under a normal approximation); Gaussian smoothing adds
    # sigma^2 to the second moment, and the grid's truncation at 5 sigma is far below that.
    for p, mom in ((1, m1), (2, m2 - sd.sigma**2)):
        M = torch.linalg.matrix_power(H, p)
        off = float((M**2).sum() - (M.diagonal() ** 2).sum())
        se = math.sqrt(2 * off / R) / P
        assert abs(mom - float(M.trace()) / P) <= 4 * se + 1e-9 * abs(float(M.trace()) / P)
    # Ritz values lie inside the spectrum, and after 12 steps the largest is close to lambda_max
    ev = torch.linalg.eigvalsh(H)
    assert float(ev[0]) - 1e-10 <= float(sd.nodes.min()) and float(sd.nodes.max()) <= float(ev[-1]) + 1e-10
    assert float(sd.nodes.max()) >= float(ev[-1]) * (1 - 1e-3)


def test_spectral_density_custom_grid_and_sigma():
    A, _ = sym_matrix([0.0, 1.0, 2.0, 3.0], seed=7)
    grid = torch.linspace(-2, 5, 2001, dtype=DT)
    sd = spectral_density(A, num_iter=4, num_runs=4, grid=grid, sigma=0.1)
    assert torch.equal(sd.grid, grid) and sd.sigma == 0.1
    # exact density: four equal bumps of width 0.1 at 0, 1, 2, 3 (up to weights ~ 1/4 each)
    peaks = sd.density[torch.stack([torch.argmin((grid - t).abs()) for t in (0.0, 1.0, 2.0, 3.0)])]
    assert torch.all(peaks > 0.25 / (0.1 * math.sqrt(2 * math.pi)) * 0.2)


def test_trace_hutchinson():
    model, loss_fn, x, y, _ = _make("mlp_relu_ce")
    H = dense_hessian(model, loss_fn, x, y)
    op = HessianOperator(model, loss_fn, (x, y))
    n = 200
    est = trace(op, num_samples=n, seed=3)
    assert est.num_matvecs == n == op.num_matvecs
    sd_true = math.sqrt(2 * float((H**2).sum() - (H.diagonal() ** 2).sum()))
    se_true = sd_true / math.sqrt(n)
    assert abs(est.estimate - float(H.trace())) <= 4 * se_true
    assert 0.7 * se_true <= est.stderr <= 1.3 * se_true  # sample sd with n = 200: ~5% error
    value, stderr = est
    assert (value, stderr) == (est.estimate, est.stderr)
    # Rademacher probes are exact on diagonal matrices
    D = torch.diag(torch.arange(1.0, 11.0, dtype=DT))
    d = trace(D, num_samples=5)
    assert d.estimate == pytest.approx(55.0, abs=1e-12) and d.stderr == pytest.approx(0.0, abs=1e-12)


def test_trace_does_not_depend_on_chunk_size():
    # the probes are drawn one after the other whatever the chunking: the same probes, so the
    # same estimate up to the rounding of batched vs single products (float64: ~1e-15 relative)
    model, loss_fn, x, y, _ = _make("mlp_relu_ce")
    op = HessianOperator(model, loss_fn, (x, y))
    ests = [trace(op, num_samples=12, seed=5, chunk_size=c) for c in (1, 5, 16)]
    for e in ests[1:]:
        assert e.estimate == pytest.approx(ests[0].estimate, rel=1e-10)
        assert e.stderr == pytest.approx(ests[0].stderr, rel=1e-8)


def test_seeds_make_randomised_routines_reproducible():
    A, _ = sym_matrix(np.linspace(-1, 3, 40), seed=8)
    assert torch.equal(lanczos(A, seed=5, max_iter=4).eigenvalues, lanczos(A, seed=5, max_iter=4).eigenvalues)
    assert not torch.equal(lanczos(A, seed=5, max_iter=4).eigenvalues, lanczos(A, seed=6, max_iter=4).eigenvalues)
    assert trace(A, num_samples=7, seed=1).estimate == trace(A, num_samples=7, seed=1).estimate
    assert torch.equal(
        spectral_density(A, num_iter=5, num_runs=2, seed=3).nodes,
        spectral_density(A, num_iter=5, num_runs=2, seed=3).nodes,
    )


# --------------------------------------------------------------------------------------------
# Graph reuse and float32 Lanczos
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROBLEMS)
@pytest.mark.parametrize("batch_size", [None, 7])
def test_graph_reuse_matches_dense_hessian(name, batch_size):
    model, loss_fn, x, y, _ = _make(name)
    H_ref = dense_hessian(model, loss_fn, x, y)
    op = HessianOperator(model, loss_fn, (x, y), batch_size=batch_size, reuse_graph=True)
    g = torch.Generator().manual_seed(2)
    V = torch.randn(H_ref.shape[0], 3, generator=g, dtype=DT)
    # float64 products of a small model: only rounding differs from the dense oracle
    for _ in range(2):  # the second product runs through the kept graph
        assert_rel_close(op @ V, H_ref @ V, 1e-10)
        assert_rel_close(op @ V[:, 0], H_ref @ V[:, 0], 1e-10)
    assert op.graph_reused and op.graph_bytes > 0 and op.num_matvecs == 8
    assert all(p.grad is None for p in model.parameters())


def test_graph_reuse_follows_parameter_updates_and_budget():
    model, loss_fn, x, y, _ = _make("mlp_tanh_mse")
    op = HessianOperator(model, loss_fn, (x, y))  # reuse_graph=None: a tiny graph fits 1 GiB
    v = torch.randn(op.shape[0], generator=torch.Generator().manual_seed(3), dtype=DT)
    before = op @ v
    assert op.graph_reused
    with torch.no_grad():  # an in-place update (as an optimiser step) must invalidate the graph
        for p in model.parameters():
            p.mul_(1.1)
    after = op @ v
    H_new = dense_hessian(model, loss_fn, x, y)
    assert_rel_close(after, H_new @ v, 1e-10)
    assert float(torch.linalg.norm(after - before)) > 1e-3 * float(torch.linalg.norm(before))
    small = HessianOperator(model, loss_fn, (x, y), graph_memory=16)  # over the budget: no reuse
    assert_rel_close(small @ v, H_new @ v, 1e-10)
    assert not small.graph_reused and small.graph_bytes > 16
    off = HessianOperator(model, loss_fn, (x, y), reuse_graph=False)
    assert_rel_close(off @ v, H_new @ v, 1e-10)
    assert not off.graph_reused and off.graph_bytes is None
    op.release_graph()
    assert not op.graph_reused
    assert_rel_close(op @ v, H_new @ v, 1e-10)
    with pytest.raises(ValueError, match="reuse_graph"):
        HessianOperator(model, loss_fn, (x, y), reuse_graph="yes")
    with pytest.raises(ValueError, match="graph_memory"):
        HessianOperator(model, loss_fn, (x, y), graph_memory=0)


class _Diag32:
    """A float32 diagonal operator (its products are exact up to one rounding per entry)."""

    def __init__(self, d: torch.Tensor):
        self.d = d.float()
        self.shape = (d.shape[0], d.shape[0])
        self.dtype, self.device = torch.float32, d.device

    def __matmul__(self, v):
        return self.d * v if v.ndim == 1 else self.d[:, None] * v


@pytest.mark.parametrize("tol", [1e-8, 1e-4])
def test_float32_lanczos_at_a_million_parameters_is_accurate_to_what_it_reports(tol):
    # the case: P = 10^6, float32, top eigenvalue exactly 1 (then a gap to <= 0.9)
    P = 1_000_000
    d = torch.rand(P, generator=torch.Generator().manual_seed(0), dtype=DT) * 0.9
    d[123_457] = 1.0
    res = lanczos(_Diag32(d), 1, tol=tol, max_iter=60)
    lam, rep = float(res.eigenvalues[0]), float(res.residuals[0])
    u = res.eigenvectors[:, 0].double()
    true = float(torch.linalg.vector_norm(d * u - lam * u))  # float64 oracle of ||Au - lambda u||
    assert res.eigenvectors.dtype == torch.float32 and abs(float(torch.linalg.vector_norm(u)) - 1) < 1e-6
    assert true <= rep, (true, rep)  # the reported residual bounds the true one
    assert abs(lam - 1.0) <= rep  # Bauer-Fike: the top eigenvalue lies within the residual
    # at the float32 floor: a few roundings of ||A||, not the 3e-4 error of a strided float32 dot
    assert rep <= max(tol, 1e-5)
    if tol < 1e-5:
        assert abs(lam - 1.0) <= 1e-6
    # converged is claimed only when the reported (bounding) residual meets the tolerance
    assert res.converged == (rep <= tol * abs(lam))
    assert res.converged == (tol == 1e-4) and res.num_matvecs < 60


@pytest.mark.parametrize("reuse", [True, False])
def test_gradient_from_the_kept_graph_matches_autograd(reuse):
    model, loss_fn, x, y, _ = _make("mlp_relu_ce")
    theta0, _ = _flat(model)
    ref = grad_at(model, loss_fn, x, y, theta0)  # full-batch gradient, one autograd pass
    op = HessianOperator(model, loss_fn, (x, y), batch_size=7, reuse_graph=reuse)
    assert_rel_close(op.gradient(), ref, 1e-12)  # float64: rounding of the batch weighting only
    op @ torch.ones(op.shape[0], dtype=DT)
    assert_rel_close(op.gradient(), ref, 1e-12)
    assert op.graph_reused == reuse


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_lanczos_k1_selective_reorthogonalisation_matches_dense(dtype, tol):
    # k = 1 runs its own path (re-orthogonalisation only once a Ritz pair converges, Paige's
    # bound). A clustered top (lambda_2/lambda_1 = 0.999) and a dense bulk need many steps, so
    # Ritz pairs converge and both regimes occur. Oracle: the exact spectrum, and the k = 2 run
    # (re-orthogonalisation at every step). Note: for k = 1 even no re-orthogonalisation at all
    # passes these checks (ghost copies only duplicate the top Ritz value, and the reported
    # residual is explicit); what this pins is the accuracy and the honesty of the bound.
    P = 1200
    g = torch.Generator().manual_seed(3)
    d = torch.cat([torch.tensor([1.0, 0.999, 0.998]), -torch.rand(P - 3, generator=g) * 0.99 + 0.99 * 0.5])
    Qm, _ = torch.linalg.qr(torch.randn(P, 40, generator=g, dtype=torch.float64))
    # a dense (non-diagonal) operator: rotate the top of the spectrum into a random 40-dim subspace
    A = torch.diag(d.double()) + Qm @ torch.diag(torch.linspace(0.0, 0.3, 40, dtype=torch.float64)) @ Qm.T
    lam = torch.linalg.eigvalsh(A)
    res = lanczos(A.to(dtype), 1, tol=tol, max_iter=300, seed=1)
    u = res.eigenvectors[:, 0].double()
    true = float(torch.linalg.vector_norm(A @ u - float(res.eigenvalues[0]) * u))
    rep = float(res.residuals[0])
    assert res.converged
    # float32: the operator is A rounded to float32 (1e-7 relative per entry), so the bound is
    # checked against the rounded matrix's eigenvalue, and the true residual with a 1e-6 slack
    lam_top = float(torch.linalg.eigvalsh(A.to(dtype).double())[-1])
    assert abs(float(res.eigenvalues[0]) - lam_top) <= rep
    assert true <= rep + (0 if dtype == torch.float64 else 1e-6)
    assert abs(float(res.eigenvalues[0]) - float(lam[-1])) <= tol * 10 + (0 if dtype == torch.float64 else 1e-5)
    # the same eigenvalue as with re-orthogonalisation at every step (k = 2 runs that path)
    full = lanczos(A.to(dtype), 2, tol=tol, max_iter=300, seed=1)
    assert abs(float(full.eigenvalues[0]) - float(res.eigenvalues[0])) <= rep + float(full.residuals[0])


def test_lanczos_workspace_reuse_leaves_earlier_results_intact():
    # the basis buffers are pooled across calls: a later call on an operator of the same size
    # reuses them and must not change the vectors an earlier call returned (no aliasing)
    g = torch.Generator().manual_seed(11)
    A = torch.randn(400, 400, generator=g, dtype=DT)
    A = (A + A.T) / 2
    B = torch.diag(torch.linspace(-1, 3, 400, dtype=DT))
    first = lanczos(A, 1, tol=1e-10, max_iter=200, seed=0)
    kept = first.eigenvectors.clone()
    second = lanczos(B, 1, tol=1e-10, max_iter=200, seed=1)
    assert torch.equal(first.eigenvectors, kept)  # bitwise: nothing wrote into it
    again = lanczos(A, 1, tol=1e-10, max_iter=200, seed=0)
    assert torch.equal(again.eigenvectors, kept) and torch.equal(again.eigenvalues, first.eigenvalues)
    assert float(second.eigenvalues[0]) == pytest.approx(3.0, abs=1e-9)  # exact top of B, residual-bounded


# --------------------------------------------------------------------------------------------
# Lanczos: the eigenvalue's error bound, float64 Rayleigh quotients (issue 22)
# --------------------------------------------------------------------------------------------

_SPECTRA = {
    # well separated top, bulk below: the gap is resolved, Kato-Temple applies
    "separated": [5.0, 4.0, 3.2] + list(np.linspace(-1.0, 2.5, 117)),
    # a cluster narrower than the tolerances used (spacing 2e-5): the gap cannot be resolved
    "clustered": [1.0, 1.0 - 2e-5, 1.0 - 4e-5] + list(np.linspace(-0.4, 0.5, 117)),
    # an exactly double top eigenvalue and a near-degenerate pair below it
    "degenerate": [2.0, 2.0, 1.9, 1.9 - 1e-11] + list(np.linspace(-2.0, 1.5, 116)),
    # the power law with a negative tail
    "power_law": list(1.0 / np.arange(1, 97)) + list(-0.3 * np.linspace(0.01, 1.0, 24)),
}


def _distance_to_clusters(theta: float, lam: np.ndarray, width: float) -> float:
    """Distance from ``theta`` to the nearest hull of a cluster of eigenvalues ``lam`` (chains
    spaced at most ``width`` apart)."""
    lam = np.sort(lam)
    breaks = np.flatnonzero(np.diff(lam) > width) + 1
    return min(max(0.0, c[0] - theta, theta - c[-1]) for c in np.split(lam, breaks))


@pytest.mark.parametrize("name", sorted(_SPECTRA))
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("tol", [1e-3, 1e-6, 1e-10])
def test_lanczos_error_bound_holds_against_dense_spectra(name, k, tol):
    A, _ = sym_matrix(_SPECTRA[name], seed=7)
    lam = np.sort(np.linalg.eigvalsh(A.numpy()))[::-1]  # float64 oracle
    # the oracle's own error (LAPACK's backward error, ~ n eps ||A||) and the rounding of the
    # 120 x 120 product A v: the bound is not checked below this
    slack = 120 * np.finfo(np.float64).eps * np.abs(lam).max()
    for seed in range(3):
        res = lanczos(A, k, tol=tol, max_iter=120, seed=seed, stop="eigenvalue")
        theta = res.eigenvalues.numpy()
        bound, r, gap = res.error_bounds.numpy(), res.residuals.numpy(), res.gaps.numpy()
        assert res.converged
        # the bound never exceeds Bauer-Fike's residual bound, and it is the residual exactly
        # when the gap is not resolved (the fallback); a resolved gap exceeds the residual
        assert np.all(bound <= r)
        assert np.array_equal(np.isnan(gap), bound == r)
        assert np.all(gap[~np.isnan(gap)] > r[~np.isnan(gap)])
        # stop="eigenvalue": the bound meets the tolerance ...
        assert np.all(bound <= tol * np.abs(theta))
        for j in range(k):
            assert np.min(np.abs(lam - theta[j])) <= r[j] + slack  # Bauer-Fike alone
            if name in ("separated", "power_law"):
                # ... and holds for the j-th eigenvalue itself
                assert abs(lam[j] - theta[j]) <= bound[j] + slack, (seed, j, theta[j], lam[j], bound[j])
            else:
                # a cluster the Krylov space has not split acts as one eigenvalue (no method
                # that sees A through products can tell): the bound holds for its hull
                assert _distance_to_clusters(theta[j], lam, 5e-5) <= bound[j] + slack, (seed, j, theta[j], bound[j])
        if name == "clustered" and k == 3 and tol == 1e-3:
            # three Ritz values in the cluster, spaced 2e-5 < their residuals: the fallback
            assert np.all(np.isnan(gap)) and np.all(bound == r)
        if name == "separated" and tol <= 1e-6:
            assert not np.any(np.isnan(gap))  # resolved: the squared-residual bound is used


def test_lanczos_stop_on_eigenvalue_saves_products_and_keeps_accuracy():
    A, _ = sym_matrix(_SPECTRA["separated"], seed=8)
    top = float(np.linalg.eigvalsh(A.numpy())[-1])
    for tol in (1e-4, 1e-8):
        by_res = lanczos(A, 1, tol=tol, seed=1)
        by_eig = lanczos(A, 1, tol=tol, seed=1, stop="eigenvalue")
        assert by_res.converged and by_eig.converged
        assert by_eig.num_matvecs < by_res.num_matvecs  # the error is ~ r^2 / gap, not r
        assert abs(float(by_eig.eigenvalues[0]) - top) <= tol * top
        assert float(by_eig.residuals[0]) > tol * top  # stopped before the residual test would
    with pytest.raises(ValueError, match="stop"):
        lanczos(A, 1, stop="error")


def _power_law_with_negative_tail(P: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n_neg = P // 5
    d = torch.cat([1.0 / torch.arange(1, P - n_neg + 1, dtype=DT), -0.3 * torch.rand(n_neg, generator=g, dtype=DT)])
    return d[torch.randperm(P, generator=g)]


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("stop", ["residual", "eigenvalue"])
def test_float32_eigenvalues_are_float64_rayleigh_quotients(k, stop):
    # the case: float32 tridiagonal Ritz values were 5e-6 (k = 1) and 3-5e-5 (k = 3)
    # off on this spectrum; the float64 Rayleigh quotients of the returned vectors, from the
    # recorded Lanczos relation, are within 1e-6 of the float64 eigenvalues (of the float32-rounded
    # operator: the oracle), at no extra product
    P = 200_000
    d = _power_law_with_negative_tail(P, seed=0)
    lam = torch.sort(d.float().double(), descending=True).values[:k].numpy()
    res = lanczos(_Diag32(d), k, tol=1e-8, max_iter=200, seed=1, stop=stop)
    theta = res.eigenvalues.double().numpy()
    assert res.eigenvalues.dtype == torch.float32
    assert np.all(np.abs(theta - lam) <= 1e-6), np.abs(theta - lam)
    assert np.all(np.abs(theta - lam) <= res.error_bounds.double().numpy())
    # the value is the Rayleigh quotient of the returned vector (float64 oracle), to a few float32
    # roundings of ||A|| = 1: the returned value's own (half an ulp) and the recorded relation
    # A Q_m = Q_{m+1} H_m's along the vector (the updates round by ~eps ||A|| per step; on this
    # diagonal operator the eigenvectors are coordinate vectors, so nothing averages out); the
    # tridiagonal Ritz values were off by 5e-6 to 5e-5
    U = res.eigenvectors.double()
    rq = ((U * (d[:, None] * U)).sum(0) / (U * U).sum(0)).numpy()
    assert np.all(np.abs(theta - rq) <= 4 * torch.finfo(torch.float32).eps * lam[0]), np.abs(theta - rq)
    # ... and no product beyond the Krylov steps: a second run with twice the budget counts the same
    again = lanczos(_Diag32(d), k, tol=1e-8, max_iter=400, seed=1, stop=stop)
    assert again.num_matvecs == res.num_matvecs


@pytest.mark.parametrize("cls", [HessianOperator, GaussNewtonOperator])
@pytest.mark.parametrize("batch_size", [None, 7])
@pytest.mark.parametrize("reuse_graph", [None, False])
def test_product_written_into_a_given_row_equals_the_product(cls, batch_size, reuse_graph):
    # the solvers' fast path: the product lands in the tensor they pass (the next basis row),
    # with the same numbers as `op @ v`; the dense Hessian / Gauss-Newton sum is the oracle
    model, loss_fn, x, y, kind = _make("mlp_tanh_mse")
    kwargs = {"reuse_graph": reuse_graph} if cls is HessianOperator else {}
    op = cls(model, loss_fn, (x, y), batch_size=batch_size, **kwargs)
    dense = dense_hessian(model, loss_fn, x, y) if cls is HessianOperator else dense_gauss_newton(model, x, y, kind)
    v = torch.randn(op.shape[0], generator=torch.Generator().manual_seed(3), dtype=DT)
    out = torch.full_like(v, float("nan"))
    got = op._matvec_into(v, out)
    assert got.data_ptr() == out.data_ptr()
    assert_rel_close(out, dense @ v, 1e-10)  # float64: rounding of a few hundred terms
    assert op._out_hint is None  # the hint is consumed or cleared: a later product is fresh
    assert (op @ v).data_ptr() != out.data_ptr()


class _CountingHessian(HessianOperator):
    """A HessianOperator that keeps a weak reference to every product it returns."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.refs, self.most_alive = [], 0

    def __matmul__(self, v):
        import weakref

        self.most_alive = max(self.most_alive, sum(r() is not None for r in self.refs))
        out = super().__matmul__(v)
        self.refs.append(weakref.ref(out))
        return out


def test_lanczos_keeps_no_product():
    # issue 22: the explicit residual and the float64 Rayleigh quotient come from the recorded
    # Lanczos relation, so no product outlives its step (the products' memory is not held)
    model, loss_fn, x, y, _ = _make("mlp_relu_ce")
    op = _CountingHessian(model, loss_fn, (x, y))
    res = lanczos(op, 1, tol=1e-10, seed=2)
    assert res.converged and len(op.refs) == res.num_matvecs > 5
    assert op.most_alive == 0  # at each product, no earlier product is still referenced
    top = float(torch.linalg.eigvalsh(dense_hessian(model, loss_fn, x, y))[-1])
    assert abs(float(res.eigenvalues[0]) - top) <= 1e-9 * abs(top)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [1, 3])
def test_float32_reported_residual_bounds_the_float64_residual(seed, k):
    # the residual combined from the relation A Q_m = Q_{m+1} H_m plus the rounding floor must
    # bound the true residual of the returned float32 vector, computed in float64 (the oracle),
    # on random spectra with a gap, a cluster and a negative tail, at loose and tight tolerances
    P = 50_000
    g = torch.Generator().manual_seed(seed)
    d = torch.cat([torch.tensor([3.0, 2.5, 2.4999]), torch.rand(P - 3, generator=g) * 2.2 - 0.6]).to(DT)
    d = d[torch.randperm(P, generator=g)]
    op = _Diag32(d)
    for tol in (1e-3, 1e-7):
        res = lanczos(op, k, tol=tol, max_iter=120, seed=seed)
        U = res.eigenvectors.double()
        d32 = d.float().double()  # the operator the solver multiplies (float32 entries)
        true = torch.linalg.vector_norm(d32[:, None] * U - res.eigenvalues.double()[None, :] * U, dim=0)
        assert torch.all(true <= res.residuals.double()), (true, res.residuals)


@pytest.mark.parametrize("factor", [1e-9, 1e9])
def test_lanczos_is_scale_invariant_with_its_rescaled_rows(factor):
    # the basis rows are stored as c_i q_i with c_{i+1} = -c_{i-1} beta_i / beta_{i-1} and c_1 =
    # beta_0; for ||A|| far from one the scales leave [1e-6, 1e6] and rows are divided: the
    # results must be those of the unscaled matrix times the factor (float64: to 1e-12)
    A, _ = sym_matrix(_SPECTRA["separated"], seed=6)
    for k in (1, 3):
        ref = lanczos(A, k, tol=1e-10, seed=3)
        got = lanczos(A * factor, k, tol=1e-10, seed=3)
        assert got.num_matvecs == ref.num_matvecs and got.converged
        assert torch.allclose(got.eigenvalues / factor, ref.eigenvalues, rtol=1e-12, atol=0)
        # residuals are rounding-sized differences: equal to 1e-4, or within the float64 floor
        # (2 + 5 sqrt m) eps ||T|| ~ 5e-14 here
        assert torch.allclose(got.residuals / factor, ref.residuals, rtol=1e-4, atol=1e-13)
        overlap = (got.eigenvectors.T @ ref.eigenvectors).abs().diagonal()
        assert torch.all(overlap > 1 - 1e-10)
