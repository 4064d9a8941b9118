"""Tests for sharpjac.mediators against independent oracles.

Oracles: dense Hessians from ``torch.func.hessian`` and the exact law H' = D^-1 H D^-1 of a
reparametrisation; the closed form of the cross-entropy curvature at its minimiser (found here by
numerically minimising the smoothed loss); the closed-form gradient and constant Hessian of a
linear model under squared error.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian

from sharpjac import losses, mediators

DT = torch.float64


def _relu_mlp(seed=0, n0=4, widths=(5, 3), k=3):
    torch.manual_seed(seed)
    mods, prev = [nn.Flatten()], n0
    for w in widths:
        mods += [nn.Linear(prev, w), nn.ReLU()]
        prev = w
    mods.append(nn.Linear(prev, k))
    return nn.Sequential(*mods).to(DT)


def _data(N=10, n0=4, k=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, n0, generator=g, dtype=DT), torch.arange(N) % k


def _dense_hessian(model, loss_fn, x, y):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def L(th):
        ps = {n: c.view(s) for n, c, s in zip(names, torch.split(th, sizes), shapes)}
        return loss_fn(functional_call(model, ps, (x,)), y)

    return hessian(L)(theta), sizes


@pytest.mark.parametrize("layer", [1, 2])
def test_rescaling_preserves_function_and_transforms_hessian(layer):
    model = _relu_mlp()
    x, y = _data()
    lf = losses.get_loss("ce")
    alpha = 3.7
    new = mediators.rescale_layers(model, layer, alpha)
    assert torch.allclose(new(x), model(x), atol=1e-13)
    H, sizes = _dense_hessian(model, lf, x, y)
    H2, _ = _dense_hessian(new, lf, x, y)
    # D: alpha on (W_l, b_l), 1/alpha on W_{l+1}, 1 elsewhere; parameters are W1 b1 W2 b2 W3 b3
    scale = []
    for i, n in enumerate(sizes):
        lin, is_bias = divmod(i, 2)
        if lin == layer - 1:
            scale.append(torch.full((n,), alpha, dtype=DT))
        elif lin == layer and not is_bias:
            scale.append(torch.full((n,), 1 / alpha, dtype=DT))
        else:
            scale.append(torch.ones(n, dtype=DT))
    Dinv = 1 / torch.cat(scale)
    assert torch.allclose(H2, Dinv[:, None] * H * Dinv[None, :], atol=1e-10)
    # the original is untouched
    assert torch.allclose(model(x), _relu_mlp()(x))


def test_rescaling_study_sharpness_changes_jacobian_does_not():
    model = _relu_mlp(seed=2)
    x, y = _data()
    lf = losses.get_loss("mse")
    df = mediators.rescaling_study(model, lf, x, y, [0.05, 1.0, 10.0], tol=1e-10, max_iter=200)
    assert df["output_change"].max() < 1e-12 and df["jacobian_change"].max() < 1e-12
    assert np.allclose(df["loss"], df["loss"].iloc[1])
    H, _ = _dense_hessian(model, lf, x, y)
    assert math.isclose(df["sharpness"].iloc[1], float(torch.linalg.eigvalsh(H)[-1]), rel_tol=1e-8)
    for a, s in zip(df["alpha"], df["sharpness"]):
        H2, _ = _dense_hessian(mediators.rescale_layers(model, 1, a), lf, x, y)
        assert math.isclose(s, float(torch.linalg.eigvalsh(H2)[-1]), rel_tol=1e-8)
    # interlacing: s(alpha) >= lambda_max of the rescaled diagonal blocks (layer-1 block / alpha^2,
    # W_2 block * alpha^2), so the sharpness is unbounded in both directions
    p1 = model[1].weight.numel() + model[1].bias.numel()
    p2 = model[3].weight.numel()
    top1 = float(torch.linalg.eigvalsh(H[:p1, :p1])[-1])
    top2 = float(torch.linalg.eigvalsh(H[p1 : p1 + p2, p1 : p1 + p2])[-1])
    for a, s in zip(df["alpha"], df["sharpness"]):
        assert s >= max(top1 / a**2, top2 * a**2) * (1 - 1e-9)
    assert df["sharpness"].iloc[0] > 2 * df["sharpness"].iloc[1]


def test_rescale_validation():
    tanh = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).to(DT)
    with pytest.raises(ValueError, match="homogeneous"):
        mediators.rescale_layers(tanh, 1, 2.0)
    with pytest.raises(ValueError, match="alpha"):
        mediators.rescale_layers(_relu_mlp(), 1, -1.0)
    with pytest.raises(ValueError, match="layer"):
        mediators.rescale_layers(_relu_mlp(), 3, 2.0)


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.3])
def test_smoothed_curvature_at_optimum_against_numerical_minimiser(alpha):
    k = 5
    z = torch.zeros(k, dtype=DT, requires_grad=True)
    opt = torch.optim.LBFGS(
        [z], lr=1, max_iter=500, tolerance_grad=1e-14, tolerance_change=1e-16, line_search_fn="strong_wolfe"
    )
    y = torch.tensor([2])
    lf = losses.get_loss("ce", label_smoothing=alpha)

    def closure():
        opt.zero_grad()
        loss = lf(z[None], y)
        loss.backward()
        return loss

    if alpha > 0:
        opt.step(closure)
        C = losses.output_curvature("ce", z.detach()[None], y)[0]
        expected = float(torch.linalg.eigvalsh(C)[-1])
        assert math.isclose(mediators.smoothed_curvature_at_optimum(k, alpha), expected, rel_tol=1e-6)
    else:
        # no minimiser: C -> 0 along z = s e_y, s -> infinity
        zs = torch.zeros(1, k, dtype=DT)
        zs[0, 2] = 40.0
        C = losses.output_curvature("ce", zs, y)[0]
        assert float(torch.linalg.eigvalsh(C)[-1]) < 1e-15
        assert mediators.smoothed_curvature_at_optimum(k, alpha) == 0.0
    with pytest.raises(ValueError):
        mediators.smoothed_curvature_at_optimum(1, 0.1)
    with pytest.raises(ValueError):
        mediators.smoothed_curvature_at_optimum(k, 1.0)


def test_smoothed_curvature_increases_with_smoothing():
    vals = [mediators.smoothed_curvature_at_optimum(10, a) for a in (0.0, 0.05, 0.1, 0.2)]
    assert vals[0] == 0 and all(b > a for a, b in zip(vals, vals[1:]))
