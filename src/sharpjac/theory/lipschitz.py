r"""Theorem T2: the sample-maximum Jacobian as a proxy for the Lipschitz constant on the data."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .. import jacobians as _jac
from ._common import _check_nonneg, _check_positive_int, derive_seed
from .covering import covering_radius

# --------------------------------------------------------------------------------------------
# paths on the support
# --------------------------------------------------------------------------------------------


def latent_path(generator: Callable[[Tensor], Tensor], z0: Tensor, z1: Tensor, num_points: int = 64) -> Tensor:
    r"""Points :math:`g((1-t)z_0+tz_1)` on a straight latent segment, :math:`t` on a uniform grid.

    Args:
        generator: :math:`g`, latents ``[M, d]`` to points ``[M, n]``.
        z0, z1: latent end points ``[d]`` (or ``[P, d]`` for P paths at once).
        num_points: grid points per path, >= 2 (including both ends).

    Returns:
        ``[num_points, n]`` (or ``[P, num_points, n]``).
    """
    num_points = _check_positive_int("num_points", num_points, 2)
    single = z0.ndim == 1
    Z0, Z1 = (z0[None], z1[None]) if single else (z0, z1)
    if Z0.shape != Z1.shape or Z0.ndim != 2:
        raise ValueError(f"z0 and z1 must both have shape [d] or [P, d]; got {tuple(z0.shape)}, {tuple(z1.shape)}")
    t = torch.linspace(0, 1, num_points, dtype=Z0.dtype, device=Z0.device)
    Z = Z0[:, None, :] * (1 - t)[None, :, None] + Z1[:, None, :] * t[None, :, None]  # [P, T, d]
    X = generator(Z.reshape(-1, Z.shape[-1])).reshape(Z.shape[0], num_points, -1)
    return X[0] if single else X


def polyline_length(points: Tensor) -> Tensor:
    r"""Length :math:`\sum_j\|p_{j+1}-p_j\|` of a polyline ``[T, n]`` (or ``[P, T, n]`` -> ``[P]``).

    For a fine polyline through points of a curve in :math:`S` this approaches the curve's length
    from below; any curve's length is an upper bound on the intrinsic distance :math:`d_S` of its
    end points.
    """
    if not isinstance(points, Tensor) or points.ndim not in (2, 3) or points.shape[-2] < 2:
        raise ValueError(
            f"points must have shape [T, n] or [P, T, n] with T >= 2, got {getattr(points, 'shape', None)}"
        )
    return (points[..., 1:, :] - points[..., :-1, :]).norm(dim=-1).sum(-1)


# --------------------------------------------------------------------------------------------
# T2: the sample-maximum Jacobian as a proxy for the Lipschitz constant on the data
# --------------------------------------------------------------------------------------------


#: activations whose derivative lies in [-1, 1] everywhere (1-Lipschitz), for :func:`layer_norm_product`
_ONE_LIPSCHITZ = (nn.Tanh, nn.ReLU, nn.Identity, nn.Flatten)


def layer_norm_product(model: nn.Module) -> float:
    r"""A certified upper bound :math:`\prod_l\|W_l\|_2` on :math:`\sup_x\|Jf(x)\|` for a feed-forward net.

    For :math:`f=W_L\sigma(\dots\sigma(W_1x+b_1)\dots)+b_L` with 1-Lipschitz activations
    (:math:`|\sigma'|\le1`: tanh, ReLU), :math:`Jf(x)=W_L D_{L-1}(x)W_{L-1}\cdots D_1(x)W_1` with
    diagonal :math:`\|D_l(x)\|\le1`, so by submultiplicativity
    :math:`\|Jf(x)\|_2\le\prod_l\|W_l\|_2` at **every** input :math:`x` (on :math:`S` and off it).
    It is an upper estimate of :math:`\sup_S\|Jf\|`, usually loose by a large factor.

    Args:
        model: an ``nn.Sequential`` (e.g. :class:`sharpjac.models.MLP`) of ``nn.Linear`` layers and
            1-Lipschitz activations (``Tanh``, ``ReLU``, ``Identity``, ``Flatten``).

    Returns:
        float.

    Raises:
        ValueError: a module of another kind (one line naming it).
    """
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"model={type(model).__name__} is invalid; accepted: an nn.Sequential of Linear layers")
    prod = 1.0
    for module in model:
        if isinstance(module, nn.Linear):
            prod *= float(torch.linalg.matrix_norm(module.weight.detach().to(torch.float64), ord=2))
        elif not isinstance(module, _ONE_LIPSCHITZ):
            raise ValueError(
                f"module={type(module).__name__} is invalid; accepted: Linear, Tanh, ReLU, Identity, Flatten"
            )
    return prod


@dataclass(frozen=True)
class T2Sandwich:
    r"""Both sides of Theorem T2, and the estimates of the quantity in between.

    With :math:`M=\max_i\|Jf(x_i)\|` and :math:`\phi_i=\sup_{x'\in B(x_i,\delta)}\|Jf(x')-Jf(x_i)\|`
    (:math:`\phi_i\le V_{B(x_i,\delta)}(Jf)`), on the covering event

    .. math:: M\ \le\ \sup_{x\in S}\|Jf(x)\|\ \le\ \max_i\big(\|Jf(x_i)\|+\phi_i\big)\ \le\ M+\max_i\phi_i ,

    and every path-wise Lipschitz ratio on :math:`S` is at most :math:`\sup_S\|Jf\|`.

    Attributes:
        sample_max: :math:`M`.
        probe_sup: :math:`\max` of :math:`\|Jf\|` over the dense support probe (estimates
            :math:`\sup_S\|Jf\|` from below).
        local_variation: :math:`\max_i\hat\phi_i` (estimate from
            :func:`sharpjac.jacobians.local_variation`, a lower estimate of the supremum).
        upper: :math:`M+\max_i\hat\phi_i` (the theorem's right-hand side).
        upper_pointwise: :math:`\max_i(\|Jf(x_i)\|+\hat\phi_i)` (tighter, same proof).
        radius: :math:`\delta`, the ball radius used.
        path_lipschitz: largest :math:`\|f(\gamma(1))-f(\gamma(0))\|/\mathrm{length}(\gamma)` over
            the sampled paths (nan without a generator).
        path_slope: largest segment slope :math:`\|f(p_{j+1})-f(p_j)\|/\|p_{j+1}-p_j\|` along the
            paths (a finer estimate of the Lipschitz constant along :math:`S`; nan without paths).
        num_probe, num_paths: sizes used.
        layer_product: :math:`\prod_l\|W_l\|_2` (:func:`layer_norm_product`), a certified upper
            bound on :math:`\sup_x\|Jf(x)\|` (nan for models it does not apply to).
    """

    sample_max: float
    probe_sup: float
    local_variation: float
    upper: float
    upper_pointwise: float
    radius: float
    path_lipschitz: float
    path_slope: float
    num_probe: int
    num_paths: int
    layer_product: float = float("nan")

    @property
    def holds(self) -> bool:
        """Whether every estimate lies under the upper side (``upper_pointwise``)."""
        top = max(
            self.probe_sup, self.sample_max, *(v for v in (self.path_lipschitz, self.path_slope) if math.isfinite(v))
        )
        return bool(top <= self.upper_pointwise)

    @property
    def margin(self) -> float:
        """``upper_pointwise`` minus the largest estimate of :math:`\\sup_S\\|Jf\\|`."""
        top = max(
            self.probe_sup, self.sample_max, *(v for v in (self.path_lipschitz, self.path_slope) if math.isfinite(v))
        )
        return float(self.upper_pointwise - top)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def t2_sandwich(
    model: nn.Module,
    x_sample: Tensor,
    support_probe: Tensor,
    radius: float | None = None,
    *,
    generator: Callable[[Tensor], Tensor] | None = None,
    latent_dim: int | None = None,
    num_paths: int = 64,
    path_points: int = 128,
    lv_samples: int = 32,
    lv_ascent_steps: int = 5,
    seed: int = 0,
    chunk_size: int = 256,
) -> T2Sandwich:
    r"""Evaluate Theorem T2's sandwich for a model on data from a known support.

    Computes :math:`\|Jf\|` at the sample and on the probe, the local variation
    :math:`\hat\phi_i` on balls :math:`B(x_i,\delta)` (by
    :func:`sharpjac.jacobians.local_variation`), and, with a generator :math:`g` of the support,
    finite-difference Lipschitz ratios along ``num_paths`` random paths
    :math:`\gamma(t)=g((1-t)z+tz')` (latent end points uniform in :math:`[0,1]^d`), whose lengths
    are measured on a polyline of ``path_points`` points.

    Args:
        model: the network (treats samples independently).
        x_sample: training sample ``[N, *input_shape]``.
        support_probe: dense probe of :math:`S` ``[M, *input_shape]``.
        radius: :math:`\delta`; default: the empirical covering radius of the sample on the probe.
        generator: :math:`g` (latents ``[m, d]`` -> points ``[m, n]``) for the path estimates.
        latent_dim: :math:`d` (needed with ``generator`` unless it has a ``.d`` attribute).
        num_paths, path_points: path sampling.
        lv_samples, lv_ascent_steps: controls of the local-variation search.
        seed: seed of the paths and of the local-variation search.
        chunk_size: Jacobians per vectorised chunk.

    Returns:
        :class:`T2Sandwich`.
    """
    if radius is None:
        radius = covering_radius(support_probe, x_sample)
    try:
        layer_product = layer_norm_product(model)
    except ValueError:  # not a plain feed-forward net of 1-Lipschitz activations
        layer_product = float("nan")
    radius = _check_nonneg("radius", radius)
    with torch.no_grad():
        js = _jac.jacobian_norms(model, x_sample, "spectral", chunk_size=chunk_size)
        jp = _jac.jacobian_norms(model, support_probe, "spectral", chunk_size=chunk_size)
    phi = _jac.local_variation(
        model, x_sample, radius, num_samples=lv_samples, ascent_steps=lv_ascent_steps, seed=seed, chunk_size=chunk_size
    )
    path_lip = path_slope = float("nan")
    n_paths = 0
    if generator is not None:
        d = latent_dim if latent_dim is not None else getattr(generator, "d", None)
        if d is None:
            raise ValueError("latent_dim is required when the generator has no `.d` attribute")
        n_paths = _check_positive_int("num_paths", num_paths)
        gen = torch.Generator().manual_seed(derive_seed(seed, 2))
        dtype = x_sample.dtype
        z0 = torch.rand(n_paths, int(d), generator=gen, dtype=torch.float64).to(dtype)
        z1 = torch.rand(n_paths, int(d), generator=gen, dtype=torch.float64).to(dtype)
        with torch.no_grad():
            pts = latent_path(generator, z0, z1, path_points)  # [P, T, n]
            out = model(pts.reshape(-1, *x_sample.shape[1:])).reshape(n_paths, path_points, -1)
            length = polyline_length(pts)
            chord = (out[:, -1] - out[:, 0]).norm(dim=-1)
            path_lip = float((chord / length.clamp_min(torch.finfo(dtype).tiny)).max())
            seg = (pts[:, 1:] - pts[:, :-1]).norm(dim=-1)
            dout = (out[:, 1:] - out[:, :-1]).norm(dim=-1)
            ok = seg > 0
            path_slope = float((dout[ok] / seg[ok]).max()) if bool(ok.any()) else float("nan")
    return T2Sandwich(
        sample_max=float(js.max()),
        probe_sup=float(jp.max()),
        local_variation=float(phi.max()),
        upper=float(js.max() + phi.max()),
        upper_pointwise=float((js + phi).max()),
        radius=radius,
        path_lipschitz=path_lip,
        path_slope=path_slope,
        num_probe=int(jp.shape[0]),
        num_paths=n_paths,
        layer_product=layer_product,
    )
