r"""Inference that stays honest with few clusters (3 to 9 seeds or grid points).

The flat-minima grids and the training-dynamics chapters have few independent units: 3, 5 or 9
*clusters* (seeds, grid points, runs). A percentile bootstrap over so few values covers far less
than its nominal level (about 83 % for a 95 % interval of a mean with 5 clusters, 76 % with 3;
see ``tests/test_inference.py``). This module holds the methods the verdicts use instead, each
validated by simulation at the chapters' designs:

* :func:`t_interval`: Student's :math:`t` interval of a mean over clusters,
  :math:`\bar v\pm t_{m-1,1-\alpha/2}\,s/\sqrt m`, exact for normal cluster values and close to
  nominal for moderately skewed ones; with fewer than ``min_clusters`` values it reports *too few*
  instead of an interval.
* :func:`permutation_correlation_test`: a rank correlation's one-sided permutation
  :math:`p`-value, exact (all :math:`m!` pairings) for :math:`m\le 8`, Monte Carlo with the
  :math:`(k+1)/(B+1)` correction above. It is valid at any :math:`m`; with :math:`m` values the
  smallest attainable :math:`p` is :math:`1/m!`.
* :func:`cross_run_trend_null`: does a within-run correlation beat a *shared trend*? Correlating
  first differences does not remove a saturating trend (two series with only a shared trend and
  1 % noise give :math:`\rho\approx0.5`). Here the null pairs run :math:`i`'s first series with run
  :math:`j`'s second series (:math:`i\ne j`, same setting and schedule): those share the trend and
  nothing else. The statistic is the mean within-run correlation
  :math:`T(\pi)=\frac1R\sum_r\rho(x_r,y_{\pi(r)})`; its :math:`p`-value is the share of
  permutations :math:`\pi` of the runs with :math:`T(\pi)\ge T(\mathrm{id})` (exact for
  :math:`R\le8`). With :math:`R` runs the smallest :math:`p` is :math:`1/R!`, so 3 runs can never
  reach 0.05: the result then says *too few runs to decide*.
* :func:`leave_one_out`: an outcome recomputed with each cluster left out in turn; *fragile* when
  any of them differs from the full-data outcome.
* :func:`operating_characteristics` and :func:`coverage`: the harness that measures a decision
  rule's false-agree rate and power, and an interval method's coverage, on simulated data with a
  known answer.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from . import analysis
from . import validation as V
from .display import fmt_num

__all__ = [
    "ClusterInterval",
    "t_interval",
    "PermutationTest",
    "permutation_correlation_test",
    "TrendNull",
    "cross_run_trend_null",
    "stratified_trend_null",
    "Fragility",
    "leave_one_out",
    "OperatingCharacteristics",
    "operating_characteristics",
    "coverage",
    "EXACT_PERMUTATION_LIMIT",
]

#: Largest number of units for which permutation tests enumerate all m! orderings (8! = 40,320).
EXACT_PERMUTATION_LIMIT = 8


def _finite_vector(name: str, values) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if v.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {v.shape}")
    return v[np.isfinite(v)]


def _check_level(level) -> None:
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.0 < level < 1.0:
        raise ValueError(f"level={level!r} is invalid; accepted: a float in (0, 1)")


def _check_unit(unit) -> None:
    if not isinstance(unit, str) or not unit.strip():
        raise ValueError(f"unit={unit!r} is invalid; accepted: the clusters' name in the plural, e.g. 'seeds'")


@dataclass(frozen=True)
class ClusterInterval:
    """A mean over clusters with an interval that names its unit and count.

    Attributes:
        estimate: the mean of the cluster values (NaN when none is finite).
        low, high: the interval's ends (NaN when ``too_few``).
        level: nominal coverage, e.g. 0.95.
        n: number of clusters used.
        unit: what a cluster is, plural ("seeds", "grid points").
        method: how the interval was made ("t").
        too_few: True when ``n`` is below the method's minimum: no interval is claimed.
    """

    estimate: float
    low: float
    high: float
    level: float
    n: int
    unit: str
    method: str
    too_few: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def excludes(self, value: float) -> bool:
        """True when the interval exists and ``value`` lies outside it."""
        return (not self.too_few) and not (self.low <= value <= self.high)

    def label(self, digits: int = 2) -> str:
        """``"0.42 [0.10, 0.74] (95 % t interval, 5 seeds)"``, or the estimate with *too few*."""
        if self.too_few:
            return f"{fmt_num(self.estimate, digits)} (too few {self.unit} for an interval: {self.n})"
        return (
            f"{fmt_num(self.estimate, digits)} [{fmt_num(self.low, digits)}, {fmt_num(self.high, digits)}]"
            f" ({self.level:.0%} {self.method} interval, {self.n} {self.unit})"
        ).replace("%", " %", 1)


def t_interval(values, *, unit: str, level: float = 0.95, min_clusters: int = 3) -> ClusterInterval:
    r"""Student's :math:`t` interval of the mean of one value per cluster.

    :math:`\bar v\pm t_{m-1,\,1-\alpha/2}\,s/\sqrt m` with :math:`s` the sample standard
    deviation (``ddof=1``) of the :math:`m` finite values.

    Args:
        values: shape ``[m]``, one value per cluster (non-finite values are dropped).
        unit: the clusters' name in the plural ("seeds", "grid points").
        level: nominal coverage in (0, 1).
        min_clusters: below this many finite values no interval is given (``too_few``); at least 2.

    Returns:
        :class:`ClusterInterval`. All values equal gives a zero-width interval at the mean.
    """
    _check_level(level)
    _check_unit(unit)
    if isinstance(min_clusters, bool) or not isinstance(min_clusters, int) or min_clusters < 2:
        raise ValueError(f"min_clusters={min_clusters!r} is invalid; accepted: an int >= 2")
    v = _finite_vector("values", values)
    m = len(v)
    nan = float("nan")
    estimate = float(v.mean()) if m else nan
    if m < min_clusters:
        return ClusterInterval(estimate, nan, nan, float(level), m, unit, "t", True)
    half = float(stats.t.ppf(0.5 + level / 2, m - 1)) * float(v.std(ddof=1)) / math.sqrt(m)
    return ClusterInterval(estimate, estimate - half, estimate + half, float(level), m, unit, "t", False)


@dataclass(frozen=True)
class PermutationTest:
    """A one-sided permutation test of a statistic.

    Attributes:
        estimate: the observed statistic.
        p_value: share of orderings at least as extreme (the observed one included).
        n: number of units permuted.
        n_permutations: orderings used (``n!`` when exact).
        exact: True when every ordering was enumerated.
        min_p: the smallest p-value this design can give (``1/n!`` exact, ``1/(B+1)`` Monte Carlo).
    """

    estimate: float
    p_value: float
    n: int
    n_permutations: int
    exact: bool
    min_p: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def can_reach(self, alpha: float) -> bool:
        """True when the design can give ``p <= alpha`` at all."""
        return self.min_p <= alpha


def _orderings(n: int, n_permutations: int, seed: int) -> tuple[np.ndarray, bool]:
    """Row-wise permutations of ``range(n)``: all of them (identity first) or a random sample."""
    if n <= EXACT_PERMUTATION_LIMIT:
        return np.array(list(itertools.permutations(range(n))), dtype=np.int64), True
    rng = np.random.default_rng(seed)
    return np.argsort(rng.random((n_permutations, n)), axis=1), False


def _permuted_correlations(x: np.ndarray, y: np.ndarray, orders: np.ndarray, method: str) -> np.ndarray:
    """``rank_correlation(x, y[order])`` for every row of ``orders`` (shape ``[B, m]``)."""
    if method == "spearman":
        rx = analysis.rankdata(x)
        ry = analysis.rankdata(y)[orders]
        rx = rx - rx.mean()
        ry = ry - ry.mean(axis=1, keepdims=True)
        denom = np.sqrt((rx**2).sum() * (ry**2).sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            return (ry @ rx) / denom
    return np.array([analysis.rank_correlation(x, y[o], method) for o in orders])


def _one_sided_p(observed: float, null: np.ndarray, alternative: str, exact: bool) -> float:
    # a small tolerance so that orderings tied with the observed one (floating-point sums) count
    tol = 1e-12 * max(1.0, abs(observed))
    hits = int(np.sum(null >= observed - tol)) if alternative == "greater" else int(np.sum(null <= observed + tol))
    if exact:
        return hits / len(null)
    return (hits + 1) / (len(null) + 1)


def permutation_correlation_test(
    x,
    y,
    *,
    method: str = "spearman",
    alternative: str = "greater",
    n_permutations: int = 9999,
    seed: int,
) -> PermutationTest:
    r"""One-sided permutation test of a rank correlation between paired values.

    Under :math:`H_0` (no association) every pairing of the :math:`x` with the :math:`y` is equally
    likely, so the :math:`p`-value is the share of pairings :math:`\pi` with
    :math:`\rho(x, y_\pi)\ge\rho(x,y)` (``alternative="greater"``) or :math:`\le` (``"less"``).
    Exact for :math:`m\le8` (every pairing), Monte Carlo with :math:`(k+1)/(B+1)` above.

    Args:
        x, y: shape ``[m]``, paired (pairs with a non-finite value are dropped).
        method: ``"spearman"`` or ``"kendall"``.
        alternative: ``"greater"`` (positive association) or ``"less"``.
        n_permutations: Monte Carlo orderings when :math:`m>8`.
        seed: seed of the Monte Carlo orderings (keyword-only).

    Returns:
        :class:`PermutationTest` (``p_value`` NaN with fewer than 3 pairs).
    """
    V.one_of("method", method, analysis.METHODS)
    V.one_of("alternative", alternative, ("greater", "less"))
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, int) or n_permutations < 1:
        raise ValueError(f"n_permutations={n_permutations!r} is invalid; accepted: an int >= 1")
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-d of the same length, got shapes {x.shape} and {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    m = len(x)
    observed = analysis.rank_correlation(x, y, method)
    if m < 3 or not math.isfinite(observed):
        return PermutationTest(observed, float("nan"), m, 0, True, float("nan"))
    orders, exact = _orderings(m, n_permutations, seed)
    null = _permuted_correlations(x, y, orders, method)
    p = _one_sided_p(observed, null, alternative, exact)
    min_p = 1.0 / len(orders) if exact else 1.0 / (len(orders) + 1)
    return PermutationTest(float(observed), float(p), m, len(orders), exact, float(min_p))


@dataclass(frozen=True)
class TrendNull:
    """The cross-run trend null of :func:`cross_run_trend_null`.

    Attributes:
        observed: mean within-run correlation :math:`T(\\mathrm{id})`.
        null_mean: mean of :math:`T(\\pi)` over the orderings that pair no run with itself
            (the correlation two runs' series reach through their shared trend alone).
        p_value: share of orderings with :math:`T(\\pi)\\ge T(\\mathrm{id})`.
        p_lower: share of orderings with :math:`T(\\pi)\\le T(\\mathrm{id})` (the other direction).
        n_runs: runs paired.
        n_steps: common length of the series used.
        min_p: smallest attainable p-value, :math:`1/R!`.
        exact: every ordering enumerated.
    """

    observed: float
    null_mean: float
    p_value: float
    p_lower: float
    n_runs: int
    n_steps: int
    min_p: float
    exact: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def numbers(self) -> dict[str, float]:
        """The inputs of the :class:`~sharpjac.claims.Permutation` rule."""
        return {"p_greater": self.p_value, "p_less": self.p_lower, "min_p": self.min_p}

    def beats_trend(self, alpha: float = 0.05) -> bool | None:
        """True/False when the design can decide at ``alpha``; None when it cannot (too few runs)."""
        if not (self.min_p <= alpha) or not math.isfinite(self.p_value):
            return None
        return bool(self.p_value <= alpha)


def _correlation_matrix(xs: Sequence, ys: Sequence, method: str) -> tuple[np.ndarray, int]:
    """``M[i, j] = rho(x_i, y_j)`` over the common length of one setting's series, and that length."""
    if len(xs) != len(ys):
        raise ValueError(f"xs and ys must hold the same number of runs, got {len(xs)} and {len(ys)}")
    if len(xs) < 2:
        raise ValueError(f"a trend null needs at least 2 runs per setting, got {len(xs)}")
    series = [np.asarray(v, dtype=float) for v in (*xs, *ys)]
    if any(v.ndim != 1 for v in series):
        raise ValueError("every series must be one-dimensional")
    R = len(xs)
    n = min(len(v) for v in series)
    X = np.stack([v[:n] for v in series[:R]])
    Y = np.stack([v[:n] for v in series[R:]])
    return np.array([[analysis.rank_correlation(X[i], Y[j], method) for j in range(R)] for i in range(R)]), n


def cross_run_trend_null(
    xs: Sequence, ys: Sequence, *, method: str = "spearman", n_permutations: int = 9999, seed: int = 0
) -> TrendNull:
    r"""Is the within-run co-movement of two series more than a trend shared by every run?

    ``xs[r]`` and ``ys[r]`` are two quantities measured on the same schedule in run :math:`r` of one
    setting (for example sharpness and the Jacobian norm over steps, one run per seed). Let
    :math:`M_{ij}=\rho(x_i,y_j)` over the common steps. The statistic is
    :math:`T(\pi)=\frac1R\sum_i M_{i\pi(i)}`, the observed value :math:`T(\mathrm{id})`; under the
    null that run :math:`i`'s :math:`y` is no more tied to run :math:`i`'s :math:`x` than to any
    other run's, the runs' labels are exchangeable and the :math:`p`-value is the share of
    orderings with :math:`T(\pi)\ge T(\mathrm{id})`. Series that share only a trend give
    :math:`M_{ii}\approx M_{ij}` and pass at most at the nominal rate (tested by simulation).

    Args:
        xs, ys: ``R`` sequences each (runs), every series 1-d; they are cut to the shortest length.
        method: ``"spearman"`` or ``"kendall"``.
        n_permutations: Monte Carlo orderings when :math:`R>8`.
        seed: seed of the Monte Carlo orderings.

    Returns:
        :class:`TrendNull`.
    """
    return stratified_trend_null([(xs, ys)], method=method, n_permutations=n_permutations, seed=seed)


def stratified_trend_null(
    settings: Sequence[tuple[Sequence, Sequence]],
    *,
    method: str = "spearman",
    n_permutations: int = 9999,
    seed: int = 0,
) -> TrendNull:
    r""":func:`cross_run_trend_null` over several settings at once, runs permuted within a setting.

    Runs of different settings (step sizes, losses) have different trends, so only runs of the same
    setting are exchangeable under the null. Setting :math:`g` has :math:`R_g` runs and matrix
    :math:`M^{(g)}` (series cut to that setting's common length); the statistic is the mean
    within-run correlation over all runs, :math:`T(\pi)=\frac1{\sum_gR_g}\sum_g\sum_i
    M^{(g)}_{i\pi_g(i)}`, and the null permutes the runs of each setting independently: exactly
    when :math:`\prod_gR_g!\le 8!`, else ``n_permutations`` Monte Carlo draws.

    Args:
        settings: ``[(xs, ys), ...]``, one pair per setting, each as in :func:`cross_run_trend_null`.
        method, n_permutations, seed: as there.

    Returns:
        :class:`TrendNull` with ``n_runs`` the runs over all settings and ``n_steps`` the shortest
        common length.
    """
    V.one_of("method", method, analysis.METHODS)
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, int) or n_permutations < 1:
        raise ValueError(f"n_permutations={n_permutations!r} is invalid; accepted: an int >= 1")
    if not settings:
        raise ValueError("stratified_trend_null needs at least one setting")
    mats, lengths = zip(*(_correlation_matrix(xs, ys, method) for xs, ys in settings))
    sizes = [len(m) for m in mats]
    total = sum(sizes)
    observed = float(sum(np.trace(m) for m in mats) / total)
    n_orderings = math.prod(math.factorial(r) for r in sizes)
    exact = n_orderings <= math.factorial(EXACT_PERMUTATION_LIMIT)
    if exact:
        per_setting = [np.array(list(itertools.permutations(range(r))), dtype=np.int64) for r in sizes]
        combos = np.array(list(itertools.product(*[range(len(o)) for o in per_setting])), dtype=np.int64)
        picks = [per_setting[g][combos[:, g]] for g in range(len(sizes))]
    else:
        rng = np.random.default_rng(seed)
        picks = [np.argsort(rng.random((n_permutations, r)), axis=1) for r in sizes]
    T = sum(m[np.arange(r), o].sum(axis=1) for m, r, o in zip(mats, sizes, picks)) / total
    moved = np.all(np.concatenate([o != np.arange(r) for r, o in zip(sizes, picks)], axis=1), axis=1)
    null_mean = float(T[moved].mean()) if moved.any() else float("nan")
    n = int(min(lengths))
    nan = float("nan")
    if not math.isfinite(observed) or not np.all(np.isfinite(T)):
        return TrendNull(observed, null_mean, nan, nan, total, n, nan, exact)
    p = _one_sided_p(observed, T, "greater", exact)
    p_low = _one_sided_p(observed, T, "less", exact)
    min_p = 1.0 / len(T) if exact else 1.0 / (len(T) + 1)
    return TrendNull(observed, null_mean, float(p), float(p_low), total, n, float(min_p), exact)


@dataclass(frozen=True)
class Fragility:
    """An outcome recomputed with each cluster left out.

    Attributes:
        outcome: the outcome on every cluster.
        left_out: ``{cluster: outcome without it}``.
        fragile: True when any left-out outcome differs from ``outcome``.
        flips: the clusters whose removal changes the outcome.
    """

    outcome: Hashable
    left_out: Mapping[Hashable, Hashable]
    fragile: bool
    flips: tuple


def leave_one_out(decide: Callable[[Sequence[Hashable]], Hashable], clusters: Sequence[Hashable]) -> Fragility:
    """Recompute ``decide(kept clusters)`` leaving out each cluster in turn.

    Args:
        decide: maps the clusters kept (a tuple, in the given order) to an outcome (e.g.
            ``"agree"``); it selects the data of those clusters itself.
        clusters: the cluster labels (seeds, grid points), at least 2, distinct.

    Returns:
        :class:`Fragility`.
    """
    clusters = tuple(clusters)
    if len(clusters) < 2:
        raise ValueError(f"leave_one_out needs at least 2 clusters, got {len(clusters)}")
    if len(set(clusters)) != len(clusters):
        raise ValueError(f"clusters must be distinct, got {clusters}")
    full = decide(clusters)
    left = {c: decide(tuple(k for k in clusters if k != c)) for c in clusters}
    flips = tuple(c for c, o in left.items() if o != full)
    return Fragility(full, left, bool(flips), flips)


@dataclass(frozen=True)
class OperatingCharacteristics:
    """How often a decision rule says *agree* on simulated data with a known answer.

    Attributes:
        false_agree: share of trials where the claim is false and the rule says agree.
        power: share of trials where the claim is true and the rule says agree.
        n_trials: trials per case.
        false_agree_se, power_se: their binomial standard errors.
    """

    false_agree: float
    power: float
    n_trials: int
    false_agree_se: float
    power_se: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _share(hits: int, n: int) -> tuple[float, float]:
    p = hits / n
    return p, math.sqrt(max(p * (1 - p), 1.0 / n) / n)


def operating_characteristics(
    rule: Callable[[Any], bool],
    simulate_false: Callable[[np.random.Generator], Any],
    simulate_true: Callable[[np.random.Generator], Any],
    *,
    n_trials: int = 1000,
    seed: int,
) -> OperatingCharacteristics:
    """Measure a rule's false-agree rate and power by simulation.

    Args:
        rule: data -> True (a Python or NumPy bool) when it says *agree*; anything else, a NaN or
            ``None`` included, counts as not agreeing.
        simulate_false: rng -> one data set at the chapter's design where the claim is false.
        simulate_true: rng -> one data set where the claim is true.
        n_trials: data sets per case.
        seed: seed of the simulation.
    """
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"n_trials={n_trials!r} is invalid; accepted: an int >= 1")
    rng = np.random.default_rng(seed)

    def says_agree(data) -> bool:
        answer = rule(data)
        return isinstance(answer, (bool, np.bool_)) and bool(answer)

    fa = sum(says_agree(simulate_false(rng)) for _ in range(n_trials))
    pw = sum(says_agree(simulate_true(rng)) for _ in range(n_trials))
    (fa_p, fa_se), (pw_p, pw_se) = _share(fa, n_trials), _share(pw, n_trials)
    return OperatingCharacteristics(fa_p, pw_p, n_trials, fa_se, pw_se)


def coverage(
    interval: Callable[[np.ndarray], ClusterInterval | analysis.Interval],
    simulate: Callable[[np.random.Generator], np.ndarray],
    true_value: float,
    *,
    n_trials: int = 2000,
    seed: int,
) -> float:
    """Share of simulated data sets whose interval contains ``true_value``.

    An interval that declines to exist (``too_few``) counts as not covering, so a method cannot
    buy coverage by abstaining.
    """
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"n_trials={n_trials!r} is invalid; accepted: an int >= 1")
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(n_trials):
        iv = interval(simulate(rng))
        if getattr(iv, "too_few", False):
            continue
        hits += bool(iv.low <= true_value <= iv.high)
    return hits / n_trials
