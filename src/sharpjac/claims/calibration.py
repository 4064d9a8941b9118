r"""How the verdicts are decided: every empirical rule's false-agree rate and power, measured.

:func:`table` runs each registered :class:`~sharpjac.claims.known_answers.KnownAnswer` (the
experiment modules register them when :mod:`sharpjac.experiments` is imported) and
:func:`write` turns the table into the book's page ``book/verdict_rules.md`` at every build, so
the page states the rates of the code that decided the verdicts beside it.

A rule *passes* when its false-agree rate is at most :data:`MAX_FALSE_AGREE` (5 %, the usual
level of a one-sided test: a verdict *agree* is then evidence, not noise) allowing two binomial
standard errors of simulation noise, and its power is above zero (a rule that can never agree on
true data cannot test its claim).

Example:
    >>> from sharpjac.claims import calibration
    >>> calibration.MAX_FALSE_AGREE
    0.05
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import pandas as pd

from .known_answers import known_answers, operating
from .registry import all_claims
from .verdicts import anchor, typeset

__all__ = ["MAX_FALSE_AGREE", "N_TRIALS", "PAGE", "table", "passes", "render", "write"]

#: The largest false-agree rate a rule may have (before simulation noise).
MAX_FALSE_AGREE = 0.05
#: Simulated data sets per case (false, true) for the page and the test: the standard error of a
#: 5 % rate is then 1.1 percentage points.
N_TRIALS = 400
PAGE = Path("book") / "verdict_rules.md"


def _register_all() -> None:
    # The experiment modules register their known answers at import; importing them here (not at
    # module level) keeps sharpjac.claims importable by the experiments without a cycle.
    importlib.import_module("sharpjac.experiments")


def table(*, n_trials: int = N_TRIALS, seed: int = 0, only: str | None = None) -> pd.DataFrame:
    """One row per empirical claim (``kind="claim"``), in registry order.

    Columns: ``claim``, ``chapter``, ``rule`` (its sentence), ``design``, ``truth``,
    ``false_agree``, ``false_agree_se``, ``power``, ``power_se``, ``n_trials``, ``passes``.
    A claim without a known answer has NaN rates and ``passes = False``. ``only``: one chapter.
    """
    _register_all()
    known = known_answers()
    rows = []
    for c in all_claims():
        if c.kind != "claim" or (only is not None and c.chapter != only):
            continue
        row = {"claim": c.id, "chapter": c.chapter, "rule": c.rule.describe(), "design": "", "truth": ""}
        entry = known.get(c.id)
        if entry is None:
            nan = float("nan")
            row.update(false_agree=nan, false_agree_se=nan, power=nan, power_se=nan, n_trials=0)
        else:
            oc = operating(entry, n_trials=n_trials, seed=seed)
            row.update(design=entry.design, truth=entry.truth, **oc.as_dict())
        row["passes"] = passes(row["false_agree"], row["false_agree_se"], row["power"])
        rows.append(row)
    return pd.DataFrame(rows)


def passes(false_agree: float, false_agree_se: float, power: float) -> bool:
    """A rule passes when ``false_agree <= MAX_FALSE_AGREE + 2 SE`` and ``power > 0``."""
    if any(not math.isfinite(x) for x in (false_agree, false_agree_se, power)):
        return False
    return bool(false_agree <= MAX_FALSE_AGREE + 2 * false_agree_se and power > 0)


def _cell(text: str) -> str:
    """Text safe inside one Markdown table cell (one line, pipes escaped)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{100 * x:.1f} %"


def render(frame: pd.DataFrame) -> str:
    """The page "How the verdicts are decided" (MyST Markdown) from :func:`table`'s frame."""
    n = int(frame["n_trials"].max()) if len(frame) else 0
    ok = int(frame["passes"].sum())
    lines = [
        "# How the verdicts are decided",
        "",
        "Every claim of the paper that the book tests on noisy measurements is decided by a stated rule "
        "(its sentence is in each verdict box). Before a chapter uses a rule, the rule is run on simulated "
        "data with a known answer at the chapter's design: data where the claim is **false** (no effect or "
        "no association: the boundary where a rule that controls its errors says *agree* most often) and "
        "data where it is **true** (a stated, realistic effect). The *false-agree rate* is how often the rule "
        "says *agree* on the false data; the *power* is how often it says *agree* on the true data. A rule "
        f"is kept when its false-agree rate is at most {MAX_FALSE_AGREE:.0%} (allowing two standard errors "
        "of simulation noise) and its power is above zero; otherwise it is redesigned.".replace("%", " %"),
        "",
        "Intervals are over independent replicates (seeds, each drawing its own training subset, or the "
        "units a chapter names), Student's *t* with fewer than 30 of them; below three there is no interval "
        "and the verdict says *too few to decide*. Identities and bounds that can fail only through a bug "
        "are *checks* and are listed apart on the scorecard; they need no simulation.",
        "",
        f"These rates were computed when this page was built, with {n} simulated data sets per case "
        f"(standard error of a 5 % rate: {100 * math.sqrt(0.05 * 0.95 / max(n, 1)):.1f} percentage points). "
        f"{ok} of {len(frame)} rules pass.",
        "",
        "| claim | design | rule | false-agree | power | true data |",
        "|---|---|---|---|---|---|",
    ]
    for r in frame.itertuples(index=False):
        mark = "" if r.passes else " (fails: redesign)"
        lines.append(
            f'| <a href="../notebooks/executed/{r.chapter}.html#{anchor(r.claim)}"><code>{r.claim}</code></a> '
            f"| {_cell(r.design or 'no known-answer simulation')} | {_cell(typeset(r.rule))} "
            f"| {_pct(r.false_agree)}{mark} | {_pct(r.power)} | {_cell(r.truth)} |"
        )
    lines.append("")
    return "\n".join(lines)


def write(root: Path | str, *, n_trials: int = N_TRIALS) -> Path:
    """Write :data:`PAGE` under ``root`` from a fresh :func:`table`; return its path."""
    target = Path(root) / PAGE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(table(n_trials=n_trials)), encoding="utf-8")
    return target
