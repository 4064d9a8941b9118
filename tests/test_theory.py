"""Tests for sharpjac.theory against independent oracles.

Oracles: numpy double loops (covering radius, Voronoi cells, hardest pairs), closed forms (T1's
formula, the CE margin on two classes, a linear model whose Jacobian is its weight matrix, a
hand-computed T4), a dense Gauss-Newton matrix built with ``torch.func.jacfwd`` over the flat
parameter vector and ``torch.func.hessian`` of the loss in output space (Proposition A), and data
of known intrinsic dimension (the ``manifold`` data set) for the dimension estimators.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import functional_call, hessian, jacfwd

from sharpjac import curvature, data, losses, theory
from sharpjac.models import MLP
from sharpjac.training import TrainConfig, train

DT = torch.float64


# ------------------------------------------------------------------------------------ T1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_covering_radius_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    support = rng.normal(size=(57, 4))
    sample = rng.normal(size=(13, 4))
    best = 0.0
    for s in support:
        nearest = min(math.sqrt(sum((a - b) ** 2 for a, b in zip(s, x))) for x in sample)
        best = max(best, nearest)
    got = theory.covering_radius(torch.tensor(support), torch.tensor(sample), chunk_size=7)
    assert got == pytest.approx(best, rel=1e-10)
    # float32 input, image-shaped points: flattened, same value
    got32 = theory.covering_radius(
        torch.tensor(support, dtype=torch.float32).reshape(57, 2, 2),
        torch.tensor(sample, dtype=torch.float32).reshape(13, 2, 2),
    )
    assert got32 == pytest.approx(best, rel=1e-5)


def test_covering_radius_rejects_mismatched_dimensions():
    with pytest.raises(ValueError, match="dimension 3"):
        theory.covering_radius(torch.zeros(4, 3), torch.zeros(2, 5))


def test_t1_bound_formula_and_hypothesis():
    N, eps, d, L = 1000, 0.05, 3, 2.5
    expected = 2 * L * math.sqrt(d) * (math.log(N / eps) / N) ** (1 / d)
    assert theory.t1_covering_bound(N, eps, d, L) == pytest.approx(expected, rel=1e-14)
    # hypothesis N >= log(N/eps) fails for N=2, eps=0.01 (log 200 = 5.3)
    with pytest.raises(ValueError, match=r"N=2, epsilon=0.01 is outside .*log\(N/epsilon\)=5.298"):
        theory.t1_covering_bound(2, 0.01, 1, 1.0)
    # boundary: N = 3, eps = 0.5: log 6 = 1.79 <= 3 is fine
    assert theory.t1_covering_bound(3, 0.5, 1, 1.0) == pytest.approx(2 * math.log(6) / 3)
    for bad in (dict(epsilon=0.0), dict(epsilon=1.0), dict(d=0), dict(lipschitz=-1.0)):
        args = dict(N=100, epsilon=0.1, d=2, lipschitz=1.0) | bad
        with pytest.raises(ValueError, match=list(bad)[0]):
            theory.t1_covering_bound(**args)


def test_t1_refuses_the_second_half_of_the_hypothesis():
    # N = 1, eps = 0.99: N >= log(N/eps) = 0.01 holds but log(N/eps) >= 1 does not; the formula would
    # claim one point covers [0, 1] within 2 * 0.01 = 0.02, which is impossible (the covering radius of
    # one point of [0, 1] is at least 1/2).
    assert not theory.t1_hypothesis(1, 0.99)
    with pytest.raises(ValueError, match=r"N=1, epsilon=0.99 is outside .* N >= log\(N/epsilon\) >= 1"):
        theory.t1_covering_bound(1, 0.99, 1, 1.0)
    # N = 1, eps = 0.1: log 10 = 2.3 > N, the first half fails
    assert not theory.t1_hypothesis(1, 0.1)
    assert theory.t1_hypothesis(3, 0.5)
    with pytest.raises(ValueError, match="epsilon=1.5 is invalid"):
        theory.t1_hypothesis(10, 1.5)


@pytest.mark.parametrize("N", [1, 2, 3, 5, 10, 100, 1000])
@pytest.mark.parametrize("eps", [0.001, 0.1, 0.4, 0.9, 0.99])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_t1_hypothesis_is_what_the_proof_needs(N, eps, d):
    # independent oracle: the proof's grid m = floor((N / log(N/eps))^(1/d)) must have 1 <= m and m^d <= N;
    # inside the hypothesis both hold (so the union bound m^d eps / N <= eps is valid); outside it the
    # formula is refused.
    log_term = math.log(N / eps)
    inside = theory.t1_hypothesis(N, eps)
    assert inside == (N >= log_term and log_term >= 1)
    if inside:
        m = math.floor((N / log_term) ** (1 / d))
        assert m >= 1 and m**d <= N
        theory.t1_covering_bound(N, eps, d, 1.0)
    else:
        with pytest.raises(ValueError, match="outside Theorem T1's hypothesis"):
            theory.t1_covering_bound(N, eps, d, 1.0)


def test_fit_loglog_slope_recovers_power_law():
    x = np.array([10, 20, 40, 80, 160.0])
    fit = theory.fit_loglog_slope(x, 3.0 * x**-0.5)
    assert fit.slope == pytest.approx(-0.5, abs=1e-12)
    assert math.exp(fit.intercept) == pytest.approx(3.0, rel=1e-12)
    assert fit.r2 == pytest.approx(1.0)
    noisy = theory.fit_loglog_slope(x, 3.0 * x**-0.5 * np.array([1.1, 0.9, 1.05, 0.95, 1.0]))
    assert noisy.stderr > 0 and abs(noisy.slope + 0.5) < 0.1
    with pytest.raises(ValueError, match="positive"):
        theory.fit_loglog_slope([1, 2], [1, -1])


def test_holder_curve_is_not_lipschitz_and_covers_slowly():
    z = torch.tensor([[0.5], [0.5 + 1e-8], [1.0]], dtype=DT)
    g = theory.holder_curve(z, alpha=0.25)
    assert g[0, 0] == 0 and g[2, 0] == pytest.approx(0.5**0.25)
    assert (g[1, 0] - g[0, 0]) / 1e-8 > 1e5  # unbounded slope at the cusp
    probe = theory.holder_curve(torch.linspace(0, 1, 4001, dtype=DT)[:, None], 0.25)
    gen = torch.Generator().manual_seed(0)
    radii = []
    sizes = [50, 200, 800]
    for N in sizes:
        vals = [
            theory.covering_radius(probe, theory.holder_curve(torch.rand(N, 1, generator=gen, dtype=DT), 0.25))
            for _ in range(4)
        ]
        radii.append(np.mean(vals))
    slope = theory.fit_loglog_slope(sizes, radii).slope
    assert -0.45 < slope < -0.15  # about -alpha, far from the Lipschitz rate -1


# ------------------------------------------------------------------------------------ Proposition A


def _dense_gauss_newton(model, x, y, loss_name):
    """G = (1/N) sum_i Phi_i^T C_i Phi_i from a flat-parameter jacfwd and a loss hessian in z."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def outputs(flat):
        params, i = {}, 0
        for n, s in zip(names, shapes):
            params[n] = flat[i : i + math.prod(s)].reshape(s)
            i += math.prod(s)
        return functional_call(model, params, (x,))

    Phi = jacfwd(outputs)(flat0)  # [N, k, P]
    z = outputs(flat0).detach()
    N, k = z.shape
    loss_fn = losses.get_loss(loss_name)
    C = torch.stack([hessian(lambda zi: loss_fn(zi[None], y[i : i + 1]))(z[i]) for i in range(N)])
    G = torch.einsum("nkp,nkl,nlq->pq", Phi, C, Phi) / N
    return G, C


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    widths=st.sampled_from([(), (5,), (6, 4), (3, 7)]),
    activation=st.sampled_from(["tanh", "relu", "gelu"]),
    loss_name=st.sampled_from(["mse", "ce"]),
    bias=st.booleans(),
)
def test_proposition_a_inequalities(seed, widths, activation, loss_name, bias):
    torch.manual_seed(seed)
    N, n0, k = 7, 4, 3
    model = MLP(n0, widths, k, activation=activation, bias=bias, seed=seed).to(DT)
    x = torch.randn(N, n0, dtype=DT) * 1.5
    y = torch.randint(0, k, (N,))
    G, C = _dense_gauss_newton(model, x, y, loss_name)
    lam = float(torch.linalg.eigvalsh(G)[-1])
    res = theory.proposition_a(model, x, C)
    tol = 1e-9 * max(1.0, lam)
    assert res.lambda_max == pytest.approx(lam, rel=1e-8, abs=1e-12)
    assert res.upper_phi >= lam - tol  # (i)
    assert res.upper_layers >= res.upper_phi - tol  # (i), layered
    assert res.lower_phi <= lam + tol
    if loss_name == "mse":
        assert math.isfinite(res.lower_jacobian) and res.lower_jacobian_note == ""
        assert res.lower_jacobian <= lam + tol  # (ii)
    else:
        assert math.isnan(res.lower_jacobian) and "c*I" in res.lower_jacobian_note
    assert res.holds
    assert res.num_params == sum(p.numel() for p in model.parameters())


def test_proposition_a_lambda_matches_gauss_newton_operator_and_lanczos():
    torch.manual_seed(3)
    model = MLP(5, (8, 6), 4, activation="tanh", seed=3).to(DT)
    x = torch.randn(20, 5, dtype=DT)
    y = torch.randint(0, 4, (20,))
    loss_fn = losses.get_loss("ce")
    C = losses.output_curvature("ce", model(x).detach(), y)
    res = theory.proposition_a(model, x, C)
    op = curvature.GaussNewtonOperator(model, loss_fn, (x, y))
    top = float(curvature.lanczos(op, k=1, tol=1e-10, max_iter=200).eigenvalues[0])
    assert res.lambda_max == pytest.approx(top, rel=1e-7)
    assert res.curvature_norm_mean == pytest.approx(losses.output_curvature_norm("ce", model(x).detach(), y), rel=1e-10)


def test_proposition_a_linear_model_closed_form():
    # f(x) = W x + b with MSE: Phi_i = [I kron x_i^T | I], Phi_i Phi_i^T = (||x_i||^2 + 1) I,
    # Jf = W. So upper_phi = (2/k) mean(||x_i||^2 + 1) and lower_phi = (2/k)/N max(||x_i||^2 + 1).
    torch.manual_seed(0)
    k = 3
    model = MLP(4, (), k, seed=1).to(DT)
    x = torch.randn(6, 4, dtype=DT)
    C = (2.0 / k) * torch.eye(k, dtype=DT)
    res = theory.proposition_a(model, x, C)
    sq = x.pow(2).sum(1) + 1
    assert res.upper_phi == pytest.approx(float((2 / k) * sq.mean()), rel=1e-10)
    assert res.upper_layers == pytest.approx(res.upper_phi, rel=1e-10)
    assert res.lower_phi == pytest.approx(float((2 / k) / 6 * sq.max()), rel=1e-10)
    # (ii) is tight for a linear model: ||Jf|| = ||W_1||
    assert res.lower_jacobian == pytest.approx(res.lower_phi, rel=1e-10)


def test_proposition_a_rejects_bad_curvature():
    model = MLP(3, (4,), 2, seed=0).to(DT)
    x = torch.randn(5, 3, dtype=DT)
    with pytest.raises(ValueError, match=r"\[N, k, k\] = \[5, 2, 2\]"):
        theory.proposition_a(model, x, torch.eye(3, dtype=DT))
    with pytest.raises(ValueError, match="positive semi-definite"):
        theory.proposition_a(model, x, -torch.eye(2, dtype=DT))


# ------------------------------------------------------------------------------------ T2


@pytest.fixture(scope="module")
def trained_manifold_net():
    options = dict(d=1, n=4, n_train=40, n_test=10, task="regression", lipschitz=4.0)
    ds = data.load("manifold", seed=0, dtype=DT, **options)
    config = TrainConfig(
        dataset="manifold",
        dataset_options=options,
        model="mlp",
        model_options={"widths": [32, 32], "activation": "tanh"},
        loss="mse",
        optimizer="gd",
        lr=0.05,
        momentum=0.9,
        max_steps=400,
        measure_every=400,
        sharpness_subset=0,
        jacobian_subset=0,
        eval_test=False,
        dtype="float64",
        device="cpu",
    )
    res = train(config)
    return ds, res.model, res.frame["train_loss"].to_numpy()


def test_t2_sandwich_orders_estimates(trained_manifold_net):
    ds, model, train_loss = trained_manifold_net
    assert train_loss[-1] < 0.1 * train_loss[0]
    probe = ds.extras["sample_support"](3000, seed=5)
    res = theory.t2_sandwich(
        model, ds.x_train, probe, generator=ds.extras["generator"], num_paths=16, path_points=200, seed=0
    )
    # oracle for the sample maximum: jacfwd per sample + numpy SVD
    J = torch.stack([jacfwd(lambda v: model(v[None])[0])(xi) for xi in ds.x_train])
    assert res.sample_max == pytest.approx(
        float(np.linalg.norm(J.detach().numpy(), ord=2, axis=(1, 2)).max()), rel=1e-9
    )
    assert res.radius == pytest.approx(theory.covering_radius(probe, ds.x_train))
    # chord / length <= max segment slope along each path (exact)
    assert res.path_lipschitz <= res.path_slope * (1 + 1e-12)
    # the sandwich: sample max <= estimates of sup_S ||Jf|| <= sample max + local variation
    assert res.sample_max <= res.upper_pointwise <= res.upper + 1e-12
    assert res.probe_sup <= res.upper_pointwise
    assert res.path_slope <= res.upper_pointwise
    assert res.holds and res.margin >= 0
    # without the local-variation term the upper side fails on this net (probe sup > sample max)
    assert res.probe_sup > res.sample_max


def test_layer_norm_product_bounds_every_jacobian(trained_manifold_net):
    ds, model, _ = trained_manifold_net
    # oracle: product of numpy spectral norms of the Linear weights
    weights = [m.weight.detach().numpy() for m in model if isinstance(m, torch.nn.Linear)]
    expected = float(np.prod([np.linalg.norm(w, ord=2) for w in weights]))
    assert theory.layer_norm_product(model) == pytest.approx(expected, rel=1e-12)
    # it bounds ||Jf(x)|| everywhere: at the data and far off it (jacfwd + numpy SVD)
    off = torch.randn(20, ds.x_train.shape[1], dtype=DT, generator=torch.Generator().manual_seed(0)) * 5
    for x in (ds.x_train, off):
        J = torch.stack([jacfwd(lambda v: model(v[None])[0])(xi) for xi in x]).detach().numpy()
        assert np.linalg.norm(J, ord=2, axis=(1, 2)).max() <= expected * (1 + 1e-12)
    probe = ds.extras["sample_support"](500, seed=5)
    res = theory.t2_sandwich(model, ds.x_train, probe, num_paths=4, seed=0)
    assert res.layer_product == pytest.approx(expected, rel=1e-12)
    assert res.probe_sup <= res.layer_product
    with pytest.raises(ValueError, match="module=Sigmoid is invalid"):
        theory.layer_norm_product(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Sigmoid()))


def test_latent_path_and_polyline_length():
    line = lambda z: torch.cat([z, 2 * z], dim=1)  # noqa: E731 - g(z) = (z, 2z), length sqrt(5)|dz|
    pts = theory.latent_path(line, torch.tensor([0.0], dtype=DT), torch.tensor([1.0], dtype=DT), 11)
    assert pts.shape == (11, 2)
    assert float(theory.polyline_length(pts)) == pytest.approx(math.sqrt(5))
    circle = lambda z: torch.cat([torch.cos(z), torch.sin(z)], dim=1)  # noqa: E731
    arc = theory.latent_path(circle, torch.zeros(2, 1, dtype=DT), torch.full((2, 1), math.pi, dtype=DT), 2001)
    assert theory.polyline_length(arc) == pytest.approx(torch.full((2,), math.pi, dtype=DT), rel=1e-6)


# ------------------------------------------------------------------------------------ T3


def test_hardest_pairs_matches_brute_force():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 3))
    y = rng.integers(0, 3, size=30)
    pairs = sorted(
        (float(np.linalg.norm(x[i] - x[j])), i, j) for i in range(30) for j in range(i + 1, 30) if y[i] != y[j]
    )
    res = theory.hardest_pairs(torch.tensor(x), torch.tensor(y), k=5, chunk_size=7)
    assert res.distance.numpy() == pytest.approx([p[0] for p in pairs[:5]], rel=1e-10)
    assert list(zip(res.i.tolist(), res.j.tolist())) == [(p[1], p[2]) for p in pairs[:5]]
    onehot = torch.nn.functional.one_hot(torch.tensor(y), 3).to(DT)
    res2 = theory.hardest_pairs(torch.tensor(x), onehot, k=5)
    assert torch.equal(res2.i, res.i) and torch.equal(res2.j, res.j)
    with pytest.raises(ValueError, match="pairs have different labels"):
        theory.hardest_pairs(torch.tensor(x[:3]), torch.tensor([0, 0, 1]), k=3)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_t3_bound_on_linear_model(seed):
    # f(x) = W x + b fitted by ridge regression to one-hot labels: Jf = W exactly, V = 0, S = R^n
    # (convex, d_S = Euclidean). T3: ||W|| >= (||y_i - y_j|| - 2 rho) / ||x_i - x_j||.
    rng = np.random.default_rng(seed)
    N, n, k = 40, 6, 3
    x = torch.tensor(rng.normal(size=(N, n)))
    labels = torch.tensor(rng.integers(0, k, size=N))
    y = torch.nn.functional.one_hot(labels, k).to(DT)
    X1 = torch.cat([x, torch.ones(N, 1, dtype=DT)], 1)
    lam = [1e-3, 1.0, 10.0][seed % 3]
    coef = torch.linalg.solve(X1.T @ X1 + lam * torch.eye(n + 1, dtype=DT), X1.T @ y)  # [n+1, k]
    W, outputs = coef[:n].T, X1 @ coef
    rho = theory.residual_radius(outputs, y)
    assert rho == pytest.approx(float((outputs - y).norm(dim=1).max()))
    pairs = theory.hardest_pairs(x, labels, k=10)
    fd = (y[pairs.i] - y[pairs.j]).norm(dim=1)
    bound = theory.t3_lower_bound(fd, pairs.distance, rho, 0.0)
    expected = (math.sqrt(2) - 2 * rho) / pairs.distance
    assert torch.allclose(bound, expected.to(DT))
    assert float(bound.max()) <= float(torch.linalg.matrix_norm(W, ord=2)) + 1e-12
    # with an exactly interpolating model (N <= n + 1) the pairwise version is tight in the sense
    # ||W(x_i - x_j)|| = ||y_i - y_j||, so the bound equals ||W u|| for the unit direction u
    xs, ys = x[:5], y[:5]
    X1s = torch.cat([xs, torch.ones(5, 1, dtype=DT)], 1)
    coef_s = torch.linalg.lstsq(X1s, ys).solution
    Ws = coef_s[:n].T
    i, j = 0, 1
    u = (xs[i] - xs[j]) / (xs[i] - xs[j]).norm()
    b = theory.t3_lower_bound(
        [(ys[i] - ys[j]).norm()], [(xs[i] - xs[j]).norm()], theory.residual_radius(X1s @ coef_s, ys), 0.0
    )
    assert float(b[0]) == pytest.approx(float((Ws @ u).norm()), rel=1e-6)


def test_ce_margin_closed_form_two_classes():
    eta = torch.tensor([0.01, 0.1, 0.5, 0.69])
    m = theory.ce_margin(eta)
    # two classes with logit margin exactly m: the cross-entropy equals eta
    z = torch.stack([m, torch.zeros_like(m)], 1)
    ce = torch.nn.functional.cross_entropy(z, torch.zeros(4, dtype=torch.long), reduction="none")
    assert torch.allclose(ce, eta.to(DT), rtol=1e-12)
    assert float(theory.ce_margin(math.log(2))) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="eta"):
        theory.ce_margin(0.0)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 5))
def test_t3_ce_bound_on_linear_model(seed, k):
    # f(x) = W x: ||Jf|| = ||W|| everywhere; two differently labelled points at distance D
    g = torch.Generator().manual_seed(seed)
    n = 3
    W = torch.randn(k, n, generator=g, dtype=DT) * 3
    x = torch.randn(2, n, generator=g, dtype=DT)
    z = x @ W.T
    labels = z.argmax(1)
    if labels[0] == labels[1]:
        return
    eta = float(torch.nn.functional.cross_entropy(z, labels, reduction="none").max())
    D = float((x[0] - x[1]).norm())
    bound = float(theory.t3_ce_bound(eta, D))
    assert bound <= float(torch.linalg.matrix_norm(W, ord=2)) + 1e-12


# ------------------------------------------------------------------------------------ T4


def test_t4_terms_by_hand():
    res = theory.t4_bound(
        [1.0, 2.0], [0.25, 0.75], delta=0.1, K=2.0, K_prime=3.0, L_star=4.0, jac_max=5.0, local_var=1.0, vacuous_at=4.0
    )
    assert res.empirical == pytest.approx(1.75)
    assert res.jacobian == pytest.approx(1.0)
    assert res.variation == pytest.approx(0.2)
    assert res.target == pytest.approx(1.2)
    assert res.total == pytest.approx(4.15)
    assert res.dominant == "empirical" and res.vacuous is True
    with pytest.raises(ValueError, match="delta"):
        theory.t4_bound([1.0], [1.0], -0.1, 1, 1, 1, 1, 0)


def test_voronoi_weights_by_hand():
    sample = torch.tensor([[0.0], [1.0], [3.0]])
    probe = torch.linspace(0, 4, 401)[:, None]  # cells: [0, .5), [.5, 2), [2, 4]
    w = theory.voronoi_weights(sample, probe)
    counts = np.zeros(3)
    for p in probe[:, 0].tolist():
        counts[int(np.argmin([abs(p - s) for s in (0.0, 1.0, 3.0)]))] += 1
    assert w.numpy() == pytest.approx(counts / 401)
    assert float(w.sum()) == pytest.approx(1.0)


def test_t4_bound_holds_pointwise_on_a_linear_model():
    # S = [0,1]^2, f*(x) = sin(w.x) (L* = ||w||), f(x) = a.x + c (Jf = a, V = 0), loss |z - y|
    # (K = K' = 1). With delta the covering radius on the probe, the bound holds on the probe
    # exactly, so the Monte-Carlo test loss is below it.
    g = torch.Generator().manual_seed(0)
    w = torch.tensor([3.0, -2.0], dtype=DT)
    fstar = lambda x: torch.sin(x @ w)  # noqa: E731
    a, c = torch.tensor([2.0, -1.0], dtype=DT), 0.3
    f = lambda x: x @ a + c  # noqa: E731
    sample = torch.rand(60, 2, generator=g, dtype=DT)
    probe = torch.rand(20000, 2, generator=g, dtype=DT)
    delta = theory.covering_radius(probe, sample)
    weights = theory.voronoi_weights(sample, probe)
    res = theory.t4_bound(
        (f(sample) - fstar(sample)).abs(), weights, delta, 1.0, 1.0, float(w.norm()), float(a.norm()), 0.0
    )
    test_loss = float((f(probe) - fstar(probe)).abs().mean())
    assert test_loss <= res.total
    assert res.empirical == pytest.approx(float((weights * (f(sample) - fstar(sample)).abs()).sum()))


# ------------------------------------------------------------------------------------ dimension


@pytest.fixture(scope="module")
def manifold_points():
    return {d: data.load("manifold", seed=0, d=d, n=16, n_train=3000, n_test=1, dtype=DT).x_train for d in range(1, 6)}


@pytest.mark.parametrize("d", [1, 2, 3, 4, 5])
def test_intrinsic_dimension_estimators_recover_d(manifold_points, d):
    # measured (seed 0, N=3000, n=16): TwoNN 1.00 2.03 2.88 3.82 4.48; LB(10..20) 1.08 2.11 3.06 3.98 4.79
    x = manifold_points[d]
    for est in (theory.twonn_dimension(x), theory.levina_bickel_dimension(x, 10, 20)):
        if d <= 3:
            assert abs(est - d) < 0.5, (d, est)
        else:
            assert abs(est - d) / d < 0.15, (d, est)


def test_intrinsic_dimension_exact_cases():
    # an isotropic Gaussian cloud in a 3-d subspace of R^10 (measured: TwoNN 3.0, LB 3.3 - the
    # Levina-Bickel estimate is biased upwards where the density is not locally uniform)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4000, 3, generator=g, dtype=DT)
    Q, _ = torch.linalg.qr(torch.randn(10, 3, generator=g, dtype=DT))
    x = z @ Q.T
    assert abs(theory.twonn_dimension(x) - 3) < 0.3
    assert abs(theory.levina_bickel_dimension(x, 10, 20) - 3) < 0.45
    with pytest.raises(ValueError, match="k1"):
        theory.levina_bickel_dimension(x, 1, 5)


def test_nearest_sample_one_dimensional_fast_path_matches_brute_force():
    rng = np.random.default_rng(4)
    for N in (1, 2, 9):
        support, sample = rng.uniform(-1, 2, size=(200, 1)), rng.uniform(0, 1, size=(N, 1))
        dist, idx = theory.nearest_sample(torch.tensor(support), torch.tensor(sample))
        D = np.abs(support - sample.T)
        assert dist.numpy() == pytest.approx(D.min(1), abs=1e-15)
        assert np.allclose(D[np.arange(200), idx.numpy()], D.min(1))


# --- the refined covering radius against exact covering radii (issue 19: a probe sized for d) -------------


def _exact_radius_1d(x):
    xs = np.sort(x[:, 0])
    return max(xs[0], 1 - xs[-1], np.diff(xs).max() / 2)


def _exact_radius_square(x):
    # the farthest point of [0,1]^2 from the sample is a corner, a Voronoi vertex inside the square, or the
    # crossing of a bisector of two sample points with an edge of the square
    import itertools

    from scipy.spatial import Voronoi

    cand = [np.array(c, float) for c in itertools.product((0, 1), repeat=2)]
    v = Voronoi(x).vertices
    cand += list(v[(v >= 0).all(1) & (v <= 1).all(1)])
    for i, j in itertools.combinations(range(len(x)), 2):
        n, c = x[j] - x[i], (x[j] @ x[j] - x[i] @ x[i]) / 2  # the bisector n . p = c
        for ax, val in itertools.product((0, 1), (0.0, 1.0)):
            other = 1 - ax
            if abs(n[other]) > 1e-15 and 0 <= (t := (c - n[ax] * val) / n[other]) <= 1:
                p = np.zeros(2)
                p[ax], p[other] = val, t
                cand.append(p)
    C = np.array(cand)
    return np.sqrt(((C[:, None, :] - x[None]) ** 2).sum(-1)).min(1).max()


@pytest.mark.parametrize("d, N", [(1, 200), (2, 60), (2, 150)])
def test_refined_covering_radius_matches_exact_random_samples(d, N):
    rng = np.random.default_rng(d * 1000 + N)
    for trial in range(3):
        x = rng.random((N, d))
        probe = torch.tensor(rng.random((10 * N, d)))
        exact = _exact_radius_1d(x) if d == 1 else _exact_radius_square(x)
        got = theory.refined_covering_radius(lambda z: z, probe, torch.tensor(x), seed=trial)
        # never above the truth (every evaluated point lies in S); within 0.5 % of it, the stated precision
        assert exact * (1 - 5e-3) <= got <= exact * (1 + 1e-12)
        assert got >= theory.covering_radius(probe, torch.tensor(x))


@pytest.mark.parametrize("d, m", [(3, 6), (4, 5)])
def test_refined_covering_radius_finds_a_lattice_hole(d, m):
    # cell centres of an m^d grid with one interior centre removed: the deepest hole is the removed centre,
    # at distance 1/m from its axis neighbours (the grid's own holes have radius sqrt(d)/(2m) <= 1/m for d <= 4)
    import itertools

    grid = (np.array(list(itertools.product(range(m), repeat=d))) + 0.5) / m
    centre = np.full(d, (m // 2 + 0.5) / m)
    x = torch.tensor(grid[~np.all(np.isclose(grid, centre), axis=1)])
    probe = torch.tensor(np.random.default_rng(d).random((3 * len(x), d)))
    got = theory.refined_covering_radius(lambda z: z, probe, x, seed=0)
    assert 1 / m * (1 - 5e-3) <= got <= 1 / m * (1 + 1e-12)
    assert theory.covering_radius(probe, x) < got  # the probe alone misses the hole's centre


def test_refined_covering_radius_rejects_bad_arguments():
    with pytest.raises(ValueError, match="probe_latent must be a tensor"):
        theory.refined_covering_radius(lambda z: z, torch.zeros(5), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="candidates"):
        theory.refined_covering_radius(lambda z: z, torch.zeros(5, 1), torch.zeros(3, 1), candidates=0)
