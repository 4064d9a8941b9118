r"""Decision rules: how a claim's numbers become one of ``agree``, ``disagree``, ``inconclusive``.

A rule is an object with

- ``needs``: the names of the numbers it reads (a tuple of strings);
- ``describe() -> str``: one sentence stating the rule, shown in the verdict box and on the scorecard;
- ``decide(**numbers) -> str``: the outcome, one of :data:`OUTCOMES`. Extra numbers are ignored;
  a missing one, or one that is not a real number, raises a one-line error.

The rules provided (``[l, u]`` is an interval, e.g. a 95 % bootstrap interval of an estimate):

=====================  =====================  ==========================================  ===========================
rule                   numbers                agree                                        disagree
=====================  =====================  ==========================================  ===========================
``Sign(+1)``           estimate, low, high    :math:`l > 0` (strictly)                    :math:`u < 0`
``Sign(-1)``           estimate, low, high    :math:`u < 0`                               :math:`l > 0`
``Holds()``            violations, checks     checks > 0 and violations = 0               violations > 0
``AtMost(c)``          value                  value :math:`\le c`                         value :math:`> c`
``AtLeast(c)``         value                  value :math:`\ge c`                         value :math:`< c`
``Contains(t)``        estimate, low, high    :math:`l \le t \le u`                       otherwise
``Count(r)``           k, n                   :math:`k \ge r\,n` and :math:`n > 0`        :math:`k < r\,n`
``Permutation(a)``     p_greater, p_less,     p_greater :math:`\le a` (needs min_p <= a)  p_less :math:`\le a`
                       min_p
``CountOfRuns(r, m)``  k, n                   as ``Count(r)``, and :math:`n \ge m`        as ``Count(r)``, n >= m
``Within(t, e)``       estimate, low, high    :math:`t-e < l` and :math:`u < t+e`          interval outside t +- e
=====================  =====================  ==========================================  ===========================

Everything else is ``inconclusive``: an interval that contains 0 for ``Sign``, ``checks == 0`` for
``Holds``, ``n == 0`` for ``Count``, and any NaN among the numbers a rule reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real

OUTCOMES = ("agree", "disagree", "inconclusive")

__all__ = [
    "OUTCOMES",
    "Rule",
    "Sign",
    "Holds",
    "AtMost",
    "AtLeast",
    "Contains",
    "Count",
    "CountOfRuns",
    "Permutation",
    "Within",
]


def _real(rule: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{rule}: number {name}={value!r} is invalid; accepted: a real number (NaN allowed)")
    return float(value)


def _count(rule: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
        raise ValueError(f"{rule}: number {name}={value!r} is invalid; accepted: a non-negative integer")
    return int(value)


def _take(rule: Rule, numbers: dict) -> None:
    missing = [k for k in rule.needs if k not in numbers]
    if missing:
        raise ValueError(
            f"{type(rule).__name__}: missing number {missing[0]!r}; accepted: the numbers {', '.join(rule.needs)}"
        )


def _interval(rule: str, numbers: dict) -> tuple[float, float, float] | None:
    """(estimate, low, high) as floats, or None when one is NaN; low > high is an error."""
    est, low, high = (_real(rule, k, numbers[k]) for k in ("estimate", "low", "high"))
    if any(math.isnan(v) for v in (est, low, high)):
        return None
    if low > high:
        raise ValueError(f"{rule}: low={low!r} > high={high!r} is invalid; accepted: low <= high")
    return est, low, high


class Rule:
    """Base class of the decision rules (see the module docstring for the table)."""

    needs: tuple[str, ...] = ()

    def describe(self) -> str:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def decide(self, **numbers) -> str:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def key(self, **numbers) -> tuple[float, float, float]:
        """The (estimate, low, high) a scorecard shows when the caller passes none (NaN: none)."""
        nan = float("nan")
        return nan, nan, nan


@dataclass(frozen=True)
class Sign(Rule):
    """The sign of an estimate, read from its interval.

    ``predicted=+1``: agree when ``low > 0``, disagree when ``high < 0``, inconclusive when the
    interval contains 0 (or a number is NaN). ``predicted=-1`` mirrors it.
    """

    predicted: int = +1
    needs = ("estimate", "low", "high")

    def __post_init__(self):
        if isinstance(self.predicted, bool) or self.predicted not in (1, -1):
            raise ValueError(f"Sign: predicted={self.predicted!r} is invalid; accepted: +1 or -1")

    def describe(self) -> str:
        side, other = ("above", "below") if self.predicted > 0 else ("below", "above")
        return (
            f"Agree when the whole interval lies {side} 0, disagree when it lies wholly {other} 0, "
            "inconclusive when it contains 0."
        )

    def decide(self, **numbers) -> str:
        _take(self, numbers)
        iv = _interval("Sign", numbers)
        if iv is None:
            return "inconclusive"
        _, low, high = iv
        lo, hi = (low, high) if self.predicted > 0 else (-high, -low)
        if lo > 0:
            return "agree"
        if hi < 0:
            return "disagree"
        return "inconclusive"

    def key(self, **numbers):
        return tuple(float(numbers[k]) for k in ("estimate", "low", "high"))


@dataclass(frozen=True)
class Holds(Rule):
    """A property checked case by case: agree when it was checked at least once and never failed."""

    needs = ("violations", "checks")

    def describe(self) -> str:
        return (
            "Agree when every check passes (at least one check), disagree when any check fails, "
            "inconclusive when nothing could be checked."
        )

    def decide(self, **numbers) -> str:
        _take(self, numbers)
        v = _count("Holds", "violations", numbers["violations"])
        c = _count("Holds", "checks", numbers["checks"])
        if v > c:
            raise ValueError(f"Holds: violations={v} > checks={c} is invalid; accepted: violations <= checks")
        if v > 0:
            return "disagree"
        return "agree" if c > 0 else "inconclusive"

    def counted(self, **numbers) -> str:
        """``"v of c checks fail"``: the key number of a ``Holds`` claim as text."""
        return f"{int(numbers['violations'])} of {int(numbers['checks'])} checks fail"


@dataclass(frozen=True)
class AtMost(Rule):
    """A value no larger than a threshold: agree when ``value <= threshold`` (NaN: inconclusive)."""

    threshold: float
    needs = ("value",)

    def __post_init__(self):
        t = _real("AtMost", "threshold", self.threshold)
        if math.isnan(t):
            raise ValueError("AtMost: threshold=nan is invalid; accepted: a real number that is not NaN")

    def describe(self) -> str:
        return f"Agree when the value is at most {self.threshold:g}, disagree when it is larger."

    def decide(self, **numbers) -> str:
        _take(self, numbers)
        v = _real("AtMost", "value", numbers["value"])
        if math.isnan(v):
            return "inconclusive"
        return "agree" if v <= self.threshold else "disagree"

    def key(self, **numbers):
        v = float(numbers["value"])
        return v, float("nan"), float("nan")


@dataclass(frozen=True)
class AtLeast(Rule):
    """A value no smaller than a threshold: agree when ``value >= threshold`` (NaN: inconclusive)."""

    threshold: float
    needs = ("value",)

    def __post_init__(self):
        t = _real("AtLeast", "threshold", self.threshold)
        if math.isnan(t):
            raise ValueError("AtLeast: threshold=nan is invalid; accepted: a real number that is not NaN")

    def describe(self) -> str:
        return f"Agree when the value is at least {self.threshold:g}, disagree when it is smaller."

    def decide(self, **numbers) -> str:
        _take(self, numbers)
        v = _real("AtLeast", "value", numbers["value"])
        if math.isnan(v):
            return "inconclusive"
        return "agree" if v >= self.threshold else "disagree"

    def key(self, **numbers):
        v = float(numbers["value"])
        return v, float("nan"), float("nan")


@dataclass(frozen=True)
class Contains(Rule):
    """An interval that should contain a target value: agree when ``low <= target <= high``."""

    target: float
    needs = ("estimate", "low", "high")

    def __post_init__(self):
        t = _real("Contains", "target", self.target)
        if not math.isfinite(t):
            raise ValueError(f"Contains: target={self.target!r} is invalid; accepted: a finite real number")

    def describe(self) -> str:
        return (
            f"Agree when the interval contains {self.target:g}, disagree when it excludes it "
            "(inconclusive when it is undefined)."
        )

    def decide(self, **numbers) -> str:
        _take(self, numbers)
        iv = _interval("Contains", numbers)
        if iv is None:
            return "inconclusive"
        _, low, high = iv
        return "agree" if low <= self.target <= high else "disagree"

    def key(self, **numbers):
        return tuple(float(numbers[k]) for k in ("estimate", "low", "high"))


@dataclass(frozen=True)
class Count(Rule):
    """``k`` of ``n`` cases show the predicted behaviour: agree when ``k >= required * n`` (``n > 0``).

    Kept simple on purpose: disagree whenever ``k / n < required``; inconclusive when ``n == 0``.
    """

    required: float = 1.0
    needs = ("k", "n")

    def __post_init__(self):
        r = _real("Count", "required", self.required)
        if not (0.0 < r <= 1.0):
            raise ValueError(f"Count: required={self.required!r} is invalid; accepted: a fraction in (0, 1]")

    def describe(self) -> str:
        if self.required >= 1.0:
            return "Agree when every case shows the predicted behaviour, disagree when any does not."
        return (
            f"Agree when at least {self.required:.0%} of the cases show the predicted behaviour, "
            "disagree when fewer do."
        )

    def decide(self, **numbers) -> str:
        _take(self, numbers)
        k = _count("Count", "k", numbers["k"])
        n = _count("Count", "n", numbers["n"])
        if k > n:
            raise ValueError(f"Count: k={k} > n={n} is invalid; accepted: k <= n")
        if n == 0:
            return "inconclusive"
        return "agree" if k >= self.required * n else "disagree"

    def counted(self, **numbers) -> str:
        """``"k of n cases"``: the key number of a ``Count`` claim as text."""
        return f"{int(numbers['k'])} of {int(numbers['n'])} cases"


@dataclass(frozen=True)
class Permutation(Rule):
    """A one-sided permutation test in the predicted direction, at level ``alpha``.

    Reads ``p_greater`` (the share of permutations at least as large as the observed statistic),
    ``p_less`` (at least as small) and ``min_p`` (the smallest p-value the design can give, e.g.
    ``1/R!`` for ``R`` exchangeable runs). Agree when ``p_greater <= alpha``; disagree when
    ``p_less <= alpha`` (significantly the other way); inconclusive otherwise, and always when
    ``min_p > alpha``: the design has too few runs to decide. Under the null a correct permutation
    test says agree with probability at most ``alpha`` (its false-agree rate).
    """

    alpha: float = 0.05
    needs = ("p_greater", "p_less", "min_p")

    def __post_init__(self):
        a = _real("Permutation", "alpha", self.alpha)
        if not (0.0 < a < 1.0):
            raise ValueError(f"Permutation: alpha={self.alpha!r} is invalid; accepted: a level in (0, 1)")

    def describe(self) -> str:
        return (
            f"Agree when the one-sided permutation p-value in the predicted direction is at most {self.alpha:g}, "
            f"disagree when the one in the other direction is; inconclusive otherwise, and when the design "
            f"cannot reach {self.alpha:g} (too few runs to decide)."
        )

    def decide(self, **numbers) -> str:
        _take(self, numbers)
        pg, pl, mp = (_real("Permutation", k, numbers[k]) for k in self.needs)
        if any(math.isnan(v) for v in (pg, pl, mp)) or mp > self.alpha:
            return "inconclusive"
        for name, v in (("p_greater", pg), ("p_less", pl), ("min_p", mp)):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"Permutation: {name}={v!r} is invalid; accepted: a probability in [0, 1]")
        if pg <= self.alpha:
            return "agree"
        return "disagree" if pl <= self.alpha else "inconclusive"


@dataclass(frozen=True)
class CountOfRuns(Count):
    """:class:`~sharpjac.claims.rules.Count` over runs that needs at least ``min_cases`` runs.

    Below ``min_cases`` the outcome is *inconclusive* (too few runs to decide): with fewer than 5
    runs one run moves the share by 20 % or more, the whole distance between a required 80 % and
    all of them, so the share says nothing about the runs one did not make.
    """

    min_cases: int = 5

    def describe(self) -> str:
        return super().describe() + f" Inconclusive with fewer than {self.min_cases} runs (too few runs to decide)."

    def decide(self, **numbers) -> str:
        outcome = super().decide(**numbers)
        return "inconclusive" if int(numbers["n"]) < self.min_cases else outcome


@dataclass(frozen=True)
class Within(Rule):
    """An equivalence test: the interval lies inside ``target +- tolerance``.

    Agree when ``target - tolerance < low`` and ``high < target + tolerance`` (with a 90 % interval
    these are the two one-sided tests at 5 %: at the band's edge the rule agrees at most 5 % of the
    time); disagree when the interval lies wholly outside the band; inconclusive otherwise (the
    interval straddles an edge of the band) or when a number is NaN.
    """

    target: float
    tolerance: float
    needs = ("estimate", "low", "high")

    def __post_init__(self):
        for name in ("target", "tolerance"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(v):
                raise ValueError(f"Within: {name}={v!r} is invalid; accepted: a finite real number")
        if self.tolerance <= 0:
            raise ValueError(f"Within: tolerance={self.tolerance!r} is invalid; accepted: a number > 0")

    def describe(self) -> str:
        lo, hi = self.target - self.tolerance, self.target + self.tolerance
        return (
            f"Agree when the whole interval lies inside [{lo:.3g}, {hi:.3g}] ({self.target:.3g} ± "
            f"{self.tolerance:.3g}; two one-sided tests), disagree when it lies wholly outside, inconclusive "
            "when it straddles an edge."
        )

    def decide(self, **numbers) -> str:
        vals = []
        for k in self.needs:
            if k not in numbers:
                raise ValueError(f"Within: missing number {k!r}; accepted: estimate, low, high")
            v = numbers[k]
            if isinstance(v, bool) or not isinstance(v, Real):
                raise ValueError(f"Within: {k}={v!r} is invalid; accepted: a real number (NaN allowed)")
            vals.append(float(v))
        _, low, high = vals
        if any(math.isnan(v) for v in vals):
            return "inconclusive"
        if low > high:
            raise ValueError(f"Within: low={low!r} > high={high!r} is invalid; accepted: low <= high")
        lo, hi = self.target - self.tolerance, self.target + self.tolerance
        if lo < low and high < hi:
            return "agree"
        if high < lo or low > hi:
            return "disagree"
        return "inconclusive"

    def key(self, **numbers):
        return tuple(float(numbers[k]) for k in ("estimate", "low", "high"))
