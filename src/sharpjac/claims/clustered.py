r"""A claim decided from one value per cluster: a :math:`t` interval over the clusters, its outcome,
and that outcome recomputed with each cluster left out.

The flat-minima grids and the training-dynamics chapters repeat a whole design over a few seeds
(3 to 5). Each seed is one independent replicate, so the honest unit of an interval is the seed:
a statistic is computed *within* each seed (the paired effect averaged over the grid, a rank
correlation across the grid points) and the interval is Student's :math:`t` over the seeds'
values (:func:`sharpjac.inference.t_interval`, validated for coverage at 3 and 5 clusters in
``tests/test_inference.py``). Below ``min_clusters`` there is no interval and the outcome is
*inconclusive*, with "too few seeds to decide" in the evidence.

Example:
    >>> from sharpjac import claims
    >>> v = claims.from_clusters("weight_decay.raises_sharpness", {0: 0.4, 1: 0.5, 2: 0.45, 3: 0.6},
    ...                          unit="seeds", evidence="Sharpness rose in every seed.", preset="smoke", seeds=4)
    >>> v.outcome, v.units_text, v.fragile
    ('agree', '4 seeds', False)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping

from .. import inference
from .registry import get
from .verdicts import Verdict, evaluate

__all__ = ["from_clusters"]


def _decide(claim_id: str, iv: inference.ClusterInterval, extra: dict) -> str:
    return get(claim_id).rule.decide(estimate=iv.estimate, low=iv.low, high=iv.high, **extra)


def from_clusters(
    claim_id: str,
    values: Mapping[Hashable, float],
    *,
    unit: str,
    evidence: str | Callable[[inference.ClusterInterval], str],
    preset: str,
    seeds: int,
    label: str = "",
    level: float = 0.95,
    min_clusters: int = 3,
    **extra,
) -> Verdict:
    """Decide an interval rule (``Sign``, ``Contains``) from one value per cluster.

    Args:
        claim_id: a registered claim whose rule reads ``estimate, low, high``.
        values: ``{cluster label: value}``, e.g. ``{seed: mean paired effect over the grid}``;
            non-finite values are dropped (and counted out of ``n_units``).
        unit: the clusters' name in the plural ("seeds").
        evidence: Markdown, or a function of the :class:`~sharpjac.inference.ClusterInterval` that
            returns it. With too few clusters, " Too few <unit> to decide (<n>)." is appended.
        preset, seeds, label: as for :func:`sharpjac.claims.evaluate`.
        level, min_clusters: as for :func:`sharpjac.inference.t_interval`.
        **extra: other real numbers kept in the record.

    Returns:
        A :class:`~sharpjac.claims.Verdict` with ``unit``, ``n_units`` and the leave-one-out
        fragility (assessed from 2 finite clusters on; a left-out subset below ``min_clusters`` has
        no interval and decides *inconclusive*, so an outcome that needs every one of 3 seeds is
        marked fragile).
    """
    if not isinstance(values, Mapping):
        raise ValueError(
            f"from_clusters {claim_id}: values={values!r} is invalid; accepted: a mapping of clusters to values"
        )
    finite = {k: float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))}

    def interval(keys) -> inference.ClusterInterval:
        return inference.t_interval([finite[k] for k in keys], unit=unit, level=level, min_clusters=min_clusters)

    iv = interval(tuple(finite))
    fragility = None
    if len(finite) >= 2:
        fragility = inference.leave_one_out(lambda kept: _decide(claim_id, interval(kept), extra), tuple(finite))
    text = evidence(iv) if callable(evidence) else str(evidence)
    if iv.too_few:
        text = f"{text.rstrip()} Too few {unit} to decide ({iv.n})."
    return evaluate(
        claim_id,
        evidence=text,
        preset=preset,
        seeds=seeds,
        unit=unit,
        n_units=iv.n,
        fragility=fragility,
        estimate=iv.estimate,
        low=iv.low,
        high=iv.high,
        label=label,
        **extra,
    )
