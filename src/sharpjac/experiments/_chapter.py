"""Small helpers shared by the theory chapters' ``chapter_configs`` and ``summarise`` functions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .base import PRESET_NAMES


def seed_block(preset: str, seed: int, n_seeds: int | None = None) -> tuple[int, ...]:
    """The seeds a theory chapter (T1-T4) pools: ``seed, seed + 1, ...``.

    Args:
        preset: ``"smoke"``, ``"quick"`` or ``"paper"``.
        seed: first seed of the block (an int >= 0).
        n_seeds: how many; ``None`` means 1 at the smoke preset and 3 otherwise (the chapters'
            default, although the studies' own presets say one seed).

    Returns:
        ``tuple(range(seed, seed + n_seeds))``.

    >>> seed_block("quick", 2)
    (2, 3, 4)
    >>> seed_block("smoke", 0)
    (0,)
    """
    if preset not in PRESET_NAMES:
        raise ValueError(f"preset={preset!r}; accepted: {list(PRESET_NAMES)}")
    if n_seeds is None:
        n_seeds = 1 if preset == "smoke" else 3
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, int) or n_seeds < 1:
        raise ValueError(f"n_seeds={n_seeds!r}; accepted: None or an integer >= 1")
    return tuple(range(seed, seed + n_seeds))


def plural(n: int, word: str) -> str:
    """``"1 seed"``, ``"3 seeds"``.

    >>> plural(1, "run"), plural(2, "run")
    ('1 run', '2 runs')
    """
    return f"{n} {word}" + ("" if n == 1 else "s")


@dataclass(frozen=True)
class ChapterSummary:
    """What a theory chapter shows, computed from its study's tables.

    Attributes:
        tables: ``{name: DataFrame}`` ready to show or plot (no further computation).
        values: ``{glue name: value}``; a ``str`` is a computed Markdown sentence (glued as
            Markdown), anything else a number (glued as it is).
        claims: ``{claim id: {"evidence": Markdown, "seeds": int, **numbers}}``, the inputs of
            :func:`sharpjac.claims.evaluate` (the rule, not this summary, decides the outcome); with
            ``values`` (``{cluster: value}``) and ``unit``, the inputs of
            :func:`sharpjac.claims.from_clusters` instead (``evidence`` may then be a function of
            the interval).
        series: other ready-to-plot objects (dicts of frames, lists), by name.
    """

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    claims: dict[str, dict[str, Any]] = field(default_factory=dict)
    series: dict[str, Any] = field(default_factory=dict)


def evaluate(summary: ChapterSummary, preset: str) -> dict[str, Any]:
    """``{claim id: Verdict}``: :func:`sharpjac.claims.evaluate` of each claim of ``summary``.

    Args:
        summary: a chapter's summary.
        preset: the preset the chapter ran (shown on the verdict and the scorecard).
    """
    from .. import claims

    out = {}
    for claim_id, inputs in summary.claims.items():
        numbers = dict(inputs)
        evidence, seeds = numbers.pop("evidence"), numbers.pop("seeds")
        if "values" in numbers:  # one value per cluster: a t interval over the clusters
            values = numbers.pop("values")
            out[claim_id] = claims.from_clusters(
                claim_id, values, evidence=evidence, preset=preset, seeds=seeds, **numbers
            )
        else:
            out[claim_id] = claims.evaluate(claim_id, evidence=evidence, preset=preset, seeds=seeds, **numbers)
    return out
