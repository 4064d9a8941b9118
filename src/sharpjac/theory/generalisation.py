r"""Theorem T4: the generalisation bound, evaluated."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from .. import jacobians as _jac
from ._common import _check_nonneg, _derive
from ._fit import fit
from .covering import covering_radius, nearest_sample

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
    vals = {name: _check_nonneg(name, v) for name, v in
            (("delta", delta), ("K", K), ("K_prime", K_prime), ("L_star", L_star),
             ("jac_max", jac_max), ("local_var", local_var))}
    terms = {
        "empirical": float((w * losses).sum()),
        "jacobian": vals["delta"] * vals["K"] * vals["jac_max"],
        "variation": vals["delta"] * vals["K"] * vals["local_var"],
        "target": vals["delta"] * vals["K_prime"] * vals["L_star"],
    }
    total = sum(terms.values())
    return T4Bound(**terms, total=total, delta=vals["delta"], dominant=max(terms, key=terms.get),
                   vacuous=None if vacuous_at is None else bool(total >= float(vacuous_at)))


def t4_study(
    runs: Sequence[Mapping[str, Any]],
    *,
    n_train: int = 100,
    d: int = 2,
    n: int = 16,
    lipschitz: float = 30.0,
    widths: Sequence[int] = (32, 32),
    steps: int = 1000,
    num_probe: int = 4000,
    lv_samples: int = 16,
    lv_ascent_steps: int = 2,
    seed: int = 0,
) -> pd.DataFrame:
    r"""Train a few regression runs on ``manifold`` data and evaluate Theorem T4 for each.

    Data: ``manifold`` regression (one output :math:`f^*(x)=\sin(w^\top x+c)`,
    :math:`L^*=\|w\|`), intrinsic dimension ``d`` in :math:`\mathbb R^n`. Each run (a mapping with
    keys ``name``, ``lr``, ``weight_decay`` (default 0), ``label_noise`` (default 0: the standard
    deviation of Gaussian noise added to the *training* targets), ``momentum`` (default 0.9)) trains
    an MLP (tanh, ``widths``) by full-batch gradient descent on squared error (:func:`fit`).

    The bound uses the loss :math:`\ell(z,y)=|z-y|` (:math:`K=K'=1`), a probe of ``num_probe``
    fresh points of :math:`S` for the Voronoi weights, for :math:`\delta` (the covering radius on the
    probe) and for the test loss :math:`\mathbb E_\mu\ell(f(x),f^*(x))` (Monte Carlo). Columns:
    ``name, lr, weight_decay, label_noise, train_mse, test_loss, empirical`` (with the clean
    targets :math:`f^*(x_i)`, as the theorem requires), ``empirical_noisy`` (with the noisy training
    targets, the hypothesis :math:`y_i=f^*(x_i)` dropped), ``jacobian, variation, target, total``
    (T4's terms and bound, clean), ``total_noisy``, ``delta, jac_max, local_variation, sharpness``
    (top Hessian eigenvalue of the training MSE, :func:`sharpjac.curvature.sharpness`),
    ``trivial`` (the test loss of the best constant predictor, the mean of :math:`f^*` on the
    sample: a bound at or above it is vacuous), ``vacuous``.
    """
    from .. import curvature as _curv
    from .. import data as _data
    from ..models import MLP

    dt = torch.float64
    ds = _data.load("manifold", seed=seed, d=d, n=n, n_train=n_train, n_test=1, task="regression",
                    lipschitz=lipschitz, dtype=dt)
    x, y_clean = ds.x_train, ds.y_train
    fstar = ds.extras["target_fn"]
    probe = ds.extras["sample_support"](num_probe, seed=_derive(seed, 4))
    y_probe = fstar(probe)
    delta = covering_radius(probe, x)
    weights = voronoi_weights(x, probe)
    L_star = float(ds.extras["target_lipschitz"])
    trivial = float((y_probe - y_clean.mean()).abs().mean())
    rows = []
    for r, spec in enumerate(runs):
        spec = dict(spec)
        name = spec.pop("name", f"run{r}")
        lr = float(spec.pop("lr"))
        wd = float(spec.pop("weight_decay", 0.0))
        noise = float(spec.pop("label_noise", 0.0))
        mom = float(spec.pop("momentum", 0.9))
        if spec:
            raise ValueError(f"unknown keys in run {name!r}: {sorted(spec)}; accepted: name, lr, "
                             "weight_decay, label_noise, momentum")
        gen = torch.Generator().manual_seed(_derive(seed, 5, r))
        y_train = y_clean + noise * torch.randn(y_clean.shape, generator=gen, dtype=dt)
        model = MLP(n, tuple(widths), 1, activation="tanh", seed=seed).to(dt)
        res = fit(model, x, y_train, lr=lr, steps=steps, weight_decay=wd, momentum=mom)
        with torch.no_grad():
            out = model(x)
            test_loss = float((model(probe) - y_probe).abs().mean())
            jn = _jac.jacobian_norms(model, x)
        phi = _jac.local_variation(model, x, delta, num_samples=lv_samples,
                                   ascent_steps=lv_ascent_steps, seed=seed)
        clean = t4_bound((out - y_clean).abs()[:, 0], weights, delta, 1.0, 1.0, L_star,
                         float(jn.max()), float(phi.max()), vacuous_at=trivial)
        noisy = t4_bound((out - y_train).abs()[:, 0], weights, delta, 1.0, 1.0, L_star,
                         float(jn.max()), float(phi.max()), vacuous_at=trivial)
        sharp = _curv.sharpness(model, torch.nn.functional.mse_loss, (x, y_train))
        rows.append({
            "name": name, "lr": lr, "weight_decay": wd, "label_noise": noise,
            "train_mse": float(res.train_loss[-1]), "diverged": res.diverged,
            "test_loss": test_loss,
            "empirical": clean.empirical, "empirical_noisy": noisy.empirical,
            "jacobian": clean.jacobian, "variation": clean.variation, "target": clean.target,
            "total": clean.total, "total_noisy": noisy.total, "dominant": clean.dominant,
            "delta": delta, "jac_max": float(jn.max()), "local_variation": float(phi.max()),
            "sharpness": float(sharp), "trivial": trivial, "vacuous": bool(clean.vacuous),
            "L_star": L_star,
        })
    return pd.DataFrame(rows)
