"""Instructors: how long each chapter takes (measured at the smoke and quick presets, the paper
preset's training runs counted with their cost)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

from .execute import format_seconds
from .plan import EXECUTED_DIR, chapters, stored_meta
from .preflight import hours, missing_runs


def measured_seconds(executed_dir: Path, names: Iterable[str]) -> dict[str, tuple[str, float]]:
    """``{chapter: (preset, seconds)}`` read from the ``sharpjac`` metadata of the executed copies in
    ``executed_dir`` (the wall time of their last execution); chapters without a copy are left out."""
    out = {}
    for name in names:
        meta = stored_meta(executed_dir / f"{name}.ipynb")
        if meta.get("seconds") is not None and isinstance(meta.get("parameters"), dict):
            out[name] = (str(meta["parameters"].get("preset")), float(meta["seconds"]))
    return out


def paper_cost(root: Path, name: str) -> tuple[int, float, float]:
    """``(runs, cpu_hours, gpu_hours)`` of the training runs the chapter needs at the paper preset,
    counted against an empty store (:func:`missing_runs`); GPU hours are estimates (:mod:`sharpjac.costs`)."""
    from sharpjac.runs import RunStore

    with tempfile.TemporaryDirectory() as empty:
        runs = missing_runs(root, [name], preset="paper", store=RunStore(Path(empty)))
    return len(runs), sum(r.cpu_hours for r in runs), sum(r.gpu_hours for r in runs)


def times_table(root: Path, *, smoke_dir: Path | None = None, quick_dir: Path | None = None) -> str:
    """The Markdown table of the instructors' page: per chapter, the measured wall time at the smoke
    and quick presets (from executed copies in ``smoke_dir`` and ``quick_dir``, default the book's own
    ``notebooks/executed``, only where their preset matches; "–" otherwise) and the cost of the training
    runs the paper preset needs (:func:`paper_cost`; a run two chapters share is counted in both, and a
    chapter's own computation besides training is not included)."""
    names = chapters(root)
    smoke = measured_seconds(smoke_dir or root / EXECUTED_DIR, names)
    quick = measured_seconds(quick_dir or root / EXECUTED_DIR, names)
    lines = [
        "| chapter | smoke (measured) | quick (measured) | paper: training runs, CPU-hours / GPU-hours (estimate) |",
        "|---|---|---|---|",
    ]
    for name in names:
        s = format_seconds(smoke[name][1]) if smoke.get(name, ("",))[0] == "smoke" else "–"
        q = format_seconds(quick[name][1]) if quick.get(name, ("",))[0] == "quick" else "–"
        runs, cpu, gpu = paper_cost(root, name)
        plural = "run" if runs == 1 else "runs"
        paper = f"{runs} {plural}, {hours(cpu)} / {hours(gpu)}" if runs else "no training runs"
        lines.append(f"| {{doc}}`/notebooks/executed/{name}` | {s} | {q} | {paper} |")
    return "\n".join(lines)
