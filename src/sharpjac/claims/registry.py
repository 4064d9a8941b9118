"""The claim records and the registry the ``_<group>.py`` modules fill at import time."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .rules import Rule

__all__ = ["CHAPTERS", "SOURCES", "KINDS", "Claim", "UnknownClaimError", "register", "get", "all_claims"]

#: The chapters in book order (the order of the table of contents); claims are listed in this order.
CHAPTERS = (
    "data",
    "hessian_structure",
    "conjugate_matrix",
    "ansatz",
    "t1_covering",
    "t2_lipschitz",
    "t3_low_loss",
    "t4_generalisation",
    "progressive_sharpening",
    "early_training",
    "whole_run",
    "weight_decay",
    "sam_augmentation",
    "batch_size",
    "learning_rate",
    "regularisers",
    "causal_test",
)

SOURCES = ("paper", "companion")

#: What a registered entry is. A *claim* can come out either way on honest data and is tallied;
#: a *check* is an identity or a proven bound that can fail only through a bug (shown apart with
#: its tightest margin, never tallied); *information* is a number the reader should see that no
#: one claims (shown apart, never tallied).
KINDS = ("claim", "check", "information")

_ID = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Claim:
    """One claim of the paper (or of the companion's formulation of it) and how it is decided.

    Attributes:
        id: ``"<chapter>.<snake_name>"``, e.g. ``"weight_decay.jacobian_tracks_gap"``.
        chapter: the notebook that evaluates it, e.g. ``"weight_decay"`` (one of :data:`CHAPTERS`).
        statement: the claim in one sentence.
        statistic: what is measured, e.g. ``"|rho(gap, max|Jf|)| - |rho(gap, sharpness)|, 95 % interval"``.
        rule: the decision rule (:mod:`sharpjac.claims.rules`).
        source: ``"paper"`` or ``"companion"``.
        kind: ``"claim"``, ``"check"`` or ``"information"`` (see :data:`KINDS`); only claims are
            tallied on the scorecard.
    """

    id: str
    chapter: str
    statement: str
    statistic: str
    rule: Rule
    source: str = "paper"
    kind: str = "claim"

    def __post_init__(self):
        if not isinstance(self.id, str) or not _ID.match(self.id):
            raise ValueError(f"Claim: id={self.id!r} is invalid; accepted: '<chapter>.<snake_name>' in lower case")
        if self.chapter not in CHAPTERS:
            raise ValueError(f"Claim {self.id}: chapter={self.chapter!r} is invalid; accepted: {', '.join(CHAPTERS)}")
        if self.id.split(".")[0] != self.chapter:
            raise ValueError(
                f"Claim: id={self.id!r} is invalid for chapter {self.chapter!r}; accepted: an id starting "
                f"'{self.chapter}.'"
            )
        for name in ("statement", "statistic"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"Claim {self.id}: {name}={value!r} is invalid; accepted: a non-empty string")
        if not (callable(getattr(self.rule, "describe", None)) and callable(getattr(self.rule, "decide", None))):
            raise TypeError(
                f"Claim {self.id}: rule={self.rule!r} is invalid; accepted: a rule with describe() and decide() "
                "(e.g. claims.Sign(+1))"
            )
        if self.source not in SOURCES:
            raise ValueError(f"Claim {self.id}: source={self.source!r} is invalid; accepted: {', '.join(SOURCES)}")
        if self.kind not in KINDS:
            raise ValueError(f"Claim {self.id}: kind={self.kind!r} is invalid; accepted: {', '.join(KINDS)}")


class UnknownClaimError(KeyError):
    """A claim id that is not registered (a ``KeyError`` whose message prints as one plain line)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


_REGISTRY: dict[str, Claim] = {}


def register(*claims: Claim) -> None:
    """Add claims to the registry; an id registered twice (or a non-Claim) is an error."""
    for c in claims:
        if not isinstance(c, Claim):
            raise TypeError(f"register: {c!r} is invalid; accepted: claims.Claim objects")
        if c.id in _REGISTRY:
            raise ValueError(f"register: claim id={c.id!r} is already registered; accepted: a new id")
    ids = [c.id for c in claims]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise ValueError(f"register: claim id={sorted(dup)[0]!r} appears twice in one call; accepted: distinct ids")
    for c in claims:
        _REGISTRY[c.id] = c


def get(claim_id: str) -> Claim:
    """The registered claim with this id (a one-line ``KeyError`` naming close ids otherwise)."""
    try:
        return _REGISTRY[claim_id]
    except (KeyError, TypeError):
        prefix = str(claim_id).split(".")[0]
        near = [i for i in sorted(_REGISTRY) if i.startswith(prefix + ".")]
        accepted = ", ".join(near) if near else f"one of the {len(_REGISTRY)} registered ids (claims.all_claims())"
        raise UnknownClaimError(f"claim_id={claim_id!r} is not registered; accepted: {accepted}") from None


def _order(c: Claim) -> tuple[int, str]:
    return CHAPTERS.index(c.chapter), c.id


def all_claims() -> list[Claim]:
    """Every registered claim, in book order (chapter order of the table of contents, then id)."""
    return sorted(_REGISTRY.values(), key=_order)


def _unregister(claim_id: str) -> None:
    """Remove a claim (tests only)."""
    _REGISTRY.pop(claim_id, None)
