r"""Statistics shared by the six flat-minima chapters: which end-of-run quantity follows the gap.

* :func:`final_measurements`: the last measurement of each run;
* :func:`gap_predictors`: rank correlations of the gaps with the :data:`PREDICTORS` and
  :data:`BASELINES` over all runs (:func:`sharpjac.analysis.predictor_table`, cluster bootstrap),
  shown in the chapters but deciding no claim;
* :func:`paired_values` and :func:`paired_effect`: the effect of an intervention, paired by seed
  (and any other labels), with a :math:`t` interval over seeds;
* per-seed statistics (:func:`seed_effects`, :func:`seed_correlations`, :func:`jacobian_margin`),
  the claims decided from them (:func:`decide`, a t interval over seeds: each seed is one replicate
  of the grid with its own training subset) and their known answers (:func:`register_known_answer`,
  one simulator :func:`simulate_final`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ._chapter import plural

__all__ = [
    "PREDICTORS",
    "BASELINES",
    "GAPS",
    "final_measurements",
    "paired_values",
    "paired_effect",
    "gap_predictors",
    "effects_by",
    "strongest",
    "METHOD_WORDS",
    "check_choice",
    "n_resamples_for",
    "predictor_kind",
    "intervention_effects",
    "ratio_text",
    "comparison_words",
    "loss_level_for",
    "at_loss_level",
    "corr_labels",
    "labelled",
]

#: End-of-training quantities the flat-minima chapters compare as predictors of the gap.
PREDICTORS = ("sharpness", "jac_spectral_max", "jac_spectral_mean", "jac_frobenius_max", "jac_frobenius_mean")
#: Baseline predictors beside them: they need neither the Hessian nor the input Jacobian.
BASELINES = ("train_loss", "param_norm", "logit_norm", "margin")

#: The two generalisation gaps a chapter may choose.
GAPS = ("gap_loss", "gap_acc")


def _is_num(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def final_measurements(records: pd.DataFrame, by=None) -> pd.DataFrame:
    """The last measurement of each run (one row per grid point and seed).

    Args:
        records: output of :func:`run_grid` (or any records with ``step`` and the grid labels).
        by: columns identifying a run (default: the grid labels, i.e. the columns before
            ``step``).

    Returns:
        DataFrame, one row per run, in grid order, index reset.
    """
    if "step" not in records:
        raise ValueError(f"records need a 'step' column; columns: {list(records.columns)}")
    if by is None:
        cols = list(records.columns)
        by = cols[: cols.index("step")]
    by = list(by)
    missing = [c for c in by if c not in records]
    if missing:
        raise ValueError(f"by={by}: columns {missing} are not in the records")
    if not by:
        raise ValueError("final_measurements needs at least one column identifying the runs (by=...)")
    idx = records.groupby(by, sort=False, dropna=False)["step"].idxmax()
    return records.loc[idx.to_numpy()].reset_index(drop=True)


def paired_values(
    final: pd.DataFrame, column: str, treated: dict[str, Any], control: dict[str, Any], *, pair_on=("seed",)
) -> tuple[np.ndarray, np.ndarray]:
    r"""The values of ``column`` for the treated and the control runs, aligned pair by pair.

    The runs matching every label of ``treated`` (e.g. ``{"weight_decay": 0.003}``) are paired
    with those matching ``control`` (e.g. ``{"weight_decay": 0.0}``) that share the values of
    ``pair_on`` (e.g. the seed, or the learning rate and the seed). The paired difference
    :math:`a_k-b_k` (or :math:`\log a_k-\log b_k`) is then the effect of the intervention on run
    pair :math:`k`, to be summarised by :func:`sharpjac.analysis.difference_ci` with ``paired=True``.

    Args:
        final: one row per run (:func:`final_measurements`), with the label and ``pair_on`` columns.
        column: the measured quantity.
        treated, control: label column -> value (floats compared with a relative tolerance of 1e-9).
        pair_on: columns that identify a pair (each pair must be unique on both sides).

    Returns:
        ``(a, b)``, float arrays of shape ``[n_pairs]`` in the order of ``pair_on`` (pairs missing a
        side are dropped).
    """
    pair_on = [pair_on] if isinstance(pair_on, str) else list(pair_on)
    for c in [column, *pair_on, *treated, *control]:
        if c not in final:
            raise ValueError(f"column {c!r} is not in the frame; columns: {list(final.columns)}")

    def select(labels: dict[str, Any]) -> pd.DataFrame:
        keep = np.ones(len(final), dtype=bool)
        for k, v in labels.items():
            col = final[k]
            if _is_num(v) and not isinstance(v, bool):
                keep &= np.isclose(col.to_numpy(float), float(v), rtol=1e-9, atol=0.0)
            else:
                keep &= (col == v).to_numpy()
        part = final.loc[keep, [*pair_on, column]]
        if part.duplicated(pair_on).any():
            raise ValueError(f"labels {labels} select several runs per {pair_on}; accepted: one run per pair")
        return part

    both = select(treated).merge(select(control), on=pair_on, suffixes=("_a", "_b")).sort_values(pair_on)
    return both[f"{column}_a"].to_numpy(float), both[f"{column}_b"].to_numpy(float)


def gap_predictors(
    final: pd.DataFrame,
    gaps,
    predictors,
    method: str,
    *,
    group,
    n_resamples: int,
    seed: int,
    control: str | None = "train_loss",
) -> pd.DataFrame:
    """:func:`sharpjac.analysis.predictor_table` for several gaps, stacked (a ``gap`` column first).

    Args:
        final: one row per run. gaps: target columns (e.g. ``("gap_loss", "gap_acc")``).
        predictors: columns (e.g. ``PREDICTORS + BASELINES``). method: ``"spearman"``/``"kendall"``.
        group: the cluster columns (the grid labels without the seed). n_resamples, seed: bootstrap.
        control: partial correlations given this column (None: none; the control's own row is NaN).

    Returns:
        one row per (gap, predictor): ``gap, predictor, estimate, low, high, n, method`` and, with
        ``control``, ``abs_estimate, partial, partial_low, partial_high``.
    """
    from .. import analysis

    parts = []
    for g in [gaps] if isinstance(gaps, str) else list(gaps):
        t = analysis.predictor_table(
            final, g, list(predictors), method, group=group, n_resamples=n_resamples, seed=seed, control=control
        )
        t.insert(0, "gap", g)
        parts.append(t)
    return pd.concat(parts, ignore_index=True)


def paired_effect(
    final: pd.DataFrame,
    column: str,
    treated: dict[str, Any],
    control: dict[str, Any],
    *,
    pair_on=("seed",),
    log: bool = False,
):
    r"""Mean paired change of ``column`` from ``control`` to ``treated``, a :math:`t` interval over seeds.

    Per seed :math:`s`, the mean over its pairs (:func:`seed_effects`) of :math:`a_{sk}-b_{sk}`
    (``log=False``) or :math:`\log a_{sk}-\log b_{sk}` (``log=True``: the log of the geometric-mean
    ratio); the estimate is their mean over seeds, the interval Student's :math:`t` over the seeds
    (:func:`sharpjac.inference.t_interval`; NaN below 3 seeds). Each seed is one replicate of the
    grid, so the seed is the unit.

    Returns:
        :class:`sharpjac.inference.ClusterInterval` (``estimate, low, high, n``), on the log scale
        with ``log``.
    """
    return seed_interval(seed_effects(final, column, treated, control, log=log, pair_on=pair_on))


#: How the chapters name the two rank correlations.
METHOD_WORDS = {"spearman": "Spearman's ρ", "kendall": "Kendall's τ_b"}


def check_choice(name: str, value, accepted) -> None:
    """One-line ValueError naming the parameter and the accepted values when ``value`` is not one of them."""
    if value not in tuple(accepted):
        raise ValueError(f"{name}={value!r}; accepted: {', '.join(repr(a) for a in accepted)}")


def n_resamples_for(preset: str) -> int:
    """Bootstrap replicates of the chapters: 200 at ``smoke`` (a quick check), 2000 otherwise."""
    return 200 if preset == "smoke" else 2000


def effects_by(
    final: pd.DataFrame,
    by: str,
    columns: dict[str, bool],
    treated: dict[str, Any],
    control: dict[str, Any],
    *,
    pair_on=("seed",),
) -> pd.DataFrame:
    r""":func:`paired_effect` of several columns within each value of ``by`` (one row per value).

    Args:
        final: one row per run. by: the column held fixed (e.g. ``"lr"``).
        columns: column -> ``log``; a logged column is reported as the geometric-mean ratio
            :math:`\exp(\overline{\log a-\log b})` with its interval exponentiated, a plain one as
            the mean change.
        treated, control, pair_on: see :func:`paired_effect`.

    Returns:
        ``by`` and, per column ``c``, ``c``, ``c_low``, ``c_high``; rows in sorted order of ``by``.
    """
    if by not in final:
        raise ValueError(f"by={by!r} is not a column; columns: {list(final.columns)}")
    rows = []
    for value in sorted(final[by].unique()):
        sub = final[final[by] == value]
        row: dict[str, Any] = {by: value}
        for col, log in columns.items():
            iv = paired_effect(sub, col, treated, control, pair_on=pair_on, log=log)
            f = np.exp if log else float
            row.update({col: f(iv.estimate), f"{col}_low": f(iv.low), f"{col}_high": f(iv.high)})
        rows.append(row)
    return pd.DataFrame(rows)


def strongest(table: pd.DataFrame, column: str = "estimate") -> pd.Series:
    """The row of a predictor table (indexed by predictor) with the largest ``|column|`` (first on ties)."""
    return table.assign(_a=table[column].abs()).sort_values("_a", ascending=False).iloc[0].drop("_a")


def predictor_kind(column: str) -> str:
    """``"sharpness"``, ``"jacobian"`` (a ``jac*`` column) or ``"baseline"``: the colour family of a predictor."""
    if column == "sharpness":
        return "sharpness"
    return "jacobian" if column.startswith("jac") else "baseline"


def intervention_effects(
    final: pd.DataFrame,
    interventions: dict[str, dict[str, Any]],
    control: dict[str, Any],
    columns: dict[str, tuple[str, bool]],
    *,
    pair_on=("seed",),
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """:func:`paired_effect` of several interventions against one control, on several columns.

    Args:
        final: one row per run. interventions: name -> treated labels. control: the control's labels.
        columns: column -> ``(short name, log)``; a logged column is reported as a ratio (the
            exponentiated mean log ratio and interval), a plain one as the mean change.
        pair_on: see :func:`paired_effect`.

    Returns:
        ``(table, intervals)``: ``table`` has one row per intervention (``intervention`` and, per
        column, ``short``, ``short_low``, ``short_high``); ``intervals[name][column]`` is the
        :class:`~sharpjac.inference.ClusterInterval` (log scale for a logged column).
    """
    rows, ivs = [], {}
    for name, treated in interventions.items():
        row: dict[str, Any] = {"intervention": name}
        ivs[name] = {}
        for col, (short, log) in columns.items():
            iv = paired_effect(final, col, treated, control, pair_on=pair_on, log=log)
            ivs[name][col] = iv
            f = np.exp if log else float
            row.update({short: f(iv.estimate), f"{short}_low": f(iv.low), f"{short}_high": f(iv.high)})
        rows.append(row)
    return pd.DataFrame(rows), ivs


def ratio_text(iv) -> str:
    """A log-scale interval over seeds as a ratio: ``"1.234 times (95 % t interval [1.100, 1.400], 5 seeds)"``.

    Without an interval (too few seeds): ``"1.234 times (1 seed: too few for an interval)"``.
    """
    n = getattr(iv, "n", None)
    seeds = "" if n is None else f", {n} seeds"
    if not (np.isfinite(iv.low) and np.isfinite(iv.high)):
        return f"{np.exp(iv.estimate):.3f} times ({plural(n, 'seed')}: too few for an interval)"
    return f"{np.exp(iv.estimate):.3f} times (95 % t interval [{np.exp(iv.low):.3f}, {np.exp(iv.high):.3f}]{seeds})"


def comparison_words(iv) -> str:
    """How a ``|r_J| - |r_s|`` interval reads: for the Jacobian, for sharpness, or neither."""
    from .. import claims

    return claims.choose(
        bool(iv.low > 0),
        "in favour of the Jacobian.",
        claims.choose(bool(iv.high < 0), "in favour of sharpness.", "which does not separate them."),
    )


def loss_level_for(preset: str, loss_level: float) -> float:
    """The training loss at which runs are compared: at least 2.0 at ``smoke`` (its runs are too short)."""
    if not (isinstance(loss_level, (int, float)) and not isinstance(loss_level, bool) and loss_level > 0):
        raise ValueError(f"loss_level={loss_level!r}; accepted: a float > 0")
    return max(loss_level, 2.0) if preset == "smoke" else loss_level


def at_loss_level(runs: pd.DataFrame, loss_level: float, *, by, columns) -> pd.DataFrame:
    """Per run (the ``by`` columns, e.g. ``["lr", "seed"]``), the ``columns`` at the first measurement
    where the training loss falls to ``loss_level`` (:func:`sharpjac.analysis.value_when`; NaN where
    it never does). One row per run, the ``by`` columns first."""
    from .. import analysis

    by = list(by)
    rows = []
    for key, g in runs.groupby(by):
        g = g.sort_values("step")
        rows.append(
            {
                **dict(zip(by, key)),
                **{c: analysis.value_when(g, c, at="train_loss", threshold=loss_level) for c in columns},
            }
        )
    return pd.DataFrame(rows)


def corr_labels(estimate: str, partial: str = "partial, train loss fixed", *, gap: str | None = "gap") -> dict:
    """Column labels of a displayed :func:`gap_predictors` table (``""``: the label of ``tables.LABELS``).

    Args:
        estimate: the label of the correlation column (e.g. ``"Spearman's ρ"``).
        partial: the label of the partial correlation (``""``: the default one).
        gap: the label of the ``gap`` column (None: the table has none).
    """
    out = {"gap": gap} if gap is not None else {}
    return out | {
        "predictor": "",
        "estimate": estimate,
        "low": "",
        "high": "",
        "partial": partial,
        "partial_low": "",
        "partial_high": "",
    }


def labelled(corr: pd.DataFrame, gap_labels: dict[str, str] | None = None) -> pd.DataFrame:
    """A predictor table for display: predictors (and gaps, with ``gap_labels``) in words."""
    from .. import tables

    out = corr.assign(predictor=corr["predictor"].map(tables.label))
    return out.assign(gap=corr["gap"].map(gap_labels)) if gap_labels is not None else out


# ------------------------------------------------------------------------------------------------
# Per-seed statistics: the seed is the unit of every interval that decides a claim
# ------------------------------------------------------------------------------------------------

#: The rivals of the Jacobian in the baseline claims: sharpness and the baselines other than the
#: training loss (which is held fixed by the partial correlation).
RIVALS = ("sharpness", "param_norm", "logit_norm", "margin")
#: The Jacobian statistic the claims use.
JACOBIAN = "jac_spectral_max"


def _pairs(final: pd.DataFrame, column: str, treated: dict, control: dict, pair_on) -> tuple[list, np.ndarray]:
    """The pairs' keys (tuples of the ``pair_on`` values, sorted) and ``[n_pairs, 2]`` values (treated, control)."""
    pair_on = [pair_on] if isinstance(pair_on, str) else list(pair_on)
    for c in [column, *pair_on, *treated, *control]:
        if c not in final:
            raise ValueError(f"column {c!r} is not in the frame; columns: {list(final.columns)}")
    keys = list(zip(*(final[c].tolist() for c in pair_on)))
    values = final[column].to_numpy(float)

    def select(labels: dict[str, Any]) -> dict:
        keep = np.ones(len(final), dtype=bool)
        for k, v in labels.items():
            col = final[k]
            if _is_num(v):
                keep &= np.isclose(col.to_numpy(float), float(v), rtol=1e-9, atol=0.0)
            else:
                keep &= (col == v).to_numpy()
        idx = np.flatnonzero(keep)
        out = {keys[i]: values[i] for i in idx}
        if len(out) < len(idx):
            raise ValueError(f"labels {labels} select several runs per {pair_on}; accepted: one run per pair")
        return out

    a, b = select(treated), select(control)
    common = sorted(set(a) & set(b))
    return common, np.array([[a[k], b[k]] for k in common], dtype=float).reshape(-1, 2)


def seed_effects(
    final: pd.DataFrame, column: str, treated: dict, control: dict, *, log: bool = False, pair_on=("seed",)
) -> dict[int, float]:
    r"""Per seed, the paired effect of an intervention averaged over the grid.

    For seed :math:`s` with pairs :math:`(a_{sk}, b_{sk})` (treated and control runs of that seed
    sharing the other ``pair_on`` labels, e.g. the learning rate), the value is
    :math:`\frac1{K_s}\sum_k (a_{sk}-b_{sk})`, or of :math:`\log a_{sk}-\log b_{sk}` with ``log``.
    Pairs with a non-finite difference are dropped; a seed with none is left out.

    Returns:
        ``{seed: value}`` in seed order (one replicate of the whole grid per seed).
    """
    pair_on = [pair_on] if isinstance(pair_on, str) else list(pair_on)
    if "seed" not in pair_on:
        raise ValueError(f"pair_on={pair_on}; accepted: columns that include 'seed'")
    keys, ab = _pairs(final, column, treated, control, pair_on)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.log(ab[:, 0]) - np.log(ab[:, 1]) if log else ab[:, 0] - ab[:, 1]
    at = pair_on.index("seed")
    sums: dict[int, list[float]] = {}
    for k, v in zip(keys, d):
        if np.isfinite(v):
            sums.setdefault(int(k[at]), []).append(float(v))
    return {s: float(np.mean(v)) for s, v in sorted(sums.items())}


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks 1..n (ties share the mean of their ranks), as ``scipy.stats.rankdata``."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    return (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; NaN when either is constant or fewer than 3 values."""
    if len(x) < 3:
        return float("nan")
    x, y = x - x.mean(), y - y.mean()
    den = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / den) if den > 1e-12 else float("nan")


def _residual(y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Residual of a least-squares line of ``y`` on ``z`` (with intercept)."""
    zc = z - z.mean()
    zz = float((zc * zc).sum())
    slope = float((zc * (y - y.mean())).sum()) / zz if zz > 1e-12 else 0.0
    return y - y.mean() - slope * zc


def rank_correlation(x, y, z=None) -> float:
    r"""Spearman's :math:`\rho` of ``x`` and ``y``, or the partial one given ``z``.

    Without ``z``: Pearson's correlation of the ranks (average ranks for ties). With ``z``: the
    rank-residual correlation, Pearson's correlation of the residuals of the ranks of ``x`` and
    of ``y`` after a least-squares line on the ranks of ``z`` (the partial Spearman correlation:
    :math:`(\rho_{xy}-\rho_{xz}\rho_{yz})/\sqrt{(1-\rho_{xz}^2)(1-\rho_{yz}^2)}`). Rows with a
    non-finite value are dropped first; NaN when fewer than 3 (4 with ``z``) rows remain or a
    variable is constant.
    """
    cols = [np.asarray(x, float), np.asarray(y, float)] + ([] if z is None else [np.asarray(z, float)])
    ok = np.logical_and.reduce([np.isfinite(c) for c in cols])
    cols = [_ranks(c[ok]) for c in cols]
    if z is None:
        return _corr(cols[0], cols[1])
    if ok.sum() < 4:
        return float("nan")
    return _corr(_residual(cols[0], cols[2]), _residual(cols[1], cols[2]))


def seed_correlations(final: pd.DataFrame, gap: str, predictors, *, control: str | None = None) -> pd.DataFrame:
    r"""Per seed, Spearman's :math:`\rho` across the grid points of ``gap`` with each predictor.

    Each seed's runs (one per grid point) give one correlation per predictor
    (:func:`rank_correlation`; with ``control``, the partial one given that column; the control's
    own column is then NaN).

    Returns:
        DataFrame indexed by seed (sorted), one column per predictor (NaN where a predictor was not
        recorded or is constant within the seed).
    """
    predictors = list(predictors)
    for c in [gap, "seed", *([control] if control else [])]:
        if c not in final:
            raise ValueError(f"column {c!r} is not in the frame; columns: {list(final.columns)}")
    seeds = np.asarray(final["seed"])
    y_all = final[gap].to_numpy(float)
    z_all = None if control is None else final[control].to_numpy(float)
    cols = np.column_stack(
        [final[p].to_numpy(float) if p in final else np.full(len(final), np.nan) for p in predictors]
    ).reshape(len(final), len(predictors))
    rows = {}
    for s in sorted(set(seeds.tolist())):
        m = seeds == s
        z = None if z_all is None else z_all[m]
        x, y = cols[m], y_all[m]
        if np.isfinite(x).all() and np.isfinite(y).all() and (z is None or np.isfinite(z).all()):
            r = _columns_correlation(x, y, z)  # every value recorded: all predictors at once
        else:
            r = np.array([rank_correlation(x[:, k], y, z) for k in range(len(predictors))])
        rows[int(s)] = [float("nan") if p == control else float(v) for p, v in zip(predictors, r)]
    return pd.DataFrame.from_dict(rows, orient="index", columns=predictors).rename_axis("seed")


def _columns_correlation(x: np.ndarray, y: np.ndarray, z: np.ndarray | None) -> np.ndarray:
    """:func:`rank_correlation` of every column of ``x`` (shape ``[n, k]``, all finite) with ``y``."""
    from scipy import stats

    n = len(y)
    if n < (3 if z is None else 4):
        return np.full(x.shape[1], np.nan)
    r = stats.rankdata(np.column_stack([y, x] if z is None else [y, x, z]), axis=0)
    r = r - r.mean(axis=0)
    if z is not None:
        rz = r[:, -1]
        zz = float(rz @ rz)
        r = r[:, :-1] - np.outer(rz, (rz @ r[:, :-1]) / zz) if zz > 1e-12 else r[:, :-1]
    ry, rx = r[:, 0], r[:, 1:]
    den = np.sqrt((rx * rx).sum(axis=0) * float(ry @ ry))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 1e-12, (rx.T @ ry) / den, np.nan)


def jacobian_margin(
    final: pd.DataFrame, gap: str, *, jacobian: str = JACOBIAN, rivals=RIVALS, control: str | None = "train_loss"
) -> dict[int, float]:
    r"""Per seed, how far the Jacobian's partial correlation with the gap beats every rival's.

    :math:`d_s=\rho_s(\text{gap},J\mid\text{control})-\max_r|\rho_s(\text{gap},r\mid\text{control})|`
    over the rivals recorded (sharpness and the baselines); :math:`d_s>0` means the Jacobian says
    more about the gap, with the training loss held fixed, than any rival does, in the direction
    the paper predicts. With ``control=None`` the plain Spearman correlations. A seed whose Jacobian
    correlation is NaN is left out; rivals that are NaN in a seed are ignored there.
    """
    t = seed_correlations(final, gap, [jacobian, *rivals], control=control)
    best = t[list(rivals)].abs().max(axis=1, skipna=True).fillna(0.0)
    d = (t[jacobian] - best).dropna()
    return {int(k): float(v) for k, v in d.items()}


def seed_interval(values: dict, *, unit: str = "seeds"):
    """:func:`sharpjac.inference.t_interval` of per-seed values (``{seed: value}``)."""
    from .. import inference

    return inference.t_interval(list(values.values()), unit=unit)


def baselines_table(final: pd.DataFrame, gap: str, predictors, *, control: str = "train_loss") -> pd.DataFrame:
    """Per predictor, the mean over seeds of its Spearman and partial correlation with ``gap``, t intervals.

    Returns:
        one row per predictor: ``predictor, estimate, low, high, partial, partial_low,
        partial_high, n_seeds, partial_n`` (seeds with a defined correlation, plain and partial;
        the interval is NaN below 3 seeds).
    """
    raw = seed_correlations(final, gap, predictors)
    part = seed_correlations(final, gap, predictors, control=control)
    rows = []
    for p in predictors:
        a, b = seed_interval(raw[p].dropna().to_dict()), seed_interval(part[p].dropna().to_dict())
        rows.append(
            {
                "predictor": p,
                "estimate": a.estimate,
                "low": a.low,
                "high": a.high,
                "partial": b.estimate,
                "partial_low": b.low,
                "partial_high": b.high,
                "n_seeds": a.n,
                "partial_n": b.n,
            }
        )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------
# Claims decided over seeds, and their known answers
# ------------------------------------------------------------------------------------------------

#: How the seeds replicate a grid, for the chapters' setting sentences.
SEED_DRAW = "each seed draws its own training subset, so the intervals over seeds include the sampling of the data"

#: The gaps as table labels.
GAP_LABEL = {"gap_loss": "test − train loss", "gap_acc": "train − test accuracy"}
#: The gaps in words.
GAP_WORDS = {
    "gap_loss": "loss gap",
    "gap_acc": "accuracy gap",
    "gap_loss_unsmoothed": "loss gap (plain cross-entropy)",
}


@dataclass(frozen=True)
class Effect:
    """A claim on the paired effect of an intervention, one value per seed (:func:`seed_effects`).

    Attributes:
        column: the measured column, or ``"gaps"``: both gaps, the claim agreeing only when both
            agree (:func:`gaps_verdict`).
        treated, control: the runs' labels (e.g. ``{"weight_decay": 0.003}``).
        log: compare on the log scale (a ratio). pair_on: the labels a pair shares (with ``seed``).
        what: the effect in words for the evidence (e.g. ``"the largest decay against none"``).
        where: labels selecting the runs the claim is about (None: all), as for every spec.
        frame: which of the chapter's frames the effect is read from (``"final"``: the end of
            training; a chapter may pass others to :func:`decide_all`, e.g. ``"at_level"``).
    """

    column: str
    treated: dict
    control: dict
    log: bool = False
    pair_on: tuple = ("seed",)
    what: str = ""
    where: dict | None = None
    frame: str = "final"


@dataclass(frozen=True)
class Rho:
    """A claim on the sign of Spearman's rho across the grid points of ``gap`` with ``predictor``, per seed."""

    gap: str
    predictor: str = JACOBIAN
    where: dict | None = None


@dataclass(frozen=True)
class Beats:
    r"""A claim that the Jacobian beats its rivals on ``gap``, per seed (:func:`jacobian_margin`).

    The default is the baseline claim: partial correlations given the training loss, against
    sharpness and every baseline. ``pooled=True``: the margin over all runs at once, with
    delete-one-seed jackknife pseudo-values as the per-seed values (:func:`jackknife_values`), for
    grids too small for a correlation within one seed. ``rivals=("sharpness",), control=None`` is
    the sign-respecting
    form of "the Jacobian, not sharpness, follows the gap": :math:`\rho(\text{gap},J)-|\rho(\text{gap},s)|`.
    """

    gap: str
    rivals: tuple = RIVALS
    control: str | None = "train_loss"
    where: dict | None = None
    jacobian: str = JACOBIAN
    pooled: bool = False


def _evidence(iv, what: str) -> str:
    from ..display import fmt_iv, fmt_num

    if iv.too_few:
        return f"{what}: {fmt_num(iv.estimate, 3)} over {plural(iv.n, 'seed')}."
    return f"{what}: mean over seeds {fmt_iv(iv.estimate, iv.low, iv.high, 3)} (95 % t interval, {iv.n} seeds)."


def gaps_verdict(claim_id: str, per_gap: dict, *, preset: str, what: str):
    """Decide a sign claim on both gaps: agree when both agree, disagree when either disagrees.

    ``per_gap`` maps ``"gap_loss"``/``"gap_acc"`` to ``{seed: value}``. The claim's rule decides each
    gap from its t interval over seeds; the verdict carries the numbers of the gap that decides
    (the first that does not agree; else the one whose interval is closest to 0) and a
    leave-one-seed-out fragility of the combined outcome.
    """
    from .. import claims, inference

    rule = claims.get(claim_id).rule

    def pick(kept) -> tuple[str, Any, str]:
        ivs = {g: seed_interval({s: v for s, v in vals.items() if s in kept}) for g, vals in per_gap.items()}
        outs = {g: rule.decide(estimate=iv.estimate, low=iv.low, high=iv.high) for g, iv in ivs.items()}
        order = sorted(
            ivs, key=lambda g: (outs[g] == "agree", outs[g] != "disagree", min(abs(ivs[g].low), abs(ivs[g].high)))
        )
        g = order[0]
        return g, ivs, outs[g]

    seeds = sorted(set().union(*[set(v) for v in per_gap.values()]))
    g, ivs, _ = pick(seeds)
    frag = inference.leave_one_out(lambda kept: pick(kept)[2], seeds) if len(seeds) >= 2 else None
    lines = " ".join(_evidence(ivs[k], f"{what}, {GAP_WORDS.get(k, k)}") for k in per_gap)
    iv = ivs[g]
    tail = f" The {GAP_WORDS.get(g, g)} decides (the claim agrees only when both gaps agree)."
    if iv.too_few:
        tail += f" Too few seeds to decide ({iv.n})."
    return claims.evaluate(
        claim_id,
        evidence=lines + tail,
        preset=preset,
        seeds=max(1, iv.n),
        unit="seeds",
        n_units=iv.n,
        fragility=frag,
        estimate=iv.estimate,
        low=iv.low,
        high=iv.high,
        label=f"{what}, {GAP_WORDS.get(g, g)}",
    )


def seed_verdict(claim_id: str, values: dict, *, preset: str, what: str, **extra):
    """:func:`sharpjac.claims.from_clusters` over seeds (a t interval; too few below 3 seeds)."""
    from .. import claims

    return claims.from_clusters(
        claim_id,
        values,
        unit="seeds",
        evidence=lambda iv: _evidence(iv, what),
        preset=preset,
        seeds=max(1, len(values)),
        label=what,
        **extra,
    )


def matching(final: pd.DataFrame, labels: dict) -> np.ndarray:
    """Boolean mask of the rows matching every label (floats compared with a relative tolerance of 1e-9)."""
    keep = np.ones(len(final), dtype=bool)
    for k, v in labels.items():
        if k not in final:
            raise ValueError(f"column {k!r} is not in the frame; columns: {list(final.columns)}")
        col = final[k]
        keep &= np.isclose(col.to_numpy(float), float(v), rtol=1e-9, atol=0.0) if _is_num(v) else (col == v).to_numpy()
    return keep


def select(final: pd.DataFrame, labels: dict) -> pd.DataFrame:
    """The rows matching every label (:func:`matching`)."""
    return final[matching(final, labels)]


def decide(claim_id: str, spec, final: pd.DataFrame, *, preset: str = "quick"):
    """The verdict of one claim of a flat-minima chapter from its final measurements.

    ``spec`` is an :class:`Effect` (per-seed paired effect; ``column="gaps"``: both gaps), a
    :class:`Rho` (per-seed Spearman of the gap with a predictor, sign tested), a :class:`Beats`
    (per-seed :func:`jacobian_margin`, sign tested) or an :class:`EffectiveLower` (a count of
    interventions). The chapters and their known-answer tests call
    this same function.
    """
    if getattr(spec, "where", None):
        final = select(final, spec.where)
    if isinstance(spec, Effect):
        if spec.column == "gaps":
            per = {
                g: seed_effects(final, g, spec.treated, spec.control, pair_on=spec.pair_on) for g in GAPS if g in final
            }
            return gaps_verdict(claim_id, per, preset=preset, what=f"change of the gap, {spec.what}")
        vals = seed_effects(final, spec.column, spec.treated, spec.control, log=spec.log, pair_on=spec.pair_on)
        scale = "mean log ratio" if spec.log else "change"
        from .. import tables

        return seed_verdict(claim_id, vals, preset=preset, what=f"{scale} of {tables.label(spec.column)}, {spec.what}")
    if isinstance(spec, Rho):
        from .. import tables

        vals = seed_correlations(final, spec.gap, [spec.predictor])[spec.predictor].dropna().to_dict()
        what = f"Spearman's ρ across the grid points of the {GAP_WORDS[spec.gap]} with {tables.label(spec.predictor)}"
        return seed_verdict(claim_id, vals, preset=preset, what=what)
    if isinstance(spec, Beats):
        kw = dict(jacobian=spec.jacobian, rivals=spec.rivals, control=spec.control)
        if spec.pooled:
            vals = jackknife_values(final, lambda f: jacobian_margin(f.assign(seed=0), spec.gap, **kw).get(0, np.nan))
        else:
            vals = jacobian_margin(final, spec.gap, **kw)
        what = beats_words(spec)
        if not any(np.isfinite(v) for v in vals.values()) and spec.control is not None:
            what += (
                " (undefined in every seed: with the training loss held fixed nothing of the Jacobian's ranks is "
                "left, they follow the training loss's exactly, or there are too few grid points)"
            )
        return seed_verdict(claim_id, vals, preset=preset, what=what)
    if isinstance(spec, EffectiveLower):
        return _count_verdict(claim_id, spec, final, preset)
    raise TypeError(f"spec={spec!r}; accepted: an Effect, Rho, Beats or EffectiveLower")


@dataclass(frozen=True)
class EffectiveLower:
    """A claim that every effective intervention also lowers ``column`` (rule ``Count(1.0)``).

    An intervention is *effective* when it lowers both gaps (``gaps``), each with a :math:`t`
    interval over seeds below 0 (:func:`paired_effect`); of these, :math:`k` also lower ``column``
    (log ratio, interval below 0). The numbers are :math:`k` and :math:`n` (the effective ones).

    Attributes:
        column: the quantity (e.g. ``"jac_spectral_max"``). treated: name -> labels; control: labels.
        gaps: the gap columns an effective intervention lowers.
    """

    column: str
    treated: dict
    control: dict
    gaps: tuple = GAPS
    where: dict | None = None


def effective_counts(final: pd.DataFrame, spec: EffectiveLower, seeds=None) -> tuple[list, list]:
    """The names of the effective interventions of ``spec`` and of those among them that lower ``spec.column``.

    ``seeds``: only these seeds' values (None: all); the per-seed effects are computed once per call.
    """
    return _counts(_seed_effect_table(final, spec), seeds)


def _seed_effect_table(final: pd.DataFrame, spec: EffectiveLower) -> dict:
    """``{intervention: {column: {seed: effect}}}`` for the gaps (changes) and ``spec.column`` (log ratio)."""
    out = {}
    for name, tr in spec.treated.items():
        out[name] = {g: seed_effects(final, g, tr, spec.control) for g in spec.gaps}
        out[name][spec.column] = seed_effects(final, spec.column, tr, spec.control, log=True)
    return out


def _counts(table: dict, seeds=None) -> tuple[list, list]:
    def high(values: dict) -> float:
        kept = values if seeds is None else {k: v for k, v in values.items() if k in seeds}
        return seed_interval(kept).high

    effective, lowered = [], []
    for name, cols in table.items():
        *gaps, column = cols
        if all(high(cols[g]) < 0 for g in gaps):
            effective.append(name)
            if high(cols[column]) < 0:
                lowered.append(name)
    return effective, lowered


def _count_verdict(claim_id: str, spec: EffectiveLower, final: pd.DataFrame, preset: str):
    from .. import claims, inference, tables

    rule = claims.get(claim_id).rule
    seeds = sorted(set(final["seed"].tolist()))
    table = _seed_effect_table(final, spec)

    def outcome(kept) -> str:
        eff, low = _counts(table, set(kept))
        return rule.decide(k=len(low), n=len(eff))

    eff, low = _counts(table)
    frag = inference.leave_one_out(outcome, seeds) if len(seeds) >= 2 else None
    gaps = " and ".join(f"the {GAP_WORDS.get(g, g)}" for g in spec.gaps)
    missing = [e for e in eff if e not in low]
    evidence = (
        f"{len(eff)} of the {len(spec.treated)} interventions lower {gaps} with t intervals over seeds below 0 "
        f"({', '.join(eff) or 'none'}); of these, {len(low)} also lower {tables.label(spec.column)} with an interval "
        "below 1" + (f" (not: {', '.join(missing)})." if missing else ".")
    )
    if len(seeds) < 3:
        evidence += f" Too few seeds for intervals ({len(seeds)})."
    return claims.evaluate(
        claim_id,
        evidence=evidence,
        preset=preset,
        seeds=max(1, len(seeds)),
        unit="seeds",
        n_units=len(seeds),
        fragility=frag,
        k=len(low),
        n=len(eff),
        label="effective interventions that lower " + tables.label(spec.column),
    )


#: Columns the simulator draws (log-normal ones are positive, like the measured quantities).
_SIM_POSITIVE = ("sharpness", *PREDICTORS[1:], "train_loss", "param_norm", "logit_norm")
_SIM_PLAIN = ("margin", "test_acc", "train_acc")
#: The gaps the simulator draws (the plain cross-entropy gap of the regularisers chapter too).
SIM_GAPS = ("gap_loss", "gap_acc", "gap_loss_unsmoothed")


def simulate_final(
    rng: np.random.Generator,
    labels: pd.DataFrame,
    *,
    rho: dict[str, float] | None = None,
    effects: tuple = (),
) -> pd.DataFrame:
    r"""A simulated frame of final measurements at a chapter's design (one row per run).

    Every quantity of a run is a standard normal draw (the positive ones exponentiated), independent
    across runs, except the gaps: :math:`g=\sum_p\rho_p z_p+\sqrt{1-\sum_p\rho_p^2}\,e` with
    :math:`z_p` the (log) value of predictor :math:`p` (``rho``), each gap with its own noise.
    ``effects`` are ``(column, treated labels, delta)``: ``delta`` is added to the column (on the
    log scale for a positive one; ``"gaps"``: to both gaps) in the runs matching the labels.

    Args:
        rng: the generator. labels: the grid's labels, one row per run (with ``seed``).
    """
    rho = dict(rho or {})
    n = len(labels)
    z = {c: rng.standard_normal(n) for c in (*_SIM_POSITIVE, *_SIM_PLAIN)}
    rest = float(np.sqrt(max(0.0, 1.0 - sum(v * v for v in rho.values()))))
    signal = sum((v * z[p] for p, v in rho.items()), np.zeros(n))
    for g in SIM_GAPS:
        z[g] = signal + rest * rng.standard_normal(n)
    for column, treated, delta in effects:
        m = matching(labels, treated)
        for c in SIM_GAPS if column == "gaps" else (column,):
            z[c] = z[c] + delta * m
    cols = {c: (np.exp(v) if c in _SIM_POSITIVE else v) for c, v in z.items()}
    return labels.reset_index(drop=True).assign(**cols)


def grid_labels(config) -> pd.DataFrame:
    """The grid's labels of a config, one row per run (``config.grid()`` without the runs)."""
    return pd.DataFrame([lab for lab, _ in config.grid()])


#: Effect sizes of the known answers' true cases.
TRUE_EFFECT = 1.5
TRUE_RHO = 0.7
#: The Jacobian's correlation with the gaps in the baseline claims' true case: the quick book's
#: pooled rho(gap, max‖Jf‖) is about 0.9 in the weight-decay and learning-rate grids (issue 19).
TRUE_RHO_BEATS = 0.9


def register_known_answer(claim_id: str, spec, labels: pd.DataFrame, *, design: str) -> None:
    r"""Register the known answer of a claim decided by :func:`decide` at the design of ``labels``.

    False cases sit at the null's boundary: no effect (:class:`Effect`), independence
    (:class:`Rho`), the Jacobian and the sharpness equally related to the gaps (:class:`Beats`).
    True cases: an effect of :data:`TRUE_EFFECT` run-to-run standard deviations in the predicted
    direction; :math:`\rho=` :data:`TRUE_RHO` between the gap and the predictor (signed as
    predicted); the Jacobian alone related to the gaps at :data:`TRUE_RHO_BEATS`, the rivals not at all.
    """
    from .. import claims

    sign = getattr(claims.get(claim_id).rule, "predicted", 1)
    if isinstance(spec, Effect):
        col = spec.column

        def false(rng):
            return simulate_final(rng, labels)

        def true(rng):
            return simulate_final(rng, labels, effects=((col, spec.treated, sign * TRUE_EFFECT),))

        truth = f"true: {col} moves by {TRUE_EFFECT} run-to-run sd in the predicted direction; false: no effect"
    elif isinstance(spec, Rho):

        def false(rng):
            return simulate_final(rng, labels)

        def true(rng):
            return simulate_final(rng, labels, rho={spec.predictor: sign * TRUE_RHO})

        truth = f"true: rho = {sign * TRUE_RHO} between the gaps and {spec.predictor} per run; false: independent"
    elif isinstance(spec, Beats):

        def false(rng):
            return simulate_final(rng, labels, rho={JACOBIAN: 0.5, spec.rivals[0]: -0.5})

        def true(rng):
            return simulate_final(rng, labels, rho={JACOBIAN: TRUE_RHO_BEATS})

        truth = (
            f"true: only the Jacobian relates to the gaps (rho = {TRUE_RHO_BEATS}); false: {spec.rivals[0]} as "
            "strongly, in the opposite direction (rho = 0.5 and -0.5)"
        )
    elif isinstance(spec, EffectiveLower):
        lower = tuple(("gaps", tr, -TRUE_EFFECT) for tr in spec.treated.values())

        def false(rng):
            return simulate_final(rng, labels, effects=lower)

        def true(rng):
            return simulate_final(
                rng, labels, effects=lower + tuple((spec.column, tr, -TRUE_EFFECT) for tr in spec.treated.values())
            )

        truth = (
            f"true: every intervention lowers the gaps and {spec.column} by {TRUE_EFFECT} run-to-run sd; false: "
            f"every one lowers the gaps, none {spec.column}"
        )
    else:
        raise TypeError(f"spec={spec!r}; accepted: an Effect, Rho, Beats or EffectiveLower")
    claims.known_answer(
        claim_id,
        design=design,
        simulate_false=false,
        simulate_true=true,
        decide=lambda data: decide(claim_id, spec, data).outcome,
        truth=truth,
    )


def beats_words(spec: Beats) -> str:
    """What a :class:`Beats` claim's per-seed value is, in words."""
    rivals = "sharpness" if tuple(spec.rivals) == ("sharpness",) else "sharpness and the baselines"
    per = "over all runs, jackknife pseudo-values per seed" if spec.pooled else "per seed"
    if spec.control is None:
        return f"ρ(the {GAP_WORDS[spec.gap]}, max‖Jf‖) minus the largest |ρ| of {rivals}, {per}"
    return (
        f"partial ρ(the {GAP_WORDS[spec.gap]}, max‖Jf‖ | train loss) minus the largest |partial ρ| of {rivals}, " + per
    )


def jackknife_values(final: pd.DataFrame, statistic) -> dict[int, float]:
    r"""Per-seed values whose :math:`t` interval is the delete-one-seed jackknife interval of a statistic.

    With :math:`m` seeds, :math:`\theta` the statistic of all runs, :math:`\theta_{-s}` that without
    seed :math:`s`'s runs and the pseudo-values :math:`p_s=m\theta-(m-1)\theta_{-s}`, the values are
    :math:`v_s=\theta+p_s-\bar p`: their mean is :math:`\theta` (no bias correction, which for a
    statistic with a maximum in it overshoots and made the rule agree too often on simulated null
    data: 7.8 % at the learning-rate design) and their standard error is the jackknife's,
    :math:`\mathrm{sd}(p)/\sqrt m`. So a statistic that needs more runs than one seed has still gets
    the seed as its unit. Fewer than 2 seeds: ``{seed: theta}`` (no interval follows).
    """
    seeds = sorted(set(final["seed"].tolist()))
    theta = float(statistic(final))
    if len(seeds) < 2:
        return {int(s): theta for s in seeds}
    m = len(seeds)
    col = final["seed"].to_numpy()
    pseudo = np.array([m * theta - (m - 1) * float(statistic(final[col != s])) for s in seeds])
    return {int(s): float(theta + p - pseudo.mean()) for s, p in zip(seeds, pseudo)}


def decide_all(specs: dict, frames, *, preset: str) -> dict:
    """:func:`decide` for every claim of a chapter (``{claim_id: spec}``), in order.

    ``frames``: one frame of final measurements, or ``{name: frame}`` with ``"final"`` and the
    other frames an :class:`Effect` may name (its ``frame``).
    """
    frames = frames if isinstance(frames, dict) else {"final": frames}
    return {
        cid: decide(cid, spec, frames[getattr(spec, "frame", "final")], preset=preset) for cid, spec in specs.items()
    }


def register_known_answers(specs: dict, config, *, design: str) -> None:
    """:func:`register_known_answer` for every claim of a chapter, at the design of ``config``'s grid."""
    labels = grid_labels(config)
    for cid, spec in specs.items():
        register_known_answer(cid, spec, labels, design=design)


def baselines_tables(final: pd.DataFrame, predictors=(JACOBIAN, *RIVALS), gaps=GAPS) -> pd.DataFrame:
    """:func:`baselines_table` of both gaps, stacked (a ``gap`` column first)."""
    parts = [baselines_table(final, g, list(predictors)).assign(gap=g) for g in gaps]
    t = pd.concat(parts, ignore_index=True)
    return t[["gap", *[c for c in t.columns if c != "gap"]]]


#: Column labels of a displayed :func:`baselines_tables` table.
BASELINE_LABELS = {
    "gap": "gap",
    "predictor": "",
    "estimate": "Spearman's ρ, mean over seeds",
    "low": "95 % low",
    "high": "95 % high",
    "partial": "partial ρ, train loss fixed",
    "partial_low": "partial, 95 % low",
    "partial_high": "partial, 95 % high",
    "n_seeds": "n seeds",
    "partial_n": "n seeds (partial)",
}


def baselines_view(table: pd.DataFrame, gap_labels: dict | None = None):
    """The reader's table of :func:`baselines_tables` (predictors and gaps in words); the cell's last value."""
    from .. import tables

    return tables.show(
        labelled(table, gap_labels or GAP_LABEL),
        BASELINE_LABELS,
        digits=2,
        caption="Per seed, then averaged over seeds: Spearman's ρ and the partial ρ given the training loss "
        "(95 % t intervals over seeds).",
    )


def baselines_text(table: pd.DataFrame) -> str:
    r"""Which predictor says most about each gap with the training loss fixed (from :func:`baselines_tables`).

    Per gap, the predictor with the largest mean :math:`|\text{partial }\rho|` over seeds; when it is
    not the Jacobian the sentence says that a rival wins.
    """
    from .. import tables
    from ..display import fmt_iv, fmt_num

    out = []
    for g, t in table.groupby("gap", sort=False):
        t = t.set_index("predictor")
        if t["partial"].isna().all():
            out.append(
                f"On the {GAP_WORDS[g]}, no partial correlation is defined in any seed: with the training loss held "
                "fixed nothing of the ranks is left (across the grid points they follow the training loss's exactly), "
                "or there are too few grid points."
            )
            continue
        # a predictor whose partial correlation is defined in fewer than 3 seeds (e.g. a margin that
        # moves in lockstep with the training loss) is named only when no other has 3
        enough = t[t["partial_n"] >= 3]
        pool = enough if enough["partial"].notna().any() else t
        best = pool["partial"].abs().idxmax()
        jac = next(p for p in t.index if p.startswith("jac"))

        def said(p: str) -> str:
            r = t.loc[p]
            if np.isfinite(r.partial_low):
                return fmt_iv(r.partial, r.partial_low, r.partial_high)
            return f"{fmt_num(r.partial, 2)}, {plural(int(r.partial_n), 'seed')}"

        if best == jac:
            rival = pool.drop(index=jac, errors="ignore")["partial"].abs().idxmax()
            out.append(
                f"On the {GAP_WORDS[g]}, the Jacobian has the largest mean partial correlation with the training "
                f"loss fixed ({said(jac)}); the strongest rival is {tables.label(rival)} ({said(rival)})."
            )
        else:
            out.append(
                f"On the {GAP_WORDS[g]}, **{tables.label(best)} says more about the gap than the Jacobian** with the "
                f"training loss fixed ({said(best)} against {said(jac)}): here a rival, not the Jacobian, wins."
            )
    return " ".join(out)


def tracks_sentence(final: pd.DataFrame, gap: str, *, jacobian: str = JACOBIAN) -> str:
    r"""Per seed, :math:`\rho(\text{gap},J)` and :math:`\rho(\text{gap},s)` and the sign-respecting
    difference :math:`\rho_J-|\rho_s|` (means over seeds, :math:`t` intervals), with its reading."""
    from .. import tables
    from ..display import fmt_iv

    rho = seed_correlations(final, gap, [jacobian, "sharpness"])
    j, s = (seed_interval(rho[c].dropna().to_dict()) for c in (jacobian, "sharpness"))
    d = seed_interval(jacobian_margin(final, gap, jacobian=jacobian, rivals=("sharpness",), control=None))
    return (
        f"Per seed, Spearman's ρ across the grid points of the {GAP_WORDS[gap]} with {tables.label(jacobian)} "
        f"averages {fmt_iv(j.estimate, j.low, j.high)} and with sharpness {fmt_iv(s.estimate, s.low, s.high)} "
        f"({d.n} seeds, t intervals); the sign-respecting difference $\\rho_J-|\\rho_s|$ (the Jacobian counted "
        f"only in the predicted direction) is {fmt_iv(d.estimate, d.low, d.high)}, " + comparison_words(d)
    )


def split_verdicts(verdicts: dict) -> tuple[dict, dict]:
    """A chapter's verdicts split into the baseline claims (``*.jacobian_beats_baselines_*``) and the rest."""
    base = {k: v for k, v in verdicts.items() if ".jacobian_beats_baselines_" in k}
    return {k: v for k, v in verdicts.items() if k not in base}, base
