r"""The claims registry: every claim of the paper and of the companion, decided by computed numbers.

A *claim* (:class:`Claim`) has an id ``"<chapter>.<name>"``, a one-sentence statement, the
statistic that tests it and a *decision rule* (:mod:`sharpjac.claims.rules`) that maps numbers to
one of :data:`OUTCOMES`. A chapter never types an outcome: it computes the numbers and calls

.. code-block:: python

    from sharpjac import claims
    v = claims.evaluate("weight_decay.jacobian_tracks_gap", evidence=f"... {d:.2f} ...",
                        preset=PRESET, seeds=n_seeds, estimate=d, low=lo, high=hi, label="Δ|ρ|")
    v.show()          # the verdict box and the record the scorecard reads
    v.glue("wd")      # wd_outcome, wd_estimate, ... for the prose

Registry modules: every module ``_<group>.py`` of this package is imported when the package is
imported, and registers its claims with :func:`register` at import time.

Example:
    >>> from sharpjac import claims
    >>> claims.Sign(+1).decide(estimate=0.3, low=0.1, high=0.5)
    'agree'
    >>> claims.Sign(+1).decide(estimate=0.3, low=-0.1, high=0.5)
    'inconclusive'
    >>> claims.choose(2 > 1, "holds", "fails")
    'holds'
"""

from __future__ import annotations

import importlib
import pkgutil

from .clustered import from_clusters
from .known_answers import KnownAnswer, known_answer, known_answers
from .registry import CHAPTERS, KINDS, SOURCES, Claim, UnknownClaimError, all_claims, get, register
from .rules import OUTCOMES, AtLeast, AtMost, Contains, Count, Holds, Permutation, Rule, Sign
from .verdicts import (
    MIME,
    RECORD_VERSION,
    WORDS,
    Verdict,
    anchor,
    choose,
    evaluate,
    json_safe,
    no_negative_zero,
    typeset,
)

__all__ = [
    "OUTCOMES",
    "KINDS",
    "CHAPTERS",
    "SOURCES",
    "MIME",
    "RECORD_VERSION",
    "WORDS",
    "Claim",
    "Rule",
    "Sign",
    "Holds",
    "AtMost",
    "AtLeast",
    "Contains",
    "Count",
    "Permutation",
    "Verdict",
    "UnknownClaimError",
    "register",
    "get",
    "all_claims",
    "evaluate",
    "from_clusters",
    "KnownAnswer",
    "known_answer",
    "known_answers",
    "choose",
    "anchor",
    "typeset",
    "no_negative_zero",
    "json_safe",
]


def _discover() -> list[str]:
    """Import every registry module ``_<group>.py`` of this package (they register their claims)."""
    names = sorted(
        m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("_") and not m.name.startswith("__")
    )
    for name in names:
        importlib.import_module(f"{__name__}.{name}")
    return names


REGISTRY_MODULES = tuple(_discover())
