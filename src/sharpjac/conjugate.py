r"""The conjugate matrix :math:`K` of the Gauss-Newton matrix, formed explicitly (small models).

The Gauss-Newton matrix of the training loss (the book's chapter *The conjugate matrix*) is

.. math::
    G=\frac1N\sum_{i=1}^N\Phi_i^\top C_i\Phi_i = A^\top A,\qquad
    A=\begin{bmatrix}A_1\\\vdots\\A_N\end{bmatrix},\quad A_i=N^{-1/2}C_i^{1/2}\Phi_i\in\mathbb R^{k\times P},

with :math:`\Phi_i=\partial f/\partial\theta\,(x_i)` and :math:`C_i=\nabla_z^2\ell`. Its conjugate
:math:`K=AA^\top\in\mathbb R^{Nk\times Nk}` has the same non-zero eigenvalues, and splits over the
layers, :math:`K=\sum_lK^{(l)}`, with blocks built from layer Jacobians and layer parameter
derivatives. This module holds :math:`K` and what the conjugate-matrix chapter computes with it:

* :func:`conjugate_matrix_by_layer` / :func:`conjugate_matrix` -- the parts :math:`K^{(l)}` and
  their sum, from the layer quantities of :mod:`sharpjac.jacobians`;
* :func:`gauss_newton_matrix` -- :math:`G` as a dense ``[P, P]`` matrix from per-sample parameter
  Jacobians (the other side of the identity);
* :func:`compare_nonzero_spectra` -- the two spectra side by side;
* :func:`layer_shares` -- how much of each top eigenvalue (and of the trace) each layer carries;
* :func:`first_layer_kernel` -- the closed form of :math:`K^{(1)}` for a dense first layer,
  :math:`K^{(1)}_{ij}=\frac1N(\langle x_i,x_j\rangle+1)\,B_iB_j^\top` with
  :math:`B_i=C_i^{1/2}Jf_{L:2}(x_i)D_1(x_i)`: the weights :math:`W_1` enter only through the
  activation pattern :math:`D_1` and the later layers, never as a factor;
* :func:`input_rescaling` -- the change of input coordinates :math:`x\mapsto cx`,
  :math:`W_1\mapsto W_1/c`, which keeps every feature and output but multiplies the input-output
  Jacobian by :math:`1/c`, while :math:`K` changes only through the Gram factor
  :math:`c^2\langle x_i,x_j\rangle+1` of its first-layer term.

Everything is dense: for models with a few thousand parameters and :math:`Nk` up to a few
hundred (float64 recommended).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.func import jacrev, vmap

from . import jacobians as _jac

__all__ = [
    "conjugate_matrix",
    "conjugate_matrix_by_layer",
    "gauss_newton_matrix",
    "SpectrumComparison",
    "compare_nonzero_spectra",
    "LayerShares",
    "layer_shares",
    "first_layer_kernel",
    "input_rescaling",
    "check_curvature",
]


def check_curvature(curvature: Tensor, N: int, k: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Validate the output-space curvature and return it as ``[N, k, k]`` (a ``[k, k]`` one is shared).

    Args:
        curvature: :math:`C_i`, a tensor ``[N, k, k]`` or ``[k, k]`` (one for every sample).
        N, k: samples and outputs.
        dtype, device: of the returned tensor.

    Returns:
        ``[N, k, k]`` (an expanded view when ``curvature`` is ``[k, k]``).

    Raises:
        TypeError: not a tensor. ValueError: another shape.
    """
    if not isinstance(curvature, Tensor):
        raise TypeError(
            f"curvature must be a torch.Tensor of shape [N, k, k] = [{N}, {k}, {k}], got {type(curvature).__name__}"
        )
    C = curvature.to(dtype=dtype, device=device)
    if C.shape == (k, k):
        C = C.expand(N, k, k)
    if C.shape != (N, k, k):
        raise ValueError(
            f"curvature must have shape [N, k, k] = [{N}, {k}, {k}] (or [k, k]), got {tuple(curvature.shape)}"
        )
    return C


def _psd_sqrt(curvature: Tensor, N: int, k: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    r"""Symmetric square roots :math:`C_i^{1/2}` via ``eigh`` ([N, k, k]).

    Symmetry and positive semi-definiteness are checked to a relative tolerance
    :math:`\sqrt{\varepsilon}` of the dtype times :math:`\max|C_i|` (a curvature computed in floating
    point is symmetric and PSD only up to rounding); eigenvalues in :math:`[-\text{tol}, 0)` are
    clamped to zero.
    """
    C = check_curvature(curvature, N, k, dtype, device)
    scale = C.abs().amax(dim=(-2, -1)).clamp_min(torch.finfo(dtype).tiny)
    tol = math.sqrt(torch.finfo(dtype).eps)
    if ((C - C.mT).abs().amax(dim=(-2, -1)) > tol * scale).any():
        raise ValueError("curvature must be symmetric (each C_i = C_i^T)")
    evals, evecs = torch.linalg.eigh((C + C.mT) / 2)
    if (evals[:, 0] < -tol * scale).any():
        raise ValueError(f"curvature must be positive semi-definite; smallest eigenvalue {float(evals.min()):.3g}")
    return (evecs * evals.clamp_min(0).sqrt()[:, None, :]) @ evecs.mT


def conjugate_matrix_by_layer(model: nn.Module, x: Tensor, curvature: Tensor) -> list[Tensor]:
    r"""Per-layer parts :math:`K^{(l)}` of the conjugate matrix, :math:`K=\sum_lK^{(l)}`.

    .. math::
        K^{(l)}_{ij}=\tfrac1N\,C_i^{1/2}\,Jf_{L:l+1}(x_i)\,Df_l(x_i)\,Df_l(x_j)^\top\,
        Jf_{L:l+1}(x_j)^\top\,C_j^{1/2}\in\mathbb R^{k\times k},

    built explicitly from the layer quantities (:func:`~sharpjac.jacobians.layer_jacobians`,
    :func:`~sharpjac.jacobians.partial_products`, :func:`~sharpjac.jacobians.layer_parameter_jacobians`,
    evaluated for all samples at once) with :math:`C_i^{1/2}` the symmetric square root
    (``eigh``). It is evaluated as :math:`B^{(l)}B^{(l)\top}/N` with rows
    :math:`B^{(l)}_i = C_i^{1/2}Jf_{L:l+1}(x_i)Df_l(x_i)` ([k, p_l]), which is the same product,
    associated to avoid the [n_l, n_l] kernel blocks.
    Index (i, c) of K is row ``i * k + c`` (sample-major). :math:`K=AA^\top` with
    :math:`A_i=N^{-1/2}C_i^{1/2}\Phi_i`, so K and :math:`G=A^\top A` share their non-zero
    eigenvalues. Small models only (dense :math:`Nk\times Nk` output, per-sample :math:`Df_l`).

    Args:
        model: sequential model (see :func:`sharpjac.jacobians.split_layers`); all its trainable
            parameters must live in the blocks.
        x: inputs [N, *input_shape].
        curvature: output-space curvature :math:`C_i=\nabla_z^2\ell`, PSD, shape [N, k, k]
            (or [k, k], shared), e.g. :math:`\frac2kI` for MSE or
            :math:`\mathrm{diag}(p)-pp^\top` for cross-entropy.

    Returns:
        list of L tensors [N k, N k].
    """
    _jac.check_model(model)
    _jac.check_batch(model, x)
    k = _jac.probe(model, x)
    N = x.shape[0]
    blocks = _jac.split_layers(model)
    n_block = sum(p.numel() for b in blocks for _, p in _jac.trainable(b))
    n_model = sum(p.numel() for _, p in _jac.trainable(model))
    if n_block != n_model:
        raise ValueError(
            f"model has {n_model} trainable parameters but its layers hold {n_block}; "
            "all trainable parameters must be in the sequential blocks"
        )
    S = _psd_sqrt(curvature, N, k, x.dtype, x.device)
    with torch.no_grad():
        feats = _jac.layer_features(model, x)
        Js = _jac.block_jacobians(blocks, feats)  # [N, n_l, n_{l-1}]
        Ds = _jac.block_param_jacobians(blocks, feats)  # [N, n_l, p_l]
        L = len(blocks)
        # partial products Jf_{L:l+1} for all samples, l = L..1
        P = [None] * (L + 1)
        P[L] = torch.eye(k, dtype=x.dtype, device=x.device).expand(N, k, k)
        for l in range(L, 0, -1):
            P[l - 1] = P[l] @ Js[l - 1]
        parts = []
        for l in range(1, L + 1):
            B = (S @ P[l] @ Ds[l - 1]).reshape(N * k, -1)  # rows C_i^{1/2} Jf_{L:l+1} Df_l
            parts.append(B @ B.mT / N)
    return parts


def conjugate_matrix(model: nn.Module, x: Tensor, curvature: Tensor) -> Tensor:
    r"""The conjugate matrix :math:`K=\sum_lK^{(l)}` ([N k, N k]), see
    :func:`conjugate_matrix_by_layer`. Its non-zero eigenvalues are those of the Gauss-Newton
    matrix :math:`G=\frac1N\sum_i\Phi_i^\top C_i\Phi_i`."""
    return torch.stack(conjugate_matrix_by_layer(model, x, curvature)).sum(0)


def gauss_newton_matrix(model: nn.Module, x: Tensor, curvature: Tensor) -> Tensor:
    r"""Dense Gauss-Newton matrix :math:`G=\frac1N\sum_i\Phi_i^\top C_i\Phi_i` ([P, P]).

    :math:`\Phi_i` from :func:`sharpjac.jacobians.per_sample_parameter_jacobians` (parameters in
    ``model.parameters()`` order); no square root of :math:`C_i` is taken.

    Args:
        model: any module with trainable parameters (small: the result is P x P).
        x: inputs [N, *input_shape], the model's dtype.
        curvature: :math:`C_i`, [N, k, k] or [k, k].

    Returns:
        Tensor [P, P], symmetric.
    """
    Phi = _jac.per_sample_parameter_jacobians(model, x)  # [N, k, P]
    N, k, _ = Phi.shape
    C = check_curvature(curvature, N, k, Phi.dtype, Phi.device)
    G = Phi.reshape(N * k, -1).T @ (C @ Phi).reshape(N * k, -1) / N
    return (G + G.T) / 2


@dataclass(frozen=True)
class SpectrumComparison:
    r"""The top :math:`m=\min(P,Nk)` eigenvalues of :math:`G` and of :math:`K`, descending.

    Attributes:
        eigenvalues_g: [m] numpy array.
        eigenvalues_k: [m] numpy array.
        max_abs_diff: :math:`\max_j|\lambda_j(G)-\lambda_j(K)|`.
        max_rel_diff: ``max_abs_diff / lambda_max``.
        rank: number of eigenvalues of K above ``rank_tol * lambda_max`` (the common rank).
        zero_eigenvalues_g: number of eigenvalues of G at or below that threshold (P - rank).
    """

    eigenvalues_g: np.ndarray
    eigenvalues_k: np.ndarray
    max_abs_diff: float
    max_rel_diff: float
    rank: int
    zero_eigenvalues_g: int


def compare_nonzero_spectra(G: Tensor, K: Tensor, *, rank_tol: float = 1e-10) -> SpectrumComparison:
    r"""Compare the spectra of :math:`G=A^\top A` ([P, P]) and :math:`K=AA^\top` ([Nk, Nk]).

    Both share their non-zero eigenvalues; the larger matrix has extra zeros. The top
    :math:`m=\min(P, Nk)` eigenvalues of each (``eigvalsh``, descending) are compared entrywise.

    Raises:
        ValueError: non-square inputs.
    """
    for name, M in (("G", G), ("K", K)):
        if not isinstance(M, Tensor) or M.ndim != 2 or M.shape[0] != M.shape[1]:
            raise ValueError(f"{name} must be a square 2-d tensor, got shape {tuple(getattr(M, 'shape', ()))}")
    eg_all = torch.linalg.eigvalsh((G + G.T) / 2).flip(0).double().cpu().numpy()
    eg = eg_all
    ek = torch.linalg.eigvalsh((K + K.T) / 2).flip(0).double().cpu().numpy()
    m = min(len(eg), len(ek))
    eg, ek = eg[:m], ek[:m]
    diff = float(np.abs(eg - ek).max())
    top = float(max(eg[0], ek[0]))
    thr = rank_tol * top
    rank = int((ek > thr).sum())
    zeros_g = int(G.shape[0] - (eg_all > thr).sum())
    return SpectrumComparison(eg, ek, diff, diff / top if top > 0 else float("nan"), rank, zeros_g)


@dataclass(frozen=True)
class LayerShares:
    r"""Per-layer contributions to the top eigenvalues and to the trace of :math:`K=\sum_lK^{(l)}`.

    For a unit eigenvector :math:`u_j` of :math:`K` with eigenvalue :math:`\lambda_j`,
    :math:`\lambda_j=\sum_l u_j^\top K^{(l)}u_j`; ``shares[j, l]`` is
    :math:`u_j^\top K^{(l)}u_j/\lambda_j\ge0` (rows sum to one). It is also the fraction of the
    squared norm of the corresponding eigenvector :math:`v_j=A^\top u_j/\sqrt{\lambda_j}` of
    :math:`G` that lies in layer :math:`l`'s parameters.

    Attributes:
        eigenvalues: [m] top eigenvalues of K, descending.
        shares: [m, L].
        trace_shares: [L], :math:`\operatorname{tr}K^{(l)}/\operatorname{tr}K`.
        traces: [L], :math:`\operatorname{tr}K^{(l)}`.
    """

    eigenvalues: np.ndarray
    shares: np.ndarray
    trace_shares: np.ndarray
    traces: np.ndarray


def layer_shares(parts: Sequence[Tensor], *, top: int = 10) -> LayerShares:
    r"""Layer shares of the ``top`` eigenvalues and of the trace of :math:`K=\sum_l` ``parts[l]``.

    Args:
        parts: the :math:`K^{(l)}`, each [M, M] symmetric PSD
            (:func:`conjugate_matrix_by_layer`).
        top: number of top eigenpairs (1 <= top <= M).
    """
    if not parts:
        raise ValueError("parts must be a non-empty sequence of [M, M] tensors")
    M = parts[0].shape[0]
    if any(p.shape != (M, M) for p in parts):
        raise ValueError(f"parts must all have shape [M, M] = [{M}, {M}], got {[tuple(p.shape) for p in parts]}")
    if not isinstance(top, int) or not 1 <= top <= M:
        raise ValueError(f"top must be an int in [1, {M}], got {top!r}")
    P = torch.stack([p.double() for p in parts])
    K = P.sum(0)
    evals, evecs = torch.linalg.eigh((K + K.T) / 2)
    evals, evecs = evals.flip(0)[:top], evecs.flip(1)[:, :top]
    q = torch.einsum("mj,lmn,nj->jl", evecs, P, evecs)  # [top, L]
    shares = q / evals[:, None]
    traces = P.diagonal(dim1=1, dim2=2).sum(1)
    return LayerShares(
        evals.cpu().numpy(), shares.cpu().numpy(), (traces / traces.sum()).cpu().numpy(), traces.cpu().numpy()
    )


def _first_dense_split(model: nn.Module) -> tuple[nn.Module, nn.Linear, nn.Module, nn.Module]:
    """(pre, linear, act, rest): block 1 = pre -> linear -> act, rest = blocks 2..L."""
    blocks = _jac.split_layers(model)
    mods = list(blocks[0])
    lin = [i for i, m in enumerate(mods) if isinstance(m, nn.Linear)]
    if not lin or any(list(m.parameters()) for i, m in enumerate(mods) if i != lin[0]):
        raise ValueError(
            f"first_layer_kernel needs a first block [parameter-free..., nn.Linear, parameter-free...], got {blocks[0]}"
        )
    i = lin[0]
    pre = nn.Sequential(*mods[:i])
    act = nn.Sequential(*mods[i + 1 :])
    rest = nn.Sequential(*[m for b in blocks[1:] for m in b])
    return pre, mods[i], act, rest


def first_layer_kernel(model: nn.Module, x: Tensor, curvature: Tensor) -> Tensor:
    r"""Closed form of the first-layer term of the conjugate matrix, for a dense first layer.

    With :math:`h_i=W_1x_i+b_1` and :math:`f=g\circ\sigma` after the first affine map,
    :math:`B_i=C_i^{1/2}\,\partial(g\circ\sigma)/\partial h\,(h_i)=C_i^{1/2}Jf_{L:2}(x_i)D_1(x_i)`
    ([k, n_1]) and

    .. math:: K^{(1)}_{ij}=\frac1N\big(\langle x_i,x_j\rangle+[b_1\ \text{exists}]\big)\,B_iB_j^\top .

    The input enters only through the Gram matrix :math:`\langle x_i,x_j\rangle` (flattened
    inputs) and :math:`W_1` only through :math:`D_1` and the later features.

    Args:
        model: sequential model whose first block is ``[Flatten?, Linear, activation...]``.
        x: inputs [N, *input_shape].
        curvature: [N, k, k] or [k, k] PSD.

    Returns:
        Tensor [N k, N k] (row ``i * k + c``).
    """
    pre, lin, act, rest = _first_dense_split(model)
    N = x.shape[0]
    with torch.no_grad():
        x0 = pre(x).reshape(N, -1)
        h = lin(x0)
        k = int(rest(act(h[:1])).reshape(1, -1).shape[1])

        def g(hi: Tensor) -> Tensor:
            return rest(act(hi.unsqueeze(0))).reshape(-1)

        Jh = vmap(jacrev(g))(h)  # [N, k, n1]
    S = _psd_sqrt(curvature, N, k, x.dtype, x.device)  # symmetric square roots C_i^(1/2)
    B = (S @ Jh).reshape(N * k, -1)
    gram = x0 @ x0.T + (1.0 if lin.bias is not None else 0.0)
    return torch.kron(gram, torch.ones(k, k, dtype=x.dtype, device=x.device)) * (B @ B.T) / N


def _rescaled_first_layer(model: nn.Module, c: float) -> nn.Module:
    """A deep copy with the first Linear's weight divided by c (bias unchanged)."""
    m = copy.deepcopy(model)
    _, lin, _, _ = _first_dense_split(m)
    with torch.no_grad():
        lin.weight.div_(c)  # on the copy only
    return m


def input_rescaling(model: nn.Module, x: Tensor, curvature: Tensor, scales: Sequence[float]) -> pd.DataFrame:
    r"""The first-layer blind spot of :math:`K`, made visible by a change of input coordinates.

    For every :math:`c` in ``scales`` the model :math:`f_c` has first-layer weights :math:`W_1/c`
    (all else equal) and is evaluated on :math:`cx_i`: its pre-activations
    :math:`(W_1/c)(cx_i)+b_1` and hence every feature and output equal the original ones, so the
    loss, :math:`C_i` and all later-layer quantities are unchanged, while
    :math:`Jf_c(cx_i)=Jf(x_i)/c`. In :math:`K` only the first-layer Gram factor changes, to
    :math:`c^2\langle x_i,x_j\rangle+1`.

    Args:
        model: sequential model with a dense first layer (see :func:`first_layer_kernel`).
        x: inputs [N, *input_shape].
        curvature: :math:`C_i` of the original model's outputs ([N, k, k] or [k, k]).
        scales: positive numbers c.

    Returns:
        DataFrame, one row per c: ``scale``, ``output_change`` (max abs difference of the outputs
        from the original ones), ``jac_spectral_max``, ``jac_spectral_mean``, ``lambda_max``
        (:math:`\lambda_{\max}(K)=\lambda_{\max}(G)`), ``lambda_max_layer1``
        (:math:`\lambda_{\max}(K^{(1)})`), ``lambda_max_later`` (:math:`\lambda_{\max}` of
        :math:`\sum_{l\ge2}K^{(l)}`), ``trace_share_layer1``.
    """
    scales = [float(c) for c in scales]
    if not scales or any(not c > 0 for c in scales):
        raise ValueError(f"scales must be a non-empty sequence of positive numbers, got {scales!r}")
    with torch.no_grad():
        out0 = model(x)
    rows = []
    for c in scales:
        mc = _rescaled_first_layer(model, c)
        xc = x * c
        with torch.no_grad():
            change = float((mc(xc) - out0).abs().max())
        parts = conjugate_matrix_by_layer(mc, xc, curvature)
        K = torch.stack(parts).sum(0)
        later = torch.stack(parts[1:]).sum(0) if len(parts) > 1 else torch.zeros_like(K)
        st = _jac.jacobian_stats(mc, xc)
        tr = [float(p.trace()) for p in parts]
        rows.append(
            dict(
                scale=c,
                output_change=change,
                jac_spectral_max=st.spectral_max,
                jac_spectral_mean=st.spectral_mean,
                lambda_max=float(torch.linalg.eigvalsh(K)[-1]),
                lambda_max_layer1=float(torch.linalg.eigvalsh(parts[0])[-1]),
                lambda_max_later=float(torch.linalg.eigvalsh(later)[-1]),
                trace_share_layer1=tr[0] / sum(tr),
            )
        )
    return pd.DataFrame(rows)
