r"""Statistics shared by the six flat-minima chapters: which end-of-run quantity follows the gap.

* :func:`final_measurements`: the last measurement of each run;
* :func:`gap_predictors`: rank correlations of the gaps with the :data:`PREDICTORS` and
  :data:`BASELINES` (:func:`sharpjac.analysis.predictor_table`, cluster bootstrap);
* :func:`paired_values` and :func:`paired_effect`: the effect of an intervention, paired by seed
  (and any other labels), with a bootstrap interval (:func:`sharpjac.analysis.difference_ci`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

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
    n_resamples: int,
    seed: int,
):
    r"""Mean paired change of ``column`` from ``control`` to ``treated`` with a bootstrap interval.

    With pairs :math:`(a_k,b_k)` from :func:`paired_values`, the estimate is
    :math:`\frac1K\sum_k(a_k-b_k)` (``log=False``) or :math:`\frac1K\sum_k(\log a_k-\log b_k)`
    (``log=True``: the log of the geometric-mean ratio), with a percentile bootstrap over the pairs
    (:func:`sharpjac.analysis.difference_ci`, ``paired=True``).

    Returns:
        :class:`sharpjac.analysis.Interval` (``estimate, low, high``), on the log scale with ``log``.
    """
    from .. import analysis

    a, b = paired_values(final, column, treated, control, pair_on=pair_on)
    if log:
        a, b = np.log(a), np.log(b)
    return analysis.difference_ci(a, b, paired=True, n_resamples=n_resamples, seed=seed)


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
    n_resamples: int,
    seed: int,
) -> pd.DataFrame:
    r""":func:`paired_effect` of several columns within each value of ``by`` (one row per value).

    Args:
        final: one row per run. by: the column held fixed (e.g. ``"lr"``).
        columns: column -> ``log``; a logged column is reported as the geometric-mean ratio
            :math:`\exp(\overline{\log a-\log b})` with its interval exponentiated, a plain one as
            the mean change.
        treated, control, pair_on, n_resamples, seed: see :func:`paired_effect`.

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
            iv = paired_effect(sub, col, treated, control, pair_on=pair_on, log=log, n_resamples=n_resamples, seed=seed)
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
    n_resamples: int,
    seed: int,
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """:func:`paired_effect` of several interventions against one control, on several columns.

    Args:
        final: one row per run. interventions: name -> treated labels. control: the control's labels.
        columns: column -> ``(short name, log)``; a logged column is reported as a ratio (the
            exponentiated mean log ratio and interval), a plain one as the mean change.
        pair_on, n_resamples, seed: see :func:`paired_effect`.

    Returns:
        ``(table, intervals)``: ``table`` has one row per intervention (``intervention`` and, per
        column, ``short``, ``short_low``, ``short_high``); ``intervals[name][column]`` is the
        :class:`~sharpjac.analysis.Interval` (log scale for a logged column).
    """
    rows, ivs = [], {}
    for name, treated in interventions.items():
        row: dict[str, Any] = {"intervention": name}
        ivs[name] = {}
        for col, (short, log) in columns.items():
            iv = paired_effect(
                final, col, treated, control, pair_on=pair_on, log=log, n_resamples=n_resamples, seed=seed
            )
            ivs[name][col] = iv
            f = np.exp if log else float
            row.update({short: f(iv.estimate), f"{short}_low": f(iv.low), f"{short}_high": f(iv.high)})
        rows.append(row)
    return pd.DataFrame(rows), ivs


def ratio_text(iv) -> str:
    """A log-scale interval as a ratio: ``"1.234 times (95 % interval [1.100, 1.400])"``."""
    return f"{np.exp(iv.estimate):.3f} times (95 % interval [{np.exp(iv.low):.3f}, {np.exp(iv.high):.3f}])"


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
