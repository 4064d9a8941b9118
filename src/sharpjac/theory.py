r"""The quantities in the companion's theorems T1-T4 and Proposition A, made computable.

Notation follows ``shared/spec/paper.md`` (sections 2-4) and the book's notation page: data
:math:`x\in\mathbb R^{n}` from :math:`\mu` with support :math:`S`, sample :math:`x_1,\dots,x_N`,
network :math:`f` with :math:`k` outputs and input-output Jacobian :math:`Jf(x)\in\mathbb R^{k\times
n}`, local variation :math:`V_B(Jf)=\sup_{x,x'\in B}\|Jf(x)-Jf(x')\|`. Norms of matrices are
spectral norms.

What is here:

* **T1 (covering)**: :func:`covering_radius` (the empirical covering radius of a sample, measured
  on a dense probe of :math:`S`), :func:`t1_covering_bound`
  (:math:`\delta(N,\varepsilon)=2L_g\sqrt d(\log(N/\varepsilon)/N)^{1/d}`), :func:`fit_loglog_slope`,
  :func:`covering_study` (radius against :math:`N` for the ``manifold`` data), and
  :func:`holder_curve` (a generator with a cusp, which is *not* Lipschitz).
* **Proposition A** (the ansatz made two-sided for the Gauss-Newton matrix):
  :func:`proposition_a`.
* **T2 (sample Jacobian vs Lipschitz constant)**: :func:`t2_sandwich`, with the path helpers
  :func:`latent_path` and :func:`polyline_length`.
* **T3 (low loss forces a large Jacobian)**: :func:`hardest_pairs`, :func:`t3_lower_bound`,
  :func:`ce_margin`, :func:`t3_ce_bound`, :func:`residual_radius`.
* **T4 (generalisation)**: :func:`voronoi_weights`, :func:`t4_bound`.
* **Intrinsic dimension**: :func:`twonn_dimension` (Facco et al. 2017),
  :func:`levina_bickel_dimension` (Levina & Bickel 2004).
* Small helpers: :func:`fit` (full-batch gradient descent with snapshots, for the theory
  chapters, which need the trained model itself), :func:`rank_agreement` (Kendall's tau).

Every randomised routine takes a keyword-only ``seed``; results are frozen dataclasses; nothing
here changes a model's train/eval mode or device.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from . import jacobians as _jac

__all__ = [
    "covering_radius",
    "nearest_sample",
    "t1_covering_bound",
    "LogLogFit",
    "fit_loglog_slope",
    "covering_study",
    "covering_slopes",
    "holder_curve",
    "holder_study",
    "PropositionA",
    "proposition_a",
    "latent_path",
    "polyline_length",
    "T2Sandwich",
    "t2_sandwich",
    "HardestPairs",
    "hardest_pairs",
    "residual_radius",
    "t3_lower_bound",
    "ce_margin",
    "t3_ce_bound",
    "t3_track",
    "voronoi_weights",
    "T4Bound",
    "t4_bound",
    "t4_study",
    "twonn_dimension",
    "levina_bickel_dimension",
    "FitResult",
    "fit",
    "rank_agreement",
]


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def _as_points(name: str, x: Any) -> Tensor:
    """A floating tensor of points [M, n] (extra dimensions flattened)."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [M, n], got {type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(f"{name} must have shape [M, n] (a batch of points), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}; need at least one point")
    if not x.is_floating_point():
        x = x.to(torch.float64)
    return x.reshape(x.shape[0], -1)


def _check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")
    return int(value)


def _check_nonneg(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name}={value!r} must be a finite number >= 0")
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name}={value!r} must be a finite number >= 0")
    return value


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


def t1_covering_bound(N: int, epsilon: float, d: int, lipschitz: float) -> float:
    r"""Theorem T1's covering function :math:`\delta(N,\varepsilon)=2L_g\sqrt d\,(\log(N/\varepsilon)/N)^{1/d}`.

    For :math:`\mu=g_\#\mathrm{Unif}[0,1]^d` with :math:`g` :math:`L_g`-Lipschitz, an i.i.d.
    :math:`N`-sample covers the support with balls of this radius with probability at least
    :math:`1-\varepsilon`, provided :math:`N\ge\log(N/\varepsilon)`.

    Args:
        N: sample size (>= 1).
        epsilon: failure probability, in (0, 1).
        d: latent (intrinsic) dimension (>= 1).
        lipschitz: :math:`L_g>0`.

    Returns:
        float.

    Raises:
        ValueError: the hypothesis :math:`N\ge\log(N/\varepsilon)` fails (message names N,
            epsilon and log(N/epsilon)), or an argument is out of range.
    """
    N = _check_positive_int("N", N)
    d = _check_positive_int("d", d)
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.floating)) or not 0 < epsilon < 1:
        raise ValueError(f"epsilon={epsilon!r} must be a number in (0, 1)")
    lipschitz = _check_nonneg("lipschitz", lipschitz)
    log_term = math.log(N / epsilon)
    if N < log_term:
        raise ValueError(
            f"Theorem T1 needs N >= log(N/epsilon); got N={N}, epsilon={epsilon!r}, "
            f"log(N/epsilon)={log_term:.4g}. Use a larger N or a larger epsilon."
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


def covering_study(
    dims: Sequence[int],
    sizes: Sequence[int],
    *,
    num_probe: int = 20000,
    repeats: int = 3,
    n: int = 16,
    lipschitz: float = 1.0,
    epsilon: float = 0.1,
    generator_seed: int = 0,
    seed: int = 0,
) -> pd.DataFrame:
    r"""Empirical covering radius of ``manifold`` samples against :math:`N`, with T1's bound.

    For each latent dimension :math:`d` the ``manifold`` data set's generator :math:`g` (fixed by
    ``generator_seed``, :math:`L_g=` ``lipschitz``) gives :math:`S=g([0,1]^d)\subset\mathbb R^n`.
    A probe of ``num_probe`` points of :math:`S` (its own seed) stands in for :math:`S`; for every
    :math:`N` in ``sizes`` and every repeat, a fresh i.i.d. sample of :math:`N` points is drawn
    and its covering radius measured (:func:`covering_radius`).

    Returns:
        DataFrame with one row per (d, N, repeat): ``d, N, repeat, radius, bound`` (T1's
        :math:`\delta(N,\varepsilon)`, nan where :math:`N<\log(N/\varepsilon)`), ``lipschitz``.
    """
    from . import data as _data

    rows = []
    for d in dims:
        ds = _data.load("manifold", seed=seed, d=int(d), n=n, n_train=1, n_test=1,
                        lipschitz=lipschitz, generator_seed=generator_seed, dtype=torch.float64)
        draw = ds.extras["sample_support"]
        probe = draw(num_probe, seed=_derive(seed, 10_000 + int(d)))
        for N in sizes:
            for r in range(repeats):
                x = draw(int(N), seed=_derive(seed, int(d), int(N), r))
                try:
                    bound = t1_covering_bound(int(N), epsilon, int(d), ds.extras["lipschitz"])
                except ValueError:
                    bound = float("nan")
                rows.append({"d": int(d), "N": int(N), "repeat": r,
                             "radius": covering_radius(probe, x), "bound": bound,
                             "lipschitz": ds.extras["lipschitz"]})
    return pd.DataFrame(rows)


def covering_slopes(df: pd.DataFrame, *, by: str = "d") -> pd.DataFrame:
    r"""Summarise a :func:`covering_study` frame: fitted rates against the theory, per group.

    For each value of ``by`` (default the dimension d), with the radius averaged over repeats:
    ``slope`` of :math:`\log r` on :math:`\log N` (T1 predicts about :math:`-1/d`, a little
    shallower because of the logarithm), its ``stderr``, ``slope_rate``, the slope of
    :math:`\log r` on :math:`\log(\log N/N)` (T1 predicts :math:`1/d`), ``expected`` =
    :math:`-1/d`, and ``max_ratio`` = the largest radius/bound over all rows (below 1 when the
    bound holds everywhere) and ``min_looseness`` = the smallest bound/radius.
    """
    rows = []
    for key, sub in df.groupby(by):
        mean = sub.groupby("N")["radius"].mean()
        N = mean.index.values.astype(float)
        fit_n = fit_loglog_slope(N, mean.values)
        fit_r = fit_loglog_slope(np.log(N) / N, mean.values)
        ratio = (sub["radius"] / sub["bound"]).replace([np.inf, -np.inf], np.nan)
        rows.append({by: key, "slope": fit_n.slope, "stderr": fit_n.stderr,
                     "slope_rate": fit_r.slope, "expected": -1.0 / key if by == "d" else float("nan"),
                     "max_ratio": float(ratio.max()), "min_looseness": float((1 / ratio).min())})
    return pd.DataFrame(rows)


def holder_study(
    sizes: Sequence[int],
    *,
    alpha: float = 0.25,
    lipschitz_candidates: Sequence[float] = (1.0, 10.0, 100.0),
    num_probe: int = 20001,
    repeats: int = 3,
    epsilon: float = 0.1,
    seed: int = 0,
) -> pd.DataFrame:
    r"""Covering radius of samples of :func:`holder_curve` (a non-Lipschitz generator) against N.

    The probe is the image of a uniform latent grid of ``num_probe`` points (it contains the
    cusp). For each candidate constant :math:`L` the column ``bound_L<L>`` holds T1's
    :math:`\delta(N,\varepsilon)` with :math:`d=1`, :math:`L_g=L`: since the generator is not
    Lipschitz, the measured radius (which decays like :math:`N^{-\alpha}`) eventually exceeds
    every one of them.

    Returns:
        DataFrame ``N, repeat, radius, bound_L<L>...``.
    """
    probe = holder_curve(torch.linspace(0, 1, int(num_probe), dtype=torch.float64)[:, None], alpha)
    rows = []
    for N in sizes:
        for r in range(repeats):
            gen = torch.Generator().manual_seed(_derive(seed, 77, int(N), r))
            x = holder_curve(torch.rand(int(N), 1, generator=gen, dtype=torch.float64), alpha)
            row = {"N": int(N), "repeat": r, "radius": covering_radius(probe, x)}
            for L in lipschitz_candidates:
                try:
                    row[f"bound_L{L:g}"] = t1_covering_bound(int(N), epsilon, 1, float(L))
                except ValueError:
                    row[f"bound_L{L:g}"] = float("nan")
            rows.append(row)
    return pd.DataFrame(rows)


def _derive(*keys: int) -> int:
    """A non-negative 31-bit seed derived from integer keys (numpy SeedSequence)."""
    return int(np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in keys]).generate_state(1)[0] >> 1)


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


def _curvature_tensor(curvature: Tensor, N: int, k: int, dtype, device) -> Tensor:
    if not isinstance(curvature, Tensor):
        raise TypeError(f"curvature must be a torch.Tensor [N, k, k] = [{N}, {k}, {k}] or [k, k], "
                        f"got {type(curvature).__name__}")
    C = curvature.to(dtype=dtype, device=device)
    if C.shape == (k, k):
        C = C.expand(N, k, k)
    if C.shape != (N, k, k):
        raise ValueError(f"curvature must have shape [N, k, k] = [{N}, {k}, {k}] (or [k, k]), "
                         f"got {tuple(curvature.shape)}")
    return C


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
    C = _curvature_tensor(curvature, N, k, Phi.dtype, Phi.device)
    Cs = (C + C.mT) / 2
    evals, evecs = torch.linalg.eigh(Cs)
    scale = evals.abs().amax().clamp_min(torch.finfo(Phi.dtype).tiny)
    if (evals[:, 0] < -math.sqrt(torch.finfo(Phi.dtype).eps) * scale).any():
        raise ValueError(f"curvature must be positive semi-definite; smallest eigenvalue "
                         f"{float(evals.min()):.3g}")
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
    isotropic = bool(torch.allclose(C, c_val[:, None, None] * eye, rtol=1e-10, atol=1e-12 * float(scale))) \
        and bool(torch.allclose(c_val, c_val[0].expand_as(c_val), rtol=1e-10, atol=0))
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
        lambda_max=lam, upper_phi=upper_phi, upper_layers=upper_layers, lower_phi=lower_phi,
        lower_jacobian=lower_jac, lower_jacobian_note=note,
        curvature_norm_mean=float(c_norm.mean()), jacobian_max=float(jn.max()),
        first_layer_norm=W1_norm, num_samples=int(N), num_params=int(P),
    )


# --------------------------------------------------------------------------------------------
# paths on the support
# --------------------------------------------------------------------------------------------


def latent_path(generator: Callable[[Tensor], Tensor], z0: Tensor, z1: Tensor, num_points: int = 64) -> Tensor:
    r"""Points :math:`g((1-t)z_0+tz_1)` on a straight latent segment, :math:`t` on a uniform grid.

    Args:
        generator: :math:`g`, latents ``[M, d]`` to points ``[M, n]``.
        z0, z1: latent end points ``[d]`` (or ``[P, d]`` for P paths at once).
        num_points: grid points per path, >= 2 (including both ends).

    Returns:
        ``[num_points, n]`` (or ``[P, num_points, n]``).
    """
    num_points = _check_positive_int("num_points", num_points, 2)
    single = z0.ndim == 1
    Z0, Z1 = (z0[None], z1[None]) if single else (z0, z1)
    if Z0.shape != Z1.shape or Z0.ndim != 2:
        raise ValueError(f"z0 and z1 must both have shape [d] or [P, d]; got {tuple(z0.shape)}, {tuple(z1.shape)}")
    t = torch.linspace(0, 1, num_points, dtype=Z0.dtype, device=Z0.device)
    Z = Z0[:, None, :] * (1 - t)[None, :, None] + Z1[:, None, :] * t[None, :, None]  # [P, T, d]
    X = generator(Z.reshape(-1, Z.shape[-1])).reshape(Z.shape[0], num_points, -1)
    return X[0] if single else X


def polyline_length(points: Tensor) -> Tensor:
    r"""Length :math:`\sum_j\|p_{j+1}-p_j\|` of a polyline ``[T, n]`` (or ``[P, T, n]`` -> ``[P]``).

    For a fine polyline through points of a curve in :math:`S` this approaches the curve's length
    from below; any curve's length is an upper bound on the intrinsic distance :math:`d_S` of its
    end points.
    """
    if not isinstance(points, Tensor) or points.ndim not in (2, 3) or points.shape[-2] < 2:
        raise ValueError(f"points must have shape [T, n] or [P, T, n] with T >= 2, got {getattr(points, 'shape', None)}")
    return (points[..., 1:, :] - points[..., :-1, :]).norm(dim=-1).sum(-1)


# --------------------------------------------------------------------------------------------
# T2: the sample-maximum Jacobian as a proxy for the Lipschitz constant on the data
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class T2Sandwich:
    r"""Both sides of Theorem T2, and the estimates of the quantity in between.

    With :math:`M=\max_i\|Jf(x_i)\|` and :math:`\phi_i=\sup_{x'\in B(x_i,\delta)}\|Jf(x')-Jf(x_i)\|`
    (:math:`\phi_i\le V_{B(x_i,\delta)}(Jf)`), on the covering event

    .. math:: M\ \le\ \sup_{x\in S}\|Jf(x)\|\ \le\ \max_i\big(\|Jf(x_i)\|+\phi_i\big)\ \le\ M+\max_i\phi_i ,

    and every path-wise Lipschitz ratio on :math:`S` is at most :math:`\sup_S\|Jf\|`.

    Attributes:
        sample_max: :math:`M`.
        probe_sup: :math:`\max` of :math:`\|Jf\|` over the dense support probe (estimates
            :math:`\sup_S\|Jf\|` from below).
        local_variation: :math:`\max_i\hat\phi_i` (estimate from
            :func:`sharpjac.jacobians.local_variation`, a lower estimate of the supremum).
        upper: :math:`M+\max_i\hat\phi_i` (the theorem's right-hand side).
        upper_pointwise: :math:`\max_i(\|Jf(x_i)\|+\hat\phi_i)` (tighter, same proof).
        radius: :math:`\delta`, the ball radius used.
        path_lipschitz: largest :math:`\|f(\gamma(1))-f(\gamma(0))\|/\mathrm{length}(\gamma)` over
            the sampled paths (nan without a generator).
        path_slope: largest segment slope :math:`\|f(p_{j+1})-f(p_j)\|/\|p_{j+1}-p_j\|` along the
            paths (a finer estimate of the Lipschitz constant along :math:`S`; nan without paths).
        num_probe, num_paths: sizes used.
    """

    sample_max: float
    probe_sup: float
    local_variation: float
    upper: float
    upper_pointwise: float
    radius: float
    path_lipschitz: float
    path_slope: float
    num_probe: int
    num_paths: int

    @property
    def holds(self) -> bool:
        """Whether every estimate lies under the upper side (``upper_pointwise``)."""
        top = max(self.probe_sup, self.sample_max,
                  *(v for v in (self.path_lipschitz, self.path_slope) if math.isfinite(v)))
        return bool(top <= self.upper_pointwise)

    @property
    def margin(self) -> float:
        """``upper_pointwise`` minus the largest estimate of :math:`\\sup_S\\|Jf\\|`."""
        top = max(self.probe_sup, self.sample_max,
                  *(v for v in (self.path_lipschitz, self.path_slope) if math.isfinite(v)))
        return float(self.upper_pointwise - top)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def t2_sandwich(
    model: nn.Module,
    x_sample: Tensor,
    support_probe: Tensor,
    radius: float | None = None,
    *,
    generator: Callable[[Tensor], Tensor] | None = None,
    latent_dim: int | None = None,
    num_paths: int = 64,
    path_points: int = 128,
    lv_samples: int = 32,
    lv_ascent_steps: int = 5,
    seed: int = 0,
    chunk_size: int = 256,
) -> T2Sandwich:
    r"""Evaluate Theorem T2's sandwich for a model on data from a known support.

    Computes :math:`\|Jf\|` at the sample and on the probe, the local variation
    :math:`\hat\phi_i` on balls :math:`B(x_i,\delta)` (by
    :func:`sharpjac.jacobians.local_variation`), and, with a generator :math:`g` of the support,
    finite-difference Lipschitz ratios along ``num_paths`` random paths
    :math:`\gamma(t)=g((1-t)z+tz')` (latent end points uniform in :math:`[0,1]^d`), whose lengths
    are measured on a polyline of ``path_points`` points.

    Args:
        model: the network (treats samples independently).
        x_sample: training sample ``[N, *input_shape]``.
        support_probe: dense probe of :math:`S` ``[M, *input_shape]``.
        radius: :math:`\delta`; default: the empirical covering radius of the sample on the probe.
        generator: :math:`g` (latents ``[m, d]`` -> points ``[m, n]``) for the path estimates.
        latent_dim: :math:`d` (needed with ``generator`` unless it has a ``.d`` attribute).
        num_paths, path_points: path sampling.
        lv_samples, lv_ascent_steps: controls of the local-variation search.
        seed: seed of the paths and of the local-variation search.
        chunk_size: Jacobians per vectorised chunk.

    Returns:
        :class:`T2Sandwich`.
    """
    if radius is None:
        radius = covering_radius(support_probe, x_sample)
    radius = _check_nonneg("radius", radius)
    with torch.no_grad():
        js = _jac.jacobian_norms(model, x_sample, "spectral", chunk_size=chunk_size)
        jp = _jac.jacobian_norms(model, support_probe, "spectral", chunk_size=chunk_size)
    phi = _jac.local_variation(model, x_sample, radius, num_samples=lv_samples,
                               ascent_steps=lv_ascent_steps, seed=seed, chunk_size=chunk_size)
    path_lip = path_slope = float("nan")
    n_paths = 0
    if generator is not None:
        d = latent_dim if latent_dim is not None else getattr(generator, "d", None)
        if d is None:
            raise ValueError("latent_dim is required when the generator has no `.d` attribute")
        n_paths = _check_positive_int("num_paths", num_paths)
        gen = torch.Generator().manual_seed(_derive(seed, 2))
        dtype = x_sample.dtype
        z0 = torch.rand(n_paths, int(d), generator=gen, dtype=torch.float64).to(dtype)
        z1 = torch.rand(n_paths, int(d), generator=gen, dtype=torch.float64).to(dtype)
        with torch.no_grad():
            pts = latent_path(generator, z0, z1, path_points)  # [P, T, n]
            out = model(pts.reshape(-1, *x_sample.shape[1:])).reshape(n_paths, path_points, -1)
            length = polyline_length(pts)
            chord = (out[:, -1] - out[:, 0]).norm(dim=-1)
            path_lip = float((chord / length.clamp_min(torch.finfo(dtype).tiny)).max())
            seg = (pts[:, 1:] - pts[:, :-1]).norm(dim=-1)
            dout = (out[:, 1:] - out[:, :-1]).norm(dim=-1)
            ok = seg > 0
            path_slope = float((dout[ok] / seg[ok]).max()) if bool(ok.any()) else float("nan")
    return T2Sandwich(
        sample_max=float(js.max()), probe_sup=float(jp.max()), local_variation=float(phi.max()),
        upper=float(js.max() + phi.max()), upper_pointwise=float((js + phi).max()), radius=radius,
        path_lipschitz=path_lip, path_slope=path_slope, num_probe=int(jp.shape[0]), num_paths=n_paths,
    )


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
    from . import losses as _losses

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
    from . import curvature as _curv
    from . import data as _data
    from .models import MLP

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


# --------------------------------------------------------------------------------------------
# intrinsic dimension
# --------------------------------------------------------------------------------------------


def _knn_distances(x: Tensor, k: int, chunk_size: int) -> Tensor:
    """Distances to the k nearest other points, ascending: [N, k] (float64)."""
    X = _as_points("x", x).to(torch.float64)
    N = X.shape[0]
    if k >= N:
        raise ValueError(f"need more than k={k} points, got N={N}")
    out = []
    with torch.no_grad():
        for start in range(0, N, chunk_size):
            D = torch.cdist(X[start:start + chunk_size], X)
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
    r = _knn_distances(x, 2, chunk_size)
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
    T = _knn_distances(x, k2, chunk_size)
    T = T[T[:, 0] > 0]
    if T.shape[0] < 1:
        raise ValueError("all points are duplicates of others")
    logT = torch.log(T)
    est = []
    for k in range(k1, k2 + 1):
        s = (logT[:, k - 1:k] - logT[:, : k - 1]).sum(1) / (k - 1)
        est.append((1.0 / s).mean())
    return float(torch.stack(est).mean())


# --------------------------------------------------------------------------------------------
# small training helper and statistics
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        steps: measured steps ``[T]`` (numpy int).
        train_loss: full-batch training loss at those steps ``[T]``.
        snapshots: ``{step: state_dict}`` (deep copies) at the requested steps.
        diverged: whether the loss became non-finite (training stopped there).
    """

    steps: np.ndarray
    train_loss: np.ndarray
    snapshots: Mapping[int, dict]
    diverged: bool


def fit(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    loss: str = "mse",
    lr: float = 0.1,
    steps: int = 1000,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    snapshot_steps: Sequence[int] = (),
    record_every: int = 10,
    target_loss: float | None = None,
) -> FitResult:
    r"""Full-batch gradient descent on a small model, keeping snapshots of the parameters.

    A minimal loop for the theory chapters, which need the trained *model* (for Jacobians away
    from the sample, local variations, paths) and regression targets, which
    :func:`sharpjac.training.train` does not provide. Update (``torch.optim.SGD``):
    :math:`\theta\leftarrow\theta-\eta(\nabla\mathcal L(\theta)+\lambda\theta)` (with heavy-ball
    momentum if given). The model is trained **in place**.

    Losses: ``"mse"``: :math:`\frac1N\sum_i\frac1k\|f(x_i)-t_i\|^2` with :math:`t_i` the one-hot
    label (int ``y``) or the real target (float ``y`` ``[N, k]``); ``"ce"``: softmax
    cross-entropy (int ``y``).

    Args:
        model: the network (trained in place).
        x: inputs ``[N, ...]``; y: int64 labels ``[N]`` or float targets ``[N, k]``.
        loss: ``"mse"`` or ``"ce"``.
        lr, steps, weight_decay, momentum: optimiser settings.
        snapshot_steps: steps (0..steps) at which a copy of ``model.state_dict()`` is kept.
        record_every: loss recorded every this many steps (and at the last step).
        target_loss: stop once the training loss is at most this (a snapshot is then taken).

    Returns:
        :class:`FitResult`.
    """
    if loss not in ("mse", "ce"):
        raise ValueError(f"loss={loss!r}; accepted: 'mse', 'ce'")
    steps = _check_positive_int("steps", steps, 0)
    record_every = _check_positive_int("record_every", record_every)
    if y.dtype.is_floating_point:
        if loss != "mse":
            raise ValueError("loss='ce' needs int64 class labels y [N]")

        def loss_fn(z: Tensor) -> Tensor:
            return ((z - y.to(z.dtype)) ** 2).mean()
    else:
        from . import losses as _losses

        base = _losses.get_loss(loss)

        def loss_fn(z: Tensor) -> Tensor:
            return base(z, y)

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    wanted = set(int(s) for s in snapshot_steps)
    snaps: dict[int, dict] = {}
    rec_s, rec_l = [], []
    diverged = False
    for t in range(steps + 1):
        opt.zero_grad(set_to_none=True)
        value = loss_fn(model(x))
        lv = float(value.detach())
        stop = target_loss is not None and lv <= target_loss
        if t % record_every == 0 or t == steps or stop:
            rec_s.append(t)
            rec_l.append(lv)
        if t in wanted or stop:
            snaps[t] = copy.deepcopy(model.state_dict())
        if not math.isfinite(lv):
            diverged = True
            break
        if t == steps or stop:
            break
        value.backward()
        opt.step()
    return FitResult(steps=np.asarray(rec_s), train_loss=np.asarray(rec_l), snapshots=snaps, diverged=diverged)


def rank_agreement(a: Any, b: Any) -> float:
    r"""Kendall's :math:`\tau_b` between two score vectors (1: same ranking, -1: reversed)."""
    from scipy.stats import kendalltau

    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    if a.shape != b.shape or a.size < 2:
        raise ValueError(f"a and b must have the same length >= 2; got {a.size} and {b.size}")
    return float(kendalltau(a, b).statistic)
