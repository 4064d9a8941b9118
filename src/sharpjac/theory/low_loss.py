r"""Theorem T3: low loss forces a large Jacobian."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ._common import _as_points, _check_nonneg, _check_positive_int

# --------------------------------------------------------------------------------------------
# T3: low loss forces a large Jacobian
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HardestPairs:
    """The ``k`` closest pairs of points with different labels, closest first.

    Attributes:
        i, j: int64 indices ``[k]`` (``i < j``).
        distance: Euclidean distances ``[k]``, ascending.
    """

    i: Tensor
    j: Tensor
    distance: Tensor


def hardest_pairs(x: Tensor, y: Tensor, k: int = 1, *, chunk_size: int = 1024) -> HardestPairs:
    r"""The ``k`` closest pairs :math:`(x_i,x_j)` with :math:`y_i\ne y_j`.

    These are the pairs that make T3's bound :math:`(\|f^*(x_i)-f^*(x_j)\|-2\rho)/d(x_i,x_j)`
    largest when labels are one-hot (all differently labelled pairs have
    :math:`\|f^*(x_i)-f^*(x_j)\|=\sqrt2`).

    Args:
        x: points ``[N, *shape]``.
        y: int class ids ``[N]``, or targets ``[N, m]`` (one-hot or real; two rows count as
            different labels when they differ in any entry).
        k: number of pairs (at most the number of differently labelled pairs).
        chunk_size: rows per distance chunk.

    Returns:
        :class:`HardestPairs`.
    """
    X = _as_points("x", x).to(torch.float64)
    N = X.shape[0]
    if not isinstance(y, Tensor) or y.shape[0] != N or y.ndim not in (1, 2):
        raise ValueError(f"y must be a tensor [N] or [N, m] with N={N}, got {getattr(y, 'shape', type(y).__name__)}")
    k = _check_positive_int("k", k)
    Y = y[:, None] if y.ndim == 1 else y
    best_d = torch.empty(0, dtype=torch.float64)
    best_i = torch.empty(0, dtype=torch.int64)
    best_j = torch.empty(0, dtype=torch.int64)
    cols = torch.arange(N)
    with torch.no_grad():
        for start in range(0, N, chunk_size):
            rows = torch.arange(start, min(start + chunk_size, N))
            D = torch.cdist(X[rows], X)
            diff = (Y[rows][:, None, :] != Y[None, :, :]).any(-1)
            valid = diff & (cols[None, :] > rows[:, None])
            D = torch.where(valid, D, torch.full_like(D, float("inf")))
            kk = min(k, D.numel())
            vals, flat = D.reshape(-1).topk(kk, largest=False)
            keep = torch.isfinite(vals)
            vals, flat = vals[keep], flat[keep]
            best_d = torch.cat([best_d, vals])
            best_i = torch.cat([best_i, rows[flat // N]])
            best_j = torch.cat([best_j, flat % N])
            order = best_d.argsort()[:k]
            best_d, best_i, best_j = best_d[order], best_i[order], best_j[order]
    if best_d.numel() < k:
        raise ValueError(f"k={k} but only {best_d.numel()} pairs have different labels")
    return HardestPairs(i=best_i, j=best_j, distance=best_d)


def residual_radius(outputs: Tensor, targets: Tensor) -> float:
    r""":math:`\rho=\max_i\|f(x_i)-y_i\|` (Euclidean), the radius of T3's hypothesis.

    For the book's squared error :math:`\ell=\frac1k\|z-y\|^2`, :math:`\rho=\sqrt{k\max_i\ell_i}`.

    Args:
        outputs: ``[N, k]``; targets: ``[N, k]`` (one-hot/smoothed or real targets).
    """
    if outputs.shape != targets.shape or outputs.ndim != 2:
        raise ValueError(
            f"outputs and targets must both be [N, k]; got {tuple(outputs.shape)} and {tuple(targets.shape)}"
        )
    return float((outputs - targets.to(outputs.dtype)).norm(dim=1).max())


def t3_lower_bound(f_star_diffs: Any, distances: Any, rho: float, local_variation: float = 0.0) -> Tensor:
    r"""Theorem T3's lower bound on :math:`\max_m\|Jf(x_m)\|`, elementwise over pairs.

    .. math:: \frac{\|f^*(x_i)-f^*(x_j)\|-2\rho}{d_S(x_i,x_j)}-\max_mV_{B(x_m,\delta)}(Jf).

    Valid with any **upper** bound on :math:`d_S` in the denominator (e.g. the length of a path
    in :math:`S`); with the Euclidean distance it bounds :math:`\sup\|Jf\|` on the segment
    instead. The bound is informative only where it is positive, i.e. once
    :math:`2\rho<\|f^*(x_i)-f^*(x_j)\|`.

    Args:
        f_star_diffs: :math:`\|f^*(x_i)-f^*(x_j)\|` per pair ``[P]``.
        distances: :math:`d_S(x_i,x_j)` per pair ``[P]`` (> 0).
        rho: :math:`\max_i\|f(x_i)-y_i\|\ge0`.
        local_variation: :math:`\max_mV_{B(x_m,\delta)}(Jf)\ge0`.

    Returns:
        float64 tensor ``[P]``.
    """
    fd = torch.as_tensor(f_star_diffs, dtype=torch.float64).reshape(-1)
    dist = torch.as_tensor(distances, dtype=torch.float64).reshape(-1)
    if fd.shape != dist.shape:
        raise ValueError(f"f_star_diffs and distances must have the same length; got {fd.numel()} and {dist.numel()}")
    if not bool((dist > 0).all()):
        raise ValueError("distances must all be > 0")
    rho = _check_nonneg("rho", rho)
    local_variation = _check_nonneg("local_variation", local_variation)
    return (fd - 2 * rho) / dist - local_variation


def ce_margin(eta: Any) -> Tensor:
    r"""Logit margin forced by a cross-entropy loss at most :math:`\eta`: :math:`m(\eta)=\log\frac1{e^\eta-1}`.

    If :math:`-\log p_y\le\eta` then :math:`p_y\ge e^{-\eta}`, every other
    :math:`p_c\le1-e^{-\eta}`, and :math:`z_y-z_c=\log(p_y/p_c)\ge m(\eta)`. Positive exactly when
    :math:`\eta<\log2`.

    Args:
        eta: :math:`\eta>0` (number or tensor).

    Returns:
        float64 tensor of the shape of ``eta``.
    """
    e = torch.as_tensor(eta, dtype=torch.float64)
    if not bool((e > 0).all()):
        raise ValueError(f"eta must be > 0, got {eta!r}")
    return -torch.log(torch.expm1(e))


def t3_ce_bound(eta: Any, path_length: Any) -> Tensor:
    r"""Cross-entropy form of T3: :math:`\sup_{\text{path}}\|Jf\|\ge\sqrt2\,m(\eta)/D`.

    For two points with different labels :math:`a\ne b` and per-sample losses at most
    :math:`\eta`, :math:`h=(e_a-e_b)^\top f` changes by at least :math:`2m(\eta)` between them,
    and :math:`|\Delta h|\le\|e_a-e_b\|\sup\|Jf\|D=\sqrt2\sup\|Jf\|D` along a path of length D.

    Args:
        eta: per-sample loss bound :math:`\eta>0`.
        path_length: :math:`D>0`.

    Returns:
        float64 tensor (broadcast of the two); negative (uninformative) when :math:`\eta\ge\log2`.
    """
    D = torch.as_tensor(path_length, dtype=torch.float64)
    if not bool((D > 0).all()):
        raise ValueError(f"path_length must be > 0, got {path_length!r}")
    return math.sqrt(2.0) * ce_margin(eta) / D
