"""Losses and output curvature C against torch.func.hessian of the per-sample loss and closed forms."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sharpjac.losses import get_loss, output_curvature, output_curvature_norm, smoothed_targets


def _per_sample_hessian(name, z, y, ls):
    loss = get_loss(name, label_smoothing=ls)
    return torch.stack([torch.func.hessian(lambda zi: loss(zi[None], y[i : i + 1]))(z[i]) for i in range(len(y))])


@pytest.mark.parametrize("name", ["mse", "ce"])
@pytest.mark.parametrize("ls", [0.0, 0.1, 0.3])
def test_output_curvature_matches_autograd_hessian(name, ls):
    g = torch.Generator().manual_seed(0)
    z = 3 * torch.randn(7, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (7,), generator=g)
    C = output_curvature(name, z, y, label_smoothing=ls)
    assert C.shape == (7, 5, 5)
    torch.testing.assert_close(C, _per_sample_hessian(name, z, y, ls), rtol=1e-10, atol=1e-12)


def test_mse_is_mean_of_squared_error_against_smoothed_one_hot():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(6, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (6,), generator=g)
    t = F.one_hot(y, 4).double() * 0.8 + 0.2 / 4
    ref = sum(((z[i] - t[i]) ** 2).sum() / 4 for i in range(6)) / 6
    torch.testing.assert_close(get_loss("mse", label_smoothing=0.2)(z, y), ref)
    torch.testing.assert_close(get_loss("mse")(z, y), F.mse_loss(z, F.one_hot(y, 4).double()))


def test_label_smoothed_ce_formula():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(5, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (5,), generator=g)
    a = 0.15
    logp = z - z.logsumexp(1, keepdim=True)
    t = smoothed_targets(y, 3, a, dtype=torch.float64)
    assert torch.allclose(t.sum(1), torch.ones(5, dtype=torch.float64))
    ref = -(t * logp).sum(1)
    torch.testing.assert_close(get_loss("ce", label_smoothing=a, reduction="none")(z, y), ref)
    torch.testing.assert_close(get_loss("ce", label_smoothing=a)(z, y), ref.mean())


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.0, 0.9), st.floats(0.1, 20.0))
def test_ce_curvature_norm_is_largest_eigenvalue_and_saturates(seed, ls, scale):
    g = torch.Generator().manual_seed(seed)
    z = scale * torch.randn(4, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 6, (4,), generator=g)
    H = _per_sample_hessian("ce", z, y, ls)
    ref = torch.linalg.eigvalsh(H)[:, -1].mean().item()
    assert output_curvature_norm("ce", z, y, label_smoothing=ls) == pytest.approx(ref, rel=1e-9, abs=1e-12)
    assert ref <= 0.5 + 1e-12  # ||diag(p) - pp^T|| <= 1/2


def test_curvature_norm_limits():
    y = torch.tensor([0, 1])
    confident = torch.tensor([[50.0, 0, 0], [0, 50.0, 0]], dtype=torch.float64)
    assert output_curvature_norm("ce", confident, y) < 1e-15
    uniform = torch.zeros(2, 3, dtype=torch.float64)  # p = 1/3: eigenvalues 1/3 (twice) and 0
    assert output_curvature_norm("ce", uniform, y) == pytest.approx(1 / 3)
    assert output_curvature_norm("mse", uniform, y) == pytest.approx(2 / 3)


def test_loss_validation_messages():
    with pytest.raises(ValueError, match="loss='hinge'.*accepted"):
        get_loss("hinge")
    with pytest.raises(ValueError, match="label_smoothing"):
        get_loss("ce", label_smoothing=1.0)
    with pytest.raises(ValueError, match=r"targets must have shape \[N\]"):
        get_loss("mse")(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="int64"):
        get_loss("ce")(torch.zeros(3, 2), torch.zeros(3))
