r"""Theorem T3: low loss forces a large Jacobian."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from .. import jacobians as _jac
from ._common import _as_points, _check_nonneg, _check_positive_int
from .intrinsic_dimension import _knn_distances
from .lipschitz import latent_path, polyline_length

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
        raise ValueError(f"outputs and targets must both be [N, k]; got {tuple(outputs.shape)} and {tuple(targets.shape)}")
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


def t3_track(
    model: nn.Module,
    snapshots: Mapping[int, dict],
    x: Tensor,
    labels: Tensor,
    latents: Tensor,
    generator: Callable[[Tensor], Tensor],
    *,
    loss: str = "mse",
    num_pairs: int = 10,
    path_points: int = 100,
    radius: float | None = None,
    lv_samples: int = 16,
    lv_ascent_steps: int = 2,
    seed: int = 0,
) -> pd.DataFrame:
    r"""Theorem T3 along training: the bound on the hardest pairs and the Jacobians above it.

    The ``num_pairs`` closest differently labelled training pairs (:func:`hardest_pairs`) are
    joined by the paths :math:`\gamma_p(t)=g((1-t)z_i+tz_j)` in :math:`S`, of length :math:`D_p`
    (a polyline of ``path_points`` points; an upper bound on :math:`d_S`). For each snapshot
    (parameters loaded into ``model``, which is left holding the last one):

    * ``rho`` (MSE: :math:`\max_i\|f(x_i)-e_{y_i}\|`) or ``eta`` (CE: the largest per-sample loss);
    * ``bound_path``: the largest per-pair bound on :math:`\sup_{\gamma_p}\|Jf\|`,
      :math:`(\sqrt2-2\rho)/D_p` (MSE) or :math:`\sqrt2m(\eta)/D_p` (CE);
    * ``path_sup``: :math:`\sup_{\gamma_p}\|Jf\|` measured on the path points, for the pair with
      the largest bound, and ``path_margin`` = min over pairs of measured sup minus bound (>= 0
      up to the discretisation of the path when the theorem holds);
    * ``sample_max`` :math:`\max_m\|Jf(x_m)\|`, ``local_variation`` :math:`\max_m\hat\phi_m` at
      radius :math:`\delta` (default: the largest nearest-neighbour distance of the sample, a
      proxy for the covering radius), and ``bound_theorem`` = ``bound_path - local_variation``,
      T3's lower bound on ``sample_max``;
    * ``train_loss`` (mean), ``train_acc``.

    Args:
        model: the network; snapshots: ``{step: state_dict}`` (e.g. :attr:`FitResult.snapshots`).
        x: training inputs ``[N, n]``; labels: int64 ``[N]`` (the labels trained on);
        latents: ``[N, d]`` with ``x == generator(latents)``; generator: :math:`g`.
        loss: ``"mse"`` (one-hot targets) or ``"ce"``.

    Returns:
        DataFrame, one row per snapshot, sorted by step.
    """
    from .. import losses as _losses

    if loss not in ("mse", "ce"):
        raise ValueError(f"loss={loss!r}; accepted: 'mse', 'ce'")
    pairs = hardest_pairs(x, labels, num_pairs)
    with torch.no_grad():
        paths = latent_path(generator, latents[pairs.i], latents[pairs.j], path_points).to(x.dtype)
        D = polyline_length(paths).to(torch.float64)
    if radius is None:
        nn_dist = _knn_distances(x, 1, 1024)[:, 0]
        radius = float(nn_dist.max())
    k_out = None
    rows = []
    per_loss = _losses.get_loss(loss, reduction="none")
    for step in sorted(snapshots):
        model.load_state_dict(snapshots[step])
        with torch.no_grad():
            out = model(x)
            k_out = out.shape[1]
            per = per_loss(out, labels)
            if loss == "mse":
                onehot = torch.nn.functional.one_hot(labels, k_out).to(out.dtype)
                rho = residual_radius(out, onehot)
                bounds = t3_lower_bound(torch.full_like(D, math.sqrt(2.0)), D, rho, 0.0)
                level = rho
            else:
                eta = float(per.max())
                bounds = t3_ce_bound(max(eta, 1e-300), D)
                level = eta
            jp = _jac.jacobian_norms(model, paths.reshape(-1, paths.shape[-1])).reshape(paths.shape[:2])
            sup = jp.max(dim=1).values.to(torch.float64)
            js = _jac.jacobian_norms(model, x)
        phi = _jac.local_variation(model, x, radius, num_samples=lv_samples,
                                   ascent_steps=lv_ascent_steps, seed=seed)
        best = int(bounds.argmax())
        rows.append({
            "step": int(step), "train_loss": float(per.mean()),
            "train_acc": float((out.argmax(1) == labels).double().mean()),
            ("rho" if loss == "mse" else "eta"): level,
            "bound_path": float(bounds[best]), "path_sup": float(sup[best]),
            "path_margin": float((sup - bounds).min()), "path_length": float(D[best]),
            "sample_max": float(js.max()), "sample_mean": float(js.mean()),
            "local_variation": float(phi.max()),
            "bound_theorem": float(bounds[best]) - float(phi.max()),
        })
    return pd.DataFrame(rows)
