r"""Proposition A: the Gauss-Newton top eigenvalue sandwiched by Jacobian quantities (the ansatz)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .. import jacobians as _jac
from ..conjugate import check_curvature

# --------------------------------------------------------------------------------------------
# Proposition A
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PropositionA:
    r"""Proposition A's two-sided bounds on :math:`\lambda_{\max}(G)`, and the exact value.

    Attributes:
        lambda_max: :math:`\lambda_{\max}(G)`, computed exactly from the explicit per-sample
            parameter Jacobians (``eigvalsh`` of the smaller of :math:`G` and :math:`K=AA^\top`).
        upper_phi: (i) :math:`\frac1N\sum_i\|C_i\|\,\|\Phi_i\|^2`.
        upper_layers: (i) :math:`\frac1N\sum_i\|C_i\|\sum_l\|Jf_{L:l+1}(x_i)\|^2\|Df_l(x_i)\|^2`.
        lower_phi: :math:`\frac1N\max_i\|C_i^{1/2}\Phi_i\|^2` (valid for any PSD :math:`C_i`;
            the first step of (ii)).
        lower_jacobian: (ii) :math:`\frac cN\max_i(\|x_i\|^2+b)\|Jf(x_i)\|^2/\|W_1\|^2` for
            :math:`C_i=cI` and a dense first layer (:math:`b=1` with a bias, 0 without); nan
            when not applicable (see ``lower_jacobian_note``).
        lower_jacobian_note: why (ii) was not evaluated ("" when it was).
        curvature_norm_mean: :math:`\frac1N\sum_i\|C_i\|`.
        jacobian_max: :math:`\max_i\|Jf(x_i)\|`.
        first_layer_norm: :math:`\|W_1\|` (nan if there is no dense first layer).
        num_samples, num_params: N and P.
    """

    lambda_max: float
    upper_phi: float
    upper_layers: float
    lower_phi: float
    lower_jacobian: float
    lower_jacobian_note: str
    curvature_norm_mean: float
    jacobian_max: float
    first_layer_norm: float
    num_samples: int
    num_params: int

    @property
    def holds(self) -> bool:
        """Whether every evaluated inequality holds (to a relative 1e-9)."""
        tol = 1e-9 * max(1.0, abs(self.lambda_max))
        ok = self.lower_phi <= self.lambda_max + tol <= self.upper_phi + 2 * tol
        ok = ok and self.upper_phi <= self.upper_layers * (1 + 1e-9) + tol
        if math.isfinite(self.lower_jacobian):
            ok = ok and self.lower_jacobian <= self.lambda_max + tol
        return bool(ok)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _first_dense(model: nn.Module) -> tuple[nn.Linear | None, str]:
    """The first block's Linear layer if the first block is [Flatten/Identity..., Linear, act...]."""
    try:
        blocks = _jac.split_layers(model)
    except (TypeError, ValueError) as err:
        return None, f"model is not sequential: {err}"
    mods = list(blocks[0])
    for m in mods:
        if isinstance(m, nn.Linear):
            return m, ""
        if not isinstance(m, (nn.Flatten, nn.Identity)):
            return None, f"the first block starts with {type(m).__name__}, not a dense layer"
    return None, "no dense first layer"


def proposition_a(model: nn.Module, x: Tensor, curvature: Tensor, *, chunk_size: int = 64) -> PropositionA:
    r"""Evaluate the companion's Proposition A and the exact :math:`\lambda_{\max}(G)`.

    With the per-sample parameter Jacobians :math:`\Phi_i=\partial f/\partial\theta\,(x_i)`
    (``[k, P]``) and output curvatures :math:`C_i` (``[k, k]``, PSD), the Gauss-Newton matrix is
    :math:`G=\frac1N\sum_i\Phi_i^\top C_i\Phi_i=A^\top A`, :math:`A_i=N^{-1/2}C_i^{1/2}\Phi_i`.

    (i) :math:`\lambda_{\max}(G)\le\sum_i\|A_i\|^2\le\frac1N\sum_i\|C_i\|\|\Phi_i\|^2
    \le\frac1N\sum_i\|C_i\|\sum_l\|Jf_{L:l+1}(x_i)\|^2\|Df_l(x_i)\|^2`, the last step because
    :math:`\Phi_i\Phi_i^\top=\sum_lJf_{L:l+1}Df_lDf_l^\top Jf_{L:l+1}^\top`.

    (ii) :math:`G\succeq\frac1N\Phi_i^\top C_i\Phi_i` for every i gives
    :math:`\lambda_{\max}(G)\ge\frac1N\max_i\|C_i^{1/2}\Phi_i\|^2` (``lower_phi``); for
    :math:`C_i=cI` and a dense first layer :math:`f_1(x)=\sigma(W_1x+b_1)`, the layer-1 term of
    :math:`\Phi_i\Phi_i^\top` is :math:`(\|x_i\|^2+1)B_iB_i^\top` with
    :math:`B_i=Jf_{L:2}(x_i)D_1(x_i)` and :math:`Jf(x_i)=B_iW_1`, so
    :math:`\lambda_{\max}(G)\ge\frac cN\max_i(\|x_i\|^2+1)\|Jf(x_i)\|^2/\|W_1\|^2`
    (``lower_jacobian``; without a bias the ``+1`` is dropped).

    The exact :math:`\lambda_{\max}(G)` is the top eigenvalue of the dense :math:`G` (``[P, P]``)
    or of :math:`K=AA^\top` (``[Nk, Nk]``), whichever is smaller: small models only.

    Args:
        model: a sequential model (see :func:`sharpjac.jacobians.split_layers`), all trainable
            parameters in its blocks.
        x: inputs ``[N, *input_shape]``, dtype of the model.
        curvature: :math:`C_i` ``[N, k, k]`` or shared ``[k, k]``, e.g. from
            :func:`sharpjac.losses.output_curvature`.
        chunk_size: samples per vectorised chunk.

    Returns:
        :class:`PropositionA`.
    """
    Phi = _jac.per_sample_parameter_jacobians(model, x, chunk_size=chunk_size)  # [N, k, P]
    N, k, P = Phi.shape
    C = check_curvature(curvature, N, k, Phi.dtype, Phi.device)
    Cs = (C + C.mT) / 2
    evals, evecs = torch.linalg.eigh(Cs)
    scale = evals.abs().amax().clamp_min(torch.finfo(Phi.dtype).tiny)
    if (evals[:, 0] < -math.sqrt(torch.finfo(Phi.dtype).eps) * scale).any():
        raise ValueError(f"curvature must be positive semi-definite; smallest eigenvalue {float(evals.min()):.3g}")
    evals = evals.clamp_min(0)
    C_half = (evecs * evals.sqrt()[:, None, :]) @ evecs.mT
    c_norm = evals[:, -1]  # ||C_i||
    A = (C_half @ Phi) / math.sqrt(N)  # [N, k, P]
    with torch.no_grad():
        if P <= N * k:
            Am = A.reshape(N * k, P)
            lam = float(torch.linalg.eigvalsh(Am.mT @ Am)[-1])
        else:
            Am = A.reshape(N * k, P)
            lam = float(torch.linalg.eigvalsh(Am @ Am.mT)[-1])
        phi_norm2 = torch.linalg.matrix_norm(Phi, ord=2) ** 2
        upper_phi = float((c_norm * phi_norm2).mean())
        lower_phi = float(torch.linalg.matrix_norm(A, ord=2).max() ** 2)
        layer_terms = torch.zeros(N, dtype=Phi.dtype, device=Phi.device)
        for i in range(N):
            Js = _jac.layer_jacobians(model, x[i])
            Ps = _jac.partial_products(Js)  # entry l: Jf_{L:l+1}; l = 0..L
            Ds = _jac.layer_parameter_jacobians(model, x[i])
            layer_terms[i] = sum(
                torch.linalg.matrix_norm(Ps[l + 1], ord=2) ** 2 * torch.linalg.matrix_norm(Ds[l], ord=2) ** 2
                for l in range(len(Ds))
            )
        upper_layers = float((c_norm * layer_terms).mean())
        jn = _jac.jacobian_norms(model, x, "spectral", chunk_size=chunk_size)
    # (ii): C_i = c I and a dense first layer
    eye = torch.eye(k, dtype=C.dtype, device=C.device)
    c_val = C[:, 0, 0]
    isotropic = bool(torch.allclose(C, c_val[:, None, None] * eye, rtol=1e-10, atol=1e-12 * float(scale))) and bool(
        torch.allclose(c_val, c_val[0].expand_as(c_val), rtol=1e-10, atol=0)
    )
    lin, note = _first_dense(model)
    W1_norm = float("nan")
    lower_jac = float("nan")
    if lin is not None:
        W1_norm = float(torch.linalg.matrix_norm(lin.weight.detach(), ord=2))
    if not isotropic:
        note = "curvature is not c*I with one constant c (e.g. cross-entropy)"
    elif lin is not None and W1_norm > 0:
        b = 1.0 if lin.bias is not None and lin.bias.requires_grad else 0.0
        xx = x.reshape(N, -1).to(Phi.dtype)
        vals = (xx.pow(2).sum(1) + b) * jn.pow(2)
        lower_jac = float(c_val[0]) / N * float(vals.max()) / W1_norm**2
        note = ""
    elif lin is not None:
        note = "first-layer weight is zero"
    return PropositionA(
        lambda_max=lam,
        upper_phi=upper_phi,
        upper_layers=upper_layers,
        lower_phi=lower_phi,
        lower_jacobian=lower_jac,
        lower_jacobian_note=note,
        curvature_norm_mean=float(c_norm.mean()),
        jacobian_max=float(jn.max()),
        first_layer_norm=W1_norm,
        num_samples=int(N),
        num_params=int(P),
    )
