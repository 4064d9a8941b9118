"""Execute the book's chapters with papermill and build the static site.

Data flow: ``notebooks/<chapter>.md`` (a MyST Markdown notebook in jupytext's ``myst`` format,
no outputs, one ``{code-cell}`` tagged ``parameters``) -> jupytext converts it to a notebook node
in memory -> papermill with the chosen preset and seed -> ``notebooks/executed/<chapter>.ipynb``
-> ``jupyter-book build`` with ``execute_notebooks: "off"`` -> ``_build/html``. The executed
``.ipynb`` are build products; the ``.md`` files are the only sources.

A chapter is re-executed only when its inputs changed: the executed copy stores, in its
metadata, a hash of the chapter's ``.md`` text, of every file under ``src/sharpjac`` and of the
parameters; when the hash matches, the chapter is skipped.

Parameters persist (:func:`plan_chapters`): a chapter is executed with the parameters its executed
copy was last computed with, updated by those given on the command line (``--preset``, ``--seed``,
``--params "n_seeds=5 fraction=0.8"``), until its ``.md`` source changes; a new chapter, a chapter
whose source changed, or any chapter with ``--reset`` starts again from :data:`DEFAULT_PARAMETERS`.
So ``make chapter NB=x SEED=1 && make book`` keeps seed 1, and ``make notebooks SEED=3 && make book``
keeps seed 3. Whenever a chapter is re-executed with parameters other than its stored ones, the
chapter and the changed parameters are printed first. Every parameter name is checked against the
names the chapter's ``parameters`` cell assigns before any chapter runs.

A chapter that fails never costs the book its page: the executed copy is replaced only after a
successful run (atomically), so the previous good copy stays; the failed run is kept as
``notebooks/executed/<chapter>.failed.ipynb`` for inspection. The error names the chapter and the
cell: the cell that raised, or, when the kernel died (out of memory, a crash in native code), the
last cell that had started.

Before execution, a cell that installs the package where it is missing (Colab, Binder) is put
after the chapter's title, hidden from the website (:func:`add_install_cell`). After a successful
execution the injected-parameters cell is tagged ``remove-cell`` (so it
does not show in the site) and a short "this page was computed with" box is inserted under
the chapter's title, carrying the parameters, the date, the software versions and the wall
time.

The paper preset reads a store filled elsewhere: before executing anything,
``notebooks --preset paper`` (or any run that would execute a chapter at the paper preset) lists,
per chapter, the runs its experiments need (the paper preset's
grid, or a study's :meth:`~sharpjac.experiments.StudyConfig.trains`) that the run store
(``$SHARPJAC_CACHE``) does not hold, with the command that produces them and their cost (CPU hours
measured, GPU hours estimated, see :mod:`sharpjac.costs`), and stops (exit code 1) when any is
missing. With every run stored, the chapters are executed with ``SHARPJAC_TRAINING=never``, so a
chapter that asks for a run the list did not foresee fails naming it instead of training it.

Command line (the Makefile calls these)::

    python -m sharpjac.publish notebooks [--preset quick] [--seed 0] [--params "n_seeds=5"] [--reset]
                                         [--only data] [-p key value]
    python -m sharpjac.publish missing [--preset paper] [--only data]
    python -m sharpjac.publish build               # _build/html, with the buttons of derived_config
    python -m sharpjac.publish student             # _build/student: the site and notebooks without solutions
    python -m sharpjac.publish publish-notebooks   # executed chapters -> the launch buttons' branch
    python -m sharpjac.publish instructors         # the time table of the instructors' page
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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

PRESETS = ("smoke", "quick", "paper")
#: The parameters of a chapter that has no stored parameters (new, source changed, or ``--reset``).
DEFAULT_PARAMETERS: dict[str, Any] = {"preset": "quick", "seed": 0}
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
    return _stored_meta(executed).get("input_hash")


def _stored_meta(executed: Path) -> dict:
    """The ``sharpjac`` metadata of an executed chapter (``{}`` when there is none)."""
    try:
        meta = json.loads(executed.read_text())["metadata"].get("sharpjac", {})
    except (OSError, ValueError, KeyError, AttributeError):
        return {}
    return meta if isinstance(meta, dict) else {}


def source_hash(source: Path) -> str:
    """SHA-256 of a chapter's ``.md`` text alone: stored with the executed copy so that a changed
    source (which resets the chapter's parameters) is told apart from a changed package."""
    return hashlib.sha256(source.read_bytes()).hexdigest()


def chapter_parameters(source: Path) -> dict[str, Any]:
    """The names assigned in a chapter's ``parameters`` cell, with their default values.

    A value that is not a Python literal is given as its source text. A chapter without a cell tagged
    ``parameters`` accepts :data:`DEFAULT_PARAMETERS` (papermill injects them at its top).
    """
    import ast

    nb = load_chapter(source)
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if not cells:
        return dict(DEFAULT_PARAMETERS)
    found: dict[str, Any] = {}
    for node in ast.parse(cells[0].source).body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        for target in targets:
            if isinstance(target, ast.Name) and node.value is not None:
                try:
                    found[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    found[target.id] = ast.unparse(node.value)
    return found


def check_parameter_names(source: Path, parameters: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` (one line) when a parameter is not assigned in the chapter's parameters cell."""
    accepted = chapter_parameters(source)
    unknown = [k for k in parameters if k not in accepted]
    if unknown:
        raise ValueError(
            f"parameter {unknown[0]}={parameters[unknown[0]]!r} is not a parameter of chapter {source.stem}; "
            f"accepted names: {', '.join(accepted)}"
        )


def parse_params(text: str) -> dict[str, Any]:
    """``"n_seeds=5 fraction=0.8 method=kendall"`` -> ``{"n_seeds": 5, "fraction": 0.8, "method": "kendall"}``.

    Words are split as a shell would (quotes group); each value is read as JSON when it is JSON
    (numbers, ``true``, ``"text"``), else kept as text (:func:`_parse_value`).
    """
    import shlex

    out: dict[str, Any] = {}
    for word in shlex.split(text):
        name, sep, value = word.partition("=")
        if not sep or not name.isidentifier():
            raise ValueError(f"params entry {word!r} is not NAME=VALUE; accepted: words like n_seeds=5 fraction=0.8")
        out[name] = _parse_value(value)
    return out


@dataclass(frozen=True)
class ChapterPlan:
    """What :func:`plan_chapters` decided for one chapter.

    ``parameters`` are those it will be (or was) executed with; ``stored`` those of its executed copy
    (``None`` when there is none); ``reason`` is one of ``"up to date"``, ``"new"``, ``"source changed"``,
    ``"parameters changed"``, ``"reset"``, ``"package changed"`` or ``"forced"``.
    """

    name: str
    parameters: dict
    stored: dict | None
    execute: bool
    reason: str

    def changes(self) -> str:
        """The parameters that differ from the stored ones, as ``"seed 1 -> 0, n_seeds 5 -> (default)"``."""
        if self.stored is None:
            return ""
        keys = list(self.stored) + [k for k in self.parameters if k not in self.stored]
        parts = []
        for key in keys:
            old, new = self.stored.get(key, "(default)"), self.parameters.get(key, "(default)")
            if old != new:
                parts.append(f"{key} {old!r} -> {new!r}".replace("'(default)'", "(default)"))
        return ", ".join(parts)


def plan_chapters(
    root: Path,
    names: Iterable[str],
    explicit: Mapping[str, Any] | None = None,
    *,
    reset: bool = False,
    force: bool = False,
) -> list[ChapterPlan]:
    """Decide, for each chapter, its parameters and whether it must be executed; nothing runs.

    A chapter's parameters are its stored ones (those its executed copy was computed with) when its
    ``.md`` source is unchanged and ``reset`` is false, else :data:`DEFAULT_PARAMETERS`; then updated
    with ``explicit``. Every explicit name is checked against every selected chapter's parameters
    cell first (``ValueError``, one line, before any work). A chapter is executed when the hash of
    its inputs (:func:`input_hash`) differs from the stored one, or with ``force``.
    """
    explicit = dict(explicit or {})
    names = list(names)
    for name in names:
        check_parameter_names(root / "notebooks" / f"{name}.md", explicit)
    plans = []
    for name in names:
        source = root / "notebooks" / f"{name}.md"
        output = root / EXECUTED_DIR / f"{name}.ipynb"
        meta = _stored_meta(output) if output.is_file() else {}
        stored = meta.get("parameters") if isinstance(meta.get("parameters"), dict) else None
        # an executed copy from before source hashes were stored: its source is taken as unchanged
        source_changed = stored is not None and meta.get("source_hash", source_hash(source)) != source_hash(source)
        if stored is not None and not source_changed and not reset:
            accepted = chapter_parameters(source)
            parameters = {k: v for k, v in stored.items() if k in accepted}
        else:
            parameters = dict(DEFAULT_PARAMETERS)
        parameters.update(explicit)
        validate_parameters(parameters)
        up_to_date = stored is not None and meta.get("input_hash") == input_hash(source, parameters)
        if force:
            reason = "forced"
        elif up_to_date:
            reason = "up to date"
        elif stored is None:
            reason = "new"
        elif source_changed:
            reason = "source changed"
        elif reset:
            reason = "reset"
        elif parameters != stored:
            reason = "parameters changed"
        else:
            reason = "package changed"
        plans.append(ChapterPlan(name, parameters, stored, force or not up_to_date, reason))
    return plans


def describe_plan(plan: ChapterPlan) -> str | None:
    """The line printed before a chapter is re-executed with parameters other than its stored ones
    (``None`` when it is not, so nothing is re-executed silently with other parameters)."""
    if not plan.execute or plan.stored is None or plan.parameters == plan.stored:
        return None
    why = {
        "source changed": "its source changed, so its parameters start again from the defaults",
        "reset": "--reset: the defaults",
    }.get(plan.reason, "as given")
    return f"chapter {plan.name}: re-executed with other parameters ({why}): {plan.changes()}"


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
    _postprocess(nb, parameters, seconds, digest, source_hash(source))
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
    return execute_plans(root, plan_chapters(root, _select(root, only), parameters, reset=reset, force=force), log=log)


def _select(root: Path, only: Iterable[str] | None) -> list[str]:
    names = chapters(root)
    selected = list(only) if only else names
    unknown = [n for n in selected if n not in names]
    if unknown:
        raise ValueError(f"unknown chapter(s) {unknown}; chapters: {', '.join(names)}")
    return selected


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

    Every chapter trains with one torch thread, so two chapters use two cores; chapters that need the
    same stored run wait for each other on the run store's lock instead of training it twice."""
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
        log(f"  {plan.name:<34} {result.status:<9} {_format_seconds(result.seconds):>10}  {shown}")
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
        command = f"python -m sharpjac run {exp_name} --preset {preset}" + _run_arguments(runs[0].parameters)
        lines.append(f"    produce: {command}  (on a cluster: {command} --executor ray --address auto)")
        for r in runs:
            labels = ", ".join(f"{k}={v}" for k, v in r.labels.items())
            lines.append(f"      run {r.key[:12]}  {labels}  ~{_hours(r.gpu_hours)} GPU-h")
    total = sum(m.gpu_hours for m in missing)
    lines.append(f"  in all about {total:,.1f} GPU-hours; {costs.cost_source()}.")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Launch buttons: one repository setting, derived config, install cell, published notebooks
# ------------------------------------------------------------------------------------------------

#: Tag of the cell :func:`add_install_cell` puts at the top of every executed chapter.
INSTALL_TAG = "sharpjac-install"
#: The branch ``publish-notebooks`` writes and the launch buttons open, unless
#: ``repository.launch_branch`` in ``_config.yml`` names another.
LAUNCH_BRANCH = "book-notebooks"


def _load_config(root: Path) -> dict:
    import yaml

    path = root / "_config.yml"
    config = yaml.safe_load(path.read_text()) if path.is_file() else None
    return config if isinstance(config, dict) else {}


def https_url(remote: str) -> str | None:
    """A git remote as an https URL without credentials or ``.git``; ``None`` when it is not a web host.

    ``git@github.com:x/y.git``, ``ssh://git@github.com/x/y.git`` and ``https://user:token@github.com/x/y.git``
    all give ``https://github.com/x/y``; a local path gives ``None``.
    """
    from urllib.parse import urlsplit

    remote = remote.strip()
    scp = re.fullmatch(r"(?:[\w.-]+@)?([\w.-]+\.[a-z]{2,}):(?!/)(.+)", remote)
    if scp:
        host, path = scp.groups()
    else:
        parts = urlsplit(remote)
        if parts.scheme not in ("https", "http", "ssh", "git") or not parts.hostname:
            return None
        host, path = parts.hostname, parts.path
    path = path.strip("/")
    path = path[: -len(".git")] if path.endswith(".git") else path
    return f"https://{host}/{path}" if path else None


def _without_credentials(url: str) -> str:
    """``url`` with any ``user:password@`` removed (a token in ``repository.url`` never reaches a
    generated file, as for the git remote in :func:`https_url`)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return url


def _check_branch(root: Path, branch: Any) -> str:
    """``branch`` if publish-notebooks may write it: a plain branch name (no ``/``, not ``HEAD``,
    valid for ``git check-ref-format --branch``) that is not checked out here; else ValueError."""
    accepted = "a plain branch name such as book-notebooks, not the checked-out branch"
    if not isinstance(branch, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", branch) or branch == "HEAD":
        raise ValueError(f"--branch={branch!r} is invalid; accepted: {accepted}")
    if branch.endswith((".lock", ".")) or ".." in branch or _git(root, "check-ref-format", "--branch", branch) is None:
        raise ValueError(f"--branch={branch!r} is not a valid branch name; accepted: {accepted}")
    current = _git(root, "symbolic-ref", "--quiet", "--short", "HEAD")
    listing = _git(root, "worktree", "list", "--porcelain") or ""
    elsewhere = {
        line.split("refs/heads/", 1)[1] for line in listing.splitlines() if line.startswith("branch refs/heads/")
    }
    if current == branch or branch in elsewhere:
        raise ValueError(
            f"--branch={branch!r} is checked out (here or in a worktree); publish-notebooks writes a separate branch "
            f"(accepted: {accepted}; default {LAUNCH_BRANCH})"
        )
    return branch


def _git(root: Path, *args: str) -> str | None:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def _is_git_top(root: Path) -> bool:
    top = _git(root, "rev-parse", "--show-toplevel")
    return top is not None and Path(top).resolve() == root.resolve()


def repository_url(root: Path) -> str | None:
    """The book's repository: ``repository.url`` of ``_config.yml``, or when that is empty the https
    form of ``git remote get-url origin`` of the repository whose top level is ``root``; ``None``
    when neither exists (the launch and repository buttons are then hidden)."""
    url = str((_load_config(root).get("repository") or {}).get("url") or "").strip()
    if url:
        return _without_credentials(url).rstrip("/")
    if not _is_git_top(root):
        return None
    remote = _git(root, "remote", "get-url", "origin")
    return https_url(remote) if remote else None


def launch_branch(root: Path) -> str:
    """The branch the launch buttons open: ``repository.launch_branch`` of ``_config.yml``, else
    :data:`LAUNCH_BRANCH`."""
    return str((_load_config(root).get("repository") or {}).get("launch_branch") or LAUNCH_BRANCH)


def _branch_exists(root: Path, branch: str) -> bool:
    if not _is_git_top(root):
        return False
    return any(
        _git(root, "rev-parse", "--verify", "--quiet", ref)
        for ref in (f"refs/heads/{branch}", f"refs/remotes/origin/{branch}")
    )


def derived_config(root: Path) -> dict:
    """The configuration the site is built with: ``_config.yml`` (never modified) with the repository
    URL of :func:`repository_url` filled in, and the buttons that would lead nowhere hidden.

    - no URL: repository, issues and edit buttons off, every launch URL empty (no launch buttons);
    - a URL but no launch branch (:func:`launch_branch`, local or ``origin``'s) yet: the repository
      button stays, the launch buttons are hidden (``make publish-notebooks`` creates the branch);
    - both: ``repository.branch`` is the launch branch, where the executed notebooks are.
    """
    import copy

    config = copy.deepcopy(_load_config(root))
    repository = dict(config.get("repository") or {})
    branch = str(repository.pop("launch_branch", "") or LAUNCH_BRANCH)
    url = repository_url(root)
    launch = dict(config.get("launch_buttons") or {})
    html = dict(config.get("html") or {})
    no_launch = {k: "" for k in ("binderhub_url", "jupyterhub_url", "colab_url", "deepnote_url")}
    if url is None:
        repository["url"] = ""
        html.update(use_repository_button=False, use_issues_button=False, use_edit_page_button=False)
        launch.update(no_launch)
    else:
        repository["url"] = url
        if _branch_exists(root, branch):
            repository["branch"] = branch
        else:
            launch.update(no_launch)
    config["repository"], config["launch_buttons"], config["html"] = repository, launch, html
    return config


def _write_derived_config(root: Path) -> Path:
    import yaml

    path = root / "_build" / ".derived" / "_config.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Generated by sharpjac.publish from _config.yml for one build; edit _config.yml instead.\n"
    path.write_text(header + yaml.safe_dump(derived_config(root), sort_keys=False, allow_unicode=True))
    return path


def install_cell_source(url: str | None) -> str:
    """The first code cell of every executed chapter: installs ``sharpjac`` where it is missing
    (Colab, Binder) from ``url``; without a URL it says how to install from a local clone."""
    head = "# Installs the book's package where it is missing (Colab, Binder); does nothing where it is installed.\n"
    if url:
        return (
            head + "try:\n    import sharpjac  # noqa: F401\n"
            f'except ImportError:\n    %pip install -q "sharpjac @ git+{url}"\n'
        )
    return (
        head + "try:\n    import sharpjac  # noqa: F401\nexcept ImportError as err:\n"
        "    raise ImportError(\"sharpjac is not installed: in a clone of the book's repository run "
        '`pip install -e .` (or `make install`), then restart the kernel") from err\n'
    )


def add_install_cell(nb: Any, url: str | None) -> None:
    """Insert :func:`install_cell_source` after the chapter's title, tagged ``remove-cell`` (so the
    website does not show it, while Colab and Jupyter do) and :data:`INSTALL_TAG`."""
    import nbformat

    cell = nbformat.v4.new_code_cell(install_cell_source(url))
    cell.metadata["tags"] = ["remove-cell", INSTALL_TAG]
    first = 1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0
    nb.cells.insert(first, cell)


def refresh_install_cell(notebook_json: str, url: str | None) -> str:
    """The executed notebook's JSON text with its install cell (:data:`INSTALL_TAG`) rewritten for
    ``url``, so that a notebook executed before the repository URL was set still installs from it;
    the text is returned unchanged when there is no install cell."""
    import nbformat

    nb = nbformat.reads(notebook_json, as_version=4)
    cells = [c for c in nb.cells if INSTALL_TAG in c.metadata.get("tags", [])]
    if not cells:
        return notebook_json
    for cell in cells:
        cell.source = install_cell_source(url)
    return nbformat.writes(nb)


def publish_notebooks(root: Path, *, branch: str | None = None, message: str | None = None) -> str:
    """Commit ``notebooks/executed/*.ipynb`` together with the tree of ``HEAD`` to ``branch``
    (default :func:`launch_branch`), the branch the launch buttons open; return the new commit.
    The committed copies install the package from the current :func:`repository_url`
    (:func:`refresh_install_cell`).

    Only git plumbing is used (a temporary index, ``write-tree``, ``commit-tree``, ``update-ref``):
    the working tree, the index and the checked-out branch are untouched. The branch's previous
    commit, if any, is the parent, so its history records each publication. Push it with
    ``git push origin <branch>``.
    """
    branch = branch or launch_branch(root)
    if not _is_git_top(root):
        raise FileNotFoundError(f"{root} is not the top level of a git repository; publish-notebooks needs one")
    _check_branch(root, branch)
    names = chapters(root)
    missing = [n for n in names if not (root / EXECUTED_DIR / f"{n}.ipynb").is_file()]
    if missing:
        raise FileNotFoundError(f"chapters not executed yet: {', '.join(missing)}; run `make notebooks` first")
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        env["GIT_INDEX_FILE"] = str(Path(tmp) / "index")

        def git(*args: str, stdin: str | None = None) -> str:
            done = subprocess.run(
                ["git", "-C", str(root), *args], input=stdin, capture_output=True, text=True, env=env, check=False
            )
            if done.returncode != 0:
                raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
            return done.stdout.strip()

        git("read-tree", "HEAD")
        url = repository_url(root)
        for name in names:
            path = (EXECUTED_DIR / f"{name}.ipynb").as_posix()
            text = refresh_install_cell((root / path).read_text(encoding="utf-8"), url)
            blob = git("hash-object", "-w", "--stdin", stdin=text)
            git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}")
        tree = git("write-tree")
        parent = _git(root, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}")
        head = git("rev-parse", "--short", "HEAD")
        text = message or f"Executed notebooks for the launch buttons, from {head}"
        commit = git("commit-tree", tree, *(["-p", parent] if parent else []), "-m", text)
        git("update-ref", f"refs/heads/{branch}", commit, *([parent] if parent else []))
    return commit


def build_book(root: Path, *, builder: str = "html") -> None:
    """Run ``jupyter-book build`` with ``-W -n --keep-going`` and the configuration of
    :func:`derived_config`; raise when it fails."""
    exe = Path(sys.executable).with_name("jupyter-book")
    command = [str(exe), "build", str(root), "--builder", builder, "-W", "-n", "--keep-going"]
    missing = [n for n in chapters(root) if not (root / EXECUTED_DIR / f"{n}.ipynb").is_file()]
    if missing:
        raise FileNotFoundError(f"chapters not executed yet: {', '.join(missing)}; run `make notebooks` first")
    from sharpjac import scorecard  # the scorecard page and the landing page's counts, from the records

    scorecard.write(root)
    command += ["--config", str(_write_derived_config(root))]  # repository URL and buttons (derived_config)
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-60:])
        raise RuntimeError(f"jupyter-book build failed (exit {done.returncode}):\n{tail}")
    refresh_downloads(root / "_build" / builder, repository_url(root))


def refresh_downloads(site: Path, url: str | None) -> list[Path]:
    """Rewrite the install cell (:func:`refresh_install_cell`) of every downloadable notebook of the
    built ``site`` (``_sources/**/*.ipynb``) for ``url``, the repository URL in force now, so a
    download installs from it even when the chapter was executed before the URL was set; return the
    files changed."""
    changed = []
    for path in sorted(site.glob("_sources/**/*.ipynb")):
        text = path.read_text(encoding="utf-8")
        new = refresh_install_cell(text, url)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


# ------------------------------------------------------------------------------------------------
# Instructors: how long each chapter takes
# ------------------------------------------------------------------------------------------------


def measured_seconds(executed_dir: Path, names: Iterable[str]) -> dict[str, tuple[str, float]]:
    """``{chapter: (preset, seconds)}`` read from the ``sharpjac`` metadata of the executed copies in
    ``executed_dir`` (the wall time of their last execution); chapters without a copy are left out."""
    out = {}
    for name in names:
        meta = _stored_meta(executed_dir / f"{name}.ipynb")
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
        s = _format_seconds(smoke[name][1]) if smoke.get(name, ("",))[0] == "smoke" else "–"
        q = _format_seconds(quick[name][1]) if quick.get(name, ("",))[0] == "quick" else "–"
        runs, cpu, gpu = paper_cost(root, name)
        plural = "run" if runs == 1 else "runs"
        paper = f"{runs} {plural}, {_hours(cpu)} / {_hours(gpu)}" if runs else "no training runs"
        lines.append(f"| {{doc}}`/notebooks/executed/{name}` | {s} | {q} | {paper} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Student edition: the site and the notebooks without solutions
# ------------------------------------------------------------------------------------------------

_FENCE = re.compile(r"^\s*(`{3,}|:{3,})\s*\{(solution|solution-start)\}")


def _split_solutions(markdown: str) -> tuple[str, list[str]]:
    """``(text without solutions, [each removed solution block's text])``: see :func:`strip_solutions`."""
    out: list[str] = []
    removed: list[str] = []
    lines = markdown.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        start = i
        fence, kind = match.groups()
        closing = re.compile(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        i += 1
        while i < len(lines) and not closing.match(lines[i]):
            i += 1
        i += 1  # the closing fence
        if kind == "solution-start":  # the solution's text runs to the {solution-end} block, included
            end = re.compile(r"^\s*(`{3,}|:{3,})\s*\{solution-end\}")
            while i < len(lines) and not end.match(lines[i]):
                i += 1
            if i < len(lines):
                fence = end.match(lines[i]).group(1)
                closing = re.compile(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
                i += 1
                while i < len(lines) and not closing.match(lines[i]):
                    i += 1
                i += 1
        removed.append("".join(lines[start:i]))
    return re.sub(r"\n{3,}", "\n\n", "".join(out)), removed


def strip_solutions(markdown: str) -> str:
    """Remove every ``{solution}`` directive block (backtick or colon fence) and every gated
    ``{solution-start}`` ... ``{solution-end}`` pair from a markdown cell's text.

    A block ends at the first line that is only its fence character repeated at least as often as
    in the opening fence (CommonMark's rule, so nested shorter fences stay inside it).
    """
    return _split_solutions(markdown)[0]


# {glue}`key`, {glue:text}`key:.2f`, {glue:md}`key:myst` (roles) and ```{glue:figure} key (directives)
_GLUE_ROLE = re.compile(r"\{glue(?::[a-z]+)?\}`([^`:]+)")
_GLUE_DIRECTIVE = re.compile(r"^\s*(?:`{3,}|:{3,})\s*\{glue(?::[a-z]+)?\}\s+(\S+)", re.M)


def glue_keys(markdown: str) -> set[str]:
    """The glue keys a markdown text displays (``{glue...}`` roles and directives)."""
    return set(_GLUE_ROLE.findall(markdown)) | set(_GLUE_DIRECTIVE.findall(markdown))


def _glued_names(cell: Any) -> set[str]:
    return {o.metadata["scrapbook"]["name"] for o in cell.get("outputs", []) if "scrapbook" in o.get("metadata", {})}


def _defined_names(source: str) -> set[str]:
    """Names a code cell binds (assignments, definitions, imports); empty when it does not parse."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def _used_names(source: str) -> set[str]:
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def solution_keys(nb: Any) -> set[str]:
    """The glue keys shown only inside solutions: displayed by a ``{solution}`` block and by no
    other markdown of the notebook."""
    inside: set[str] = set()
    outside: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            kept, removed = _split_solutions(cell.source)
            outside |= glue_keys(kept)
            for block in removed:
                inside |= glue_keys(block)
    return inside - outside


def student_notebook(nb: Any, *, name: str = "notebook") -> Any:
    """A copy of an executed chapter without solutions: :func:`strip_solutions` applied to its
    markdown cells, and every code cell that glues only keys of :func:`solution_keys` (the cells
    that compute a solution) removed with its outputs; a solution key glued by a cell that also
    glues other keys loses its output.

    Raises ``ValueError`` (one line, naming the chapter) when a later cell reads a name that only a
    removed cell binds: a reader re-running the student notebook would get a ``NameError``, so
    the chapter must compute that name outside its solution cell.
    """
    import copy

    nb = copy.deepcopy(nb)
    hidden = solution_keys(nb)
    kept: list[Any] = []
    removed_names: dict[str, int] = {}  # name -> index of the removed cell that binds it
    bound: set[str] = set()  # names bound by kept code cells so far
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            cell.source = strip_solutions(cell.source)
        elif cell.cell_type == "code":
            glued = _glued_names(cell)
            if glued and glued <= hidden:
                for n in _defined_names(cell.source):
                    removed_names.setdefault(n, index)
                continue
            if glued & hidden:
                cell.outputs = [
                    o for o in cell.outputs if o.get("metadata", {}).get("scrapbook", {}).get("name") not in hidden
                ]
            broken = sorted((_used_names(cell.source) & set(removed_names)) - bound)
            if broken:
                raise ValueError(
                    f"{name}: cell {index} reads {', '.join(broken)}, bound only by solution cell "
                    f"{removed_names[broken[0]]} that the student edition removes; compute it outside the solution cell"
                )
            bound |= _defined_names(cell.source)
        kept.append(cell)
    nb.cells = kept
    return nb


# What counts as a solution's text: its longest run of plain words (letters, spaces, commas), compared
# letters only, so line breaks, smart quotes, markup and a PDF's text extraction do not hide it.
_PLAIN_RUN = re.compile(r"[A-Za-z][A-Za-z ,;]{24,}[A-Za-z]")


def _letters(text: str) -> str:
    """Lower-case letters only, after NFKC (a PDF's ligature "\ufb01" reads "fi")."""
    import unicodedata

    return re.sub(r"[^a-z]", "", unicodedata.normalize("NFKC", text).lower())


def _phrase(text: str) -> str | None:
    """The longest run of at least four plain words in ``text`` (markup and glue roles removed)."""
    text = _GLUE_ROLE.sub(" ", re.sub(r"\{glue(?::[a-z]+)?\}`[^`]*`", " ", text))
    text = " ".join(line for line in text.splitlines() if not re.match(r"\s*(`{3,}|:{3,}|:[a-z-]+:)", line))
    runs = [r for r in _PLAIN_RUN.findall(" ".join(text.split())) if len(r.split()) >= 4]
    return max(runs, key=len) if runs else None


def solution_texts(nb: Any) -> list[str]:
    """One phrase of each solution of an executed chapter: of each ``{solution}`` block's own text,
    and of each output glued under a key only solutions show (:func:`solution_keys`)."""
    hidden = solution_keys(nb)
    phrases: list[str | None] = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            phrases += [_phrase(block) for block in _split_solutions(cell.source)[1]]
        elif cell.cell_type == "code":
            for out in cell.get("outputs", []):
                if out.get("metadata", {}).get("scrapbook", {}).get("name") in hidden:
                    phrases += [_phrase(str(v)) for v in out.get("data", {}).values()]
    return list(dict.fromkeys(p for p in phrases if p))


def edition_text(path: Path) -> str:
    """The text a reader of ``path`` sees or downloads: a notebook's sources and outputs, a PDF's
    extracted text, any other file as it is (HTML with its markup)."""
    if path.suffix == ".ipynb":
        import nbformat

        nb = nbformat.read(str(path), as_version=4)
        parts = [c.source for c in nb.cells]
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                parts += [str(v) for v in out.get("data", {}).values()] + [str(out.get("text", ""))]
        return "\n".join(parts)
    if path.suffix == ".pdf":
        from pypdf import PdfReader

        return "\n".join(page.extract_text() or "" for page in PdfReader(str(path)).pages)
    import html

    return html.unescape(re.sub(r"<[^>]+>", " ", path.read_text(errors="replace")))


def edition_files(folder: Path) -> list[Path]:
    """The files of an edition that can hold text: pages, ``_sources``, the search index, notebooks
    and PDFs (not the bundled scripts, styles and images of ``_static``)."""
    suffixes = {".html", ".ipynb", ".md", ".txt", ".js", ".pdf", ".json"}
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in suffixes and "_static" not in p.parts)


def leaked_solutions(folder: Path, phrases: Iterable[str]) -> list[tuple[str, str]]:
    """``(file, phrase)`` for every phrase of ``phrases`` found in a file of :func:`edition_files`."""
    wanted = {p: _letters(p) for p in phrases}
    found = []
    for path in edition_files(folder):
        text = _letters(edition_text(path))
        found += [(str(path.relative_to(folder)), p) for p, key in wanted.items() if key in text]
    return found


_COPY_IGNORE = (".git", ".venv", "_build", "__pycache__", ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints")


def build_student(root: Path) -> Path:
    """Build the student edition into ``_build/student``: ``html/`` (the site) and ``notebooks/``
    (the downloadable executed chapters), both without solutions; returns ``_build/student``.

    The book's sources are copied to a temporary tree outside the repository, the executed chapters
    there are replaced by :func:`student_notebook` copies, and :func:`build_book` builds that tree;
    the normal site and the executed chapters are untouched. The copy is not a git checkout, so the
    student site has no repository or launch buttons (they would open the notebooks with solutions),
    unless ``_config.yml`` sets ``repository.url``, in which case only the repository button shows.
    """
    import shutil

    import nbformat

    names = chapters(root)
    missing = [n for n in names if not (root / EXECUTED_DIR / f"{n}.ipynb").is_file()]
    if missing:
        raise FileNotFoundError(f"chapters not executed yet: {', '.join(missing)}; run `make notebooks` first")
    target = root / "_build" / "student"
    with tempfile.TemporaryDirectory(prefix="sharpjac-student-") as tmp:
        tree = Path(tmp) / "book"
        shutil.copytree(root, tree, ignore=shutil.ignore_patterns(*_COPY_IGNORE), symlinks=True)
        config = _load_config(tree)
        if config.get("launch_buttons"):  # even with repository.url set, no launch button opens solutions
            import yaml

            config["launch_buttons"] = {k: "" if k.endswith("_url") else v for k, v in config["launch_buttons"].items()}
            (tree / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
        for name in names:
            path = tree / EXECUTED_DIR / f"{name}.ipynb"
            nbformat.write(student_notebook(nbformat.read(str(path), as_version=4), name=name), str(path))
        build_book(tree)
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        shutil.copytree(tree / "_build" / "html", target / "html")
        (target / "notebooks").mkdir()
        for name in names:
            shutil.copy(tree / EXECUTED_DIR / f"{name}.ipynb", target / "notebooks" / f"{name}.ipynb")
    phrases = [p for n in names for p in solution_texts(nbformat.read(str(root / EXECUTED_DIR / f"{n}.ipynb"), 4))]
    leaks = leaked_solutions(target, phrases)
    if leaks:  # a kind of solution strip_solutions and student_notebook do not know
        file, phrase = leaks[0]
        raise RuntimeError(f"the student edition still shows a solution: {phrase!r} in {file} ({len(leaks)} leaks)")
    return target


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
    run.add_argument(
        "--preset",
        default=None,
        help=f"one of {', '.join(PRESETS)} (default: each chapter's stored preset, else quick)",
    )
    run.add_argument("--seed", type=int, default=None, help="default: each chapter's stored seed, else 0")
    run.add_argument("--params", default=None, help='any chapter parameters, e.g. "n_seeds=5 fraction=0.8"')
    run.add_argument("--reset", action="store_true", help="forget the stored parameters: start from the defaults")
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
    run.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="chapters executed at once (default: $SHARPJAC_JOBS, else one per core, at most 2)",
    )
    miss = sub.add_parser("missing", help="list the runs the chapters need that the run store lacks, with costs")
    miss.add_argument("--preset", default="paper", help=f"one of {', '.join(PRESETS)} (default paper)")
    miss.add_argument("--only", nargs="*", help="chapter names (stems of notebooks/*.md); default: all")
    sub.add_parser("build", help="build _build/html from the executed chapters")
    sub.add_parser("student", help="build the student edition (no solutions) into _build/student")
    pub = sub.add_parser("publish-notebooks", help="commit the executed chapters to the launch buttons' branch")
    pub.add_argument("--branch", default=None, help=f"default: repository.launch_branch, else {LAUNCH_BRANCH}")
    ins = sub.add_parser("instructors", help="print the time table of the instructors' page (measured and estimated)")
    ins.add_argument("--smoke-dir", type=Path, default=None, help="executed copies at the smoke preset")
    ins.add_argument("--quick-dir", type=Path, default=None, help="executed copies at the quick preset")
    sub.add_parser("list", help="list the chapters in table-of-contents order")
    lint = sub.add_parser("lint", help="ruff check and ruff format --check on the chapters' code")
    lint.add_argument("--fix", action="store_true", help="format the code cells in place")
    args = parser.parse_args(argv)
    try:
        root = repository_root()
    except FileNotFoundError as err:
        print(
            f"error: {err}; run this command inside the book's repository (its top level holds _toc.yml)",
            file=sys.stderr,
        )
        return 2
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
            explicit: dict[str, Any] = {}
            if args.preset is not None:
                explicit["preset"] = args.preset
            if args.seed is not None:
                explicit["seed"] = args.seed
            explicit.update(parse_params(args.params or ""))
            explicit.update({k: _parse_value(v) for k, v in args.parameter})
            plans = plan_chapters(root, _select(root, args.only), explicit, reset=args.reset, force=args.force)
            paper = [p.name for p in plans if p.execute and p.parameters["preset"] == "paper"]
            # the paper preset never trains while the book is built: missing runs stop it here
            paper_parameters = {p.name: p.parameters for p in plans if p.name in paper}
            if paper and _check_store(root, "paper", paper, quiet_when_complete=True, parameters=paper_parameters):
                return 1
            given = ", ".join(f"{k}={v!r}" for k, v in explicit.items()) or "none (stored parameters are kept)"
            print(f"executing chapters; parameters given: {given}")
            start = time.perf_counter()
            jobs = default_jobs() if args.jobs is None else args.jobs
            if jobs < 1:
                raise ValueError(f"--jobs {jobs}; accepted: a positive integer")
            execute_plans(root, plans, jobs=jobs)
            print(f"all chapters up to date ({_format_seconds(time.perf_counter() - start)})")
        elif args.command == "instructors":
            print(times_table(root, smoke_dir=args.smoke_dir, quick_dir=args.quick_dir))
        elif args.command == "student":
            start = time.perf_counter()
            target = build_student(root)
            print(f"student edition built in {_format_seconds(time.perf_counter() - start)}: {target / 'html'}")
        elif args.command == "publish-notebooks":
            branch = args.branch or launch_branch(root)
            commit = publish_notebooks(root, branch=branch)
            url = repository_url(root)
            if url is None:
                remote = _git(root, "remote", "get-url", "origin")
                print(
                    f"warning: the origin remote ({remote or 'none'}) is not a web URL and _config.yml sets no "
                    "repository.url: the published notebooks tell readers to clone, and the site's launch and "
                    "repository buttons stay hidden; set repository.url in _config.yml and publish again",
                    file=sys.stderr,
                )
            print(f"executed chapters committed to branch {branch} ({commit[:12]}); the working tree is untouched")
            print(
                f"  publish them: git push origin {branch}"
                + (f"   (launch buttons open {url}/blob/{branch}/...)" if url else "")
            )
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


def _check_store(
    root: Path, preset: str, only, *, quiet_when_complete: bool, parameters: Mapping[str, Mapping] | None = None
) -> int:
    """Print the missing runs of the chapters (all, or ``only``); 1 when some are missing.

    Each chapter's parameters are ``parameters[chapter]``, else those :func:`plan_chapters` chooses
    (its stored ones, else its defaults) with ``preset``."""
    from sharpjac.runs import RunStore

    if preset not in PRESETS:
        raise ValueError(f"preset={preset!r} is not a preset; accepted values: {', '.join(PRESETS)}")
    names = chapters(root)
    selected = list(only) if only else names
    unknown = [n for n in selected if n not in names]
    if unknown:
        raise ValueError(f"unknown chapter(s) {unknown}; chapters: {', '.join(names)}")
    if parameters is None:
        parameters = {p.name: p.parameters for p in plan_chapters(root, selected, {"preset": preset})}
    store = RunStore()
    missing = missing_runs(root, selected, preset=preset, store=store, parameters=parameters)
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
