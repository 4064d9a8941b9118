"""Papermill execution of the chapters: one chapter (:func:`execute_chapter`: the executed copy is
replaced only after a successful run, a failure names the chapter and the cell), the planned
chapters in one process or several at once (:func:`execute_plans`), and the "this page was computed
with" box."""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .launch import INSTALL_TAG, add_install_cell, repository_url
from .plan import (
    EXECUTED_DIR,
    ChapterPlan,
    chapters,
    check_parameter_names,
    describe_plan,
    input_hash,
    load_chapter,
    plan_chapters,
    selected_chapters,
    source_hash,
    stored_meta,
    validate_parameters,
)

COSTS_SUFFIX = ".costs.json"

_STARTUP = """# written by sharpjac.publish.execute: the phase profiler of the book's cost table
import os as _os
import sys as _sys

try:
    from sharpjac.costs import start_phase_sampler as _start

    _start(_os.environ["SHARPJAC_PHASES"])
except Exception as _err:  # the profiler must never stop a chapter
    print(f"sharpjac: no phase timings for this chapter ({_err!r})", file=_sys.stderr)
"""


def costs_path(executed: Path) -> Path:
    """The cost record written beside an executed chapter ``<name>.ipynb``: ``<name>.costs.json``."""
    return executed.with_name(executed.stem + COSTS_SUFFIX)


class _PhaseProfiler:
    """While active, kernels started by this process run :func:`sharpjac.costs.start_phase_sampler`
    from an IPython startup file (a temporary ``IPYTHONDIR``) and write their phase totals to
    ``sampled`` (``SHARPJAC_PHASES``); both variables are restored on exit."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="sharpjac-phases-")
        folder = Path(self._tmp.name)
        startup = folder / "ipython" / "profile_default" / "startup"
        startup.mkdir(parents=True)
        (startup / "00-sharpjac-phases.py").write_text(_STARTUP)
        self.sampled = folder / "phases.json"
        self._env = {"IPYTHONDIR": str(folder / "ipython"), "SHARPJAC_PHASES": str(self.sampled)}
        self._backup: dict[str, str | None] = {}

    def __enter__(self) -> _PhaseProfiler:
        for key, value in self._env.items():
            self._backup[key] = os.environ.get(key)
            os.environ[key] = value
        return self

    def __exit__(self, *exc: Any) -> None:
        for key, value in self._backup.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def record(self, *, started: float, wall: float) -> dict[str, Any] | None:
        """The chapter's cost record (:func:`sharpjac.costs.chapter_costs`), None when the kernel
        wrote no phase totals."""
        from sharpjac.costs import chapter_costs

        try:
            sampled = json.loads(self.sampled.read_text())
        except (OSError, ValueError):
            return None
        return chapter_costs(sampled, started=started, wall=wall)

    def close(self) -> None:
        self._tmp.cleanup()


COSTS_TABLE = "costs.md"


def cost_report(root: Path, only: Iterable[str] | None = None) -> str:
    """The book's cost table (:func:`sharpjac.costs.cost_table`) from the cost records beside the
    executed chapters (all chapters in table-of-contents order, or ``only``), written to
    ``notebooks/executed/costs.md`` and returned; chapters without a record (executed before
    the records existed, or cached) are listed under the table."""
    from sharpjac.costs import cost_table

    names = list(only) if only is not None else chapters(root)
    records, missing = [], []
    for name in names:
        path = costs_path(root / EXECUTED_DIR / f"{name}.ipynb")
        try:
            records.append((name, json.loads(path.read_text())))
        except (OSError, ValueError):
            missing.append(name)
    text = (
        "Seconds of wall time per chapter and phase, measured while each chapter executed "
        "(sharpjac.costs: a sampling profiler in the chapter's kernel; kernel start includes the package "
        "import, papermill is its notebook writes and the kernel's shutdown):\n\n" + cost_table(records)
    )
    other: dict[str, float] = {}
    for _, rec in records:
        for label, seconds in rec.get("other", {}).items():
            other[label] = other.get(label, 0.0) + seconds
    if other:
        top = sorted(other.items(), key=lambda kv: -kv[1])[:6]
        text += "\n\nLargest parts of 'other' (all chapters): " + ", ".join(f"{k} {v:.1f} s" for k, v in top) + "."
    if missing:
        text += f"\n\nNo cost record (not executed since the records exist): {', '.join(missing)}."
    _atomic_write_text(root / EXECUTED_DIR / COSTS_TABLE, text + "\n")
    return text


class ChapterError(RuntimeError):
    """A chapter raised, or its kernel died, while it was executed; the message names the chapter's
    source and the cell."""


@dataclass(frozen=True)
class ChapterResult:
    """What happened to one chapter: ``status`` is ``"executed"`` or ``"cached"``."""

    name: str
    status: str
    seconds: float
    output: Path


def _stored_hash(executed: Path) -> str | None:
    return stored_meta(executed).get("input_hash")


def environment_summary() -> dict[str, str]:
    """Versions and device of the current process (the kernel runs the same interpreter)."""
    import torch

    from sharpjac import __version__

    if torch.cuda.is_available():
        device = f"GPU ({torch.cuda.get_device_name(0)})"
    else:
        device = f"CPU ({os.cpu_count()} cores)"
    return {
        "sharpjac": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device,
    }


def format_seconds(seconds: float) -> str:
    """``"12.3 s"`` under a minute, else ``"4 min 05 s"``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s"


def computed_with_box(parameters: Mapping[str, Any], seconds: float, env: Mapping[str, str]) -> str:
    """Markdown for the "this page was computed with" box shown under a chapter's title."""
    params = ", ".join(f"`{k} = {v!r}`" for k, v in parameters.items())
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    versions = ", ".join(f"{k} {v}" for k, v in env.items() if k != "device")
    return (
        ":::{admonition} This page was computed with\n"
        ":class: note computed-with\n"
        f"{params}; on {date}, in {format_seconds(seconds)} on {env['device']}; {versions}.\n"
        "Re-run it with other parameters: see {doc}`/book/guide`.\n"
        ":::\n"
    )


def last_started_cell(nb: Any) -> tuple[int, int, str] | None:
    """The last cell papermill started in ``nb``: ``(index, number, first_line)`` or ``None``.

    Papermill stamps ``metadata.papermill.start_time`` on a cell when it starts it, and saves the
    notebook then; after a dead kernel the last stamped cell is the one that was running. ``index``
    is the cell's position in the executed notebook; ``number`` counts the code cells of the
    chapter's source from 1 (papermill's injected-parameters cell is not counted), so it matches
    what an author sees in the ``.md`` (the install cell that :func:`add_install_cell` injects is not
    counted either); ``first_line`` is the cell's first non-blank source line.
    """
    found = None
    number = 0
    for index, cell in enumerate(nb.cells):
        tags = cell.metadata.get("tags", [])
        injected = "injected-parameters" in tags or INSTALL_TAG in tags
        if cell.cell_type == "code" and not injected:
            number += 1
        if cell.metadata.get("papermill", {}).get("start_time"):
            first = next((line for line in cell.source.splitlines() if line.strip()), "")
            found = (index, number if not injected else 0, first)
    return found


def _describe_previous(output: Path, root: Path) -> str:
    try:
        meta = json.loads(output.read_text())["metadata"].get("sharpjac", {})
    except (OSError, ValueError, KeyError):
        return "no previous executed copy exists"
    return (
        f"the previous executed copy {output.relative_to(root)} is kept "
        f"(computed with {meta.get('parameters', 'unknown parameters')})"
    )


def _postprocess(
    nb: Any, parameters: Mapping[str, Any], seconds: float, digest: str, source_digest: str | None = None
) -> None:
    import nbformat

    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    box = nbformat.v4.new_markdown_cell(computed_with_box(parameters, seconds, environment_summary()))
    box.metadata["tags"] = ["computed-with"]
    first_markdown = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), -1)
    nb.cells.insert(first_markdown + 1, box)
    nb.metadata["sharpjac"] = {
        "input_hash": digest,
        "source_hash": source_digest,
        "parameters": dict(parameters),
        "seconds": round(seconds, 2),
    }


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def execute_chapter(
    root: Path,
    name: str,
    parameters: Mapping[str, Any],
    *,
    force: bool = False,
    timeout: int | None = None,
) -> ChapterResult:
    """Execute the chapter ``notebooks/<name>.md`` into ``notebooks/executed/<name>.ipynb``.

    The MyST Markdown source is converted in memory (:func:`load_chapter`) and run by papermill
    with ``parameters`` injected after the cell tagged ``parameters``. Skips the work when the
    executed copy was produced from the same inputs (see :func:`input_hash`) unless ``force``.

    The executed copy is written only when the run succeeds. When the chapter raises, or its
    kernel dies, the previous executed copy (if any) is left untouched, the partial output is kept
    as ``notebooks/executed/<name>.failed.ipynb`` for inspection (never rendered), and
    :class:`ChapterError` is raised naming the chapter's source and the cell: the cell that raised,
    or the last cell that had started when the kernel died (its number and first line).
    """
    import nbformat
    import papermill
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    validate_parameters(parameters)
    source = root / "notebooks" / f"{name}.md"
    if not source.is_file():
        known = ", ".join(chapters(root))
        raise FileNotFoundError(f"chapter {name!r}: no source {source}; chapters: {known}")
    check_parameter_names(source, parameters)
    output = root / EXECUTED_DIR / f"{name}.ipynb"
    failed = output.with_suffix(".failed.ipynb")
    digest = input_hash(source, parameters)
    if not force and output.is_file() and _stored_hash(output) == digest:
        return ChapterResult(name, "cached", 0.0, output)

    notebook = load_chapter(source)
    add_install_cell(notebook, repository_url(root))
    output.parent.mkdir(parents=True, exist_ok=True)
    scratch = output.parent / f".{name}.running.ipynb"
    scratch.unlink(missing_ok=True)
    env_backup = os.environ.get("SHARPJAC_PROGRESS")
    os.environ["SHARPJAC_PROGRESS"] = "0"
    profiler = _PhaseProfiler()
    started = time.time()
    start = time.perf_counter()
    try:
        with profiler:
            papermill.execute_notebook(
                notebook,
                str(scratch),
                parameters=dict(parameters),
                cwd=str(root / "notebooks"),
                kernel_name="python3",
                language="python",
                progress_bar=False,
                execution_timeout=timeout,
            )
    except PapermillExecutionError as err:
        _keep_failed(scratch, failed, source, root)
        snippet = "\n".join("    " + line for line in err.source.splitlines()[:12])
        raise ChapterError(
            f"chapter {source.relative_to(root)} failed in cell {err.exec_count} "
            f"(cell index {err.cell_index}): {err.ename}: {err.evalue}\n"
            f"  the cell:\n{snippet}\n  partial output kept in {failed.relative_to(root)}; "
            f"{_describe_previous(output, root)}"
        ) from None
    except DeadKernelError as err:
        partial = _keep_failed(scratch, failed, source, root)
        cell = last_started_cell(partial) if partial is not None else None
        if cell is None:
            where = "before any cell started"
        elif cell[1] == 0:
            where = f"in papermill's injected-parameters cell (cell index {cell[0]})"
        else:
            where = f"in code cell {cell[1]} (cell index {cell[0]}), which starts: {cell[2]}"
        kept = f"partial output kept in {failed.relative_to(root)}" if partial is not None else "no partial output"
        raise ChapterError(
            f"chapter {source.relative_to(root)}: the kernel died ({err}) {where}\n"
            f"  a dead kernel usually means the process ran out of memory or crashed in native code; "
            f"{kept}; {_describe_previous(output, root)}"
        ) from None
    finally:
        if env_backup is None:
            os.environ.pop("SHARPJAC_PROGRESS", None)
        else:
            os.environ["SHARPJAC_PROGRESS"] = env_backup
        seconds = time.perf_counter() - start
        cost = profiler.record(started=started, wall=seconds)
        profiler.close()
    nb = nbformat.read(str(scratch), as_version=4)
    nb.metadata.setdefault("papermill", {})["input_path"] = str(source.relative_to(root))
    _postprocess(nb, parameters, seconds, digest, source_hash(source))
    if cost is not None:
        nb.metadata["sharpjac"]["costs"] = cost
    _atomic_write_text(output, nbformat.writes(nb))
    if cost is not None:
        _atomic_write_text(costs_path(output), json.dumps({"chapter": name, **cost}, indent=1) + "\n")
    else:
        costs_path(output).unlink(missing_ok=True)
    scratch.unlink(missing_ok=True)
    failed.unlink(missing_ok=True)
    return ChapterResult(name, "executed", seconds, output)


def _keep_failed(scratch: Path, failed: Path, source: Path, root: Path) -> Any:
    """Move papermill's partial output to ``failed`` and return it (``None`` if none was saved).

    Papermill records its input in ``metadata.papermill.input_path``; given a notebook node, that
    would be the whole node, so it is replaced by the chapter's source path.
    """
    import nbformat

    try:
        nb = nbformat.read(str(scratch), as_version=4)
    except (OSError, ValueError):
        scratch.unlink(missing_ok=True)
        return None
    nb.metadata.setdefault("papermill", {})["input_path"] = str(source.relative_to(root))
    _atomic_write_text(failed, nbformat.writes(nb))
    scratch.unlink(missing_ok=True)
    return nb


def execute_all(
    root: Path,
    parameters: Mapping[str, Any] | None = None,
    *,
    only: Iterable[str] | None = None,
    force: bool = False,
    reset: bool = False,
    log=print,
) -> list[ChapterResult]:
    """Execute every chapter (or those in ``only``); stop at the first that raises.

    ``parameters`` are the explicit ones (a partial mapping is fine): each chapter runs with its
    stored parameters updated by them (see :func:`plan_chapters`); every name is checked against
    every selected chapter before any runs.
    """
    return execute_plans(
        root, plan_chapters(root, selected_chapters(root, only), parameters, reset=reset, force=force), log=log
    )


def _execute_planned(root: Path, name: str, parameters: dict[str, Any]) -> ChapterResult:
    """Execute one planned chapter (in this process or a worker process); the paper preset's chapters
    run with ``SHARPJAC_TRAINING=never`` (they read a store filled elsewhere)."""
    backup = os.environ.get("SHARPJAC_TRAINING")
    if parameters["preset"] == "paper":
        os.environ["SHARPJAC_TRAINING"] = "never"
    try:
        return execute_chapter(root, name, parameters, force=True)
    finally:
        if backup is None:
            os.environ.pop("SHARPJAC_TRAINING", None)
        else:
            os.environ["SHARPJAC_TRAINING"] = backup


def default_jobs() -> int:
    """Chapters executed at once by ``make notebooks``: ``$SHARPJAC_JOBS``, else one per core, at most 2.

    Every chapter trains and measures with one torch thread (``threads`` of its configs), so two
    chapters use two cores; chapters that need the same stored run wait for each other on the run
    store's lock instead of training it twice."""
    text = os.environ.get("SHARPJAC_JOBS")
    if text is None:
        return max(1, min(2, os.cpu_count() or 1))
    try:
        jobs = int(text)
    except ValueError:
        raise ValueError(f"SHARPJAC_JOBS={text!r}; accepted: a positive integer") from None
    if jobs < 1:
        raise ValueError(f"SHARPJAC_JOBS={text!r}; accepted: a positive integer")
    return jobs


def execute_plans(root: Path, plans: Iterable[ChapterPlan], *, log=print, jobs: int = 1) -> list[ChapterResult]:
    """Execute the chapters :func:`plan_chapters` planned, announcing those re-executed with other
    parameters than their stored ones.

    With ``jobs > 1`` up to ``jobs`` chapters run at once, each in its own worker process (and its own
    kernel); the results do not depend on ``jobs`` (every run is single-threaded and seeded, and a run
    two chapters need is trained once under the store's lock). The first chapter that fails stops the
    rest: chapters not yet started are cancelled, those running are finished, and its
    :class:`ChapterError` is raised.
    """
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"jobs={jobs!r}; accepted: a positive integer")
    plans = list(plans)
    results: dict[str, ChapterResult] = {}

    def report(plan: ChapterPlan, result: ChapterResult) -> None:
        shown = ", ".join(f"{k}={v!r}" for k, v in plan.parameters.items())
        log(f"  {plan.name:<34} {result.status:<9} {format_seconds(result.seconds):>10}  {shown}")
        results[plan.name] = result

    todo = []
    for plan in plans:
        if plan.execute:
            todo.append(plan)
        else:
            report(plan, ChapterResult(plan.name, "cached", 0.0, root / EXECUTED_DIR / f"{plan.name}.ipynb"))
    for plan in todo:
        notice = describe_plan(plan)
        if notice:
            log(notice)
    if jobs == 1 or len(todo) <= 1:
        for plan in todo:
            report(plan, _execute_planned(root, plan.name, dict(plan.parameters)))
    else:
        from concurrent.futures import FIRST_COMPLETED, wait

        with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(_execute_planned, root, p.name, dict(p.parameters)): p for p in todo}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)  # report each as it ends
                failed = [f for f in done if f.exception() is not None]
                for future in done:
                    if future.exception() is None:
                        report(futures[future], future.result())
                if failed:
                    for future in pending:
                        future.cancel()
                    raise failed[0].exception()
    return [results[p.name] for p in plans]
