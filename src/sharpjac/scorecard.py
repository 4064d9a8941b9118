r"""The scorecard: every registered claim with the outcome its chapter computed in this build.

Each chapter shows its verdicts with :meth:`sharpjac.claims.Verdict.show`, which leaves a
machine-readable record (mime ``application/vnd.sharpjac.claim+json``) in the executed notebook.
:func:`write` collects those records from ``notebooks/executed/*.ipynb`` and writes

- ``book/scorecard.md``: one table row per **registered** claim (:func:`sharpjac.claims.all_claims`)
  with its outcome badge, the claim, the key number with its interval, the preset, the seeds and
  a link to the verdict box; a claim without a record is listed as *not run*;
- ``book/_scorecard_counts.md``: what the landing page includes: the computed findings
  (:mod:`sharpjac.findings`), then the one-line counts of the tallied claims.

Both files are generated at every build (``publish.build_book`` calls :func:`write`) and are not
tracked by git. :func:`check` lists what a complete build must not have: registered claims without
a computed outcome, and records whose id is not registered.

Example:
    >>> from sharpjac import scorecard
    >>> scorecard.counts_line({"agree": 3, "disagree": 1, "inconclusive": 2, "not run": 0})
    '6 claims: 3 agree, 1 disagree, 2 inconclusive; see the {doc}`scorecard </book/scorecard>`.'
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import nbformat

from . import claims, findings

__all__ = [
    "SCORECARD",
    "COUNTS",
    "Record",
    "collect",
    "check",
    "counts",
    "counts_line",
    "render",
    "write",
    "text_table",
    "main",
]

SCORECARD = Path("book") / "scorecard.md"
COUNTS = Path("book") / "_scorecard_counts.md"
EXECUTED = Path("notebooks") / "executed"
NOT_RUN = "not run"
_BADGE = {
    "agree": "{bdg-success}`Agree`",
    "disagree": "{bdg-danger}`Disagree`",
    "inconclusive": "{bdg-secondary}`Inconclusive`",
    NOT_RUN: "{bdg-light}`not run`",
}


@dataclass(frozen=True)
class Record:
    """One claim record found in an executed notebook (``data``: the JSON record of the verdict)."""

    notebook: str  # chapter name (stem of the executed notebook)
    data: dict

    @property
    def id(self) -> str:
        return str(self.data.get("id", ""))

    @property
    def outcome(self) -> str | None:
        o = self.data.get("outcome")
        return o if o in claims.OUTCOMES else None


def _titles(root: Path) -> dict[str, str]:
    """The first heading of each executed notebook (its page title), by chapter name."""
    out = {}
    for path in sorted((root / EXECUTED).glob("*.ipynb")):
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception:  # noqa: BLE001 - an unreadable notebook is reported by collect()
            continue
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                for line in cell.source.splitlines():
                    if line.startswith("# "):
                        out[path.stem] = line[2:].strip()
                        break
            if path.stem in out:
                break
    return out


def collect(root: Path | str) -> tuple[list[Record], list[str]]:
    """Every claim record in ``root/notebooks/executed/*.ipynb``, in file and cell order.

    Returns:
        ``(records, errors)``: the records, and one-line messages for notebooks that cannot be
        read or records that are not a JSON object with an ``id``.
    """
    root = Path(root)
    records: list[Record] = []
    errors: list[str] = []
    for path in sorted((root / EXECUTED).glob("*.ipynb")):
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as exc:  # noqa: BLE001 - any unreadable notebook is reported, not raised
            errors.append(f"{path.name}: cannot be read ({type(exc).__name__}: {exc})".splitlines()[0])
            continue
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                if claims.MIME not in data:
                    continue
                rec = data[claims.MIME]
                if isinstance(rec, str):
                    try:
                        rec = json.loads(rec)
                    except ValueError:
                        rec = None
                if not isinstance(rec, dict) or not rec.get("id"):
                    errors.append(f"{path.name}: a claim record is not a JSON object with an id")
                    continue
                records.append(Record(path.stem, rec))
    return records, errors


def _latest(records: list[Record]) -> dict[str, Record]:
    """The last record of each id from the claim's own chapter (a chapter that shows a verdict twice
    keeps the last one; a record of a registered claim found in another chapter is ignored here and
    reported by :func:`check`)."""
    chapter = {c.id: c.chapter for c in claims.all_claims()}
    out: dict[str, Record] = {}
    for r in records:
        if r.id in chapter and r.notebook != chapter[r.id]:
            continue
        out[r.id] = r
    return out


def check(root: Path | str) -> list[str]:
    """Problems that a complete build must not have (empty list: every claim has its outcome).

    One line per problem, starting with the claim id:

    - ``"<id>: not run ..."``: a registered claim without a record with a valid outcome;
    - ``"<id>: recorded in <chapter>.ipynb but not registered"``;
    - ``"<id>: recorded in <chapter>.ipynb but registered for chapter <other>"``;
    - unreadable notebooks and malformed records (see :func:`collect`).
    """
    records, errors = collect(root)
    latest = _latest(records)
    registered = {c.id: c for c in claims.all_claims()}
    problems = []
    for c in registered.values():
        r = latest.get(c.id)
        if r is None:
            problems.append(f"{c.id}: not run (no record in {EXECUTED.as_posix()}/{c.chapter}.ipynb)")
        elif r.outcome is None:
            problems.append(f"{c.id}: not run (record without a valid outcome: {r.data.get('outcome')!r})")
    for r in latest.values():
        if r.id not in registered:
            problems.append(f"{r.id}: recorded in {r.notebook}.ipynb but not registered")
    for r in records:
        if r.id in registered and r.notebook != registered[r.id].chapter:
            problems.append(
                f"{r.id}: recorded in {r.notebook}.ipynb but registered for chapter {registered[r.id].chapter}"
            )
    return problems + errors


def _status(latest: dict[str, Record], claim: claims.Claim) -> str:
    r = latest.get(claim.id)
    return r.outcome if (r is not None and r.outcome is not None) else NOT_RUN


def counts(root: Path | str) -> dict[str, int]:
    """How many registered claims have each outcome (keys: the outcomes and ``"not run"``).

    Only entries of kind ``"claim"`` are tallied: checks and information are shown apart.
    """
    latest = _latest(collect(root)[0])
    out = {o: 0 for o in (*claims.OUTCOMES, NOT_RUN)}
    for c in claims.all_claims():
        if c.kind == "claim":
            out[_status(latest, c)] += 1
    return out


def counts_line(n: dict[str, int]) -> str:
    """The landing page's sentence, e.g. ``"22 claims: 12 agree, 4 disagree, 6 inconclusive; see ..."``."""
    total = sum(n.values())
    if total == 0:
        return "No claims are registered yet; see the {doc}`scorecard </book/scorecard>`."
    parts = [f"{n.get(o, 0)} {o}" for o in claims.OUTCOMES]
    if n.get(NOT_RUN):
        parts.append(f"{n[NOT_RUN]} not run")
    noun = "claim" if total == 1 else "claims"
    return f"{total} {noun}: {', '.join(parts)}; see the {{doc}}`scorecard </book/scorecard>`."


def _cell(text: str) -> str:
    """Text safe inside one Markdown table cell (one line, pipes escaped)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _key(rec: dict) -> str:
    text = rec.get("key_text") or "n/a"
    return _cell(claims.no_negative_zero(claims.typeset(text)))


def _unit(rec: dict) -> str:
    """``"5 seeds"`` from a record; a record without a unit shows its seeds (``"3 seeds"``)."""
    if not rec:
        return ""
    if rec.get("unit"):
        n, unit = rec.get("n_units", ""), rec["unit"]
        return _cell(f"{n} {unit[:-1] if n == 1 and unit.endswith('s') else unit}")
    seeds = rec.get("seeds")
    return _cell(f"{seeds} seed{'s' if seeds != 1 else ''}") if seeds else ""


def _fragility(rec: dict) -> str:
    """``**fragile** (seed 3)``, ``robust`` or ``not assessed`` (a single unit, or not recorded)."""
    if not rec:
        return ""
    if rec.get("fragile") is None:
        return "not assessed"
    if rec["fragile"]:
        return _cell(
            f"**fragile** (without {rec.get('unit') or 'cluster'} {', '.join(str(f) for f in rec.get('flips', []))})"
        )
    return "robust"


def _outcomes(latest: dict[str, Record]) -> dict[str, str]:
    return {cid: r.outcome for cid, r in latest.items() if r.outcome is not None}


def findings_lines(root: Path | str) -> list[str]:
    """The computed account of what the book found (:func:`sharpjac.findings.account`), as bullets."""
    latest = _latest(collect(root)[0])
    registered = claims.all_claims()
    check_ids = [c.id for c in registered if c.kind == "check"]
    fragile = {c.id: latest[c.id].data.get("fragile") for c in registered if c.kind == "claim" and c.id in latest}
    return findings.account(
        _outcomes(latest), check_ids=check_ids, registered=[c.id for c in registered], fragile=fragile
    )


def _row(c: claims.Claim, latest: dict[str, Record], titles: dict[str, str], key_of) -> tuple[str, str, str, str]:
    """``(badge, key cell, statement cell, section cell)`` of one registered entry."""
    status = _status(latest, c)
    source = "" if c.source == "paper" else " *(companion)*"
    title = titles.get(c.chapter, c.chapter.replace("_", " "))
    if status == NOT_RUN:
        return _BADGE[status], "", _cell(claims.typeset(c.statement)) + source, _cell(title)
    href = f"../{EXECUTED.as_posix()}/{c.chapter}.html#{claims.anchor(c.id)}"
    where = f'<a href="{href}">{_cell(title)}</a>'
    return _BADGE[status], key_of(latest[c.id].data), _cell(claims.typeset(c.statement)) + source, where


def render(root: Path | str) -> tuple[str, str]:
    """The scorecard page and the landing page's include (findings, then counts) as Markdown."""
    root = Path(root)
    records, _ = collect(root)
    latest = _latest(records)
    registered = claims.all_claims()
    titles = _titles(root)
    n = {o: 0 for o in (*claims.OUTCOMES, NOT_RUN)}
    for c in registered:
        if c.kind == "claim":
            n[_status(latest, c)] += 1
    line = counts_line(n)
    found = findings_lines(root)
    lines = [
        "# Scorecard",
        "",
        "Every claim of the paper, and of the companion's formulations of its results, that the chapters",
        "test, with the outcome its chapter computed when this book was built. Each outcome comes from",
        "the claim's stated decision rule applied to the computed numbers (never typed by hand): "
        "*agree* and *disagree* mean the rule was met or violated at the stated preset and seeds, "
        "*inconclusive* that the numbers cannot decide (for example an interval that contains 0). "
        "Follow a row's link to the verdict box, its evidence and its rule.",
        "",
    ]
    if found:
        lines += [
            "## What the book found",
            "",
            "Each sentence below is chosen from the outcomes of the claims that answer its question.",
            "",
            *found,
            "",
        ]
    lines += [line, ""]
    if not records:
        lines += [
            "```{note}",
            "No chapter with claims has been executed yet (no claim records were found in the executed "
            "notebooks), so every claim below is listed as *not run*. Run `make notebooks` and rebuild.",
            "```",
            "",
        ]
    include = "\n".join([*found, "", line]) + "\n" if found else line + "\n"
    if not registered:
        lines += ["No claims are registered.", ""]
        return "\n".join(lines), include
    by_kind = {k: [c for c in registered if c.kind == k] for k in claims.KINDS}
    if by_kind["claim"]:
        lines += [
            "## Claims",
            "",
            "Tallied above: each claim counts once. *Unit* is what the interval or test is over and how many "
            "(seeds are independent replicates, each with its own training subset). *One left out* recomputes "
            "the outcome leaving out each unit in turn: **fragile** when dropping one of them alone changes it. "
            "How each rule behaves on data with a known answer is on the page "
            "{doc}`How the verdicts are decided </book/verdict_rules>`.",
            "",
            # the outcome and the key number first: on a phone the table scrolls, and they stay in view
            "| Outcome | Key number [interval] | Claim | Section | Preset | Unit | One left out |",
            "|:--|:--|:--|:--|:--|:--|:--|",
        ]
        for c in by_kind["claim"]:
            badge, key, statement, where = _row(c, latest, titles, _key)
            rec = latest[c.id].data if c.id in latest else {}
            preset, unit, fragile = _cell(rec.get("preset", "")), _unit(rec), _fragility(rec)
            lines.append(f"| {badge} | {key} | {statement} | {where} | {preset} | {unit} | {fragile} |")
        lines.append("")
    if by_kind["check"]:
        lines += [
            "## Checks",
            "",
            "Identities and proven bounds, computed to catch bugs: they can fail only through an error in the",
            "code, so they are not tallied with the claims. The margin says how close the closest case came",
            "to failing.",
            "",
            "| Outcome | Tightest margin | Check | Result | Section |",
            "|:--|:--|:--|:--|:--|",
        ]
        for c in by_kind["check"]:
            badge, key, statement, where = _row(c, latest, titles, _key)
            margin = (
                _cell(claims.no_negative_zero(claims.typeset(latest[c.id].data.get("margin") or "not reported")))
                if c.id in latest
                else ""
            )
            lines.append(f"| {badge} | {margin} | {statement} | {key} | {where} |")
        lines.append("")
    if by_kind["information"]:
        lines += [
            "## Information",
            "",
            "Numbers a reader should see that no one claims; not tallied.",
            "",
            "| Value | What | Section |",
            "|:--|:--|:--|",
        ]
        for c in by_kind["information"]:
            _, key, statement, where = _row(c, latest, titles, _key)
            lines.append(f"| {key} | {statement} | {where} |")
        lines.append("")
    return "\n".join(lines), include


def write(root: Path | str) -> Path:
    """Write ``book/scorecard.md`` and ``book/_scorecard_counts.md`` under ``root``; return the first."""
    root = Path(root)
    page, include = render(root)
    target = root / SCORECARD
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    (root / COUNTS).write_text(include, encoding="utf-8")
    return target


def text_table(root: Path | str) -> str:
    """The scorecard as plain text (one line per registered claim), for logs and notes."""
    latest = _latest(collect(root)[0])
    rows = []
    for c in claims.all_claims():
        status = _status(latest, c)
        rec = latest[c.id].data if status != NOT_RUN else {}
        extra = f"  {rec.get('key_text', '')}  (preset {rec.get('preset')}, seeds {rec.get('seeds')})" if rec else ""
        rows.append(f"{status:<12}  {c.id}{extra}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """``python -m sharpjac.scorecard [ROOT] [--check]``: print the scorecard as text (and its problems)."""
    parser = argparse.ArgumentParser(prog="python -m sharpjac.scorecard", description=main.__doc__)
    parser.add_argument("root", nargs="?", default=".", help="the book's root (holds _toc.yml)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a claim has no computed outcome")
    args = parser.parse_args(argv)
    print(text_table(args.root))
    problems = check(args.root)
    for p in problems:
        print("problem:", p)
    return 1 if (args.check and problems) else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
