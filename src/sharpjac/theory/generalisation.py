r"""Theorem T4: the generalisation bound, evaluated."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from ._common import _check_nonneg
from .covering import nearest_sample

# --------------------------------------------------------------------------------------------
# T4: the generalisation bound
# --------------------------------------------------------------------------------------------


def voronoi_weights(sample: Tensor, support_probe: Tensor, *, chunk_size: int = 2048) -> Tensor:
    r"""Monte-Carlo estimate of :math:`\mu(\mathcal V_i)`, the mass of each sample's Voronoi cell.

    With probe points :math:`s_1,\dots,s_M` i.i.d. from :math:`\mu`,
    :math:`\hat\mu(\mathcal V_i)=\frac1M\#\{m:\ x_i\text{ is the nearest sample point to }s_m\}`
    (unbiased; ties go to the lowest index).

    Args:
        sample: ``[N, *shape]``.
        support_probe: ``[M, *shape]`` drawn from :math:`\mu`.

    Returns:
        float64 tensor ``[N]`` summing to 1.
    """
    _, idx = nearest_sample(support_probe, sample, chunk_size=chunk_size)
    N = sample.shape[0]
    return torch.bincount(idx, minlength=N).to(torch.float64) / idx.numel()


@dataclass(frozen=True)
class T4Bound:
    r"""The terms of Theorem T4's right-hand side.

    .. math:: \underbrace{\sum_i\mu(\mathcal V_i)\ell(f(x_i),y_i)}_{\texttt{empirical}}
        +\underbrace{\delta K\max_i\|Jf(x_i)\|}_{\texttt{jacobian}}
        +\underbrace{\delta K\max_iV}_{\texttt{variation}}
        +\underbrace{\delta K'L^*}_{\texttt{target}}

    Attributes:
        empirical, jacobian, variation, target: the four terms.
        total: their sum.
        delta: :math:`\delta`.
        dominant: name of the largest term.
        vacuous: ``total >= vacuous_at`` when a trivial level was given, else None.
    """

    empirical: float
    jacobian: float
    variation: float
    target: float
    total: float
    delta: float
    dominant: str
    vacuous: bool | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def t4_bound(
    per_sample_losses: Any,
    voronoi_weights: Any,
    delta: float,
    K: float,
    K_prime: float,
    L_star: float,
    jac_max: float,
    local_var: float,
    *,
    vacuous_at: float | None = None,
) -> T4Bound:
    r"""Theorem T4's bound, term by term.

    Proof sketch (on the covering event): a point :math:`x\in\mathcal V_i` has
    :math:`\|x-x_i\|\le\delta`, so with :math:`\ell` :math:`K`-Lipschitz in the output and
    :math:`K'`-Lipschitz in the target, :math:`y_i=f^*(x_i)`,
    :math:`\ell(f(x),f^*(x))\le\ell(f(x_i),y_i)+K\|f(x)-f(x_i)\|+K'\|f^*(x)-f^*(x_i)\|`, and
    :math:`\|f(x)-f(x_i)\|\le\delta\sup_{B(x_i,\delta)}\|Jf\|\le\delta(\|Jf(x_i)\|+V)`; integrate
    over :math:`\mathcal V_i` and sum.

    Args:
        per_sample_losses: :math:`\ell(f(x_i),y_i)` ``[N]``.
        voronoi_weights: :math:`\mu(\mathcal V_i)` ``[N]`` (non-negative, summing to about 1).
        delta, K, K_prime, L_star, jac_max, local_var: the scalars of the bound (>= 0).
        vacuous_at: optional trivial level (e.g. the loss of a constant predictor) at or above
            which the bound says nothing.

    Returns:
        :class:`T4Bound`.
    """
    losses = torch.as_tensor(per_sample_losses, dtype=torch.float64).reshape(-1)
    w = torch.as_tensor(voronoi_weights, dtype=torch.float64).reshape(-1)
    if losses.shape != w.shape:
        raise ValueError(f"per_sample_losses has {losses.numel()} entries but voronoi_weights has {w.numel()}")
    if bool((w < 0).any()):
        raise ValueError("voronoi_weights must be non-negative")
    vals = {
        name: _check_nonneg(name, v)
        for name, v in (
            ("delta", delta),
            ("K", K),
            ("K_prime", K_prime),
            ("L_star", L_star),
            ("jac_max", jac_max),
            ("local_var", local_var),
        )
    }
    terms = {
        "empirical": float((w * losses).sum()),
        "jacobian": vals["delta"] * vals["K"] * vals["jac_max"],
        "variation": vals["delta"] * vals["K"] * vals["local_var"],
        "target": vals["delta"] * vals["K_prime"] * vals["L_star"],
    }
    total = sum(terms.values())
    return T4Bound(
        **terms,
        total=total,
        delta=vals["delta"],
        dominant=max(terms, key=terms.get),
        vacuous=None if vacuous_at is None else bool(total >= float(vacuous_at)),
    )
