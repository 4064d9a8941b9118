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
import json
import math
import os
from pathlib import Path

import pandas as pd

from .. import analysis, codekey, inference, runs
from .known_answers import known_answers, operating
from .registry import all_claims
from .verdicts import anchor, typeset

__all__ = ["MAX_FALSE_AGREE", "N_TRIALS", "PAGE", "table", "passes", "interval_coverage", "render", "write"]

#: The largest false-agree rate a rule may have (before simulation noise).
MAX_FALSE_AGREE = 0.05
#: Simulated data sets per case (false, true) for the page and the test: the standard error of a
#: 5 % rate is then 1.1 percentage points.
N_TRIALS = 400
PAGE = Path("book") / "verdict_rules.md"


def _register_all() -> None:
    # The experiment modules register their known answers at import; importing them here (not at
    # module level) keeps sharpjac.claims importable by the experiments without a cycle.
    # sharpjac.experiments loads its modules lazily: names() imports every one of them.
    importlib.import_module("sharpjac.experiments").names()


def _cache_file(n_trials: int, seed: int) -> Path:
    """Where the whole table is kept for this code: the digest of every experiment module (and the
    claims and inference code they import), so a table is never served after that code changed."""
    names = importlib.import_module("sharpjac.experiments").names()
    digest = codekey.code_digest((__name__, *(f"sharpjac.experiments.{n}" for n in names)))
    return cache_root() / f"{digest[:24]}-n{n_trials}-s{seed}.json"


#: Environment variable naming the folder of the cached rules tables.
CACHE_ENV = "SHARPJAC_CALIBRATION_CACHE"


def cache_root() -> Path:
    """``$SHARPJAC_CALIBRATION_CACHE`` or ``~/.cache/sharpjac/calibration``.

    Apart from the run store on purpose: the table depends on the code alone (its key), so every
    store and every test session of one checkout can share it; the test suite's smoke book (built
    in a temporary run store) and ``make book`` then reuse the table ``make test`` computed.
    """
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sharpjac" / "calibration"


def table(*, n_trials: int = N_TRIALS, seed: int = 0, only: str | None = None) -> pd.DataFrame:
    """One row per empirical claim (``kind="claim"``), in registry order.

    Columns: ``claim``, ``chapter``, ``rule`` (its sentence), ``design``, ``truth``,
    ``false_agree``, ``false_agree_se``, ``power``, ``power_se``, ``n_trials``, ``passes``.
    A claim without a known answer has NaN rates and ``passes = False``. ``only``: one chapter.

    The whole table (``only=None``) takes minutes, so it is kept beside the run store, keyed by a
    digest of the code that computes it (:func:`sharpjac.codekey.code_digest`): the test suite and
    the book build of one checkout compute it once.
    """
    _register_all()
    if only is None:
        cache = _cache_file(n_trials, seed)
        if cache.is_file():
            try:
                return pd.DataFrame(json.loads(cache.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                pass  # damaged: computed again below and rewritten
        text = _compute(n_trials=n_trials, seed=seed, only=None).to_json(orient="records")
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            runs.atomic_write(cache, lambda f: f.write(text), binary=False)
        except OSError:
            pass  # a read-only cache only costs a recomputation next time
        return pd.DataFrame(json.loads(text))  # the same frame whether computed now or served
    return _compute(n_trials=n_trials, seed=seed, only=only)


def _compute(*, n_trials: int, seed: int, only: str | None) -> pd.DataFrame:
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


#: The interval designs the chapters use: (method, clusters) pairs, each tried on normal and on
#: skewed (log-normal) cluster values, since per-seed effects and rank correlations are not normal.
COVERAGE_DESIGNS = (("t", 3), ("t", 5), ("t", 9), ("percentile bootstrap", 3), ("percentile bootstrap", 5))


def interval_coverage(*, n_trials: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Coverage of the 95 % interval methods at the chapters' cluster counts, by simulation.

    Columns: ``method``, ``clusters``, ``data`` ("normal" or "skewed"), ``coverage``, ``se``.
    The percentile bootstrap rows show why the verdicts do not use it at so few clusters.
    """
    draws = {
        "normal": lambda rng, m: rng.normal(0.0, 1.0, size=m),
        # log-normal with sigma 0.5, centred: skewness about 1.75
        "skewed": lambda rng, m: rng.lognormal(0.0, 0.5, size=m) - math.exp(0.125),
    }
    methods = {
        "t": lambda v: inference.t_interval(v, unit="seeds"),
        "percentile bootstrap": lambda v: analysis.bootstrap_ci(v, "mean", n_resamples=400, seed=1),
    }
    rows = []
    for k, (method, m) in enumerate(COVERAGE_DESIGNS):
        for j, (name, draw) in enumerate(draws.items()):
            trials = n_trials if method == "t" else max(200, n_trials // 4)  # the bootstrap is slower
            cov = inference.coverage(
                methods[method], lambda rng, m=m, draw=draw: draw(rng, m), 0.0, n_trials=trials, seed=seed + 10 * k + j
            )
            rows.append(
                {
                    "method": method,
                    "clusters": m,
                    "data": name,
                    "coverage": cov,
                    "se": math.sqrt(cov * (1 - cov) / trials),
                    "n_trials": trials,
                }
            )
    return pd.DataFrame(rows)


def passes(false_agree: float, false_agree_se: float, power: float) -> bool:
    """A rule passes when ``false_agree <= MAX_FALSE_AGREE + 2 SE`` and ``power > 0``."""
    if any(not math.isfinite(x) for x in (false_agree, false_agree_se, power)):
        return False
    return bool(false_agree <= MAX_FALSE_AGREE + 2 * false_agree_se and power > 0)


def _cell(text: str) -> str:
    """Text safe inside one Markdown table cell (one line, pipes escaped)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _breakable(claim_id: str) -> str:
    """A claim id that may wrap after its dot and underscores (``<wbr>``): a phone column stays narrow."""
    return claim_id.replace(".", ".<wbr>").replace("_", "_<wbr>")


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{100 * x:.1f} %"


def render(frame: pd.DataFrame, coverage: pd.DataFrame | None = None) -> str:
    """The page "How the verdicts are decided" (MyST Markdown) from :func:`table`'s frame and,
    when given, :func:`interval_coverage`'s."""
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
        # the two rates first: on a phone the table scrolls, and they stay in view
        "| false-agree | power | claim | design | true data | rule |",
        "|--:|--:|---|---|---|---|",
    ]
    for r in frame.itertuples(index=False):
        mark = "" if r.passes else " (fails: redesign)"
        lines.append(
            f"| {_pct(r.false_agree)}{mark} | {_pct(r.power)} "
            f'| <a href="../notebooks/executed/{r.chapter}.html#{anchor(r.claim)}">'
            f"<code>{_breakable(r.claim)}</code></a> "
            f"| {_cell(r.design or 'no known-answer simulation')} | {_cell(r.truth)} | {_cell(typeset(r.rule))} |"
        )
    lines.append("")
    if coverage is not None and len(coverage):
        lines += [
            "## Intervals and their coverage",
            "",
            "A 95 % interval should contain the true value in 95 % of repeated experiments. With as few "
            "clusters as the chapters have, the method matters: below, each method's coverage of the mean "
            "of normal and of skewed (log-normal) cluster values, by simulation. The verdicts use the *t* "
            "interval. " + _coverage_sentence(coverage),
            "",
            "| method | clusters | cluster values | coverage of a 95 % interval |",
            "|---|--:|---|--:|",
        ]
        for r in coverage.itertuples(index=False):
            lines.append(f"| {r.method} | {r.clusters} | {r.data} | {_pct(r.coverage)} ± {_pct(r.se)} |")
        lines.append("")
    return "\n".join(lines)


def _coverage_sentence(coverage: pd.DataFrame) -> str:
    """What the coverage table shows, chosen by its numbers (a rate below 95 % by more than two
    standard errors counts as short)."""
    short = coverage["coverage"] < 0.95 - 2 * coverage["se"]
    t, boot = coverage["method"] == "t", coverage["method"] != "t"
    skewed = coverage["data"] == "skewed"
    parts = []
    if (boot & short).any():
        parts.append(
            "The percentile bootstrap falls short of 95 % at these cluster counts, which is why it does not decide."
        )
    if (t & skewed & short).any():
        parts.append(
            "On skewed values the *t* interval also falls short, on both sides together; "
            "a *Sign* verdict uses one side."
        )
    if not (t & short).any():
        parts.append("The *t* interval reaches its level in every row.")
    return " ".join(parts)


def write(root: Path | str, *, n_trials: int = N_TRIALS) -> Path:
    """Write :data:`PAGE` under ``root`` from a fresh :func:`table` and :func:`interval_coverage`;
    return its path."""
    target = Path(root) / PAGE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(table(n_trials=n_trials), interval_coverage()), encoding="utf-8")
    return target
