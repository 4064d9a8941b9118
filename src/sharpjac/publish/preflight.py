"""The paper preset reads a store filled elsewhere: the runs the chapters need that the run store
lacks, with the command that produces them and their cost (``python -m sharpjac.publish missing``)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .plan import chapter_parameters

_GET = re.compile(r"""experiments\.(?:get|run)\(\s*["']([A-Za-z0-9_]+)["']""")


def chapter_experiments(root: Path, name: str) -> list[str]:
    """Registered experiments a chapter uses: the names in its ``experiments.get("...")`` (or
    ``experiments.run("...")``) calls, in order of first appearance."""
    from sharpjac import experiments

    text = (root / "notebooks" / f"{name}.md").read_text(encoding="utf-8")
    known = set(experiments.names())
    found: list[str] = []
    for match in _GET.finditer(text):
        if match.group(1) in known and match.group(1) not in found:
            found.append(match.group(1))
    return found


@dataclass(frozen=True)
class MissingRun:
    """A run a chapter needs that the store lacks, with its cost (see :mod:`sharpjac.costs`)."""

    chapter: str
    experiment: str
    labels: dict
    key: str
    cpu_hours: float
    gpu_hours: float
    #: the chapter parameters that chose the run (``Experiment.run_parameters``), preset excluded
    parameters: dict = field(default_factory=dict)


def missing_runs(
    root: Path,
    names: Iterable[str],
    *,
    preset: str,
    store=None,
    parameters: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[MissingRun]:
    """The runs that the chapters ``names`` need at ``preset`` and ``store`` does not hold.

    A chapter's runs are, for each of its experiments (:func:`chapter_experiments`),
    ``Experiment.configs_for_chapter(chapter parameters)``: the one mapping the chapter itself calls,
    so the list is exactly what the executed chapter will ask for. A chapter's parameters are
    ``parameters[chapter]`` when given (for example those :func:`plan_chapters` chose), else the
    defaults of its parameters cell; ``preset`` replaces their preset. A run shared by several
    chapters is listed under the first. Nothing is trained or loaded.
    """
    from sharpjac import costs, experiments
    from sharpjac.experiments.base import missing_runs as experiment_missing
    from sharpjac.runs import RunStore

    st = store if isinstance(store, RunStore) else RunStore(store)
    seen: set[str] = set()
    out: list[MissingRun] = []
    for chapter in names:
        given = (parameters or {}).get(chapter)
        params = dict(given) if given is not None else chapter_parameters(root / "notebooks" / f"{chapter}.md")
        params["preset"] = preset
        for exp_name in chapter_experiments(root, chapter):
            exp = experiments.get(exp_name)
            chosen = {k: v for k, v in exp.run_parameters(params).items() if k != "preset"}
            for config in exp.configs_for_chapter(params):
                for p in experiment_missing(config, name=exp_name, store=st):
                    if p.key in seen:
                        continue
                    seen.add(p.key)
                    c = costs.run_cost(p.config)
                    out.append(MissingRun(chapter, exp_name, dict(p.labels), p.key, c.cpu_hours, c.gpu_hours, chosen))
    return out


def _run_arguments(parameters: Mapping[str, Any]) -> str:
    """`` --seed S --param NAME=VALUE ...`` for ``python -m sharpjac run`` (the default seed 0 left out)."""
    import shlex

    parts = [f" --seed {parameters['seed']}"] if parameters.get("seed", 0) != 0 else []
    parts += [f" --param {shlex.quote(f'{k}={json.dumps(v)}')}" for k, v in parameters.items() if k != "seed"]
    return "".join(parts)


def hours(h: float) -> str:
    """Hours with thousands separators, small values with two significant digits."""
    return f"{h:,.1f}" if h >= 1 else f"{h:.2g}"


def missing_report(missing: list[MissingRun], *, preset: str, store_root: Path) -> str:
    """The list printed by ``notebooks --preset paper`` when runs are missing: per chapter and
    experiment, the command that produces its runs, their estimated cost, then each run."""
    from sharpjac import costs

    lines = [
        f"{len(missing)} run(s) that the chapters need at preset {preset!r} are not in the run store "
        f"{store_root} (set $SHARPJAC_CACHE to the store filled elsewhere, or produce them):"
    ]
    groups: dict[tuple[str, str], list[MissingRun]] = {}
    for m in missing:
        groups.setdefault((m.chapter, m.experiment), []).append(m)
    for (chapter, exp_name), runs in groups.items():
        gpu = sum(r.gpu_hours for r in runs)
        cpu = sum(r.cpu_hours for r in runs)
        lines.append(
            f"  chapter {chapter}: experiment {exp_name}, {len(runs)} run(s), about {hours(gpu)} GPU-hours "
            f"(estimate) or {hours(cpu)} CPU-hours (measured per-step costs)"
        )
        command = f"python -m sharpjac run {exp_name} --preset {preset}" + _run_arguments(runs[0].parameters)
        lines.append(f"    produce: {command}  (on a cluster: {command} --executor ray --address auto)")
        for r in runs:
            labels = ", ".join(f"{k}={v}" for k, v in r.labels.items())
            lines.append(f"      run {r.key[:12]}  {labels}  ~{hours(r.gpu_hours)} GPU-h")
    total = sum(m.gpu_hours for m in missing)
    lines.append(f"  in all about {total:,.1f} GPU-hours; {costs.cost_source()}.")
    return "\n".join(lines)
