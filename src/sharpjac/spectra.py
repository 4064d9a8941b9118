r"""The top of the Hessian spectrum and its Gauss-Newton part.

The Hessian of the training loss splits as :math:`H=G+R` (the book's chapter *The structure of the
Hessian*): the Gauss-Newton matrix :math:`G=\frac1N\sum_i\Phi_i^\top C_i\Phi_i` (PSD for convex losses)
and the residual term :math:`R=\frac1N\sum_i\sum_c\partial_{z_c}\ell\,\nabla^2_\theta f_c(x_i)`.
This module measures, matrix-free (:mod:`sharpjac.curvature`):

* :func:`top_spectra` -- the top-``k`` eigenvalues of :math:`H` and of :math:`G` (Lanczos);
* :class:`ResidualOperator` and :func:`residual_extremes` -- :math:`R=H-G` as an operator and
  its largest and smallest eigenvalues, which bound how far the spectra of :math:`H` and
  :math:`G` can differ (Weyl: :math:`\lambda_j(G)+\lambda_{\min}(R)\le\lambda_j(H)\le\lambda_j(G)+\lambda_{\max}(R)`);
* :func:`outlier_gap` -- where the top of a spectrum separates from the rest (the largest ratio
  of consecutive eigenvalues), to count the outliers;
* :func:`class_mean_overlap` -- how much of the top eigenspace of :math:`G` lies in the span of
  the per-class mean gradients, the classical explanation of "one outlier per class"
  (Papyan 2018-2020).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from . import curvature as _curv
from . import validation as V

__all__ = [
    "TopSpectra",
    "top_spectra",
    "ResidualOperator",
    "residual_extremes",
    "outlier_gap",
    "class_mean_overlap",
]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TopSpectra:
    r"""Top eigenvalues of the Hessian and of the Gauss-Newton matrix.

    Attributes:
        hessian: [k] numpy array, descending.
        gauss_newton: [k] numpy array, descending.
        hessian_residuals, gauss_newton_residuals: [k] Lanczos residual norms
            :math:`\|Au-\theta u\|` of the Ritz pairs.
        hessian_vectors, gauss_newton_vectors: [P, k] eigenvector estimates (torch).
        num_matvecs: products used (both operators).
        converged: both Lanczos runs met their tolerance.
    """

    hessian: np.ndarray
    gauss_newton: np.ndarray
    hessian_residuals: np.ndarray
    gauss_newton_residuals: np.ndarray
    hessian_vectors: torch.Tensor
    gauss_newton_vectors: torch.Tensor
    num_matvecs: int
    converged: bool

    @property
    def relative_difference(self) -> np.ndarray:
        r""":math:`|\lambda_j(H)-\lambda_j(G)|/|\lambda_j(H)|`, [k]."""
        return np.abs(self.hessian - self.gauss_newton) / np.abs(self.hessian)


def top_spectra(
    model: nn.Module,
    loss_fn: LossFn,
    data: Any,
    k: int = 20,
    *,
    batch_size: int | None = None,
    tol: float = 1e-4,
    max_iter: int = 200,
    seed: int = 0,
) -> TopSpectra:
    r"""Top-``k`` algebraic eigenvalues of :math:`H` and of :math:`G` by Lanczos.

    Args:
        model, loss_fn, data, batch_size: as in :class:`sharpjac.curvature.HessianOperator`.
        k: number of eigenvalues (>= 1).
        tol: relative residual tolerance of :func:`sharpjac.curvature.lanczos`.
        max_iter: maximum Krylov dimension (>= k).
        seed: seed of the start vectors.

    Returns:
        :class:`TopSpectra`.
    """
    k = V.positive_int("k", k)
    H = _curv.HessianOperator(model, loss_fn, data, batch_size=batch_size)
    G = _curv.GaussNewtonOperator(model, loss_fn, data, batch_size=batch_size)
    rh = _curv.lanczos(H, k, max_iter=max_iter, tol=tol, seed=seed)
    rg = _curv.lanczos(G, k, max_iter=max_iter, tol=tol, seed=seed)
    np_ = lambda t: t.detach().double().cpu().numpy()  # noqa: E731
    return TopSpectra(
        np_(rh.eigenvalues),
        np_(rg.eigenvalues),
        np_(rh.residuals),
        np_(rg.residuals),
        rh.eigenvectors,
        rg.eigenvectors,
        rh.num_matvecs + rg.num_matvecs,
        bool(rh.converged and rg.converged),
    )


class _LinearisedLoss:
    r"""The loss with its output gradient frozen: :math:`s(z, y)=\langle\operatorname{sg}(\nabla_z
    \mathcal L(z, y)), z\rangle` (``sg``: no gradient flows through it).

    Composed with the network, :math:`s(\theta)=\sum_{i,c}\operatorname{sg}(\partial_{z_{ic}}\mathcal L)\,
    f_c(\theta, x_i)`, whose gradient is :math:`\Phi^\top\nabla_z\mathcal L` (that of the loss) and
    whose Hessian is :math:`\sum_{i,c}\partial_{z_{ic}}\mathcal L\,\nabla^2_\theta f_c(x_i)=R`: the
    second-order term of the loss through :math:`z` (the Gauss-Newton part) is gone. With a batch mean
    loss the batch weights of :class:`sharpjac.curvature.HessianOperator` apply as they do to
    :math:`H`.
    """

    def __init__(self, loss_fn: LossFn):
        self.loss_fn = loss_fn

    def __call__(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        zd = z.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = self.loss_fn(zd, y)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                return loss  # HessianOperator's own check reports it
            (gz,) = torch.autograd.grad(loss.reshape(()), zd)
        return (gz.detach() * z).sum()


class ResidualOperator:
    r"""The residual term :math:`R=H-G` of the Hessian as a matrix-free operator.

    ``R @ v`` is computed directly, as the Hessian-vector product (through a kept graph, see
    :class:`sharpjac.curvature.HessianOperator`) of the loss with its output gradient frozen,
    :math:`s(\theta)=\sum_{i,c}\operatorname{sg}(\partial_{z_{ic}}\mathcal L)\,f_c(\theta,x_i)`, whose
    Hessian is :math:`\sum_{i,c}\partial_{z_{ic}}\mathcal L\,\nabla^2_\theta f_c(x_i)=H-G`: one
    product costs about one Hessian product, not a Hessian and a Gauss-Newton product, and has no
    cancellation between them. ``shape``, ``dtype``, ``device`` and ``num_matvecs`` (products of R)
    as for the curvature operators. Negate it with ``ResidualOperator(..., sign=-1)`` to find
    :math:`\lambda_{\min}(R)` with a top-eigenvalue solver.
    """

    def __init__(
        self, model: nn.Module, loss_fn: LossFn, data: Any, *, batch_size: int | None = None, sign: float = 1.0
    ):
        V.one_of("sign", sign, (1, -1))
        self.op = _curv.HessianOperator(model, _LinearisedLoss(loss_fn), data, batch_size=batch_size)
        self.sign = float(sign)
        self.shape = self.op.shape
        self.dtype = self.op.dtype
        self.device = self.op.device
        self.num_matvecs = 0

    def __matmul__(self, v: torch.Tensor) -> torch.Tensor:
        out = self.op @ v
        if self.sign != 1.0:
            out = out.neg_()
        self.num_matvecs += 1 if v.ndim == 1 else v.shape[1]
        return out

    def to_dense(self) -> torch.Tensor:
        """Dense [P, P] matrix (small models only)."""
        return self.sign * self.op.to_dense()


def residual_extremes(
    model: nn.Module,
    loss_fn: LossFn,
    data: Any,
    *,
    batch_size: int | None = None,
    tol: float = 1e-3,
    max_iter: int = 100,
    seed: int = 0,
) -> tuple[float, float]:
    r""":math:`(\lambda_{\max}(R),\lambda_{\min}(R))` of the residual term, by Lanczos on :math:`\pm R`.

    By Weyl's inequality every eigenvalue of :math:`H=G+R` lies within
    :math:`[\lambda_{\min}(R),\lambda_{\max}(R)]` of the corresponding eigenvalue of :math:`G`.
    """
    hi = _curv.lanczos(
        ResidualOperator(model, loss_fn, data, batch_size=batch_size), 1, max_iter=max_iter, tol=tol, seed=seed
    )
    lo = _curv.lanczos(
        ResidualOperator(model, loss_fn, data, batch_size=batch_size, sign=-1), 1, max_iter=max_iter, tol=tol, seed=seed
    )
    return float(hi.eigenvalues[0]), -float(lo.eigenvalues[0])


def outlier_gap(eigenvalues, *, skip: int = 0) -> tuple[int, float]:
    r"""Where a descending spectrum's top separates from the rest.

    Returns :math:`(j^*, r^*)` with :math:`j^*=\arg\max_{j>\text{skip}}\lambda_j/\lambda_{j+1}`
    (1-based: the gap lies after the :math:`j^*`-th eigenvalue) and :math:`r^*` that ratio, over
    the leading run of positive eigenvalues.

    Args:
        eigenvalues: 1-d array, descending.
        skip: ignore gaps after the first ``skip`` eigenvalues (e.g. to look past a single
            dominant eigenvalue).
    """
    lam = np.asarray(eigenvalues, dtype=float).reshape(-1)
    if lam.size < 2 or np.any(np.diff(lam) > 1e-12 * max(1.0, abs(lam[0]))):
        raise ValueError(f"eigenvalues must be a descending 1-d array with >= 2 entries, got {lam!r}")
    pos = int(np.argmax(lam <= 0)) if np.any(lam <= 0) else lam.size
    if pos < 2:
        raise ValueError(f"need at least two leading positive eigenvalues, got {lam[:3]!r}")
    ratios = lam[: pos - 1] / lam[1:pos]
    skip = V.integer("skip", skip, minimum=0, maximum=ratios.size - 1)
    j = int(np.argmax(ratios[skip:])) + skip
    return j + 1, float(ratios[j])


def class_mean_overlap(
    model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor, vectors: torch.Tensor, *, num_classes: int
) -> np.ndarray:
    r"""Fraction of each eigenvector that lies in the span of the per-class mean gradients.

    For each class :math:`c`, :math:`g_c=\nabla_\theta\frac1{N_c}\sum_{i:y_i=c}\ell(f(x_i),y_i)`.
    With :math:`Q` an orthonormal basis of :math:`\mathrm{span}\{g_c\}`, returns
    :math:`\|Q^\top u_j\|^2` for each unit column :math:`u_j` of ``vectors`` (1 means inside
    the span). A top eigenspace made of "one direction per class" overlaps strongly.

    Args:
        model, loss_fn: as in :func:`top_spectra`.
        x, y: the data (all of it, or the subset the spectra were computed on).
        vectors: [P, m] eigenvector estimates (e.g. ``TopSpectra.gauss_newton_vectors``).
        num_classes: number of classes C.

    Returns:
        [m] numpy array in [0, 1].
    """
    params = [p for p in model.parameters() if p.requires_grad]
    P = sum(p.numel() for p in params)
    if vectors.ndim != 2 or vectors.shape[0] != P:
        raise ValueError(f"vectors must have shape [P, m] with P={P}, got {tuple(vectors.shape)}")
    grads = []
    for c in range(num_classes):
        mask = y == c
        if not bool(mask.any()):
            continue
        loss = loss_fn(model(x[mask]), y[mask])
        g = torch.autograd.grad(loss, params)
        grads.append(torch.cat([t.reshape(-1) for t in g]).detach())
    Gm = torch.stack(grads, dim=1).to(vectors.dtype)
    Q, _ = torch.linalg.qr(Gm)
    U = vectors / vectors.norm(dim=0, keepdim=True)
    return ((Q.T @ U) ** 2).sum(0).double().cpu().numpy()
