r"""Intrinsic dimension estimators (TwoNN, Levina-Bickel)."""

from __future__ import annotations

import torch
from torch import Tensor

from ._common import _as_points, _check_positive_int

# --------------------------------------------------------------------------------------------
# intrinsic dimension
# --------------------------------------------------------------------------------------------


def knn_distances(x: Tensor, k: int, chunk_size: int) -> Tensor:
    """Distances to the k nearest other points, ascending: [N, k] (float64)."""
    X = _as_points("x", x).to(torch.float64)
    N = X.shape[0]
    if k >= N:
        raise ValueError(f"need more than k={k} points, got N={N}")
    out = []
    with torch.no_grad():
        for start in range(0, N, chunk_size):
            D = torch.cdist(X[start : start + chunk_size], X)
            idx = torch.arange(start, min(start + chunk_size, N))
            D[torch.arange(len(idx)), idx] = float("inf")  # exclude the point itself
            out.append(D.topk(k, largest=False).values)
    return torch.cat(out)


def twonn_dimension(x: Tensor, *, chunk_size: int = 1024) -> float:
    r"""TwoNN intrinsic dimension (Facco et al. 2017), maximum-likelihood form.

    With :math:`r_1(x_i)\le r_2(x_i)` the distances to the two nearest neighbours and
    :math:`\mu_i=r_2/r_1`, locally uniform data of dimension :math:`d` give
    :math:`\mu_i\sim\mathrm{Pareto}(d)` (:math:`P(\mu>t)=t^{-d}`), whose maximum-likelihood
    estimate is :math:`\hat d=N/\sum_i\log\mu_i`. Points with :math:`r_1=0` (duplicates) are
    dropped.

    Args:
        x: points ``[N, *shape]``, N >= 3.

    Returns:
        float.
    """
    r = knn_distances(x, 2, chunk_size)
    keep = r[:, 0] > 0
    if int(keep.sum()) < 2:
        raise ValueError("need at least two points with a non-zero nearest-neighbour distance")
    logmu = torch.log(r[keep, 1] / r[keep, 0])
    return float(keep.sum() / logmu.sum())


def levina_bickel_dimension(x: Tensor, k1: int = 10, k2: int = 20, *, chunk_size: int = 1024) -> float:
    r"""Levina-Bickel maximum-likelihood intrinsic dimension, averaged over :math:`k=k_1..k_2`.

    With :math:`T_j(x)` the distance to the j-th nearest neighbour,

    .. math:: \hat m_k(x)=\Big[\frac1{k-1}\sum_{j=1}^{k-1}\log\frac{T_k(x)}{T_j(x)}\Big]^{-1},\quad
              \bar m_k=\frac1N\sum_i\hat m_k(x_i),\quad \hat d=\frac1{k_2-k_1+1}\sum_{k=k_1}^{k_2}\bar m_k

    (Levina & Bickel 2004, their Eqs. 8-10). Points with :math:`T_1=0` are dropped.

    Args:
        x: points ``[N, *shape]``.
        k1, k2: neighbourhood sizes, :math:`2\le k_1\le k_2<N`.

    Returns:
        float.
    """
    k1 = _check_positive_int("k1", k1, 2)
    k2 = _check_positive_int("k2", k2, k1)
    T = knn_distances(x, k2, chunk_size)
    T = T[T[:, 0] > 0]
    if T.shape[0] < 1:
        raise ValueError("all points are duplicates of others")
    logT = torch.log(T)
    est = []
    for k in range(k1, k2 + 1):
        s = (logT[:, k - 1 : k] - logT[:, : k - 1]).sum(1) / (k - 1)
        est.append((1.0 / s).mean())
    return float(torch.stack(est).mean())
