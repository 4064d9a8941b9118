r"""Known answers: every empirical decision rule tried on simulated data where the answer is known.

A rule that decides a claim of the paper must rarely say *agree* when the claim is false, and
must be able to say it when the claim is true. Each experiment module registers, for each of its
empirical claims (``kind="claim"``), a :class:`KnownAnswer`: two simulators at the chapter's
design (its seeds, grid points, measurement steps) and the function that turns one simulated data
set into an outcome *through the same package code the chapter uses*. :func:`operating` runs it
(:func:`sharpjac.inference.operating_characteristics`), and :mod:`sharpjac.claims.calibration`
tabulates every claim for the test suite and for the book's page "How the verdicts are decided".

The false data sit on the boundary of the null (no effect, no association), where a rule that
controls its error says agree most often; the true data carry a stated, realistic effect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import inference
from .registry import get
from .rules import OUTCOMES

__all__ = ["KnownAnswer", "known_answer", "known_answers", "operating"]

_KNOWN: dict[str, KnownAnswer] = {}


@dataclass(frozen=True)
class KnownAnswer:
    """A claim's rule with simulators where the claim is false and where it is true.

    Attributes:
        claim_id: the registered claim.
        design: one sentence: the simulated design (e.g. "5 seeds x 9 grid points, Spearman per seed,
            t interval over seeds"), the chapter's quick design.
        truth: what the true data carry (e.g. "true: rho = 0.6 between the grid means").
        simulate_false, simulate_true: ``rng -> data``.
        decide: ``data -> outcome`` through the chapter's own code.
    """

    claim_id: str
    design: str
    truth: str
    simulate_false: Callable[[np.random.Generator], Any]
    simulate_true: Callable[[np.random.Generator], Any]
    decide: Callable[[Any], str]


def known_answer(
    claim_id: str,
    *,
    design: str,
    simulate_false: Callable[[np.random.Generator], Any],
    simulate_true: Callable[[np.random.Generator], Any],
    decide: Callable[[Any], str],
    truth: str = "",
) -> KnownAnswer:
    """Register a claim's known-answer simulation (at import of the experiment module).

    Registering the same claim again replaces the entry (a module reloaded in a notebook).
    """
    claim = get(claim_id)
    if claim.kind != "claim":
        raise ValueError(
            f"known_answer {claim_id}: kind={claim.kind!r} is invalid; accepted: a claim of kind 'claim' "
            "(checks and information rows are not decided on noisy data)"
        )
    for name, value in (("design", design), ("truth", truth)):
        if not isinstance(value, str):
            raise ValueError(f"known_answer {claim_id}: {name}={value!r} is invalid; accepted: a sentence")
    if not design.strip():
        raise ValueError(f"known_answer {claim_id}: design='' is invalid; accepted: a sentence naming the design")
    for name, fn in (("simulate_false", simulate_false), ("simulate_true", simulate_true), ("decide", decide)):
        if not callable(fn):
            raise ValueError(f"known_answer {claim_id}: {name}={fn!r} is invalid; accepted: a function")
    entry = KnownAnswer(claim_id, design.strip(), truth.strip(), simulate_false, simulate_true, decide)
    _KNOWN[claim_id] = entry
    return entry


def known_answers() -> dict[str, KnownAnswer]:
    """The registered known answers by claim id (import :mod:`sharpjac.experiments` first)."""
    return dict(_KNOWN)


def operating(entry: KnownAnswer, *, n_trials: int, seed: int) -> inference.OperatingCharacteristics:
    """False-agree rate and power of one claim's rule at its design."""

    def says_agree(data) -> bool:
        outcome = entry.decide(data)
        if outcome not in OUTCOMES:
            raise ValueError(f"known answer {entry.claim_id}: decide returned {outcome!r}; accepted: one of {OUTCOMES}")
        return outcome == "agree"

    return inference.operating_characteristics(
        says_agree, entry.simulate_false, entry.simulate_true, n_trials=n_trials, seed=seed
    )
