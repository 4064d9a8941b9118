r"""Verdicts: a claim's outcome computed from its numbers, shown as a box and recorded for the scorecard.

:func:`evaluate` looks the claim up, lets its rule decide from the numbers, and returns a
:class:`Verdict`. :meth:`Verdict.show` displays one output with two representations:

- ``text/markdown``: the verdict box, a MyST admonition (class ``tip`` / ``warning`` / ``note`` for
  agree / disagree / inconclusive) titled ``Verdict: <Outcome>``, with the claim, the evidence and
  the decision rule, preceded by an HTML anchor ``claim-<id with dots as dashes>``;
- :data:`MIME` (``application/vnd.sharpjac.claim+json``): the machine-readable record that
  :mod:`sharpjac.scorecard` collects from the executed notebooks.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from numbers import Integral, Real

from .._util import jsonable
from .registry import Claim, get
from .rules import OUTCOMES

__all__ = ["MIME", "RECORD_VERSION", "WORDS", "Verdict", "evaluate", "choose", "anchor", "json_safe"]

MIME = "application/vnd.sharpjac.claim+json"
RECORD_VERSION = 1
WORDS = {"agree": "Agree", "disagree": "Disagree", "inconclusive": "Inconclusive"}
_BOX_CLASS = {"agree": "tip", "disagree": "warning", "inconclusive": "note"}
_SOURCE_TEXT = {"paper": "the paper", "companion": "the companion's formulation"}


def anchor(claim_id: str) -> str:
    """The HTML id of a claim's verdict box: ``claim-`` + the id with dots replaced by dashes."""
    return "claim-" + claim_id.replace(".", "-")


def json_safe(value):
    """``value`` with NumPy scalars made plain, non-finite floats made ``None`` (JSON has no NaN) and
    other objects made text: :func:`sharpjac._util.jsonable` with ``nonfinite="null", other="str"``."""
    return jsonable(value, nonfinite="null", other="str")


def _plain(markdown: str) -> str:
    """A one-line plain-text version of a short Markdown text (emphasis and code marks removed)."""
    text = re.sub(r"(\*\*|__|`)", "", markdown)
    text = re.sub(r"(?<![\w*])\*(?!\s)([^*]+?)\*", r"\1", text)
    return " ".join(text.split())


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    return no_negative_zero(f"{x:.3g}" if (abs(x) >= 1e-3 or x == 0) else f"{x:.2e}")


_NEGATIVE_ZERO = re.compile(r"(?<![\w.])[-−](0(?:\.0+)?)(?![\d.])")


_WORDS = {"eps": "ε", "epsilon": "ε", "delta": "δ", "tau": "τ", "rho": "ρ", "eta": "η", "sigma": "σ"}
_TYPESET = [
    (re.compile(r"\|\|"), "‖"),
    (re.compile(r"<="), "≤"),
    (re.compile(r">="), "≥"),
    (re.compile(r"(?<=[\w)|‖]) - (?=[\w(|‖])"), " − "),
    (re.compile(r"(?<=\w) x (?=\w)"), " × "),
    (re.compile(r"\blambda_max\b"), "λₘₐₓ"),
    (re.compile(r"\blambda(?=_|\b)"), "λ"),
    (re.compile(r"\b(" + "|".join(_WORDS) + r")\b"), lambda m: _WORDS[m.group(1)]),
    (re.compile(r"\bsqrt ?\((\w)\)"), r"√\1"),
    (re.compile(r"\bsqrt ?(?=[\w(])"), "√"),
    (re.compile(r"(?<=[\w‖])_i\b"), "ᵢ"),
    (re.compile(r"(?<=[\w‖])_j\b"), "ⱼ"),
    (re.compile(r"(?<=[\w‖])_1\b"), "₁"),
    (re.compile(r"(?<=[\w‖])_2\b"), "₂"),
    (re.compile(r"(\bsup|\b[A-Za-zλ]|‖)_([A-Za-z0-9])\b"), r"\1<sub>\2</sub>"),
    (re.compile(r"\^\((\d+)\)"), r"<sup>(\1)</sup>"),
    (re.compile(r"\^\(([^()]*(?:\([^()]*\))?[^()]*)\)"), r"<sup>\1</sup>"),
    (re.compile(r"\^T\b"), "ᵀ"),
    (re.compile(r"\^(\w+)"), r"<sup>\1</sup>"),
]


def typeset(text: str) -> str:
    """Plain-text maths of a claim written for readers: Unicode symbols and HTML sub/superscripts.

    Claims are registered in ASCII (``max_i ||Jf(x_i)|| <= sup_S ||Jf||``, ``1 - eps``,
    ``|tau|``, ``(log(N/eps)/N)^(1/d)``); the verdict boxes and the scorecard (MyST Markdown, where
    inline HTML is kept) show them typeset: ``maxᵢ ‖Jf(xᵢ)‖ ≤ sup<sub>S</sub> ‖Jf‖``, ``1 − ε``,
    ``|τ|``, ``(log(N/ε)/N)<sup>1/d</sup>``. Text between ``$`` signs (MathJax) is left alone.

    Example:
        >>> typeset("max_i ||Jf(x_i)|| <= sup_S ||Jf|| with probability 1 - eps; $x_i$")
        'maxᵢ ‖Jf(xᵢ)‖ ≤ sup<sub>S</sub> ‖Jf‖ with probability 1 − ε; $x_i$'
    """
    parts = str(text).split("$")
    for i in range(0, len(parts), 2):
        for pattern, repl in _TYPESET:
            parts[i] = pattern.sub(repl, parts[i])
    return "$".join(parts)


def no_negative_zero(text: str) -> str:
    """``text`` with every rounded negative zero (``-0``, ``-0.00``, ``−0.0``) written without its sign.

    Example:
        >>> no_negative_zero("[-0.00, 0.31], -0.5, x-0.00")
        '[0.00, 0.31], -0.5, x-0.00'
    """
    return _NEGATIVE_ZERO.sub(r"\1", text)


@dataclass(frozen=True)
class Verdict:
    """The computed outcome of one claim in one run of a chapter.

    Attributes:
        claim: the registered :class:`~sharpjac.claims.Claim`.
        outcome: one of ``"agree"``, ``"disagree"``, ``"inconclusive"`` (decided by the claim's rule).
        evidence: Markdown, one to three sentences built from the computed numbers.
        preset, seeds: how the chapter ran (e.g. ``"quick"``, 3).
        numbers: every number passed to :func:`evaluate` (the rule's inputs and any extras).
        estimate, low, high: the key number and its interval (NaN where there is none).
        label: what the key number is, e.g. ``"ρ(gap, max‖Jf‖)"`` (may be empty).
        margin: for a check, its tightest margin as a sentence (may be empty).
        unit, n_units: what the interval or test is over and how many ("seeds", 5); empty and 0
            when the numbers do not come from clusters (a check, a single study).
        fragile: True when leaving out one cluster (seed, grid point) changes the outcome, False
            when no single cluster does, None when not assessed (fewer than two clusters).
        flips: the clusters whose removal changes the outcome (as text).
    """

    claim: Claim
    outcome: str
    evidence: str
    preset: str
    seeds: int
    numbers: dict = field(default_factory=dict)
    estimate: float = float("nan")
    low: float = float("nan")
    high: float = float("nan")
    label: str = ""
    margin: str = ""
    unit: str = ""
    n_units: int = 0
    fragile: bool | None = None
    flips: tuple = ()

    @property
    def units_text(self) -> str:
        """``"5 seeds"``, ``"1 seed"`` (empty when the numbers do not come from clusters)."""
        if not self.unit:
            return ""
        # units are given in the plural ("seeds", "grid points"); one of them reads in the singular
        one = self.unit[:-1] if self.n_units == 1 and self.unit.endswith("s") else self.unit
        return f"{self.n_units} {one}"

    @property
    def fragility_text(self) -> str:
        """``"fragile: leaving out seed 3 changes the outcome"``, ``"robust to leaving out any one of
        the 5 seeds"``, or empty when not assessed."""
        if self.fragile is None:
            return ""
        if self.fragile:
            which = ", ".join(str(f) for f in self.flips)
            return f"fragile: the outcome changes when one of these {self.unit or 'clusters'} is left out: {which}"
        return f"robust to leaving out any one of the {self.units_text or 'clusters'}"

    @property
    def word(self) -> str:
        """``"Agree"``, ``"Disagree"`` or ``"Inconclusive"``."""
        return WORDS[self.outcome]

    @property
    def degenerate(self) -> bool:
        """True when the interval has zero width (``low == high``, both finite)."""
        return math.isfinite(self.low) and math.isfinite(self.high) and self.low == self.high

    @property
    def anchor(self) -> str:
        return anchor(self.claim.id)

    def key_text(self) -> str:
        """The key number as text: ``label = estimate [low, high]`` (parts that exist)."""
        if not math.isfinite(self.estimate):
            counted = getattr(self.claim.rule, "counted", None)
            text = counted(**self.numbers) if counted is not None else None
            return text or "n/a"
        text = _fmt(self.estimate)
        if math.isfinite(self.low) and math.isfinite(self.high):
            text += f" [{_fmt(self.low)}, {_fmt(self.high)}]"
            if self.degenerate:
                text += " (degenerate interval)"
        return f"{self.label} = {text}" if self.label else text

    def markdown(self) -> str:
        """The verdict box as MyST Markdown (anchor, then an admonition titled with the outcome)."""
        c = self.claim
        seeds = f"{self.seeds} seed" + ("s" if self.seeds != 1 else "")
        units = f" Unit: {self.units_text}." if self.unit else ""
        fragility = f" Fragility: {self.fragility_text}." if self.fragility_text else ""
        small = (
            f"Statistic: {typeset(c.statistic)}. Key number: {typeset(self.key_text())}.{units}{fragility} "
            f"Decision rule: {typeset(c.rule.describe())} Run: preset {self.preset}, {seeds}. Claim id: {c.id}."
        )
        fence = "`" * 5
        return (
            f'<div id="{self.anchor}" class="sharpjac-claim-anchor"></div>\n\n'
            f"{fence}{{admonition}} Verdict: {self.word}\n"
            f":class: {_BOX_CLASS[self.outcome]} sharpjac-verdict sharpjac-{self.outcome}\n\n"
            f"**Claim** ({_SOURCE_TEXT[c.source]}): {typeset(c.statement)}\n\n"
            f"**Evidence.** {no_negative_zero(self.evidence)}\n\n"
            f"<small>{small}</small>\n"
            f"{fence}\n"
        )

    def record(self) -> dict:
        """The machine-readable record (JSON-safe: NaN becomes null) the scorecard reads."""
        c = self.claim
        return json_safe(
            {
                "version": RECORD_VERSION,
                "id": c.id,
                "chapter": c.chapter,
                "source": c.source,
                "statement": c.statement,
                "statistic": c.statistic,
                "rule": c.rule.describe(),
                "outcome": self.outcome,
                "word": self.word,
                "estimate": self.estimate,
                "low": self.low,
                "high": self.high,
                "label": self.label,
                "kind": c.kind,
                "margin": self.margin,
                "unit": self.unit,
                "n_units": self.n_units,
                "fragile": self.fragile,
                "flips": [str(f) for f in self.flips],
                "degenerate": self.degenerate,
                "key_text": self.key_text(),
                "evidence": _plain(self.evidence),
                "preset": self.preset,
                "seeds": self.seeds,
                "numbers": self.numbers,
            }
        )

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {
            "text/markdown": self.markdown(),
            MIME: self.record(),
            "text/plain": f"Verdict: {self.word} ({self.claim.id}): {self.key_text()}",
        }

    def show(self) -> None:
        """Display the verdict box and its record (one output; call it in a ``remove-input`` cell)."""
        from IPython.display import display

        display(self._repr_mimebundle_(), raw=True)

    def glue(self, name: str) -> None:
        """Glue ``<name>_outcome`` (the word), ``_estimate``, ``_low``, ``_high`` (floats),
        ``_interval`` (text ``est [low, high]``) and ``_evidence`` (Markdown) for the prose."""
        from IPython.display import Markdown
        from myst_nb import glue

        if not isinstance(name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise ValueError(f"glue: name={name!r} is invalid; accepted: an identifier such as 'wd_claim'")
        glue(f"{name}_outcome", self.word, display=False)
        glue(f"{name}_estimate", float(self.estimate), display=False)
        glue(f"{name}_low", float(self.low), display=False)
        glue(f"{name}_high", float(self.high), display=False)
        glue(f"{name}_interval", self.key_text(), display=False)
        glue(f"{name}_evidence", Markdown(self.evidence), display=False)


_KEY = ("estimate", "low", "high")


def evaluate(
    claim_id: str,
    *,
    evidence: str,
    preset: str,
    seeds: int,
    unit: str = "",
    n_units: int | None = None,
    fragility=None,
    **numbers,
) -> Verdict:
    """Decide a registered claim from computed numbers.

    Args:
        claim_id: a registered id (``claims.all_claims()``).
        evidence: Markdown built from the computed numbers (one to three sentences).
        preset: the preset the chapter ran with (e.g. ``"quick"``).
        seeds: how many seeds the numbers pool (>= 1).
        **numbers: the rule's inputs (e.g. ``estimate, low, high`` for ``Sign``; ``k, n`` for ``Count``),
            optionally ``estimate``, ``low``, ``high`` (the key number shown on the scorecard) and
            ``label`` (what it is); any other real number is kept in the record. A check
            (``kind="check"``) may pass ``margin``: a sentence with its tightest margin, how close
            the closest case came to failing (e.g. ``"largest radius / bound = 0.10"``).
        unit: what the numbers' interval or test is over, plural (``"seeds"``, ``"grid points"``).
        n_units: how many of them (required with ``unit``).
        fragility: an :class:`sharpjac.inference.Fragility` (from :func:`sharpjac.inference.leave_one_out`
            with this claim's rule), or None when not assessed. Its full-data outcome must equal
            the rule's outcome here: a mismatch means it recomputed something else, and is an error.

    Returns:
        :class:`Verdict`; its outcome comes from the rule, never from the caller.
    """
    claim = get(claim_id)
    if not isinstance(evidence, str) or not evidence.strip():
        raise ValueError(
            f"evaluate {claim_id}: evidence={evidence!r} is invalid; accepted: a non-empty Markdown string"
        )
    if not isinstance(preset, str) or not preset.strip():
        raise ValueError(f"evaluate {claim_id}: preset={preset!r} is invalid; accepted: a non-empty string")
    if isinstance(seeds, bool) or not isinstance(seeds, Integral) or seeds < 1:
        raise ValueError(f"evaluate {claim_id}: seeds={seeds!r} is invalid; accepted: a positive integer")
    label = numbers.pop("label", "")
    if not isinstance(label, str):
        raise ValueError(f"evaluate {claim_id}: label={label!r} is invalid; accepted: a string")
    margin = numbers.pop("margin", "")
    if not isinstance(margin, str):
        raise ValueError(f"evaluate {claim_id}: margin={margin!r} is invalid; accepted: a string")
    needs = tuple(getattr(claim.rule, "needs", ()))
    missing = [k for k in needs if k not in numbers]
    if missing:
        raise ValueError(
            f"evaluate {claim_id}: missing number {missing[0]!r}; accepted: the rule "
            f"{type(claim.rule).__name__} needs {', '.join(needs)}"
        )
    for k, v in numbers.items():
        if isinstance(v, bool) or not isinstance(v, Real):
            raise ValueError(f"evaluate {claim_id}: number {k}={v!r} is invalid; accepted: a real number (NaN allowed)")
    outcome = claim.rule.decide(**numbers)
    if outcome not in OUTCOMES:
        raise ValueError(f"evaluate {claim_id}: the rule returned {outcome!r}; accepted: one of {OUTCOMES}")
    if not isinstance(unit, str):
        raise ValueError(f"evaluate {claim_id}: unit={unit!r} is invalid; accepted: a plural noun such as 'seeds'")
    if unit and (isinstance(n_units, bool) or not isinstance(n_units, Integral) or n_units < 0):
        raise ValueError(f"evaluate {claim_id}: n_units={n_units!r} is invalid; accepted: a count >= 0 (unit {unit!r})")
    fragile, flips = None, ()
    if fragility is not None:
        if getattr(fragility, "outcome", None) != outcome:
            raise ValueError(
                f"evaluate {claim_id}: fragility.outcome={getattr(fragility, 'outcome', None)!r} differs from the "
                f"rule's outcome {outcome!r}; accepted: a leave_one_out of this claim's own decision"
            )
        fragile, flips = bool(fragility.fragile), tuple(str(f) for f in fragility.flips)
    if any(k in numbers for k in _KEY):
        key = tuple(float(numbers.get(k, float("nan"))) for k in _KEY)
    else:
        key = tuple(float(x) for x in claim.rule.key(**numbers)) if hasattr(claim.rule, "key") else (float("nan"),) * 3
    return Verdict(
        claim=claim,
        outcome=outcome,
        evidence=evidence.strip(),
        preset=preset,
        seeds=int(seeds),
        numbers=json_safe(numbers),
        estimate=key[0],
        low=key[1],
        high=key[2],
        label=label,
        margin=margin.strip(),
        unit=unit.strip(),
        n_units=int(n_units) if unit else 0,
        fragile=fragile,
        flips=flips,
    )


def choose(condition, if_true: str, if_false: str) -> str:
    """``if_true`` when ``condition`` else ``if_false``, for sentences that depend on a run.

    ``condition`` must be a real boolean (Python or NumPy): a NaN or ``None`` is an error rather
    than a silent ``False``.
    """
    if type(condition).__name__ not in ("bool", "bool_"):
        raise TypeError(f"choose: condition={condition!r} is invalid; accepted: a bool (True or False)")
    for name, text in (("if_true", if_true), ("if_false", if_false)):
        if not isinstance(text, str):
            raise TypeError(f"choose: {name}={text!r} is invalid; accepted: a string")
    return if_true if bool(condition) else if_false
