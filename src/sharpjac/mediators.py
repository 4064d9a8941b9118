r"""The paper's three mediating factors between sharpness and the Jacobian, as experiments.

The book's chapter *The ansatz and its mediating factors* lists what can move sharpness without
moving the input-output Jacobian (or the reverse):

1. **the output curvature** :math:`C_i` -- cross-entropy saturates (:math:`\|C_i\|\to0` as the
   predictions become confident) unless the targets are smoothed:
   :func:`smoothed_curvature_at_optimum` gives the floor that label smoothing puts under
   :math:`\|C_i\|`;
2. **the parameter derivatives** :math:`Df_l` -- a function-preserving rescaling of two adjacent
   layers of a ReLU network (Dinh et al. 2017) changes the sharpness at will while the function
   and its Jacobian stay the same: :func:`rescale_layers`, :func:`rescaling_study`;
3. **the first-layer Jacobian** :math:`Jf_1`, absent from the conjugate matrix: a linear model
   does not sharpen under squared error; training only the first layer
   (``TrainConfig.trainable_layers=[1]``, see :mod:`sharpjac.training`) tests whether Jacobian
   growth carried by :math:`W_1` shows in the
   sharpness (it also moves the features, which the conjugate matrix does see).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import pandas as pd
import torch
from torch import Tensor, nn

from . import curvature as _curv
from . import jacobians as _jac

__all__ = [
    "rescale_layers",
    "rescaling_study",
    "smoothed_curvature_at_optimum",
    "HOMOGENEOUS",
]

LossFn = Callable[[Tensor, Tensor], Tensor]

#: Parameter-free modules through which a positive rescaling passes: :math:`\sigma(\alpha h)=\alpha\sigma(h)`.
HOMOGENEOUS = (nn.ReLU, nn.LeakyReLU, nn.Identity, nn.Flatten, nn.Dropout)


def _linears(seq: nn.Sequential) -> list[int]:
    return [i for i, m in enumerate(seq) if isinstance(m, nn.Linear)]


_seq = _jac._sequential  # noqa: SLF001 - the model as an nn.Sequential; made public on branch theory


def rescale_layers(model: nn.Module, layer: int, alpha: float) -> nn.Module:
    r"""A copy of ``model`` with layer ``layer`` scaled by :math:`\alpha` and the next by :math:`1/\alpha`.

    For dense layers :math:`h_l=W_lx^{(l-1)}+b_l`, :math:`x^{(l)}=\sigma(h_l)` with a positively
    homogeneous :math:`\sigma` (ReLU, leaky ReLU, identity), the map
    :math:`(W_l,b_l,W_{l+1})\mapsto(\alpha W_l,\alpha b_l,W_{l+1}/\alpha)`, :math:`\alpha>0`,
    leaves the network's function unchanged, hence also its input-output Jacobian and its loss;
    in the new coordinates the Hessian is :math:`D^{-1}HD^{-1}` with :math:`D` the diagonal
    scaling (:math:`\alpha` on :math:`W_l,b_l`, :math:`1/\alpha` on :math:`W_{l+1}`, 1 elsewhere).

    Args:
        model: a sequential model (``nn.Sequential`` or with ``.layers``) whose ``layer``-th and
            ``layer+1``-th ``nn.Linear`` are separated only by modules in :data:`HOMOGENEOUS`.
        layer: 1-based index among the model's ``nn.Linear`` modules (1 <= layer < number of them).
        alpha: the factor, > 0.

    Returns:
        A new module (``model`` is not modified).
    """
    seq = _seq(model)
    lin = _linears(seq)
    if isinstance(layer, bool) or not isinstance(layer, int) or not 1 <= layer < len(lin):
        raise ValueError(
            f"layer must be an int in [1, {len(lin) - 1}] (the model has {len(lin)} Linear layers), got {layer!r}"
        )
    alpha = float(alpha)
    if not (alpha > 0 and math.isfinite(alpha)):
        raise ValueError(f"alpha must be a finite number > 0, got {alpha!r}")
    a, b = lin[layer - 1], lin[layer]
    between = list(seq)[a + 1 : b]
    bad = [type(m).__name__ for m in between if not isinstance(m, HOMOGENEOUS)]
    if bad:
        raise ValueError(
            f"the modules between Linear layers {layer} and {layer + 1} must be positively homogeneous "
            f"({', '.join(t.__name__ for t in HOMOGENEOUS)}); got {bad}"
        )
    new = copy.deepcopy(model)
    nseq = _seq(new)
    with torch.no_grad():
        nseq[a].weight.mul_(alpha)  # on the copy
        if nseq[a].bias is not None:
            nseq[a].bias.mul_(alpha)
        nseq[b].weight.div_(alpha)
    return new


def rescaling_study(
    model: nn.Module,
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    alphas: Sequence[float],
    *,
    layer: int = 1,
    tol: float = 1e-4,
    max_iter: int = 100,
    seed: int = 0,
) -> pd.DataFrame:
    r"""Sharpness, Jacobian and loss of the rescaled networks :func:`rescale_layers` (``layer``, alpha).

    Returns:
        DataFrame, one row per alpha: ``alpha``, ``loss``, ``output_change`` and
        ``jacobian_change`` (largest absolute difference of the outputs / per-sample input-output
        Jacobians from those of ``model``), ``jac_spectral_max``, ``jac_spectral_mean``,
        ``sharpness`` (:math:`\lambda_{\max}(H)` by Lanczos), ``sharpness_converged``,
        ``param_norm``.
    """
    alphas = [float(a) for a in alphas]
    if not alphas:
        raise ValueError("alphas must be a non-empty sequence of positive numbers")
    with torch.no_grad():
        out0 = model(x)
    J0 = _jac.input_jacobians(model, x)
    rows = []
    for a in alphas:
        m = rescale_layers(model, layer, a)
        with torch.no_grad():
            out = m(x)
            loss = float(loss_fn(out, y))
        J = _jac.input_jacobians(m, x)
        st = _jac.jacobian_stats(m, x)
        res = _curv.lanczos(_curv.HessianOperator(m, loss_fn, (x, y)), 1, tol=tol, max_iter=max_iter, seed=seed)
        rows.append(
            dict(
                alpha=a,
                loss=loss,
                output_change=float((out - out0).abs().max()),
                jacobian_change=float((J - J0).abs().max()),
                jac_spectral_max=st.spectral_max,
                jac_spectral_mean=st.spectral_mean,
                sharpness=float(res.eigenvalues[0]),
                sharpness_converged=bool(res.converged),
                param_norm=float(torch.sqrt(sum((p.detach().double() ** 2).sum() for p in m.parameters()))),
            )
        )
    return pd.DataFrame(rows)


def smoothed_curvature_at_optimum(num_classes: int, label_smoothing: float) -> float:
    r"""Spectral norm of the cross-entropy curvature at the minimiser of the smoothed loss.

    With smoothed targets :math:`t=(1-\alpha)e_y+\alpha\mathbf1/k`, the per-sample loss
    :math:`-\sum_ct_c\log\mathrm{softmax}(z)_c` is minimised (in the limit, for
    :math:`\alpha=0`) at :math:`p=t`, where :math:`C=\mathrm{diag}(t)-tt^\top`. Its spectral norm
    is the floor that label smoothing keeps under :math:`\|C_i\|` for a network that fits its
    training targets; for :math:`\alpha=0` it is 0 (saturation). Computed with ``eigvalsh`` in
    float64.

    Args:
        num_classes: k >= 2.
        label_smoothing: alpha in [0, 1).
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    if not 0.0 <= float(label_smoothing) < 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1), got {label_smoothing!r}")
    k, a = num_classes, float(label_smoothing)
    t = torch.full((k,), a / k, dtype=torch.float64)
    t[0] += 1.0 - a
    C = torch.diag(t) - torch.outer(t, t)
    return float(torch.linalg.eigvalsh(C)[-1].clamp_min(0))
