r"""Statistics of run records: rank correlations, bootstrap intervals, edge-of-stability windows.

The experiment chapters answer the reviewers' request for *numbers instead of pictures*: how
strongly do sharpness and the Jacobian statistics move together, with what uncertainty, and
where does the link weaken. Everything here works on plain arrays or on the tidy records of
:mod:`sharpjac.training` / :mod:`sharpjac.experiments` (one row per measurement).

Rank correlations
-----------------
For paired samples :math:`(x_t, y_t)_{t=1}^n` (non-finite pairs dropped):

* **Spearman's** :math:`\rho` is Pearson's correlation of the ranks (ties get the average of the
  ranks they span):
  :math:`\rho=\frac{\sum_t(r_t-\bar r)(s_t-\bar s)}{\sqrt{\sum_t(r_t-\bar r)^2\sum_t(s_t-\bar s)^2}}`.
* **Kendall's** :math:`\tau_b=\frac{n_c-n_d}{\sqrt{(n_0-n_1)(n_0-n_2)}}` with :math:`n_c, n_d`
  the concordant and discordant pairs, :math:`n_0=n(n-1)/2` and :math:`n_1, n_2` the pairs tied
  in :math:`x` and in :math:`y` (the same convention as ``scipy.stats.kendalltau``).

Both are NaN when fewer than 3 finite pairs remain or when one variable is constant.

Bootstrap
---------
:func:`bootstrap_ci` is the percentile bootstrap: resample the :math:`m` values (e.g. one
correlation per seed) with replacement :math:`B` times, recompute the statistic, and report the
:math:`\alpha/2` and :math:`1-\alpha/2` quantiles of the replicates. With few seeds the interval
is short and optimistic (a percentile bootstrap of 3 values can only take a handful of values);
the chapters say so.

The edge of stability
---------------------
Full-batch gradient descent with step :math:`\eta` is stable along the top Hessian direction only
while the sharpness :math:`s_t\le2/\eta`. :func:`edge_index` finds the first measurement with
:math:`s_t\ge\phi\cdot2/\eta` (default :math:`\phi=0.9`); the *before-the-edge window* is the
measurements strictly before it, the phase where progressive sharpening is free of the stability
cap. :func:`edge_summary` compares the end of a run with :math:`2/\eta`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from . import validation as V

__all__ = [
    "METHODS",
    "JACOBIAN_COLUMNS",
    "MEDIATOR_COLUMNS",
    "rankdata",
    "spearman",
    "kendall",
    "rank_correlation",
    "Interval",
    "bootstrap_ci",
    "edge_index",
    "before_edge",
    "rolling_correlation",
    "EdgeSummary",
    "edge_summary",
    "run_correlations",
    "summarise_correlations",
    "log_changes",
    "dominant_mediator",
    "value_when",
]

METHODS = ("spearman", "kendall")

#: The four Jacobian statistics recorded by :func:`sharpjac.training.train`.
JACOBIAN_COLUMNS = ("jac_spectral_max", "jac_spectral_mean", "jac_frobenius_max", "jac_frobenius_mean")

#: The mediating factors recorded by :func:`sharpjac.training.train`, and the sign with which each
#: enters sharpness at a fixed Jacobian (Proposition A): :math:`\overline{\|C\|}` and the feature
#: norm multiply sharpness; growth of the first-layer norm raises the Jacobian without sharpness.
MEDIATOR_COLUMNS = {"curvature_norm": +1, "feature_norm": +1, "first_layer_norm": -1}


# ------------------------------------------------------------------------------------------------
# Rank correlations
# ------------------------------------------------------------------------------------------------


def _vector(name: str, v) -> np.ndarray:
    a = np.asarray(v, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
    return a


def _pairs(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = _vector("x", x), _vector("y", y)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got shapes {x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def rankdata(a) -> np.ndarray:
    """Ranks 1..n of a 1-d array, ties receiving the average of the ranks they span.

    Args:
        a: values, shape ``[n]`` (finite).

    Returns:
        float array ``[n]``.
    """
    a = _vector("a", a)
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    # boundaries of runs of equal values
    new = np.r_[True, sorted_a[1:] != sorted_a[:-1]]
    run_id = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], len(a)]
    avg = (starts + ends + 1) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty(len(a))
    ranks[order] = avg[run_id]
    return ranks


def spearman(x, y) -> float:
    r"""Spearman's :math:`\rho` of paired samples (non-finite pairs dropped; NaN if undefined).

    Args:
        x, y: shape ``[n]``.
    """
    x, y = _pairs(x, y)
    if len(x) < 3:
        return float("nan")
    rx, ry = rankdata(x), rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    if den == 0.0:
        return float("nan")
    return float(np.clip((rx * ry).sum() / den, -1.0, 1.0))


def kendall(x, y) -> float:
    r"""Kendall's :math:`\tau_b` of paired samples (non-finite pairs dropped; NaN if undefined).

    Computed from all :math:`n(n-1)/2` pairs (:math:`O(n^2)` memory; fine for the few hundred
    measurements of a run).

    Args:
        x, y: shape ``[n]``.
    """
    x, y = _pairs(x, y)
    n = len(x)
    if n < 3:
        return float("nan")
    i, j = np.triu_indices(n, k=1)
    sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    s = float((sx * sy).sum())  # n_c - n_d
    n0 = n * (n - 1) / 2.0
    n1, n2 = float((sx == 0).sum()), float((sy == 0).sum())
    den = math.sqrt((n0 - n1) * (n0 - n2))
    if den == 0.0:
        return float("nan")
    return float(np.clip(s / den, -1.0, 1.0))


def rank_correlation(x, y, method: str = "spearman") -> float:
    """Spearman's rho or Kendall's tau-b (``method``: ``"spearman"`` or ``"kendall"``)."""
    if method == "spearman":
        return spearman(x, y)
    if method == "kendall":
        return kendall(x, y)
    raise ValueError(f"method={method!r} is not supported; accepted values: {METHODS}")


# ------------------------------------------------------------------------------------------------
# Bootstrap
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile-bootstrap confidence interval.

    Attributes:
        estimate: the statistic on the original values.
        low, high: the interval's end points.
        level: its nominal coverage (e.g. 0.95).
        n: number of values the statistic used (e.g. seeds).
        n_resamples: bootstrap replicates.
    """

    estimate: float
    low: float
    high: float
    level: float
    n: int
    n_resamples: int

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def degenerate(self) -> bool:
        """True when the interval has zero width (``low == high``, both finite): every bootstrap
        replicate gave the same value, so the interval says nothing about the uncertainty."""
        return math.isfinite(self.low) and math.isfinite(self.high) and self.low == self.high

    def __str__(self) -> str:
        text = f"{self:.2f}"
        return text + " (degenerate interval: every resample gave the same value)" if self.degenerate else text

    def __format__(self, spec: str) -> str:
        spec = spec or ".2f"
        return f"{self.estimate:{spec}} [{self.low:{spec}}, {self.high:{spec}}]"


_NAMED_STATS: dict[str, Callable[..., np.ndarray]] = {"mean": np.mean, "median": np.median}


def bootstrap_ci(
    values,
    statistic: str | Callable[[np.ndarray], float] = "mean",
    *,
    level: float = 0.95,
    n_resamples: int = 2000,
    seed: int,
) -> Interval:
    r"""Percentile-bootstrap confidence interval of ``statistic(values)``.

    Draws ``n_resamples`` samples of size :math:`m` with replacement from the :math:`m` finite
    values, evaluates the statistic on each, and returns the :math:`(1\mp\text{level})/2`
    quantiles of the replicates.

    Args:
        values: shape ``[m]`` (non-finite entries are dropped), e.g. one correlation per seed.
        statistic: ``"mean"``, ``"median"`` or a callable on a 1-d array.
        level: nominal coverage in (0, 1).
        n_resamples: number of bootstrap replicates (>= 1).
        seed: seed of the resampling (keyword-only).

    Returns:
        :class:`Interval` (all NaN when no finite value is left; ``low == high == estimate`` for
        a single value).
    """
    v = _vector("values", values)
    v = v[np.isfinite(v)]
    if not (isinstance(level, (int, float)) and 0.0 < level < 1.0):
        raise ValueError(f"level={level!r} is invalid; accepted: a float in (0, 1)")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ValueError(f"n_resamples={n_resamples!r} is invalid; accepted: an int >= 1")
    if isinstance(statistic, str):
        if statistic not in _NAMED_STATS:
            raise ValueError(
                f"statistic={statistic!r} is not supported; accepted: {sorted(_NAMED_STATS)} or a callable"
            )
        fn = _NAMED_STATS[statistic]
        vectorised = True
    elif callable(statistic):
        fn, vectorised = statistic, False
    else:
        raise TypeError(f"statistic must be a name or a callable, got {type(statistic).__name__}")
    m = len(v)
    if m == 0:
        nan = float("nan")
        return Interval(nan, nan, nan, float(level), 0, int(n_resamples))
    estimate = float(fn(v))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, m, size=(int(n_resamples), m))
    samples = v[idx]
    if vectorised:
        reps = fn(samples, axis=1)
    else:
        reps = np.array([float(fn(s)) for s in samples])
    alpha = 1.0 - level
    low, high = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return Interval(estimate, float(low), float(high), float(level), m, int(n_resamples))


# ------------------------------------------------------------------------------------------------
# Edge of stability
# ------------------------------------------------------------------------------------------------


def _check_lr_fraction(lr, fraction) -> None:
    V.positive("lr", lr)
    V.positive("fraction", fraction)


def edge_index(sharpness, lr: float, *, fraction: float = 0.9) -> int | None:
    r"""Index of the first measurement with sharpness :math:`\ge` ``fraction`` :math:`\cdot 2/\eta`.

    Args:
        sharpness: shape ``[n]``, in measurement order (NaN never counts as reaching it).
        lr: the step size :math:`\eta`.
        fraction: :math:`\phi` in :math:`s_t\ge\phi\cdot2/\eta`.

    Returns:
        The index, or None when the run never gets there.
    """
    _check_lr_fraction(lr, fraction)
    s = _vector("sharpness", sharpness)
    with np.errstate(invalid="ignore"):
        hit = np.flatnonzero(s >= fraction * 2.0 / lr)
    return int(hit[0]) if len(hit) else None


def before_edge(
    frame: pd.DataFrame, lr: float | None = None, *, fraction: float = 0.9, column: str = "sharpness"
) -> pd.DataFrame:
    r"""The rows of one run strictly before sharpness first reaches ``fraction`` :math:`\cdot2/\eta`.

    Args:
        frame: one run's record, rows in step order, with a ``column`` (sharpness) column and,
            unless ``lr`` is given, an ``lr`` column (its first value is used).
        lr: the step size (default: ``frame["lr"].iloc[0]``).
        fraction: see :func:`edge_index`.
        column: the sharpness column.

    Returns:
        A copy of the leading rows (all rows if the edge is never reached).
    """
    if column not in frame:
        raise ValueError(f"column={column!r} is not in the frame; columns: {list(frame.columns)}")
    if lr is None:
        if "lr" not in frame or len(frame) == 0:
            raise ValueError("lr=None needs a non-empty frame with an 'lr' column")
        lr = float(frame["lr"].iloc[0])
    i = edge_index(frame[column].to_numpy(), lr, fraction=fraction)
    return frame.iloc[: len(frame) if i is None else i].copy()


def rolling_correlation(x, y, window: int, method: str = "spearman", *, min_points: int | None = None) -> np.ndarray:
    r"""Rank correlation of :math:`(x, y)` in a centred window sliding along a run.

    Entry :math:`t` is the correlation over measurements
    :math:`[t-\lfloor w/2\rfloor,\ t-\lfloor w/2\rfloor+w)`; NaN where that window leaves the run
    or holds fewer than ``min_points`` finite pairs.

    Args:
        x, y: shape ``[n]`` (in step order).
        window: :math:`w`, number of measurements per window (>= 3).
        method: ``"spearman"`` or ``"kendall"``.
        min_points: default ``window`` (every pair finite); at least 3.

    Returns:
        float array ``[n]``.
    """
    x, y = _vector("x", x), _vector("y", y)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got shapes {x.shape} and {y.shape}")
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 3:
        raise ValueError(f"window={window!r} is invalid; accepted: an int >= 3")
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not supported; accepted values: {METHODS}")
    need = window if min_points is None else int(min_points)
    if need < 3 or need > window:
        raise ValueError(f"min_points={min_points!r} is invalid; accepted: an int in [3, window]")
    n, half = len(x), window // 2
    out = np.full(n, np.nan)
    for t in range(n):
        a = t - half
        b = a + window
        if a < 0 or b > n:
            continue
        xs, ys = x[a:b], y[a:b]
        if int((np.isfinite(xs) & np.isfinite(ys)).sum()) >= need:
            out[t] = rank_correlation(xs, ys, method)
    return out


@dataclass(frozen=True)
class EdgeSummary:
    r"""How the end of a full-batch run compares with the stability limit :math:`2/\eta`.

    Attributes:
        lr: :math:`\eta`; two_over_lr: :math:`2/\eta`.
        final_sharpness: median sharpness over the last ``tail`` fraction of the measurements.
        ratio: ``final_sharpness / two_over_lr`` (1 = exactly at the edge).
        max_sharpness: largest sharpness measured.
        edge_step: first step with sharpness :math:`\ge\phi\cdot2/\eta` (None: never).
        reached: whether the edge (fraction :math:`\phi`) was reached.
        fraction_at_edge: share of the measurements after ``edge_step`` within
            :math:`\pm` ``band`` of :math:`2/\eta` (NaN if never reached).
    """

    lr: float
    two_over_lr: float
    final_sharpness: float
    ratio: float
    max_sharpness: float
    edge_step: int | None
    reached: bool
    fraction_at_edge: float

    def as_dict(self) -> dict:
        return asdict(self)


def edge_summary(
    steps, sharpness, lr: float, *, fraction: float = 0.9, tail: float = 0.2, band: float = 0.2
) -> EdgeSummary:
    r"""Summarise one run's sharpness against :math:`2/\eta`.

    Args:
        steps: measurement steps, shape ``[n]``.
        sharpness: shape ``[n]``.
        lr: the step size.
        fraction: edge threshold :math:`\phi` (see :func:`edge_index`).
        tail: fraction in (0, 1] of the last measurements whose median is the final sharpness.
        band: relative half-width of the "at the edge" band.
    """
    st, s = _vector("steps", steps), _vector("sharpness", sharpness)
    if st.shape != s.shape or len(s) == 0:
        raise ValueError(f"steps and sharpness must be non-empty and of equal length, got {st.shape}, {s.shape}")
    if not (0 < tail <= 1):
        raise ValueError(f"tail={tail!r} is invalid; accepted: a float in (0, 1]")
    if not band > 0:
        raise ValueError(f"band={band!r} is invalid; accepted: a float > 0")
    i = edge_index(s, lr, fraction=fraction)
    limit = 2.0 / lr
    k = max(1, int(math.ceil(tail * len(s))))
    last = s[-k:]
    last = last[np.isfinite(last)]
    final = float(np.median(last)) if len(last) else float("nan")
    finite = s[np.isfinite(s)]
    at_edge = float("nan")
    if i is not None:
        after = s[i:]
        after = after[np.isfinite(after)]
        at_edge = float(np.mean(np.abs(after / limit - 1.0) <= band)) if len(after) else float("nan")
    return EdgeSummary(
        lr=float(lr),
        two_over_lr=limit,
        final_sharpness=final,
        ratio=final / limit,
        max_sharpness=float(finite.max()) if len(finite) else float("nan"),
        edge_step=None if i is None else int(st[i]),
        reached=i is not None,
        fraction_at_edge=at_edge,
    )


# ------------------------------------------------------------------------------------------------
# Tables over the runs of an experiment
# ------------------------------------------------------------------------------------------------


def _groups(df: pd.DataFrame, by: Sequence[str]):
    missing = [c for c in by if c not in df]
    if missing:
        raise ValueError(f"by={list(by)}: columns {missing} are not in the frame; columns: {list(df.columns)}")
    if not by:
        yield (), df
        return
    for key, g in df.groupby(list(by), sort=True, dropna=False):
        yield (key if isinstance(key, tuple) else (key,)), g


_WINDOWS = ("all", "before_edge", "before_peak", "after_peak")


def run_correlations(
    df: pd.DataFrame,
    *,
    x: str = "sharpness",
    ys: Sequence[str] = JACOBIAN_COLUMNS,
    by: Sequence[str] = ("seed",),
    method: str = "spearman",
    window: str = "all",
    fraction: float = 0.9,
    steps: tuple[int, int] | None = None,
) -> pd.DataFrame:
    r"""One rank correlation per run and Jacobian statistic.

    Args:
        df: an experiment's records (one row per measurement; ``step`` column; runs told apart
            by the ``by`` columns).
        x: the first variable (default ``"sharpness"``).
        ys: the second variables (default the four Jacobian statistics).
        by: columns identifying a run (e.g. ``("loss", "lr", "seed")``).
        method: ``"spearman"`` or ``"kendall"``.
        window: ``"all"`` (every measurement), ``"before_edge"`` (:func:`before_edge`; needs an
            ``lr`` column), ``"before_peak"`` (up to and including the measurement of largest
            ``x``) or ``"after_peak"`` (from that measurement on).
        fraction: edge threshold for ``window="before_edge"``.
        steps: optional ``(first, last)`` step range (inclusive) applied before the window.

    Returns:
        DataFrame with the ``by`` columns, ``statistic`` (the y column), ``rho`` (the correlation),
        ``n`` (measurements used), ``last_step`` (last step used) and ``method``.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not supported; accepted values: {METHODS}")
    if window not in _WINDOWS:
        raise ValueError(f"window={window!r} is not supported; accepted values: {_WINDOWS}")
    for c in [x, *ys, "step"]:
        if c not in df:
            raise ValueError(f"column {c!r} is not in the frame; columns: {list(df.columns)}")
    rows = []
    for key, g in _groups(df, by):
        g = g.sort_values("step")
        if steps is not None:
            g = g[(g["step"] >= steps[0]) & (g["step"] <= steps[1])]
        if window == "before_edge":
            g = before_edge(g, fraction=fraction, column=x) if len(g) else g
        elif window in ("before_peak", "after_peak") and len(g):
            vals = g[x].to_numpy(float)
            peak = int(np.nanargmax(vals)) if np.isfinite(vals).any() else len(g) - 1
            g = g.iloc[: peak + 1] if window == "before_peak" else g.iloc[peak:]
        for yc in ys:
            xs, yv = g[x].to_numpy(float), g[yc].to_numpy(float)
            ok = np.isfinite(xs) & np.isfinite(yv)
            rows.append(
                {
                    **dict(zip(by, key)),
                    "statistic": yc,
                    "rho": rank_correlation(xs, yv, method),
                    "n": int(ok.sum()),
                    "last_step": int(g["step"].max()) if len(g) else -1,
                    "method": method,
                }
            )
    return pd.DataFrame(rows)


def summarise_correlations(
    table: pd.DataFrame,
    *,
    by: Sequence[str] = ("statistic",),
    value: str = "rho",
    level: float = 0.95,
    n_resamples: int = 2000,
    seed: int,
) -> pd.DataFrame:
    """Mean correlation per group with a percentile-bootstrap interval over its runs.

    Args:
        table: output of :func:`run_correlations`.
        by: grouping columns (the runs within a group are resampled, e.g. the seeds).
        value: column to summarise.
        level, n_resamples, seed: see :func:`bootstrap_ci`.

    Returns:
        DataFrame with the ``by`` columns, ``mean``, ``low``, ``high``, ``runs`` (finite values).
    """
    if value not in table:
        raise ValueError(f"value={value!r} is not in the table; columns: {list(table.columns)}")
    rows = []
    for key, g in _groups(table, by):
        ci = bootstrap_ci(g[value].to_numpy(float), "mean", level=level, n_resamples=n_resamples, seed=seed)
        rows.append({**dict(zip(by, key)), "mean": ci.estimate, "low": ci.low, "high": ci.high, "runs": ci.n})
    return pd.DataFrame(rows)


def log_changes(frame: pd.DataFrame, columns: Sequence[str], start_step: int, end_step: int) -> dict[str, float]:
    r"""Natural-log change :math:`\log(q_{\text{end}}/q_{\text{start}})` of each column between two steps.

    The values at the measurements nearest to ``start_step`` and ``end_step`` are used (one run,
    with a ``step`` column). Non-positive or non-finite values give NaN.
    """
    if "step" not in frame or len(frame) == 0:
        raise ValueError("frame must be a non-empty record with a 'step' column")
    st = frame["step"].to_numpy()
    a = int(np.argmin(np.abs(st - start_step)))
    b = int(np.argmin(np.abs(st - end_step)))
    out = {}
    for c in columns:
        if c not in frame:
            raise ValueError(f"column {c!r} is not in the frame; columns: {list(frame.columns)}")
        q0, q1 = float(frame[c].iloc[a]), float(frame[c].iloc[b])
        ok = q0 > 0 and q1 > 0 and math.isfinite(q0) and math.isfinite(q1)
        out[c] = math.log(q1 / q0) if ok else float("nan")
    return out


def dominant_mediator(
    changes: dict[str, float], *, sharpness: str = "sharpness", jacobian: str = "jac_spectral_max"
) -> tuple[str | None, float, dict[str, float]]:
    r"""Which mediating factor best accounts for sharpness departing from the Jacobian.

    A heuristic read of Proposition A: at a fixed Jacobian, sharpness scales with
    :math:`\overline{\|C\|}` and with the feature norm, and Jacobian growth carried by the first
    layer's weights does not reach sharpness. With log changes :math:`\Delta` over a window (from
    :func:`log_changes`), the *decoupling* is :math:`r=\Delta\log s-\Delta\log\|Jf\|` and each
    factor's signed contribution is :math:`\sigma_m\Delta\log m` (sign from
    :data:`MEDIATOR_COLUMNS`). The dominant factor is the one whose contribution has the sign of
    :math:`r` and the largest size.

    Returns:
        ``(name or None, r, contributions)``; None when no factor moves in the direction of
        :math:`r`.
    """
    for c in (sharpness, jacobian):
        if c not in changes:
            raise ValueError(f"changes lacks {c!r}; keys: {sorted(changes)}")
    r = changes[sharpness] - changes[jacobian]
    contrib = {
        m: sign * changes[m] for m, sign in MEDIATOR_COLUMNS.items() if m in changes and math.isfinite(changes[m])
    }
    best, size = None, 0.0
    for m, v in contrib.items():
        if v * r > 0 and abs(v) > size:
            best, size = m, abs(v)
    return best, float(r), contrib


def value_when(frame: pd.DataFrame, column: str, *, at: str, threshold: float, below: bool = True) -> float:
    r"""Value of ``column`` at the first measurement where ``at`` crosses ``threshold``.

    Used to compare runs at equal progress, e.g. the Jacobian when the training loss first falls
    to a common level (``at="train_loss", below=True``), rather than at equal step counts.

    Args:
        frame: one run's record (rows in step order).
        column: the quantity to read.
        at: the column that defines the moment.
        threshold: the level.
        below: first row with ``frame[at] <= threshold`` (True) or ``>= threshold`` (False).

    Returns:
        The value, or NaN when the run never crosses.
    """
    for c in (column, at):
        if c not in frame:
            raise ValueError(f"column {c!r} is not in the frame; columns: {list(frame.columns)}")
    a = frame[at].to_numpy(float)
    with np.errstate(invalid="ignore"):
        hit = np.flatnonzero(a <= threshold if below else a >= threshold)
    return float(frame[column].iloc[hit[0]]) if len(hit) else float("nan")


# ------------------------------------------------------------------------------------------------
# Correlations across runs: which end-of-training quantity tracks the generalisation gap
# (added for the generalisation chapters: weight decay, SAM, batch size, regularisers, ...)
# ------------------------------------------------------------------------------------------------
#
# Each run of a grid gives one point (gap, sharpness, Jacobian, ...). A rank correlation over the
# runs says how well a quantity orders the runs by their gap. Its uncertainty is estimated with a
# **paired percentile bootstrap**: resample the runs (pairs are kept together) with replacement,
# recompute the correlation, take quantiles. Runs that share a configuration (seeds) are not
# independent; ``groups`` resamples whole groups instead (a cluster bootstrap), which is the
# more honest choice when a grid has few seeds per point.

__all__ += ["paired_bootstrap_ci", "correlation_difference_ci", "predictor_table"]


def _resample_indices(n: int, groups, n_resamples: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Index arrays of ``n_resamples`` bootstrap samples of ``n`` items (or of their groups)."""
    if groups is None:
        return list(rng.integers(0, n, size=(n_resamples, n)))
    labels = np.asarray(groups)
    uniq, inverse = np.unique(labels, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(uniq))]
    picks = rng.integers(0, len(uniq), size=(n_resamples, len(uniq)))
    return [np.concatenate([members[g] for g in row]) for row in picks]


def _rank_rows(a: np.ndarray) -> np.ndarray:
    """Average ranks (1..n, ties averaged) of each row of ``a`` (shape ``[B, n]``, finite)."""
    b, n = a.shape
    order = np.argsort(a, axis=1, kind="mergesort")
    s = np.take_along_axis(a, order, axis=1)
    idx = np.broadcast_to(np.arange(n), (b, n))
    new = np.ones((b, n), dtype=bool)
    new[:, 1:] = s[:, 1:] != s[:, :-1]
    last = np.ones((b, n), dtype=bool)
    last[:, :-1] = new[:, 1:]
    start = np.maximum.accumulate(np.where(new, idx, 0), axis=1)
    end = np.minimum.accumulate(np.where(last, idx, n - 1)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty((b, n))
    np.put_along_axis(ranks, order, (start + end) / 2.0 + 1.0, axis=1)
    return ranks


def _row_features(a: np.ndarray, method: str):
    """What a rank correlation needs from one variable, per row of ``a`` (shape ``[B, n]``):
    centred ranks and their squared norm (Spearman), or the pair signs and tie count (Kendall)."""
    if method == "spearman":
        r = _rank_rows(a)
        r -= r.mean(axis=1, keepdims=True)
        return r, (r * r).sum(axis=1)
    i, j = np.triu_indices(a.shape[1], k=1)
    sg = np.sign(a[:, i] - a[:, j]).astype(np.int8)
    n0 = a.shape[1] * (a.shape[1] - 1) / 2.0
    return sg, n0 - (sg == 0).sum(axis=1)


def _row_correlation(fa, fb) -> np.ndarray:
    """Rank correlation per row from two variables' :func:`_row_features` (NaN when undefined)."""
    (va, na), (vb, nb) = fa, fb
    num = (va * vb).sum(axis=1, dtype=np.float64)
    den = np.sqrt(na * nb)
    safe = np.where(den > 0, den, 1.0)
    return np.where(den > 0, np.clip(num / safe, -1.0, 1.0), np.nan)


def _rowwise_correlation(x: np.ndarray, y: np.ndarray, method: str) -> np.ndarray:
    """:func:`rank_correlation` of each row pair of ``x``, ``y`` (shape ``[B, n]``, finite), vectorised.

    Same conventions as :func:`spearman` / :func:`kendall`: NaN when ``n < 3`` or a row is constant.
    """
    if x.shape[1] < 3:
        return np.full(x.shape[0], np.nan)
    return _row_correlation(_row_features(x, method), _row_features(y, method))


def _resampled_pairwise(
    indices: list[np.ndarray], arrays: Sequence[np.ndarray], pairs: Sequence[tuple[int, int]], method: str
) -> list[np.ndarray]:
    """For each pair ``(p, q)``: ``rank_correlation(arrays[p][i], arrays[q][i], method)`` for every
    index array ``i``, vectorised over the resamples of equal length (in chunks, to bound the memory
    of Kendall's pair matrices); each variable's ranks or pair signs are computed once per chunk."""
    out = [np.empty(len(indices)) for _ in pairs]
    by_len: dict[int, list[int]] = {}
    for k, i in enumerate(indices):
        by_len.setdefault(len(i), []).append(k)
    used = sorted({v for pq in pairs for v in pq})
    for n, ks in by_len.items():
        if n < 3:
            for o in out:
                o[ks] = np.nan
            continue
        chunk = max(1, 4_000_000 // (n * n if method == "kendall" else n))
        for c in range(0, len(ks), chunk):
            part = ks[c : c + chunk]
            idx = np.stack([indices[k] for k in part])
            feats = {v: _row_features(arrays[v][idx], method) for v in used}
            for o, (p, q) in zip(out, pairs, strict=True):
                o[part] = _row_correlation(feats[p], feats[q])
    return out


def _resampled_correlations(indices: list[np.ndarray], x: np.ndarray, y: np.ndarray, method: str) -> np.ndarray:
    """``rank_correlation(x[i], y[i], method)`` for every index array ``i`` (see :func:`_resampled_pairwise`)."""
    return _resampled_pairwise(indices, (x, y), [(0, 1)], method)[0]


def _check_bootstrap_args(level, n_resamples) -> None:
    V.real("level", level, minimum=0, maximum=1, low_open=True, high_open=True)
    V.positive_int("n_resamples", n_resamples)


def _finite_columns(groups, *arrays) -> tuple[list[np.ndarray], np.ndarray | None]:
    arrs = [_vector(f"arrays[{i}]", a) for i, a in enumerate(arrays)]
    n = len(arrs[0])
    for i, a in enumerate(arrs[1:], 1):
        if len(a) != n:
            raise ValueError(f"all inputs must have the same length, got {n} and {len(a)} (input {i})")
    keep = np.ones(n, dtype=bool)
    for a in arrs:
        keep &= np.isfinite(a)
    g = None
    if groups is not None:
        g = np.asarray(groups)
        if g.shape != (n,):
            raise ValueError(f"groups must have shape ({n},) like the data, got {g.shape}")
        g = g[keep]
    return [a[keep] for a in arrs], g


def _interval(estimate: float, reps: np.ndarray, level: float, n: int, n_resamples: int) -> Interval:
    reps = reps[np.isfinite(reps)]
    if not math.isfinite(estimate) or len(reps) == 0:
        return Interval(float(estimate), float("nan"), float("nan"), float(level), n, int(n_resamples))
    alpha = 1.0 - level
    low, high = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return Interval(float(estimate), float(low), float(high), float(level), n, int(n_resamples))


def paired_bootstrap_ci(
    x, y, method: str = "kendall", *, groups=None, level: float = 0.95, n_resamples: int = 2000, seed: int
) -> Interval:
    r"""Rank correlation of paired samples with a paired percentile-bootstrap interval.

    Each replicate draws :math:`n` pairs :math:`(x_t,y_t)` with replacement (or, with ``groups``,
    draws the groups with replacement and keeps all their pairs) and recomputes the correlation;
    replicates where it is undefined (e.g. a resample of identical pairs) are dropped.

    Args:
        x, y: shape ``[n]`` (pairs with a non-finite entry are dropped first).
        method: ``"kendall"`` (tau-b) or ``"spearman"``.
        groups: optional labels ``[n]`` (e.g. the grid point of each run): resample whole groups.
        level: nominal coverage in (0, 1).
        n_resamples: bootstrap replicates (>= 1).
        seed: seed of the resampling (keyword-only).

    Returns:
        :class:`Interval` (``n`` = finite pairs used; NaN bounds when the correlation is undefined).
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not supported; accepted values: {METHODS}")
    _check_bootstrap_args(level, n_resamples)
    (x, y), g = _finite_columns(groups, x, y)
    est = rank_correlation(x, y, method)
    rng = np.random.default_rng(seed)
    reps = (
        _resampled_correlations(_resample_indices(len(x), g, int(n_resamples), rng), x, y, method)
        if len(x)
        else np.array([])
    )
    return _interval(est, reps, level, len(x), n_resamples)


def correlation_difference_ci(
    target, a, b, method: str = "kendall", *, groups=None, level: float = 0.95, n_resamples: int = 2000, seed: int
) -> Interval:
    r"""Difference :math:`r(\text{target},a)-r(\text{target},b)` of two rank correlations, bootstrapped.

    Both correlations are computed on the **same** resample of the runs in each replicate, so the
    interval accounts for their dependence (they share the target). Used to ask which of two
    quantities (e.g. the Jacobian and the sharpness) orders the runs more like their gap: an
    interval above 0 favours ``a``.

    Args:
        target, a, b: shape ``[n]`` (runs with a non-finite entry in any of them are dropped).
        method, groups, level, n_resamples, seed: see :func:`paired_bootstrap_ci`.

    Returns:
        :class:`Interval` of the difference.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not supported; accepted values: {METHODS}")
    _check_bootstrap_args(level, n_resamples)
    (t, a, b), g = _finite_columns(groups, target, a, b)

    def diff(i):
        return rank_correlation(t[i], a[i], method) - rank_correlation(t[i], b[i], method)

    everything = np.arange(len(t))
    est = diff(everything) if len(t) else float("nan")
    rng = np.random.default_rng(seed)
    reps = np.array([diff(i) for i in _resample_indices(len(t), g, int(n_resamples), rng)]) if len(t) else np.array([])
    return _interval(est, reps, level, len(t), n_resamples)


def predictor_table(
    frame: pd.DataFrame,
    target: str,
    predictors: Sequence[str],
    method: str = "kendall",
    *,
    group: str | Sequence[str] | None = None,
    level: float = 0.95,
    n_resamples: int = 2000,
    seed: int,
    control: str | None = None,
) -> pd.DataFrame:
    r"""Rank correlation of ``target`` with each predictor over the rows (runs) of ``frame``.

    Args:
        frame: one row per run (e.g. the end-of-training measurements of a grid).
        target: column to predict (e.g. ``"gap_loss"``).
        predictors: columns (e.g. ``["sharpness", "jac_spectral_max"]``), baselines included
            (e.g. ``"train_loss"``, ``"param_norm"``).
        method: ``"kendall"`` or ``"spearman"``.
        group: column(s) whose distinct values form the bootstrap clusters (None: resample rows).
        level, n_resamples, seed: see :func:`paired_bootstrap_ci` (the same seed for every row).
        control: optional column (e.g. ``"train_loss"``): adds the partial rank correlation of
            target and predictor given it (:func:`partial_rank_correlation`) with its bootstrap
            interval (same resampling scheme), and ``abs_estimate`` :math:`=|r|`. The partial
            correlation of the control itself is NaN.

    Returns:
        DataFrame with ``predictor``, ``estimate``, ``low``, ``high``, ``n``, ``method``; with
        ``control``, also ``abs_estimate``, ``partial``, ``partial_low``, ``partial_high``.
    """
    cols = [target, *predictors]
    if group is not None:
        cols += [group] if isinstance(group, str) else list(group)
    if control is not None:
        cols.append(control)
    for c in cols:
        if c not in frame:
            raise ValueError(f"column {c!r} is not in the frame; columns: {list(frame.columns)}")
    groups = None
    if group is not None:
        keys = frame[[group] if isinstance(group, str) else list(group)].astype(str)
        groups = keys.agg("|".join, axis=1).to_numpy()
    rows = []
    for p in predictors:
        ci = paired_bootstrap_ci(
            frame[target].to_numpy(float),
            frame[p].to_numpy(float),
            method,
            groups=groups,
            level=level,
            n_resamples=n_resamples,
            seed=seed,
        )
        row = {"predictor": p, "estimate": ci.estimate, "low": ci.low, "high": ci.high, "n": ci.n, "method": method}
        if control is not None:
            pc = partial_bootstrap_ci(
                frame[target].to_numpy(float),
                frame[p].to_numpy(float),
                frame[control].to_numpy(float),
                method,
                groups=groups,
                level=level,
                n_resamples=n_resamples,
                seed=seed,
            )
            row.update(
                {
                    "abs_estimate": abs(ci.estimate),
                    "partial": pc.estimate,
                    "partial_low": pc.low,
                    "partial_high": pc.high,
                }
            )
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------
# Sounder comparisons: |r| differences, partial correlations, time-trend nulls, effect sizes
# ------------------------------------------------------------------------------------------------
#
# Which of two quantities orders the runs more like their gap is a question about the *strength*
# of two correlations, |r_a| against |r_b|, not about their signed difference (a predictor with
# r = -0.9 orders the runs as well as one with r = +0.9). Two quantities that both follow the
# training loss can both correlate with the gap through it; the partial rank correlation given
# the training loss asks what is left. Two series that both rise during training correlate
# whatever their link; correlating their step-to-step changes removes the shared trend.

__all__ += [
    "compare_predictors",
    "partial_rank_correlation",
    "partial_bootstrap_ci",
    "trend_null_correlation",
    "ratio_ci",
    "difference_ci",
]


def _frame_groups(frame: pd.DataFrame, groups) -> np.ndarray | None:
    """Cluster labels from a column name, a list of column names or an array of labels."""
    if groups is None:
        return None
    if isinstance(groups, str) or (
        isinstance(groups, (list, tuple)) and groups and all(isinstance(g, str) for g in groups)
    ):
        names = [groups] if isinstance(groups, str) else list(groups)
        for c in names:
            if c not in frame:
                raise ValueError(f"groups={c!r} is not a column of the frame; columns: {list(frame.columns)}")
        return frame[names].astype(str).agg("|".join, axis=1).to_numpy()
    g = np.asarray(groups)
    if g.shape != (len(frame),):
        raise ValueError(f"groups has shape {g.shape}; accepted: a column name or labels of shape ({len(frame)},)")
    return g


def compare_predictors(
    frame: pd.DataFrame,
    target: str,
    a: str,
    b: str,
    method: str = "spearman",
    *,
    groups=None,
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    by: str = "abs",
) -> Interval:
    r"""Does predictor ``a`` order the runs by ``target`` better than ``b``? A paired cluster bootstrap.

    The statistic is :math:`D=|r(t,a)|-|r(t,b)|` (``by="abs"``: strength, whatever the sign) or
    :math:`D=r(t,a)-r(t,b)` (``by="signed"``: when the predicted sign is part of the claim), with
    :math:`r` Spearman's :math:`\rho` or Kendall's :math:`\tau_b` over the rows. Each replicate
    resamples the runs (or, with ``groups``, whole clusters of runs) **once** and computes both
    correlations on that same resample, so the interval accounts for their dependence (they share
    the target). An interval above 0 favours ``a``; one that contains 0 does not separate them.

    Args:
        frame: one row per run; columns ``target``, ``a``, ``b`` (rows with a non-finite entry in
            any of them are dropped).
        target, a, b: column names.
        method: ``"spearman"`` or ``"kendall"``.
        groups: None (resample rows), a column name or list of names (their distinct values are
            the clusters, e.g. the grid point of each seed), or labels of shape ``[len(frame)]``.
        n_resamples: bootstrap replicates (>= 1). seed: seed of the resampling.
        level: nominal coverage in (0, 1).
        by: ``"abs"`` or ``"signed"``.

    Returns:
        :class:`Interval` of :math:`D` (``n`` = rows used; :attr:`Interval.degenerate` when every
        replicate gave the same value).
    """
    V.one_of("by", by, ("abs", "signed"))
    V.one_of("method", method, METHODS)
    for c in (target, a, b):
        if c not in frame:
            raise ValueError(f"column {c!r} is not in the frame; columns: {list(frame.columns)}")
    _check_bootstrap_args(level, n_resamples)
    g = _frame_groups(frame, groups)
    (t, xa, xb), g = _finite_columns(g, *(frame[c].to_numpy(float) for c in (target, a, b)))
    f = np.abs if by == "abs" else (lambda r: r)
    if not len(t):
        return _interval(float("nan"), np.array([]), level, 0, n_resamples)
    est = float(f(rank_correlation(t, xa, method)) - f(rank_correlation(t, xb, method)))
    rng = np.random.default_rng(seed)
    idx = _resample_indices(len(t), g, int(n_resamples), rng)
    r_a, r_b = _resampled_pairwise(idx, (t, xa, xb), [(0, 1), (0, 2)], method)
    reps = f(r_a) - f(r_b)
    return _interval(est, reps, level, len(t), n_resamples)


def _partial_from(r_xy: float, r_xz: float, r_yz: float) -> float:
    den2 = (1.0 - r_xz * r_xz) * (1.0 - r_yz * r_yz)
    if not all(math.isfinite(r) for r in (r_xy, r_xz, r_yz)) or den2 <= 1e-12:
        # a variable that is (rank-)identical to the control has nothing left to correlate
        return float("nan")
    return float(np.clip((r_xy - r_xz * r_yz) / math.sqrt(den2), -1.0, 1.0))


def partial_rank_correlation(x, y, z, method: str = "spearman") -> float:
    r"""Rank correlation of ``x`` and ``y`` given ``z`` (e.g. gap and Jacobian given the training loss).

    Spearman: Pearson's partial correlation of the ranks, i.e. the correlation of the residuals of
    :math:`\operatorname{rank}(x)` and :math:`\operatorname{rank}(y)` after a least-squares fit on
    :math:`\operatorname{rank}(z)`, computed by the closed form

    .. math::
        \rho_{xy\cdot z}=\frac{\rho_{xy}-\rho_{xz}\rho_{yz}}{\sqrt{(1-\rho_{xz}^2)(1-\rho_{yz}^2)}}.

    Kendall: the same formula with :math:`\tau_b` (Kendall's partial tau).

    Args:
        x, y, z: shape ``[n]`` (triples with a non-finite entry are dropped).
        method: ``"spearman"`` or ``"kendall"``.

    Returns:
        The partial correlation in [-1, 1]; NaN with fewer than 4 finite triples, a constant
        variable, or when ``x`` or ``y`` is a monotone function of ``z``.
    """
    V.one_of("method", method, METHODS)
    (x, y, z), _ = _finite_columns(None, x, y, z)
    if len(x) < 4:
        return float("nan")
    return _partial_from(rank_correlation(x, y, method), rank_correlation(x, z, method), rank_correlation(y, z, method))


def partial_bootstrap_ci(
    x, y, z, method: str = "spearman", *, groups=None, level: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> Interval:
    """:func:`partial_rank_correlation` with a paired (cluster) percentile-bootstrap interval.

    Args:
        x, y, z: shape ``[n]``; groups: optional cluster labels ``[n]``; see :func:`paired_bootstrap_ci`.
    """
    V.one_of("method", method, METHODS)
    _check_bootstrap_args(level, n_resamples)
    (x, y, z), g = _finite_columns(groups, x, y, z)
    if not len(x):
        return _interval(float("nan"), np.array([]), level, 0, n_resamples)
    est = partial_rank_correlation(x, y, z, method)
    rng = np.random.default_rng(seed)
    idx = _resample_indices(len(x), g, int(n_resamples), rng)
    r_xy, r_xz, r_yz = _resampled_pairwise(idx, (x, y, z), [(0, 1), (0, 2), (1, 2)], method)
    den2 = (1.0 - r_xz * r_xz) * (1.0 - r_yz * r_yz)
    ok = np.isfinite(r_xy) & np.isfinite(den2) & (den2 > 1e-12)  # the conventions of _partial_from
    reps = np.where(ok, np.clip((r_xy - r_xz * r_yz) / np.sqrt(np.where(ok, den2, 1.0)), -1.0, 1.0), np.nan)
    reps[[len(i) < 4 for i in idx]] = np.nan  # as partial_rank_correlation: fewer than 4 triples
    return _interval(est, reps, level, len(x), n_resamples)


def trend_null_correlation(x, y, method: str = "spearman", *, kind: str = "differences") -> float:
    r"""Rank correlation of two series over training with their shared time trend removed.

    Two quantities that both grow during training correlate strongly whatever their link; this is
    the null that a within-run correlation has to beat.

    - ``kind="differences"``: correlate the first differences :math:`\Delta x_t=x_{t+1}-x_t` and
      :math:`\Delta y_t` (do they move *together step by step*?);
    - ``kind="detrended"``: correlate the residuals of least-squares lines :math:`x_t\approx\alpha+\beta t`
      and :math:`y_t\approx\gamma+\delta t` fitted on the measurement index :math:`t=0,\dots,n-1`.

    Args:
        x, y: shape ``[n]``, in time order (a non-finite value drops the differences or residuals
            that involve it).
        method: ``"spearman"`` or ``"kendall"``.
        kind: ``"differences"`` or ``"detrended"``.

    Returns:
        The correlation (NaN when fewer than 3 finite pairs remain or one side is constant).
    """
    V.one_of("method", method, METHODS)
    V.one_of("kind", kind, ("differences", "detrended"))
    x, y = _vector("x", x), _vector("y", y)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got shapes {x.shape} and {y.shape}")
    if kind == "differences":
        return rank_correlation(np.diff(x), np.diff(y), method)
    t = np.arange(len(x), dtype=float)

    def detrend(v):
        ok = np.isfinite(v)
        out = np.full_like(v, np.nan)
        if ok.sum() >= 2:
            beta, alpha = np.polyfit(t[ok], v[ok], 1)
            out[ok] = v[ok] - (alpha + beta * t[ok])
        return out

    return rank_correlation(detrend(x), detrend(y), method)


def _two_samples(a, b, paired: bool, groups):
    a, b = _vector("a", a), _vector("b", b)
    if paired:
        if a.shape != b.shape:
            raise ValueError(f"paired=True needs a and b of the same length, got {len(a)} and {len(b)}")
        (a, b), g = _finite_columns(groups, a, b)
        return a, b, g, None
    ga = gb = None
    if groups is not None:
        if not (isinstance(groups, tuple) and len(groups) == 2):
            raise ValueError("groups is invalid for paired=False; accepted: None or a tuple (labels of a, labels of b)")
        ga, gb = groups
    (a,), ga = _finite_columns(ga, a)
    (b,), gb = _finite_columns(gb, b)
    return a, b, ga, gb


def _two_sample_interval(stat, a, b, paired, groups, level, n_resamples, seed) -> Interval:
    """Percentile bootstrap of ``stat(a, b)``: pairs (or clusters of pairs) resampled together when
    ``paired``, otherwise each sample (or its clusters) resampled on its own."""
    _check_bootstrap_args(level, n_resamples)
    a, b, ga, gb = _two_samples(a, b, paired, groups)
    n = len(a) + (0 if paired else len(b))
    if len(a) == 0 or len(b) == 0:
        return _interval(float("nan"), np.array([]), level, n, n_resamples)
    est = stat(a, b)
    rng = np.random.default_rng(seed)
    if paired:
        reps = np.array([stat(a[i], b[i]) for i in _resample_indices(len(a), ga, int(n_resamples), rng)])
    else:
        ia = _resample_indices(len(a), ga, int(n_resamples), rng)
        ib = _resample_indices(len(b), gb, int(n_resamples), rng)
        reps = np.array([stat(a[i], b[j]) for i, j in zip(ia, ib, strict=True)])
    return _interval(est, reps, level, n, n_resamples)


def _ratio(a: np.ndarray, b: np.ndarray) -> float:
    mb = float(np.mean(b))
    return float(np.mean(a)) / mb if mb != 0.0 else float("nan")


def ratio_ci(
    a, b, *, paired: bool = False, groups=None, level: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> Interval:
    r"""Ratio of means :math:`\bar a/\bar b` with a (cluster) percentile-bootstrap interval.

    E.g. the mean final Jacobian at the largest step over that at the smallest: a ratio of 0.92
    with interval [0.85, 0.99] is "8 % lower", with its uncertainty.

    Args:
        a, b: shape ``[n_a]``, ``[n_b]`` (non-finite values dropped; with ``paired=True`` the same
            length, pairs dropped together).
        paired: resample the pairs :math:`(a_i, b_i)` together (e.g. one pair per seed) instead of
            each sample on its own.
        groups: cluster labels: shape ``[n]`` when paired, else None or a tuple ``(labels_a, labels_b)``.
        level, n_resamples, seed: see :func:`bootstrap_ci`.

    Returns:
        :class:`Interval` (``n`` = values used; replicates with :math:`\bar b=0` dropped; estimate NaN
        when :math:`\bar b=0`).
    """
    return _two_sample_interval(_ratio, a, b, paired, groups, level, n_resamples, seed)


def difference_ci(
    a, b, *, paired: bool = False, groups=None, level: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> Interval:
    r"""Difference of means :math:`\bar a-\bar b` with a (cluster) percentile-bootstrap interval.

    Args:
        a, b, paired, groups, level, n_resamples, seed: see :func:`ratio_ci`.

    Returns:
        :class:`Interval` of :math:`\bar a-\bar b`.
    """
    return _two_sample_interval(
        lambda u, v: float(np.mean(u) - np.mean(v)), a, b, paired, groups, level, n_resamples, seed
    )
