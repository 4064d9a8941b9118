"""Execute the book's chapters with papermill and build the static site.

Data flow: ``notebooks/<chapter>.md`` (a MyST Markdown notebook in jupytext's ``myst`` format,
no outputs, one ``{code-cell}`` tagged ``parameters``) -> jupytext converts it to a notebook node
in memory -> papermill with the chosen preset and seed -> ``notebooks/executed/<chapter>.ipynb``
-> ``jupyter-book build`` with ``execute_notebooks: "off"`` -> ``_build/html``. The executed
``.ipynb`` are build products; the ``.md`` files are the only sources.

A chapter is re-executed only when its inputs changed: the executed copy stores, in its
metadata, a hash of the chapter's ``.md`` text, of every file under ``src/sharpjac`` and of the
parameters; when the hash matches, the chapter is skipped.

A chapter that fails never costs the book its page: the executed copy is replaced only after a
successful run (atomically), so the previous good copy stays; the failed run is kept as
``notebooks/executed/<chapter>.failed.ipynb`` for inspection. The error names the chapter and the
cell: the cell that raised, or, when the kernel died (out of memory, a crash in native code), the
last cell that had started.

After a successful execution the injected-parameters cell is tagged ``remove-cell`` (so it
does not show in the site) and a short "this page was computed with" box is inserted under
the chapter's title, carrying the parameters, the date, the software versions and the wall
time.

The paper preset reads a store filled elsewhere: before executing anything,
``notebooks --preset paper`` lists, per chapter, the runs its experiments need (the paper preset's
grid, or a study's :meth:`~sharpjac.experiments.StudyConfig.trains`) that the run store
(``$SHARPJAC_CACHE``) does not hold, with the command that produces them and their cost (CPU hours
measured, GPU hours estimated, see :mod:`sharpjac.costs`), and stops (exit code 1) when any is
missing. With every run stored, the chapters are executed with ``SHARPJAC_TRAINING=never``, so a
chapter that asks for a run the list did not foresee fails naming it instead of training it.

Command line (the Makefile calls these)::

    python -m sharpjac.publish notebooks --preset quick --seed 0 [--only data] [-p key value]
    python -m sharpjac.publish missing [--preset paper] [--only data]
    python -m sharpjac.publish build
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

PRESETS = ("smoke", "quick", "paper")
EXECUTED_DIR = Path("notebooks") / "executed"
_SOURCE_DIR = Path(__file__).resolve().parent


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


def repository_root(start: Path | None = None) -> Path:
    """The directory holding ``_toc.yml`` (searched upwards from ``start`` or the cwd)."""
    here = Path(start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "_toc.yml").is_file():
            return candidate
    raise FileNotFoundError(f"no _toc.yml found in {here} or any parent directory")


def chapters(root: Path) -> list[str]:
    """Chapter names (stems of ``notebooks/<name>.md``) in table-of-contents order.

    Every ``notebooks/executed/<name>`` entry of ``_toc.yml`` whose source ``notebooks/<name>.md``
    exists is a chapter; sources in ``notebooks/`` that the table of contents does not list come
    last, so that a new chapter is never silently skipped.
    """
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    listed: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            file = node.get("file")
            if isinstance(file, str) and file.startswith(str(EXECUTED_DIR)):
                listed.append(Path(file).stem)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(toc)
    present = sorted(p.stem for p in (root / "notebooks").glob("*.md"))
    return [n for n in listed if n in present] + [n for n in present if n not in listed]


def _source_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(_SOURCE_DIR.rglob("*.py")):
        digest.update(str(path.relative_to(_SOURCE_DIR)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def input_hash(notebook: Path, parameters: Mapping[str, Any]) -> str:
    """Hash of everything an executed chapter depends on: the chapter's source file (its ``.md``
    text, byte for byte), the package source and the parameters."""
    digest = hashlib.sha256()
    digest.update(notebook.read_bytes())
    digest.update(_source_digest().encode())
    digest.update(json.dumps(dict(parameters), sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _stored_hash(executed: Path) -> str | None:
    try:
        meta = json.loads(executed.read_text())["metadata"]
        return meta.get("sharpjac", {}).get("input_hash")
    except (OSError, ValueError, KeyError):
        return None


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


def _format_seconds(seconds: float) -> str:
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
        f"{params}; on {date}, in {_format_seconds(seconds)} on {env['device']}; {versions}.\n"
        "Re-run it with other parameters: see {doc}`/book/guide`.\n"
        ":::\n"
    )


def load_chapter(source: Path) -> Any:
    """Read a chapter's MyST Markdown source into an nbformat v4 notebook node for papermill.

    Papermill cannot read ``.md`` files, so the conversion happens here, in memory, with jupytext
    (the same conversion as ``jupytext --to ipynb``): every ``{code-cell}`` becomes a code cell with
    its ``:tags:``, the text between them markdown cells. The jupytext header is dropped from the
    notebook's metadata, so the executed copy is a plain notebook. Raises ``ValueError`` when the
    file is not in jupytext's ``myst`` format (a plain Markdown file would silently have no code).
    """
    import jupytext
    from jupytext.formats import guess_format

    text = source.read_text(encoding="utf-8")
    fmt, _ = guess_format(text, ".md")  # from the header, or else from the {code-cell} fences
    if fmt != "myst":
        raise ValueError(
            f"chapter source {source.name}: format_name={fmt!r}; accepted: 'myst' (a jupytext MyST Markdown notebook)"
        )
    nb = jupytext.reads(text, fmt="md:myst")
    nb.metadata.pop("jupytext", None)
    return nb


def _ruff(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", *args], input=stdin, capture_output=True, text=True, cwd=cwd)


def lint_chapters(root: Path, *, fix: bool = False) -> list[str]:
    """Lint the chapters' code with ruff, under the project's ``[tool.ruff]`` settings.

    ``ruff check`` runs on each chapter's code cells joined into one script (so that names defined in
    one cell and used in a later one are known); ``ruff format`` formats each code cell on its own
    (a cell is a snippet). With ``fix=True`` the formatted cells are written back into the ``.md``
    sources; ``ruff check`` findings are left to fix by hand. Returns the findings, one line each.
    """
    import jupytext

    findings: list[str] = []
    books = {name: jupytext.read(root / "notebooks" / f"{name}.md", fmt="md:myst") for name in chapters(root)}
    with tempfile.TemporaryDirectory() as tmp:
        cells: dict[Path, tuple[str, Any]] = {}
        for name, nb in books.items():
            script = "\n\n".join(c.source for c in nb.cells if c.cell_type == "code") + "\n"
            # checked as notebooks/<name>.py, so that the per-file settings for notebooks apply
            res = _ruff(
                "check",
                "--output-format",
                "concise",
                "--stdin-filename",
                f"notebooks/{name}.py",
                "-",
                stdin=script,
                cwd=root,
            )
            findings += [
                f"notebooks/{name}.md (code cells joined): {line.split(':', 1)[-1].strip()}"
                for line in res.stdout.splitlines()
                if line.startswith("notebooks/")
            ]
            for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
                path = Path(tmp) / f"{name}__{i + 1:03d}.py"
                path.write_text(cell.source.rstrip("\n") + "\n", encoding="utf-8")
                cells[path] = (name, cell)
        res = _ruff("format", "--config", str(root / "pyproject.toml"), "--quiet", tmp, cwd=root)
        if res.returncode != 0:
            findings.append(f"chapters: ruff format failed: {res.stderr.strip()}")
            return findings
        changed: set[str] = set()
        for path, (name, cell) in sorted(cells.items()):
            formatted = path.read_text(encoding="utf-8").rstrip("\n")
            if formatted == cell.source.rstrip("\n"):
                continue
            if fix:
                cell.source = formatted
                changed.add(name)
            else:
                number = int(path.stem.rsplit("__", 1)[1])
                findings.append(f"notebooks/{name}.md: code cell {number} is not ruff-formatted (make format fixes it)")
    for name in sorted(changed):
        jupytext.write(books[name], root / "notebooks" / f"{name}.md", fmt="md:myst")
    return findings


def last_started_cell(nb: Any) -> tuple[int, int, str] | None:
    """The last cell papermill started in ``nb``: ``(index, number, first_line)`` or ``None``.

    Papermill stamps ``metadata.papermill.start_time`` on a cell when it starts it, and saves the
    notebook then; after a dead kernel the last stamped cell is the one that was running. ``index``
    is the cell's position in the executed notebook; ``number`` counts the code cells of the
    chapter's source from 1 (papermill's injected-parameters cell is not counted), so it matches
    what an author sees in the ``.md``; ``first_line`` is the cell's first non-blank source line.
    """
    found = None
    number = 0
    for index, cell in enumerate(nb.cells):
        injected = "injected-parameters" in cell.metadata.get("tags", [])
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


def _postprocess(nb: Any, parameters: Mapping[str, Any], seconds: float, digest: str) -> None:
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


def validate_parameters(parameters: Mapping[str, Any]) -> None:
    """Reject a bad preset or seed before any notebook runs."""
    preset = parameters.get("preset")
    if preset not in PRESETS:
        raise ValueError(f"preset={preset!r} is not a preset; accepted values: {', '.join(PRESETS)}")
    seed = parameters.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed={seed!r} must be a non-negative integer")


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
    output = root / EXECUTED_DIR / f"{name}.ipynb"
    failed = output.with_suffix(".failed.ipynb")
    digest = input_hash(source, parameters)
    if not force and output.is_file() and _stored_hash(output) == digest:
        return ChapterResult(name, "cached", 0.0, output)

    notebook = load_chapter(source)
    output.parent.mkdir(parents=True, exist_ok=True)
    scratch = output.parent / f".{name}.running.ipynb"
    scratch.unlink(missing_ok=True)
    env_backup = os.environ.get("SHARPJAC_PROGRESS")
    os.environ["SHARPJAC_PROGRESS"] = "0"
    start = time.perf_counter()
    try:
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
    nb = nbformat.read(str(scratch), as_version=4)
    nb.metadata.setdefault("papermill", {})["input_path"] = str(source.relative_to(root))
    _postprocess(nb, parameters, seconds, digest)
    _atomic_write_text(output, nbformat.writes(nb))
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
    parameters: Mapping[str, Any],
    *,
    only: Iterable[str] | None = None,
    force: bool = False,
    log=print,
) -> list[ChapterResult]:
    """Execute every chapter (or those in ``only``); stop at the first that raises."""
    validate_parameters(parameters)
    names = chapters(root)
    selected = list(only) if only else names
    unknown = [n for n in selected if n not in names]
    if unknown:
        raise ValueError(f"unknown chapter(s) {unknown}; chapters: {', '.join(names)}")
    results = []
    for name in selected:
        result = execute_chapter(root, name, parameters, force=force)
        log(f"  {name:<34} {result.status:<9} {_format_seconds(result.seconds)}")
        results.append(result)
    return results


# ------------------------------------------------------------------------------------------------
# The paper preset reads a store filled elsewhere
# ------------------------------------------------------------------------------------------------

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


def missing_runs(root: Path, names: Iterable[str], *, preset: str, store=None) -> list[MissingRun]:
    """The runs that the chapters ``names`` need at ``preset`` and ``store`` does not hold.

    Each chapter's experiments (:func:`chapter_experiments`) at the preset's config; a run shared by
    several chapters is listed under the first. Nothing is trained or loaded.
    """
    from sharpjac import costs, experiments
    from sharpjac.experiments.base import missing_runs as experiment_missing
    from sharpjac.runs import RunStore

    st = store if isinstance(store, RunStore) else RunStore(store)
    seen: set[str] = set()
    out: list[MissingRun] = []
    for chapter in names:
        for exp_name in chapter_experiments(root, chapter):
            config = experiments.get(exp_name).preset(preset)
            for p in experiment_missing(config, name=exp_name, store=st):
                if p.key in seen:
                    continue
                seen.add(p.key)
                c = costs.run_cost(p.config)
                out.append(MissingRun(chapter, exp_name, dict(p.labels), p.key, c.cpu_hours, c.gpu_hours))
    return out


def _hours(h: float) -> str:
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
            f"  chapter {chapter}: experiment {exp_name}, {len(runs)} run(s), about {_hours(gpu)} GPU-hours "
            f"(estimate) or {_hours(cpu)} CPU-hours (measured per-step costs)"
        )
        command = f"python -m sharpjac run {exp_name} --preset {preset}"
        lines.append(f"    produce: {command}  (on a cluster: {command} --executor ray --address auto)")
        for r in runs:
            labels = ", ".join(f"{k}={v}" for k, v in r.labels.items())
            lines.append(f"      run {r.key[:12]}  {labels}  ~{_hours(r.gpu_hours)} GPU-h")
    total = sum(m.gpu_hours for m in missing)
    lines.append(f"  in all about {total:,.1f} GPU-hours; {costs.cost_source()}.")
    return "\n".join(lines)


def build_book(root: Path, *, builder: str = "html") -> None:
    """Run ``jupyter-book build`` with ``-W -n --keep-going``; raise when it fails."""
    exe = Path(sys.executable).with_name("jupyter-book")
    command = [str(exe), "build", str(root), "--builder", builder, "-W", "-n", "--keep-going"]
    missing = [n for n in chapters(root) if not (root / EXECUTED_DIR / f"{n}.ipynb").is_file()]
    if missing:
        raise FileNotFoundError(f"chapters not executed yet: {', '.join(missing)}; run `make notebooks` first")
    from sharpjac import scorecard  # the scorecard page and the landing page's counts, from the records

    scorecard.write(root)
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-60:])
        raise RuntimeError(f"jupyter-book build failed (exit {done.returncode}):\n{tail}")


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sharpjac.publish",
        description="Execute the book's chapters with papermill, or build the site.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("notebooks", help="execute chapters into notebooks/executed/")
    run.add_argument("--preset", default="quick", help=f"one of {', '.join(PRESETS)}")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--only", nargs="*", help="chapter names (stems of notebooks/*.md); default: all")
    run.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="extra notebook parameter (JSON value)",
    )
    run.add_argument("--force", action="store_true", help="re-execute even when up to date")
    miss = sub.add_parser("missing", help="list the runs the chapters need that the run store lacks, with costs")
    miss.add_argument("--preset", default="paper", help=f"one of {', '.join(PRESETS)} (default paper)")
    miss.add_argument("--only", nargs="*", help="chapter names (stems of notebooks/*.md); default: all")
    sub.add_parser("build", help="build _build/html from the executed chapters")
    sub.add_parser("list", help="list the chapters in table-of-contents order")
    lint = sub.add_parser("lint", help="ruff check and ruff format --check on the chapters' code")
    lint.add_argument("--fix", action="store_true", help="format the code cells in place")
    args = parser.parse_args(argv)
    root = repository_root()
    try:
        if args.command == "list":
            print("\n".join(chapters(root)))
        elif args.command == "lint":
            findings = lint_chapters(root, fix=args.fix)
            print("\n".join(findings) if findings else f"chapters: ruff clean ({len(chapters(root))} chapters)")
            return 1 if findings else 0
        elif args.command == "missing":
            return _check_store(root, args.preset, args.only, quiet_when_complete=False)
        elif args.command == "notebooks":
            parameters = {"preset": args.preset, "seed": args.seed}
            parameters.update({k: _parse_value(v) for k, v in args.parameter})
            validate_parameters(parameters)
            if args.preset == "paper":
                # the paper preset never trains while the book is built: missing runs stop it here
                if _check_store(root, args.preset, args.only, quiet_when_complete=True):
                    return 1
                os.environ["SHARPJAC_TRAINING"] = "never"
            print(f"executing chapters with {parameters}")
            start = time.perf_counter()
            execute_all(root, parameters, only=args.only, force=args.force)
            print(f"all chapters up to date ({_format_seconds(time.perf_counter() - start)})")
        else:
            start = time.perf_counter()
            build_book(root)
            print(
                f"site built in {_format_seconds(time.perf_counter() - start)}: "
                f"{root / '_build' / 'html' / 'index.html'}"
            )
    except (ChapterError, ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def _check_store(root: Path, preset: str, only, *, quiet_when_complete: bool) -> int:
    """Print the missing runs of the chapters (all, or ``only``); 1 when some are missing."""
    from sharpjac.runs import RunStore

    if preset not in PRESETS:
        raise ValueError(f"preset={preset!r} is not a preset; accepted values: {', '.join(PRESETS)}")
    names = chapters(root)
    selected = list(only) if only else names
    unknown = [n for n in selected if n not in names]
    if unknown:
        raise ValueError(f"unknown chapter(s) {unknown}; chapters: {', '.join(names)}")
    store = RunStore()
    missing = missing_runs(root, selected, preset=preset, store=store)
    if missing:
        print(missing_report(missing, preset=preset, store_root=store.root), file=sys.stderr)
        return 1
    if not quiet_when_complete:
        print(f"every run the chapters need at preset {preset!r} is in the run store {store.root}")
    else:
        print(f"run store {store.root} holds every run the chapters need at preset {preset!r}: nothing will train")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
