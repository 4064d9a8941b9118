r"""Theorem T1: the covering radius of a sample of the data manifold, and its rate in N."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._common import _as_points, _check_nonneg, _check_positive_int

# --------------------------------------------------------------------------------------------
# T1: covering
# --------------------------------------------------------------------------------------------


def nearest_sample(support: Tensor, sample: Tensor, *, chunk_size: int = 2048) -> tuple[Tensor, Tensor]:
    r"""Distance from each support point to its nearest sample point, and that point's index.

    Args:
        support: points :math:`s_1,\dots,s_M` ``[M, *shape]`` (flattened to ``[M, n]``).
        sample: points :math:`x_1,\dots,x_N` ``[N, *shape]``.
        chunk_size: support points per ``torch.cdist`` call (memory ``chunk_size * N``).

    Returns:
        ``(dist [M], index [M])`` with ``dist[m] = min_i ||s_m - x_i||`` (Euclidean) and
        ``index[m]`` the minimiser (the Voronoi cell of the sample that contains ``s_m``).
    """
    s = _as_points("support", support)
    x = _as_points("sample", sample)
    if s.shape[1] != x.shape[1]:
        raise ValueError(
            f"support has points of dimension {s.shape[1]} (shape {tuple(support.shape)}) but "
            f"sample has dimension {x.shape[1]} (shape {tuple(sample.shape)}); they must agree"
        )
    _check_positive_int("chunk_size", chunk_size)
    s, x = s.to(torch.float64), x.to(torch.float64)
    if s.shape[1] == 1:  # one dimension: sort and search, exact and O((M + N) log N)
        xs, order = x[:, 0].sort()
        pos = torch.searchsorted(xs, s[:, 0]).clamp(1, max(1, xs.numel() - 1))
        left, right = (pos - 1).clamp_min(0), pos.clamp_max(xs.numel() - 1)
        dl, dr = (s[:, 0] - xs[left]).abs(), (s[:, 0] - xs[right]).abs()
        use_right = dr < dl
        return torch.where(use_right, dr, dl), order[torch.where(use_right, right, left)]
    dists, idx = [], []
    with torch.no_grad():
        for sc in s.split(chunk_size):
            D = torch.cdist(sc, x)
            dmin, imin = D.min(dim=1)
            dists.append(dmin)
            idx.append(imin)
    return torch.cat(dists), torch.cat(idx)


def covering_radius(support: Tensor, sample: Tensor, *, chunk_size: int = 2048) -> float:
    r"""Empirical covering radius :math:`\max_m\min_i\|s_m-x_i\|` of a sample on a support probe.

    The smallest :math:`\delta` such that every probe point :math:`s_m\in S` lies in some ball
    :math:`B(x_i,\delta)`. With a dense probe of :math:`S` it estimates (from below) the covering
    radius :math:`\sup_{s\in S}\min_i\|s-x_i\|` that Theorem T1 bounds.

    Args:
        support: probe points of the support ``[M, *shape]``.
        sample: the sample ``[N, *shape]``.
        chunk_size: see :func:`nearest_sample`.

    Returns:
        float.
    """
    dist, _ = nearest_sample(support, sample, chunk_size=chunk_size)
    return float(dist.max())


def refined_covering_radius(
    generator: Callable[[Tensor], Tensor],
    probe_latent: Tensor,
    sample: Tensor,
    *,
    candidates: int = 64,
    proposals: int = 12,
    steps: int = 30,
    seed: int = 0,
    chunk_size: int = 2048,
) -> float:
    r"""Covering radius of a sample of :math:`S=g([0,1]^d)`: a probe, then a local search in the latent cube.

    A finite probe underestimates :math:`\sup_{s\in S}\min_i\|s-x_i\|` by the distance from the
    deepest hole to the nearest probe point; in :math:`d=4` a probe of :math:`3N` points misses
    5-25 %, and the error shrinks only like :math:`M^{-1/d}` with the probe size :math:`M`. So the
    probe only finds the holes: the ``candidates`` deepest probe points (one per nearest sample
    point, so that they lie in different holes) are each improved by a random pattern search on
    the latent :math:`z\in[0,1]^d`: ``proposals`` points :math:`z+s\,u`, :math:`u` uniform on
    :math:`[-1,1]^d` (clipped to the cube), replace :math:`z` when one is farther from the sample;
    the step :math:`s` starts at the probe's spacing :math:`M^{-1/d}`, grows by 1.5 after a success
    and shrinks by 0.5 after a failure, for ``steps`` rounds; after a third of them only the
    candidates within 5 % of the deepest go on (the cost then falls by about a quarter, the radius
    moves by under 1 % in a comparison on the T1 generator). The result is
    :math:`\max(\text{probe radius},\text{refined})\le` the true radius (every evaluated point
    lies in :math:`S`). ``tests/test_theory.py`` checks it against exact covering radii (sorted
    gaps in :math:`d=1`, Voronoi vertices and boundary bisectors of the square in :math:`d=2`, a
    lattice with one point removed in :math:`d=3,4`): within 0.5 %. It can still miss a hole that
    none of the candidates starts in (on the T1 chapter's generator, probes of 4,000 and 10,000
    points give refined radii within 1 % of each other).

    Args:
        generator: :math:`g`, latents ``[M, d]`` in :math:`[0,1]^d` -> points ``[M, n]``.
        probe_latent: probe latents ``[M, d]`` (uniform in the cube).
        sample: the sample points ``[N, n]``.
        candidates, proposals, steps: the search's size (see above); each >= 1.
        seed: seed of the search's random directions.
        chunk_size: see :func:`nearest_sample`.

    Returns:
        float, at least :func:`covering_radius` of the probe image.
    """
    if not isinstance(probe_latent, Tensor) or probe_latent.ndim != 2:
        raise ValueError(
            f"probe_latent must be a tensor [M, d], got {getattr(probe_latent, 'shape', type(probe_latent).__name__)}"
        )
    for name, value in (("candidates", candidates), ("proposals", proposals), ("steps", steps)):
        _check_positive_int(name, value)
    z0 = probe_latent.to(torch.float64)
    M, d = z0.shape
    with torch.no_grad():
        dist, idx = nearest_sample(generator(z0), sample, chunk_size=chunk_size)
        # the deepest probe point of each Voronoi cell, then the deepest cells
        order = torch.argsort(dist, descending=True)
        _, first = np.unique(idx[order].numpy(), return_index=True)
        pick = order[torch.as_tensor(np.sort(first)[: int(candidates)])]
        z, f = z0[pick], dist[pick]
        scale = torch.full((len(z),), float(M) ** (-1.0 / d), dtype=torch.float64)
        gen = torch.Generator().manual_seed(int(seed))
        k, p = len(z), int(proposals)
        best_f = dist.max()
        for step in range(int(steps)):
            if step == int(steps) // 3:  # the climbs are mostly done: keep the holes within 5 % of the deepest
                best_f = torch.maximum(best_f, f.max())
                keep = f >= 0.95 * f.max()
                z, f, scale, k = z[keep], f[keep], scale[keep], int(keep.sum())
            u = 2 * torch.rand(k, p, d, generator=gen, dtype=torch.float64) - 1
            trial = (z[:, None, :] + scale[:, None, None] * u).clamp(0.0, 1.0).reshape(k * p, d)
            ft, _ = nearest_sample(generator(trial), sample, chunk_size=chunk_size)
            ft, j = ft.reshape(k, p).max(dim=1)
            better = ft > f
            z = torch.where(better[:, None], trial.reshape(k, p, d)[torch.arange(k), j], z)
            f = torch.where(better, ft, f)
            scale = torch.where(better, scale * 1.5, scale * 0.5)
    return float(torch.maximum(torch.maximum(f.max(), dist.max()), best_f))


def _check_epsilon(epsilon: Any) -> float:
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.floating)) or not 0 < epsilon < 1:
        raise ValueError(f"epsilon={epsilon!r} is invalid; accepted: a number in (0, 1)")
    return float(epsilon)


def t1_hypothesis(N: int, epsilon: float) -> bool:
    r"""Whether :math:`(N,\varepsilon)` satisfies Theorem T1's hypothesis :math:`N\ge\log(N/\varepsilon)\ge1`.

    Both halves are needed by the proof: with :math:`m=\lfloor(N/\log(N/\varepsilon))^{1/d}\rfloor`,
    :math:`N\ge\log(N/\varepsilon)` gives :math:`m\ge1`, and :math:`\log(N/\varepsilon)\ge1` gives
    :math:`m^d\le N`, the step :math:`m^d\varepsilon/N\le\varepsilon` of the union bound. Example:
    :math:`N=1,\varepsilon=0.99` satisfies the first half (:math:`1\ge\log(1/0.99)\approx0.01`) but
    not the second.

    Args:
        N: sample size (>= 1).
        epsilon: failure probability, in (0, 1).

    Returns:
        bool.
    """
    N = _check_positive_int("N", N)
    epsilon = _check_epsilon(epsilon)
    log_term = math.log(N / epsilon)
    return bool(N >= log_term >= 1.0)


def t1_covering_bound(N: int, epsilon: float, d: int, lipschitz: float) -> float:
    r"""Theorem T1's covering function :math:`\delta(N,\varepsilon)=2L_g\sqrt d\,(\log(N/\varepsilon)/N)^{1/d}`.

    For :math:`\mu=g_\#\mathrm{Unif}[0,1]^d` with :math:`g` :math:`L_g`-Lipschitz, an i.i.d.
    :math:`N`-sample covers the support with balls of this radius with probability at least
    :math:`1-\varepsilon`, provided :math:`N\ge\log(N/\varepsilon)\ge1` (:func:`t1_hypothesis`).
    Outside the hypothesis the formula is refused: it can claim the impossible (for
    :math:`N=1,\varepsilon=0.99,d=1,L_g=1` it would give :math:`\approx0.02`, one point covering
    :math:`[0,1]`).

    Args:
        N: sample size (>= 1).
        epsilon: failure probability, in (0, 1).
        d: latent (intrinsic) dimension (>= 1).
        lipschitz: :math:`L_g>0`.

    Returns:
        float.

    Raises:
        ValueError: the hypothesis :math:`N\ge\log(N/\varepsilon)\ge1` fails (one line naming N,
            epsilon and log(N/epsilon)), or an argument is out of range.
    """
    N = _check_positive_int("N", N)
    d = _check_positive_int("d", d)
    epsilon = _check_epsilon(epsilon)
    lipschitz = _check_nonneg("lipschitz", lipschitz)
    log_term = math.log(N / epsilon)
    if not t1_hypothesis(N, epsilon):
        raise ValueError(
            f"N={N}, epsilon={epsilon!r} is outside Theorem T1's hypothesis: log(N/epsilon)={log_term:.4g}; "
            "accepted: N >= log(N/epsilon) >= 1"
        )
    return 2.0 * lipschitz * math.sqrt(d) * (log_term / N) ** (1.0 / d)


@dataclass(frozen=True)
class LogLogFit:
    r"""Least-squares fit :math:`\log y = a + b\log x`.

    Attributes:
        slope: :math:`b`.
        intercept: :math:`a` (natural log).
        stderr: standard error of the slope (nan with two points).
        r2: coefficient of determination of the fit in log-log space.
    """

    slope: float
    intercept: float
    stderr: float
    r2: float

    def predict(self, x: Any) -> np.ndarray:
        """:math:`e^a x^b` at ``x``."""
        return np.exp(self.intercept) * np.asarray(x, dtype=float) ** self.slope


def fit_loglog_slope(x: Any, y: Any) -> LogLogFit:
    r"""Fit a power law :math:`y\approx e^a x^b` by least squares on :math:`(\log x,\log y)`.

    Args:
        x, y: positive numbers, same length >= 2 (array-likes or tensors).

    Returns:
        :class:`LogLogFit`.
    """
    x = np.asarray(x.detach().cpu() if isinstance(x, Tensor) else x, dtype=float).ravel()
    y = np.asarray(y.detach().cpu() if isinstance(y, Tensor) else y, dtype=float).ravel()
    if x.shape != y.shape or x.size < 2:
        raise ValueError(f"x and y must have the same length >= 2; got lengths {x.size} and {y.size}")
    if not (np.all(x > 0) and np.all(y > 0) and np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite and positive for a log-log fit")
    lx, ly = np.log(x), np.log(y)
    A = np.stack([np.ones_like(lx), lx], axis=1)
    coef, *_ = np.linalg.lstsq(A, ly, rcond=None)
    resid = ly - A @ coef
    n = x.size
    sxx = float(((lx - lx.mean()) ** 2).sum())
    if sxx == 0:
        raise ValueError("x must take at least two distinct values")
    stderr = math.sqrt(float(resid @ resid) / (n - 2) / sxx) if n > 2 else float("nan")
    sst = float(((ly - ly.mean()) ** 2).sum())
    r2 = 1.0 - float(resid @ resid) / sst if sst > 0 else 1.0
    return LogLogFit(slope=float(coef[1]), intercept=float(coef[0]), stderr=stderr, r2=r2)


def holder_curve(z: Tensor, alpha: float = 0.25) -> Tensor:
    r"""A one-dimensional generator with a cusp: :math:`g(z)=\operatorname{sign}(t)|t|^{\alpha}`,
    :math:`t=z-\tfrac12`.

    For :math:`0<\alpha<1` it is :math:`\alpha`-Hölder but **not Lipschitz** (its slope
    :math:`\alpha|t|^{\alpha-1}` is unbounded at :math:`t=0`), so Theorem T1 does not apply:
    near the cusp a latent gap :math:`h` becomes a gap :math:`\approx h^\alpha` in the data, and
    the covering radius decays like :math:`N^{-\alpha}` instead of :math:`N^{-1}`.

    Args:
        z: latents ``[M, 1]`` in :math:`[0,1]`.
        alpha: exponent in (0, 1] (1 gives a Lipschitz map).

    Returns:
        points ``[M, 1]``.
    """
    if not isinstance(z, Tensor) or z.ndim != 2 or z.shape[1] != 1:
        raise ValueError(f"z must be a tensor of shape [M, 1], got {getattr(z, 'shape', type(z).__name__)}")
    if not 0 < float(alpha) <= 1:
        raise ValueError(f"alpha={alpha!r} must lie in (0, 1]")
    t = z - 0.5
    return torch.sign(t) * t.abs() ** float(alpha)
